"""One run, phase by phase: look (read-only, AWS and GitHub overlapping) -> provision -> rotate."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from .aws import AwsClients, ecr, iam, sts
from .errors import BootstrapError, RotationError
from .github import GitHub
from .inputs import Settings
from .policy import Document, ecr_access_policy, same_policy
from .records import (
    AccessKey,
    KeyPlan,
    KeyPlanError,
    Record,
    parse,
    plan_keys,
    repo_scope,
    settle,
    unsettled,
)
from .report import Report
from .rotation import ID_SECRET, KEY_SECRET, Rotation, Target
from .workflow import Workflow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Found:
    """What exists before the run changes anything."""

    repository: ecr.Repository | None
    account: str
    partition: str
    policy: iam.Policy | None
    user: iam.User | None
    attached: set[str]
    keys: list[AccessKey]
    record: Record


def look_up_aws(aws: AwsClients, settings: Settings) -> Found:
    repository = ecr.find_repository(aws, settings.ecr_repository)
    if repository:
        account, partition = repository.account, repository.partition
    else:
        account, partition = sts.caller_account(aws)
    policy = iam.find_policy(aws, iam.policy_arn(partition, account, settings.iam_policy))
    user = iam.find_user(aws, settings.iam_user)
    attached = iam.attached_policies(aws, user.name) if user else set()
    keys = iam.list_keys(aws, user.name) if user else []
    record = parse(user.tags if user else [])
    record.adopt(keys)
    return Found(repository, account, partition, policy, user, attached, keys, record)


def check_tokens(github: GitHub, repositories: tuple[str, ...]) -> None:
    for repository in repositories:
        github.public_key(repository)


def run(
    settings: Settings,
    aws: AwsClients,
    github: GitHub,
    workflow: Workflow,
    report: Report,
    now: Callable[[], datetime] = utcnow,
) -> None:
    # -- 1. look: AWS reads and the GitHub access check overlap; nothing changes until both are done ----
    with workflow.group("Checking AWS state and GitHub access"):
        with ThreadPoolExecutor(max_workers=1) as pool:
            access = pool.submit(check_tokens, github, settings.repositories)
            found = look_up_aws(aws, settings)
            access.result()  # a token that cannot write secrets stops the run here
        repaired = _settle(github, workflow, found.record, now())
        targets = [
            Target(r, repo_scope(r), found.record.holders.get(repo_scope(r), ()))
            for r in settings.repositories
        ]
        try:
            plan = plan_keys(
                found.keys,
                found.record,
                [t.scope for t in targets],
                now(),
                settings.retire_unmanaged_keys,
            )
        except KeyPlanError as exc:
            raise RotationError(
                f"No new access key can be created safely for {settings.iam_user}: {exc}. "
                "Nothing was changed.",
                fix="Free a key slot: delete in IAM a key that is not created by this action once nothing "
                "uses it (or set retire-unmanaged-keys: true), or delete a key held by repositories "
                "(they cannot push until this action runs for them again), then rerun. If a run is in "
                "flight, wait for it.",
            ) from exc
        targets += _shared_holders(
            github, workflow, found.record, plan, repaired - {t.scope for t in targets}
        )
        workflow.info(
            f"ECR repository {'exists' if found.repository else 'is new'}; "
            f"policy {'exists' if found.policy else 'is new'}; user {'exists' if found.user else 'is new'}"
            f" with {len(found.keys)} access key(s); {len(targets)} target(s)."
        )

    # -- 2. provision ------------------------------------------------------------------------------
    with workflow.group("ECR repository"):
        repository = found.repository
        if repository is None:
            repository = ecr.create_repository(aws, settings.ecr_repository)
            report.add("ECR repository", repository.name, "created", "private, scan on push")
        else:
            report.add("ECR repository", repository.name, "reused")
        report.repository_uri, report.registry = repository.uri, repository.registry
        workflow.info(f"Repository URI: {repository.uri}")

    with workflow.group("IAM policy"):
        document = ecr_access_policy(repository.arn)
        report.policy_arn = _ensure_policy(aws, settings, found, document, report)
        workflow.info(f"Policy: {report.policy_arn}")

    with workflow.group("IAM user"):
        user = found.user
        if user is None:
            user = iam.create_user(aws, settings.iam_user)
            report.add("IAM user", user.name, "created", "no console password")
        else:
            report.add("IAM user", user.name, "reused")
        report.user_arn = user.arn
        if report.policy_arn not in found.attached:
            iam.attach_policy(aws, user.name, report.policy_arn)
            report.add("Policy attachment", settings.iam_policy, "created", f"attached to {user.name}")
        else:
            report.add("Policy attachment", settings.iam_policy, "reused")
        workflow.info(f"User: {user.arn}")

    # -- 3. rotate ---------------------------------------------------------------------------------
    with workflow.group("Access key and GitHub secrets"):
        Rotation(
            aws=aws,
            github=github,
            workflow=workflow,
            report=report,
            user=user,
            keys=found.keys,
            record=found.record,
            plan=plan,
            targets=targets,
            repository_uri=repository.uri,
            retire_unmanaged=settings.retire_unmanaged_keys,
            key_wait_seconds=settings.key_wait_seconds,
            lease_seconds=settings.lease_seconds,
            now=now,
        ).run()


def _ensure_policy(
    aws: AwsClients, settings: Settings, found: Found, document: Document, report: Report
) -> str:
    arn = iam.policy_arn(found.partition, found.account, settings.iam_policy)
    existing = found.policy
    if existing is None:
        existing = iam.create_policy(aws, settings.iam_policy, arn, document)
        if existing is None:
            report.add("IAM policy", settings.iam_policy, "created", "least privilege")
            return arn
    if same_policy(existing.document, document):
        report.add("IAM policy", settings.iam_policy, "reused", f"default version {existing.default_version}")
        return existing.arn
    deleted = iam.update_policy(aws, existing.arn, document)
    detail = f"default version {existing.default_version} differed; new default version made"
    if deleted:
        detail += f" (deleted oldest version {deleted})"
    report.add("IAM policy", settings.iam_policy, "updated", detail)
    return existing.arn


def _settle(github: GitHub, workflow: Workflow, record: Record, now: datetime) -> set[str]:
    """Entries a crashed or failed run left saying "old or new key": find out from GitHub which one each
    target holds, so that the other key can go. Returns the scopes left holding no working pair."""
    broken = set()
    for scope, ids in unsettled(record, now).items():
        repository = scope.split(":", 1)[1]
        try:
            github.public_key(repository)
            id_at = github.secret_updated_at(repository, ID_SECRET)
            secret_at = github.secret_updated_at(repository, KEY_SECRET)
        except BootstrapError as exc:
            workflow.warning(f"Could not tell which key {repository} holds ({exc.message}); both are kept.")
            continue
        held = settle(ids, record, id_at, secret_at)
        if held is None:
            continue
        record.holders[scope] = held
        what = f"holds {held[0]}" if held else "holds a mismatched pair: it will be written anew"
        workflow.info(f"An earlier run stopped while writing {repository}; it {what}.")
        if not held:
            broken.add(scope)
    return broken


def _shared_holders(
    github: GitHub, workflow: Workflow, record: Record, plan: KeyPlan, repaired: set[str]
) -> list[Target]:
    """Other repositories holding a key this run replaces get the new key too, when the token may write
    them; otherwise their key is kept (and the summary says so). So do repositories an earlier run left
    with a mismatched pair."""
    out = []
    for scope in sorted(set(plan.extra_scopes) | repaired):
        repository = scope.split(":", 1)[1]
        try:
            github.public_key(repository)
        except BootstrapError as exc:
            workflow.warning(
                f"{repository} holds this user's current key but the token cannot write its secrets "
                f"({exc.message}); it keeps its key, so that key is not retired.",
                title="Shared key kept",
            )
            continue
        out.append(Target(repository, scope, record.holders[scope], requested=False))
    return out
