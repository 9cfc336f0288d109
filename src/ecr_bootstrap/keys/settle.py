"""Settling which key a target holds when a stopped run left its entry saying "old or new key", from GitHub's
own timestamps (compared with GitHub's time only). A run records a reference second from GitHub's Date header
after every earlier write, and writes no key id until GAP seconds later: earlier writes are stamped <= ref,
the run's >= ref + GAP. With the Date header's servers and the storage's clock up to 2 s apart
(GITHUB_CLOCK_MARGIN), a stamp may land in the tie between, never on the wrong side."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ..report import Note
from .record import Record, RunId
from .rules import in_flight

GITHUB_CLOCK_MARGIN = 2
GAP = GITHUB_CLOCK_MARGIN + 1


@dataclass(frozen=True)
class Settled:
    held: tuple[str, ...]  # the key(s) the target holds
    rewrite: bool = False  # its id may point at a key whose secret it does not hold: write it anew


def _side(stamp: int, ref: int, last: int | None) -> str:
    if stamp <= ref:
        return "before"
    if last is not None and stamp > last:  # after that run could write: someone else's change
        return "tie"
    if stamp >= ref + GAP:
        return "after"
    return "tie"


def settle(
    ids: tuple[str, ...],
    ref: int | None,
    id_updated: int | None,
    secret_updated: int | None,
    last: int | None = None,
) -> Settled | None:
    """Which of `ids` a target holds, from GitHub's updated_at of its two secrets (epoch seconds) and the
    newest key's run's `ref`; None when it cannot be told (a tie): keep every key and write the target anew.
    `last`: the latest second that run could have written (its lease's end and GITHUB_CLOCK_MARGIN); a
    later stamp is another writer's, such as an admin changing an organization secret's selected
    repositories (which moves its updated_at), and cannot tell either.
    That run wrote the id, then the secret, and restored the id only when the secret did not land:
    - the id written before it: the run never reached the target; it holds the older key(s);
    - the secret written since: it holds the newest key;
    - the id written since, the secret before: its secret is the older key's; its id is the newest key's
      (mismatched) or the older one's (restored): it holds the older key, and is written anew.
    """
    if ref is None or id_updated is None or secret_updated is None or len(ids) < 2:
        return None
    id_side, secret_side = _side(id_updated, ref, last), _side(secret_updated, ref, last)
    if secret_side == "after":
        return Settled((ids[-1],))
    if "tie" in (id_side, secret_side):
        return None
    return Settled(ids[:-1], rewrite=id_side == "after")


@dataclass(frozen=True)
class Outcome:
    record: Record  # with every entry that could be told narrowed to what its target holds
    rewrite: frozenset[str]  # scopes to write anew (their pair may be mismatched)
    unknown: frozenset[str]  # labels of places whose key cannot be told
    notes: tuple[Note, ...]


def settle_record(
    record: Record,
    stamps: Mapping[str, tuple[int | None, int | None] | str],
    existing: list[str],
    now: datetime,
    current: RunId | None,
) -> Outcome:
    """Every unsettled entry, from its target's timestamps (`stamps`: scope -> (id, secret) updated_at in
    epoch seconds, or why they were not read); `existing`: the user's key ids."""
    rewrite: set[str] = set()
    unknown: set[str] = set()
    notes: list[Note] = []
    settled: dict[str, tuple[str, ...]] = {}
    for scope, ids in record.holders.items():
        if len(ids) < 2 or any(in_flight(record, i, now, current) for i in ids):
            continue  # settled, or its writing run may still be going (else it crashed, or failed mid-way)
        place = record.place_of(scope)
        seen = stamps.get(scope, "not read")
        if isinstance(seen, str):
            text = f"Could not tell which key {place.label} holds ({seen}); both are kept."
            notes.append(Note(text, "Key holder not read"))
            continue
        ref = _reference(record, scope, ids)
        held = settle(ids, ref, *seen, _last_write(record, ids[-1], ref))
        if held is not None and held.held != (ids[-1],) and not set(held.held) & set(existing):
            held = _older_gone(held, ids, existing)
        if held is None:
            unknown.add(place.label)
            rewrite.add(scope)
            text = (
                f"An earlier run stopped while writing {place.label}; GitHub's timestamps cannot tell "
                f"which of {', '.join(ids)} it holds, so both are kept and it is written anew."
            )
            notes.append(Note(text, "Key holder unknown"))
            continue
        settled[scope] = held.held
        what = f"holds {held.held[0]}" if held.held else "holds no working pair"
        if held.rewrite:
            what = f"holds the secret of {held.held[0]}, maybe beside another id: it is written anew"
            rewrite.add(scope)
        notes.append(Note(f"An earlier run stopped while writing {place.label}; it {what}."))
    return Outcome(record.with_holders(settled), frozenset(rewrite), frozenset(unknown), tuple(notes))


def _reference(record: Record, scope: str, ids: tuple[str, ...]) -> int | None:
    lease = record.made_by.get(ids[-1])
    ref = (lease.ref if lease else None) or record.refs.get(scope)
    marker = record.markers.get(ids[-1])
    if ref is None and marker is not None and marker.since is not None:
        # Version 1 recorded no GitHub time: the key's creation (IAM's clock) with 3 s either way.
        ref = int(marker.since.timestamp()) - 3
    return ref


def _last_write(record: Record, key_id: str, ref: int | None) -> int | None:
    """The latest GitHub second the run that made `key_id` could have written a target: it writes only
    within its lease (times.py), which began before its reference second. The lease is on IAM's clock,
    so only its length is used, counted from the reference (GitHub's clock)."""
    lease, marker = record.made_by.get(key_id), record.markers.get(key_id)
    span = lease if lease and lease.since and lease.until else marker
    if ref is None or span is None or span.since is None or span.until is None:
        return None
    return ref + int((span.until - span.since).total_seconds()) + GITHUB_CLOCK_MARGIN


def _older_gone(held: Settled, ids: tuple[str, ...], existing: list[str]) -> Settled | None:
    """The entry's older key is gone: it was written from a read that lagged a run which replaced that
    key. The target holds the key it had before, which is the only other key there is."""
    others = [k for k in existing if k != ids[-1]]
    return Settled((others[0],), held.rewrite) if len(others) == 1 else None
