"""The key record kept on the IAM user's tags (which keys are this action's, which place holds which key,
each run's lease): its values and the tags that write them. Reading is keys/reader.py, deciding keys/rules.py;
the format and why tags: docs/key-record.md."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ..places import Place, from_scope
from ..times import iso

PREFIX = "ecr-bootstrap:"
KEY_PREFIX = PREFIX + "key:"
LEASE_PREFIX = PREFIX + "lease:"  # one lease per run, so that no run overwrites another's
HOLDER_PREFIX = PREFIX + "holder:"
POLICY_KEY = PREFIX + "policy"
V1_LEASE_KEY = PREFIX + "next-key"  # version 1 kept one lease, under this key
VERSION = "2"
# In a holder entry: the key the lease's run creates, whose id is not known when the entry is written.
NEXT = "next"
MAX_TAGS = 50  # per user, the user's own tags included (IAM API Reference, data type Tag)
MAX_KEYS = 2
MAX_VALUE = 256


def _iam_char(ch: str) -> bool:
    return ch in "_.:/+-@ =" or unicodedata.category(ch)[0] in "LNZ"


def enc(text: str) -> str:
    """A field of a tag value: characters IAM refuses, and the separators, as =XX per UTF-8 byte."""
    return "".join(
        c if c not in " =" and _iam_char(c) else "".join(f"={b:02X}" for b in c.encode()) for c in text
    )


def dec(text: str) -> str:
    raw = re.sub(rb"=([0-9A-F]{2})", lambda m: bytes([int(m[1], 16)]), text.encode())
    return raw.decode(errors="replace")


def split_value(key: str, value: str) -> list[dict[str, str]]:
    """One tag, or several when the value is longer than IAM allows (`@<n>@` first, then key/2...)."""
    if len(value) <= MAX_VALUE:
        return [{"Key": key, "Value": value}]
    size = MAX_VALUE - 6
    parts = [value[i : i + size] for i in range(0, len(value), size)]
    head = {"Key": key, "Value": f"@{len(parts)}@{parts[0]}"}
    return [head] + [{"Key": f"{key}/{n}", "Value": p} for n, p in enumerate(parts[1:], 2)]


def holder_tag_key(scope: str) -> str:
    return HOLDER_PREFIX + hashlib.sha256(scope.encode()).hexdigest()[:20]


def marker_key(key_id: str) -> str:
    return KEY_PREFIX + key_id


@dataclass(frozen=True)
class RunId:
    """The GitHub Actions run a lease belongs to (GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT, GITHUB_JOB...)."""

    run_id: str = ""
    attempt: int = 1
    job: str = ""
    repository: str = ""
    server: str = "https://github.com"

    @property
    def token(self) -> str:
        return f"{self.run_id}.{self.attempt}" if self.run_id else ""

    @property
    def link(self) -> str:
        if not self.run_id or not self.repository:
            return ""
        server = self.server.rstrip("/")
        return f"{server}/{self.repository}/actions/runs/{self.run_id}/attempts/{self.attempt}"

    def describe(self) -> str:
        if not self.run_id:
            return "a run outside GitHub Actions (no run id recorded)"
        job = f", job {self.job}" if self.job else ""
        return f"run {self.run_id} attempt {self.attempt}{job} of {self.repository} ({self.link})"


@dataclass(frozen=True)
class Marker:
    state: str  # "pending" | "active" | "replaced"
    since: datetime | None  # when the key was created (to the second)
    until: datetime | None = None  # end of the creating run's lease (pending only)
    run: RunId | None = None  # the creating run (pending only)


@dataclass(frozen=True)
class Lease:
    """A run's claim on the user's keys, recorded before it creates a key (the local deadline derived from
    it is times.WriteDeadline)."""

    # "pending" (no key yet) | "done" (committed or rolled back); "made" (key named) is read, not written
    state: str
    since: datetime | None
    until: datetime | None = None
    existing: tuple[str, ...] = ()  # keys that existed when the lease was written: not its key
    key: str = ""  # "made": the key the run created
    run: RunId | None = None
    ref: int | None = None  # GitHub's second before the run's first target write (keys/settle.py)
    tag: str = V1_LEASE_KEY  # the tag it is kept in


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    created: datetime
    status: str = "Active"


@dataclass(frozen=True)
class Record:
    """The record as read (`parse`), then as the rules settle it; never changed in place: a changed
    record is a new one (dataclasses.replace)."""

    markers: Mapping[str, Marker] = field(default_factory=dict)
    holders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # scope -> key ids
    places: Mapping[str, Place] = field(default_factory=dict)  # scope -> the place, exactly as written
    refs: Mapping[str, int] = field(default_factory=dict)  # scope -> GitHub second before its writer's writes
    rewrite: frozenset[str] = frozenset()  # scopes whose pair may be mismatched: write anew
    tag_scope: Mapping[str, str] = field(default_factory=dict)  # holder tag key -> scope it was read as
    used: Mapping[str, int] = field(default_factory=dict)  # tag key -> how many tags its value takes
    other_tags: int = 0  # tags that are not ours still count against the 50-tag limit
    leases: Mapping[str, Lease] = field(default_factory=dict)  # tag key -> a run's lease
    adopted: frozenset[str] = frozenset()  # keys marked only through their run's lease, not yet tagged
    made_by: Mapping[str, Lease] = field(default_factory=dict)  # key id -> the lease it was adopted through
    policy_version: tuple[str, str] | None = None  # (policy name, its default version) as last written
    over: frozenset[str] = frozenset()  # tokens of runs GitHub says have completed: their leases are over
    # Entries naming "the next key" of a run whose key is not known (it made none, or a lagged read wrote
    # the entry): the place may hold any key made since.
    unknown_next: frozenset[str] = frozenset()
    # Entries that are not what this action writes (damaged, or written by someone else): tag key -> why.
    # They decide nothing; the run warns about each.
    ignored: Mapping[str, str] = field(default_factory=dict)
    # Key id -> IAM's CreateDate, of the keys the record was read with.
    created: Mapping[str, datetime] = field(default_factory=dict)

    def tags_in_use(self) -> int:
        return self.other_tags + sum(self.used.values())

    def place_of(self, scope: str) -> Place:
        return self.places.get(scope) or from_scope(scope)

    def holders_of(self, key_id: str) -> set[str]:
        return {scope for scope, ids in self.holders.items() if key_id in ids}

    def with_holders(self, changes: Mapping[str, tuple[str, ...]]) -> Record:
        """The record with these places' entries replaced (an empty tuple: the entry goes)."""
        holders = {**self.holders, **changes}
        return replace(self, holders={s: ids for s, ids in holders.items() if ids})


