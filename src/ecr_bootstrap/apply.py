"""One run: look (read-only, AWS and GitHub overlapping) -> decide (the plan, with a lease that looks held
checked once more) -> apply (carry the Plan out, deciding nothing again: provision, then deliver the key
rotation or the role ARN; a key rotation refused for a lagged read is decided once more), or with dry-run
print the plan, having changed nothing on either side."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .aws import AwsClients, ecr, iam, is_code, oidc
from .errors import AwsError, GitHubError, KeyRaced, LeaseHeld, NoSafeKey, RotationError
from .github import GitHub
from .inputs import Settings
from .keys.commit import Stage
from .keys.record import RunId, holder_parts, marker_key
from .keys.rotate import Rotation, fates_now, retire
from .keys.rules import read_record, unsettled
from .look import IAM_READ_LAG, Picture, look, look_at_user_again, look_up_holders, settings_places
from .places import Place
from .plan import Oidc, Plan, Rotate, Step, plan, policy_step, variable_names
from .policy import ecr_access_policy, lifecycle_policy
from .report import Note, Report, TargetResult, age, key_table, old_keys
from .times import iso, readable
from .trust import provider_arn
from .workflow import Workflow

# The workflow lines that use the role: shown in the summary.
ROLE_SNIPPET = """\
permissions:
  id-token: write   # lets the job ask GitHub for an OIDC token
  contents: read
steps:
  - uses: aws-actions/configure-aws-credentials@v6
    with:
      role-to-assume: ${{{{ secrets.{role} }}}}
      aws-region: {region}
  - uses: aws-actions/amazon-ecr-login@v2
  - run: docker build -t "{image}" . && docker push "{image}"
"""


@dataclass(frozen=True)
class Context:
    settings: Settings
    aws: AwsClients
    github: GitHub
    workflow: Workflow
    report: Report


def run(settings: Settings, aws: AwsClients, github: GitHub, workflow: Workflow, report: Report) -> None:
    report.dry_run = settings.dry_run
    ctx = Context(settings, aws, github, workflow, report)
    with workflow.group("Checking AWS state and GitHub access"):
        picture = look(settings, aws, github, workflow)
        workflow.info(
            f"ECR repository {'exists' if picture.repository else 'is new'}; policy "
            f"{'exists' if picture.policy else 'is new' if picture.account else 'to be created'}; "
            f"{len(settings_places(settings))} target(s)."
        )
        decided, picture = decide(ctx, picture)
    if settings.dry_run:
        print_plan(decided, picture, workflow, report)
        return
    apply(decided, picture, ctx)


def print_plan(decided: Plan, picture: Picture, workflow: Workflow, report: Report) -> None:
    """Dry run: the plan's steps, as a real run would take them."""
    if picture.repository is not None:
        report.repository_uri, report.registry = picture.repository.uri, picture.repository.registry
    report.changes += [step.planned() for step in decided.steps()]
    for change in report.changes:
        detail = f" ({change.detail})" if change.detail else ""
        workflow.info(f"Plan: {change.resource} {change.name}: {change.action}{detail}")
    workflow.notice("Dry run: nothing was changed.", title="ECR bootstrap plan")


def decide(ctx: Context, picture: Picture) -> tuple[Plan, Picture]:
    """The plan (its notes said) and the picture it came from. A look that shows a key IAM made moments ago
    that no entry names is read again before anything is planned. A lease that looks held is checked with
    GitHub (an actions-token shows whether its run has completed), else by reading IAM again after its lag."""
    settings, workflow = ctx.settings, ctx.workflow
    over: frozenset[str] = frozenset()
    if fresh := unsettled(picture.record, ctx.aws.iam_now()):
        # Each IAM read lags on its own: the keys may show another run's new key while the tags do not show
        # its lease and marker yet. Neither a refusal nor a deletion is decided on such a look.
        workflow.info(
            f"Access key {', '.join(fresh)} was made moments ago and no record entry names it (IAM's read "
            f"of the record may lag its read of the keys); reading IAM again in {IAM_READ_LAG:g} s."
        )
        picture = look_at_user_again(ctx.aws, ctx.github, settings, picture)
    for attempt in range(2):
        try:
            decided = plan(settings, picture, ctx.aws.iam_now(), over)
            say(decided.notes, workflow)
            return decided, picture
        except NoSafeKey as refused:
            say(refused.notes, workflow)  # what settling found explains the refusal
            raise
        except LeaseHeld as held:
            if attempt or picture.user is None:
                raise lease_error(settings, held) from held
            run = held.lease.run if held.lease else None
            if run is not None and run_completed(settings, ctx.github, workflow, run):
                over |= {run.token}
                # Its targets' timestamps as they are now that it has finished writing.
                picture = look_up_holders(ctx.github, settings, picture)
                continue
            workflow.info(
                f"The lease on {settings.iam_user} looks held; reading IAM again in {IAM_READ_LAG:g} s "
                "(its reads may lag its writes)."
            )
            picture = look_at_user_again(ctx.aws, ctx.github, settings, picture)
    raise AssertionError("unreachable")  # pragma: no cover


