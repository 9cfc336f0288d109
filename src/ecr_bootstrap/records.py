"""The record kept on the IAM user (as tags) of which keys are ours and which target holds which key.

Pure: parsing, encoding and the decisions taken from them. Tags are the record because they live next to
the keys, survive a crashed run, and are shared by every run that uses the same user (no disk, no state
file). Limits of real IAM (moto checks none of them): 50 tags per user; key <= 128 and value <= 256
characters of letters, digits, spaces and _ . : / = + - @.

  ecr-bootstrap:key:<ACCESS_KEY_ID>   = "pending <created> <lease end>" | "active <created>"
  ecr-bootstrap:holder:<sha256[:20]>  = "<KEY_ID>[+<KEY_ID>|+next] <scope>"
  ecr-bootstrap:next-key              = "pending <since> <lease end> <existing ids>" | "done <when>"
  ecr-bootstrap:policy                = "<policy name> <default version>" (saves a look-up on reruns)

A holder entry with two key ids means "one of these": it is written before a target's secrets change and
narrowed to one id once the change is known to have landed, so no key a target might hold is deleted.
A pending key is in flight until its lease ends: the run that made it writes nothing after that, so a later
run may treat it as abandoned and settle, from GitHub's updated_at times, which key a target really holds.
A new user is created with the record's first entries (the intent, and each target's entry as "next": the
key the intent's run makes), so no other run can write the record before that run's key is marked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PREFIX = "ecr-bootstrap:"
KEY_PREFIX = PREFIX + "key:"
# Written just before CreateAccessKey: a key made in its window is ours even if the run died before
# marking it (the key id is only known once it exists).
INTENT_KEY = PREFIX + "next-key"
HOLDER_PREFIX = PREFIX + "holder:"
POLICY_KEY = PREFIX + "policy"
# In a holder entry: the key the intent's run creates, whose id is not known when the entry is written.
NEXT = "next"
MAX_TAGS = 50
MAX_KEYS = 2
# A pending marker without a lease end (not written by this version) counts as in flight this long.
IN_FLIGHT = timedelta(minutes=30)
_TAG_VALUE_OK = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")


def repo_scope(repository: str) -> str:
    """GitHub names are case-insensitive: one scope per repository whatever its spelling."""
    return "repo:" + repository.lower()


def holder_tag_key(scope: str) -> str:
    return HOLDER_PREFIX + hashlib.sha256(scope.encode()).hexdigest()[:20]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Marker:
    state: str  # "pending" | "active"
    since: datetime | None  # when the key was created (to the second)
    until: datetime | None = None  # end of the creating run's lease (pending only)


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    created: datetime
    status: str = "Active"


@dataclass
class Record:
    markers: dict[str, Marker] = field(default_factory=dict)
    holders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scope -> key ids
    other_tags: int = 0  # tags that are not ours still count against the 50-tag limit
    intent: Marker | None = None
    intent_existing: tuple[str, ...] = ()  # keys that existed when the intent was written: not its key
    adopted: set[str] = field(default_factory=set)  # keys marked only through the intent, not yet tagged
    policy_version: tuple[str, str] | None = None  # (policy name, its default version) as last written
    has_policy_tag: bool = False

    def intent_in_flight(self, now: datetime) -> bool:
        intent = self.intent
        if intent is None or intent.state != "pending" or intent.since is None:
            return False
        return now < (intent.until or intent.since + IN_FLIGHT)

    def adopt(self, keys: Iterable[AccessKey]) -> None:
        """Unmarked keys created within the last pending intent's window are a run's pending keys; holder
        entries naming "next" then name that key (or, when it never came to exist, only their older keys)."""
        made: list[str] = []
        intent = self.intent
        if intent is not None and intent.state == "pending" and intent.since is not None:
            start = intent.since - timedelta(seconds=2)
            end = intent.until or intent.since + IN_FLIGHT
            for key in keys:
                if (
                    key.key_id not in self.markers
                    and key.key_id not in self.intent_existing
                    and start <= key.created <= end
                ):
                    self.markers[key.key_id] = Marker("pending", key.created.replace(microsecond=0), end)
                    self.adopted.add(key.key_id)
                    made.append(key.key_id)
        for scope, ids in list(self.holders.items()):
            if NEXT in ids:
                resolved = (i for k in ids for i in (made if k == NEXT else [k]))
                self.holders[scope] = tuple(dict.fromkeys(resolved))

    def adopted_tags(self) -> list[dict[str, str]]:
        """Markers for adopted keys, to write before the intent that covers them is replaced."""
        out = []
        for key_id in sorted(self.adopted):
            marker = self.markers[key_id]
            if marker.since is not None:
                out.append(marker_tag(key_id, marker.state, marker.since, marker.until))
        return out

    def holders_of(self, key_id: str) -> set[str]:
        return {scope for scope, ids in self.holders.items() if key_id in ids}

    def in_flight(self, key_id: str, now: datetime) -> bool:
        marker = self.markers.get(key_id)
        if marker is None or marker.state != "pending":
            return False
        if marker.until is not None:
            return now < marker.until
        return marker.since is None or now - marker.since < IN_FLIGHT


def parse(tags: Iterable[Mapping[str, str]]) -> Record:
    record = Record()
    for tag in tags:
        key, value = tag.get("Key", ""), tag.get("Value", "")
        if key == INTENT_KEY:
            state, *times = value.split(" ")
            since = _parse_iso(times[0]) if times else None
            until = _parse_iso(times[1]) if len(times) > 1 else None
            record.intent = Marker(state, since, until)
            record.intent_existing = tuple(i for i in (times[2] if len(times) > 2 else "").split("+") if i)
        elif key == POLICY_KEY:
            name, _, version = value.partition(" ")
            record.policy_version = (name, version) if version else None
            record.has_policy_tag = True
        elif key.startswith(KEY_PREFIX):
            state, *times = value.split(" ")
            since = _parse_iso(times[0]) if times else None
            until = _parse_iso(times[1]) if len(times) > 1 else None
            record.markers[key[len(KEY_PREFIX) :]] = Marker(state, since, until)
        elif key.startswith(HOLDER_PREFIX):
            # Kept even if malformed: ignoring a holder could get a key it holds deleted.
            ids, _, scope = value.partition(" ")
            record.holders[scope or key] = tuple(i for i in ids.split("+") if i)
        else:
            record.other_tags += 1
    return record


def marker_key(key_id: str) -> str:
    return KEY_PREFIX + key_id


def intent_tag(since: datetime, until: datetime, existing: Iterable[str]) -> dict[str, str]:
    """Names the keys that exist already (at most 2), so that none of them is taken for the new one."""
    return {"Key": INTENT_KEY, "Value": f"pending {_iso(since)} {_iso(until)} {'+'.join(existing)}".rstrip()}


def intent_done(when: datetime) -> dict[str, str]:
    return {"Key": INTENT_KEY, "Value": f"done {_iso(when)}"}


def policy_tag(name: str, version: str) -> dict[str, str]:
    return {"Key": POLICY_KEY, "Value": f"{name} {version}"[:256]}


def marker_tag(key_id: str, state: str, since: datetime, until: datetime | None = None) -> dict[str, str]:
    value = f"{state} {_iso(since)}" + (f" {_iso(until)}" if until else "")
    return {"Key": marker_key(key_id), "Value": value}


def holder_tag(scope: str, key_ids: Iterable[str]) -> dict[str, str]:
    ids = list(dict.fromkeys(key_ids))
    value = "+".join(ids) + " " + _TAG_VALUE_OK.sub("_", scope)
    # The hash in the key identifies the scope; the value only needs the ids whole.
    return {"Key": holder_tag_key(scope), "Value": value[:256]}


@dataclass(frozen=True)
class KeyPlan:
    reclaim: AccessKey | None  # an unheld key to delete first, to make room under the 2-key limit
    extra_scopes: tuple[str, ...]  # other holders of the keys this run replaces (share the new key)
    unmanaged: tuple[str, ...]  # keys not created by this action, left alone


class KeyPlanError(Exception):
    """Why no new key can be created safely; turned into a RotationError by the caller."""


def plan_keys(
    keys: list[AccessKey],
    record: Record,
    scopes: Iterable[str],
    now: datetime,
    retire_unmanaged: bool,
) -> KeyPlan:
    """Decide, before anything changes, whether a key can be created and which holders share it."""
    wanted = set(scopes)
    existing = {k.key_id for k in keys}
    in_flight = {k.key_id for k in keys if record.in_flight(k.key_id, now)}
    busy = {scope for scope, ids in record.holders.items() if any(i in in_flight for i in ids)}
    if wanted & busy:
        raise KeyPlanError(
            "another run is writing a new key to "
            + ", ".join(sorted(wanted & busy))
            + " right now (its key is marked pending); two runs must not write the same target at once"
        )
    if not keys and record.intent_in_flight(now):
        # A run that wrote its intent has not made its key yet (a new user's creator, typically): a second
        # key now would leave two keys, each held by other targets, and no slot for a later rotation.
        raise KeyPlanError(
            "another run is about to create this user's first access key (its intent is recorded, in "
            "flight); runs for one user must not overlap"
        )
    if in_flight:
        # Another run for other targets is mid-way. Creating a second key now would leave two keys held by
        # different targets, and no slot for any later rotation (IAM allows 2 per user).
        raise KeyPlanError(
            "another run is writing a new key of this user right now ("
            + ", ".join(sorted(in_flight))
            + " is marked pending, in flight); runs for one user must not overlap"
        )

    def managed(key_id: str) -> bool:
        return key_id in record.markers or retire_unmanaged

    unmanaged = tuple(sorted(k for k in existing if k not in record.markers))
    extra: set[str] = set()
    for key in keys:
        if key.key_id in in_flight or not managed(key.key_id):
            continue
        for scope in record.holders_of(key.key_id):
            if scope not in wanted and scope not in busy:
                extra.add(scope)

    in_use = (
        record.other_tags
        + len(record.markers)
        + len(record.holders)
        + (record.intent is not None)
        + record.has_policy_tag
    )
    needed = (
        1
        + (record.intent is None)
        + (not record.has_policy_tag)
        + len(wanted - set(record.holders))
        + len(extra - set(record.holders))
    )
    if in_use + needed > MAX_TAGS:
        raise KeyPlanError(
            f"the record needs {needed} more tag(s) on the user, and IAM allows {MAX_TAGS} "
            f"({in_use} are used); use another iam-user for some repositories"
        )

    reclaim = None
    if len(keys) >= MAX_KEYS:
        free = [
            k
            for k in sorted(keys, key=lambda k: k.created)
            if k.key_id not in in_flight and managed(k.key_id) and not record.holders_of(k.key_id)
        ]
        if not free:
            raise KeyPlanError(_explain_full(keys, record, in_flight))
        reclaim = free[0]
    return KeyPlan(reclaim=reclaim, extra_scopes=tuple(sorted(extra)), unmanaged=unmanaged)


def _explain_full(keys: list[AccessKey], record: Record, in_flight: set[str]) -> str:
    parts = []
    for key in keys:
        if key.key_id in in_flight:
            why = "being written by a run still in flight"
        elif key.key_id not in record.markers:
            why = "not created by this action"
        else:
            why = "held by " + ", ".join(sorted(record.holders_of(key.key_id)))
        parts.append(f"{key.key_id} ({why})")
    return "the user already has the 2 access keys IAM allows, and neither is free: " + "; ".join(parts)


def retirable(
    key_ids: Iterable[str],
    record: Record,
    now: datetime,
    retire_unmanaged: bool,
) -> list[str]:
    """Keys that, by the record as it is now, no target holds and no run is writing."""
    return [
        k
        for k in key_ids
        if not record.holders_of(k)
        and not record.in_flight(k, now)
        and (k in record.markers or retire_unmanaged)
    ]


def unsettled(record: Record, now: datetime) -> dict[str, tuple[str, ...]]:
    """Holder entries naming several keys whose writing run is over (crashed, or failed mid-way)."""
    return {
        scope: ids
        for scope, ids in record.holders.items()
        if len(ids) > 1 and not any(record.in_flight(i, now) for i in ids)
    }


def settle(
    ids: tuple[str, ...],
    record: Record,
    id_updated: datetime | None,
    secret_updated: datetime | None,
) -> tuple[str, ...] | None:
    """Which of `ids` a target holds, from its secrets' updated_at; None when that cannot be told.

    The newest key's run wrote AWS_ACCESS_KEY_ID, then AWS_SECRET_ACCESS_KEY, after the key was created:
    - id older than the key: that run never reached the target; it holds the older key(s);
    - id and then secret written since: it holds the newest key;
    - id written since but not the secret: a mismatched pair; it holds no working key (an empty tuple).
    """
    dated: list[tuple[datetime, str]] = []
    for key_id in ids:
        since = record.markers[key_id].since if key_id in record.markers else None
        if since is None:
            return None
        dated.append((since, key_id))
    if id_updated is None:
        return None
    created, newest = max(dated)
    older = tuple(i for i in ids if i != newest)
    if id_updated < created:
        return older
    if secret_updated is not None and secret_updated >= id_updated:
        return (newest,)
    return ()
