"""What a rotation works on (RotationState: rotate.py runs the phases over it, rollback.py undoes them): how
far it got (Stage) and an append-only log of what exists because of it; this run's lease as recorded on the
IAM user (LeaseRecord; docs/key-record.md, "The lease names its run": its intent tag, written pending before
the key exists, marked done by the commit or a rollback, or removed); and the commit: one TagUser and one
UntagUser. What a target holds, what the commit records for it and what the summary says are all derived
from the log (`outcome`), so a failure or a cancellation at any step leaves behind the log up to that step."""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..aws import AwsClients, iam
from ..github import GitHub
from ..inputs import SecretNames, Settings
from ..plan import Rotate, Target
from ..report import Report, TargetResult
from ..times import WriteDeadline
from ..workflow import Workflow
from .record import (
    LEASE_PREFIX,
    NEXT,
    AccessKey,
    Lease,
    Record,
    RunId,
    holder_parts,
    holder_tags,
    lease_tags,
    marker_key,
    marker_tag,
    policy_tag,
    tag_parts,
)
from .settle import GAP


class Stage(enum.Enum):
    """Which request may be in flight: what a rollback has to undo."""

    START = "start"  # nothing of this run's exists yet (a slot may be being reclaimed)
    USER = "user"  # CreateUser (carrying a new user's intent) or AttachUserPolicy on its way
    INTENT = "intent"  # the lease is written (or on its way); no key
    CREATING = "creating"  # CreateAccessKey on its way: a key may exist whose id this run does not know
    CREATED = "created"  # the key exists; no target changed yet (proving it, writing the URI)
    WRITING = "writing"  # the targets' pairs
    COMMIT = "commit"  # the record's commit on its way
    COMMITTED = "committed"
    RETIRE = "retire"
    DONE = "done"


@dataclass(frozen=True)
class KeyCreated:
    key_id: str
    created: datetime  # CreateDate, as IAM answered it
    secret: str = field(repr=False)


@dataclass(frozen=True)
class KeyDeleted:
    key_id: str


class Pair(enum.Enum):
    """What happened to a target's pair."""

    ID_SENT = "id sent"  # a write of the id (the new one, or the previous one put back) is on its way
    ID_WRITTEN = "id written"  # the target's id is the new key's
    ID_UNCERTAIN = "id uncertain"  # lost, and even reading it back could not tell: it may still land
    ID_REFUSED = "id refused"  # refused (or read back as not written): the target did not change
    SECRET_SENT = "secret sent"  # the new secret is on its way: open until a later step settles it
    SECRET_WRITTEN = "secret written"  # the target holds the new pair
    SECRET_UNCERTAIN = "secret uncertain"  # even reading it back could not tell; the id is the new key's
    ID_RESTORED = "id restored"  # detail: the previous key's id ("": removed, there was none before)
    RESTORE_FAILED = "restore failed"  # detail: GitHub's error ("": the previous key is not known)


@dataclass(frozen=True)
class TargetFact:
    scope: str
    step: Pair
    detail: str = ""


Fact = KeyCreated | KeyDeleted | TargetFact


class Log:
    """Facts in the order they happened; nothing is changed or taken back."""

    def __init__(self) -> None:
        self._facts: list[Fact] = []

    def add(self, fact: Fact) -> None:
        self._facts.append(fact)

    @property
    def key(self) -> KeyCreated | None:
        return next((f for f in self._facts if isinstance(f, KeyCreated)), None)

    @property
    def new_key(self) -> str:
        return self.key.key_id if self.key else ""

    def deleted(self, key_id: str) -> bool:
        return KeyDeleted(key_id) in self._facts

    def last(self, scope: str) -> TargetFact | None:
        """The latest fact about one target: it alone says what the target holds."""
        return next(
            (f for f in reversed(self._facts) if isinstance(f, TargetFact) and f.scope == scope), None
        )


@dataclass(frozen=True)
class Outcome:
    state: str  # written | unchanged | restored | unknown
    detail: str
    holds: tuple[str, ...]  # the key ids the target may hold now (what the commit records)
    rewrite: bool = False  # its pair may be mismatched: the record says to write it anew

    def line(self, repository: str) -> str:
        return f"{repository}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def outcome(log: Log, t: Target, names: SecretNames) -> Outcome:
    """What target t holds, by the last fact about it."""
    new, last = log.new_key, log.last(t.scope)
    maybe = f"{names.secret_key} may or may not have been written"
    detail = last.detail if last else ""
    match last.step if last else None:
        case None:
            return Outcome("unchanged", "not reached", t.previous)
        case Pair.ID_REFUSED:
            return Outcome("unchanged", f"{names.key_id} not written; previous pair kept", t.previous)
        case Pair.ID_UNCERTAIN:
            detail = f"{names.key_id} may or may not have been written (and may still be)"
            return Outcome("unknown", detail, (*t.previous, new), True)
        case Pair.SECRET_WRITTEN:
            return Outcome("written", "", (new,))
        case Pair.SECRET_UNCERTAIN:
            return Outcome("unknown", maybe, (new,), True)
        case Pair.ID_RESTORED if detail:
            return Outcome("restored", f"{names.key_id} set back to {detail}, the key it holds", t.previous)
        case Pair.ID_RESTORED:
            detail = f"{names.key_id} removed again (it had no key of this user before)"
            return Outcome("restored", detail, t.previous)
        case Pair.RESTORE_FAILED if detail:
            return Outcome("unknown", f"restoring {names.key_id} failed too ({detail})", t.previous, True)
        case Pair.RESTORE_FAILED:
            detail = "its previous key is not known, so it could not be restored"
            return Outcome("unknown", detail, t.previous, True)
        case _:  # a write whose answer never came: its id is either key's, and so is its secret
            return Outcome("unknown", maybe, (*t.previous, new), True)


