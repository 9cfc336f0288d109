"""The private ECR repository: find it, create it with the chosen settings, reconcile them on reuse."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ..errors import AwsError
from ..inputs import EcrSettings
from ..policy import Document
from . import AwsClients, Tags, aws_tags, call, error_code, if_set, is_code

PERMISSIONS = {
    "ecr:DescribeRepositories": ("repository", "read"),
    "ecr:CreateRepository": ("repository", "write"),
    "ecr:PutImageScanningConfiguration": ("repository", "write"),
    "ecr:PutImageTagMutability": ("repository", "write"),
    "ecr:GetLifecyclePolicy": ("repository", "lifecycle-read"),
    "ecr:PutLifecyclePolicy": ("repository", "lifecycle"),
    "ecr:TagResource": ("repository", "tags"),  # CreateRepository with tags
    # Not called by us: ECR calls KMS as the caller when a repository is created with a KMS key.
    "kms:DescribeKey": ("kms", "kms"),
    "kms:CreateGrant": ("kms", "kms"),
    "kms:RetireGrant": ("kms", "kms"),
}


@dataclass(frozen=True)
class Repository:
    name: str
    arn: str
    uri: str
    account: str
    scan_on_push: bool = True
    tag_mutability: str = "MUTABLE"
    encryption: str = "AES256"
    kms_key: str = ""

    @property
    def registry(self) -> str:
        return self.uri.split("/", 1)[0]

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]


def _from_api(data: dict[str, Any]) -> Repository:
    encryption = data.get("encryptionConfiguration") or {}
    return Repository(
        name=data["repositoryName"],
        arn=data["repositoryArn"],
        uri=data["repositoryUri"],
        account=data["registryId"],
        scan_on_push=bool((data.get("imageScanningConfiguration") or {}).get("scanOnPush", False)),
        tag_mutability=str(data.get("imageTagMutability") or "MUTABLE"),
        encryption=str(encryption.get("encryptionType") or "AES256"),
        kms_key=str(encryption.get("kmsKey") or ""),
    )


def find_repository(aws: AwsClients, name: str) -> Repository | None:
    reply = call(
        f"Looking up ECR repository '{name}'",
        "ecr:DescribeRepositories",
        aws.client("ecr"),
        none_on="RepositoryNotFoundException",
        repositoryNames=[name],
    )
    return None if reply is None else _from_api(reply["repositories"][0])


def create_repository(aws: AwsClients, name: str, settings: EcrSettings, tags: Tags = ()) -> Repository:
    try:
        reply = call(
            f"Creating ECR repository '{name}'",
            "ecr:CreateRepository",
            aws.client("ecr"),
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": settings.scan_on_push},
            imageTagMutability=settings.tag_mutability,
            # kms-key is refused without encryption KMS (inputs.py), so it is empty with AES256.
            encryptionConfiguration=if_set(encryptionType=settings.encryption, kmsKey=settings.kms_key),
            **if_set(tags=aws_tags(tags)),
        )
    except AwsError as exc:
        # Another run created it between our look-up and now: that one is ours to reuse.
        if is_code(exc, "RepositoryAlreadyExistsException") and (found := find_repository(aws, name)):
            return found
        raise
    return _from_api(reply["repository"])


def differences(repository: Repository, settings: EcrSettings) -> tuple[list[str], list[str]]:
    """(what a reuse can reconcile, what it cannot: encryption is fixed at creation). Pure."""
    fixable, fixed = [], []
    if repository.scan_on_push != settings.scan_on_push:
        fixable.append(f"scan on push {repository.scan_on_push} -> {settings.scan_on_push}")
    if repository.tag_mutability != settings.tag_mutability:
        fixable.append(f"tag mutability {repository.tag_mutability} -> {settings.tag_mutability}")
    if repository.encryption != settings.encryption or not same_kms_key(settings.kms_key, repository.kms_key):
        fixed.append(
            f"encryption is {repository.encryption}{' ' + repository.kms_key if repository.kms_key else ''}, "
            f"not {settings.encryption}{' ' + settings.kms_key if settings.kms_key else ''}"
        )
    return fixable, fixed


def same_kms_key(given: str, kept: str) -> bool:
    """Whether the repository's key (`kept`, as ECR answers it) is the kms-key input (`given`). Pure. ECR
    keeps the key an alias names at creation and answers that key's ARN, so an alias matches any key of
    its partition, region and account: which key the alias named then cannot be read back (the alias may
    have moved since), and the action's KMS permissions hold only for ECR's own requests. Empty (the
    AWS-managed key): any key."""
    if not given or given == kept:
        return True
    prefix, _, resource = given.rpartition(":")
    return resource.startswith("alias/") and kept.startswith(prefix + ":key/")


def reconcile(aws: AwsClients, repository: Repository, settings: EcrSettings) -> None:
    if repository.scan_on_push != settings.scan_on_push:
        call(
            f"Setting scan on push of ECR repository '{repository.name}'",
            "ecr:PutImageScanningConfiguration",
            aws.client("ecr"),
            repositoryName=repository.name,
            imageScanningConfiguration={"scanOnPush": settings.scan_on_push},
        )
    if repository.tag_mutability != settings.tag_mutability:
        call(
            f"Setting tag mutability of ECR repository '{repository.name}'",
            "ecr:PutImageTagMutability",
            aws.client("ecr"),
            repositoryName=repository.name,
            imageTagMutability=settings.tag_mutability,
        )


def lifecycle(aws: AwsClients, name: str) -> Document | None:
    reply = call(
        f"Reading the lifecycle policy of ECR repository '{name}'",
        "ecr:GetLifecyclePolicy",
        aws.client("ecr"),
        none_on="LifecyclePolicyNotFoundException",
        repositoryName=name,
    )
    return None if reply is None else json.loads(reply["lifecyclePolicyText"])


def put_lifecycle(aws: AwsClients, name: str, document: Document) -> None:
    call(
        f"Writing the lifecycle policy of ECR repository '{name}'",
        "ecr:PutLifecyclePolicy",
        aws.client("ecr"),
        repositoryName=name,
        lifecyclePolicyText=json.dumps(document),
    )


# What AWS answers while a new key has not yet reached every endpoint (IAM is eventually consistent).
KEY_NOT_YET = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "AuthFailure",
}
# What ECR answers while the key is known but its policy does not (yet) let it in: retried too, since a
# policy attached or changed moments ago also takes a while to apply; if it lasts, the key cannot reach ECR.
DENIED = {"AccessDeniedException", "AccessDenied"}


def key_client(aws: AwsClients, key_id: str, secret: str) -> Any:
    """An ECR client signing with the new key, for wait_until_authorized. Made in the thread that owns
    `aws`: a botocore client is safe to share across threads once made, its session is not."""
    return aws.client("ecr", aws_access_key_id=key_id, aws_secret_access_key=secret)


def wait_until_authorized(client: Any, key_id: str, timeout: float) -> int:
    """Ask ECR for a registry token (what `docker login` does first) with the new key (`key_client`) until
    ECR answers; returns the number of tries. It proves that the key authenticates and that its user's
    policy is in effect (no boundary, SCP or missing attachment denies it). The new key makes the call:
    the action's own identity needs no permission for it."""
    from botocore.exceptions import BotoCoreError, ClientError

    failed = f"Asking ECR for a registry token with the new access key {key_id} failed"
    deadline, delay, tries = time.monotonic() + timeout, 1.0, 0
    while True:
        tries += 1
        try:
            client.get_authorization_token()
            return tries
        except BotoCoreError as exc:
            raise AwsError(f"{failed}: {exc}") from exc
        except ClientError as exc:
            code = error_code(exc)
            if code not in KEY_NOT_YET | DENIED:
                raise AwsError(f"{failed}: {code}", code=code) from exc
            if time.monotonic() + delay > deadline:
                raise _not_authorized(key_id, code, timeout) from exc
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


