"""Plan: every decision of a run, made once and purely from the inputs and the Picture `look` took. `apply`
carries it out and dry-run prints it, so no decision is made twice. Each resource gets a Step."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .aws import ecr, iam
from .errors import KeyPlanError, LeaseHeld, NoSafeKey
from .inputs import Settings
from .keys import rules as key_rules
from .keys.record import AccessKey, Record
from .keys.rules import KeyPlan, Retiring
from .keys.settle import Outcome, settle_record
from .look import Picture, settings_places
from .places import Place
from .policy import Document, difference, ecr_access_policy, lifecycle_policy, same_policy
from .report import Change, Note, age
from .times import readable
from .trust import AUDIENCE, PROVIDER_HOST, checked_trust_policy, provider_arn, subjects

NEW_KEY = "(new key)"
PAST = dict(
    create="created", reuse="reused", update="updated", write="written", delete="deleted", keep="kept"
)


@dataclass(frozen=True)
class Step:
    resource: str  # "ECR repository", "IAM policy", ...
    name: str
    action: str  # create | reuse | update | write | delete | keep
    detail: str = ""

    def planned(self) -> Change:
        return Change(self.resource, self.name, "would " + self.action, self.detail)

    def done(self, detail: str | None = None) -> Change:
        return Change(self.resource, self.name, PAST[self.action], self.detail if detail is None else detail)


@dataclass(frozen=True)
class Target:
    """A place the rotation writes, and the key ids the record says it may hold now."""

    place: Place
    previous: tuple[str, ...]

    @property
    def scope(self) -> str:
        return self.place.scope

    @property
    def repository(self) -> str:  # how messages name it
        return self.place.label


@dataclass(frozen=True)
class Rotate:
    user: Step
    attachment: Step
    keys: KeyPlan
    keys_before: tuple[AccessKey, ...]  # the user's keys as the picture showed them
    targets: tuple[Target, ...]
    record: Record  # the record as settled by the plan
    reclaim: Step | None  # the key deleted first to make room (IAM allows two), and why
    fates: tuple[Step, ...]  # what becomes of each older key once every target holds the new one
    rules: Retiring  # who may retire what (the keys this run's targets held: the ones it replaces)


@dataclass(frozen=True)
class Keep:
    """rotate-after: the current key is young enough and every target holds it: no key is made and nothing
    is written (a missing policy attachment is still repaired)."""

    user: Step
    attachment: Step
    key: AccessKey
    next_rotation: datetime
    step: Step  # the key's row: its age and when it rotates


@dataclass(frozen=True)
class Oidc:
    trust: Document
    provider: Step
    role: Step
    attachment: Step


@dataclass(frozen=True)
class Plan:
    targets: tuple[Place, ...]
    environments: tuple[Step, ...]
    repository: Step
    lifecycle: Step | None
    policy: Step
    rotate: Rotate | None = None
    keep: Keep | None = None
    oidc: Oidc | None = None
    retire: tuple[Step, ...] = ()  # oidc with retire-user-keys: the user's keys
    secrets: tuple[Step, ...] = ()
    notes: tuple[Note, ...] = ()

    def steps(self) -> list[Step]:
        """Every step, in the order a run takes them (what dry-run prints)."""
        out = [*self.environments, self.repository]
        out += [s for s in (self.lifecycle, self.policy) if s is not None]
        if self.oidc is not None:
            out += [self.oidc.provider, self.oidc.role, self.oidc.attachment]
        out += list(self.retire)
        if self.keep is not None:
            out += [self.keep.user, self.keep.attachment, self.keep.step]
        if self.rotate is not None:
            out += [self.rotate.user, self.rotate.attachment]
            out += [self.rotate.reclaim] if self.rotate.reclaim else []
            out.append(Step("Access key", NEW_KEY, "create"))
            out += list(self.rotate.fates)
        return out + list(self.secrets)


def plan(settings: Settings, picture: Picture, now: datetime, over: frozenset[str] = frozenset()) -> Plan:
    """Decide everything. `now` is IAM's time as this run estimates it; `over`: tokens of runs GitHub
    says have completed (their leases are over). Raises LeaseHeld while another run may be writing, and
    RotationError when no key can be made safely."""
    base = Plan(
        tuple(settings_places(settings)),
        tuple(Step("GitHub environment", p.label, "create") for p in picture.missing_environments),
        *ecr_steps(settings, picture),
        policy_step(settings, picture),
    )
    if settings.auth == "oidc":
        return oidc_plan(settings, picture, now, base)
    return key_plan(settings, picture, now, over, base)


def repository_arn(settings: Settings, picture: Picture) -> str:
    """The ECR repository's ARN: as AWS gave it, or as it will be (a found policy: the account is known)."""
    if picture.repository is not None:
        return picture.repository.arn
    region, account, name = settings.aws_region, picture.account, settings.ecr_repository
    return f"arn:{picture.partition}:ecr:{region}:{account}:repository/{name}"


