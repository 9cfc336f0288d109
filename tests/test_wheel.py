"""The package as users get it from a laptop (`pipx run --spec git+https://github.com/OWNER/REPO
ecr-bootstrap ...`): the wheel built from pyproject.toml, installed into a fresh venv with the locked
dependencies, runs its console script with the same flags as `python entrypoint.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.stand_ins.checks import setup
from tests.stand_ins.harness import ROOT, Stack


def quiet_pip(python: Path, *args: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], check=True, env=env)


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
    assert shown.returncode == 0, shown.stderr
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
