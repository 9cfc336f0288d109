"""The action's own identity (issue 20): its KMS permissions hold only for ECR's own requests, kms-key is a
full key or alias ARN, and permissions-boundary caps what it creates (the printed policy creates no user
or role without it; the user or role created carries it)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from ecr_bootstrap.aws.iam import boundary_warning
from tests.stand_ins.checks import REPO, USER, setup
from tests.stand_ins.harness import ROOT, Stack

ACCOUNT = "123456789012"
ROLE = "fcj-ecr-ci-cd-role"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/boundaries/CiBoundary"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALIAS = f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/ecr"


def policy(*flags: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), "permissions", *flags],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def statements_with(document: dict[str, Any], action: str) -> list[dict[str, Any]]:
    def actions(s: dict[str, Any]) -> list[str]:
        return [s["Action"]] if isinstance(s["Action"], str) else list(s["Action"])

    return [s for s in document["Statement"] if action in actions(s)]


def no_changes(stack: Stack) -> bool:
    return stack.aws.log == [] and stack.github.log == []


# -- KMS -------------------------------------------------------------------------------------------------


def test_printed_kms_permissions_hold_only_for_ecr_in_any_region() -> None:
    document = policy("--encryption=KMS")
    via = {"StringLike": {"kms:ViaService": "ecr.*.amazonaws.com"}}
    for action in ("kms:DescribeKey", "kms:RetireGrant", "kms:CreateGrant"):
        [statement] = statements_with(document, action)
        assert statement["Resource"] == "arn:aws:kms:*:*:key/*"
        assert statement["Condition"]["StringLike"] == via["StringLike"], statement
    [grant] = statements_with(document, "kms:CreateGrant")
    assert grant["Condition"] == {**via, "Bool": {"kms:GrantIsForAWSResource": "true"}}
    # DescribeKey and RetireGrant requests carry no kms:GrantIsForAWSResource: not conditioned on it.
    [describe] = statements_with(document, "kms:DescribeKey")
    assert describe["Condition"] == via and describe is not grant


def test_printed_kms_permissions_name_the_key_and_its_region() -> None:
    document = policy("--aws-region=eu-west-1", "--encryption=KMS", f"--kms-key={KEY}")
    for action in ("kms:DescribeKey", "kms:CreateGrant"):
        [statement] = statements_with(document, action)
        assert statement["Resource"] == KEY
        assert statement["Condition"]["StringEquals"] == {"kms:ViaService": "ecr.eu-west-1.amazonaws.com"}
    # IAM matches KMS actions against the key, not the alias: the keys of the alias's account and region.
    document = policy("--encryption=KMS", f"--kms-key={ALIAS}")
    [grant] = statements_with(document, "kms:CreateGrant")
    assert grant["Resource"] == f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/*"
    assert grant["Condition"]["StringEquals"] == {"kms:ViaService": "ecr.eu-west-1.amazonaws.com"}


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:kms:*:123456789012:key/*",
        "arn:aws:kms:us-east-1:123456789012:key/*",
        "arn:aws:kms:us-east-1:*:alias/ecr",
        "alias/ecr",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:123456789012:alias/ecr extra",
    ],
)
def test_a_kms_key_that_is_not_a_full_arn_is_refused_before_any_change(stack: Stack, value: str) -> None:
    token = setup(stack)
    stack.github.reset_log()
    result = stack.run({"github-token": token, "encryption": "KMS", "kms-key": value})
    assert result.returncode == 1
    [error] = result.errors()
    assert "'kms-key'" in error and "arn:aws:kms:us-east-1:123456789012:alias/ecr" in error, error
    assert "Traceback" not in result.stderr
    assert no_changes(stack)
    assert stack.boto("ecr").describe_repositories()["repositories"] == []


def test_a_key_arn_encrypts_the_new_repository(stack: Stack) -> None:
    token = setup(stack)
    key = stack.boto("kms").create_key(Description="ecr")["KeyMetadata"]["Arn"]
    result = stack.run({"github-token": token, "encryption": "KMS", "kms-key": key})
    assert result.returncode == 0, result.stdout
    [repository] = stack.boto("ecr").describe_repositories()["repositories"]
    assert repository["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}


# -- permissions-boundary --------------------------------------------------------------------------------


def test_printed_policy_creates_the_user_only_with_the_boundary() -> None:
    document = policy(f"--permissions-boundary={BOUNDARY}")
    [create] = statements_with(document, "iam:CreateUser")
    assert create["Condition"] == {"ArnEquals": {"iam:PermissionsBoundary": BOUNDARY}}
    assert sorted(create["Action"]) == ["iam:CreateUser", "iam:PutUserPermissionsBoundary"]
    assert create["Resource"] == f"arn:aws:iam::*:user/{USER}"
    # No boundary: as before, CreateUser with the user's other actions.
    [plain] = statements_with(policy(), "iam:CreateUser")
    assert "Condition" not in plain and "iam:PutUserPermissionsBoundary" not in plain["Action"]
    # A dry run creates nothing.
    assert (
        statements_with(policy(f"--permissions-boundary={BOUNDARY}", "--dry-run=true"), "iam:CreateUser")
        == []
    )


def test_printed_policy_creates_the_role_only_with_the_boundary() -> None:
    document = policy("--auth=oidc", f"--permissions-boundary={BOUNDARY}")
    [create] = statements_with(document, "iam:CreateRole")
    assert create["Condition"] == {"ArnEquals": {"iam:PermissionsBoundary": BOUNDARY}}
    assert sorted(create["Action"]) == ["iam:CreateRole", "iam:PutRolePermissionsBoundary"]
    assert create["Resource"] == f"arn:aws:iam::*:role/{ROLE}"
    assert statements_with(document, "iam:CreateUser") == []


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:iam::123456789012:policy/*",
        "arn:aws:iam::*:policy/CiBoundary",
        "CiBoundary",
        "arn:aws:iam::123456789012:role/CiBoundary",
        "arn:aws:iam::12345:policy/CiBoundary",
        "arn:aws:s3:::bucket/policy/CiBoundary",
    ],
)
def test_a_bad_boundary_is_refused_before_any_change(stack: Stack, value: str) -> None:
    token = setup(stack)
    stack.github.reset_log()
    result = stack.run({"github-token": token, "permissions-boundary": value})
    assert result.returncode == 1
    [error] = result.errors()
    assert "'permissions-boundary'" in error and "arn:aws:iam::123456789012:policy/" in error, error
    assert no_changes(stack)
    assert stack.boto("iam").list_users()["Users"] == []


def boundary_policy(stack: Stack) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
    }
    stack.boto("iam").create_policy(
        PolicyName="CiBoundary", Path="/boundaries/", PolicyDocument=json.dumps(document)
    )


def test_the_created_user_carries_the_boundary_and_a_reused_one_is_left_alone(stack: Stack) -> None:
    token = setup(stack)
    boundary_policy(stack)
    result = stack.run({"github-token": token, "permissions-boundary": BOUNDARY})
    assert result.returncode == 0, result.stdout
    user = stack.boto("iam").get_user(UserName=USER)["User"]
    assert user["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    other = f"arn:aws:iam::{ACCOUNT}:policy/Other"
    stack.aws.log.clear()
    again = stack.run({"github-token": token, "permissions-boundary": other})
    assert again.returncode == 0, again.stdout
    assert "Permissions boundary kept" in again.stdout and "put-user-permissions-boundary" in again.stdout
    assert not any("PermissionsBoundary" in op for op in stack.aws.operations())
    user = stack.boto("iam").get_user(UserName=USER)["User"]
    assert user["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY


def test_the_created_role_carries_the_boundary(stack: Stack) -> None:
    token = setup(stack, REPO)
    boundary_policy(stack)
    result = stack.run({"github-token": token, "auth": "oidc", "permissions-boundary": BOUNDARY})
    assert result.returncode == 0, result.stdout
    role = stack.boto("iam").get_role(RoleName=ROLE)["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY


def test_without_a_boundary_the_user_gets_none(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    assert "PermissionsBoundary" not in stack.boto("iam").get_user(UserName=USER)["User"]


def test_a_reused_identity_with_another_boundary_is_described_not_changed() -> None:
    assert boundary_warning(USER, BOUNDARY, BOUNDARY) == ""
    assert boundary_warning(USER, "", "") == ""
    text = boundary_warning(USER, "", BOUNDARY)
    assert "no permissions boundary" in text and BOUNDARY in text
    assert (
        f"aws iam put-user-permissions-boundary --user-name {USER} --permissions-boundary {BOUNDARY}" in text
    )
