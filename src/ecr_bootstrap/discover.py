"""What a person at a terminal need not type: the GitHub token (as gh keeps it), the GitHub repository of the
current folder (as gh finds it), the AWS region (given, AWS_REGION, AWS_DEFAULT_REGION, else the
profile's)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping

# https://github.com/OWNER/REPO(.git), git@github.com:OWNER/REPO(.git), ssh://git@host:22/OWNER/REPO(.git)
_REMOTE = re.compile(r"^(?:[a-z+]+://)?(?:[^@/]+@)?[^/:]+(?::\d+)?[:/]([^/]+)/([^/]+?)(?:\.git)?/?$")


def github_token(env: Mapping[str, str]) -> str:
    """GITHUB_TOKEN, GH_TOKEN, or gh's own (`gh auth token`) when gh is installed and logged in."""
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        if env.get(name, "").strip():
            return env[name].strip()
    gh = shutil.which("gh", path=env.get("PATH"))
    if not gh:
        return ""
    lines = _ask([gh, "auth", "token"]).splitlines()
    return lines[0].strip() if len(lines) == 1 else ""  # never echoed


def origin_repository(folder: str = ".") -> str:
    """OWNER/REPO of the git remote `origin` of `folder`, as gh finds it; "" when there is none."""
    match = _REMOTE.match(_ask(["git", "-C", folder, "remote", "get-url", "origin"]))
    return f"{match.group(1)}/{match.group(2)}" if match else ""


def _ask(command: list[str]) -> str:
    """What a program (gh, git, as PATH finds it) prints, stripped; "" when it fails or cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def region(given: str, env: Mapping[str, str], profile: str) -> str:
    """`given`, AWS_REGION, AWS_DEFAULT_REGION, or the region of the named AWS profile (with "", the default
    chain's); "" when none. botocore's errors (an unknown profile) reach the caller, a region given or not."""
    import botocore.session

    own = botocore.session.Session(profile=profile or None).get_config_variable("region")
    return given or env.get("AWS_REGION", "") or env.get("AWS_DEFAULT_REGION", "") or str(own or "")
