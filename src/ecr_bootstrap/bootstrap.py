"""One run, phase by phase: look (read-only, AWS and GitHub overlapping) -> plan -> provision -> deliver.

Deliver is the key rotation (auth: access-key) or writing the role ARN (auth: oidc). With dry-run the run
stops after the plan, having made no change on either side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .aws import AwsClients, ecr, iam, is_code, oidc, sts
from .cancel import Cancelled, workers
from .errors import AwsError, BootstrapError, GitHubError, RotationError
from .github import GitHub
from .inputs import Settings
from .places import Place, places
from .policy import Document, canonical, ecr_access_policy, lifecycle_policy, same_json, same_policy
from .records import (
    AccessKey,
    Intent,
    KeyPlan,
    KeyPlanError,
    LeaseHeld,
    Record,
    holder_parts,
    marker_key,
    parse,
    plan_keys,
    retirable,
    settle,
    unsettled,
)
from .report import Report, TargetResult
from .rotation import Rotation, Target
from .trust import checked_trust_policy, provider_arn, subjects
from .workflow import Workflow

NEW_KEY = "(new key)"
# IAM reads may lag its writes by seconds (IAM User Guide, "Troubleshoot IAM": changes are not always
# immediately visible). A lease that looks held is read again once after this long before refusing.
IAM_READ_LAG = 5.0


@dataclass
class Found:
    """What exists before the run changes anything."""

    repository: ecr.Repository | None
    account: str
    partition: str
    policy: iam.Policy | None
    lifecycle: Document | None = None
    user: iam.User | None = None
    attached: set[str] = field(default_factory=set)
    keys: list[AccessKey] = field(default_factory=list)
    record: Record = field(default_factory=Record)
    provider: oidc.Provider | None = None
    role: oidc.Role | None = None
    role_attached: set[str] = field(default_factory=set)
    policy_known: bool = True  # False: not looked up (created first, reused if it exists)


@dataclass
class Access:
    """What the GitHub side showed before any change."""

    missing_environments: list[Place] = field(default_factory=list)
    ids: dict[str, tuple[int, int] | None] = field(default_factory=dict)


def uses_user(settings: Settings) -> bool:
    return settings.auth == "access-key" or settings.retire_user_keys


def look_up_aws(aws: AwsClients, settings: Settings) -> Found:
    """The reads, overlapped: the repository beside the user; then what hangs off the user (attached
    policies, keys) beside the policy. A run that finds neither repository nor user creates the policy
    without looking first (a missing repository means a new setup; create_policy reuses one that exists)."""
    with workers(3) as pool:
        looking = pool.submit(ecr.find_repository, aws, settings.ecr_repository)
        user = iam.find_user(aws, settings.iam_user) if uses_user(settings) else None
        record = parse(user.tags if user else [])
        attached = keys = None
        if user is not None:
            if settings.auth == "access-key":
                attached = pool.submit(iam.attached_policies, aws, user.name)
            keys = pool.submit(iam.list_keys, aws, user.name)
        if user is not None:
            partition, account = user.arn.split(":")[1], user.arn.split(":")[4]
            repository = None
        else:
            repository = looking.result()
            if repository:
                account, partition = repository.account, repository.partition
            elif settings.auth == "access-key" and not settings.dry_run:
                account = partition = ""  # learnt from the repository this run creates
            else:
                account, partition = sts.caller_account(aws)
        found = Found(None, account, partition, None, policy_known=bool(account))
        if account:
            arn = iam.policy_arn(partition, account, settings.iam_policy)
            cached = record.policy_version
            if cached and cached[0] == settings.iam_policy:
                found.policy = iam.find_policy_version(aws, arn, cached[1])
            found.policy = found.policy or iam.find_policy(aws, arn)
        found.repository = repository or looking.result()
        if found.repository and (settings.ecr.keep_images or settings.ecr.expire_untagged_days):
            found.lifecycle = ecr.lifecycle(aws, found.repository.name)
        found.user = user
        found.attached = attached.result() if attached else set()
        found.keys = keys.result() if keys else []
    if uses_user(settings):
        found.record = record
        found.record.adopt(found.keys)
    if settings.auth == "oidc":
        found.provider = oidc.find_provider(aws, provider_arn(partition, account))
        found.role = oidc.find_role(aws, settings.iam_role)
        if found.role:
            found.role_attached = oidc.attached_role_policies(aws, found.role.name)
    return found


def check_github(github: GitHub, settings: Settings, targets: list[Place], workflow: Workflow) -> Access:
    """Prove the token may write every place (reading its public key) and learn repository ids."""
    access = Access()
    for place in targets:
        try:
            github.public_key(place)
        except GitHubError as exc:
            # An environment's secrets answer 404 when the environment does not exist (yet).
            if place.kind != "env" or exc.status != 404 or github.environment_exists(place):
                raise
            access.missing_environments.append(place)
    selected = bool(settings.organization and settings.visibility == "selected")
    if settings.auth == "oidc" or selected:
        for repository in settings.repositories:
            try:
                access.ids[repository] = github.repository_ids(repository)
            except GitHubError as exc:
                if selected:
                    raise
                # Only the immutable subject form needs the ids: the name form still works.
                access.ids[repository] = None
                workflow.warning(
                    f"Could not read the ids of {repository} ({exc.message}); its role trust uses the "
                    "repo:OWNER/REPO subject form only.",
                    title="Immutable OIDC subject skipped",
                )
    return access


def _when_sending(aws: AwsClients, work: Callable[..., Access], *args: Any) -> Access:
    """Start once the first AWS request is on the wire (or after 2 s): both sides' imports are CPU work
    under one interpreter lock, and the GitHub side has the AWS side's network waits to hide in."""
    aws.sending.wait(2.0)
    return work(*args)


