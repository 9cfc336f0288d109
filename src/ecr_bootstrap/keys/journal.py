"""How far a key rotation got (Stage) and an append-only log of what exists because of it. What a target
holds, what the commit records for it and what the summary says are all derived from the log (`outcome`),
so a failure or a cancellation at any step leaves behind the log up to that step."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from ..inputs import SecretNames
from ..plan import Target


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
