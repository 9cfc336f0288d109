"""Issue 20: the key record is input, not authority. Each attack is one TagUser call by someone allowed to
tag the CI user (a tagging role, an automation with broad IAM tag rights), made between two ordinary runs;
the run after it must write only the places its inputs name, delete no key the action did not make, keep a
key that some place still holds, ignore a lease no run of the action could have written, and print no
workflow command that the tags carry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from ecr_bootstrap.keys.record import (
    LEASE_PREFIX,
    POLICY_KEY,
    Lease,
    enc,
    holder_tag_key,
    holder_tags,
    lease_tags,
    marker_key,
)
from ecr_bootstrap.places import Place
from tests.stand_ins.checks import (
    OTHER,
    REPO,
    USER,
    assert_target_works,
    held_pair,
    key_works,
    setup,
    user_keys,
)
from tests.stand_ins.harness import RunResult, Stack

EVIL = "octo-org/evil"
# The commands the action itself writes; anything else at the start of a line was injected.
OWN_COMMANDS = re.compile(r"^::(add-mask|group|endgroup|error|warning|notice)( [^:]*)?::")


def tag(stack: Stack, tags: list[dict[str, str]]) -> None:
    stack.boto("iam").tag_user(UserName=USER, Tags=tags)


def tag_value(stack: Stack, prefix: str) -> list[dict[str, str]]:
    return [t for t in stack.boto("iam").list_user_tags(UserName=USER)["Tags"] if t["Key"].startswith(prefix)]


def requests_to(stack: Stack, needle: str) -> list[str]:
    return [f"{r.method} {r.path}" for r in stack.github.log if needle.lower() in r.path.lower()]


def assert_no_injected_command(result: RunResult) -> None:
    for line in (result.stdout + result.stderr).splitlines():
        stripped = line.lstrip()
        if stripped.startswith("::"):
            assert OWN_COMMANDS.match(stripped), f"an injected workflow command: {line!r}"
        assert "##[" not in line, line
        assert "set-output" not in line or not stripped.startswith("::"), line


@pytest.mark.parametrize("kind", ["repo", "env", "org"])
def test_a_forged_holder_is_never_written_nor_read(stack: Stack, kind: str) -> None:
    """A holder entry naming a place of the attacker's choosing (one the token can write), with the
    rewrite flag: the next run for octo-org/app never sends a request to it, and says it was kept."""
    token = setup(stack, REPO)
    stack.github.add_repo(EVIL, environments=("prod",))
    stack.github.add_org("octo-org")
    assert stack.run({"github-token": token}).returncode == 0
    held = assert_target_works(stack, REPO)
    place = {
        "repo": Place("repo", EVIL),
        "env": Place("env", EVIL, "prod"),
        "org": Place("org", "octo-org"),
    }[kind]
    tag(stack, holder_tags(place, (held,), None, rewrite=True))
    stack.github.reset_log()

    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert requests_to(stack, "/evil") == [] and requests_to(stack, "/orgs/") == []
    assert stack.github.secret_names(EVIL) == set()
    assert not stack.github.box(org="octo-org").secrets
    assert "Key kept for another holder" in result.stdout and place.label in result.stdout
    # The key that place is said to hold is kept, never retired while the record says it is held.
    assert held in user_keys(stack)
    assert assert_target_works(stack, REPO) != held


@pytest.mark.parametrize("state", ["active", "pending"])
def test_a_forged_marker_never_gets_a_hand_made_key_deleted(stack: Stack, state: str) -> None:
    """A key made by hand, then marked as the action's with a made-up creation time: it is not the
    action's (the time is not its CreateDate), so with retire-unmanaged-keys false it survives, and so
    does the key the target holds: the run refuses and says which key is not the action's."""
    token = setup(stack, REPO)
    assert stack.run({"github-token": token}).returncode == 0
    held = assert_target_works(stack, REPO)
    by_hand = stack.boto("iam").create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    tag(stack, [{"Key": marker_key(by_hand), "Value": f"{state} 2020-01-01T00:00:00Z"}])
    stack.advance(61)  # made a while ago (a key made in the last minute is named so instead)

    result = stack.run({"github-token": token, "retire-unmanaged-keys": "false"})
    assert sorted(user_keys(stack)) == sorted([by_hand, held])
    assert f"Key record entry {marker_key(by_hand)} ignored" in result.stdout
    assert result.returncode == 1 and f"{by_hand} (not created by this action)" in result.errors()[0]
    assert assert_target_works(stack, REPO) == held


