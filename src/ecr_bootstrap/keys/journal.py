"""What a key rotation has done: how far it got (Stage) and an append-only log of what exists because of it
(the key created, each target's id and secret written or put back, the record committed).

Nothing about a target's state is kept anywhere else: what it holds now, what the commit records for it and
what the summary says are all derived from the log (`outcome`), so what a failure or a cancellation at any
step leaves behind is the log up to that step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from ..inputs import SecretNames
from ..plan import Target
from ..report import TargetResult


class Stage(enum.Enum):
    """How far the run got, i.e. which request may be in flight: what a rollback has to undo."""

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


@dataclass(frozen=True)
class Committed:
    """The record says what each target holds, and the lease is done."""


@dataclass(frozen=True)
class TargetFact:
    scope: str


class IdSent(TargetFact):
    """A write of the key id (the new one, or the previous one put back) is on its way."""


class IdWritten(TargetFact):
    """The target's id is the new key's."""


class IdRefused(TargetFact):
    """The id write was refused (or read back as not written): the target did not change."""


class SecretSent(TargetFact):
    """The new secret is on its way; its outcome is open until a later fact settles it."""


class SecretWritten(TargetFact):
    """The target holds the new pair."""


class SecretUncertain(TargetFact):
    """Even reading the secret back could not tell whether it was written: the id is the new key's."""


@dataclass(frozen=True)
class IdRestored(TargetFact):
    key_id: str  # the previous key's id, written back ("": the id was removed, there was none before)


@dataclass(frozen=True)
class RestoreFailed(TargetFact):
    why: str  # GitHub's error ("": the previous key is not known, so nothing could be written back)


Fact = KeyCreated | KeyDeleted | Committed | TargetFact


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

    @property
    def committed(self) -> bool:
        return any(isinstance(f, Committed) for f in self._facts)

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

    def result(self, t: Target) -> TargetResult:
        return TargetResult(t.repository, self.state, self.detail)


def outcome(log: Log, t: Target, names: SecretNames) -> Outcome:
    """What target t holds, by the last fact about it."""
    new = log.new_key
    maybe = f"{names.secret_key} may or may not have been written"
    match log.last(t.scope):
        case None:
            return Outcome("unchanged", "not reached", t.previous)
        case IdRefused():
            return Outcome("unchanged", f"{names.key_id} not written; previous pair kept", t.previous)
        case SecretWritten():
            return Outcome("written", "", (new,))
        case SecretUncertain():
            return Outcome("unknown", maybe, (new,), True)
        case IdRestored(key_id=key_id) if key_id:
            return Outcome("restored", f"{names.key_id} set back to {key_id}, the key it holds", t.previous)
        case IdRestored():
            detail = f"{names.key_id} removed again (it had no key of this user before)"
            return Outcome("restored", detail, t.previous)
        case RestoreFailed(why=why) if why:
            return Outcome("unknown", f"restoring {names.key_id} failed too ({why})", t.previous, True)
        case RestoreFailed():
            detail = "its previous key is not known, so it could not be restored"
            return Outcome("unknown", detail, t.previous, True)
        case _:  # a write whose answer never came: its id is either key's, and so is its secret
            return Outcome("unknown", maybe, (*t.previous, new), True)
