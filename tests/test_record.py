"""The key record, version 2, as pure functions: exact round trips of any name under IAM's tag rules, the
lease and who holds it, adoption limited to a run's key-creation window, settling from GitHub's clock only,
the 50-tag budget with the user's own tags, and reading version 1 records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecr_bootstrap.errors import KeyPlanError, LeaseHeld
from ecr_bootstrap.keys.reader import parse
from ecr_bootstrap.keys.record import (
    POLICY_KEY,
    V1_LEASE_KEY,
    AccessKey,
    Lease,
    Record,
    RunId,
    dec,
    enc,
    holder_tag_key,
    holder_tags,
    lease_tags,
    marker_key,
    marker_tag,
    policy_tag,
)
from ecr_bootstrap.keys.rules import Retiring, adopt, held_lease, in_flight, plan_keys, read_record
from ecr_bootstrap.keys.settle import Settled, settle
from ecr_bootstrap.places import Place
from tests.record_tags import holder_tag, valid_key, valid_value

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
A, B, C = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB", "AKIACCCCCCCCCCCCCCCC"
RUN = RunId("9001", 1, "deploy", "octo-org/app", "https://github.com")
# GitHub allows environment names of up to 255 characters, any Unicode (no control characters).
# Every environment name the inputs accept (and so every one the record can hold).
ENV_NAME = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs", "Cc", "Cn", "Co", "Zl", "Zp"], exclude_characters="/\\:,'\""
    ),
    min_size=1,
    max_size=255,
).filter(lambda e: e == e.strip() and e.isprintable())


def key(key_id: str, created: datetime = NOW - timedelta(days=1)) -> AccessKey:
    return AccessKey(key_id, created)


def assert_valid(tags: list[dict[str, str]]) -> None:
    for tag in tags:
        assert valid_key(tag["Key"]), tag["Key"]
        assert valid_value(tag["Value"]), tag["Value"]


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
    tags = holder_tags(place, (A, B), 1_790_000_000)
    assert_valid(tags)
    assert_valid(holder_tags(place, (A,), None, rewrite=True))
    assert parse(holder_tags(place, (A,), None, rewrite=True)).rewrite == {place.scope}
    rec = parse([*tags, {"Key": "team", "Value": "ci"}])
    assert rec.holders == {place.scope: (A, B)}
    assert rec.places[place.scope] == place
    assert rec.refs[place.scope] == 1_790_000_000
    assert rec.other_tags == 1 and rec.tags_in_use() == len(tags) + 1


@settings(max_examples=300, deadline=None)
@given(environment=ENV_NAME)
def test_every_environment_name_round_trips(environment: str) -> None:
    place = Place("env", "octo-org/app", environment)
    tags = holder_tags(place, (A,))
    assert_valid(tags)
    assert parse(tags).places[place.scope] == place
    assert dec(enc(environment)) == environment


def test_policy_names_iam_allows_but_tags_do_not() -> None:
    tag = policy_tag("ecr,push+pull=ok@team.x", "v7")
    assert_valid([tag])
    assert parse([tag]).policy_version == ("ecr,push+pull=ok@team.x", "v7")


def only_lease(rec: Record) -> Lease:
    (lease,) = rec.leases.values()
    return lease


def test_intent_names_its_run_and_a_later_attempt_takes_over() -> None:
    until = NOW + timedelta(minutes=15)
    tags = lease_tags(Lease("pending", NOW, until, (A,), "", RUN))
    assert_valid(tags)
    rec = parse(tags)
    assert only_lease(rec).run == RUN
    assert RUN.link == "https://github.com/octo-org/app/actions/runs/9001/attempts/1"
    assert held_lease(rec, NOW + timedelta(minutes=1), RunId("9002", 1)) == only_lease(rec)  # another run
    assert held_lease(rec, NOW + timedelta(minutes=1), RunId("9001", 2)) is None  # its next attempt
    assert held_lease(rec, until, RunId("9002", 1)) is None  # the lease ended
    rec = replace(rec, over=rec.over | {RUN.token})  # GitHub says that run completed
    assert held_lease(rec, NOW + timedelta(minutes=1), RunId("9002", 1)) is None
    done = parse(lease_tags(Lease("done", NOW, until, (A,), B, RUN)))
    assert held_lease(done, NOW, RunId("9002", 1)) is None


def test_pending_keys_of_an_earlier_attempt_are_not_in_flight() -> None:
    until = NOW + timedelta(minutes=15)
    rec = parse([marker_tag(B, "pending", NOW, until, RUN), holder_tag("repo:o/x", [A, B])])
    assert in_flight(rec, B, NOW, RunId("9002", 1))
    assert not in_flight(rec, B, NOW, RunId("9001", 2))
    with pytest.raises(LeaseHeld):
        plan_keys(
            [key(A), key(B, NOW)],
            rec,
            [Place("repo", "o/x")],
            NOW,
            Retiring(False, RunId("5")),
        )


def test_adoption_is_limited_to_the_creation_window_of_a_pending_intent() -> None:
    until = NOW + timedelta(minutes=15)
    pending = lease_tags(Lease("pending", NOW, until, (A,), "", RUN))
    died = parse(pending)  # the run died between CreateAccessKey and marking its key
    died = adopt(died, [key(A), key(B, NOW + timedelta(seconds=3))])
    assert died.adopted == {B}
    late = parse(pending)  # a key made by hand minutes later is not the run's
    late = adopt(late, [key(A), key(C, NOW + timedelta(minutes=5))])
    assert late.adopted == set()
    for state in ("made", "done"):  # once the run marked its key, nothing is adopted
        rec = parse(lease_tags(Lease(state, NOW, until, (A,), B, RUN)))
        rec = adopt(rec, [key(A), key(B, NOW), key(C, NOW + timedelta(seconds=1))])
        assert C not in rec.markers


def test_settling_uses_github_time_only_and_a_tie_is_unknown() -> None:
    ref = 1_790_000_000
    old, new = (A,), (B,)
    ids = (A, B)
    assert settle(ids, ref, ref - 5, ref - 5) == Settled(old)  # never reached
    assert settle(ids, ref, ref, ref) == Settled(old)  # same second as ref: before it
    assert settle(ids, ref, ref + 3, ref + 3) == Settled(new)  # written whole
    assert settle(ids, ref, ref + 3, ref - 1) == Settled(old, rewrite=True)  # id only
    assert settle(ids, ref, ref + 1, ref - 1) is None  # a tie: cannot tell
    assert settle(ids, ref, ref + 2, ref + 1) is None
    assert settle(ids, None, ref, ref) is None


def test_the_tag_budget_counts_the_users_own_tags() -> None:
    rec = parse([{"Key": f"t{i}", "Value": "x"} for i in range(46)])
    place = Place("repo", "o/x")
    plan_keys([], rec, [place], NOW, Retiring(False))  # 46 + marker, intent, policy, holder = 50
    with pytest.raises(KeyPlanError, match="50"):
        plan_keys([], Record(other_tags=47), [place], NOW, Retiring(False))  # a new user's 47 tags


def test_version_1_records_are_read_and_filed_under_the_real_scope() -> None:
    scope = Place("env", "o/x", "prod (eu)").scope
    v1 = [
        {"Key": marker_key(A), "Value": f"active {NOW:%Y-%m-%dT%H:%M:%SZ}"},
        {"Key": holder_tag_key(scope), "Value": f"{A} env:o/x:prod _eu_"},
        {"Key": V1_LEASE_KEY, "Value": f"done {NOW:%Y-%m-%dT%H:%M:%SZ}"},
        {"Key": POLICY_KEY, "Value": "fcj-ecr-ci-cd-policy v3"},
    ]
    assert parse(v1).policy_version == ("fcj-ecr-ci-cd-policy", "v3")
    rec = read_record(v1, [], [scope], "https://github.com")  # filed under the real scope
    assert rec.holders == {scope: (A,)}
    assert only_lease(rec).state == "done"
    assert (
        held_lease(parse([{"Key": V1_LEASE_KEY, "Value": "pending 2026-11-28T12:00:00Z"}]), NOW) is not None
    )
