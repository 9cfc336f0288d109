"""The key rules, each written once and pure: which keys are ours, whose lease holds, which key makes room,
which keys go and which are kept ("which key goes?" is `retirable`, and nowhere else). `now` is IAM's time as
the run estimates it from IAM's Date header; `current` is this run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from ..errors import KeyPlanError, LeaseHeld
from ..places import Place
from ..report import Note
from .reader import parse
from .record import (
    MAX_KEYS,
    MAX_TAGS,
    NEXT,
    AccessKey,
    Lease,
    Marker,
    Record,
    RunId,
    holder_tag_key,
    marker_key,
    tags_needed,
)

# A pending marker without a lease end (version 1 wrote some) counts as in flight this long.
IN_FLIGHT = timedelta(minutes=30)
# A run sends CreateAccessKey within this of writing its lease, or not at all: a key created later by
# anyone else is never taken for the run's own.
CREATE_WINDOW = timedelta(seconds=60)
# How far two runs' estimates of IAM's clock (from Date headers, whole seconds) may differ.
IAM_CLOCK_MARGIN = timedelta(seconds=2)
# The longest lease a run can take (lease-seconds is at most 3600): a recorded lease that starts in the
# future or ends later than this after its start was not written by this action and is believed over.
LEASE_CEILING = timedelta(seconds=3600) + IAM_CLOCK_MARGIN
# IAM's reads lag its writes, each read on its own (IAM User Guide, "Troubleshoot IAM"; seconds, up to about
# 15 s in issue 22): a key that no marker names and that IAM made this recently may be a run's whose lease
# and marker the read of the tags did not show yet.
UNSETTLED = timedelta(seconds=60)
UNMANAGED = "not created by this action (see retire-unmanaged-keys)"
_UNHELD = "held by no recorded place, but not one this run's targets held"
FRESH = "made moments ago, and no record entry names it yet (IAM's reads may lag its writes)"


def read_record(
    tags: list[dict[str, str]], keys: Iterable[AccessKey], scopes: Iterable[str], server: str
) -> Record:
    """The record in the user's tags, every entry validated (`server`: this run's GITHUB_SERVER_URL), every
    marker proven, version 1 entries filed under the targets' real scopes, crashed runs' keys adopted."""
    keys = list(keys)
    record = replace(prove(parse(tags, server), keys), created={k.key_id: k.created for k in keys})
    for scope in scopes:
        record = _refile_v1(record, scope)
    return adopt(record, keys)


def prove(record: Record, keys: Iterable[AccessKey]) -> Record:
    """A key is this action's only when its marker's time is the key's own CreateDate (IAM's, to the
    second), which the action writes when it makes the key: a marker with any other time is ignored,
    whoever wrote it."""
    markers, ignored = dict(record.markers), dict(record.ignored)
    for key in keys:
        marker = markers.get(key.key_id)
        if marker is not None and marker.since != key.created.replace(microsecond=0):
            del markers[key.key_id]
            ignored[marker_key(key.key_id)] = (
                "its time is not the key's creation time in IAM, so the key is not taken for this action's"
            )
    return replace(record, markers=markers, ignored=ignored)


def _refile_v1(record: Record, scope: str) -> Record:
    """A version 1 entry read under a cleaned-up scope, filed under the real one (the hash in its tag key)."""
    read_as = record.tag_scope.get(holder_tag_key(scope))
    if read_as is None or read_as == scope:
        return record
    holders, refs = dict(record.holders), dict(record.refs)
    if read_as in holders:
        holders[scope] = holders.pop(read_as)
    if read_as in refs:
        refs[scope] = refs.pop(read_as)
    places = {s: p for s, p in record.places.items() if s != read_as}
    tag_scope = {**record.tag_scope, holder_tag_key(scope): scope}
    return replace(record, holders=holders, refs=refs, places=places, tag_scope=tag_scope)


def adopt(record: Record, keys: Iterable[AccessKey]) -> Record:
    """An unmarked key created within a pending lease's creation window is that run's key (it died before
    marking it); holder entries naming "next" then name that key (or only their older keys)."""
    keys = list(keys)
    markers, made_by, adopted, made = dict(record.markers), dict(record.made_by), set(record.adopted), []
    for lease in sorted(record.leases.values(), key=lambda i: i.since or datetime.min.replace(tzinfo=UTC)):
        if lease.state == "made" and lease.key:
            made.append(lease.key)
            made_by[lease.key] = lease
        if lease.state != "pending" or lease.since is None:
            continue
        start = lease.since - IAM_CLOCK_MARGIN
        end = lease.since + CREATE_WINDOW + IAM_CLOCK_MARGIN
        until = lease.until or lease.since + IN_FLIGHT
        for key in keys:
            if key.key_id not in markers and key.key_id not in lease.existing and start <= key.created <= end:
                markers[key.key_id] = Marker("pending", key.created.replace(microsecond=0), until, lease.run)
                adopted.add(key.key_id)
                made_by[key.key_id] = lease
                made.append(key.key_id)
    holders, unknown = dict(record.holders), set(record.unknown_next)
    for scope, ids in record.holders.items():
        if NEXT in ids:
            holders[scope] = tuple(dict.fromkeys(i for k in ids for i in (made if k == NEXT else [k])))
            if not made:
                unknown.add(scope)
    return replace(
        record,
        markers=markers,
        made_by=made_by,
        adopted=frozenset(adopted),
        holders=holders,
        unknown_next=frozenset(unknown),
    )


def unsettled(record: Record, now: datetime) -> list[str]:
    """Keys that no marker names and that IAM made within UNSETTLED of `now`: a run reads IAM again before
    it decides anything about one, and never deletes one (not even under retire-unmanaged-keys)."""
    return [k for k, at in record.created.items() if k not in record.markers and now - at < UNSETTLED]


def _implausible(entry: Lease | Marker, now: datetime) -> bool:
    """Times this action could not have written (a start in the future, longer than the longest lease): such
    a lease or pending marker is believed over."""
    if entry.since is None:
        return False
    too_long = entry.until is not None and entry.until > entry.since + LEASE_CEILING
    return entry.since > now + IAM_CLOCK_MARGIN or too_long


def run_over(record: Record, run: RunId | None, current: RunId | None) -> bool:
    """GitHub runs one attempt of a run at a time: an earlier attempt of the current run is over; so is a
    run GitHub said has completed (`record.over`)."""
    if run is None or not run.run_id:
        return False
    if run.token in record.over:
        return True
    return current is not None and current.run_id == run.run_id and run.attempt < current.attempt


def _until(record: Record, entry: Lease | Marker, now: datetime, current: RunId | None) -> datetime | None:
    """When the run of a lease or pending marker that may still be writing stops (IN_FLIGHT after its start
    when it names no end; never, for an entry with neither); None when it is over."""
    if _implausible(entry, now) or run_over(record, entry.run, current):
        return None
    end = entry.until or (entry.since + IN_FLIGHT if entry.since else datetime.max.replace(tzinfo=UTC))
    return end if now < end else None


def held_lease(record: Record, now: datetime, current: RunId | None = None) -> Lease | None:
    """The lease of a run that may still be writing a new key (the one that ends last)."""
    leases = (i for i in record.leases.values() if i.state != "done" and i.since)
    held = [(end, i) for i in leases if (end := _until(record, i, now, current))]
    return max(held, key=lambda e: e[0])[1] if held else None


def in_flight(record: Record, key_id: str, now: datetime, current: RunId | None = None) -> bool:
    """A key a run may still be writing to its targets."""
    marker = record.markers.get(key_id)
    return bool(marker and marker.state == "pending" and _until(record, marker, now, current))


@dataclass(frozen=True)
class KeyPlan:
    reclaim: AccessKey | None  # a key to delete first, to make room under the 2-key limit
    extra_scopes: tuple[str, ...]  # holders outside this run's targets of keys it replaces: they keep them
    unmanaged: tuple[str, ...]  # keys not created by this action, left alone
    # Break before make: the run's own targets that hold `reclaim` (none: it was an orphan). They hold no
    # working key from its deletion until the run writes them, first.
    breaks: tuple[str, ...] = ()


def plan_keys(
    keys: list[AccessKey], record: Record, places: Iterable[Place], now: datetime, rules: Retiring
) -> KeyPlan:
    """Whether a key can be created and which key makes room, before anything changes. A user this run
    creates counts its own tags in `record.other_tags`."""
    wanted_places = {p.scope: p for p in places}
    wanted = set(wanted_places)
    lease = held_lease(record, now, rules.run)
    if lease is not None:
        raise LeaseHeld(lease, lease.until)
    if any(in_flight(record, k.key_id, now, rules.run) for k in keys):
        ends = [m.until for k in keys if (m := record.markers.get(k.key_id)) and m.until]
        raise LeaseHeld(None, max(ends) if ends else None)  # pending markers without a lease naming the run
    existing = {k.key_id for k in keys}
    unmanaged = tuple(sorted(k for k in existing if k not in record.markers))
    extra = {scope for k in existing if ours(record, k, rules) for scope in record.holders_of(k)} - wanted
    in_use = record.tags_in_use()
    needed = tags_needed(wanted_places.values(), record, rules.run)
    if in_use + needed > MAX_TAGS:
        raise KeyPlanError(
            f"the record needs up to {needed} more tag(s) on the user, and IAM allows {MAX_TAGS} "
            f"({in_use} are used, the user's own tags included); use another iam-user for some "
            "repositories, or fewer tags"
        )
    # The keys this run replaces: its targets' as `record` says, and as the caller saw them.
    replaced = {*rules.replaced, *(k for scope in wanted for k in record.holders.get(scope, ()))}
    free = set(retirable(existing, record, now, replace(rules, replaced=frozenset(replaced))))
    reclaim, breaks = _reclaim(keys, record, rules, wanted, free, now)
    return KeyPlan(reclaim, tuple(sorted(extra)), unmanaged, breaks)


def _reclaim(
    keys: list[AccessKey], record: Record, rules: Retiring, wanted: set[str], free: set[str], now: datetime
) -> tuple[AccessKey | None, tuple[str, ...]]:
    """At the 2-key limit, the key to delete first: the oldest one this action may retire that no place
    holds; else, when both keys are this action's, (break before make) the oldest one whose every holder
    is among this run's targets, which it writes first. Otherwise no key can be made."""
    if len(keys) < MAX_KEYS:
        return None, ()
    fresh = set(unsettled(record, now))  # taken for no run's key, not even under retire-unmanaged-keys
    mine = sorted(
        (k for k in keys if ours(record, k.key_id, rules) and k.key_id not in fresh), key=lambda k: k.created
    )
    if (orphan := next((k for k in mine if k.key_id in free), None)) is not None:
        return orphan, ()
    if len(mine) == len(keys):  # else a key this action did not make takes the slot: the user decides
        for key in mine:
            holders = record.holders_of(key.key_id)
            if holders and holders <= wanted:
                return key, tuple(sorted(holders))
    raise KeyPlanError(_explain_full(keys, record, fresh))


