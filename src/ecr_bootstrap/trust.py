"""Pure: the OIDC role's trust policy - who may assume it - built from the targets, and checked here
because moto accepts malformed documents that AWS refuses."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import InputError
from .policy import Document, to_json

PROVIDER_HOST = "token.actions.githubusercontent.com"
PROVIDER_URL = f"https://{PROVIDER_HOST}"
AUDIENCE = "sts.amazonaws.com"
ASSUME = "sts:AssumeRoleWithWebIdentity"
# IAM's default quota for a role trust policy (raisable to 4096 by a quota request), white space excluded.
MAX_TRUST_CHARS = 2048
_PROVIDER_ARN = re.compile(rf"^arn:[\w-]+:iam::\d{{12}}:oidc-provider/{re.escape(PROVIDER_HOST)}$")
_VALUE = re.compile(r"^[A-Za-z0-9_.:/@*?=+-]{1,256}$")

Ids = Mapping[str, tuple[int, int] | None]  # repository -> (owner id, repository id), when known


def provider_arn(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:oidc-provider/{PROVIDER_HOST}"


def _names(subject: str) -> str:
    """owner/repo of a full subject, immutable ids (owner@1/repo@2) dropped, lower-cased."""
    owner_repo = subject[len("repo:") :].split(":", 1)[0]
    return "/".join(part.split("@", 1)[0] for part in owner_repo.split("/")).lower()


def subjects(patterns: Sequence[str], repositories: Sequence[str], ids: Ids) -> list[str]:
    """Each target in both subject forms GitHub issues: by name, and (ids known) the immutable one."""
    wanted = {r.lower() for r in repositories}
    out: list[str] = []
    suffixes = [p for p in patterns if not p.startswith("repo:")] or ([] if patterns else ["*"])
    for repository in repositories:
        owner, name = repository.split("/")
        forms = [f"repo:{owner}/{name}"]
        known = ids.get(repository)
        if known:
            forms.append(f"repo:{owner}@{known[0]}/{name}@{known[1]}")
        out += [f"{form}:{suffix}" for form in forms for suffix in suffixes]
    for pattern in patterns:
        if pattern.startswith("repo:"):
            if _names(pattern) not in wanted:
                raise InputError(
                    "oidc-subjects",
                    f"'{pattern}' names a repository that is not a target.",
                    fix="Only target repositories may assume the role: add it to repositories, or drop it.",
                )
            out.append(pattern)
    return list(dict.fromkeys(out))


def trust_policy(provider: str, allowed: Sequence[str]) -> Document:
    """GitHub's workflows whose subject matches one of `allowed` may assume the role, and nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitHubActionsOfTheTargets",
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": ASSUME,
                "Condition": {
                    "StringEquals": {f"{PROVIDER_HOST}:aud": AUDIENCE},
                    "StringLike": {f"{PROVIDER_HOST}:sub": list(allowed)},
                },
            }
        ],
    }


def checked_trust_policy(provider: str, allowed: Sequence[str]) -> Document:
    document = trust_policy(provider, allowed)
    found = problems(document)
    if found:
        raise InputError(
            "oidc-subjects",
            "the role's trust policy would be refused: " + "; ".join(found) + ".",
            fix="Use fewer subject patterns or fewer repositories per role (another iam-role for the rest).",
        )
    return document


def problems(document: Document) -> list[str]:
    """What AWS (or our least-privilege promise) would refuse in a trust policy; empty when fine."""
    found = []
    if document.get("Version") != "2012-10-17":
        found.append("Version must be 2012-10-17")
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements:
        return [*found, "Statement must be a non-empty list"]
    for s in statements:
        if s.get("Effect") != "Allow":
            found.append("Effect must be Allow")
        principal = s.get("Principal", {})
        if not isinstance(principal, dict) or not _PROVIDER_ARN.match(str(principal.get("Federated", ""))):
            found.append("Principal must be the GitHub OIDC provider")
        if s.get("Action") != ASSUME:
            found.append(f"Action must be {ASSUME}")
        condition = s.get("Condition", {})
        aud = condition.get("StringEquals", {}).get(f"{PROVIDER_HOST}:aud")
        sub = condition.get("StringLike", {}).get(f"{PROVIDER_HOST}:sub")
        if aud != AUDIENCE:
            found.append(f"the aud condition must be {AUDIENCE}")
        if not isinstance(sub, list) or not sub:
            found.append("the sub condition must list at least one subject")
        else:
            bad = [
                v for v in sub if not isinstance(v, str) or not _VALUE.match(v) or not v.startswith("repo:")
            ]
            found += [f"subject {v!r} is malformed" for v in bad]
            found += [f"subject {v!r} does not name one repository" for v in sub if _names(str(v)).count("*")]
        if set(condition) - {"StringEquals", "StringLike"}:
            found.append("only StringEquals and StringLike conditions are expected")
    size = len(to_json(document))
    if size > MAX_TRUST_CHARS:
        found.append(f"it is {size} characters; IAM's default limit is {MAX_TRUST_CHARS}")
    return found
