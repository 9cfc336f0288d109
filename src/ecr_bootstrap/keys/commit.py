"""A rotation's commit: one TagUser and one UntagUser on the IAM user, from what the log says each target
holds: its entry narrowed to that, the new key's marker if any target holds it (otherwise the key is
deleted), "replaced" markers for the keys it let go, the lease done, and tags of deleted keys and of over
leases removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..aws import iam
from ..plan import Target
from .journal import Committed, KeyCreated, Outcome, Stage
from .record import NEXT, Record, holder_parts, holder_tags, marker_key, marker_tag, policy_tag, tag_parts

if TYPE_CHECKING:
    from .rotate import Rotation

# Markers of deleted keys are removed this many at a time, once older than STALE_AGE.
STALE_BATCH = 5
STALE_AGE = timedelta(minutes=10)

Tags = list[dict[str, str]]


def commit(rot: Rotation) -> None:
    """Narrow each holder entry to what the target now holds; keep the new key only if held; mark the
    lease done. Run again after a cancellation, it writes the same tags and deletes nothing more."""
    key, lease, outcomes = rot.key, rot.lease, rot.outcomes()
    alive, replaced = frozenset(k.key_id for k in rot.keys), rot.rotate.rules.replaced
    ref = lease.ref if lease else None
    made = Commit(rot.rotate.targets, outcomes, key, rot.record, ref, alive, replaced)
    policy = [policy_tag(*rot.policy_version)] if rot.policy_version else []
    done = lease.tags("done") if lease else []
    tags, untag = made.tags(policy, done, rot.lease_tag, rot.now())
    iam.tag_user(rot.aws, rot.user_name, tags)
    iam.untag_user(rot.aws, rot.user_name, untag)
    if rot.log.committed:
        return
    rot.log.add(Committed())
    rot.stage = Stage.COMMITTED
    if not made.held:
        rot.delete_key(key.key_id, "rolled back: no target holds it")
        return
    every = all(o.state == "written" for o in outcomes.values())
    detail = "written to every target" if every else "held by some targets"
    rot.report.add("Access key", key.key_id, "created", detail)


def entry_keys(record: Record, t: Target, new: str) -> list[str]:
    """Every tag key t's entry may use, as it was and as this run wrote it."""
    wrote = [tag["Key"] for tag in holder_tags(t.place, (*t.previous, new or NEXT))]
    return list(dict.fromkeys(holder_parts(record, t.scope) + wrote))


@dataclass(frozen=True)
class Commit:
    targets: tuple[Target, ...]
    outcomes: dict[str, Outcome]  # scope -> what the target holds now
    key: KeyCreated
    record: Record  # as this run read and settled it
    ref: int | None  # GitHub's second before this run's first target write
    alive: frozenset[str]  # the user's older keys that still exist
    replaced: frozenset[str]  # the keys this run's targets held

    @property
    def holdings(self) -> dict[str, tuple[str, ...]]:
        return {scope: o.holds for scope, o in self.outcomes.items()}

    @property
    def held(self) -> bool:
        return any(self.key.key_id in ids for ids in self.holdings.values())

    def tags(self, policy: Tags, done: Tags, lease_tag: str, now: datetime) -> tuple[Tags, list[str]]:
        """One TagUser (entries, the new key's marker if held, `policy`, replaced markers, `done`: the lease
        done) and one UntagUser (entries of targets that hold nothing of the user's, stale tags)."""
        new = self.key.key_id
        tags, untag = self.entries()
        if self.held:
            # The key's own CreateDate: the proof, read back by every later run, that this action made it.
            tags.append(marker_tag(new, "active", self.key.created.replace(microsecond=0)))
        tags += policy
        if self.held:
            tags += self.replaced_markers()
        tags += done
        written = {t["Key"] for t in tags}
        untag = [k for k in untag if k not in written]
        stale = self.stale(self.alive | {new}, lease_tag, now)
        if untag or len(stale) >= STALE_BATCH:
            untag += stale
        return tags, untag

    def entries(self) -> tuple[Tags, list[str]]:
        """Each target's entry as it now holds (tags to write), or gone (tag keys to remove)."""
        tags: Tags = []
        untag: list[str] = []
        for t in self.targets:
            o = self.outcomes[t.scope]
            if o.state in ("written", "unknown"):
                tags += holder_tags(t.place, o.holds, self.ref if len(o.holds) > 1 else None, o.rewrite)
            elif t.previous:
                tags += holder_tags(t.place, t.previous)
            else:
                untag += entry_keys(self.record, t, self.key.key_id)
        return tags, untag

    def replaced_markers(self) -> Tags:
        """Older keys this run replaced and that no place holds once it commits: marked "replaced" in the
        same request, so that a later run retires them if this run's deletion does not happen. A key
        deleted to make room needs no mark."""
        holdings = self.holdings
        out = []
        for key_id in sorted(self.replaced & self.alive):
            marker = self.record.markers.get(key_id)
            committed = any(key_id in ids for ids in holdings.values())
            others = any(key_id in ids for s, ids in self.record.holders.items() if s not in holdings)
            if marker is not None and marker.since is not None and not committed and not others:
                out.append(marker_tag(key_id, "replaced", marker.since))
        return out

    def stale(self, live: frozenset[str], lease_tag: str, now: datetime) -> list[str]:
        """Markers of keys that no longer exist (retired by earlier runs). Harmless but they take tags:
        removed STALE_BATCH at a time, so that most commits need no UntagUser. Only markers older than
        STALE_AGE, so that a key a lagging ListAccessKeys does not show yet keeps its marker."""
        record = self.record
        stale = [
            marker_key(key_id)
            for key_id, marker in record.markers.items()
            if key_id not in live and marker.since is not None and now - marker.since > STALE_AGE
        ]
        # Other runs' intents, once over for STALE_AGE: done, or pending with every key they made marked
        # (this run's lease write marked the ones it adopted).
        for tag, intent in record.leases.items():
            if tag == lease_tag or intent.since is None:
                continue
            end = intent.until or intent.since
            made = [k for k, i in record.made_by.items() if i is intent]
            if now - end > STALE_AGE and all(k in record.adopted or k not in live for k in made):
                stale += tag_parts(record, tag)
        return stale