def _explain_full(keys: list[AccessKey], record: Record, fresh: set[str]) -> str:
    parts = []
    for key in keys:
        labels = sorted(record.place_of(s).label for s in record.holders_of(key.key_id))
        if key.key_id in fresh:
            why = FRESH
        elif key.key_id not in record.markers:
            why = "not created by this action"
        else:
            why = "held by " + ", ".join(labels) if labels else _UNHELD
        parts.append(f"{key.key_id} ({why})")
    return (
        "the user already has the 2 access keys IAM allows, and each is held by a place this run does not "
        "write (or was not made by this action): " + "; ".join(parts)
    )


@dataclass(frozen=True)
class Retiring:
    """What a run may retire: keys not made by this action only under retire-unmanaged-keys (`unmanaged`);
    `run`: this run (its own earlier attempts are over); `replaced`: the keys its own targets held."""

    unmanaged: bool
    run: RunId | None = None
    replaced: frozenset[str] = frozenset()


def ours(record: Record, key_id: str, rules: Retiring) -> bool:
    """A key this run may treat as the action's own: it carries a proven marker, or retire-unmanaged-keys
    makes every key of the user so."""
    return key_id in record.markers or rules.unmanaged


def retiring(unmanaged: bool, run: RunId | None, scopes: Iterable[str], *seen: Record) -> Retiring:
    """This run's rules: the keys it replaces are those that any of `seen` (the record as read, and as
    settled) names for one of its targets (`scopes`)."""
    scopes = set(scopes)
    replaced = {k for record in seen for scope in scopes for k in record.holders.get(scope, ())}
    for record in seen:  # an entry naming an unknown "next key": any key of this action's it may hold
        if record.unknown_next & scopes:
            replaced |= set(record.markers)
    return Retiring(unmanaged, run, frozenset(replaced))


