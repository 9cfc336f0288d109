"""The plan's invariants over generated pictures, with no server: whatever the record, the keys, the
drifted resources and GitHub's timestamps say, a plan never retires a held key, never leads to more than 2
keys, never deletes a key the action did not create unless asked, never writes a target while another
run's lease is live, and never changes the picture it was made from. The record mixes what the action
writes with what anyone allowed iam:TagUser could (issue 20): forged markers, holders of other places,
leases without end, and text meant to be a workflow command; the plan still writes only the places its
inputs name, deletes only keys whose marker is their CreateDate, and what it prints starts no command."""

from __future__ import annotations

import copy
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecr_bootstrap.apply import print_plan, say
from ecr_bootstrap.aws import ecr, iam
from ecr_bootstrap.errors import LeaseHeld, RotationError
from ecr_bootstrap.inputs import Settings, from_values
from ecr_bootstrap.keys.record import (
    LEASE_PREFIX,
    NEXT,
    PREFIX,
    AccessKey,
    Lease,
    Record,
    RunId,
    holder_tags,
    lease_tags,
    marker_tag,
)
from ecr_bootstrap.keys.rules import held_lease, in_flight, read_record
from ecr_bootstrap.look import Picture
from ecr_bootstrap.places import Place
from ecr_bootstrap.plan import NEW_KEY, Plan, plan
from ecr_bootstrap.policy import ecr_access_policy
from ecr_bootstrap.report import Report
from ecr_bootstrap.workflow import Workflow

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ACCOUNT, USER = "123456789012", "fcj-ecr-ci-cd-user"
IDS = ["AKIA" + c * 16 for c in "ABCD"]
REPOS = ["octo-org/app", "octo-org/web", "octo-org/api"]
PLACES = [Place("repo", r) for r in REPOS] + [Place("env", "octo-org/app", "prod (eu)")]
THIS_RUN = RunId("500", 2, "deploy", "octo-org/app")
RUNS = [None, RunId("400", 1, "deploy", "octo-org/app"), RunId("500", 1), THIS_RUN]
REPO_ARN = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/fcj-workshop-app"

seconds = st.integers(min_value=-4000, max_value=4000).map(lambda s: NOW + timedelta(seconds=s))
# Text a tag may hold (IAM's characters), with =XX escapes that decode to line breaks and `::` commands.
INJECTION = st.sampled_from(
    ["=0A::set-output name=x::y", "=0D=0A::stop-commands::t", "::warning::w", "##[x]"]
)
TAG_TEXT = st.lists(
    st.sampled_from(["2", " ", "pending", "active", "repo", "env", "org", "octo-org/evil", *IDS, "="])
    | INJECTION,
    max_size=8,
).map("".join)


@st.composite
def forged_tags(draw: st.DrawFn, keys: list[AccessKey]) -> list[dict[str, str]]:
    """What someone else wrote: markers with made-up times, well-formed holders of places no input names,
    leases that never end, and entries of any shape."""
    tags: list[dict[str, str]] = []
    for key in keys:
        if draw(st.booleans()):
            tags.append(marker_tag(key.key_id, draw(st.sampled_from(["active", "pending"])), draw(seconds)))
    evil = draw(
        st.sampled_from([Place("repo", "octo-org/evil"), Place("org", "octo-org"), Place("env", "o/x", "e")])
    )
    if draw(st.booleans()):
        tags += holder_tags(evil, draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=2)), None, True)
    if draw(st.booleans()):
        since = draw(seconds)
        never = Lease("pending", since, datetime(2099, 1, 1, tzinfo=UTC), tag=LEASE_PREFIX + "f0f0f0f0")
        tags += lease_tags(never)
    for n in range(draw(st.integers(min_value=0, max_value=3))):
        kind = draw(st.sampled_from(["holder:", "lease:", "key:", "policy", "key:AKIA"]))
        tags.append({"Key": f"{PREFIX}{kind}{n}{draw(TAG_TEXT)}"[:128], "Value": draw(TAG_TEXT)[:256]})
    return tags