def lease_tags(lease: Lease) -> list[dict[str, str]]:
    run = lease.run or RunId()
    times = " ".join(iso(t) if t else "" for t in (lease.since, lease.until))
    attempt, server = (str(run.attempt), enc(run.server)) if run.run_id else ("", "")
    ref = str(lease.ref) if lease.ref is not None else ""
    value = (
        f"{VERSION} {lease.state} {times} {'+'.join(lease.existing)} {lease.key} {enc(run.run_id)} {attempt} "
        f"{enc(run.job)} {enc(run.repository)} {server} {ref}"
    )
    return split_value(lease.tag, value)


def policy_tag(name: str, version: str) -> dict[str, str]:
    return {"Key": POLICY_KEY, "Value": f"{VERSION} {enc(name)} {version}"[:MAX_VALUE]}


def marker_tag(
    key_id: str, state: str, since: datetime, until: datetime | None = None, run: RunId | None = None
) -> dict[str, str]:
    value = f"{state} {iso(since)}"
    if until:
        value += f" {iso(until)}" + (f" {run.token}" if run and run.token else "")
    return {"Key": marker_key(key_id), "Value": value}


def adopted_tags(record: Record) -> list[dict[str, str]]:
    """Markers for adopted keys, to write before the lease that covers them is replaced."""
    markers = [(k, record.markers[k]) for k in sorted(record.adopted)]
    return [marker_tag(k, m.state, m.since, m.until, m.run) for k, m in markers if m.since is not None]


def holder_tags(
    place: Place, key_ids: Iterable[str], ref: int | None = None, rewrite: bool = False
) -> list[dict[str, str]]:
    """An entry naming two keys means "one of these": written before the target's secrets change, narrowed
    once the change has landed, so no key a target might hold is deleted. `rewrite`: the target holds these
    keys' secret, maybe beside another id: written anew next time."""
    ids = "+".join(dict.fromkeys(key_ids)) + ("@" if rewrite else "")
    second = str(ref) if ref is not None else ""
    value = f"{VERSION} {ids} {second} {enc(place.kind)} {enc(place.name)} {enc(place.environment)}"
    return split_value(holder_tag_key(place.scope), value)


def tag_parts(record: Record, key: str) -> list[str]:
    """Every tag key a value uses now (its continuation parts included), to remove it whole."""
    return [key] + [f"{key}/{n}" for n in range(2, record.used.get(key, 1) + 1)]


def holder_parts(record: Record, scope: str) -> list[str]:
    return tag_parts(record, holder_tag_key(scope))


def tags_needed(places: Iterable[Place], record: Record, run: RunId | None) -> int:
    """Tags this run's writes add to the user, at most (entries with three ids and a reference)."""
    worst = ("AKIA" + "X" * 16,) * 3
    when = datetime(2000, 1, 1, tzinfo=UTC)
    lease = Lease("pending", when, when, worst[:2], worst[0], run, 10**10, LEASE_PREFIX + "x" * 8)
    needed = 1 + len(lease_tags(lease))  # the new key's marker and this run's lease
    needed += 0 if POLICY_KEY in record.used else 1
    for place in places:
        parts = len(holder_tags(place, worst, 10**10))
        needed += max(0, parts - record.used.get(holder_tag_key(place.scope), 0))
    return needed