def retirable(key_ids: Iterable[str], record: Record, now: datetime, rules: Retiring) -> list[str]:
    """THE rule for "which key goes?": keys that, by the record as it is now, no place holds and no run is
    writing, and that this run may delete: keys this action made that this run's own targets held, that
    the run which replaced them marked so, or that no run ever committed as held (a crashed run's pending
    key); a key this action did not make only under retire-unmanaged-keys. An active key that no entry
    names but that this run did not replace is kept: the record may have been rewritten to hide the place
    that holds it."""

    fresh = set(unsettled(record, now))

    def may(key_id: str) -> bool:
        marker = record.markers.get(key_id)
        if marker is None:
            return rules.unmanaged and key_id not in fresh
        return key_id in rules.replaced or marker.state in ("pending", "replaced")

    return [
        k for k in key_ids if not record.holders_of(k) and may(k) and not in_flight(record, k, now, rules.run)
    ]


@dataclass(frozen=True)
class Fate:
    key_id: str
    delete: bool  # else kept
    reason: str


def fates(ids: Iterable[str], record: Record, now: datetime, why: str, rules: Retiring) -> tuple[Fate, ...]:
    """`retirable` for each key, with the reason each kept key stays (`why`: the reason one goes)."""
    ids = list(ids)
    gone = set(retirable(ids, record, now, rules))
    out = []
    for key_id in ids:
        if key_id in gone:
            reason = why
        elif not (reason := kept_because(record, key_id, now, rules.run)):
            if key_id not in record.markers:
                reason = FRESH if rules.unmanaged else UNMANAGED  # unmanaged: kept only while fresh
            else:
                reason = _UNHELD + ": delete it in IAM if nothing uses it"
        out.append(Fate(key_id, key_id in gone, reason))
    return tuple(out)


