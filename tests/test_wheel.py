"""The package as users get it on a laptop (`pipx install git+https://github.com/OWNER/REPO`): the wheel built
from pyproject.toml, installed into a fresh venv with the locked dependencies; both paths of the README's
Quick start are run with its console script against the stand-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.stand_ins.checks import REPO, assert_target_works, held_pair, setup
from tests.stand_ins.harness import REGION, ROOT, Stack
from tests.test_bootstrap_role import token as oidc_token

INFRA = "octo-org/infra"


def quiet_pip(python: Path, *args: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], check=True, env=env)


@pytest.mark.slow(5)
def test_the_wheel_installs_and_its_console_script_runs(stack: Stack, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("ecr_bootstrap-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, script = venv / "bin" / "python", venv / "bin" / "ecr-bootstrap"
    quiet_pip(python, "--require-hashes", "-r", str(ROOT / "requirements.lock"))
    quiet_pip(python, "--no-deps", str(wheel))

    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: ecr-bootstrap "), shown.stderr
    shown = subprocess.run([str(script), "apply", "--help"], capture_output=True, text=True, check=False)
    assert "--iam-user" in shown.stdout and "--github-token" not in shown.stdout  # tokens: never a flag

    printed = subprocess.run([str(script), "permissions"], capture_output=True, text=True, check=False)
    assert printed.returncode == 0, printed.stderr
    actions = {a for s in json.loads(printed.stdout)["Statement"] for a in s["Action"]}
    assert {"iam:CreateAccessKey", "ecr:CreateRepository"} <= actions

    token = setup(stack)
    result = stack.run({"github-token": token, "dry-run": "true"}, command=[str(script)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| ECR repository | `fcj-workshop-app` | would create" in result.summary
    assert not stack.github.secret_names("octo-org/app")
    quick_start_a(stack, script, tmp_path)
    quick_start_b(stack, script, tmp_path)


def laptop(stack: Stack, tmp_path: Path, token: str) -> dict[str, str]:
    env = stack.env(tmp_path)
    for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY"):
        env.pop(name)
    return {**env, "GH_TOKEN": token}


def no_workflow_command(text: str) -> bool:
    return not [line for line in text.splitlines() if line.lstrip().startswith("::")]


def quick_start_a(stack: Stack, script: Path, tmp_path: Path) -> None:
    """A. One command from your machine: `ecr-bootstrap apply` (here --yes: no terminal to ask on)."""
    stack.reset()
    token = setup(stack)
    args = [str(script), "apply", "--repositories", REPO, "--yes", "--output", "json"]
    done = subprocess.run(
        args, env=laptop(stack, tmp_path, token), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["access-key-id"] == held_pair(stack, REPO)[0]
    assert_target_works(stack, REPO)
    assert no_workflow_command(done.stdout + done.stderr) and held_pair(stack, REPO)[1] not in done.stderr


def quick_start_b(stack: Stack, script: Path, tmp_path: Path) -> None:
    """B. `ecr-bootstrap bootstrap-role --repository octo-org/infra --write-variable` once; then the workflow
    in octo-org/infra assumes the role (configure-aws-credentials' OIDC login) and runs the action: no AWS key
    is stored anywhere but the one the action writes into the target."""
    stack.reset()
    token = setup(stack, REPO, INFRA)
    env = laptop(stack, tmp_path, token)
    planned = subprocess.run(
        [str(script), "bootstrap-role", "--repository", INFRA, "--dry-run"],
        env={k: v for k, v in env.items() if k != "GH_TOKEN"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert planned.returncode == 0 and no_workflow_command(planned.stdout + planned.stderr), planned.stderr
    assert not stack.boto("iam").list_roles()["Roles"]
    made = subprocess.run(
        [str(script), "bootstrap-role", "--repository", INFRA, "--write-variable", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0 and no_workflow_command(made.stdout + made.stderr), made.stdout + made.stderr
    role_arn = stack.github.box(INFRA).variables["AWS_ROLE_ARN"].value
    creds = assume(stack, role_arn, f"repo:{INFRA}:ref:refs/heads/main")
    result = stack.run(
        {"github-token": token, "repositories": REPO},
        repository=INFRA,
        env={
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        },
        command=[str(script)],
    )
    assert result.returncode == 0, result.stdout
    assert_target_works(stack, REPO)
    assert creds["AccessKeyId"] not in stack.github.secret_names(INFRA)  # nothing stored in octo-org/infra


def assume(stack: Stack, role_arn: str, subject: str) -> dict[str, str]:
    """configure-aws-credentials' OIDC login: AssumeRoleWithWebIdentity (unsigned, through the stand-in,
    which checks the role's trust against the token's claims)."""
    import botocore.session

    sts: Any = botocore.session.get_session().create_client(
        "sts", region_name=REGION, endpoint_url=stack.aws.url
    )
    reply = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="gha", WebIdentityToken=oidc_token(subject)
    )
    return dict(reply["Credentials"])