def test_a_rewritten_holder_entry_never_gets_the_key_in_use_deleted(stack: Stack) -> None:
    """Two repositories run on their own with one user: each holds its own key. The entry of the other one
    is rewritten to name this one's key, so that its real key looks free. The run for octo-org/app does
    not delete it: it did not replace it. With no free slot it refuses and names the holders."""
    token = setup(stack, REPO, OTHER)
    assert stack.run({"github-token": token}).returncode == 0
    app_key = assert_target_works(stack, REPO)
    assert stack.run({"github-token": token}, repository=OTHER).returncode == 0
    web_key = assert_target_works(stack, OTHER)
    assert web_key != app_key and sorted(user_keys(stack)) == sorted([app_key, web_key])
    tag(stack, holder_tags(Place("repo", OTHER), (app_key,)))

    result = stack.run({"github-token": token})
    assert web_key in user_keys(stack)
    assert key_works(stack, *held_pair(stack, OTHER))
    assert result.returncode == 1, result.stdout
    error = result.errors()[0]
    assert OTHER in error and "iam-user" in error and "repositories" in error
    assert assert_target_works(stack, REPO) == app_key


def test_a_lease_that_never_ends_is_believed_over(stack: Stack) -> None:
    token = setup(stack, REPO)
    assert stack.run({"github-token": token}).returncode == 0
    now = datetime.now(UTC).replace(microsecond=0)
    forever = Lease(
        "pending",
        now - timedelta(seconds=10),
        datetime(2099, 1, 1, tzinfo=UTC),
        tag=LEASE_PREFIX + "0badf00d",
    )
    tag(stack, lease_tags(forever))

    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert "ecr-bootstrap:lease:0badf00d" in result.stdout and "believed over" in result.stdout
    assert assert_target_works(stack, REPO)


INJECTED = (
    "x\n::set-output name=role-arn::arn:aws:iam::666:role/evil\n::stop-commands::tok\r"
    "# Heading [link](https://evil.example) `|`"
)


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_no_tag_field_reaches_stdout_or_the_summary_as_a_command(stack: Stack, dry_run: bool) -> None:
    """Line breaks, `::` and Markdown in every decoded field of every entry kind: no line of stdout starts
    a workflow command the action did not write, and the summary keeps one table."""
    token = setup(stack, REPO)
    assert stack.run({"github-token": token}).returncode == 0
    held = assert_target_works(stack, REPO)
    escaped = enc(INJECTED)
    stamp = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    forged = [
        {"Key": holder_tag_key("repo:" + REPO), "Value": f"2 {held} 1 repo {escaped} {escaped}"},
        {
            "Key": LEASE_PREFIX + "1badf00d",
            "Value": f"2 pending {stamp} {stamp}   42 1 {escaped} {escaped} {escaped} 7",
        },
        {"Key": POLICY_KEY, "Value": f"2 {escaped} v1"},
    ]
    tag(stack, [{"Key": t["Key"], "Value": t["Value"][:256]} for t in forged])
    forged_holder = holder_tags(Place("env", REPO, INJECTED.replace("\n", " ")[:200]), (held,))
    tag(stack, forged_holder)

    result = stack.run({"github-token": token, "dry-run": str(dry_run).lower()})
    assert_no_injected_command(result)
    for line in result.summary.splitlines():
        assert not line.startswith(("::", "# Heading")), line
    assert "](https://evil.example)" not in result.summary