def _not_authorized(key_id: str, code: str, timeout: float) -> AwsError:
    if code in DENIED:
        return AwsError(
            f"The new access key {key_id} works (AWS knows it) but cannot reach ECR: "
            f"ecr:GetAuthorizationToken was still denied ({code}) after {timeout:g} s. Something outside "
            "the action's policy denies it: a permissions boundary on the user, an organization SCP, or a "
            "policy of the user with an explicit Deny; or the action's policy is not attached.",
            code=code,
            fix="Look at the user's permissions boundary, the account's SCPs and the user's other policies "
            "(IAM policy simulator: ecr:GetAuthorizationToken for the user), allow ECR, then rerun.",
            anchor="keys",
        )
    return AwsError(
        f"The new access key {key_id} was still not accepted by AWS after {timeout:g} s ({code}).",
        code=code,
        fix="IAM may be slow to propagate keys right now: rerun, or raise key-wait-seconds.",
    )


def describe(e: EcrSettings) -> str:
    """The repository's settings, as the plan shows them."""
    scan = "on" if e.scan_on_push else "off"
    kms = f" ({e.kms_key})" if e.kms_key else ""
    return f"private, scan on push {scan}, tags {e.tag_mutability}, {e.encryption}{kms}"


def describe_lifecycle(e: EcrSettings) -> str:
    keep = f"keep the last {e.keep_images} images" if e.keep_images else ""
    expire = f"expire untagged images after {e.expire_untagged_days} days" if e.expire_untagged_days else ""
    return "; ".join(part for part in (keep, expire) if part)