def run(
    settings: Settings,
    aws: AwsClients,
    github: GitHub,
    workflow: Workflow,
    report: Report,
) -> None:
    targets = places(settings.repositories, settings.environment, settings.organization, settings.visibility)
    report.dry_run = settings.dry_run
    # -- 1. look: AWS reads and the GitHub access check overlap; nothing changes until both are done ----
    with workflow.group("Checking AWS state and GitHub access"):
        with workers(1) as pool:
            checking = pool.submit(_when_sending, aws, check_github, github, settings, targets, workflow)
            try:
                found = look_up_aws(aws, settings)
            finally:
                aws.sending.set()
            access = checking.result()  # a token that cannot write secrets stops the run here
        workflow.info(
            f"ECR repository {'exists' if found.repository else 'is new'}; "
            f"policy {'exists' if found.policy else 'is new' if found.policy_known else 'to be created'}; "
            f"{len(targets)} target(s)."
        )
        trust: Document | None = None
        if settings.auth == "oidc":
            allowed = subjects(settings.oidc_subjects, settings.repositories, access.ids)
            trust = checked_trust_policy(provider_arn(found.partition, found.account), allowed)
        rotation_targets: list[Target] = []
        plan: KeyPlan | None = None
        if settings.auth == "access-key":
            plan, rotation_targets = _plan_rotation(settings, aws, github, workflow, found, targets)

    if settings.dry_run:
        _print_plan(
            settings, workflow, report, found, targets, access, trust, plan, rotation_targets, aws.iam_now()
        )
        return

    # -- 2. provision ------------------------------------------------------------------------------
    for place in access.missing_environments:  # first: a refusal here stops the run before AWS changes
        with workflow.group(f"Environment {place.environment} of {place.name}"):
            github.create_environment(place)
            github.public_key(place)
            report.add("GitHub environment", place.label, "created")

    repository = _ensure_repository(aws, settings, workflow, report, found)
    if not found.account:
        found.account, found.partition = repository.account, repository.partition
    with workflow.group("IAM policy"):
        document = ecr_access_policy(repository.arn)
        report.policy_arn, policy_version = _ensure_policy(aws, settings, found, document, report)
        workflow.info(f"Policy: {report.policy_arn}")

    # -- 3. deliver --------------------------------------------------------------------------------
    if trust is not None:
        _deliver_role(aws, github, settings, workflow, report, found, targets, trust, repository)
        if settings.retire_user_keys:
            _retire_user_keys(aws, github, settings, workflow, report, found, targets, aws.iam_now())
    elif plan is not None:
        rotation = _rotation(aws, github, settings, workflow, report, found, plan, rotation_targets)
        rotation.repository_uri = repository.uri
        rotation.policy_version = (settings.iam_policy, policy_version)
        with workflow.group("IAM user"):
            try:
                _ensure_user(aws, settings, report, found, rotation)
            except Cancelled as exc:
                raise rotation.cancelled_before_run(exc) from None
        with workflow.group("Access key and GitHub secrets"):
            try:
                rotation.run()
            except AwsError as exc:
                # The user had its 2 keys already: this run's read lagged another run's writes (IAM is
                # eventually consistent), or a run is racing this one. Read again once IAM has caught up.
                if not is_code(exc, "LimitExceeded") or rotation.created_user or found.user is None:
                    raise
                workflow.info(
                    f"IAM refused a new key: the user has 2 already. Reading IAM again in {IAM_READ_LAG:g} s "
                    "(its reads may lag its writes)."
                )
                _read_user_again(aws, found)
                plan, rotation_targets = _plan_rotation(settings, aws, github, workflow, found, targets)
                again = _rotation(aws, github, settings, workflow, report, found, plan, rotation_targets)
                again.repository_uri, again.policy_version = rotation.repository_uri, rotation.policy_version
                again.user = found.user
                again.run()
    if settings.write_variables:
        _write_variables(github, settings, workflow, report, targets)


