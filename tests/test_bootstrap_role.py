"""`ecr-bootstrap bootstrap-role` (issue 23): the role the action's own workflow assumes. Checked as a user
would: the role's trust and inline policy in IAM, a web identity token of the repository (and ref) that
assumes it through the AWS stand-in (which evaluates the trust, as STS does), tokens of another repository
or branch that cannot, idempotence, the plan, the variable, and the trust and policy through parliament."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ecr_bootstrap import bootstrap_role
from ecr_bootstrap.inputs import from_values
from ecr_bootstrap.permissions import action_policy
from ecr_bootstrap.workflow import Workflow
from tests.stand_ins.checks import MUTATING_AWS, REPO, setup
from tests.stand_ins.harness import REGION, ROOT, Stack

ACCOUNT = "123456789012"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
ROLE = "ecr-bootstrap-octo-org-app"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
HOST = "token.actions.githubusercontent.com"
MAIN = (
    "import os, sys; from ecr_bootstrap.bootstrap_role import main; sys.exit(main(sys.argv[1:], os.environ))"
)


def run(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """As a user runs it: a process outside GitHub Actions, no terminal on stdin."""
    with tempfile.TemporaryDirectory() as tmp:
        full = stack.env(Path(tmp))
        for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY"):
            full.pop(name)
        full.update(PYTHONPATH=str(ROOT / "src"), **(env or {}))
        return subprocess.run(
            [sys.executable, "-c", MAIN, *args],
            env=full,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            cwd=tmp,
        )


def token(sub: str, aud: str = "sts.amazonaws.com", iss: str = f"https://{HOST}") -> str:
    """A GitHub Actions OIDC token's shape, unsigned: the stand-in checks the trust, not the signature."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'iss': iss, 'aud': aud, 'sub': sub})}."


def assumes(stack: Stack, jwt: str, role_arn: str = ROLE_ARN) -> bool:
    import botocore.session
    from botocore.exceptions import ClientError

    # Through the proxy (stack.boto talks to moto directly); the call is unsigned, as STS takes it.
    session = botocore.session.get_session()
    sts: Any = session.create_client("sts", region_name=REGION, endpoint_url=stack.aws.url)
    try:
        sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="gha", WebIdentityToken=jwt)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
        return False
    return True


def role(stack: Stack, name: str = ROLE) -> dict[str, Any]:
    return dict(stack.boto("iam").get_role(RoleName=name)["Role"])


def trust_of(stack: Stack, name: str = ROLE) -> dict[str, Any]:
    doc = role(stack, name)["AssumeRolePolicyDocument"]
    return dict(json.loads(doc) if isinstance(doc, str) else doc)


def inline_policy(stack: Stack, name: str = ROLE) -> dict[str, Any]:
    doc = stack.boto("iam").get_role_policy(RoleName=name, PolicyName="ecr-bootstrap-action")[
        "PolicyDocument"
    ]
    return dict(json.loads(doc) if isinstance(doc, str) else doc)


def expected_policy(**options: str) -> dict[str, Any]:
    settings = from_values(
        {"github-token": "unused", **options}, {"AWS_REGION": REGION, "GITHUB_REPOSITORY": REPO}
    )
    return action_policy(settings, account=ACCOUNT, region=REGION)


def mutations(stack: Stack) -> list[str]:
    return [op for op in stack.aws.operations() if op.split(":")[1].startswith(MUTATING_AWS)]


def assert_plain(result: subprocess.CompletedProcess[str]) -> None:
    """Outside GitHub Actions: no workflow command on either stream."""
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("::")], lines


# -- the main scenario ----------------------------------------------------------------------------------


