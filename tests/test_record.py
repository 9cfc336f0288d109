"""The key record, version 2, as pure functions: exact round trips of any name under IAM's tag rules, the
lease and who holds it, adoption limited to a run's key-creation window, settling from GitHub's clock only,
the 50-tag budget with the user's own tags, and reading version 1 records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecr_bootstrap import records
from ecr_bootstrap.places import Place

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
A, B, C = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB", "AKIACCCCCCCCCCCCCCCC"
RUN = records.RunId("9001", 1, "deploy", "octo-org/app", "https://github.com")
# GitHub allows environment names of up to 255 characters, any Unicode (no control characters).
# Every environment name the inputs accept (and so every one the record can hold).
ENV_NAME = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs", "Cc", "Cn", "Co", "Zl", "Zp"], exclude_characters="/\\:,'\""
    ),
    min_size=1,
    max_size=255,
).filter(lambda e: e == e.strip() and e.isprintable())


def key(key_id: str, created: datetime = NOW - timedelta(days=1)) -> records.AccessKey:
    return records.AccessKey(key_id, created)


def assert_valid(tags: list[dict[str, str]]) -> None:
    for tag in tags:
        assert records.valid_key(tag["Key"]), tag["Key"]
        assert records.valid_value(tag["Value"]), tag["Value"]


@pytest.mark.parametrize(
    "place",
    [
        Place("env", "Octo-Org/App", "prod (eu)"),
        Place("env", "octo-org/app", "stage a=b c#d *?!&()"),
        Place("env", "o" * 39 + "/" + "r" * 100, "環境" * 127 + "é"),
        Place("env", "octo-org/app", "🚀" * 255),
        Place("repo", "octo-org/app.js"),
        Place("org", "octo-org"),
    ],
    ids=["parentheses", "symbols", "long-cjk", "emoji", "repo", "org"],
)
def test_any_place_round_trips_exactly_in_valid_tags(place: Place) -> None:
    tags = records.holder_tags(place, (A, B), 1_790_000_000)
    assert_valid(tags)
    assert_valid(records.holder_tags(place, (A,), None, rewrite=True))
    assert records.parse(records.holder_tags(place, (A,), None, rewrite=True)).rewrite == {place.scope}
    rec = records.parse([*tags, {"Key": "team", "Value": "ci"}])
    assert rec.holders == {place.scope: (A, B)}
    assert rec.places[place.scope] == place
    assert rec.refs[place.scope] == 1_790_000_000
    assert rec.other_tags == 1 and rec.tags_in_use() == len(tags) + 1


@settings(max_examples=300, deadline=None)
@given(environment=ENV_NAME)
def test_every_environment_name_round_trips(environment: str) -> None:
    place = Place("env", "octo-org/app", environment)
    tags = records.holder_tags(place, (A,))
    assert_valid(tags)
    assert records.parse(tags).places[place.scope] == place
    assert records.dec(records.enc(environment)) == environment


def test_policy_names_iam_allows_but_tags_do_not() -> None:
    tag = records.policy_tag("ecr,push+pull=ok@team.x", "v7")
    assert_valid([tag])
    assert records.parse([tag]).policy_version == ("ecr,push+pull=ok@team.x", "v7")


def test_intent_names_its_run_and_a_later_attempt_takes_over() -> None:
    until = NOW + timedelta(minutes=15)
    tags = records.intent_tags(records.Intent("pending", NOW, until, (A,), "", RUN))
    assert_valid(tags)
    rec = records.parse(tags)
    assert rec.intent is not None and rec.intent.run == RUN
    assert RUN.link == "https://github.com/octo-org/app/actions/runs/9001/attempts/1"
    assert rec.lease(NOW + timedelta(minutes=1), records.RunId("9002", 1)) == rec.intent  # another run
    assert rec.lease(NOW + timedelta(minutes=1), records.RunId("9001", 2)) is None  # its next attempt
    assert rec.lease(until, records.RunId("9002", 1)) is None  # the lease ended
    rec.over.add(RUN.token)  # GitHub says that run completed
    assert rec.lease(NOW + timedelta(minutes=1), records.RunId("9002", 1)) is None
    done = records.parse(records.intent_tags(records.Intent("done", NOW, until, (A,), B, RUN)))
    assert done.lease(NOW, records.RunId("9002", 1)) is None


def test_pending_keys_of_an_earlier_attempt_are_not_in_flight() -> None:
    until = NOW + timedelta(minutes=15)
    rec = records.parse(
        [records.marker_tag(B, "pending", NOW, until, RUN), records.holder_tag("repo:o/x", [A, B])]
    )
    assert rec.in_flight(B, NOW, records.RunId("9002", 1))
    assert not rec.in_flight(B, NOW, records.RunId("9001", 2))
    with pytest.raises(records.LeaseHeld):
        records.plan_keys(
            [key(A), key(B, NOW)],
            rec,
            [Place("repo", "o/x")],
            NOW,
            records.Retiring(False, records.RunId("5")),
        )


def test_adoption_is_limited_to_the_creation_window_of_a_pending_intent() -> None:
    until = NOW + timedelta(minutes=15)
    pending = records.intent_tags(records.Intent("pending", NOW, until, (A,), "", RUN))
    died = records.parse(pending)  # the run died between CreateAccessKey and marking its key
    died.adopt([key(A), key(B, NOW + timedelta(seconds=3))])
    assert died.adopted == {B}
    late = records.parse(pending)  # a key made by hand minutes later is not the run's
    late.adopt([key(A), key(C, NOW + timedelta(minutes=5))])
    assert late.adopted == set()
    for state in ("made", "done"):  # once the run marked its key, nothing is adopted
        rec = records.parse(records.intent_tags(records.Intent(state, NOW, until, (A,), B, RUN)))
        rec.adopt([key(A), key(B, NOW), key(C, NOW + timedelta(seconds=1))])
        assert C not in rec.markers


def test_settling_uses_github_time_only_and_a_tie_is_unknown() -> None:
    ref = 1_790_000_000
    old, new = (A,), (B,)
    ids = (A, B)
    assert records.settle(ids, ref, ref - 5, ref - 5) == records.Settled(old)  # never reached
    assert records.settle(ids, ref, ref, ref) == records.Settled(old)  # same second as ref: before it
    assert records.settle(ids, ref, ref + 3, ref + 3) == records.Settled(new)  # written whole
    assert records.settle(ids, ref, ref + 3, ref - 1) == records.Settled(old, rewrite=True)  # id only
    assert records.settle(ids, ref, ref + 1, ref - 1) is None  # a tie: cannot tell
    assert records.settle(ids, ref, ref + 2, ref + 1) is None
    assert records.settle(ids, None, ref, ref) is None


def test_the_tag_budget_counts_the_users_own_tags() -> None:
    rec = records.parse([{"Key": f"t{i}", "Value": "x"} for i in range(46)])
    place = Place("repo", "o/x")
    records.plan_keys(
        [], rec, [place], NOW, records.Retiring(False)
    )  # 46 + marker, intent, policy, holder = 50
    with pytest.raises(records.KeyPlanError, match="50"):
        records.plan_keys(
            [], records.Record(other_tags=47), [place], NOW, records.Retiring(False)
        )  # a new user's 47 tags


def test_version_1_records_are_read_and_filed_under_the_real_scope() -> None:
    scope = Place("env", "o/x", "prod (eu)").scope
    v1 = [
        {"Key": records.marker_key(A), "Value": f"active {NOW:%Y-%m-%dT%H:%M:%SZ}"},
        {"Key": records.holder_tag_key(scope), "Value": f"{A} env:o/x:prod _eu_"},
        {"Key": records.INTENT_KEY, "Value": f"done {NOW:%Y-%m-%dT%H:%M:%SZ}"},
        {"Key": records.POLICY_KEY, "Value": "fcj-ecr-ci-cd-policy v3"},
    ]
    rec = records.parse(v1)
    assert rec.version == 1 and rec.policy_version == ("fcj-ecr-ci-cd-policy", "v3")
    rec.claim(scope)
    assert rec.holders == {scope: (A,)}
    assert rec.intent is not None and rec.intent.state == "done"
    assert (
        records.parse([{"Key": records.INTENT_KEY, "Value": "pending 2026-11-28T12:00:00Z"}]).lease(NOW)
        is not None
    )
