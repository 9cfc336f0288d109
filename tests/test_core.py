"""The action end to end, run as the runner runs it, against moto and the GitHub stand-in on loopback."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.stand_ins.checks import (
    FAST,
    LEASE,
    MUTATING_AWS,
    POLICY,
    REPO,
    USER,
    assert_no_leak,
    assert_policy_least_privilege,
    assert_target_works,
    cancel,
    github_writes,
    secrets_of_run,
    setup,
    user_keys,
    user_keys_safe,
    widen_policy,
)
from tests.stand_ins.github_api import SECONDARY
from tests.stand_ins.harness import PLAIN, Stack


def created_of(stack: Stack, key_id: str) -> str:
    keys = stack.boto("iam").list_access_keys(UserName=USER)["AccessKeyMetadata"]
    created = next(k["CreateDate"] for k in keys if k["AccessKeyId"] == key_id)
    return str(created.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_fresh_run(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token}, command=PLAIN)  # a fresh interpreter, as the runner starts
    assert result.returncode == 0, result.stdout + result.stderr

    key_id = assert_target_works(stack, REPO)
    assert user_keys(stack) == [key_id]
    assert_policy_least_privilege(stack)
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fcj-workshop-app"
    assert result.outputs == {
        "repository-uri": uri,
        "registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "policy-arn": f"arn:aws:iam::123456789012:policy/{POLICY}",
        "user-arn": f"arn:aws:iam::123456789012:user/{USER}",
        "access-key-id": key_id,
        "key-created": created_of(stack, key_id),
    }
    repo = stack.boto("ecr").describe_repositories(repositoryNames=["fcj-workshop-app"])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    # No console access for a CI identity.
    with pytest.raises(Exception, match=r"NoSuchEntity|cannot be found"):
        stack.boto("iam").get_login_profile(UserName=USER)
    for word in ("created", uri, key_id, REPO):
        assert word in result.summary
    assert "::group::" in result.stdout
    assert_no_leak(result, token, *secrets_of_run(stack))
    # Each target's public key is read once; no GET /repos before writes.
    assert [f"{r.method} {r.path}" for r in stack.github.log] == [
        f"GET /repos/{REPO}/actions/secrets/public-key",
        f"PUT /repos/{REPO}/actions/secrets/ECR_REPOSITORY_URI",
        f"PUT /repos/{REPO}/actions/secrets/AWS_ACCESS_KEY_ID",
        f"PUT /repos/{REPO}/actions/secrets/AWS_SECRET_ACCESS_KEY",
    ]


def test_rerun_reuses_everything_and_rotates_the_key(stack: Stack) -> None:
    token = setup(stack)
    first = stack.run({"github-token": token})
    assert first.returncode == 0
    old_key = first.outputs["access-key-id"]
    stack.aws.log.clear()

    second = stack.run({"github-token": token})
    assert second.returncode == 0, second.stdout
    new_key = assert_target_works(stack, REPO)
    assert new_key != old_key
    assert second.outputs["access-key-id"] == new_key
    assert user_keys(stack) == [new_key]  # exactly one key left: the old one was retired
    for resource in ("ECR repository", "IAM policy", "IAM user", "Policy attachment"):
        row = next(line for line in second.summary.splitlines() if line.startswith(f"| {resource} "))
        assert "| reused |" in row, row
    assert f"| `{old_key}` | deleted |" in second.summary
    mutating = [op for op in stack.aws.operations() if op.split(":")[1].startswith(MUTATING_AWS)]
    assert not any(op in mutating for op in ("ecr:CreateRepository", "iam:CreatePolicy", "iam:CreateUser"))
    assert_no_leak(second, token, *secrets_of_run(stack))


def test_policy_drift_with_full_version_quota(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    iam = stack.boto("iam")
    arn = widen_policy(stack)
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5
    oldest = min(versions, key=lambda v: v["CreateDate"])["VersionId"]

    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert_policy_least_privilege(stack)
    after = {v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]}
    assert len(after) == 5 and oldest not in after
    row = next(line for line in result.summary.splitlines() if line.startswith("| IAM policy "))
    assert "| updated |" in row and oldest in row


@pytest.mark.parametrize("secret", ["ECR_REPOSITORY_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_failed_secret_write_rolls_back(stack: Stack, secret: str) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    # A 500 may or may not have been applied: the secret is read back, and GitHub's whole-second
    # timestamps only tell runs apart that are a second apart (as runs on github.com are).
    stack.advance(1.1)

    stack.github.fail("PUT", f"/actions/secrets/{secret}$", status=500, times=-1)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    errors = result.errors()
    assert errors and secret in errors[0] and "500" in errors[0]
    assert "Rolled back" in errors[0] or "restored" in errors[0]
    # The target still holds a working pair of the old key, and the new key is gone.
    assert assert_target_works(stack, REPO) == old_key
    assert user_keys(stack) == [old_key]
    assert_no_leak(result, token, *secrets_of_run(stack))

    stack.github.faults.clear()
    rerun = stack.run({"github-token": token})
    assert rerun.returncode == 0
    assert user_keys(stack) == [assert_target_works(stack, REPO)]


def test_failed_secret_write_on_first_run_leaves_nothing_behind(stack: Stack) -> None:
    token = setup(stack)
    stack.github.fail("PUT", "/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=422, times=-1)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    assert user_keys(stack) == []  # no key that nothing holds
    assert "AWS_ACCESS_KEY_ID" not in stack.github.secret_names(REPO)  # no id of a dead key


def test_secret_echoed_in_an_error_message_never_leaves_the_process(stack: Stack) -> None:
    """A server that quotes the value it refused: the message reaches the log and summary redacted."""
    token = setup(stack)
    fault = stack.github.fail(
        "PUT", "/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=422, times=-1, echo=True, message="bad"
    )
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    assert fault.echoed and fault.echoed[0] in result.masked
    assert "bad: ***" in result.errors()[0] and "bad: ***" in result.summary
    assert_no_leak(result, token, *fault.echoed)


@pytest.mark.parametrize("path", ["/public-key$", "/AWS_ACCESS_KEY_ID$", "/AWS_SECRET_ACCESS_KEY$"])
def test_reply_slower_than_the_client_timeout_is_retried(stack: Stack, path: str) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    # The reply comes 3 s after the client's timeout; every other request has those 3 s of margin too.
    stack.github.fail("GET" if "public" in path else "PUT", path, slow=5.0, times=1)
    result = stack.run({"github-token": token}, env={"ECR_BOOTSTRAP_GITHUB_TIMEOUT": "2"})
    assert result.returncode == 0, result.stdout
    assert user_keys(stack) == [assert_target_works(stack, REPO)]


def test_lost_reply_to_the_secret_write_is_detected(stack: Stack) -> None:
    """The write landed but the connection dropped: the target holds the new pair, so it is kept."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    stack.github.fail("PUT", "/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=0, times=-1, apply_first=True)
    result = stack.run({"github-token": token})
    new_key = assert_target_works(stack, REPO)
    assert user_keys(stack) == [new_key]
    assert result.returncode == 0, result.stdout