# A pair is not started with less of the lease left than this (two writes at the client's timeout).
LEASE_MARGIN = 35.0
Tags = list[dict[str, str]]
# Markers of deleted keys are removed this many at a time, once older than STALE_AGE.
STALE_BATCH = 5
STALE_AGE = timedelta(minutes=10)


@dataclass
class LeaseRecord:
    tag: str  # ecr-bootstrap:lease:<id>, this run's own
    since: datetime  # IAM's clock, whole seconds
    until: datetime
    local: WriteDeadline  # the part of it in which targets are written
    existing: tuple[str, ...]  # the user's keys when it was taken: none of them is this run's
    run: RunId | None
    log: Log  # names this run's key, once it exists
    ref: int | None = None  # GitHub's second before this run's first target write (keys.settle)
    ref_at: float = 0.0  # monotonic time the reference arrived

    @classmethod
    def take(
        cls, tag: str, now: datetime, settings: Settings, existing: tuple[str, ...], log: Log
    ) -> LeaseRecord:
        """Past its lease the run writes no target, so that a later run may take its key as abandoned. It
        is recorded before the key exists, so that even a key whose run died at once is known."""
        seconds, run = settings.lease_seconds, settings.run
        since = now.replace(microsecond=0)
        until = since + timedelta(seconds=seconds)
        # The recorded end counts from the whole second: the local lease ends no later than it.
        local = WriteDeadline.lasting((until - now).total_seconds() - min(LEASE_MARGIN, seconds / 4))
        return cls(tag, since, until, local, existing, run if run.run_id else None, log)

    def tags(self, state: str) -> Tags:
        key = self.log.new_key if state != "pending" else ""
        return lease_tags(
            Lease(state, self.since, self.until, self.existing, key, self.run, self.ref, self.tag)
        )

    def wait_past_reference(self) -> None:
        """No key id is written until GAP seconds after the reference second arrived: every write of this
        run then has a later updated_at than every write before it (keys.settle)."""
        pause = self.ref_at + GAP - time.monotonic()
        if self.ref is not None and pause > 0:
            time.sleep(pause)


