"""The customer-managed policy, the IAM user, its access keys and its tags (the key record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from ..errors import AwsError
from ..keys.record import AccessKey
from ..policy import Document, to_json
from . import UNSEEN_SECONDS, AwsClients, Tags, aws_tags, call, if_set, is_code, pages

PERMISSIONS = {
    "iam:GetPolicy": ("policy", "read"),
    "iam:GetPolicyVersion": ("policy", "read"),
    "iam:CreatePolicy": ("policy", "write"),
    "iam:TagPolicy": ("policy", "tags"),  # CreatePolicy with Tags
    "iam:ListPolicyVersions": ("policy", "write"),
    "iam:CreatePolicyVersion": ("policy", "write"),
    "iam:DeletePolicyVersion": ("policy", "write"),
    "iam:GetUser": ("user", "key-read"),
    "iam:CreateUser": ("user", "key-write"),
    "iam:ListAttachedUserPolicies": ("user", "key-read"),
    "iam:AttachUserPolicy": ("user", "key-write"),
    "iam:ListAccessKeys": ("user", "key-read"),
    "iam:CreateAccessKey": ("user", "key-write"),
    "iam:DeleteAccessKey": ("user", "key-write retire"),
    "iam:ListUserTags": ("user", "key-read"),
    "iam:TagUser": ("user", "key-write retire"),
    "iam:UntagUser": ("user", "key-write retire"),
    # Not called by us: checked by IAM on CreateUser with a PermissionsBoundary (as in AWS's delegation
    # example, access_policies_boundaries.html), and only for the boundary chosen (see permissions.py).
    "iam:PutUserPermissionsBoundary": ("user", "key-boundary"),
}
Identity = Literal["user", "role"]  # what a managed policy is attached to (the role: auth oidc)


@dataclass(frozen=True)
class Policy:
    arn: str
    default_version: str
    document: Document | str
    created: bool = False  # by this run


@dataclass
class User:
    name: str
    arn: str
    tags: list[dict[str, str]] = field(default_factory=list)
    boundary: str = ""  # the ARN of its permissions boundary policy, if it has one


def policy_arn(partition: str, account: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:policy/{name}"


def decoded_document(raw: Any) -> Document | str:
    # boto3 decodes the URL-encoded JSON for us; a raw string is decoded here to be safe.
    return unquote(raw) if isinstance(raw, str) else raw


def find_policy(aws: AwsClients, arn: str, *, unseen: bool = False, version: str = "") -> Policy | None:
    """`version`: the one the record remembers, read first (one request instead of two while it is still
    the default). `unseen`: IAM said it exists, so NoSuchEntity means "not visible yet" and is waited out."""
    reply = version and call(
        f"Reading version {version} of IAM policy {arn}",
        "iam:GetPolicyVersion",
        aws.iam,
        none_on="NoSuchEntity",
        PolicyArn=arn,
        VersionId=version,
    )
    if not reply or not reply["PolicyVersion"].get("IsDefaultVersion"):
        what = f"Looking up IAM policy {arn}"
        meta = call(what, "iam:GetPolicy", aws.iam, none_on="NoSuchEntity", unseen=unseen, PolicyArn=arn)
        if meta is None:
            return None
        version = meta["Policy"]["DefaultVersionId"]
        reply = call(
            f"Reading the default version of IAM policy {arn}",
            "iam:GetPolicyVersion",
            aws.iam,
            PolicyArn=arn,
            VersionId=version,
        )
    return Policy(arn, version, decoded_document(reply["PolicyVersion"]["Document"]))


def create_policy(aws: AwsClients, name: str, arn: str, document: Document, tags: Tags = ()) -> Policy:
    """Create the policy (created=True); if it exists already (made by another run since we looked, or
    not looked up at all: a new repository's policy is created first), return that one to reuse."""
    try:
        reply = call(
            f"Creating IAM policy '{name}'",
            "iam:CreatePolicy",
            aws.iam,
            PolicyName=name,
            PolicyDocument=to_json(document),
            Description="Push and pull images of one ECR repository (written by the ECR bootstrap action)",
            **if_set(Tags=aws_tags(tags)),
        )
    except AwsError as exc:
        if is_code(exc, "EntityAlreadyExists"):
            # Made moments ago (by a run that was stopped, say), it may not be visible yet: waited for.
            if (existing := find_policy(aws, arn, unseen=True)) is not None:
                return existing
            raise AwsError(
                f"IAM policy '{name}' already exists, but not as {arn} (a policy path other than '/'?), "
                f"or IAM still did not show it after {UNSEEN_SECONDS:g} s.",
                code=exc.code,
                fix="Choose another iam-policy name, or delete the other policy.",
            ) from exc
        raise
    if reply["Policy"]["Arn"] != arn:
        raise AwsError(f"IAM created policy {reply['Policy']['Arn']}, not {arn} as expected.")
    aws.created.add(arn)
    return Policy(arn, str(reply["Policy"].get("DefaultVersionId") or "v1"), document, created=True)


def update_policy(aws: AwsClients, arn: str, document: Document) -> tuple[str | None, str]:
    """Make `document` the default version; returns (the version deleted to make room or None, the new)."""
    versions = pages(
        f"Listing versions of IAM policy {arn}", "iam:ListPolicyVersions", aws.iam, "Versions", PolicyArn=arn
    )
    deleted = None
    if len(versions) >= 5:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        deleted = oldest["VersionId"]
        call(
            f"Deleting version {deleted} of IAM policy {arn} (5 versions is the most IAM keeps)",
            "iam:DeletePolicyVersion",
            aws.iam,
            PolicyArn=arn,
            VersionId=deleted,
        )
    reply = call(
        f"Creating a new default version of IAM policy {arn}",
        "iam:CreatePolicyVersion",
        aws.iam,
        PolicyArn=arn,
        PolicyDocument=to_json(document),
        SetAsDefault=True,
    )
    return deleted, str(reply["PolicyVersion"]["VersionId"])


def find_user(aws: AwsClients, name: str) -> User | None:
    reply = call(
        f"Looking up IAM user '{name}'", "iam:GetUser", aws.iam, none_on="NoSuchEntity", UserName=name
    )
    if reply is None:
        return None
    data = reply["User"]
    boundary = str((data.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") or "")
    return User(data["UserName"], data["Arn"], list(data.get("Tags", [])), boundary)


def boundary_warning(name: str, current: str, wanted: str) -> str:
    """A reused user keeps its boundary (changing it is not this action's to do): what to say when it is
    not the one permissions-boundary asks for; "" when it is, or none is asked for."""
    if not wanted or current == wanted:
        return ""
    has = f"the permissions boundary {current}" if current else "no permissions boundary"
    return (
        f"IAM user '{name}' exists with {has}, not {wanted} (permissions-boundary); it was left as it is. "
        f"To set it: aws iam put-user-permissions-boundary --user-name {name} --permissions-boundary {wanted}"
    )


def create_user(
    aws: AwsClients, name: str, tags: Tags, record: list[dict[str, str]], boundary: str = ""
) -> User:
    """Create the user with its tags, the key record's first entries (the intent) and its permissions
    boundary in one request."""
    all_tags = aws_tags(tags) + record
    try:
        reply = call(
            f"Creating IAM user '{name}'",
            "iam:CreateUser",
            aws.iam,
            UserName=name,
            **if_set(Tags=all_tags, PermissionsBoundary=boundary),
        )
    except AwsError as exc:
        if is_code(exc, "EntityAlreadyExists"):
            # Another run created it since we looked: that run makes its first key, not this one.
            raise AwsError(
                f"IAM user '{name}' was created by another run since this one looked; that run makes its "
                "first access key. This run stopped before making a key.",
                code=exc.code,
                fix="Rerun once the other run has finished; serialise runs for one user with a workflow "
                "concurrency group.",
                anchor="keys",
            ) from exc
        raise
    aws.created.add(name)
    return User(name=name, arn=reply["User"]["Arn"], tags=all_tags, boundary=boundary)


def attached_policies(aws: AwsClients, name: str, kind: Identity = "user") -> set[str]:
    """The managed policies attached to the IAM user (or role) `name`."""
    attached = pages(
        f"Listing policies attached to IAM {kind} '{name}'",
        f"iam:ListAttached{kind.title()}Policies",
        aws.iam,
        "AttachedPolicies",
        **{f"{kind.title()}Name": name},
        MaxItems=1000,
    )
    return {p["PolicyArn"] for p in attached}


def attach_policy(aws: AwsClients, name: str, arn: str, kind: Identity = "user") -> None:
    call(
        f"Attaching IAM policy {arn} to {kind} '{name}'",
        f"iam:Attach{kind.title()}Policy",
        aws.iam,
        # made moments ago: IAM may not show it yet (only the user's attachment waits; the role's never has)
        unseen=kind == "user" and bool({name, arn} & aws.created),
        **{f"{kind.title()}Name": name},
        PolicyArn=arn,
    )


def list_keys(aws: AwsClients, user: str) -> list[AccessKey]:
    keys = pages(
        f"Listing access keys of IAM user '{user}'",
        "iam:ListAccessKeys",
        aws.iam,
        "AccessKeyMetadata",
        UserName=user,
    )
    return [AccessKey(k["AccessKeyId"], k["CreateDate"], k.get("Status", "Active")) for k in keys]


def create_key(aws: AwsClients, user: str) -> tuple[str, str, Any]:
    """Returns (id, secret, create date). The caller masks the secret before anything else."""
    try:
        reply = call(
            f"Creating an access key for IAM user '{user}'",
            "iam:CreateAccessKey",
            aws.iam,
            unseen=user in aws.created,
            UserName=user,
        )["AccessKey"]
    except AwsError as exc:
        if is_code(exc, "LimitExceeded"):
            raise AwsError(
                f"IAM user '{user}' got its second access key after this run looked: another run is "
                "rotating it right now. Nothing was changed.",
                code=exc.code,
                fix="Let the other run finish, then rerun; runs for the same user are best serialised "
                "(a workflow concurrency group).",
                anchor="keys",
            ) from exc
        raise
    return reply["AccessKeyId"], reply["SecretAccessKey"], reply["CreateDate"]


def delete_key(aws: AwsClients, user: str, key_id: str) -> bool:
    """False when the key was already gone (which is what was wanted, but tells that a read was stale)."""
    reply = call(
        f"Deleting access key {key_id} of IAM user '{user}'",
        "iam:DeleteAccessKey",
        aws.iam,
        none_on="NoSuchEntity",
        UserName=user,
        AccessKeyId=key_id,
    )
    return reply is not None  # botocore answers a dict (ResponseMetadata at least) to every success


def list_tags(aws: AwsClients, user: str) -> list[dict[str, str]]:
    return pages(
        f"Reading the tags of IAM user '{user}'",
        "iam:ListUserTags",
        aws.iam,
        "Tags",
        UserName=user,
        MaxItems=1000,
    )


def tag_user(aws: AwsClients, user: str, tags: list[dict[str, str]]) -> None:
    if tags:
        call(
            f"Recording key holders in the tags of IAM user '{user}'",
            "iam:TagUser",
            aws.iam,
            UserName=user,
            Tags=tags,
        )


def untag_user(aws: AwsClients, user: str, keys: list[str]) -> None:
    if keys:
        call(
            f"Removing key records from the tags of IAM user '{user}'",
            "iam:UntagUser",
            aws.iam,
            UserName=user,
            TagKeys=keys,
        )
