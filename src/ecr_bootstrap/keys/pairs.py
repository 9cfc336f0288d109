"""A rotation's writes of each target's key pair: the id, then the secret, the id put back when the secret
did not change (or may not have), and a write a cancellation cut short, settled. What each target holds
goes to the log (journal.py), never to a field."""

from __future__ import annotations

from dataclasses import dataclass

from ..deadline import WriteDeadline
from ..errors import GitHubError
from ..github import GitHub
from ..inputs import SecretNames
from ..plan import Target
from .journal import (
    IdRefused,
    IdRestored,
    IdSent,
    IdWritten,
    KeyCreated,
    Log,
    RestoreFailed,
    SecretSent,
    SecretUncertain,
    SecretWritten,
)


@dataclass(frozen=True)
class Pairs:
    github: GitHub
    names: SecretNames
    log: Log
    live: frozenset[str]  # the user's older keys: an id is only ever put back to one of them

    def write(self, t: Target, key: KeyCreated, lease: WriteDeadline | None) -> GitHubError | None:
        """Returns the failure, if any. Each write is compared, when its outcome is open, with the one this
        run made just before it."""
        names, log = self.names, self.log
        log.add(IdSent(t.scope))
        try:
            self.github.put_secret(
                t.place, names.key_id, key.key_id, after=names.repository_uri, deadline=lease
            )
        except GitHubError as exc:
            if exc.ambiguous:
                self.restore_id(t, lease)
            else:  # refused, or read back as not written: nothing changed
                log.add(IdRefused(t.scope))
            return exc
        log.add(IdWritten(t.scope))
        log.add(SecretSent(t.scope))
        try:
            self.github.put_secret(t.place, names.secret_key, key.secret, after=names.key_id, deadline=lease)
        except GitHubError as exc:
            if exc.ambiguous:  # even reading it back could not tell
                log.add(SecretUncertain(t.scope))
            else:
                self.restore_id(t, lease)
            return exc
        log.add(SecretWritten(t.scope))
        return None

    def restore_id(self, t: Target, lease: WriteDeadline | None) -> None:
        """The secret did not change (or may not have): the id goes back to the previous key, the one
        key the secret can belong to. If that is not known, or the write fails, the target is unknown."""
        name = self.names.key_id
        live = [k for k in t.previous if k in self.live]
        self.log.add(IdSent(t.scope))
        try:
            if len(live) == 1:
                self.github.put_secret(t.place, name, live[0], deadline=lease)
                self.log.add(IdRestored(t.scope, live[0]))
                return
            if not t.previous:
                self.github.delete_secret(t.place, name, lease)
                self.log.add(IdRestored(t.scope, ""))
                return
        except GitHubError as exc:
            self.log.add(RestoreFailed(t.scope, exc.message))  # its secret is still the previous key's
            return
        self.log.add(RestoreFailed(t.scope, ""))

    def settle(self, t: Target, read_back: bool) -> None:
        """After a cancellation: an id on its way is put back; a secret on its way is read back first
        (`read_back`: time allows it); unread, the target stays unknown."""
        last = self.log.last(t.scope)
        if isinstance(last, SecretSent) and read_back:
            landed = self.github.landed(t.place, self.names.secret_key, self.names.key_id)
            if landed:
                self.log.add(SecretWritten(t.scope))
            elif landed is False:
                self.restore_id(t, None)
        elif isinstance(last, IdSent | IdWritten):
            self.restore_id(t, None)