def say(notes: Iterable[Note], workflow: Workflow) -> None:
    for note in notes:
        if note.title:
            workflow.warning(note.text, title=note.title)
        else:
            workflow.info(note.text)


def run_completed(settings: Settings, github: GitHub, workflow: Workflow, run: RunId) -> bool:
    """Ask GitHub whether the run holding the lease has completed (needs actions-token)."""
    if not settings.actions_token or not run.repository:
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


def lease_error(settings: Settings, held: LeaseHeld) -> RotationError:
    until = readable(held.until) if held.until else "its lease ends"
    run = held.lease.run if held.lease else None
    serialise = "Serialise runs for one IAM user with a workflow concurrency group keyed on the user."
    if run is not None and run.run_id:
        who = run.describe()
        fix = (
            f"Wait until {until} and rerun; or, if that run is over, re-run it ({run.link}: a later attempt "
            "takes over at once) or cancel it; or give this action an actions-token with actions: read "
            f"so it can see that the run has completed. {serialise}"
        )
    else:
        who = "another run (one that did not record its name: outside GitHub Actions, or an older version)"
        fix = f"Wait until {until} and rerun, once that run has finished. {serialise}"
    return RotationError(
        f"{who} holds the lease on IAM user {settings.iam_user} until {until}: it may still be writing a "
        "new key, and two runs must not write one user's keys at once. Nothing was changed.",
        fix=fix,
    )


def apply(decided: Plan, picture: Picture, ctx: Context) -> None:
    # First: a refusal here stops the run before AWS changes.
    for step, place in zip(decided.environments, picture.missing_environments, strict=True):
        with ctx.workflow.group(f"Environment {place.environment} of {place.name}"):
            ctx.github.create_environment(place)
            ctx.github.public_key(place)
            ctx.report.changes.append(step.done())
    repository = ensure_repository(decided, picture, ctx)
    if not picture.account:
        picture = replace(picture, account=repository.account, partition=repository.partition)
    with ctx.workflow.group("IAM policy"):
        policy = ensure_policy(decided.policy, picture, repository.arn, ctx)
        ctx.report.policy_arn = policy.arn
        ctx.workflow.info(f"Policy: {policy.arn}")
    role_arn = ""
    if decided.oidc is not None:
        role_arn = deliver_role(decided.oidc, decided.targets, picture, ctx, repository.uri, policy.arn)
        if ctx.settings.retire_user_keys:
            retire_user_keys(decided, picture, ctx)
    elif decided.keep is not None:
        keep_key(decided, picture, ctx, policy.arn)
    elif decided.rotate is not None:
        rotate_keys(decided.rotate, picture, ctx, repository.uri, policy)
    for text in old_keys(ctx.report.keys, ctx.aws.iam_now()):
        ctx.workflow.warning(text, title="Old access key")
    if ctx.settings.write_variables and decided.keep is None:  # a kept key: nothing is written
        write_variables(ctx, decided.targets, repository.uri, role_arn)


def keep_key(decided: Plan, picture: Picture, ctx: Context, policy: str) -> None:
    """rotate-after, inside the duration: only a missing policy attachment is repaired."""
    user, keep, report = picture.user, decided.keep, ctx.report
    if user is None or keep is None:  # pragma: no cover - a kept key has a user
        raise RotationError("the user to keep a key of does not exist")
    key = keep.key
    with ctx.workflow.group("IAM user"):
        report.user_arn = user.arn
        report.changes.append(keep.user.done())
        if keep.attachment.action == "create":
            iam.attach_policy(ctx.aws, user.name, policy)
        report.changes.append(keep.attachment.done())
    report.changes.append(keep.step.done())
    report.access_key_id, report.key_created = key.key_id, iso(key.created)
    report.targets = [TargetResult(s.name, "unchanged", s.detail) for s in decided.secrets]
    report.keys = key_table(picture.keys, picture.record, ctx.aws.iam_now())
    ctx.workflow.notice(
        f"Access key {key.key_id} is {age(key.created, ctx.aws.iam_now())} old and every target holds it: "
        "no key was made and no target written. It rotates after "
        f"{readable(keep.next_rotation, seconds=False)} (rotate-after).",
        title="Key kept",
    )


