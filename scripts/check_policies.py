"""Gate: the IAM policy documents the code generates pass parliament.

- The CI user's policy (what every pipeline gets) is checked with the community auditors too. Allowed, by
  name and only for ecr:GetAuthorizationToken: RESOURCE_STAR (the action has no resource-level
  permission) and CREDENTIALS_EXPOSURE (handing out a registry login token is its purpose).
- The action's own bootstrap policy is checked with parliament's standard auditors, with nothing allowed.
  (The community auditors flag any identity that may create access keys as privilege escalation, which is
  what a bootstrap identity is for; its scope is limited by resource ARNs and the attach condition.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ecr_bootstrap.permissions import action_policy
from ecr_bootstrap.policy import TOKEN_ACTION, ecr_access_policy


def settings(**values: str) -> Any:
    from ecr_bootstrap.inputs import from_values

    env = {"AWS_REGION": "eu-west-1", "GITHUB_REPOSITORY": "octo-org/app"}
    return from_values({"github-token": "unused", **values}, env)


KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ONE_ACCOUNT = {"account": "123456789012", "region": "eu-west-1"}
# (name, inputs, where): the action's own policy for those inputs.
ACTION_POLICIES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("action policy", {}, {}),
    (
        "action policy, one account and region",
        {"ecr-repository": "team/app", "iam-policy": "p", "iam-user": "u"},
        ONE_ACCOUNT,
    ),
    (
        "action policy, OIDC with every option",
        {
            "auth": "oidc",
            "retire-user-keys": "true",
            "keep-images": "10",
            "tags": "team=web",
            "encryption": "KMS",
            "kms-key": "arn:aws:kms:eu-west-1:123456789012:alias/ecr",
            "permissions-boundary": "arn:aws:iam::123456789012:policy/boundaries/CiBoundary",
        },
        {},
    ),
    (
        "action policy, keys with a KMS key and a boundary, one account and region",
        {
            "encryption": "KMS",
            "kms-key": KEY,
            "permissions-boundary": "arn:aws:iam::aws:policy/PowerUserAccess",
        },
        ONE_ACCOUNT,
    ),
    ("action policy, the AWS-managed KMS key in any region", {"encryption": "KMS"}, {}),
    ("action policy, dry run", {"dry-run": "true"}, {}),
]


def documents() -> list[tuple[str, dict[str, Any], bool]]:
    arn = "arn:aws:ecr:ap-southeast-1:123456789012:repository/fcj-workshop-app"
    out = [("CI user policy", ecr_access_policy(arn), True)]
    for name, values, where in ACTION_POLICIES:
        out.append((name, action_policy(settings(**values), **where), False))
    return out


def allowed(issue: str, detail: Any, document: dict[str, Any]) -> bool:
    actions = {
        a
        for s in document["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    if issue == "RESOURCE_STAR":
        return detail == [TOKEN_ACTION]
    if (
        issue == "CREDENTIALS_EXPOSURE"
    ):  # names no action: allowed where GetAuthorizationToken is the only one
        return TOKEN_ACTION in actions and not any(a.startswith(("iam:", "sts:")) for a in actions)
    return False


def problems(document: dict[str, Any], community: bool) -> list[str]:
    from parliament import analyze_policy_string

    policy = analyze_policy_string(json.dumps(document), include_community_auditors=community)
    return [f"{f.issue} {f.detail}" for f in policy.findings if not allowed(f.issue, f.detail, document)]


def main() -> int:
    failed = 0
    for name, document, community in documents():
        found = problems(document, community)
        failed += len(found)
        print(f"parliament: {name}: {'ok' if not found else '; '.join(found)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