@dataclass
class RotationState:
    """Built whole from the plan, once the repository and the policy exist."""

    aws: AwsClients
    github: GitHub
    workflow: Workflow
    report: Report
    settings: Settings
    rotate: Rotate  # the plan's key decisions and the record as it settled it
    user: iam.User | None  # None: this run creates the user, with its intent as CreateUser's tags
    attach: str  # the policy ARN to attach to the user ("" when it is attached already)
    repository_uri: str
    policy_version: tuple[str, str] | None  # (name, default version), remembered in the record
    now: Callable[[], datetime]  # IAM's clock, as this run sees it
    provisioned: bool = False  # the user exists and has the policy (a second try after LimitExceeded)
    keys: list[AccessKey] = field(init=False)  # the user's older keys (less one deleted to make room)
    record: Record = field(init=False)  # this run's copy: the plan's stays as planned
    lease_tag: str = field(default_factory=lambda: LEASE_PREFIX + secrets.token_hex(4))
    created_user: bool = False  # this run made the user with its intent: no other run can race it
    lease: LeaseRecord | None = None  # from just before the user or the key is made
    stage: Stage = Stage.START
    log: Log = field(default_factory=Log)
    proof: str = ""  # the new key's ECR proof, for the summary: "proven with ECR", "not proven: ..."

    def __post_init__(self) -> None:
        self.keys = list(self.rotate.keys_before)
        self.record = self.rotate.record

    @property
    def user_name(self) -> str:
        if self.user is None:  # _ensure_user sets it before the key phases
            raise RuntimeError("the IAM user is not known yet")
        return self.user.name

    @property
    def key(self) -> KeyCreated:
        if self.log.key is None:
            raise RuntimeError("no key was created")
        return self.log.key

    def outcomes(self) -> dict[str, Outcome]:
        names = self.settings.secret_names
        return {t.scope: outcome(self.log, t, names) for t in self.rotate.targets}

    def results(self) -> list[TargetResult]:
        outcomes = self.outcomes()
        return [
            TargetResult(t.repository, outcomes[t.scope].state, outcomes[t.scope].detail)
            for t in self.rotate.targets
        ]

    def note(self, t: Target, step: Pair, detail: str = "") -> None:
        self.log.add(TargetFact(t.scope, step, detail))

    def delete_key(self, key_id: str, why: str) -> None:
        """The one place this run deletes a key it made (reported as deleted, with `why`, if given)."""
        if self.log.deleted(key_id):
            return
        iam.delete_key(self.aws, self.user_name, key_id)
        self.log.add(KeyDeleted(key_id))
        if why:
            self.report.access_key_id = ""
            self.report.add("Access key", key_id, "deleted", why)

    def commit(self) -> None:
        """One TagUser and one UntagUser; a new key no target holds is deleted. Run again after a
        cancellation, it writes the same tags and deletes nothing more."""
        key, outcomes = self.key, self.outcomes()
        holdings = {scope: o.holds for scope, o in outcomes.items()}
        held = any(key.key_id in ids for ids in holdings.values())
        tags, untag = self._entries(outcomes)
        if held:
            # The key's own CreateDate: the proof, read back by every later run, that this action made it.
            tags.append(marker_tag(key.key_id, "active", key.created.replace(microsecond=0)))
        tags += [policy_tag(*self.policy_version)] if self.policy_version else []
        if held:
            tags += self._replaced_markers(holdings)
        tags += self.lease.tags("done") if self.lease else []
        written = {t["Key"] for t in tags}
        untag = [k for k in untag if k not in written]
        stale = self._stale(self.now())
        if untag or len(stale) >= STALE_BATCH:
            untag += stale
        iam.tag_user(self.aws, self.user_name, tags)
        iam.untag_user(self.aws, self.user_name, untag)
        if self.stage is Stage.COMMITTED:
            return
        self.stage = Stage.COMMITTED
        if not held:
            self.delete_key(key.key_id, "rolled back: no target holds it")
            return
        every = all(o.state == "written" for o in outcomes.values())
        detail = "written to every target" if every else "held by some targets"
        detail += f"; {self.proof}" if self.proof else ""
        self.report.add("Access key", key.key_id, "created", detail)

    def _entries(self, outcomes: dict[str, Outcome]) -> tuple[Tags, list[str]]:
        """Each target's entry as it now holds (tags to write), or gone (tag keys to remove)."""
        ref = self.lease.ref if self.lease else None  # GitHub's second before the first target write
        tags: Tags = []
        untag: list[str] = []
        for t in self.rotate.targets:
            o = outcomes[t.scope]
            if o.state in ("written", "unknown"):
                tags += holder_tags(t.place, o.holds, ref if len(o.holds) > 1 else None, o.rewrite)
            elif t.previous:
                tags += holder_tags(t.place, t.previous)
            else:
                untag += entry_keys(self.record, t, self.key.key_id)
        return tags, untag

    def _replaced_markers(self, holdings: dict[str, tuple[str, ...]]) -> Tags:
        """Older keys this run replaced and that no place holds once it commits: marked "replaced" in the
        same request, so that a later run retires them if this run's deletion does not happen. A key
        deleted to make room needs no mark."""
        out = []
        for key_id in sorted(self.rotate.rules.replaced & {k.key_id for k in self.keys}):
            marker = self.record.markers.get(key_id)
            committed = any(key_id in ids for ids in holdings.values())
            others = any(key_id in ids for s, ids in self.record.holders.items() if s not in holdings)
            if marker is not None and marker.since is not None and not committed and not others:
                out.append(marker_tag(key_id, "replaced", marker.since))
        return out

    def _stale(self, now: datetime) -> list[str]:
        """Markers of keys that no longer exist (retired by earlier runs). Harmless but they take tags:
        removed STALE_BATCH at a time, so that most commits need no UntagUser. Only markers older than
        STALE_AGE, so that a key a lagging ListAccessKeys does not show yet keeps its marker."""
        record, live = self.record, {k.key_id for k in self.keys} | {self.key.key_id}
        stale = [
            marker_key(key_id)
            for key_id, marker in record.markers.items()
            if key_id not in live and marker.since is not None and now - marker.since > STALE_AGE
        ]
        # Other runs' intents, once over for STALE_AGE: done, or pending with every key they made marked
        # (this run's lease write marked the ones it adopted).
        for tag, intent in record.leases.items():
            if tag == self.lease_tag or intent.since is None:
                continue
            end = intent.until or intent.since
            made = [k for k, i in record.made_by.items() if i is intent]
            if now - end > STALE_AGE and all(k in record.adopted or k not in live for k in made):
                stale += tag_parts(record, tag)
        return stale


def entry_keys(record: Record, t: Target, new: str) -> list[str]:
    """Every tag key t's entry may use, as it was and as this run wrote it."""
    wrote = [tag["Key"] for tag in holder_tags(t.place, (*t.previous, new or NEXT))]
    return list(dict.fromkeys(holder_parts(record, t.scope) + wrote))