# -- planning -------------------------------------------------------------------------------------------


def _plan_rotation(
    settings: Settings,
    aws: AwsClients,
    github: GitHub,
    workflow: Workflow,
    found: Found,
    targets: list[Place],
) -> tuple[KeyPlan, list[Target]]:
    """Settle what crashed runs left, then decide. A lease that looks held is checked once more: with
    GitHub (an actions-token shows whether the holding run has completed), else by reading IAM again
    after its read lag; only then is the run refused."""
    for scope in (p.scope for p in targets):
        found.record.claim(scope)
    for attempt in range(2):
        try:
            return _plan_once(settings, github, workflow, found, targets, aws.iam_now())
        except LeaseHeld as held:
            if attempt or found.user is None:
                raise _lease_error(settings, held) from held
            intent = held.intent
            if intent is not None and intent.run and _run_completed(settings, github, workflow, intent):
                found.record.over.add(intent.run.token)
                continue
            workflow.info(
                f"The lease on {settings.iam_user} looks held; reading IAM again in {IAM_READ_LAG:g} s "
                "(its reads may lag its writes)."
            )
            _read_user_again(aws, found)
            for scope in (p.scope for p in targets):
                found.record.claim(scope)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_user_again(aws: AwsClients, found: Found) -> None:
    """The user's record and keys once IAM has caught up with writes its first read may have missed."""
    if found.user is None:
        return
    time.sleep(IAM_READ_LAG)
    over = found.record.over  # runs known to be over stay so
    found.record = parse(iam.list_tags(aws, found.user.name))
    found.record.over = over
    found.keys = iam.list_keys(aws, found.user.name)
    found.record.adopt(found.keys)


def _plan_once(
    settings: Settings,
    github: GitHub,
    workflow: Workflow,
    found: Found,
    targets: list[Place],
    now: datetime,
) -> tuple[KeyPlan, list[Target]]:
    lease = found.record.lease(now, settings.run)
    if lease is not None:  # settle nothing while a run may still be writing
        raise LeaseHeld(lease, lease.until)
    repaired, unknown = _settle(github, settings, workflow, found, now)
    repaired |= found.record.rewrite  # an earlier run could not tell whether its secret landed
    rotation_targets = [Target(p, found.record.holders.get(p.scope, ())) for p in targets]
    try:
        plan = plan_keys(
            found.keys,
            found.record,
            targets,
            now,
            settings.retire_unmanaged_keys,
            current=settings.run,
            new_user_tags=len(settings.tags) if found.user is None else 0,
        )
    except LeaseHeld:
        raise
    except KeyPlanError as exc:
        if unknown:
            raise RotationError(
                f"No new access key can be created safely for {settings.iam_user}: {exc}. GitHub's "
                f"timestamps cannot tell which of its keys {', '.join(sorted(unknown))} hold(s) (an "
                "earlier run stopped while writing them, within a second of its reference time), so "
                "both keys are kept. Nothing was changed.",
                fix="Let one push run in that repository, then delete in IAM the key that IAM's 'last "
                "used' shows unused since the interrupted run, and rerun.",
            ) from exc
        raise RotationError(
            f"No new access key can be created safely for {settings.iam_user}: {exc}. Nothing was changed.",
            fix="Free a key slot: delete in IAM a key that is not created by this action once nothing "
            "uses it (or set retire-unmanaged-keys: true), or delete a key held by repositories "
            "(they cannot push until this action runs for them again), then rerun.",
        ) from exc
    rotation_targets += _shared_holders(
        github, workflow, found.record, plan, repaired - {t.scope for t in rotation_targets}
    )
    return plan, rotation_targets