def test_token_without_secrets_permission_changes_nothing(stack: Stack) -> None:
    stack.github.add_repo(REPO)
    token = stack.github.add_token(secrets_permission=False, integration=True)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    error = result.errors()[0]
    assert "GITHUB_TOKEN" in error and "Secrets: Read and write" in error and REPO in error
    assert not [op for op in stack.aws.operations() if op.split(":")[1].startswith(MUTATING_AWS)]
    assert stack.boto("iam").list_users()["Users"] == []
    assert github_writes(stack) == []


def test_token_that_cannot_see_a_target(stack: Stack) -> None:
    stack.github.add_repo(REPO)
    stack.github.add_repo("octo-org/other")
    token = stack.github.add_token(repos={REPO})
    result = stack.run({"github-token": token, "repositories": f"{REPO}\nocto-org/other"})
    assert result.returncode == 1
    assert "octo-org/other" in result.errors()[0]
    assert stack.boto("iam").list_users()["Users"] == []


BAD_INPUTS = [
    ("github-token", ""),
    ("aws-region", "mars-north-1x"),
    ("ecr-repository", "Upper_Case"),
    ("ecr-repository", "a"),
    ("iam-policy", "bad policy!"),
    ("iam-user", "u" * 65),
    ("repositories", "not-a-repository"),
    ("repositories", "owner/name/extra"),
    ("retire-unmanaged-keys", "yes"),
    ("key-wait-seconds", "soon"),
]


