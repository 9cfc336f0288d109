"""GitHub's OIDC identity provider (one per account) and the role the targets assume through it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AwsError
from ..policy import Document, to_json
from ..trust import AUDIENCE, PROVIDER_URL
from . import AwsClients, Tags, aws_tags, call, if_set, is_code
from .iam import decoded_document

PERMISSIONS = {
    "iam:GetOpenIDConnectProvider": ("provider", "oidc-read"),
    "iam:CreateOpenIDConnectProvider": ("provider", "oidc-write"),
    "iam:AddClientIDToOpenIDConnectProvider": ("provider", "oidc-write"),
    "iam:TagOpenIDConnectProvider": ("provider", "tags-oidc"),  # CreateOpenIDConnectProvider with Tags
    "iam:GetRole": ("role", "oidc-read"),
    "iam:CreateRole": ("role", "oidc-write"),
    "iam:TagRole": ("role", "tags-oidc"),  # CreateRole with Tags
    "iam:UpdateAssumeRolePolicy": ("role", "oidc-write"),
    "iam:ListAttachedRolePolicies": ("role", "oidc-read"),
    "iam:AttachRolePolicy": ("role", "oidc-write"),
    # Not called by us: checked by IAM on CreateRole with a PermissionsBoundary (as on CreateUser, iam.py).
    "iam:PutRolePermissionsBoundary": ("role", "oidc-boundary"),
}


@dataclass(frozen=True)
class Provider:
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    trust: Document | str
    boundary: str = ""  # the ARN of its permissions boundary policy, if it has one
    tags: Tags = ()


def find_provider(aws: AwsClients, arn: str) -> Provider | None:
    reply = call(
        "Looking up GitHub's OIDC provider",
        "iam:GetOpenIDConnectProvider",
        aws.iam,
        none_on="NoSuchEntity",
        OpenIDConnectProviderArn=arn,
    )
    return None if reply is None else Provider(tuple(reply.get("ClientIDList", [])))


def create_provider(aws: AwsClients, tags: Tags) -> None:
    call(
        "Creating GitHub's OIDC provider",
        "iam:CreateOpenIDConnectProvider",
        aws.iam,
        none_on="EntityAlreadyExists",  # one per account: another run made it; reuse
        Url=PROVIDER_URL,
        ClientIDList=[AUDIENCE],
        # IAM no longer checks thumbprints for this provider; the API still takes the parameter.
        **if_set(Tags=aws_tags(tags)),
    )


def add_audience(aws: AwsClients, arn: str) -> None:
    call(
        f"Adding the audience {AUDIENCE} to GitHub's OIDC provider",
        "iam:AddClientIDToOpenIDConnectProvider",
        aws.iam,
        OpenIDConnectProviderArn=arn,
        ClientID=AUDIENCE,
    )


def find_role(aws: AwsClients, name: str) -> Role | None:
    reply = call(
        f"Looking up IAM role '{name}'", "iam:GetRole", aws.iam, none_on="NoSuchEntity", RoleName=name
    )
    if reply is None:
        return None
    data = reply["Role"]
    return Role(
        data["RoleName"],
        data["Arn"],
        decoded_document(data.get("AssumeRolePolicyDocument", {})),
        str((data.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") or ""),
        tuple((str(t["Key"]), str(t["Value"])) for t in data.get("Tags", [])),
    )


def create_role(
    aws: AwsClients, name: str, trust: Document, tags: Tags, boundary: str = "", description: str = ""
) -> Role:
    """The new role; one that another run made since the look is reused, unless `description` names
    another command's role (bootstrap-role's), which is never taken over that way: its plan checks the
    role's tags."""
    try:
        reply = call(
            f"Creating IAM role '{name}'",
            "iam:CreateRole",
            aws.iam,
            RoleName=name,
            AssumeRolePolicyDocument=to_json(trust),
            Description=description
            or "Assumed by GitHub Actions of the target repositories to push to ECR (ECR bootstrap action)",
            MaxSessionDuration=3600,
            **if_set(Tags=aws_tags(tags), PermissionsBoundary=boundary),
        )
    except AwsError as exc:
        if is_code(exc, "EntityAlreadyExists") and not description and (found := find_role(aws, name)):
            return found
        raise
    return Role(name, reply["Role"]["Arn"], trust, boundary, tags)


def update_trust(aws: AwsClients, name: str, trust: Document) -> None:
    call(
        f"Updating the trust policy of IAM role '{name}'",
        "iam:UpdateAssumeRolePolicy",
        aws.iam,
        RoleName=name,
        PolicyDocument=to_json(trust),
    )
