"""Pure IAM policy documents: what the CI identity may do, and how to compare documents."""

from __future__ import annotations

import json
from typing import Any

# The push/pull actions of the seed procedure, scoped to one repository.
REPOSITORY_ACTIONS: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# GetAuthorizationToken has no resource-level permission: it can only be granted on "*".
TOKEN_ACTION = "ecr:GetAuthorizationToken"

Document = dict[str, Any]
_LISTS = ("Action", "NotAction", "Resource", "NotResource")  # compared as sets


def ecr_access_policy(repository_arn: str) -> Document:
    """The least-privilege policy for pushing and pulling images of one repository."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            allow("PushPullRepository", list(REPOSITORY_ACTIONS), repository_arn),
            allow("GetRegistryLoginToken", TOKEN_ACTION, "*"),
        ],
    }


def allow(sid: str, action: str | list[str], resource: str, condition: Document | None = None) -> Document:
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource} | (
        {"Condition": condition} if condition else {}
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def canonical(document: Document | str) -> tuple[Any, ...]:
    """A form in which two documents that grant the same are equal (order and Sid ignored)."""
    doc = json.loads(document) if isinstance(document, str) else document
    statements = [
        (
            s.get("Effect"),
            *(tuple(sorted(_as_list(s.get(key, [])))) for key in _LISTS),
            json.dumps(s.get("Condition"), sort_keys=True),
            json.dumps(s.get("Principal"), sort_keys=True),
        )
        for s in _as_list(doc.get("Statement", []))
    ]
    return (doc.get("Version"), tuple(sorted(statements, key=repr)))


def same_policy(a: Document | str, b: Document | str) -> bool:
    return canonical(a) == canonical(b)


def to_json(document: Document) -> str:
    """Compact JSON: IAM counts managed-policy size without white space."""
    return json.dumps(document, separators=(",", ":"))


def lifecycle_policy(keep_images: int | None, untagged_days: int | None) -> Document | None:
    """ECR lifecycle rules from the two simple inputs; None when neither is set. The "any" rule must
    have the lowest priority (the highest number), so the untagged rule comes first."""
    wanted: list[tuple[str, Document, int]] = []  # (description, selection, its count)
    if untagged_days:
        untagged = {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days"}
        wanted.append((f"Expire untagged images after {untagged_days} days", untagged, untagged_days))
    if keep_images:
        newest = {"tagStatus": "any", "countType": "imageCountMoreThan"}
        wanted.append((f"Keep only the last {keep_images} images", newest, keep_images))
    rules = [
        {
            "rulePriority": priority,
            "description": description,
            "selection": {**selection, "countNumber": count},
            "action": {"type": "expire"},
        }
        for priority, (description, selection, count) in enumerate(wanted, 1)
    ]
    return {"rules": rules} if rules else None


def difference(current: Document | str, wanted: Document) -> str:
    """What `wanted` would add to and remove from `current`, as people read grants."""
    has, wants = (  # each statement's Action (1) on its Resource (3)
        {f"{action} on {resource}" for s in canonical(doc)[1] for action in s[1] for resource in s[3]}
        for doc in (current, wanted)
    )
    changes = (("remove", has - wants), ("add", wants - has))
    return (
        "; ".join(f"would {verb} " + ", ".join(sorted(g)) for verb, g in changes if g)
        or "conditions or effects differ"
    )
