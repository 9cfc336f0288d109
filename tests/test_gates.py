"""The policy gate is real: it passes what the code generates and fails on a wider grant."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from ecr_bootstrap.policy import ecr_access_policy

ROOT = Path(__file__).resolve().parents[1]
ARN = "arn:aws:ecr:us-east-1:123456789012:repository/app"


def gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_policies", ROOT / "scripts" / "check_policies.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_policies_pass() -> None:
    check = gate()
    for _name, document, community in check.documents():
        assert check.problems(document, community) == []


def test_wider_grants_fail() -> None:
    check = gate()
    wide = json.loads(json.dumps(ecr_access_policy(ARN)))
    wide["Statement"][0]["Resource"] = "*"  # push to every repository
    assert any("RESOURCE_STAR" in p for p in check.problems(wide, True))
    escalate = json.loads(json.dumps(ecr_access_policy(ARN)))
    escalate["Statement"].append({"Effect": "Allow", "Action": "iam:CreateAccessKey", "Resource": "*"})
    assert check.problems(escalate, True)
