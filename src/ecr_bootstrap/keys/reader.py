"""Reading the key record back from the user's tags. Anyone allowed iam:TagUser can write them, so each field
is held to what this action writes before it decides anything: an entry that fails is ignored (named in
`Record.ignored`) and still counts against the 50-tag limit. Version 1 entries (no leading "2") are read
too, and written as version 2 by the next run that writes them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import Unreadable
from ..places import Place, place_problem, valid_repository
from ..times import parse_iso
from ..values import digits
from .record import (
    HOLDER_PREFIX,
    KEY_PREFIX,
    LEASE_PREFIX,
    NEXT,
    POLICY_KEY,
    V1_LEASE_KEY,
    VERSION,
    Lease,
    Marker,
    Record,
    RunId,
    dec,
    holder_tag_key,
)

# IAM's AccessKeyId: 16-128 word characters (API Reference, AccessKeyMetadata); AWS issues upper-case
# letters and digits.
_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$", re.ASCII)
_POLICY_VERSION = re.compile(r"^v[0-9]{1,9}$")
_JOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
_STATES = {"pending", "done", "made"}
_PART = re.compile(r"^(?P<base>.+)/(?P<n>[0-9]+)$")
_MULTI = re.compile(r"^@(?P<n>[0-9]+)@")


@dataclass
class _Read:
    """The record's fields while the tags are read (Record itself is frozen)."""

    markers: dict[str, Marker] = field(default_factory=dict)
    holders: dict[str, tuple[str, ...]] = field(default_factory=dict)
    places: dict[str, Place] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)
    rewrite: set[str] = field(default_factory=set)
    tag_scope: dict[str, str] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    policy_version: tuple[str, str] | None = None


def parse(tags: Iterable[Mapping[str, str]], server: str = "https://github.com") -> Record:
    """The record in the user's tags. `server`: this run's GITHUB_SERVER_URL."""
    read, other = _Read(), 0
    ours: dict[str, int] = {}
    ignored: dict[str, str] = {}
    values, used = _joined(tags)
    for key, value in values.items():
        try:
            if key == V1_LEASE_KEY or key.startswith(LEASE_PREFIX):
                read.leases[key] = _parse_lease(value, key, server)
            elif key == POLICY_KEY:
                read.policy_version = _parse_policy(value)
            elif key.startswith(KEY_PREFIX):
                _parse_marker(read, key.removeprefix(KEY_PREFIX), value)
            elif key.startswith(HOLDER_PREFIX):
                _parse_holder(read, key, value)
            else:  # not ours
                other += used[key]
                continue
            ours[key] = used[key]
        except Unreadable as exc:
            ignored[key] = str(exc)
            other += used[key]
    return Record(
        markers=read.markers,
        holders=read.holders,
        places=read.places,
        refs=read.refs,
        rewrite=frozenset(read.rewrite),
        tag_scope=read.tag_scope,
        used=ours,
        other_tags=other,
        leases=read.leases,
        policy_version=read.policy_version,
        ignored=ignored,
    )


