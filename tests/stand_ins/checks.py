"""What a user would check after a run, shared by the test modules: the key in the secrets authenticates as
the CI user, the policy grants exactly what it should, nothing secret leaked, and the invariant after a
failure or a repair."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from ecr_bootstrap.policy import REPOSITORY_ACTIONS, TOKEN_ACTION
from tests.stand_ins.aws import moto_iam
from tests.stand_ins.harness import Running, RunResult, Stack

USER = "fcj-ecr-ci-cd-user"

POLICY = "fcj-ecr-ci-cd-policy"

REPO = "octo-org/app"

MUTATING_AWS = (
    "Create",
    "Delete",
    "Put",
    "Attach",
    "Detach",
    "Tag",
    "Untag",
    "Update",
    "Set",
)


def setup(stack: Stack, *repos: str) -> str:
    for repo in repos or (REPO,):
        stack.github.add_repo(repo)
    return stack.github.add_token()


def held_pair(stack: Stack, repo: str) -> tuple[str, str]:
    return (
        stack.github.decrypt(repo, "AWS_ACCESS_KEY_ID"),
        stack.github.decrypt(repo, "AWS_SECRET_ACCESS_KEY"),
    )


def live_secret(key_id: str, user: str = USER) -> str | None:
    """The secret IAM holds for a key. moto's STS does not check signatures, so a mismatched pair would
    authenticate there: the tests compare the secret with the one in moto's (in-process) IAM as well."""
    for key in moto_iam().get_user(user).access_keys:
        if key.access_key_id == key_id:
            return str(key.secret_access_key)
    return None


def pair_works(stack: Stack, key_id: str, secret: str, user: str = USER) -> bool:
    stack.aws.propagated()  # the final state is asked about, not how soon it was visible
    if live_secret(key_id, user) != secret:
        return False
    arn = stack.boto("sts", aws_access_key_id=key_id, aws_secret_access_key=secret).get_caller_identity()[
        "Arn"
    ]
    return bool(arn.endswith(f":user/{user}"))


def assert_target_works(stack: Stack, repo: str, user: str = USER) -> str:
    """What a user would check: the pair in the secrets is a live key's and authenticates as the CI user."""
    key_id, secret = held_pair(stack, repo)
    assert pair_works(stack, key_id, secret, user), f"{repo} holds a pair that does not work"
    uri = stack.github.decrypt(repo, "ECR_REPOSITORY_URI")
    repo_uri = stack.boto("ecr").describe_repositories()["repositories"][0]["repositoryUri"]
    assert uri == repo_uri
    return key_id