@pytest.mark.parametrize(("name", "value"), BAD_INPUTS)
def test_bad_input_is_refused_before_any_request(stack: Stack, name: str, value: str) -> None:
    stack.github.add_repo(REPO)
    inputs = {"github-token": stack.github.add_token(), name: value}
    result = stack.run(inputs)
    assert result.returncode == 1
    errors = result.errors()
    assert len(errors) == 1 and f"'{name}'" in errors[0], result.stdout
    assert "Traceback" not in result.stderr
    assert stack.aws.log == [] and stack.github.log == []


def test_missing_region_names_the_input(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token}, env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert result.returncode == 1
    assert "'aws-region'" in result.errors()[0]


def test_two_targets_in_one_run(stack: Stack) -> None:
    repos = (REPO, "octo-org/web")
    token = setup(stack, *repos)
    result = stack.run({"github-token": token, "repositories": ", ".join(repos)})
    assert result.returncode == 0, result.stdout
    keys = {assert_target_works(stack, r) for r in repos}
    assert len(keys) == 1 and user_keys(stack) == list(keys)
    # One public-key read per target; three writes each.
    gets = [r.path for r in stack.github.log if r.method == "GET"]
    assert sorted(gets) == sorted(f"/repos/{r}/actions/secrets/public-key" for r in repos)
    assert len(github_writes(stack)) == 6

    rerun = stack.run({"github-token": token, "repositories": "\n".join(repos)})
    assert rerun.returncode == 0
    assert len({assert_target_works(stack, r) for r in repos}) == 1 and len(user_keys(stack)) == 1
    assert_no_leak(rerun, token, *secrets_of_run(stack, repos))


def test_separate_runs_for_two_repositories_share_the_user(stack: Stack) -> None:
    a, b = REPO, "octo-org/web"
    token = setup(stack, a, b)
    assert stack.run({"github-token": token}, repository=a).returncode == 0
    assert_target_works(stack, a)

    run_b = stack.run({"github-token": token}, repository=b)
    assert run_b.returncode == 0, run_b.stdout
    # The run for B did not leave A with a deleted key: A holds a working pair.
    assert_target_works(stack, a)
    assert_target_works(stack, b)
    assert len(user_keys(stack)) <= 2

    # And A can be rotated again afterwards, still without breaking B.
    run_a = stack.run({"github-token": token}, repository=a)
    assert run_a.returncode == 0, run_a.stdout
    assert_target_works(stack, a)
    assert_target_works(stack, b)
    assert len(user_keys(stack)) <= 2


def test_other_holder_the_token_cannot_write_keeps_its_key(stack: Stack) -> None:
    a, b = REPO, "octo-org/web"
    stack.github.add_repo(a)
    stack.github.add_repo(b)
    token_a = stack.github.add_token(repos={a})
    token_b = stack.github.add_token(repos={b})
    assert stack.run({"github-token": token_a}, repository=a).returncode == 0
    key_a = assert_target_works(stack, a)
    run_b = stack.run({"github-token": token_b}, repository=b)
    assert run_b.returncode == 0
    assert "::warning" in run_b.stdout
    assert assert_target_works(stack, a) == key_a  # A's key was neither replaced nor deleted
    key_b = assert_target_works(stack, b)
    assert sorted(user_keys(stack)) == sorted({key_a, key_b})
    # Now each key is held, by a different repository: no free slot for the next rotation. The run for a
    # is a_key's only holder, so it deletes that key first (break before make), says so, and writes a; b is
    # never touched and keeps its key.
    again = stack.run({"github-token": token_a}, repository=a)
    assert again.returncode == 0, again.stdout
    assert f"Deleting access key {key_a} (first, to make room" in again.stdout
    new_a = assert_target_works(stack, a)
    assert new_a not in (key_a, key_b) and assert_target_works(stack, b) == key_b
    assert sorted(user_keys(stack)) == sorted({new_a, key_b})
    # A run for a repository that holds neither key can free neither: it refuses, changes nothing, and
    # names each key with its holder and the two fixes.
    stack.github.add_repo("octo-org/api")
    token_c = stack.github.add_token(repos={"octo-org/api"})
    refused = stack.run({"github-token": token_c}, repository="octo-org/api")
    assert refused.returncode == 1
    error = refused.errors()[0]
    assert f"{new_a} (held by {a})" in error and f"{key_b} (held by {b})" in error
    assert "iam-user" in error and "repositories" in error
    assert sorted(user_keys(stack)) == sorted({new_a, key_b})


