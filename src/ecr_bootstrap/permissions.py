"""The least-privilege policy the action's own AWS identity needs for the chosen options, generated from
what each AWS module declares it calls (aws/*.PERMISSIONS), so the README's policy cannot drift from the
code."""

from __future__ import annotations

from .aws import ecr, iam, oidc, sts
from .inputs import Settings
from .policy import Document

# Declared but never called by name: AWS checks them inside another call (tags given to a Create call,
# ECR using KMS as the caller). The proof that a new key reaches ECR (ecr:GetAuthorizationToken) is signed
# by that key, so the action's own identity needs no permission for it.
IMPLIED = frozenset(
    {
        "ecr:TagResource",
        "iam:TagPolicy",
        "iam:TagRole",
        "iam:TagOpenIDConnectProvider",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:RetireGrant",
    }
)


def declared() -> dict[str, tuple[str, str]]:
    """IAM action -> (the kind of resource it is used on, the features that need it)."""
    return {**ecr.PERMISSIONS, **iam.PERMISSIONS, **oidc.PERMISSIONS, **sts.PERMISSIONS}


def features(settings: Settings) -> set[str]:
    """Which groups of declared actions a run with these settings can use."""
    out = {"read"}
    key_mode = settings.auth == "access-key"
    if key_mode or settings.retire_user_keys:
        out.add("key-read")
    if settings.auth == "oidc":
        out.add("oidc-read")
    if settings.ecr.keep_images or settings.ecr.expire_untagged_days:
        out.add("lifecycle-read")
    if settings.dry_run:
        return out
    out.add("write")
    out.add("key-write" if key_mode else "oidc-write")
    if settings.retire_user_keys:
        out.add("retire")
    if "lifecycle-read" in out:
        out.add("lifecycle")
    if settings.tags:
        out |= {"tags", "tags-oidc"} if settings.auth == "oidc" else {"tags"}
    if settings.ecr.encryption == "KMS":
        out.add("kms")
    return out


def needed(settings: Settings) -> dict[str, str]:
    """IAM action -> resource kind, for these settings."""
    active = features(settings)
    return {a: kind for a, (kind, wants) in declared().items() if active & set(wants.split())}


def action_policy(
    settings: Settings, *, partition: str = "aws", account: str = "*", region: str = "*"
) -> Document:
    kms = settings.ecr.kms_key
    resources = {
        "repository": f"arn:{partition}:ecr:{region}:{account}:repository/{settings.ecr_repository}",
        "policy": f"arn:{partition}:iam::{account}:policy/{settings.iam_policy}",
        "user": f"arn:{partition}:iam::{account}:user/{settings.iam_user}",
        "role": f"arn:{partition}:iam::{account}:role/{settings.iam_role}",
        "provider": f"arn:{partition}:iam::{account}:oidc-provider/token.actions.githubusercontent.com",
        # A key ARN is exact; an alias or id (or the AWS-managed key) is only known in the account.
        "kms": kms if kms.startswith("arn:") else f"arn:{partition}:kms:{region}:{account}:key/*",
        "*": "*",
    }
    sids = {
        "repository": "EcrRepository",
        "policy": "ManagedPolicy",
        "user": "CiUser",
        "role": "CiRole",
        "provider": "GitHubOidcProvider",
        "kms": "KmsForEcrEncryption",
        "*": "WhoAmI",
    }
    # Attaching is limited to our policy: otherwise this identity could attach AdministratorAccess.
    attach = {"iam:AttachUserPolicy": "user", "iam:AttachRolePolicy": "role"}
    wanted = needed(settings)
    statements: list[dict[str, object]] = []
    for kind, resource in resources.items():
        actions = sorted(a for a, k in wanted.items() if k == kind and a not in attach)
        if actions:
            statements.append({"Sid": sids[kind], "Effect": "Allow", "Action": actions, "Resource": resource})
    for action, kind in attach.items():
        if action in wanted:
            statements.append(
                {
                    "Sid": "AttachOnlyTheEcrPolicyTo" + kind.capitalize(),
                    "Effect": "Allow",
                    "Action": action,
                    "Resource": resources[kind],
                    "Condition": {"ArnLike": {"iam:PolicyARN": resources["policy"]}},
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}