def ecr_steps(settings: Settings, picture: Picture) -> tuple[Step, Step | None]:
    repo = picture.repository
    if repo is None:
        step = Step("ECR repository", settings.ecr_repository, "create", ecr.describe(settings.ecr))
    else:
        fixable, fixed = ecr.differences(repo, settings.ecr)
        detail = "; ".join(fixable + [d + " (kept: set at creation only)" for d in fixed])
        step = Step("ECR repository", repo.name, "update" if fixable else "reuse", detail)
    wanted = lifecycle_policy(settings.ecr.keep_images, settings.ecr.expire_untagged_days)
    if wanted is None:
        return step, None
    action = "reuse" if repo is not None and picture.lifecycle == wanted else "update"
    return step, Step(
        "ECR lifecycle policy", settings.ecr_repository, action, ecr.describe_lifecycle(settings.ecr)
    )


def policy_step(settings: Settings, picture: Picture) -> Step:
    name = settings.iam_policy
    if picture.policy is None:
        return Step("IAM policy", name, "create", "least privilege")
    wanted = ecr_access_policy(repository_arn(settings, picture))
    if same_policy(picture.policy.document, wanted):
        return Step("IAM policy", name, "reuse", f"default version {picture.policy.default_version}")
    return Step("IAM policy", name, "update", difference(picture.policy.document, wanted))


def attachment_step(settings: Settings, picture: Picture, attached: frozenset[str], to: str) -> Step:
    """Compared by ARN: a policy of the same name elsewhere (another path) is not ours. (With the account
    not known, nothing is attached yet: the user is new.)"""
    policy = picture.policy
    arn = policy.arn if policy else iam.policy_arn(picture.partition, picture.account, settings.iam_policy)
    if arn in attached:
        return Step("Policy attachment", settings.iam_policy, "reuse")
    return Step("Policy attachment", settings.iam_policy, "create", f"attached to {to}")


def secret_steps(settings: Settings, targets: Iterable[Place]) -> tuple[Step, ...]:
    names = settings.secret_names
    own = [names.role_arn] if settings.auth == "oidc" else [names.key_id, names.secret_key]
    detail = ", ".join([names.repository_uri, *own])
    if settings.write_variables:
        detail += "; variables " + ", ".join(variable_names(settings))
    return tuple(Step("GitHub secrets", p.label, "write", detail) for p in targets)


def variable_names(settings: Settings) -> list[str]:
    names = [settings.secret_names.repository_uri, "AWS_REGION"]
    if settings.auth == "oidc":
        names.append(settings.secret_names.role_arn)
    return names


