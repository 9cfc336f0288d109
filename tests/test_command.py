"""`ecr-bootstrap` as a person runs it on a laptop or in CloudShell: verbs, the token from gh, the target from
the git remote, the prompt on a terminal, --output json; never a workflow command, never a secret."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecr_bootstrap import cli, discover
from tests.stand_ins.checks import MUTATING_AWS, REPO, assert_target_works, held_pair, setup
from tests.stand_ins.harness import ROOT, Stack


def terminal_env(stack: Stack, tmp_path: Path, token: str) -> dict[str, str]:
    """A laptop: no GITHUB_ACTIONS, no runner files, no GITHUB_REPOSITORY; `gh` on PATH knows the token."""
    env = stack.env(tmp_path)
    for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY"):
        env.pop(name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    # A stand-in for gh: `gh auth token` prints the token it is logged in with (as gh 2.x does).
    gh.write_text(f'#!/bin/sh\n[ "$1 $2" = "auth token" ] && echo {token} && exit 0\nexit 1\n')
    gh.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def clone_folder(tmp_path: Path, remote: str) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    git = shutil.which("git") or "git"
    subprocess.run([git, "init", "-q", str(folder)], check=True)
    subprocess.run([git, "-C", str(folder), "remote", "add", "origin", remote], check=True)
    return folder


def ecr_bootstrap(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecr_bootstrap", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_plain(text: str, *secrets: str) -> None:
    assert not [line for line in text.splitlines() if line.lstrip().startswith("::") or "##[" in line], text
    for secret in secrets:
        assert secret not in text


def help_of(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "ecr_bootstrap", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


def test_help_reads_as_a_command_line() -> None:
    shown = help_of("--help")
    assert shown.startswith("usage: ecr-bootstrap ")
    for verb in cli.VERBS:
        assert verb in shown
    apply_help = help_of("apply", "--help")
    assert apply_help.startswith("usage: ecr-bootstrap apply [options]")
    assert "--dry-run [true|false]" in apply_help and "--yes" in apply_help and "--profile" in apply_help
    assert "git remote origin" in apply_help and "${{" not in apply_help
    assert "--github-token" not in apply_help  # tokens: never a flag
    with pytest.raises(SystemExit) as usage:
        cli.build_parser().parse_args(["deploy"])
    assert usage.value.code == 2


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://github.com/octo-org/app.git", "octo-org/app"),
        ("https://github.com/octo-org/app", "octo-org/app"),
        ("git@github.com:octo-org/app.git", "octo-org/app"),
        ("ssh://git@github.example.com:2222/octo-org/app.git", "octo-org/app"),
        ("/srv/git/app", ""),
    ],
)
def test_the_target_is_the_git_remote_origin(tmp_path: Path, remote: str, expected: str) -> None:
    assert discover.origin_repository(str(clone_folder(tmp_path, remote))) == expected
    assert discover.origin_repository(str(tmp_path)) == ""  # no repository here at all


def test_the_token_comes_from_the_environment_then_gh(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text('#!/bin/sh\n[ "$1 $2" = "auth token" ] && echo gho_gh && exit 0\nexit 1\n')
    (bin_dir / "gh").chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    assert discover.github_token({"PATH": path, "GITHUB_TOKEN": "ghp_a", "GH_TOKEN": "ghp_b"}) == "ghp_a"
    assert discover.github_token({"PATH": path, "GH_TOKEN": "ghp_b"}) == "ghp_b"
    assert discover.github_token({"PATH": path}) == "gho_gh"
    (bin_dir / "gh").write_text("#!/bin/sh\necho 'not logged in' >&2\nexit 1\n")  # gh not logged in
    assert discover.github_token({"PATH": path}) == ""
    assert discover.github_token({"PATH": str(tmp_path / "nothing")}) == ""


def test_apply_from_a_clone_with_gh_logged_in(stack: Stack, tmp_path: Path) -> None:
    """`ecr-bootstrap apply --yes --output json` in a clone of the target, the token from gh."""
    token = setup(stack)
    env = terminal_env(stack, tmp_path, token)
    folder = clone_folder(tmp_path, f"https://github.com/{REPO}.git")
    result = ecr_bootstrap(env, folder, "apply", "--yes", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = json.loads(result.stdout)  # stdout is the JSON object alone
    key_id, secret = held_pair(stack, REPO)
    assert outputs["access-key-id"] == key_id and outputs["repository-uri"].endswith("/fcj-workshop-app")
    assert_target_works(stack, REPO)
    assert_plain(result.stdout + result.stderr, secret, token)
    assert re.search(r"(?m)^ECR repository +fcj-workshop-app +created", result.stderr), result.stderr


def test_plan_changes_nothing_and_no_terminal_means_no_prompt(stack: Stack, tmp_path: Path) -> None:
    token = setup(stack)
    env = terminal_env(stack, tmp_path, token)
    planned = ecr_bootstrap(env, tmp_path, "plan", "--repositories", REPO, "--no-scan-on-push")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert re.search(r"(?m)^ECR repository +fcj-workshop-app +would create", planned.stdout), planned.stdout
    assert not stack.github.secret_names(REPO)
    assert stack.boto("ecr").describe_repositories()["repositories"] == []
    assert_plain(planned.stdout + planned.stderr, token)
    # Not a terminal (as in CI): no question asked, the run goes ahead.
    applied = ecr_bootstrap(env, tmp_path, "apply", "--repositories", REPO, "--no-scan-on-push")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "[y/N]" not in applied.stdout + applied.stderr
    assert_target_works(stack, REPO)
    (repository,) = stack.boto("ecr").describe_repositories()["repositories"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": False}


def on_terminal(env: dict[str, str], cwd: Path, args: list[str], answer: str) -> tuple[int, str]:
    """Run on a pseudo-terminal; type `answer` once the question shows."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecr_bootstrap", *args],
        env=env,
        cwd=cwd,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    seen, answered = b"", False
    deadline = time.monotonic() + 120  # a bound on a hung test only, not a measure of speed
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(main, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(main)
    return proc.wait(timeout=30), seen.decode(errors="replace")


@pytest.mark.parametrize("answer", ["n", "y"])
def test_apply_on_a_terminal_shows_the_plan_and_asks(stack: Stack, tmp_path: Path, answer: str) -> None:
    token = setup(stack)
    env = terminal_env(stack, tmp_path, token)
    folder = clone_folder(tmp_path, f"git@github.com:{REPO}.git")
    code, seen = on_terminal(env, folder, ["apply"], answer)
    plan, _, after = seen.partition("Apply these changes? [y/N]")
    assert re.search(r"(?m)^ECR repository +fcj-workshop-app +would create", plan), seen
    assert_plain(seen, token)
    if answer == "n":
        assert code == 1 and "Nothing was changed." in after
        assert not stack.github.secret_names(REPO)
        assert stack.boto("ecr").describe_repositories()["repositories"] == []
    else:
        assert code == 0, seen
        assert re.search(r"(?m)^ECR repository +fcj-workshop-app +created", after), seen
        _, secret = held_pair(stack, REPO)
        assert secret not in seen
        assert_target_works(stack, REPO)


def test_permissions_takes_real_flags() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}
    shown = subprocess.run(
        [sys.executable, "-m", "ecr_bootstrap", "permissions", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    actions = {a for s in json.loads(shown)["Statement"] for a in s["Action"]}
    assert "ecr:DescribeRepositories" in actions and "iam:CreateAccessKey" not in actions
    bad = subprocess.run(
        [sys.executable, "-m", "ecr_bootstrap", "permissions", "--auth", "bogus"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: Input 'auth':") and not bad.stdout


def test_an_unknown_profile_is_refused_before_any_request(stack: Stack, tmp_path: Path) -> None:
    env = terminal_env(stack, tmp_path, setup(stack))
    env["AWS_CONFIG_FILE"] = str(tmp_path / "config")  # no such profile in it
    result = ecr_bootstrap(env, tmp_path, "apply", "--profile", "nosuch", "--repositories", REPO, "--yes")
    assert result.returncode == 2 and result.stderr.startswith("error: --profile:"), result.stderr
    assert "Traceback" not in result.stderr and not stack.aws.log


def test_no_target_and_no_clone_says_how_to_name_one(stack: Stack, tmp_path: Path) -> None:
    env = terminal_env(stack, tmp_path, setup(stack))
    result = ecr_bootstrap(env, tmp_path, "plan")  # tmp_path: not a git repository
    assert result.returncode == 1 and not stack.aws.log and not stack.github.log
    assert result.stderr.startswith("error: --repositories: no target given"), result.stderr
    assert "--repositories OWNER/NAME" in result.stderr and "${{" not in result.stderr


def test_verbs_read_input_variables_as_the_action_does(stack: Stack) -> None:
    """In a workflow step (`run: ecr-bootstrap plan`), INPUT_* count as for the action; flags win."""
    token = setup(stack)
    command = [sys.executable, "-m", "ecr_bootstrap", "plan", "--ecr-repository", "from-flag"]
    result = stack.run(
        {"github-token": token, "ecr-repository": "from-input"},
        command=command,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| ECR repository | `from-flag` | would create" in result.summary
    assert not stack.github.secret_names(REPO)
    assert not [op for op in stack.aws.operations() if op.split(":")[1].startswith(MUTATING_AWS)]
