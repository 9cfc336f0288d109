"""The least-privilege policy the action's own AWS identity needs for the chosen options, generated from
what each AWS module declares it calls (aws/*.PERMISSIONS), so the README's policy cannot drift."""

from __future__ import annotations

from collections.abc import Mapping

from . import aws
from .aws import ecr, iam, oidc
from .inputs import Settings, from_values
from .policy import Document, allow
from .trust import provider_arn

# Declared but never called by name: AWS checks them inside another call (tags given to a Create call, a
# permissions boundary given to CreateUser or CreateRole, ECR using KMS as the caller). The proof that a
# new key reaches ECR (ecr:GetAuthorizationToken) is signed by that key, so the action's own identity
# needs no permission for it.
IMPLIED = frozenset(
    {
        "ecr:TagResource",
        "iam:TagPolicy",
        "iam:TagRole",
        "iam:TagOpenIDConnectProvider",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:RetireGrant",
        "iam:PutUserPermissionsBoundary",
        "iam:PutRolePermissionsBoundary",
    }
)
Conditioned = tuple[str, Document]  # (the Sid of the statement, its Condition)


def options_settings(options: Mapping[str, str], region: str, repository: str = "owner/repo") -> Settings:
    """The options as `ecr-bootstrap permissions` reads them: stand-ins for what only a run needs."""
    return from_values(
        {**options, "github-token": "unused", "aws-region": region}, {"GITHUB_REPOSITORY": repository}
    )


def declared() -> dict[str, tuple[str, str]]:
    """IAM action -> (the kind of resource it is used on, the features that need it)."""
    return {**ecr.PERMISSIONS, **iam.PERMISSIONS, **oidc.PERMISSIONS, **aws.PERMISSIONS}


def features(settings: Settings) -> set[str]:
    """Which groups of declared actions a run with these settings can use (a dry run only reads)."""
    key_mode, oidc = settings.auth == "access-key", settings.auth == "oidc"
    lifecycle = bool(settings.ecr.keep_images or settings.ecr.expire_untagged_days)
    boundary = bool(settings.permissions_boundary)
    reads = {
        "read": True,
        "key-read": key_mode or settings.retire_user_keys,
        "oidc-read": oidc,
        "lifecycle-read": lifecycle,
    }
    writes = {
        "write": True,
        "key-write": key_mode,
        "oidc-write": not key_mode,
        "retire": settings.retire_user_keys,
        "lifecycle": lifecycle,
        "tags": bool(settings.tags),
        "tags-oidc": bool(settings.tags) and oidc,
        "kms": settings.ecr.encryption == "KMS",
        "key-boundary": boundary and key_mode,
        "oidc-boundary": boundary and not key_mode,
    }
    wanted = reads if settings.dry_run else reads | writes
    return {feature for feature, on in wanted.items() if on}


def _kms(settings: Settings, partition: str, account: str, region: str) -> tuple[str, str]:
    """(the KMS resource, the repository's region) of the ECR repository's key. A key ARN is exact. IAM
    matches KMS actions against the key, never an alias, so an alias ARN gives the keys of its account and
    region; so does the AWS-managed key (kms-key empty), only known in the account. ECR takes a key of
    the repository's region only."""
    arn = settings.ecr.kms_key
    if not arn:
        return f"arn:{partition}:kms:{region}:{account}:key/*", region
    key_partition, _, key_region, key_account, resource = arn.split(":")[1:6]
    if resource.startswith("key/"):
        return arn, key_region
    return f"arn:{key_partition}:kms:{key_region}:{key_account}:key/*", key_region


def _via_ecr(partition: str, region: str) -> Document:
    """Only requests that ECR makes to KMS for this identity: kms:ViaService, which every KMS operation on
    a key accepts (KMS developer guide, conditions-kms.html#conditions-kms-via-service), names the
    service's endpoint. Without a region (the permissions command's default), any region's ECR."""
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    operator = "StringLike" if "*" in region else "StringEquals"
    return {operator: {"kms:ViaService": f"ecr.{region}.{suffix}"}}


def _conditioned(settings: Settings, resources: dict[str, str], via: Document) -> dict[str, Conditioned]:
    """IAM action -> (Sid, Condition) for the actions allowed only under a condition."""
    # Attaching is limited to our policy: otherwise this identity could attach AdministratorAccess.
    ours = {"ArnLike": {"iam:PolicyARN": resources["policy"]}}
    out: dict[str, Conditioned] = {
        "iam:AttachUserPolicy": ("AttachOnlyTheEcrPolicyToUser", ours),
        "iam:AttachRolePolicy": ("AttachOnlyTheEcrPolicyToRole", ours),
        "kms:DescribeKey": ("KmsForEcrEncryption", via),
        "kms:RetireGrant": ("KmsForEcrEncryption", via),
        # kms:GrantIsForAWSResource exists for CreateGrant, ListGrants and RevokeGrant only (KMS developer
        # guide, grant-authorization.html): in its own statement, or DescribeKey would never match.
        "kms:CreateGrant": (
            "KmsGrantsForEcrOnly",
            {**via, "Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
    }
    boundary = settings.permissions_boundary
    if boundary:
        # Without the boundary, this identity could create a user or role that it then gives any key.
        only = {"ArnEquals": {"iam:PermissionsBoundary": boundary}}  # an ARN-typed key
        out["iam:CreateUser"] = out["iam:PutUserPermissionsBoundary"] = ("CreateUserOnlyWithBoundary", only)
        out["iam:CreateRole"] = out["iam:PutRolePermissionsBoundary"] = ("CreateRoleOnlyWithBoundary", only)
    return out


def action_policy(
    settings: Settings, *, partition: str = "aws", account: str = "*", region: str = "*"
) -> Document:
    kms, kms_region = _kms(settings, partition, account, region)
    repository = f"arn:{partition}:ecr:{region}:{account}:repository/{settings.ecr_repository}"
    in_iam = f"arn:{partition}:iam::{account}"
    kinds = {  # resource kind -> (the Sid of its statement, the resource)
        "repository": ("EcrRepository", repository),
        "policy": ("ManagedPolicy", f"{in_iam}:policy/{settings.iam_policy}"),
        "user": ("CiUser", f"{in_iam}:user/{settings.iam_user}"),
        "role": ("CiRole", f"{in_iam}:role/{settings.iam_role}"),
        "provider": ("GitHubOidcProvider", provider_arn(partition, account)),
        "*": ("WhoAmI", "*"),
    }
    resources = {kind: resource for kind, (_, resource) in kinds.items()} | {"kms": kms}
    conditioned = _conditioned(settings, resources, _via_ecr(partition, kms_region))
    active = features(settings)
    wanted = {a: kind for a, (kind, wants) in declared().items() if active & set(wants.split())}
    statements = []
    for kind, (sid, resource) in kinds.items():
        actions = sorted(a for a, k in wanted.items() if k == kind and a not in conditioned)
        if actions:
            statements.append(allow(sid, actions, resource))
    grouped: dict[str, tuple[list[str], str, Document]] = {}
    for action, (sid, condition) in conditioned.items():
        if action in wanted:
            grouped.setdefault(sid, ([], resources[wanted[action]], condition))[0].append(action)
    for sid, (names, resource, condition) in grouped.items():
        statements.append(allow(sid, names[0] if len(names) == 1 else sorted(names), resource, condition))
    return {"Version": "2012-10-17", "Statement": statements}