def oidc_plan(settings: Settings, picture: Picture, now: datetime, base: Plan) -> Plan:
    allowed = subjects(settings.oidc_subjects, settings.repositories, dict(picture.ids))
    trust = checked_trust_policy(provider_arn(picture.partition, picture.account), allowed)
    if picture.provider is None:
        provider = Step("OIDC provider", PROVIDER_HOST, "create", f"audience {AUDIENCE}")
    elif AUDIENCE in picture.provider.audiences:
        provider = Step("OIDC provider", PROVIDER_HOST, "reuse")
    else:
        provider = Step("OIDC provider", PROVIDER_HOST, "update", f"audience {AUDIENCE} added")
    who = ", ".join(allowed)  # the trust policy's subjects
    if picture.role is None:
        role = Step("IAM role", settings.iam_role, "create", "trusts " + who)
    elif not same_policy(picture.role.trust, trust):
        role = Step("IAM role", settings.iam_role, "update", "trust policy differs; trusts " + who)
    else:
        role = Step("IAM role", settings.iam_role, "reuse")
    attachment = attachment_step(settings, picture, picture.role_attached, f"role {settings.iam_role}")
    return replace(
        base,
        oidc=Oidc(trust, provider, role, attachment),
        retire=retire_plan(settings, picture, now),
        secrets=secret_steps(settings, base.targets),
    )


def retire_plan(settings: Settings, picture: Picture, now: datetime) -> tuple[Step, ...]:
    """retire-user-keys: the targets stop holding the user's key; keys no other place holds then go."""
    if not settings.retire_user_keys:
        return ()
    if picture.user is None:
        return (Step("IAM user", settings.iam_user, "keep", "does not exist: no keys to retire"),)
    record = picture.record.with_holders({p.scope: () for p in settings_places(settings)})
    ids = [k.key_id for k in picture.keys]
    return key_fates(ids, record, now, "replaced by the role", retiring(settings, picture.record))


def retiring(settings: Settings, *seen: Record) -> Retiring:
    """This run's retirement rules (keys.rules.retiring) for its inputs' places."""
    scopes = [p.scope for p in settings_places(settings)]
    return key_rules.retiring(settings.retire_unmanaged_keys, settings.run, scopes, *seen)


def key_fates(
    ids: Iterable[str], record: Record, now: datetime, why: str, rules: Retiring
) -> tuple[Step, ...]:
    """keys.rules.fates as steps: delete, or keep with the reason."""
    return tuple(
        Step("Access key", f.key_id, "delete" if f.delete else "keep", f.reason)
        for f in key_rules.fates(ids, record, now, why, rules)
    )


def key_plan(settings: Settings, picture: Picture, now: datetime, over: frozenset[str], base: Plan) -> Plan:
    settled = settled_record(settings, picture, now, over)
    record = settled.record
    notes = key_rules.record_notes(record, now) + list(settled.notes) + boundary_notes(settings, picture)
    repaired = set(settled.rewrite | record.rewrite)  # pairs that may be mismatched: written anew
    rules = retiring(settings, picture.record, record)
    if not repaired and not settled.unknown and picture.user is not None:
        scopes = [p.scope for p in base.targets]
        current = key_rules.key_to_keep(picture.keys, record, scopes, now, settings.rotate_after, rules)
        if current is not None:
            return keep_plan(settings, picture, current, now, replace(base, notes=tuple(notes)))
    keys = _plan_keys(settings, picture, settled, now, notes)
    targets = [Target(p, record.holders.get(p.scope, ())) for p in base.targets]
    more = key_rules.other_holders(record, keys, repaired - {t.scope for t in targets})
    reclaimed = keys.reclaim.key_id if keys.reclaim else None
    targets.sort(key=lambda t: reclaimed not in t.previous)  # those holding the reclaimed key first
    written = record.with_holders({t.scope: (NEW_KEY,) for t in targets})
    older = [k.key_id for k in picture.keys if k.key_id != reclaimed]
    rotate = Rotate(
        *user_steps(settings, picture),
        keys=keys,
        keys_before=picture.keys,
        targets=tuple(targets),
        record=record,
        reclaim=reclaim_step(keys, record),
        fates=key_fates(older, written, now, "replaced; no target holds it", rules),
        rules=rules,
    )
    return replace(base, rotate=rotate, secrets=secret_steps(settings, base.targets), notes=(*notes, *more))


