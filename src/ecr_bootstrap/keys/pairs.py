"""A rotation's writes of each target's key pair, whose outcomes go to the log (journal.py). The id goes
before the secret because an id can be restored (IAM lists it) and a secret cannot: if the secret write
fails, writing the old id back leaves the old pair whole."""

from __future__ import annotations

from dataclasses import dataclass

from ..deadline import WriteDeadline
from ..errors import GitHubError
from ..github import GitHub
from ..inputs import SecretNames
from ..plan import Target
from .journal import KeyCreated, Log, Pair, TargetFact


@dataclass(frozen=True)
class Pairs:
    github: GitHub
    names: SecretNames
    log: Log
    live: frozenset[str]  # the user's older keys: an id is only ever put back to one of them

    def note(self, t: Target, step: Pair, detail: str = "") -> None:
        self.log.add(TargetFact(t.scope, step, detail))

    def write(self, t: Target, key: KeyCreated, lease: WriteDeadline | None) -> GitHubError | None:
        """Returns the failure, if any. Each write is compared, when its outcome is open, with the one this
        run made just before it."""
        names = self.names
        self.note(t, Pair.ID_SENT)
        try:
            self.github.put_secret(
                t.place, names.key_id, key.key_id, after=names.repository_uri, deadline=lease
            )
        except GitHubError as exc:
            if exc.ambiguous:
                self.restore_id(t, lease)
            else:  # refused, or read back as not written: nothing changed
                self.note(t, Pair.ID_REFUSED)
            return exc
        self.note(t, Pair.ID_WRITTEN)
        self.note(t, Pair.SECRET_SENT)
        try:
            self.github.put_secret(t.place, names.secret_key, key.secret, after=names.key_id, deadline=lease)
        except GitHubError as exc:
            if exc.ambiguous:  # even reading it back could not tell
                self.note(t, Pair.SECRET_UNCERTAIN)
            else:
                self.restore_id(t, lease)
            return exc
        self.note(t, Pair.SECRET_WRITTEN)
        return None

    def restore_id(self, t: Target, lease: WriteDeadline | None) -> None:
        """The secret did not change (or may not have): the id goes back to the previous key, the one
        key the secret can belong to. If that is not known, or the write fails, the target is unknown."""
        name = self.names.key_id
        live = [k for k in t.previous if k in self.live]
        self.note(t, Pair.ID_SENT)
        try:
            if len(live) == 1:
                self.github.put_secret(t.place, name, live[0], deadline=lease)
                self.note(t, Pair.ID_RESTORED, live[0])
            elif not t.previous:
                self.github.delete_secret(t.place, name, lease)
                self.note(t, Pair.ID_RESTORED)
            else:
                self.note(t, Pair.RESTORE_FAILED)
        except GitHubError as exc:
            self.note(t, Pair.RESTORE_FAILED, exc.message)  # its secret is still the previous key's

    def settle(self, t: Target, read_back: bool) -> None:
        """After a cancellation: an id on its way is put back; a secret on its way is read back first
        (`read_back`: time allows it); unread, the target stays unknown."""
        last = self.log.last(t.scope)
        step = last.step if last else None
        if step is Pair.SECRET_SENT and read_back:
            landed = self.github.landed(t.place, self.names.secret_key, self.names.key_id)
            if landed:
                self.note(t, Pair.SECRET_WRITTEN)
            elif landed is False:
                self.restore_id(t, None)
        elif step in (Pair.ID_SENT, Pair.ID_WRITTEN):
            self.restore_id(t, None)