@st.composite
def tags_of_a_record(draw: st.DrawFn, keys: list[AccessKey]) -> list[dict[str, str]]:
    """Markers, holder entries (one key or several: a run that stopped), and leases, in any state."""
    tags: list[dict[str, str]] = []
    for key in keys:
        if draw(st.booleans()):  # made by this action (else: by hand)
            state = draw(st.sampled_from(["active", "pending"]))
            until = draw(st.none() | seconds) if state == "pending" else None
            run = draw(st.sampled_from(RUNS)) if until else None
            tags.append(marker_tag(key.key_id, state, key.created.replace(microsecond=0), until, run))
    for place in draw(st.lists(st.sampled_from(PLACES), unique=True, max_size=3)):
        held = draw(st.lists(st.sampled_from([*IDS, NEXT]), min_size=1, max_size=3, unique=True))
        ref = draw(
            st.none() | st.integers(min_value=int(NOW.timestamp()) - 4000, max_value=int(NOW.timestamp()))
        )
        tags += holder_tags(place, held, ref, draw(st.booleans()))
    for n in range(draw(st.integers(min_value=0, max_value=2))):
        since = draw(seconds)
        intent = Lease(
            draw(st.sampled_from(["pending", "done"])),
            since,
            since + timedelta(seconds=draw(st.integers(min_value=1, max_value=900))),
            tuple(draw(st.lists(st.sampled_from(IDS), max_size=2, unique=True))),
            run=draw(st.sampled_from(RUNS)),
            ref=int(since.timestamp()),
            tag=f"{LEASE_PREFIX}{n:08x}",
        )
        tags += lease_tags(intent)
    return tags


@st.composite
def pictures(draw: st.DrawFn, targets: list[Place]) -> Picture:
    keys = [
        AccessKey(key_id, draw(seconds).replace(microsecond=0))
        for key_id in draw(st.lists(st.sampled_from(IDS), max_size=2, unique=True))
    ]
    tags = draw(tags_of_a_record(keys))
    committed: bool = draw(st.booleans())
    if keys and committed:  # as a committed run leaves it: the newest key marked, held by each target
        newest = max(keys, key=lambda k: k.created)
        tags = [marker_tag(newest.key_id, "active", newest.created)]
        tags += [t for p in targets for t in holder_tags(p, [newest.key_id])]
    forged = draw(forged_tags(keys))
    tags = list({t["Key"]: t for t in [*tags, *forged]}.values())  # a forged tag overwrites ours
    user = (
        iam.User(USER, f"arn:aws:iam::{ACCOUNT}:user/{USER}", tags)
        if keys or tags or draw(st.booleans())
        else None
    )
    record = read_record(tags, keys, [t.scope for t in targets], "https://github.com")
    policy_doc = ecr_access_policy(draw(st.sampled_from([REPO_ARN, "*"])))  # "*": drifted
    multi = [s for s, ids in record.holders.items() if len(ids) > 1]
    stamp = st.none() | st.integers(
        min_value=int(NOW.timestamp()) - 4000, max_value=int(NOW.timestamp()) + 10
    )
    return Picture(
        repository=draw(
            st.none()
            | st.builds(
                ecr.Repository,
                st.just("fcj-workshop-app"),
                st.just(REPO_ARN),
                st.just(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/fcj-workshop-app"),
                st.just(ACCOUNT),
                scan_on_push=st.booleans(),
                tag_mutability=st.sampled_from(["MUTABLE", "IMMUTABLE"]),
            )
        ),
        account=ACCOUNT,
        partition="aws",
        policy=draw(st.none() | st.just(iam.Policy(f"arn:aws:iam::{ACCOUNT}:policy/p", "v1", policy_doc))),
        user=user,
        attached=frozenset(draw(st.sets(st.just(f"arn:aws:iam::{ACCOUNT}:policy/fcj-ecr-ci-cd-policy")))),
        keys=tuple(keys) if user else (),
        record=record if user else Record(),
        stamps={s: draw(st.tuples(stamp, stamp) | st.just("HTTP 500")) for s in multi},
    )


def settings_for(repositories: list[str], retire_unmanaged: bool, rotate_after: str = "") -> Settings:
    values = {
        "rotate-after": rotate_after,
        "github-token": "t",
        "repositories": ",".join(repositories),
        "retire-unmanaged-keys": str(retire_unmanaged).lower(),
        "aws-region": "us-east-1",
    }
    env = {"GITHUB_RUN_ID": THIS_RUN.run_id, "GITHUB_RUN_ATTEMPT": "2", "GITHUB_REPOSITORY": "octo-org/app"}
    return from_values(values, env)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Settings, Picture]:
    repositories = draw(st.lists(st.sampled_from(REPOS), min_size=1, max_size=2, unique=True))
    chosen = settings_for(repositories, draw(st.booleans()), draw(st.sampled_from(["", "1h", "3650d"])))
    return chosen, draw(pictures([Place("repo", r) for r in repositories]))