def _run_completed(settings: Settings, github: GitHub, workflow: Workflow, intent: Intent) -> bool:
    """Ask GitHub whether the run holding the lease has completed (needs actions-token)."""
    run = intent.run
    if not settings.actions_token or run is None or not run.repository:
        return False
    checker = github.with_token(settings.actions_token)
    try:
        done = checker.run_completed(run.repository, run.run_id, run.attempt)
    except GitHubError as exc:
        workflow.warning(
            f"Could not ask GitHub whether {run.describe()} has completed ({exc.message}); "
            "the actions-token needs actions: read on that repository.",
            title="Lease holder not checked",
        )
        return False
    if done:
        workflow.info(f"GitHub says {run.describe()} has completed: taking over its lease.")
    return done


def _lease_error(settings: Settings, held: LeaseHeld) -> RotationError:
    until = held.until.strftime("%Y-%m-%d %H:%M:%S UTC") if held.until else "its lease ends"
    intent = held.intent
    run = intent.run if intent else None
    if run is not None and run.run_id:
        who = run.describe()
        link = run.link
        fix = (
            f"Wait until {until} and rerun; or, if that run is over, re-run it ({link}: a later attempt "
            "takes over at once) or cancel it; or give this action an actions-token with actions: read "
            "so it can see that the run has completed. Serialise runs for one IAM user with a workflow "
            "concurrency group keyed on the user."
        )
    else:
        who = "another run (one that did not record its name: outside GitHub Actions, or an older version)"
        fix = (
            f"Wait until {until} and rerun, once that run has finished. Serialise runs for one IAM user "
            "with a workflow concurrency group keyed on the user."
        )
    return RotationError(
        f"{who} holds the lease on IAM user {settings.iam_user} until {until}: it may still be writing a "
        "new key, and two runs must not write one user's keys at once. Nothing was changed.",
        fix=fix,
    )


def _settle(
    github: GitHub, settings: Settings, workflow: Workflow, found: Found, now: datetime
) -> tuple[set[str], set[str]]:
    """Entries a crashed or failed run left saying "old or new key": find out from GitHub's timestamps
    which one each target holds, so that the other key can go. Returns the scopes to write anew (their
    pair may be mismatched) and the labels of those that cannot be told."""
    broken, unknown = set(), set()
    names = settings.secret_names
    record = found.record
    existing = [k.key_id for k in found.keys]
    for scope, ids in unsettled(record, now, settings.run).items():
        place = record.place_of(scope)
        try:
            github.public_key(place)
            id_at = github.secret_updated_at(place, names.key_id)
            secret_at = github.secret_updated_at(place, names.secret_key)
        except BootstrapError as exc:
            workflow.warning(f"Could not tell which key {place.label} holds ({exc.message}); both are kept.")
            continue
        ref = record.ref_of(ids[-1]) or record.refs.get(scope)
        if ref is None and ids[-1] in record.markers and record.markers[ids[-1]].since is not None:
            # Version 1 recorded no GitHub time: the key's creation (IAM's clock) with 3 s either way.
            created = record.markers[ids[-1]].since
            ref = int(created.timestamp()) - 3 if created else None
        held = settle(
            ids,
            ref,
            int(id_at.timestamp()) if id_at else None,
            int(secret_at.timestamp()) if secret_at else None,
        )
        if held is None:
            unknown.add(place.label)
            workflow.warning(
                f"An earlier run stopped while writing {place.label}; GitHub's timestamps cannot tell "
                f"which of {', '.join(ids)} it holds, so both are kept and it is written anew.",
                title="Key holder unknown",
            )
            broken.add(scope)
            continue
        if held.held != (ids[-1],) and not set(held.held) & set(existing):
            # The entry's older key is gone: it was written from a read that lagged a run which replaced
            # that key. The target holds the key it had before, which is the only other key there is.
            others = [k for k in existing if k != ids[-1]]
            if len(others) != 1:
                unknown.add(place.label)
                broken.add(scope)
                continue
            held = type(held)((others[0],), held.rewrite)
        record.holders[scope] = held.held
        what = f"holds {held.held[0]}" if held.held else "holds no working pair"
        if held.rewrite:
            what = f"holds the secret of {held.held[0]}, maybe beside another id: it is written anew"
            broken.add(scope)
        workflow.info(f"An earlier run stopped while writing {place.label}; it {what}.")
    return broken, unknown