def reclaim_step(keys: KeyPlan, record: Record) -> Step | None:
    """The key deleted before the new one is made (IAM allows two): an orphan, or (break before make) a key
    only this run's targets hold, which then hold no working key until they are written, first."""
    if keys.reclaim is None:
        return None
    detail = "orphan that no target holds"
    if keys.breaks:
        labels = ", ".join(record.place_of(s).label for s in keys.breaks)
        detail = (
            f"first, to make room: held only by this run's targets ({labels}), which cannot push from then "
            "until they are written with the new key, first"
        )
    return Step("Access key", keys.reclaim.key_id, "delete", detail)


def settled_record(settings: Settings, picture: Picture, now: datetime, over: frozenset[str]) -> Outcome:
    """The record as this run decides by: runs GitHub says are over, a new user's own tags counted, and the
    entries crashed runs left unsettled told from GitHub's timestamps. Raises LeaseHeld first."""
    extra = 0 if picture.user else len(settings.tags)  # a user this run creates: its tags share the limit
    seen = picture.record
    record = replace(seen, over=seen.over | over, other_tags=seen.other_tags + extra)
    lease = key_rules.held_lease(record, now, settings.run)
    if lease is not None:  # settle nothing while a run may still be writing
        raise LeaseHeld(lease, lease.until)
    return settle_record(record, picture.stamps, [k.key_id for k in picture.keys], now, settings.run)


def keep_plan(settings: Settings, picture: Picture, key: AccessKey, now: datetime, base: Plan) -> Plan:
    nxt = key.created + timedelta(seconds=settings.rotate_after)
    detail = f"{age(key.created, now)} old; rotates after {readable(nxt, seconds=False)} (rotate-after)"
    keep = Keep(*user_steps(settings, picture), key, nxt, Step("Access key", key.key_id, "keep", detail))
    held = f"holds the current key {key.key_id}"
    return replace(
        base, keep=keep, secrets=tuple(Step("GitHub secrets", p.label, "keep", held) for p in base.targets)
    )


def user_steps(settings: Settings, picture: Picture) -> tuple[Step, Step]:
    """The IAM user and its policy attachment (a user this run creates has none yet)."""
    user = Step("IAM user", settings.iam_user, "reuse")
    if picture.user is None:
        user = Step("IAM user", settings.iam_user, "create", "no console password")
    attached = picture.attached if picture.user else frozenset()
    return user, attachment_step(settings, picture, attached, settings.iam_user)


def _plan_keys(
    settings: Settings, picture: Picture, settled: Outcome, now: datetime, notes: list[Note]
) -> KeyPlan:
    try:
        rules = retiring(settings, picture.record)
        return key_rules.plan_keys(list(picture.keys), settled.record, settings_places(settings), now, rules)
    except LeaseHeld:
        raise
    except KeyPlanError as exc:
        refused = f"No new access key can be created safely for {settings.iam_user}: {exc}."
        if settled.unknown:
            raise NoSafeKey(
                f"{refused} GitHub's timestamps cannot tell which of its keys "
                f"{', '.join(sorted(settled.unknown))} hold(s) (an earlier run stopped while writing them, "
                "within a second of its reference time), so both keys are kept. Nothing was changed.",
                fix="Let one push run in that repository, then delete in IAM the key that IAM's 'last used' "
                "shows unused since the interrupted run, and rerun.",
                notes=tuple(notes),
            ) from exc
        fresh = (
            " A key made moments ago: rerun in a minute." if key_rules.unsettled(settled.record, now) else ""
        )
        raise NoSafeKey(
            f"{refused} Nothing was changed.",
            fix="Name every repository that shares this IAM user in one run's repositories (that run "
            "rotates them together), or give each independently run repository its own iam-user (as "
            "examples/bootstrap-matrix.yml does). A key not created by this action: delete it in IAM once "
            f"nothing uses it, or set retire-unmanaged-keys: true.{fresh}",
            notes=tuple(notes),
        ) from exc


def boundary_notes(settings: Settings, picture: Picture) -> list[Note]:
    """A reused user keeps its permissions boundary: say so when it is not the one asked for."""
    user = picture.user
    kept = user and iam.boundary_warning(user.name, user.boundary, settings.permissions_boundary)
    return [Note(kept, "Permissions boundary kept")] if kept else []