def ensure_repository(decided: Plan, picture: Picture, ctx: Context) -> ecr.Repository:
    settings, aws, workflow = ctx.settings, ctx.aws, ctx.workflow
    with workflow.group("ECR repository"):
        repository = picture.repository
        if repository is None:
            repository = ecr.create_repository(aws, settings.ecr_repository, settings.ecr, settings.tags)
        else:
            if decided.repository.action == "update":
                ecr.reconcile(aws, repository, settings.ecr)
            for difference in ecr.differences(repository, settings.ecr)[1]:
                workflow.warning(
                    f"ECR repository {repository.name}: {difference}. Encryption can only be chosen when a "
                    "repository is created; it was left as it is.",
                    title="ECR setting not changed",
                )
        ctx.report.changes.append(decided.repository.done())
        if decided.lifecycle is not None:
            document = lifecycle_policy(settings.ecr.keep_images, settings.ecr.expire_untagged_days)
            if decided.lifecycle.action != "reuse" and document is not None:
                ecr.put_lifecycle(aws, repository.name, document)
            ctx.report.changes.append(decided.lifecycle.done())
        ctx.report.repository_uri, ctx.report.registry = repository.uri, repository.registry
        workflow.info(f"Repository URI: {repository.uri}")
    return repository


def ensure_policy(step: Step, picture: Picture, repository_arn: str, ctx: Context) -> iam.Policy:
    """Returns the policy, at its default version (remembered in the key record). A policy that was not
    looked up (a new setup) is created, or reused if it exists after all."""
    settings, aws, report = ctx.settings, ctx.aws, ctx.report
    document = ecr_access_policy(repository_arn)
    existing = picture.policy
    if existing is None:
        arn = iam.policy_arn(picture.partition, picture.account, settings.iam_policy)
        existing = iam.create_policy(aws, settings.iam_policy, arn, document, settings.tags)
        if not existing.created:
            # Found by CreatePolicy (not looked up, or made by a racing run): planned now, the same way.
            step = policy_step(settings, replace(picture, policy=existing))
    if step.action != "update":  # created, or reused (a policy that exists is never planned "create")
        report.changes.append(step.done())
        return existing
    deleted, version = iam.update_policy(aws, existing.arn, document)
    detail = f"default version {existing.default_version} differed; new default version made"
    if deleted:
        detail += f" (deleted oldest version {deleted})"
    report.changes.append(step.done(detail))
    return replace(existing, default_version=version, document=document)


def rotate_keys(rotate: Rotate, picture: Picture, ctx: Context, uri: str, policy: iam.Policy) -> None:
    """The rotation, built whole from the plan. When IAM refuses a new key because the user has 2
    already (this run's read lagged another run's writes), it reads IAM again and plans once more."""
    rotation = _rotation(rotate, picture, ctx, uri, policy)
    try:
        rotation.run()
    except (AwsError, KeyRaced) as exc:
        # CreateAccessKey's LimitExceeded (AttachUserPolicy's is a policy quota: it stops the run), or
        # another run's key found after this run made its own: this run's read lagged, or a run raced it.
        limit = is_code(exc, "LimitExceeded") and rotation.stage is Stage.CREATING
        if not (limit or isinstance(exc, KeyRaced)) or rotation.created_user or picture.user is None:
            raise
        why = "IAM refused a new key: the user has 2 already" if limit else "Another run made a key first"
        ctx.workflow.info(
            f"{why}. Reading IAM again in {IAM_READ_LAG:g} s (its reads may lag its writes), then planning "
            "once more."
        )
        again = look_at_user_again(ctx.aws, ctx.github, ctx.settings, picture)
        replanned, again = decide(ctx, replace(again, attached=picture.attached | {policy.arn}))
        if replanned.rotate is None:  # pragma: no cover - access-key plans always rotate
            raise
        _rotation(replanned.rotate, again, ctx, uri, policy, provisioned=True).run()