def _shared_holders(
    github: GitHub, workflow: Workflow, record: Record, plan: KeyPlan, repaired: set[str]
) -> list[Target]:
    """Other places holding a key this run replaces get the new key too, when the token may write them;
    otherwise their key is kept (and the summary says so). So do places an earlier run left with a
    pair to write anew."""
    out = []
    for scope in sorted(set(plan.extra_scopes) | repaired):
        place = record.place_of(scope)
        try:
            github.public_key(place)
        except BootstrapError as exc:
            workflow.warning(
                f"{place.label} holds this user's current key but the token cannot write its secrets "
                f"({exc.message}); it keeps its key, so that key is not retired.",
                title="Shared key kept",
            )
            continue
        out.append(Target(place, record.holders[scope], requested=False))
    return out


def _print_plan(
    settings: Settings,
    workflow: Workflow,
    report: Report,
    found: Found,
    targets: list[Place],
    access: Access,
    trust: Document | None,
    plan: KeyPlan | None,
    rotation_targets: list[Target],
    now: datetime,
) -> None:
    """Plan mode: every resource with what a real run would do to it. Pure apart from the output."""
    add = report.add
    for place in access.missing_environments:
        add("GitHub environment", place.label, "would create")
    repo = found.repository
    if repo is None:
        add("ECR repository", settings.ecr_repository, "would create", _ecr_detail(settings))
        arn = (
            ":".join(("arn", found.partition, "ecr", settings.aws_region, found.account, "repository/"))
            + settings.ecr_repository
        )
    else:
        report.repository_uri, report.registry = repo.uri, repo.registry
        fixable, fixed = ecr.differences(repo, settings.ecr)
        add(
            "ECR repository",
            repo.name,
            "would update" if fixable else "would reuse",
            "; ".join(fixable + fixed),
        )
        arn = repo.arn
    lifecycle = lifecycle_policy(settings.ecr.keep_images, settings.ecr.expire_untagged_days)
    if lifecycle is not None:
        same = repo is not None and same_json(found.lifecycle, lifecycle)
        add(
            "ECR lifecycle policy",
            settings.ecr_repository,
            "would reuse" if same else "would write",
            _lifecycle_detail(settings),
        )
    document = ecr_access_policy(arn)
    if found.policy is None:
        add("IAM policy", settings.iam_policy, "would create", "least privilege")
    elif same_policy(found.policy.document, document):
        add("IAM policy", settings.iam_policy, "would reuse")
    else:
        add(
            "IAM policy",
            settings.iam_policy,
            "would update",
            _policy_difference(found.policy.document, document),
        )
    names = settings.secret_names
    if trust is not None:
        add(
            "OIDC provider",
            "token.actions.githubusercontent.com",
            "would reuse" if found.provider else "would create",
        )
        if found.role is None:
            add("IAM role", settings.iam_role, "would create", "trusts " + ", ".join(_subjects(trust)))
        elif not same_policy(found.role.trust, trust):
            add(
                "IAM role",
                settings.iam_role,
                "would update",
                "trust policy differs; would trust " + ", ".join(_subjects(trust)),
            )
        else:
            add("IAM role", settings.iam_role, "would reuse")
        written = [names.repository_uri, names.role_arn]
        if settings.retire_user_keys and found.user:
            for key in found.keys:
                others = found.record.holders_of(key.key_id) - {p.scope for p in targets}
                others = {found.record.place_of(o).label for o in others}
                managed = key.key_id in found.record.markers or settings.retire_unmanaged_keys
                if others or not managed:
                    add(
                        "Access key",
                        key.key_id,
                        "would keep",
                        "held by " + ", ".join(sorted(others)) if others else "not created by this action",
                    )
                else:
                    add("Access key", key.key_id, "would delete", "replaced by the role")
    elif plan is not None:
        add("IAM user", settings.iam_user, "would reuse" if found.user else "would create")
        if found.user is None or settings.iam_policy not in {a.rsplit("/", 1)[-1] for a in found.attached}:
            add("Policy attachment", settings.iam_policy, "would create", f"attached to {settings.iam_user}")
        if plan.reclaim:
            add("Access key", plan.reclaim.key_id, "would delete", "orphan that no target holds")
        add("Access key", NEW_KEY, "would create")
        simulated = Record(markers=dict(found.record.markers), holders=dict(found.record.holders))
        for t in rotation_targets:
            simulated.holders[t.scope] = (NEW_KEY,)
        old = [k.key_id for k in found.keys if not plan.reclaim or k.key_id != plan.reclaim.key_id]
        gone = retirable(old, simulated, now, settings.retire_unmanaged_keys)
        for key_id in old:
            if key_id in gone:
                add("Access key", key_id, "would delete", "replaced; no target would hold it")
            else:
                holders = sorted(simulated.holders_of(key_id))
                add(
                    "Access key",
                    key_id,
                    "would keep",
                    "held by " + ", ".join(holders) if holders else "not created by this action",
                )
        written = [names.repository_uri, names.key_id, names.secret_key]
    else:
        written = []
    variables = ""
    if settings.write_variables:
        variables = "; variables " + ", ".join(_variable_names(settings))
    for place in targets:
        add("GitHub secrets", place.label, "would write", ", ".join(written) + variables)
    for t in rotation_targets:
        if not t.requested:
            add(
                "GitHub secrets",
                t.place.label,
                "would write",
                "shares this user's key: " + ", ".join(written),
            )
    for change in report.changes:
        detail = f" ({change.detail})" if change.detail else ""
        workflow.info(f"Plan: {change.resource} {change.name}: {change.action}{detail}")
    workflow.notice("Dry run: nothing was changed.", title="ECR bootstrap plan")