@pytest.mark.slow(2)
@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_plan_keeps_its_promises(case: tuple[Settings, Picture]) -> None:
    chosen, picture = case
    before = snapshot(picture)
    try:
        made = plan(chosen, picture, NOW)
    except (LeaseHeld, RotationError):
        assert snapshot(picture) == before
        return
    assert snapshot(picture) == before, "planning changed the picture"
    assert_prints_no_command(made, picture)
    if made.keep is not None:
        check_kept(chosen, picture, made)
    else:
        check_keys(chosen, picture, made)


def check_kept(chosen: Settings, picture: Picture, made: Plan) -> None:
    """rotate-after keeps a key only when it is the user's current managed key, young enough, and every
    target is recorded as holding it alone; then nothing is written."""
    keep = made.keep
    assert keep is not None and made.rotate is None and chosen.rotate_after
    record = picture.record
    assert record.markers[keep.key.key_id].state == "active"
    assert (NOW - keep.key.created).total_seconds() < chosen.rotate_after
    assert all(record.holders.get(p.scope) == (keep.key.key_id,) for p in made.targets)
    assert not any(
        s.action in ("create", "write", "delete")
        for s in made.steps()
        if s.resource != "IAM policy"
        and s.resource not in ("ECR repository", "ECR lifecycle policy", "Policy attachment")
    )


def assert_prints_no_command(made: Plan, picture: Picture) -> None:
    """The plan as a dry run prints it, and its notes: each line the runner would read starts either no
    command or one the action writes itself."""
    out = io.StringIO()
    workflow = Workflow({"GITHUB_ACTIONS": "true"}, out)
    say(made.notes, workflow)
    print_plan(made, picture, workflow, Report())
    for line in out.getvalue().splitlines():
        if line.lstrip().startswith("::"):  # the runner reads the rest of a `::` line as that command's data
            assert line.startswith(("::warning", "::notice", "::error", "::group::", "::endgroup::")), line
        else:
            assert "##[" not in line, line  # the legacy form, found anywhere in a line


def snapshot(picture: Picture) -> tuple[object, ...]:
    return (copy.deepcopy(picture.record), picture.keys, dict(picture.stamps))


def check_keys(chosen: Settings, picture: Picture, made: Plan) -> None:
    rotate = made.rotate
    assert rotate is not None
    record = picture.record
    # Never write a target while another run may be writing this user's keys.
    assert held_lease(record, NOW, chosen.run) is None
    assert not any(in_flight(record, k.key_id, NOW, chosen.run) for k in picture.keys)
    # Never more than 2 keys: the one this run makes fits beside what stays.
    reclaimed = {rotate.keys.reclaim.key_id} if rotate.keys.reclaim else set()
    assert len(picture.keys) - len(reclaimed) + 1 <= 2
    written = {t.scope for t in rotate.targets}
    deleted = reclaimed | {f.name for f in rotate.fates if f.action == "delete"}
    created = {k.key_id: k.created.replace(microsecond=0) for k in picture.keys}
    for key_id in deleted:
        # Never a key the action did not create (its marker is its CreateDate), unless asked.
        marker = rotate.record.markers.get(key_id)
        assert (marker is not None and marker.since == created[key_id]) or chosen.retire_unmanaged_keys, (
            key_id
        )
        # Never a key that a place this run does not rewrite holds (as settled from GitHub's timestamps).
        kept_by = {s for s in rotate.record.holders_of(key_id) if s not in written}
        assert not kept_by, (key_id, kept_by)
    assert NEW_KEY not in deleted
    # Exactly the places the inputs name are written: never one known only from the record.
    assert {p.scope for p in made.targets} == written