def _joined(tags: Iterable[Mapping[str, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """Tag key -> whole value (parts joined), and how many tags each value uses."""
    flat = {str(t.get("Key", "")): str(t.get("Value", "")) for t in tags}
    values: dict[str, str] = {}
    used: dict[str, int] = {}
    for key, value in flat.items():
        part = _PART.match(key)
        if part and (base := part.group("base")) in flat and flat[base].startswith("@"):
            used[base] = used.get(base, 1) + 1
            continue
        values[key] = value
        if multi := _MULTI.match(value):  # a missing part leaves a NUL: the entry reads as damaged
            rest = [flat.get(f"{key}/{n}", "\0") for n in range(2, int(multi.group("n")) + 1)]
            values[key] = value[multi.end() :] + "".join(rest)
        used.setdefault(key, 1)
    return values, used


def _check(ok: bool, why: str) -> None:
    if not ok:
        raise Unreadable(why)


def _key_ids(text: str, *, next_ok: bool = False) -> tuple[str, ...]:
    ids = tuple(i for i in text.split("+") if i)
    _check(all(_KEY_ID.match(i) or (next_ok and i == NEXT) for i in ids), "a key id is not an access key id")
    return ids


def _time(text: str, *, optional: bool = False) -> datetime | None:
    when = parse_iso(text)
    _check(when is not None or (optional and not text), "a time is not YYYY-MM-DDTHH:MM:SSZ")
    return when


def _number(text: str) -> int | None:
    _check(digits(text) or not text, "a number has other characters than digits")
    return int(text) if text else None


def _run(
    run_id: str, attempt: str, job: str, repository: str, server: str, current_server: str
) -> RunId | None:
    """The run a lease names, each field held to what GitHub sets; None when it names none."""
    if not run_id and not attempt:
        return None
    _check(digits(run_id) and digits(attempt) and int(attempt) > 0, "a run id or attempt is not a number")
    _check(not job or bool(_JOB.match(job)), "the job is not a GitHub job id")
    _check(not repository or valid_repository(repository), "the repository is not owner/name")
    _check(server.rstrip("/") == current_server.rstrip("/"), "the server is not this run's GITHUB_SERVER_URL")
    return RunId(run_id, int(attempt), job, repository, current_server)


def _parse_lease(value: str, tag: str, server: str) -> Lease:
    fields = value.split(" ")
    if fields[0] != VERSION:
        return _v1_lease(fields, tag)
    _check(len(fields) == 12, "a lease has 12 fields")
    f = fields[1:]
    _check(f[0] in _STATES, "unknown state")
    _check(not f[4] or bool(_KEY_ID.match(f[4])), "the key is not an access key id")
    since, until, existing = _time(f[1]), _time(f[2], optional=True), _key_ids(f[3])
    run = _run(f[5], f[6], dec(f[7]), dec(f[8]), dec(f[9]), server)
    return Lease(f[0], since, until, existing, f[4], run, _number(f[10]), tag)


def _parse_marker(read: _Read, key_id: str, value: str) -> None:
    _check(bool(_KEY_ID.match(key_id)), "not an access key id")
    state, *rest = value.split(" ")
    _check(state in ("pending", "active", "replaced") and 1 <= len(rest) <= 3, "not a key marker")
    since = _time(rest[0])
    until = _time(rest[1]) if len(rest) > 1 else None
    run = None
    if len(rest) > 2:
        run_id, _, attempt = rest[2].partition(".")
        _check(digits(run_id) and (digits(attempt) or not attempt), "the run is not <id>.<attempt>")
        run = RunId(run_id, int(attempt) if attempt else 1)
    read.markers[key_id] = Marker(state, since, until, run)


def _parse_holder(read: _Read, tag_key: str, value: str) -> None:
    fields = value.split(" ")
    place, second = None, None
    if fields[0] == VERSION:
        _check(len(fields) == 6, "a holder entry has 6 fields")
        place = Place(dec(fields[3]), dec(fields[4]), dec(fields[5]))
        problem = place_problem(place)
        _check(not problem, f"its place is {problem}")
        # The tag key is the hash of the place's scope: an entry copied under another key is not ours.
        _check(holder_tag_key(place.scope) == tag_key, "its tag key is not the hash of its place")
        ids, scope, second = fields[1], place.scope, _number(fields[2])
    else:  # version 1: "<ids> <scope, cleaned up and cut at 256>", refiled by keys/rules.read_record
        ids, _, scope = value.partition(" ")
        scope = scope or tag_key
    read.holders[scope] = _key_ids(ids.removesuffix("@"), next_ok=True)
    if place is not None:
        read.places[scope] = place
    if second is not None:
        read.refs[scope] = second
    if ids.endswith("@"):
        read.rewrite.add(scope)
    read.tag_scope[tag_key] = scope


def _parse_policy(value: str) -> tuple[str, str]:
    fields = value.split(" ")
    if fields[0] == VERSION and len(fields) == 3:
        name, version = dec(fields[1]), fields[2]
    else:  # version 1: "<name> <version>"
        name, _, version = value.partition(" ")
    _check(bool(_POLICY_NAME.match(name) and _POLICY_VERSION.match(version)), "not a policy and version")
    return name, version


def _v1_lease(fields: list[str], tag: str) -> Lease:
    """ "pending <since> <until> <existing>" | "done <when>"."""
    state, *times = fields
    _check(state in ("pending", "done") and len(times) <= 3, "not a lease")
    since = _time(times[0]) if times else None
    until = _time(times[1], optional=True) if len(times) > 1 else None
    existing = _key_ids(times[2]) if len(times) > 2 else ()
    return Lease(state, since, until, existing, tag=tag)
