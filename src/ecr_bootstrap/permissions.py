"""The least-privilege policy the action's own AWS identity needs, generated from what each AWS module
declares it calls (aws/*.PERMISSIONS), so the README's policy cannot drift from the code."""

from __future__ import annotations

from .aws import ecr, iam, sts
from .policy import Document


def declared() -> dict[str, str]:
    """IAM action -> the kind of resource it is used on."""
    return {**ecr.PERMISSIONS, **iam.PERMISSIONS, **sts.PERMISSIONS}


def action_policy(
    ecr_repository: str,
    iam_policy: str,
    iam_user: str,
    *,
    partition: str = "aws",
    account: str = "*",
    region: str = "*",
) -> Document:
    resources = {
        "repository": f"arn:{partition}:ecr:{region}:{account}:repository/{ecr_repository}",
        "policy": f"arn:{partition}:iam::{account}:policy/{iam_policy}",
        "user": f"arn:{partition}:iam::{account}:user/{iam_user}",
        "*": "*",
    }
    sids = {"repository": "EcrRepository", "policy": "ManagedPolicy", "user": "CiUser", "*": "WhoAmI"}
    # Attaching is limited to our policy: otherwise this identity could attach AdministratorAccess.
    attach = "iam:AttachUserPolicy"
    statements: list[dict[str, object]] = []
    for kind, resource in resources.items():
        actions = sorted(a for a, k in declared().items() if k == kind and a != attach)
        statements.append({"Sid": sids[kind], "Effect": "Allow", "Action": actions, "Resource": resource})
    statements.append(
        {
            "Sid": "AttachOnlyTheEcrPolicy",
            "Effect": "Allow",
            "Action": attach,
            "Resource": resources["user"],
            "Condition": {"ArnLike": {"iam:PolicyARN": resources["policy"]}},
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}
