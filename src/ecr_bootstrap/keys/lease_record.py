"""This run's lease as recorded on the IAM user (docs/key-record.md, "The lease names its run"): its intent
tag, written pending before the key exists, marked done by the commit or a rollback, or removed."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..aws import AwsClients, iam
from ..deadline import WriteDeadline
from ..errors import BootstrapError
from ..inputs import Settings
from ..plan import Target
from .journal import Log
from .record import NEXT, Lease, RunId, holder_tags, lease_tags
from .settle import GAP

# A pair is not started with less of the lease left than this (two writes at the client's timeout).
LEASE_MARGIN = 35.0
Tags = list[dict[str, str]]


def next_entries(targets: tuple[Target, ...]) -> Tags:
    """Each target's entry as "old or the next key", written with the lease (the key this run makes is
    found through the intent if it dies). It carries no reference (the lease does): a run whose read
    lagged and that writes the same entry again changes nothing that settles it."""
    return [tag for t in targets for tag in holder_tags(t.place, (*t.previous, NEXT))]


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

    def release(self, aws: AwsClients, user: str, state: str, now: datetime) -> None:
        """End the lease early, so that the next run need not wait for it; `pending` (ended at once) keeps
        the creation window open for a key this run may have made without learning its id."""
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