def kept_because(record: Record, key_id: str, now: datetime, run: RunId | None) -> str:
    """Why a key stays whatever the rules allow: a place holds it, or a run is writing it ("": neither)."""
    if holders := record.holders_of(key_id):
        return "still held by " + ", ".join(sorted(record.place_of(s).label for s in holders))
    return "being written by another run" if in_flight(record, key_id, now, run) else ""


def hidden(keys: Iterable[AccessKey], record: Record, seen: Iterable[str], now: datetime) -> list[str]:
    """After a stale look (IAM's reads lag its writes), the keys it did not show that go: this action's,
    committed by an earlier run (marker "active"), held by no place by the record as it is now, and not being
    written. That run wrote them to places this run has since written anew (overwriting their entries), as
    no other run could have written after it without seeing them."""
    seen = set(seen)
    return [
        k.key_id
        for k in keys
        if k.key_id not in seen
        and (m := record.markers.get(k.key_id)) is not None
        and m.state == "active"
        and not record.holders_of(k.key_id)
        and not in_flight(record, k.key_id, now)
    ]


def key_to_keep(
    keys: Iterable[AccessKey],
    record: Record,
    scopes: Iterable[str],
    now: datetime,
    rotate_after: float,
    rules: Retiring,
) -> AccessKey | None:
    """rotate-after: the user's newest active key made by this action, when it is younger than the duration,
    every target is recorded as holding it alone, and no older key waits to be retired. Otherwise None: a
    rotation (a secret cannot be read back, so a new target, or one recorded otherwise, gets a new key)."""
    keys = list(keys)
    active = [
        k
        for k in keys
        if k.status == "Active" and (m := record.markers.get(k.key_id)) is not None and m.state == "active"
    ]
    if not rotate_after or record.rewrite or not active:
        return None
    current = max(active, key=lambda k: k.created)
    if (now - current.created).total_seconds() >= rotate_after:
        return None
    if any(record.holders.get(scope) != (current.key_id,) for scope in scopes):
        return None
    others = [k.key_id for k in keys if k.key_id != current.key_id]
    return None if retirable(others, record, now, rules) else current


def record_notes(record: Record, now: datetime) -> list[Note]:
    """Warnings about entries that decide nothing: not what this action writes, or with times it could not
    have written (believed over)."""
    over = [t for t, i in record.leases.items() if i.state != "done" and _implausible(i, now)]
    over += [
        marker_key(k) for k, m in record.markers.items() if m.state == "pending" and _implausible(m, now)
    ]
    said = [(tag, f"ignored: {why}.") for tag, why in sorted(record.ignored.items())]
    said += [
        (tag, "starts in the future or lasts longer than any lease this action takes: it is believed over.")
        for tag in sorted(over)
    ]
    return [Note(f"Key record entry {tag} {text}", "Key record entry ignored") for tag, text in said]


def other_holders(record: Record, keys: KeyPlan, repaired: set[str]) -> list[Note]:
    """Places the record names that this run's inputs do not: never written, read or restored (the record
    is not where places come from); the key each holds is kept, and the run says so."""
    notes = []
    for scope in sorted(set(keys.extra_scopes) | repaired):
        label = record.place_of(scope).label
        held = ", ".join(record.holders.get(scope, ())) or "no key"
        text = (
            f"The key record says {label} holds {held}; it is not among this run's targets, so it is not "
            "written and its key is kept. Name it in this run's repositories to rotate it too."
        )
        notes.append(Note(text, "Key kept for another holder"))
    return notes