def _subjects(trust: Document) -> list[str]:
    return list(trust["Statement"][0]["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"])


def _policy_difference(current: Document | str, wanted: Document) -> str:
    def grants(doc: Document | str) -> set[str]:
        out = set()
        for statement in canonical(doc)[1]:
            for action in statement[1]:
                for resource in statement[3]:
                    out.add(f"{action} on {resource}")
        return out

    extra, missing = sorted(grants(current) - grants(wanted)), sorted(grants(wanted) - grants(current))
    parts = []
    if extra:
        parts.append("would remove " + ", ".join(extra))
    if missing:
        parts.append("would add " + ", ".join(missing))
    return "; ".join(parts) or "conditions or effects differ"


def _ecr_detail(settings: Settings) -> str:
    e = settings.ecr
    detail = (
        f"private, scan on push {'on' if e.scan_on_push else 'off'}, tags {e.tag_mutability}, {e.encryption}"
    )
    return detail + (f" ({e.kms_key})" if e.kms_key else "")


def _lifecycle_detail(settings: Settings) -> str:
    parts = []
    if settings.ecr.keep_images:
        parts.append(f"keep the last {settings.ecr.keep_images} images")
    if settings.ecr.expire_untagged_days:
        parts.append(f"expire untagged images after {settings.ecr.expire_untagged_days} days")
    return "; ".join(parts)


def _variable_names(settings: Settings) -> list[str]:
    names = [settings.secret_names.repository_uri, "AWS_REGION"]
    if settings.auth == "oidc":
        names.append(settings.secret_names.role_arn)
    return names


# -- provisioning ---------------------------------------------------------------------------------------


def _ensure_repository(
    aws: AwsClients, settings: Settings, workflow: Workflow, report: Report, found: Found
) -> ecr.Repository:
    with workflow.group("ECR repository"):
        repository = found.repository
        if repository is None:
            repository = ecr.create_repository(aws, settings.ecr_repository, settings.ecr, settings.tags)
            report.add("ECR repository", repository.name, "created", _ecr_detail(settings))
        else:
            fixable, fixed = ecr.differences(repository, settings.ecr)
            ecr.reconcile(aws, repository, settings.ecr)
            for difference in fixed:
                workflow.warning(
                    f"ECR repository {repository.name}: {difference}. Encryption can only be chosen when a "
                    "repository is created; it was left as it is.",
                    title="ECR setting not changed",
                )
            report.add(
                "ECR repository",
                repository.name,
                "updated" if fixable else "reused",
                "; ".join(fixable + [d + " (kept: set at creation only)" for d in fixed]),
            )
        lifecycle = lifecycle_policy(settings.ecr.keep_images, settings.ecr.expire_untagged_days)
        if lifecycle is not None:
            current = found.lifecycle if found.repository else None
            written = ecr.put_lifecycle(aws, repository.name, lifecycle, current)
            report.add(
                "ECR lifecycle policy",
                repository.name,
                "updated" if written else "reused",
                _lifecycle_detail(settings),
            )
        report.repository_uri, report.registry = repository.uri, repository.registry
        workflow.info(f"Repository URI: {repository.uri}")
    return repository


