"""The action's own AWS policy is generated from the code and covers every call a run makes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

from ecr_bootstrap import bootstrap_role_steps
from ecr_bootstrap.aws.iam import Identity
from ecr_bootstrap.permissions import IMPLIED, declared
from tests.stand_ins.checks import (
    POLICY,
    setup,
    widen_policy,
)
from tests.stand_ins.harness import ROOT, Stack

SRC = ROOT / "src" / "ecr_bootstrap"


def call_sites(text: str, kinds: tuple[str, ...] = get_args(Identity)) -> set[str]:
    """The permissions named where calls are made (`call(what, "iam:GetUser", aws.iam, ...)`); one named
    for either identity (f"iam:Attach{kind.title()}Policy") stands for each of `kinds`."""
    named = re.findall(r'"((?:ecr|iam|sts):[A-Za-z{}.()]+)",\s*aws\.', text)
    return {n.replace("{kind.title()}", kind.title()) for n in named for kind in kinds}


def aws_functions(names: set[str]) -> str:
    """The source of the functions under aws/ with these names."""
    chunks = [c for p in (SRC / "aws").glob("*.py") for c in re.split(r"\n(?=def )", p.read_text())]
    return "".join(c for c in chunks if (m := re.match(r"def (\w+)", c)) and m[1] in names)


def test_every_call_site_names_a_declared_permission() -> None:
    role = SRC / "bootstrap_role_steps.py"  # bootstrap-role runs as an administrator, not as the action
    named = set().union(*(call_sites(p.read_text()) for p in SRC.rglob("*.py") if p != role))
    assert named, "no call sites found"
    assert named <= set(declared()), named - set(declared())
    assert set(declared()) - named <= IMPLIED
    # bootstrap-role's own calls, and those of the aws/ functions it calls (on roles only), are in the
    # list its docs give
    text = role.read_text()
    used = call_sites(text) | call_sites(aws_functions(set(re.findall(r"(\w+)\(", text))), ("role",))
    assert {"iam:GetRole", "iam:CreateRole", "iam:PutRolePolicy"} <= used, used
    assert used <= set(bootstrap_role_steps.NEEDED), used - set(bootstrap_role_steps.NEEDED)


def test_recorded_operations_are_all_declared(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    widen_policy(stack, action="*")
    assert stack.run({"github-token": token}).returncode == 0
    assert stack.run({"github-token": token}).returncode == 0
    # What the action's own identity sent; the proof (ecr:GetAuthorizationToken) is signed by the new key.
    recorded = {c.operation for c in stack.aws.log if c.access_key == "testing"}
    assert recorded <= set(declared()), recorded - set(declared())
    proofs = {c.operation for c in stack.aws.log if c.access_key != "testing"}
    assert proofs == {"ecr:GetAuthorizationToken"}, proofs


def readme_policy(text: str) -> str:
    section = text.split("<!-- permissions:start -->", 1)[1].split("<!-- permissions:end -->", 1)[0]
    return section.split("```json\n", 1)[1].split("```", 1)[0]


def test_readme_policy_is_the_generated_one() -> None:
    printed = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), "permissions"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert readme_policy(Path(ROOT / "README.md").read_text()) == printed
    doc = json.loads(printed)
    attach = next(s for s in doc["Statement"] if s["Action"] == "iam:AttachUserPolicy")
    assert attach["Condition"] == {"ArnLike": {"iam:PolicyARN": f"arn:aws:iam::*:policy/{POLICY}"}}
    assert all(s["Resource"] != "*" for s in doc["Statement"] if s["Sid"] != "WhoAmI")