def test_secondary_rate_limit_is_retried_after_retry_after(stack: Stack) -> None:
    token = setup(stack)
    stack.github.fail(
        "PUT",
        "/actions/secrets/AWS_ACCESS_KEY_ID$",
        status=403,
        headers={"Retry-After": "1"},
        message=SECONDARY,
    )
    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert_target_works(stack, REPO)
    puts = [r for r in stack.github.log if r.path.endswith("AWS_ACCESS_KEY_ID")]
    assert [r.status for r in puts] == [403, 201]
    assert puts[1].at - puts[0].at >= 1.0


def test_writes_are_paced_under_the_secondary_limit(stack: Stack) -> None:
    """GitHub's limit scaled down (60 points per 4 s; GET 1, write 5): 5 targets need 80 points, so the
    client must wait for points to leave the window instead of colliding with the limit."""
    from tests.stand_ins.github_api import SecondaryLimit

    repos = [f"octo-org/r{i}" for i in range(5)]
    token = setup(stack, *repos)
    stack.github.limit = SecondaryLimit(points=60, window=4.0)
    started = time.monotonic()
    result = stack.run(
        {"github-token": token, "repositories": ",".join(repos)},
        env={"ECR_BOOTSTRAP_GITHUB_POINTS": "60/4"},
    )
    assert result.returncode == 0, result.stdout
    assert stack.github.limit.refusals == 0
    assert [r for r in stack.github.log if r.status == 403] == []
    assert time.monotonic() - started >= 4.0  # it did wait for the window
    for repo in repos:
        assert_target_works(stack, repo)


def test_secondary_limit_refusals_are_waited_out(stack: Stack) -> None:
    """Another client spent the budget: Retry-After is honoured and the run still succeeds."""
    from tests.stand_ins.github_api import SecondaryLimit

    token = setup(stack)
    limit = stack.github.limit = SecondaryLimit(points=60, window=3.0)

    def spent_by_another_client() -> None:  # right before the run's first write, however slow the run
        limit.spent["token " + token] = [(time.monotonic(), 58)]

    stack.github.on_first_write = spent_by_another_client
    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert stack.github.limit.refusals >= 1
    assert_target_works(stack, REPO)


def test_persistent_github_fault_fails_in_bounded_time(stack: Stack) -> None:
    token = setup(stack)
    stack.github.fail("GET", "/public-key$", status=502, times=-1)
    started = time.monotonic()
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    assert time.monotonic() - started < 60
    assert "502" in result.errors()[0]
    assert stack.boto("iam").list_users()["Users"] == []