def test_creates_a_role_only_the_repository_can_assume_then_changes_nothing(stack: Stack) -> None:
    result = run(stack, "--repository", REPO)
    assert result.returncode == 0, result.stderr
    assert_plain(result)
    assert result.stderr == ""
    assert f"create  IAM role {ROLE}: trusts repo:{REPO}:*" in result.stdout
    assert f"create  OIDC provider {HOST}" in result.stdout
    assert f"Role ARN: {ROLE_ARN}" in result.stdout
    assert f"role-to-assume: {ROLE_ARN}" in result.stdout
    assert "id-token: write" in result.stdout
    statement = trust_of(stack)["Statement"][0]
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com"},
        "StringLike": {f"{HOST}:sub": [f"repo:{REPO}:*"]},
    }
    assert inline_policy(stack) == expected_policy()
    assert stack.boto("iam").list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    tags = {t["Key"]: t["Value"] for t in role(stack)["Tags"]}
    assert tags == {"ecr-bootstrap:purpose": "bootstrap-role", "ecr-bootstrap:repository": REPO}
    # Through the stand-in's STS, which evaluates the trust as STS does:
    assert assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main"))
    assert assumes(stack, token(f"repo:{REPO}:environment:prod"))
    assert not assumes(stack, token("repo:octo-org/other:ref:refs/heads/main"))
    assert not assumes(stack, token("repo:octo-org/app-fork:ref:refs/heads/main"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main", aud="https://github.com/octo-org"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main", iss="https://evil.example"))
    stack.aws.log.clear()
    again = run(stack, "--repository", REPO)
    assert again.returncode == 0, again.stderr
    assert mutations(stack) == []
    assert "Nothing to change" in again.stdout
    assert f"reuse   IAM role {ROLE}" in again.stdout
    assert f"Role ARN: {ROLE_ARN}" in again.stdout


def test_a_ref_limits_the_role_to_that_branch(stack: Stack) -> None:
    result = run(stack, "--repository", REPO, "--ref", "main")
    assert result.returncode == 0, result.stderr
    assert trust_of(stack)["Statement"][0]["Condition"]["StringLike"] == {
        f"{HOST}:sub": [f"repo:{REPO}:ref:refs/heads/main"]
    }
    assert assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/heads/dev"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main-2"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/tags/main"))
    assert not assumes(stack, token(f"repo:{REPO}:pull_request"))
    assert not assumes(stack, token("repo:octo-org/other:ref:refs/heads/main"))


def test_an_environment_limits_the_role_to_jobs_in_it(stack: Stack) -> None:
    result = run(stack, "--repository", REPO, "--environment", "prod")
    assert result.returncode == 0, result.stderr
    assert "environment: prod" in result.stdout
    assert assumes(stack, token(f"repo:{REPO}:environment:prod"))
    assert not assumes(stack, token(f"repo:{REPO}:environment:staging"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main"))


def test_tag_patterns_match_as_iam_string_like(stack: Stack) -> None:
    assert run(stack, "--repository", REPO, "--ref", "refs/tags/v*").returncode == 0
    assert assumes(stack, token(f"repo:{REPO}:ref:refs/tags/v1.2.3"))
    assert not assumes(stack, token(f"repo:{REPO}:ref:refs/heads/v1"))


def test_the_policy_is_what_the_permissions_command_prints_for_the_same_options(stack: Stack) -> None:
    boundary = "arn:aws:iam::aws:policy/PowerUserAccess"  # not in the account: its ARN stays as it is
    options = [
        "--auth",
        "oidc",
        "--ecr-repository",
        "team/app",
        "--keep-images",
        "5",
        "--write-variables",
        "true",
    ]
    mine = [*options, "--tags", "team=web", "--permissions-boundary", boundary]
    result = run(stack, "--repository", REPO, *mine)
    assert result.returncode == 0, result.stderr
    printed = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), "permissions", *mine, "--aws-region", REGION],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The same document, for the real account instead of any.
    assert json.loads(json.dumps(inline_policy(stack)).replace(f":{ACCOUNT}:", ":*:")) == json.loads(printed)
    assert inline_policy(stack) == expected_policy(
        **{"auth": "oidc", "ecr-repository": "team/app", "keep-images": "5", "write-variables": "true"},
        tags="team=web",
        **{"permissions-boundary": boundary},
    )
    assert role(stack)["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    assert {"Key": "team", "Value": "web"} in role(stack)["Tags"]
    # The workflow passes the same options to the action.
    for line in (
        "auth: oidc",
        "ecr-repository: team/app",
        'keep-images: "5"',
        f"permissions-boundary: {boundary}",
    ):
        assert f"          {line}" in result.stdout, line


# -- plan, drift, variable ------------------------------------------------------------------------------


def test_dry_run_needs_no_token_and_changes_nothing(stack: Stack) -> None:
    result = run(stack, "--repository", REPO, "--dry-run", "--write-variable")
    assert result.returncode == 0, result.stderr
    assert_plain(result)
    assert mutations(stack) == []
    assert stack.github.log == []
    assert f"create  IAM role {ROLE}" in result.stdout
    assert "create  inline policy ecr-bootstrap-action" in result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    assert f"Role ARN: {ROLE_ARN}" in result.stdout
    assert "${{ vars.AWS_ROLE_ARN }}" in result.stdout
    assert stack.boto("iam").list_roles()["Roles"] == []


def test_drift_is_planned_then_put_back(stack: Stack) -> None:
    assert run(stack, "--repository", REPO, "--ref", "main").returncode == 0
    iam = stack.boto("iam")
    wide = trust_of(stack)
    wide["Statement"][0]["Condition"]["StringLike"][f"{HOST}:sub"] = ["repo:octo-org/*"]
    iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(wide))
    star = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=ROLE, PolicyName="ecr-bootstrap-action", PolicyDocument=json.dumps(star))
    assert assumes(stack, token("repo:octo-org/other:ref:refs/heads/main"))
    stack.aws.log.clear()
    plan = run(stack, "--repository", REPO, "--ref", "main", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"update  IAM role {ROLE}: trust policy differs" in plan.stdout
    assert "update  inline policy ecr-bootstrap-action" in plan.stdout
    assert mutations(stack) == []
    result = run(stack, "--repository", REPO, "--ref", "main")
    assert result.returncode == 0, result.stderr
    assert sorted(mutations(stack)) == ["iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"]
    assert inline_policy(stack) == expected_policy()
    assert not assumes(stack, token("repo:octo-org/other:ref:refs/heads/main"))
    assert assumes(stack, token(f"repo:{REPO}:ref:refs/heads/main"))


def test_write_variable_writes_the_role_arn_once(stack: Stack) -> None:
    gh = setup(stack)
    result = run(stack, "--repository", REPO, "--write-variable", env={"GH_TOKEN": gh})
    assert result.returncode == 0, result.stderr
    assert gh not in result.stdout + result.stderr
    assert stack.github.box(REPO).variables["AWS_ROLE_ARN"].value == ROLE_ARN
    assert "role-to-assume: ${{ vars.AWS_ROLE_ARN }}" in result.stdout
    assert f"write   variable AWS_ROLE_ARN of {REPO}" in result.stdout
    assert f"Variable AWS_ROLE_ARN of {REPO}: written" in result.stdout
    stack.github.reset_log()
    again = run(stack, "--repository", REPO, "--write-variable", env={"GITHUB_TOKEN": gh})
    assert again.returncode == 0, again.stderr
    assert [r.method for r in stack.github.log if r.method != "GET"] == []
    assert f"reuse   variable AWS_ROLE_ARN of {REPO}" in again.stdout
    assert f"Variable AWS_ROLE_ARN of {REPO}: already set" in again.stdout


def test_write_variable_without_a_token_stops_before_any_change(stack: Stack) -> None:
    result = run(stack, "--repository", REPO, "--write-variable")
    assert result.returncode == 1
    assert result.stderr.startswith("error: --write-variable needs a GitHub token")
    assert "GH_TOKEN" in result.stderr
    assert stack.aws.operations() == []


def test_a_token_that_cannot_see_the_repository_stops_before_any_change(stack: Stack) -> None:
    setup(stack)
    gh = stack.github.add_token(repos={"octo-org/other"})
    result = run(stack, "--repository", REPO, "--write-variable", env={"GH_TOKEN": gh})
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Nothing was changed" in result.stderr
    assert mutations(stack) == []


@pytest.mark.parametrize("repository", ["octo-org", "octo org/app", "octo-org/app/x", "-x/app", ""])
def test_a_bad_repository_is_a_usage_error_before_any_request(stack: Stack, repository: str) -> None:
    result = run(stack, f"--repository={repository}")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --repository"), result.stderr
    assert_plain(result)
    assert stack.aws.operations() == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ref", "main", "--environment", "prod"], "not allowed with argument"),
        (["--ref", "bad ref"], "malformed"),
        (["--keep-images", "lots"], "--keep-images"),
        (["--role-name", "x" * 65], "--role-name"),
        (["--role-name", "ecr-role\n"], "--role-name"),  # a whole-name match: no trailing newline
        (["--region", "mars"], "--region"),
        (["--dry-run=yes"], "ignored explicit argument"),
    ],
)
def test_usage_errors(stack: Stack, args: list[str], says: str) -> None:
    result = run(stack, "--repository", REPO, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and says in result.stderr, result.stderr
    assert stack.aws.operations() == []


def test_a_role_not_made_by_this_command_is_left_alone(stack: Stack) -> None:
    stack.boto("iam").create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    result = run(stack, "--repository", REPO)
    assert result.returncode == 1
    assert "was not made by bootstrap-role" in result.stderr and "--role-name" in result.stderr
    assert mutations(stack) == []


def test_help_reads_and_exits_0() -> None:
    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    try:
        assert bootstrap_role.main(["--help"], {}) == 0
    finally:
        sys.stdout = sys_stdout
    text = out.getvalue()
    for flag in (
        "--repository",
        "--ref",
        "--environment",
        "--write-variable",
        "--dry-run",
        "--yes",
        "--auth",
    ):
        assert flag in text


def test_the_default_role_name_fits_iam() -> None:
    assert bootstrap_role.default_role_name(REPO) == ROLE
    long_a, long_b = "o/" + "a" * 100, "o/" + "a" * 99 + "b"
    names = {bootstrap_role.default_role_name(r) for r in (long_a, long_b)}
    assert len(names) == 2 and all(len(n) == 64 for n in names)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_is_asked_and_no_changes_nothing(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = stack.env(Path(tmp))
    env.pop("GITHUB_ACTIONS")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, env[name])
    request = bootstrap_role.parse(["--repository", REPO], env)
    out = io.StringIO()
    workflow = Workflow(env, out=out, err=out)
    monkeypatch.setattr(sys, "stdout", out)
    assert bootstrap_role.run(request, env, workflow, stdin=Terminal("n\n")) == 1
    assert "Proceed? [y/N]" in out.getvalue() and "error: Not confirmed" in out.getvalue()
    assert mutations(stack) == []
    assert bootstrap_role.run(request, env, workflow, stdin=Terminal("y\n")) == 0
    assert role(stack)["Arn"] == ROLE_ARN


# -- parliament -----------------------------------------------------------------------------------------


def test_the_trust_and_the_policy_pass_parliament(stack: Stack) -> None:
    import importlib.util

    # Loaded as tests/test_gates.py loads it: the project's own parliament gate.
    spec = importlib.util.spec_from_file_location("check_policies", ROOT / "scripts" / "check_policies.py")
    assert spec and spec.loader
    gate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate)
    problems = gate.problems
    assert (
        run(stack, "--repository", REPO, "--ref", "main", "--auth", "oidc", "--tags", "a=b").returncode == 0
    )
    assert problems(inline_policy(stack), community=False) == []
    # parliament reads every document as an identity policy and knows SAML providers only: a trust
    # policy has no Resource (IAM User Guide, "Role trust policy"), and GitHub's is an OIDC provider.
    trust = trust_of(stack)
    expected = {
        f"UNKNOWN_FEDERATION_SOURCE {PROVIDER}",
        "MALFORMED Statement contains neither Resource nor NotResource",
    }
    assert set(problems(trust, community=True)) <= expected


def test_a_boundary_given_later_is_set_and_kept_when_not_given(stack: Stack) -> None:
    boundary = "arn:aws:iam::aws:policy/PowerUserAccess"
    assert run(stack, "--repository", REPO).returncode == 0
    stack.aws.log.clear()
    result = run(stack, "--repository", REPO, "--permissions-boundary", boundary)
    assert result.returncode == 0, result.stderr
    assert f"update  permissions boundary of {ROLE}: {boundary}" in result.stdout
    assert role(stack)["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    assert inline_policy(stack) == expected_policy(**{"permissions-boundary": boundary})
    assert sorted(mutations(stack)) == ["iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"]
    again = run(stack, "--repository", REPO, "--permissions-boundary", boundary)
    assert "Nothing to change" in again.stdout
    without = run(stack, "--repository", REPO, "--dry-run")
    assert f"keep    permissions boundary of {ROLE}: {boundary}" in without.stdout
