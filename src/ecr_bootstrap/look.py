"""Look: every read a run makes before it decides anything, AWS and GitHub overlapping. The result is a
frozen Picture; `plan` decides from it alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from .aws import AwsClients, caller_account, ecr, iam, oidc
from .cancel import workers
from .errors import BootstrapError, GitHubError
from .github import GitHub
from .inputs import Settings
from .keys.reader import parse
from .keys.record import AccessKey, Record
from .keys.rules import read_record
from .places import Place, places
from .policy import Document
from .trust import Ids, provider_arn
from .workflow import Workflow

# IAM reads may lag its writes by seconds (IAM User Guide, "Troubleshoot IAM": changes are not always
# immediately visible). A lease that looks held, or a key made moments ago that no record entry names, is
# read again once after this long.
IAM_READ_LAG = 5.0

# Per scope: GitHub's updated_at of the id and the secret (epoch seconds), or why they could not be read.
Stamps = tuple[int | None, int | None] | str


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Picture:
    """What exists before the run changes anything, on both sides. Never changed after `look`."""

    repository: ecr.Repository | None
    account: str  # "": a fresh setup that looked no further, policy included (learnt from its new repository)
    partition: str
    policy: iam.Policy | None
    lifecycle: Document | None = None
    user: iam.User | None = None
    attached: frozenset[str] = frozenset()
    keys: tuple[AccessKey, ...] = ()
    record: Record = field(default_factory=Record)  # as read: claimed and adopted, never settled here
    provider: oidc.Provider | None = None
    role: oidc.Role | None = None
    role_attached: frozenset[str] = frozenset()
    missing_environments: tuple[Place, ...] = ()
    ids: Ids = field(default_factory=_frozen)
    stamps: Mapping[str, Stamps] = field(default_factory=_frozen)  # holder scopes naming several keys


def settings_places(settings: Settings) -> list[Place]:
    return places(settings.repositories, settings.environment, settings.organization, settings.visibility)


def _account(
    aws: AwsClients, settings: Settings, looking: Future[ecr.Repository | None], user: iam.User | None
) -> tuple[str, str]:
    """(account, partition): from the user's ARN, else the repository's, else STS (or none, on a fresh
    access-key setup that learns them from the repository it creates)."""
    if user is not None:
        return user.arn.split(":")[4], user.arn.split(":")[1]
    repository = looking.result()
    if repository:
        return repository.account, repository.partition
    if settings.auth == "access-key" and not settings.dry_run:
        return "", ""
    return caller_account(aws)


def look_up_aws(aws: AwsClients, settings: Settings) -> Picture:
    """The reads, overlapped: the repository beside the user; then what hangs off the user (attached
    policies, keys) beside the policy. A run that finds neither repository nor user creates the policy
    without looking first (a missing repository means a new setup; create_policy reuses one that exists)."""
    uses_user = settings.auth == "access-key" or settings.retire_user_keys
    with workers(3) as pool:
        looking = pool.submit(ecr.find_repository, aws, settings.ecr_repository)
        user = iam.find_user(aws, settings.iam_user) if uses_user else None
        attached = keys = None
        if user is not None:
            if settings.auth == "access-key":
                attached = pool.submit(iam.attached_policies, aws, user.name)
            keys = pool.submit(iam.list_keys, aws, user.name)
        account, partition = _account(aws, settings, looking, user)
        tags = user.tags if user else []
        arn = iam.policy_arn(partition, account, settings.iam_policy)
        policy = _find_policy(aws, settings, arn, parse(tags)) if account else None
        repository = looking.result()
        wants_lifecycle = settings.ecr.keep_images or settings.ecr.expire_untagged_days
        lifecycle = ecr.lifecycle(aws, repository.name) if repository and wants_lifecycle else None
        key_list = keys.result() if keys else []
        scopes = [p.scope for p in settings_places(settings)]
        picture = Picture(
            repository,
            account,
            partition,
            policy,
            lifecycle=lifecycle,
            user=user,
            attached=frozenset(attached.result() if attached else ()),
            keys=tuple(key_list),
            record=read_record(tags, key_list, scopes, settings.run.server) if uses_user else Record(),
        )
    return _look_up_role(aws, settings, picture) if settings.auth == "oidc" else picture


def _find_policy(aws: AwsClients, settings: Settings, arn: str, record: Record) -> iam.Policy | None:
    """The policy, read at the version the record remembers (one request fewer) when it still is one."""
    name, version = record.policy_version or ("", "")
    return iam.find_policy(aws, arn, version=version if name == settings.iam_policy else "")


def _look_up_role(aws: AwsClients, settings: Settings, picture: Picture) -> Picture:
    role = oidc.find_role(aws, settings.iam_role)
    return replace(
        picture,
        provider=oidc.find_provider(aws, provider_arn(picture.partition, picture.account)),
        role=role,
        role_attached=frozenset(iam.attached_policies(aws, role.name, "role") if role else ()),
    )


def look_up_github(github: GitHub, settings: Settings, workflow: Workflow) -> tuple[tuple[Place, ...], Ids]:
    """Prove the token may write every place (reading its public key) and learn the repository ids (OIDC
    subjects, selected org visibility). Returns the environments that do not exist yet, and the ids."""
    missing = []
    for place in settings_places(settings):
        try:
            github.public_key(place)
        except GitHubError as exc:
            # An environment's secrets answer 404 when the environment does not exist (yet).
            if place.kind != "env" or exc.status != 404 or github.environment_exists(place):
                raise
            missing.append(place)
    ids: dict[str, tuple[int, int] | None] = {}
    selected = bool(settings.organization and settings.visibility == "selected")
    if settings.auth != "oidc" and not selected:
        return tuple(missing), ids
    for repository in settings.repositories:
        try:
            ids[repository] = github.repository_ids(repository)
        except GitHubError as exc:
            if selected:
                raise
            # Only the immutable subject form needs the ids: the name form still works.
            ids[repository] = None
            workflow.warning(
                f"Could not read the ids of {repository} ({exc.message}); its role trust uses the "
                "repo:OWNER/REPO subject form only.",
                title="Immutable OIDC subject skipped",
            )
    return tuple(missing), ids


def look_up_holders(github: GitHub, settings: Settings, picture: Picture) -> Picture:
    """GitHub's timestamps of the two secrets of each target whose entry names several keys (a run stopped
    while writing). Places known only from the record are never asked about: places come from the inputs."""
    names = settings.secret_names
    stamps: dict[str, Stamps] = {}
    for place in settings_places(settings):
        if len(picture.record.holders.get(place.scope, ())) < 2:
            continue
        try:
            stamps[place.scope] = (
                _stamp(github, place, names.key_id),
                _stamp(github, place, names.secret_key),
            )
        except BootstrapError as exc:
            stamps[place.scope] = exc.message
    return replace(picture, stamps=_frozen(stamps))


def _stamp(github: GitHub, place: Place, name: str) -> int | None:
    at = github.updated_at(place, name)
    return None if at is None else int(at)


def _when_sending(aws: AwsClients, work: Callable[..., Any], *args: Any) -> Any:
    """Start once the first AWS request is on the wire, so its imports are done: both sides' imports are
    CPU work under one interpreter lock, and two threads importing at once can break an import that fails
    and is undone (botocore's optional urllib3.contrib.pyopenssl: "KeyError: 'urllib3.contrib.pyopenssl'"
    on a loaded machine, when this used to give up waiting after 2 s). No deadlock: look() sets the event
    in a `finally` whatever the AWS side does."""
    aws.sending.wait()
    return work(*args)


def look(settings: Settings, aws: AwsClients, github: GitHub, workflow: Workflow) -> Picture:
    """AWS reads and the GitHub access check overlap; nothing changes until both are done."""
    with workers(1) as pool:
        checking = pool.submit(_when_sending, aws, look_up_github, github, settings, workflow)
        try:
            picture = look_up_aws(aws, settings)
        finally:
            aws.sending.set()
        missing, ids = checking.result()  # a token that cannot write secrets stops the run here
    picture = replace(picture, missing_environments=missing, ids=_frozen(ids))
    if settings.auth == "access-key" and picture.user is not None:
        picture = look_up_holders(github, settings, picture)
    return picture


def look_at_user_again(aws: AwsClients, github: GitHub, settings: Settings, picture: Picture) -> Picture:
    """The user's record and keys once IAM has caught up with writes its first read may have missed."""
    if picture.user is None:
        return picture
    time.sleep(IAM_READ_LAG)
    tags = iam.list_tags(aws, picture.user.name)  # the tags first, then the keys (as the first look)
    keys = iam.list_keys(aws, picture.user.name)
    record = read_record(tags, keys, [p.scope for p in settings_places(settings)], settings.run.server)
    return look_up_holders(github, settings, replace(picture, keys=tuple(keys), record=record))
