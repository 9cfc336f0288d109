"""This run's lease as recorded on the IAM user (docs/key-record.md, "The lease names its run"): its intent
tag, written pending before the key exists, marked done by the commit, or on a rollback marked done, ended
at once with the creation window open (pending), or removed."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from .aws import AwsClients, iam
from .errors import BootstrapError
from .journal import Log
from .lease import Lease
from .records import Intent, RunId, intent_tags

Tags = list[dict[str, str]]


@dataclass
class LeaseRecord:
    tag: str  # ecr-bootstrap:lease:<id>, this run's own
    since: datetime  # IAM's clock, whole seconds
    until: datetime
    local: Lease  # the part of it in which targets are written
    existing: tuple[str, ...]  # the user's keys when it was taken: none of them is this run's
    run: RunId | None
    log: Log  # names this run's key, once it exists
    ref: int | None = None  # GitHub's second before this run's first target write (records.settle)
    ref_at: float = 0.0  # monotonic time the reference arrived

    def tags(self, state: str) -> Tags:
        key = self.log.new_key if state != "pending" else ""
        return intent_tags(
            Intent(state, self.since, self.until, self.existing, key, self.run, self.ref, self.tag)
        )

    def release(self, aws: AwsClients, user: str, state: str, now: datetime) -> None:
        """End the lease early, so that the next run need not wait for it. `pending` keeps the creation
        window open for a key this run may have made without learning its id."""
        if state == "pending":
            self.until = now
        try:
            iam.tag_user(aws, user, self.tags(state))
        except BootstrapError:
            if state == "done":
                self.drop(aws, user)

    def drop(self, aws: AwsClients, user: str) -> None:
        """When the intent cannot be marked done, removing it frees the lease just as well."""
        keys = {t["Key"] for state in ("pending", "done") for t in self.tags(state)}
        keys |= {f"{self.tag}/{n}" for n in range(2, 4)}
        with contextlib.suppress(BootstrapError):  # the lease runs out instead
            iam.untag_user(aws, user, sorted(keys))