def user_keys(stack: Stack, user: str = USER) -> list[str]:
    return [k["AccessKeyId"] for k in stack.boto("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]]


def assert_policy_least_privilege(stack: Stack, repository: str = "fcj-workshop-app") -> None:
    iam = stack.boto("iam")
    arn = f"arn:aws:iam::123456789012:policy/{POLICY}"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    grants: dict[str, set[str]] = {}
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for action in actions:
            grants.setdefault(action, set()).update(resources)
    repo_arn = f"arn:aws:ecr:us-east-1:123456789012:repository/{repository}"
    expected = {a: {repo_arn} for a in REPOSITORY_ACTIONS}
    expected[TOKEN_ACTION] = {"*"}
    assert grants == expected
    attached = iam.list_attached_user_policies(UserName=USER)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [arn]


def assert_no_leak(result: RunResult, *values: str) -> None:
    """No secret value outside ::add-mask::, in any output the runner keeps."""
    for value in values:
        assert value
        for line in result.stdout.splitlines():
            if value in line:
                assert line == f"::add-mask::{value}", line
        assert value not in result.stderr
        assert value not in result.summary
        assert all(value not in v for v in result.outputs.values())


def secrets_of_run(stack: Stack, repos: tuple[str, ...] = (REPO,)) -> list[str]:
    return [
        stack.github.decrypt(r, "AWS_SECRET_ACCESS_KEY")
        for r in repos
        if "AWS_SECRET_ACCESS_KEY" in stack.github.secret_names(r)
    ]


def github_writes(stack: Stack) -> list[str]:
    return [f"{r.method} {r.path}" for r in stack.github.log if r.method != "GET"]


def widen_policy(stack: Stack, action: str = "ecr:*", versions: int = 4) -> str:
    """Someone widened the policy by hand, `versions` times (4 after a run: IAM's 5-version quota full)."""
    arn = f"arn:aws:iam::123456789012:policy/{POLICY}"
    broad = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
    )
    for _ in range(versions):
        stack.boto("iam").create_policy_version(PolicyArn=arn, PolicyDocument=broad, SetAsDefault=True)
    return arn


def user_keys_safe(stack: Stack) -> list[Any]:
    try:
        return user_keys(stack)
    except Exception:  # noqa: BLE001 - no user at all
        return []


# -- the invariant after failures and repairs ----------------------------------------------------------

# A short key wait (default 120 s): a failed proof gives up within seconds. The lease (default 900 s) is
# long enough that no run on a slow, loaded machine outlives its own lease; a test that needs it over moves
# the stand-ins' clocks past it (stack.advance(LEASE + 5)) instead of sleeping.
FAST = {"key-wait-seconds": "2", "lease-seconds": "300"}

LEASE = 300.0

OTHER = "octo-org/web"

# (IAM read lag in seconds, GitHub's clock skew in seconds): the matrices run plain, and with IAM's reads 5 s
# behind its writes while GitHub's clock is 3 s behind or ahead of the runner's and IAM's.
CONDITIONS = {"plain": (0.0, 0.0), "lag-github-behind": (5.0, -3.0), "github-ahead": (0.0, 3.0)}


# IAM's propagation in the matrices (stand_ins/propagation.py): what a run creates is visible to IAM, and a
# new key or attachment in effect for ECR, 2 s later ("a few seconds"; up to about 15 on AWS, issue 22), so
# every case meets the action's waits for it. A run's key wait must reach past the proof's third try (2.5 s).
PROPAGATION = 2.0


def apply_condition(stack: Stack, condition: str) -> None:
    stack.aws.lag, stack.github.skew = CONDITIONS[condition]
    stack.aws.propagation = PROPAGATION


def final_check(stack: Stack, inputs: dict[str, str], targets: tuple[str, ...] = (REPO,)) -> None:
    """The invariant, once IAM has caught up: with lag, one more run after it sees every write."""
    if stack.aws.lag:
        stack.advance(stack.aws.lag + 0.5)
        again = stack.run(inputs)
        assert again.returncode == 0, again.stdout
    assert_invariant(stack, targets)


def key_works(stack: Stack, key_id: str, secret: str) -> bool:
    try:
        return pair_works(stack, key_id, secret)
    except Exception:  # noqa: BLE001 - a deleted key
        return False


def assert_invariant(stack: Stack, targets: tuple[str, ...]) -> None:
    """After a successful run: every target holds a working pair of one key; no key that no target holds;
    at most two keys; the policy is the least-privilege one."""
    held = set()
    for repo in targets:
        key_id, secret = held_pair(stack, repo)
        assert key_works(stack, key_id, secret), f"{repo} holds a pair that does not work"
        held.add(key_id)
    keys = user_keys(stack)
    assert set(keys) == held, (keys, held)
    assert len(keys) <= 2
    assert_policy_least_privilege(stack)


def assert_safe_after_failure(stack: Stack, result: RunResult, before: dict[str, str]) -> None:
    """Right after a failed or killed run: at most two keys; no target's working pair was lost, except
    the unavoidable window of a kill between its two key writes; nothing secret leaked."""
    assert len(user_keys_safe(stack)) <= 2
    assert "Traceback" not in result.stderr
    assert_no_leak(result, *result.masked)


def pending_lease_left(stack: Stack) -> bool:
    """A lease (version 2: "2 pending ..."; version 1: "pending ...") or a pending key marker is left."""
    try:
        tags = stack.boto("iam").list_user_tags(UserName=USER)["Tags"]
    except Exception:  # noqa: BLE001 - no user yet
        return False
    return any(t["Value"].startswith(("pending", "2 pending", "2 made")) for t in tags)


def caught_up(stack: Stack, failed: bool = True) -> None:
    """IAM shows everything a run made, as the next scheduled run would find it: what it created has
    propagated, and IAM's lagging reads are past its last write (the next run's reads of the user's tags and
    keys, each lagging on its own, could pair a record from before the run's lease with a key list from
    after its CreateAccessKey; the run then reads IAM again, a case of its own in test_lease.py, as a rerun
    seconds after another on a lagging IAM is). A lease a failed run left is over."""
    stack.aws.propagated()
    if failed and pending_lease_left(stack):
        stack.advance(LEASE + 5)
    elif stack.aws.lag:
        stack.advance(stack.aws.lag + 0.5)


def working_targets(stack: Stack) -> set[str]:
    out = set()
    for repo in (REPO,):
        names = stack.github.secret_names(repo)
        if {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names and key_works(
            stack, *held_pair(stack, repo)
        ):
            out.add(repo)
    return out


def cancel(running: Running, sig: int = signal.SIGINT) -> tuple[RunResult, float]:
    """Send the runner's first signal; returns the result and the seconds until the process ended."""
    start = time.monotonic()
    running.signal(sig)
    result = running.wait(30)
    return result, time.monotonic() - start