def _ensure_policy(
    aws: AwsClients, settings: Settings, found: Found, document: Document, report: Report
) -> tuple[str, str]:
    """Returns the policy's ARN and its default version (remembered in the key record)."""
    arn = iam.policy_arn(found.partition, found.account, settings.iam_policy)
    existing = found.policy
    if existing is None:
        existing = iam.create_policy(aws, settings.iam_policy, arn, document, settings.tags)
        if existing.created:
            report.add("IAM policy", settings.iam_policy, "created", "least privilege")
            return arn, existing.default_version
    if same_policy(existing.document, document):
        report.add("IAM policy", settings.iam_policy, "reused", f"default version {existing.default_version}")
        return existing.arn, existing.default_version
    deleted, version = iam.update_policy(aws, existing.arn, document)
    detail = f"default version {existing.default_version} differed; new default version made"
    if deleted:
        detail += f" (deleted oldest version {deleted})"
    report.add("IAM policy", settings.iam_policy, "updated", detail)
    return existing.arn, version


def _rotation(
    aws: AwsClients,
    github: GitHub,
    settings: Settings,
    workflow: Workflow,
    report: Report,
    found: Found,
    plan: KeyPlan,
    targets: list[Target],
) -> Rotation:
    return Rotation(
        aws=aws,
        github=github,
        workflow=workflow,
        report=report,
        user=found.user,
        keys=found.keys,
        record=found.record,
        plan=plan,
        targets=targets,
        repository_uri="",
        retire_unmanaged=settings.retire_unmanaged_keys,
        key_wait_seconds=settings.key_wait_seconds,
        lease_seconds=settings.lease_seconds,
        now=aws.iam_now,
        names=settings.secret_names,
        run_id=settings.run,
        names_user=settings.iam_user,
    )


def _ensure_user(
    aws: AwsClients, settings: Settings, report: Report, found: Found, rotation: Rotation
) -> None:
    user = found.user
    if user is None:
        # The intent rides on CreateUser: a run racing this one finds the user with it, and stops.
        user = iam.create_user(aws, settings.iam_user, settings.tags, rotation.intent_on_creation())
        report.add("IAM user", user.name, "created", "no console password")
    else:
        report.add("IAM user", user.name, "reused")
    rotation.user = user
    report.user_arn = user.arn
    if report.policy_arn not in found.attached:
        try:
            iam.attach_policy(aws, user.name, report.policy_arn)
        except BootstrapError:
            if rotation.created_user:
                rotation.undo_intent()
            raise
        report.add("Policy attachment", settings.iam_policy, "created", f"attached to {user.name}")
    else:
        report.add("Policy attachment", settings.iam_policy, "reused")


