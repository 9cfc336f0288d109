"""IAM as it answers where moto is kinder (issue 22): ConcurrentModification (HTTP 409) on the commit's tag
requests, NoSuchEntity for what this run created moments before, and propagation: a new user, policy,
attachment or key visible only seconds later. Faults are arranged in the stand-in (`times=`), never by
timing; propagation is the stand-in's (`stack.aws.propagation`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import ecr_bootstrap.aws as aws_module
from ecr_bootstrap.aws import AwsClients, iam
from ecr_bootstrap.errors import AwsError
from tests.stand_ins.checks import (
    FAST,
    LEASE,
    POLICY,
    REPO,
    USER,
    assert_invariant,
    assert_safe_after_failure,
    assert_target_works,
    pending_lease_left,
    setup,
    user_keys,
    working_targets,
)
from tests.stand_ins.harness import Stack

COMMIT = "active"  # only the commit's TagUser writes an "active" key marker


def rerun_inputs(stack: Stack) -> tuple[dict[str, str], str]:
    """One successful run made; the next run rotates the key (a lease TagUser, then the commit's)."""
    inputs = {"github-token": setup(stack), **FAST}
    assert stack.run(inputs).returncode == 0
    stack.advance(1.1)
    return inputs, assert_target_works(stack, REPO)


def count(stack: Stack, operation: str) -> int:
    return stack.aws.operations().count(operation)


def test_one_concurrent_modification_on_the_commit_is_retried(stack: Stack) -> None:
    inputs, old = rerun_inputs(stack)
    fault = stack.aws.concurrent_modification("iam:TagUser", contains=COMMIT)
    stack.aws.log.clear()
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    assert fault.hits == 1 and count(stack, "iam:TagUser") == 3  # the lease, the commit twice
    new = assert_target_works(stack, REPO)
    assert new != old and not pending_lease_left(stack)
    assert_invariant(stack, (REPO,))


def test_persistent_concurrent_modification_fails_cleanly(stack: Stack) -> None:
    inputs, _old = rerun_inputs(stack)
    fault = stack.aws.concurrent_modification("iam:TagUser", contains=COMMIT, times=-1)
    result = stack.run(inputs)
    assert result.returncode == 1, result.stdout
    assert 1 < fault.hits <= 5  # a few tries, bounded
    assert "ConcurrentModification" in result.errors()[0]
    assert working_targets(stack) == {REPO}
    assert_safe_after_failure(stack, result, {})
    stack.aws.faults.clear()
    stack.advance(LEASE + 5)
    assert stack.run(inputs).returncode == 0
    assert_invariant(stack, (REPO,))


def test_one_concurrent_modification_on_untag_user_is_retried(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """UntagUser goes through the same wrapper as TagUser (the commit's second request)."""
    for name, value in stack.env(tmp_path).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    stack.boto("iam").create_user(UserName=USER, Tags=[{"Key": "ecr-bootstrap:x", "Value": "1"}])
    fault = stack.aws.concurrent_modification("iam:UntagUser")
    iam.untag_user(AwsClients("us-east-1"), USER, ["ecr-bootstrap:x"])
    assert fault.hits == 1 and count(stack, "iam:UntagUser") == 2
    assert stack.boto("iam").list_user_tags(UserName=USER)["Tags"] == []


@pytest.mark.parametrize("refused", ["iam:AttachUserPolicy", "iam:CreateAccessKey"])
def test_a_new_user_not_yet_seen_is_waited_for(stack: Stack, refused: str) -> None:
    fault = stack.aws.not_yet_seen("iam:CreateUser", refused, times=2)
    result = stack.run({"github-token": setup(stack), **FAST})
    assert result.returncode == 0, result.stdout
    assert fault.hits == 2 and count(stack, refused) == 3
    assert_invariant(stack, (REPO,))


def test_a_new_policy_not_yet_seen_is_waited_for(stack: Stack) -> None:
    """The user exists (an earlier run); the policy was deleted, so this run creates and attaches it."""
    inputs, _old = rerun_inputs(stack)
    client = stack.boto("iam")
    arn = f"arn:aws:iam::123456789012:policy/{POLICY}"
    client.detach_user_policy(UserName=USER, PolicyArn=arn)
    client.delete_policy(PolicyArn=arn)
    fault = stack.aws.not_yet_seen("iam:CreatePolicy", "iam:AttachUserPolicy", times=2)
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    assert fault.hits == 2
    assert_invariant(stack, (REPO,))


def test_a_user_not_seen_for_long_fails_clearly(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The wait for what this run created is bounded by time (30 s; 2 s here): then it fails, saying what
    to do."""
    for name, value in stack.env(tmp_path).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws_module, "UNSEEN_SECONDS", 2.0)
    stack.boto("iam").create_user(UserName=USER)
    fault = stack.aws.fail("iam:CreateAccessKey", code="NoSuchEntity", status=404, times=-1)
    clients = AwsClients("us-east-1")
    clients.created.add(USER)
    with pytest.raises(AwsError) as failed:
        iam.create_key(clients, USER)
    assert 1 < fault.hits <= 5
    assert failed.value.code == "NoSuchEntity" and "rerun" in failed.value.fix
    assert user_keys(stack) == []


def test_no_such_entity_is_not_retried_for_what_this_run_did_not_create(stack: Stack) -> None:
    """A user deleted by someone else (here: IAM says so on a rerun) fails at once, as before."""
    inputs, old = rerun_inputs(stack)
    fault = stack.aws.fail("iam:CreateAccessKey", code="NoSuchEntity", status=404)
    stack.aws.log.clear()
    result = stack.run(inputs)
    assert result.returncode == 1 and "NoSuchEntity" in result.errors()[0], result.stdout
    assert fault.hits == 1 and count(stack, "iam:CreateAccessKey") == 1
    assert working_targets(stack) == {REPO} and user_keys(stack) == [old]


def via_proxy(stack: Stack) -> Any:
    """An IAM client through the stand-in's proxy (stack.boto talks to moto itself)."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "iam",
        region_name="us-east-1",
        endpoint_url=stack.aws.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_tag_keys_are_case_blind(stack: Stack) -> None:
    client = via_proxy(stack)
    client.create_user(UserName=USER, Tags=[{"Key": "Department", "Value": "finance"}])
    client.tag_user(UserName=USER, Tags=[{"Key": "department", "Value": "hr"}])
    assert client.list_user_tags(UserName=USER)["Tags"] == [{"Key": "department", "Value": "hr"}]
    client.untag_user(UserName=USER, TagKeys=["DEPARTMENT"])
    assert client.list_user_tags(UserName=USER)["Tags"] == []


def test_a_record_key_in_another_case_is_replaced_by_the_record(stack: Stack) -> None:
    """Someone re-typed a record entry's key in capitals (IAM replaced the entry with it): the next run
    still works and writes the record in its own spelling, once (IAM drops the capitalised twin). The key
    that entry named is not known as held any more, so it is kept rather than retired (the safe side)."""
    inputs, _old = rerun_inputs(stack)
    client = via_proxy(stack)
    holder = next(t for t in client.list_user_tags(UserName=USER)["Tags"] if ":holder:" in t["Key"])
    client.tag_user(UserName=USER, Tags=[{"Key": holder["Key"].upper(), "Value": holder["Value"]}])
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    keys = [t["Key"] for t in client.list_user_tags(UserName=USER)["Tags"]]
    assert len({k.lower() for k in keys}) == len(keys)
    assert [k for k in keys if k.lower().startswith("ecr-bootstrap:") and not k.startswith("ecr-")] == []
    new = assert_target_works(stack, REPO)
    assert new in user_keys(stack) and len(user_keys(stack)) <= 2 and not pending_lease_left(stack)


# -- propagation ------------------------------------------------------------------------------------------

# A key wait the proof of a key made 2 s before fits in (the default 120 s would too; FAST's 2 s would not).
PROPAGATING = {**FAST, "key-wait-seconds": "10"}


def refused(stack: Stack) -> list[str]:
    """The requests refused while what they named propagated (not served: no request count has them)."""
    return [c.operation for c in stack.aws.log if c.propagating]


def test_a_fresh_run_waits_for_the_new_user_and_policy(stack: Stack) -> None:
    inputs = {"github-token": setup(stack), **PROPAGATING}
    stack.aws.propagation = 2.0
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    assert "iam:AttachUserPolicy" in refused(stack)
    assert len(stack.aws.operations()) + len(stack.github.log) == 13, stack.aws.operations()
    assert_target_works(stack, REPO)
    assert_invariant(stack, (REPO,))


def test_a_rerun_proves_the_new_key_once_ecr_accepts_it(stack: Stack) -> None:
    """ECR refuses the new key until the test sees it refused (not for a time the proof could outrun on a
    loaded machine); then IAM has caught up, and the proof's next try succeeds."""
    inputs, old = rerun_inputs(stack)
    stack.aws.propagation = 600.0
    stack.aws.log.clear()
    stack.github.reset_log()
    running = stack.start({**inputs, **FAST, "key-wait-seconds": "120"})
    hung = time.monotonic() + 120  # a bound for a hung run only
    while "ecr:GetAuthorizationToken" not in refused(stack):  # the new key, not yet known to ECR
        assert running.proc.poll() is None, running.wait().stdout
        assert time.monotonic() < hung, running.kill().stdout
        time.sleep(0.05)
    stack.aws.propagated()
    result = running.wait()
    assert result.returncode == 0, result.stdout
    assert stack.aws.operations().count("ecr:GetAuthorizationToken") == 1  # then proven
    assert len(stack.aws.operations()) + len(stack.github.log) == 14, stack.aws.operations()
    assert assert_target_works(stack, REPO) != old
    assert_invariant(stack, (REPO,))


def test_a_user_seen_only_after_8_s_is_waited_for(stack: Stack) -> None:
    """IAM may take up to about 15 s (issue 22): the wait for what this run created is longer than that."""
    stack.aws.propagation = 8.0
    result = stack.run({"github-token": setup(stack), **FAST, "key-wait-seconds": "30"})
    assert result.returncode == 0, result.stdout
    assert refused(stack)[0] == "iam:AttachUserPolicy"
    assert_invariant(stack, (REPO,))


def test_propagation_refusals_do_not_count_toward_a_fault(stack: Stack) -> None:
    """A fault "at the first AttachUserPolicy" is at the first one AWS served, after the refusals."""
    stack.aws.propagation = 2.0
    fault = stack.aws.fail("iam:AttachUserPolicy", code="InternalFailure", status=500)
    result = stack.run({"github-token": setup(stack), **PROPAGATING})
    assert result.returncode == 0, result.stdout
    assert fault.hits == 1 and refused(stack)[0] == "iam:AttachUserPolicy"
    served = [c for c in stack.aws.log if c.operation == "iam:AttachUserPolicy" and not c.propagating]
    assert [c.status for c in served] == [500, 200]


def test_a_policy_made_moments_ago_is_waited_for_not_blamed_on_its_path(stack: Stack) -> None:
    """A rerun seconds after a stopped run that made the policy: IAM says it exists (EntityAlreadyExists)
    before it shows it (GetPolicy: NoSuchEntity, to the look and to the first read after). The run waits
    for it, as for what it made itself, instead of failing with "a policy path other than '/'?"."""
    from ecr_bootstrap.policy import ecr_access_policy, to_json

    inputs = {"github-token": setup(stack), **FAST}
    document = ecr_access_policy("arn:aws:ecr:us-east-1:123456789012:repository/fcj-workshop-app")
    stack.boto("iam").create_policy(PolicyName=POLICY, PolicyDocument=to_json(document))  # moto, unproxied
    not_yet = stack.aws.fail("iam:GetPolicy", code="NoSuchEntity", status=404, times=2)
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    assert not_yet.hits == 2
    assert stack.aws.operations().count("iam:CreatePolicy") == 1  # refused: it exists
    assert_invariant(stack, (REPO,))