def test_two_unmanaged_keys_stop_the_run_before_any_change(stack: Stack) -> None:
    token = setup(stack)
    iam = stack.boto("iam")
    iam.create_user(UserName=USER)
    keys = sorted(iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"] for _ in range(2))
    stack.advance(61)  # made a while ago (a key made in the last minute is named so instead)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    error = result.errors()[0]
    assert "2 access keys" in error and "retire-unmanaged-keys" in error
    assert all(f"{key} (not created by this action)" in error for key in keys), error
    assert sorted(user_keys(stack)) == keys
    assert stack.boto("ecr").describe_repositories()["repositories"] == []
    assert github_writes(stack) == []


def test_unmanaged_keys_are_retired_only_when_asked(stack: Stack) -> None:
    token = setup(stack)
    iam = stack.boto("iam")
    iam.create_user(UserName=USER)
    manual = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    kept = stack.run({"github-token": token})
    assert kept.returncode == 0 and manual in user_keys(stack)
    assert "::warning" in kept.stdout and manual in kept.stdout

    # Made moments ago, so perhaps another run's that IAM does not show as such yet: not even this input
    # takes it, and with both slots taken the run stops before any change, saying when to rerun.
    fresh = stack.run({"github-token": token, "retire-unmanaged-keys": "true"})
    assert fresh.returncode == 1 and manual in user_keys(stack), fresh.stdout
    assert f"{manual} (made moments ago" in fresh.errors()[0] and "rerun in a minute" in fresh.errors()[0]
    stack.advance(61)
    retired = stack.run({"github-token": token, "retire-unmanaged-keys": "true"})
    assert retired.returncode == 0, retired.stdout
    assert user_keys(stack) == [assert_target_works(stack, REPO)]


def test_a_key_made_moments_ago_is_kept_even_when_unmanaged_keys_may_go(stack: Stack) -> None:
    """A key no entry names and IAM made in the last minute may be another run's that IAM does not show as
    such yet: retire-unmanaged-keys does not take it, and the log says why it stayed."""
    token = setup(stack)
    iam = stack.boto("iam")
    iam.create_user(UserName=USER)
    manual = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    result = stack.run({"github-token": token, "retire-unmanaged-keys": "true"})
    assert result.returncode == 0, result.stdout
    assert sorted(user_keys(stack)) == sorted([manual, assert_target_works(stack, REPO)])
    assert f"Access key {manual} of {USER} was kept: made moments ago" in result.stdout


def test_orphan_from_a_crashed_run_is_reclaimed(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    held = assert_target_works(stack, REPO)
    iam = stack.boto("iam")
    made = iam.create_access_key(UserName=USER)["AccessKey"]
    orphan = made["AccessKeyId"]
    # What a run killed right after CreateAccessKey leaves, once adopted: a pending marker (its time the
    # key's CreateDate, as IAM answers it: whole seconds), no holder, no lease.
    iam.tag_user(
        UserName=USER,
        Tags=[
            {
                "Key": f"ecr-bootstrap:key:{orphan}",
                "Value": f"pending {made['CreateDate']:%Y-%m-%dT%H:%M:%SZ}",
            }
        ],
    )
    stack.advance(31 * 60)  # a pending key with no lease end counts as in flight for 30 minutes
    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    new_key = assert_target_works(stack, REPO)
    assert user_keys(stack) == [new_key]
    assert new_key not in (orphan, held)
    assert f"| `{orphan}` | deleted | orphan" in result.summary


def test_key_that_never_becomes_usable_is_rolled_back(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    stack.github.reset_log()
    stack.aws.fail(
        "ecr:GetAuthorizationToken",
        code="UnrecognizedClientException",
        status=400,
        times=-1,
        except_key="testing",
    )
    result = stack.run({"github-token": token, "key-wait-seconds": "2"})
    assert result.returncode == 1
    assert "Rolled back" in result.errors()[0]
    assert user_keys(stack) == [old_key]
    assert assert_target_works(stack, REPO) == old_key
    assert github_writes(stack) == []


def test_key_propagation_delay_is_waited_out(stack: Stack) -> None:
    """A rotation proves the new key with ECR before any target leaves its working key for it."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    stack.aws.fail(
        "ecr:GetAuthorizationToken",
        code="UnrecognizedClientException",
        status=400,
        times=2,
        except_key="testing",
    )
    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert "after 3 tries" in result.stdout
    assert assert_target_works(stack, REPO) != old_key
    assert "proven with ECR" in result.summary


def test_a_new_users_first_key_is_proven_beside_the_github_writes(stack: Stack) -> None:
    """Issue 22: a first key is proven with ECR too, but beside the GitHub writes, not before them. The
    proof's first request is held until GitHub receives the run's last write (the secret), then dropped
    (botocore retries it): the pair's writes cannot have waited for the proof. The summary says the key
    was proven."""
    token = setup(stack)
    held = stack.aws.fail("ecr:GetAuthorizationToken", status=-1, except_key="testing")
    stack.github.on_write_to["/AWS_SECRET_ACCESS_KEY$"] = held.release.set
    stack.aws.log.clear()
    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    key = assert_target_works(stack, REPO)
    proofs = [c for c in stack.aws.log if c.operation == "ecr:GetAuthorizationToken"]
    assert [(c.access_key, c.status) for c in proofs] == [(key, -1), (key, 200)]
    secret_put = next(r.start for r in stack.github.log if r.path.endswith("/AWS_SECRET_ACCESS_KEY"))
    assert secret_put < proofs[-1].start  # the proof was answered only after the pair's writes started
    assert "ECR gave the new key a registry token" in result.stdout
    row = next(line for line in result.summary.splitlines() if line.startswith("| Access key | "))
    assert "proven with ECR" in row and "not proven" not in row, row


def test_a_first_key_that_ecr_denies_fails_the_run_but_stays_written(stack: Stack) -> None:
    """A first key ECR keeps denying (a boundary or SCP): the run fails with the fix, but nothing is rolled
    back - the target held no pair before, and the key may work once the denial is lifted. A rerun then
    rotates as usual."""
    token = setup(stack)
    stack.aws.fail(
        "ecr:GetAuthorizationToken", code="AccessDeniedException", status=400, times=-1, except_key="testing"
    )
    result = stack.run({"github-token": token, "key-wait-seconds": "2"})
    assert result.returncode == 1, result.stdout
    error = result.errors()[0]
    assert "cannot reach ECR" in error and "permissions boundary" in error, error
    assert "Rolled back" not in error, error
    key = assert_target_works(stack, REPO)
    assert user_keys(stack) == [key]
    row = next(line for line in result.summary.splitlines() if line.startswith("| Access key | "))
    assert f"`{key}`" in row and "not proven" in row and "proven with ECR" not in row, row
    stack.aws.faults.clear()
    stack.advance(1.1)
    rerun = stack.run({"github-token": token})
    assert rerun.returncode == 0, rerun.stdout
    assert user_keys(stack) == [assert_target_works(stack, REPO)] != [key]


def test_a_cancel_while_a_first_keys_proof_runs_abandons_the_proof(stack: Stack) -> None:
    """Cancelled once the targets are written while the first key's proof is still out (its request held):
    the run does not wait for the proof's thread; the rollback path of the writes applies as before (the
    target keeps the new pair, the record says so) within the runner's deadline, and a rerun goes ahead."""
    token = setup(stack)
    held = stack.aws.fail("ecr:GetAuthorizationToken", status=-1, except_key="testing")
    running = stack.start({"github-token": token}, command=PLAIN)
    assert held.held.wait(60)
    secret = f"/repos/{REPO}/actions/secrets/AWS_SECRET_ACCESS_KEY"
    waited = 0.0
    # Until the stand-in has sent the last write's answer (it logs a request before it answers); the
    # proof stays held meanwhile.
    while waited < 60 and not any(
        r.method == "PUT" and r.path == secret and r.exchange and r.exchange.response_headers
        for r in stack.github.log
    ):
        time.sleep(0.05)
        waited += 0.05
    result, elapsed = cancel(running, signal.SIGINT)
    held.release.set()
    stack.aws.faults.clear()
    # the runner's SIGTERM deadline
    assert elapsed <= 7.5, f"the rollback took {elapsed:.1f} s:\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 1 and "title=ECR bootstrap cancelled" in result.errors()[0], result.stdout
    assert "Traceback" not in result.stderr
    key = assert_target_works(stack, REPO)
    assert user_keys(stack) == [key]
    again = stack.run({"github-token": token})
    assert again.returncode == 0, again.stdout
    assert user_keys(stack) == [assert_target_works(stack, REPO)] != [key]


def test_aws_access_denied_names_the_permission(stack: Stack) -> None:
    token = setup(stack)
    stack.aws.fail("iam:CreateUser", code="AccessDenied", status=403)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    assert "iam:CreateUser" in result.errors()[0]
    assert user_keys_safe(stack) == []


def test_local_help() -> None:
    import subprocess
    import sys

    from tests.stand_ins.harness import ROOT

    out = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--ecr-repository", "--iam-policy", "--iam-user", "--repositories", "--aws-region"):
        assert flag in out
    assert "--github-token" not in out


def test_failure_on_the_second_target_keeps_both_working(stack: Stack) -> None:
    a, b = REPO, "octo-org/web"
    token = setup(stack, a, b)
    assert stack.run({"github-token": token, "repositories": f"{a},{b}"}).returncode == 0
    old_key = assert_target_works(stack, a)
    stack.github.fail("PUT", f"/repos/{b}/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=422, times=-1)
    result = stack.run({"github-token": token, "repositories": f"{a},{b}"})
    assert result.returncode == 1
    assert "Partly done" in result.errors()[0]
    new_key = assert_target_works(stack, a)
    assert new_key != old_key
    assert assert_target_works(stack, b) == old_key  # restored id, untouched secret: the old pair
    assert sorted(user_keys(stack)) == sorted([old_key, new_key])  # nothing deleted that is held

    # Both keys are held, and IAM allows 2; every holder of both is among this run's targets, so it gets
    # through: the older key goes first (break before make), its holder is written first.
    stack.github.faults.clear()
    again = stack.run({"github-token": token, "repositories": f"{a},{b}"})
    assert again.returncode == 0, again.stdout
    assert old_key not in user_keys(stack)
    final = {assert_target_works(stack, a), assert_target_works(stack, b)}
    assert len(final) == 1 and user_keys(stack) == list(final)


def test_aws_throttling_is_retried_by_the_sdk(stack: Stack) -> None:
    token = setup(stack)
    stack.aws.fail("iam:CreateAccessKey", code="Throttling", status=400, times=2)
    stack.aws.fail("ecr:DescribeRepositories", code="ThrottlingException", status=400, times=1)
    result = stack.run({"github-token": token}, env={"AWS_SESSION_TOKEN": "session-token-of-the-runner"})
    assert result.returncode == 0, result.stdout
    assert stack.aws.operations().count("iam:CreateAccessKey") == 3
    assert_target_works(stack, REPO)


def test_persistent_aws_fault_fails_cleanly(stack: Stack) -> None:
    """No key: nothing written, and the intent is taken back, so the next run need not wait out a lease."""
    token = setup(stack)
    stack.aws.fail("iam:CreateAccessKey", code="ServiceFailure", status=500, times=-1)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    assert "Creating an access key" in result.errors()[0]
    assert user_keys(stack) == []
    assert github_writes(stack) == []
    stack.aws.faults.clear()
    assert stack.run({"github-token": token}).returncode == 0
    assert user_keys(stack) == [assert_target_works(stack, REPO)]


def test_persistent_tag_fault_on_a_rerun_keeps_both_keys_until_the_lease_ends(stack: Stack) -> None:
    """The lease is written (TagUser #1), then every TagUser fails: the commit, after the target holds the
    new key. Nothing can be recorded, so both keys stay; once the lease ends, a run settles it."""
    token = setup(stack)
    inputs = {"github-token": token, **FAST}
    assert stack.run(inputs).returncode == 0
    old_key = assert_target_works(stack, REPO)
    stack.aws.fail("iam:TagUser", code="ServiceFailure", status=500, times=-1, after=1)
    result = stack.run(inputs)
    assert result.returncode == 1 and "both keys are kept" in result.errors()[0], result.stdout
    new_key = assert_target_works(stack, REPO)
    assert new_key != old_key and sorted(user_keys(stack)) == sorted([old_key, new_key])
    stack.aws.faults.clear()
    stack.advance(LEASE + 5)
    assert stack.run(inputs).returncode == 0
    assert user_keys(stack) == [assert_target_works(stack, REPO)]


def test_request_counts(stack: Stack) -> None:
    """Issue 5's round-trip budget: a fresh run with one target makes at most 12 requests in all, and each
    further target costs one public-key read and three writes, nothing more. A rerun makes at most 14
    (issue 11: the key record, version 2, writes the lease and the targets' entries in one request, and
    the commit marks the lease done in its own). Issue 22: the fresh run's key is proven too (13)."""
    others = [f"octo-org/svc-{i}" for i in range(3)]
    token = setup(stack, REPO, *others)

    def counted(inputs: dict[str, str]) -> tuple[int, int]:
        stack.aws.log.clear()
        stack.github.reset_log()
        result = stack.run({"github-token": token, **inputs})
        assert result.returncode == 0, result.stdout
        return len(stack.aws.operations()), len(stack.github.log)

    aws, gh = counted({})
    assert (aws, gh) == (9, 4) and aws + gh <= 13
    proofs = [c.access_key for c in stack.aws.log if c.operation == "ecr:GetAuthorizationToken"]
    assert proofs == [assert_target_works(stack, REPO)]
    aws, gh = counted({})
    assert aws + gh <= 14 and gh == 4, stack.aws.operations()
    stack.advance(1.1)
    many_aws, many_gh = counted({"repositories": ",".join([REPO, *others])})
    assert many_aws == aws
    assert many_gh == gh + 4 * len(others)
    methods = [r.method for r in stack.github.log]
    assert methods.count("GET") == 1 + len(others) and methods.count("PUT") == 3 * (1 + len(others))
    for repo in [REPO, *others]:
        assert_target_works(stack, repo)


def test_policy_quota_on_attach_stops_the_run_without_a_key(stack: Stack) -> None:
    """AttachUserPolicy's LimitExceeded is the user's policy quota (IAM: 10 managed policies per user), not
    the 2-key limit that CreateAccessKey's LimitExceeded means: no retry, no key, the target keeps its
    pair."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    iam = stack.boto("iam")
    arn = next(p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=USER)["AttachedPolicies"])
    iam.detach_user_policy(UserName=USER, PolicyArn=arn)
    stack.aws.fail("iam:AttachUserPolicy", code="LimitExceeded", status=409, times=-1)
    stack.aws.log.clear()
    result = stack.run({"github-token": token})
    assert result.returncode == 1, result.stdout
    assert "LimitExceeded" in result.errors()[0] or "quota" in result.errors()[0].lower(), result.errors()
    assert "iam:CreateAccessKey" not in stack.aws.operations()
    assert user_keys(stack) == [old_key]
    assert assert_target_works(stack, REPO) == old_key


def test_a_key_that_works_but_cannot_reach_ecr_is_rolled_back(stack: Stack) -> None:
    """A policy on the user that allows STS but denies ECR (as a permissions boundary or an SCP would):
    the new key authenticates, but the proof asks ECR, so the run rolls back and the target keeps its
    working pair."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
            {"Effect": "Deny", "Action": "ecr:*", "Resource": "*"},
        ],
    }
    stack.boto("iam").put_user_policy(UserName=USER, PolicyName="no-ecr", PolicyDocument=json.dumps(deny))
    stack.github.reset_log()
    result = stack.run({"github-token": token, "key-wait-seconds": "2"})
    assert result.returncode == 1, result.stdout
    error = result.errors()[0]
    assert "works" in error and "cannot reach ECR" in error and "Rolled back" in error, error
    assert "permissions boundary" in error
    assert user_keys(stack) == [old_key]
    assert assert_target_works(stack, REPO) == old_key
    assert github_writes(stack) == []


def test_iam_lists_that_stop_short_are_read_to_the_end(stack: Stack) -> None:
    """IAM may answer fewer items than MaxItems with IsTruncated set: every list is read on from its
    Marker, so no key, tag, attachment or policy version is missed (issue 22: a short ListUserTags would
    lose record entries, which feed the retirement rule)."""
    other = "octo-org/web"
    token = setup(stack, REPO, other)
    both = {"github-token": token, "repositories": f"{REPO},{other}"}
    assert stack.run(both).returncode == 0
    widen_policy(stack, versions=2)  # drifted: the rerun lists the policy's versions
    stack.aws.short_pages |= {
        "iam:ListAccessKeys",
        "iam:ListUserTags",
        "iam:ListAttachedUserPolicies",
        "iam:ListPolicyVersions",
    }
    stack.aws.log.clear()
    result = stack.run(both)
    assert result.returncode == 0, result.stdout
    listed = stack.aws.operations()
    assert listed.count("iam:ListPolicyVersions") == 3  # three versions, one a page
    assert listed.count("iam:ListAttachedUserPolicies") == 1  # one attachment: one page
    key = assert_target_works(stack, REPO)
    assert assert_target_works(stack, other) == key and user_keys(stack) == [key]
    assert_policy_least_privilege(stack)