def _rotation(
    rotate: Rotate, picture: Picture, ctx: Context, uri: str, policy: iam.Policy, provisioned: bool = False
) -> Rotation:
    return Rotation(
        aws=ctx.aws,
        github=ctx.github,
        workflow=ctx.workflow,
        report=ctx.report,
        settings=ctx.settings,
        rotate=rotate,
        user=picture.user,
        attach=policy.arn if rotate.attachment.action == "create" else "",
        repository_uri=uri,
        policy_version=(ctx.settings.iam_policy, policy.default_version),
        now=ctx.aws.iam_now,
        provisioned=provisioned,
    )


def deliver_role(
    decided: Oidc, targets: tuple[Place, ...], picture: Picture, ctx: Context, uri: str, policy_arn: str
) -> str:
    """The OIDC provider, the role and its policy, then each target's secrets. Returns the role's ARN."""
    settings, aws, report = ctx.settings, ctx.aws, ctx.report
    with ctx.workflow.group("GitHub OIDC provider and IAM role"):
        provider = provider_arn(picture.partition, picture.account)
        if decided.provider.action == "create":
            oidc.create_provider(aws, settings.tags)
        elif decided.provider.action == "update":
            oidc.add_audience(aws, provider)
        report.changes.append(decided.provider.done())
        role = picture.role
        if role is None:
            role = oidc.create_role(
                aws, settings.iam_role, decided.trust, settings.tags, settings.permissions_boundary
            )
        elif decided.role.action == "update":
            oidc.update_trust(aws, role.name, decided.trust)
        report.changes.append(decided.role.done())
        if decided.attachment.action == "create":
            iam.attach_policy(aws, role.name, policy_arn, "role")
        report.changes.append(decided.attachment.done())
        report.role_arn = role.arn
        ctx.workflow.info(f"Role: {role.arn}")
    names = settings.secret_names
    with ctx.workflow.group("GitHub secrets"):
        for place in targets:
            ctx.github.put_secret(place, names.repository_uri, uri)
            ctx.github.put_secret(place, names.role_arn, role.arn)
            report.targets.append(
                TargetResult(place.label, "written", f"{names.role_arn}, {names.repository_uri}")
            )
            ctx.workflow.info(f"{place.label}: written")
    image = f"${{{{ secrets.{names.repository_uri} }}}}:${{{{ github.sha }}}}"
    report.snippet = ROLE_SNIPPET.format(role=names.role_arn, region=settings.aws_region, image=image)
    return role.arn


def retire_user_keys(decided: Plan, picture: Picture, ctx: Context) -> None:
    """After the role is in place: the targets stop holding the user's key, then the plan's retire fates
    are carried out against the record as it is now (other runs included): a key another place still holds
    is kept, whatever the inputs say."""
    user = picture.user
    if user is None:
        ctx.report.changes += [s.done() for s in decided.retire]
        return
    names, record = ctx.settings.secret_names, picture.record
    with ctx.workflow.group("Retiring the user's access keys"):
        for place in decided.targets:
            ctx.github.delete_secret(place, names.key_id)
            ctx.github.delete_secret(place, names.secret_key)
        scopes = [p.scope for p in decided.targets]
        ours = [s for s in scopes if s in record.holders]
        iam.untag_user(ctx.aws, user.name, [k for s in ours for k in holder_parts(record, s)])
        # As it is now, other runs included; read (validated, markers proven) like every record.
        latest = read_record(iam.list_tags(ctx.aws, user.name), picture.keys, scopes, ctx.settings.run.server)
        fates = fates_now(decided.retire, latest, ctx.aws.iam_now(), ctx.settings.run)
        retire(ctx.aws, user.name, fates, ctx.workflow, ctx.report, warn=True)
        gone = [f.name for f in fates if f.action == "delete" and f.name in latest.markers]
        iam.untag_user(ctx.aws, user.name, [marker_key(k) for k in gone])


def write_variables(ctx: Context, targets: tuple[Place, ...], repository_uri: str, role_arn: str) -> None:
    settings = ctx.settings
    values = dict(
        zip(variable_names(settings), [repository_uri, settings.aws_region, role_arn], strict=False)
    )
    with ctx.workflow.group("GitHub variables"):
        for place in targets:
            for name, value in values.items():
                ctx.github.put_variable(place, name, value)
            ctx.report.add("GitHub variables", place.label, "written", ", ".join(values))
