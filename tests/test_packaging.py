"""The package's files agree with each other: pyproject.toml is the one list of dependencies, and the hash
locks compiled from it (scripts/lock.sh) pin every one of them, with hashes, naming no machine's paths."""

from __future__ import annotations

import re
import tomllib

from tests.stand_ins.harness import ROOT


def name_of(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    found = re.findall(r"(?m)^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", text)
    return {name.lower().replace("_", "-"): version for name, version in found}


def test_the_locks_pin_every_dependency_of_pyproject_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {name_of(r) for r in project["dependencies"]}
    dev = {name_of(r) for r in project["optional-dependencies"]["dev"]}
    locked, dev_locked = pins("requirements.lock"), pins("requirements-dev.lock")
    assert runtime <= set(locked), runtime - set(locked)
    assert runtime | dev <= set(dev_locked), (runtime | dev) - set(dev_locked)
    # The image and ./dev.sh run the same runtime versions.
    assert {n: v for n, v in dev_locked.items() if n in locked} == locked
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        lines = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
        assert all(re.match(r"^[A-Za-z0-9_.-]+==\S+ \\$", line) for line in lines), lock  # no options
        assert not re.search(r"file:/|--(extra-)?index-url|--find-links|/(root|home|tmp|opt|work)/", text), (
            lock
        )


def test_the_console_script_is_the_entry_points_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"ecr-bootstrap": "ecr_bootstrap.cli:console"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["license"] == "MIT"