def _deliver_role(
    aws: AwsClients,
    github: GitHub,
    settings: Settings,
    workflow: Workflow,
    report: Report,
    found: Found,
    targets: list[Place],
    trust: Document,
    repository: ecr.Repository,
) -> None:
    with workflow.group("GitHub OIDC provider and IAM role"):
        arn = provider_arn(found.partition, found.account)
        if found.provider is None:
            oidc.create_provider(aws, arn, settings.tags)
            report.add(
                "OIDC provider",
                "token.actions.githubusercontent.com",
                "created",
                "audience sts.amazonaws.com",
            )
        elif "sts.amazonaws.com" not in found.provider.audiences:
            oidc.add_audience(aws, arn)
            report.add(
                "OIDC provider",
                "token.actions.githubusercontent.com",
                "updated",
                "audience sts.amazonaws.com added",
            )
        else:
            report.add("OIDC provider", "token.actions.githubusercontent.com", "reused")
        role = found.role
        if role is None:
            role = oidc.create_role(aws, settings.iam_role, trust, settings.tags)
            report.add("IAM role", role.name, "created", f"trusts {len(_subjects(trust))} subject(s)")
        elif not same_policy(role.trust, trust):
            oidc.update_trust(aws, role.name, trust)
            report.add("IAM role", role.name, "updated", "trust policy drift repaired")
        else:
            report.add("IAM role", role.name, "reused")
        if report.policy_arn not in found.role_attached:
            oidc.attach_role_policy(aws, role.name, report.policy_arn)
            report.add("Policy attachment", settings.iam_policy, "created", f"attached to role {role.name}")
        else:
            report.add("Policy attachment", settings.iam_policy, "reused")
        report.role_arn = role.arn
        workflow.info(f"Role: {role.arn}")
    names = settings.secret_names
    with workflow.group("GitHub secrets"):
        for place in targets:
            github.put_secret(place, names.repository_uri, repository.uri)
            github.put_secret(place, names.role_arn, role.arn)
            report.targets.append(
                TargetResult(place.label, "written", f"{names.role_arn}, {names.repository_uri}")
            )
            workflow.info(f"{place.label}: written")
    report.snippet = role_snippet(settings, names.role_arn, names.repository_uri)


def role_snippet(settings: Settings, role_secret: str, uri_secret: str) -> str:
    """The workflow lines that use the role: shown in the summary."""
    return (
        "permissions:\n"
        "  id-token: write   # lets the job ask GitHub for an OIDC token\n"
        "  contents: read\n"
        "steps:\n"
        "  - uses: aws-actions/configure-aws-credentials@v4\n"
        "    with:\n"
        f"      role-to-assume: ${{{{ secrets.{role_secret} }}}}\n"
        f"      aws-region: {settings.aws_region}\n"
        "  - uses: aws-actions/amazon-ecr-login@v2\n"
        f'  - run: docker build -t "${{{{ secrets.{uri_secret} }}}}:${{{{ github.sha }}}}" . && '
        f'docker push "${{{{ secrets.{uri_secret} }}}}:${{{{ github.sha }}}}"\n'
    )


def _retire_user_keys(
    aws: AwsClients,
    github: GitHub,
    settings: Settings,
    workflow: Workflow,
    report: Report,
    found: Found,
    targets: list[Place],
    now: datetime,
) -> None:
    """After the role is in place: the targets stop holding the user's key, then keys nobody holds go.
    A key another place still holds is kept, whatever the inputs say."""
    user = found.user
    if user is None:
        report.add("IAM user", settings.iam_user, "kept", "does not exist: no keys to retire")
        return
    names = settings.secret_names
    with workflow.group("Retiring the user's access keys"):
        for place in targets:
            github.delete_secret(place, names.key_id)
            github.delete_secret(place, names.secret_key)
        ours = [p.scope for p in targets if p.scope in found.record.holders]
        iam.untag_user(aws, user.name, [k for s in ours for k in holder_parts(found.record, s)])
        record = parse(iam.list_tags(aws, user.name))  # as it is now, other runs included
        ids = [k.key_id for k in found.keys]
        gone = retirable(ids, record, now, settings.retire_unmanaged_keys, settings.run)
        for key_id in gone:
            iam.delete_key(aws, user.name, key_id)
            report.add("Access key", key_id, "deleted", "replaced by the role")
        iam.untag_user(aws, user.name, [marker_key(k) for k in gone if k in record.markers])
        for key_id in ids:
            if key_id in gone:
                continue
            holders = sorted(record.place_of(s).label for s in record.holders_of(key_id))
            why = (
                ("still held by " + ", ".join(holders))
                if holders
                else "not created by this action (see retire-unmanaged-keys)"
            )
            workflow.warning(f"Access key {key_id} of {user.name} was kept: {why}.", title="Access key kept")
            report.add("Access key", key_id, "kept", why)


def _write_variables(
    github: GitHub, settings: Settings, workflow: Workflow, report: Report, targets: list[Place]
) -> None:
    values = {settings.secret_names.repository_uri: report.repository_uri, "AWS_REGION": settings.aws_region}
    if settings.auth == "oidc":
        values[settings.secret_names.role_arn] = report.role_arn
    with workflow.group("GitHub variables"):
        for place in targets:
            for name, value in values.items():
                github.put_variable(place, name, value)
            report.add("GitHub variables", place.label, "written", ", ".join(values))
