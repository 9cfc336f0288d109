"""The record kept on the IAM user (as tags) of which keys are ours and which target holds which key.

Pure: encoding, parsing and the decisions taken from them. Tags are the record because they live next to
the keys, survive a crashed run, and are shared by every run that uses the same user (no disk, no state
file). IAM's own rules apply to every tag written here (IAM API Reference, data type Tag): a key of 1-128
and a value of 0-256 characters from `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`, at most 50 tags per user, the user's
own tags included. Version 2 of the record:

  ecr-bootstrap:lease:<8 hex>        = "2 <state> <since> <until> <existing ids> <key id> <run id> <attempt>
                                        <job> <repository> <server> <GitHub second>"
                                       (one per run: its lease; state pending|done)
  ecr-bootstrap:key:<ACCESS_KEY_ID>  = "pending <created> <lease end> <run id>.<attempt>" | "active <created>"
                                       | "replaced <created>" (<created>: the key's CreateDate)
  ecr-bootstrap:holder:<sha256[:20]> = "2 <key ids>[@] <GitHub second> <kind> <name> <environment>"
                                       (@: the pair may be mismatched; write it anew)
  ecr-bootstrap:policy               = "2 <policy name> <default version>"

Every free-text field is escaped (`=XX` per UTF-8 byte of a character IAM refuses, and of space and `=`),
so any name GitHub or IAM allows round-trips exactly; a value longer than 256 characters continues in
`<key>/2`, `<key>/3`... (its first part starts `@<parts>@`). The holder entry's tag key is a hash of the
target's scope, so it is found whatever its spelling or length. Times are IAM's clock as the writing run
estimated it from IAM's Date header; GitHub's times are only ever compared with GitHub's.

Each run keeps its lease in a tag of its own, so a run whose read of IAM lagged another's writes never
overwrites that run's lease; the holder entries it writes with its lease carry no reference second (its
lease does), so writing the same entry again changes nothing a later run settles by.

A holder entry with two key ids means "one of these": it is written before a target's secrets change and
narrowed to one id once the change is known to have landed, so no key a target might hold is deleted.
The lease (the intent) names its run; the run that holds it is the only one that writes a new key, until
the lease ends, the run marks it done (in the commit), a later attempt of that run starts, or GitHub says
the run has completed. A key created while an intent is pending and within its creation window, and not
yet marked, is that run's (its run died before marking it). Version 1 records (no leading "2") are read and
rewritten as version 2 by the next run that writes them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .places import Place, from_scope, place_problem, valid_repository

PREFIX = "ecr-bootstrap:"
KEY_PREFIX = PREFIX + "key:"
INTENT_KEY = PREFIX + "next-key"  # version 1's one intent
LEASE_PREFIX = PREFIX + "lease:"  # version 2: one intent per run, so that no run overwrites another's
HOLDER_PREFIX = PREFIX + "holder:"
POLICY_KEY = PREFIX + "policy"
VERSION = "2"
# In a holder entry: the key the intent's run creates, whose id is not known when the entry is written.
NEXT = "next"
MAX_TAGS = 50
MAX_KEYS = 2
MAX_VALUE = 256
# A pending marker without a lease end (version 1 wrote some) counts as in flight this long.
IN_FLIGHT = timedelta(minutes=30)
# A run sends CreateAccessKey within this of writing its intent, or not at all: a key created later by
# anyone else is never taken for the run's own.
CREATE_WINDOW = timedelta(seconds=60)
# How far two runs' estimates of IAM's clock (from Date headers, whole seconds) may differ.
IAM_CLOCK_MARGIN = timedelta(seconds=2)
# The longest lease a run can take (lease-seconds is at most 3600): a recorded lease that starts in the
# future or ends later than this after its start was not written by this action and is believed over.
LEASE_CEILING = timedelta(seconds=3600) + IAM_CLOCK_MARGIN
# IAM's AccessKeyId: 16-128 word characters (API Reference, AccessKeyMetadata); AWS issues upper-case
# letters and digits.
_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$", re.ASCII)
_POLICY_VERSION = re.compile(r"^v[0-9]{1,9}$")
_JOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
STATES = {"pending", "done", "made"}
# A run records a reference second from GitHub's Date header (after every earlier write), and writes no
# target's key id until GAP seconds after it arrived. With GitHub's clocks in step, earlier writes are
# stamped <= ref and the run's >= ref + GAP. The seconds between are a tie: with the Date header's servers
# and the storage's clock up to 2 s apart (GITHUB_CLOCK_MARGIN), a stamp lands in the tie, never on the
# wrong side.
GITHUB_CLOCK_MARGIN = 2
GAP = GITHUB_CLOCK_MARGIN + 1
_SAFE_SYMBOLS = "_.:/+-@"
_PART = re.compile(r"^(?P<base>.+)/(?P<n>[0-9]+)$")
_MULTI = re.compile(r"^@(?P<n>[0-9]+)@")


# -- encoding ------------------------------------------------------------------------------------------


def _allowed(ch: str, *, field_char: bool) -> bool:
    if field_char and ch in " =":
        return False
    return ch in _SAFE_SYMBOLS or ch in " =" or unicodedata.category(ch)[0] in "LNZ"


def valid_value(value: str) -> bool:
    """IAM's pattern for a tag value, `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`, and its 256-character limit."""
    return len(value) <= MAX_VALUE and all(_allowed(c, field_char=False) for c in value)


def valid_key(key: str) -> bool:
    return 1 <= len(key) <= 128 and not key.startswith("aws:") and valid_value(key)


def enc(text: str) -> str:
    """A field of a tag value: characters IAM refuses, and the separators, as =XX per UTF-8 byte."""
    out = []
    for ch in text:
        if _allowed(ch, field_char=True):
            out.append(ch)
        else:
            out.extend(f"={b:02X}" for b in ch.encode())
    return "".join(out)


def dec(text: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "=" and re.fullmatch(r"[0-9A-F]{2}", text[i + 1 : i + 3]):
            raw.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(text[i].encode())
            i += 1
    return raw.decode(errors="replace")


def split_value(key: str, value: str) -> list[dict[str, str]]:
    """One tag, or several when the value is longer than IAM allows (`@<n>@` first, then key/2...)."""
    if len(value) <= MAX_VALUE:
        return [{"Key": key, "Value": value}]
    size = MAX_VALUE - 6
    parts = [value[i : i + size] for i in range(0, len(value), size)]
    head = {"Key": key, "Value": f"@{len(parts)}@{parts[0]}"}
    return [head] + [{"Key": f"{key}/{n}", "Value": p} for n, p in enumerate(parts[1:], 2)]


def _joined(tags: Iterable[Mapping[str, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """Tag key -> whole value (parts joined), and how many tags each value uses."""
    flat = {str(t.get("Key", "")): str(t.get("Value", "")) for t in tags}
    values: dict[str, str] = {}
    used: dict[str, int] = {}
    for key, value in flat.items():
        part = _PART.match(key)
        if part and part.group("base") in flat and flat[part.group("base")].startswith("@"):
            base = part.group("base")
            used[base] = used.get(base, 1) + 1
            continue
        multi = _MULTI.match(value)
        whole = value
        if multi:
            count = int(multi.group("n"))
            pieces = [value[multi.end() :]] + [flat.get(f"{key}/{n}", "\0") for n in range(2, count + 1)]
            whole = "".join(pieces)  # a missing part leaves a NUL: the entry reads as damaged
        values[key] = whole
        used.setdefault(key, 1)
    return values, used


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes superscripts, which int() refuses."""
    return text.isascii() and text.isdigit()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def repo_scope(repository: str) -> str:
    """GitHub names are case-insensitive: one scope per repository whatever its spelling."""
    return "repo:" + repository.lower()


def holder_tag_key(scope: str) -> str:
    return HOLDER_PREFIX + hashlib.sha256(scope.encode()).hexdigest()[:20]


def marker_key(key_id: str) -> str:
    return KEY_PREFIX + key_id


# -- values --------------------------------------------------------------------------------------------


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


def _run_from_token(token: str) -> RunId | None:
    run_id, _, attempt = token.partition(".")
    if not run_id:
        return None
    return RunId(run_id, int(attempt) if _digits(attempt) else 1)


@dataclass(frozen=True)
class Marker:
    state: str  # "pending" | "active"
    since: datetime | None  # when the key was created (to the second)
    until: datetime | None = None  # end of the creating run's lease (pending only)
    run: RunId | None = None  # the creating run (pending only)


@dataclass(frozen=True)
class Intent:
    # "pending" (no key yet) | "done" (committed or rolled back); "made" (key named) is read, not written
    state: str
    since: datetime | None
    until: datetime | None = None
    existing: tuple[str, ...] = ()  # keys that existed when the intent was written: not its key
    key: str = ""  # "made": the key the run created
    run: RunId | None = None
    ref: int | None = None  # GitHub's second before the run's first target write (see settle)
    tag: str = INTENT_KEY  # the tag it is kept in


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    created: datetime
    status: str = "Active"


@dataclass
class Record:
    markers: dict[str, Marker] = field(default_factory=dict)
    holders: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scope -> key ids
    places: dict[str, Place] = field(default_factory=dict)  # scope -> the place, exactly as written
    refs: dict[str, int] = field(default_factory=dict)  # scope -> GitHub second before its writer's writes
    rewrite: set[str] = field(default_factory=set)  # scopes whose pair may be mismatched: write anew
    tag_scope: dict[str, str] = field(default_factory=dict)  # holder tag key -> scope it was read as
    used: dict[str, int] = field(default_factory=dict)  # tag key -> how many tags its value takes
    other_tags: int = 0  # tags that are not ours still count against the 50-tag limit
    intents: dict[str, Intent] = field(default_factory=dict)  # tag key -> a run's intent
    adopted: set[str] = field(default_factory=set)  # keys marked only through the intent, not yet tagged
    made_by: dict[str, Intent] = field(default_factory=dict)  # key id -> the intent it was adopted through
    policy_version: tuple[str, str] | None = None  # (policy name, its default version) as last written
    version: int = 2  # 1 when any entry was written by version 1
    over: set[str] = field(default_factory=set)  # run tokens known to be over (see lease())
    # Entries naming "the next key" of a run whose key is not known (it made none, or a lagged read wrote
    # the entry): the place may hold any key made since.
    unknown_next: set[str] = field(default_factory=set)
    # Entries that are not what this action writes (damaged, or written by someone else): tag key -> why.
    # They decide nothing; the run warns about each.
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def intent(self) -> Intent | None:
        """The latest intent (by its start), for messages and version 1 records."""
        dated = [i for i in self.intents.values() if i.since is not None]
        return max(dated, key=lambda i: i.since or datetime.min.replace(tzinfo=UTC)) if dated else None

    def tags_in_use(self) -> int:
        return self.other_tags + sum(self.used.values())

    def claim(self, scope: str) -> None:
        """A version 1 entry was read under a cleaned-up scope: file it under the real one, found by the
        hash in its tag key."""
        read_as = self.tag_scope.get(holder_tag_key(scope))
        if read_as is None or read_as == scope:
            return
        if read_as in self.holders:
            self.holders[scope] = self.holders.pop(read_as)
        self.places.pop(read_as, None)
        if read_as in self.refs:
            self.refs[scope] = self.refs.pop(read_as)
        self.tag_scope[holder_tag_key(scope)] = scope

    def place_of(self, scope: str) -> Place:
        return self.places.get(scope) or from_scope(scope)

    def run_over(self, run: RunId | None, current: RunId | None) -> bool:
        """GitHub runs one attempt of a run at a time: an earlier attempt of the current run is over."""
        if run is None or not run.run_id:
            return False
        if run.token in self.over:
            return True
        return current is not None and current.run_id == run.run_id and run.attempt < current.attempt

    def lease(self, now: datetime, current: RunId | None = None) -> Intent | None:
        """The intent of a run that may still be writing a new key (the one whose lease ends last), or None
        when the lease is free."""
        held = []
        for intent in self.intents.values():
            if (
                intent.state == "done"
                or intent.since is None
                or not believable(intent.since, intent.until, now)
            ):
                continue
            end = intent.until or intent.since + IN_FLIGHT
            if now < end and not self.run_over(intent.run, current):
                held.append((end, intent))
        return max(held, key=lambda e: e[0])[1] if held else None

    def ref_of(self, key_id: str) -> int | None:
        intent = self.made_by.get(key_id)
        return intent.ref if intent else None

    def adopt(self, keys: Iterable[AccessKey]) -> None:
        """An unmarked key created within a pending intent's creation window is that run's key (it died
        before marking it); holder entries naming "next" then name that key (or only their older keys)."""
        made: list[str] = []
        keys = list(keys)
        for intent in sorted(
            self.intents.values(), key=lambda i: i.since or datetime.min.replace(tzinfo=UTC)
        ):
            if intent.state == "made" and intent.key:
                made.append(intent.key)
                self.made_by[intent.key] = intent
            if intent.state != "pending" or intent.since is None:
                continue
            start = intent.since - IAM_CLOCK_MARGIN
            end = intent.since + CREATE_WINDOW + IAM_CLOCK_MARGIN
            until = intent.until or intent.since + IN_FLIGHT
            for key in keys:
                if (
                    key.key_id not in self.markers
                    and key.key_id not in intent.existing
                    and start <= key.created <= end
                ):
                    since = key.created.replace(microsecond=0)
                    self.markers[key.key_id] = Marker("pending", since, until, intent.run)
                    self.adopted.add(key.key_id)
                    self.made_by[key.key_id] = intent
                    made.append(key.key_id)
        for scope, ids in list(self.holders.items()):
            if NEXT in ids:
                resolved = (i for k in ids for i in (made if k == NEXT else [k]))
                self.holders[scope] = tuple(dict.fromkeys(resolved))
                if not made:
                    self.unknown_next.add(scope)

    def adopted_tags(self) -> list[dict[str, str]]:
        """Markers for adopted keys, to write before the intent that covers them is replaced."""
        out = []
        for key_id in sorted(self.adopted):
            marker = self.markers[key_id]
            if marker.since is not None:
                out.append(marker_tag(key_id, marker.state, marker.since, marker.until, marker.run))
        return out

    def holders_of(self, key_id: str) -> set[str]:
        return {scope for scope, ids in self.holders.items() if key_id in ids}

    def implausible(self, now: datetime) -> list[str]:
        """Leases and pending markers whose times this action could not have written: believed over."""
        out = [
            tag
            for tag, i in self.intents.items()
            if i.state != "done" and i.since is not None and not believable(i.since, i.until, now)
        ]
        out += [
            marker_key(k)
            for k, m in self.markers.items()
            if m.state == "pending" and m.since is not None and not believable(m.since, m.until, now)
        ]
        return sorted(out)

    def prove(self, keys: Iterable[AccessKey]) -> None:
        """A key is this action's only when its marker's time is the key's own CreateDate (IAM's, to the
        second), which the action writes when it makes the key: a marker with any other time is ignored,
        whoever wrote it."""
        for key in keys:
            marker = self.markers.get(key.key_id)
            if marker is not None and marker.since != key.created.replace(microsecond=0):
                del self.markers[key.key_id]
                self.ignored[marker_key(key.key_id)] = (
                    "its time is not the key's creation time in IAM, so the key is not taken for this "
                    "action's"
                )

    def in_flight(self, key_id: str, now: datetime, current: RunId | None = None) -> bool:
        marker = self.markers.get(key_id)
        if marker is None or marker.state != "pending" or self.run_over(marker.run, current):
            return False
        if marker.since is not None and not believable(marker.since, marker.until, now):
            return False
        if marker.until is not None:
            return now < marker.until
        return marker.since is None or now - marker.since < IN_FLIGHT


def believable(since: datetime, until: datetime | None, now: datetime) -> bool:
    """A lease this action could have written: not started in the future (beyond the clock margin), and
    ending no later than the longest lease after its start."""
    return since <= now + IAM_CLOCK_MARGIN and (until is None or until <= since + LEASE_CEILING)


class Unreadable(ValueError):
    """A record entry that is not what this action writes: the reason names what is wrong."""


def _check(ok: bool, why: str) -> None:
    if not ok:
        raise Unreadable(why)


def _key_ids(text: str, *, next_ok: bool = False) -> tuple[str, ...]:
    ids = tuple(i for i in text.split("+") if i)
    for key_id in ids:
        _check(
            bool(_KEY_ID.match(key_id)) or (next_ok and key_id == NEXT), "a key id is not an access key id"
        )
    return ids


def _time(text: str, *, optional: bool = False) -> datetime | None:
    when = _parse_iso(text)
    _check(when is not None or (optional and not text), "a time is not YYYY-MM-DDTHH:MM:SSZ")
    return when


def _number(text: str) -> int | None:
    _check(_digits(text) or not text, "a number has other characters than digits")
    return int(text) if text else None


def _run(
    run_id: str, attempt: str, job: str, repository: str, server: str, current_server: str
) -> RunId | None:
    """The run a lease names, each field held to what GitHub sets; None when it names none."""
    if not run_id and not attempt:
        return None
    _check(_digits(run_id) and _digits(attempt) and int(attempt) > 0, "a run id or attempt is not a number")
    _check(not job or bool(_JOB.match(job)), "the job is not a GitHub job id")
    _check(not repository or valid_repository(repository), "the repository is not owner/name")
    _check(server.rstrip("/") == current_server.rstrip("/"), "the server is not this run's GITHUB_SERVER_URL")
    return RunId(run_id, int(attempt), job, repository, current_server)


def _parse_intent(value: str, tag: str, server: str) -> Intent:
    fields = value.split(" ")
    if fields[0] == VERSION:
        _check(len(fields) == 12, "a lease has 12 fields")
        f = fields[1:]
        _check(f[0] in STATES, "unknown state")
        _check(not f[4] or bool(_KEY_ID.match(f[4])), "the key is not an access key id")
        return Intent(
            f[0],
            _time(f[1]),
            _time(f[2], optional=True),
            _key_ids(f[3]),
            f[4],
            _run(f[5], f[6], dec(f[7]), dec(f[8]), dec(f[9]), server),
            _number(f[10]),
            tag,
        )
    state, *times = fields  # version 1: "pending <since> <until> <existing>" | "done <when>"
    _check(state in ("pending", "done") and len(times) <= 3, "not a lease")
    since = _time(times[0]) if times else None
    until = _time(times[1], optional=True) if len(times) > 1 else None
    existing = _key_ids(times[2]) if len(times) > 2 else ()
    return Intent(state, since, until, existing, tag=tag)


def _parse_marker(key_id: str, value: str) -> Marker:
    _check(bool(_KEY_ID.match(key_id)), "not an access key id")
    state, *rest = value.split(" ")
    _check(state in ("pending", "active", "replaced") and 1 <= len(rest) <= 3, "not a key marker")
    since = _time(rest[0])
    until = _time(rest[1]) if len(rest) > 1 else None
    run = None
    if len(rest) > 2:
        run_id, _, attempt = rest[2].partition(".")
        _check(_digits(run_id) and (_digits(attempt) or not attempt), "the run is not <id>.<attempt>")
        run = _run_from_token(rest[2])
    return Marker(state, since, until, run)


def _parse_holder(record: Record, tag_key: str, value: str) -> None:
    fields = value.split(" ")
    if fields[0] == VERSION:
        _check(len(fields) == 6, "a holder entry has 6 fields")
        ids, ref = fields[1], fields[2]
        place = Place(dec(fields[3]), dec(fields[4]), dec(fields[5]))
        problem = place_problem(place)
        _check(not problem, f"its place is {problem}" if problem else "")
        # The tag key is the hash of the place's scope: an entry copied under another key is not ours.
        _check(holder_tag_key(place.scope) == tag_key, "its tag key is not the hash of its place")
        scope = place.scope
        ref_second = _number(ref)
    else:
        # Version 1: "<ids> <scope, cleaned up and cut at 256>". claim() files it under the real scope.
        ids, _, rest = value.partition(" ")
        scope, place, ref_second = rest or tag_key, None, None
        record.version = 1
    rewrite = ids.endswith("@")
    held = _key_ids(ids.removesuffix("@"), next_ok=True)
    if place is not None:
        record.places[scope] = place
    if ref_second is not None:
        record.refs[scope] = ref_second
    if rewrite:
        record.rewrite.add(scope)
    record.holders[scope] = held
    record.tag_scope[tag_key] = scope


def _parse_policy(value: str) -> tuple[str, str]:
    fields = value.split(" ")
    name, version = (
        (dec(fields[1]), fields[2])
        if fields[0] == VERSION and len(fields) == 3
        else value.partition(" ")[::2]
    )
    _check(
        bool(_POLICY_NAME.match(name)) and bool(_POLICY_VERSION.match(version)), "not a policy and version"
    )
    return name, version


def _parse_entry(record: Record, key: str, value: str, server: str) -> bool:
    """File one of our tags in `record`; False when the tag is not ours. Raises Unreadable."""
    if key == INTENT_KEY or key.startswith(LEASE_PREFIX):
        record.intents[key] = _parse_intent(value, key, server)
    elif key == POLICY_KEY:
        record.policy_version = _parse_policy(value)
    elif key.startswith(KEY_PREFIX):
        record.markers[key[len(KEY_PREFIX) :]] = _parse_marker(key[len(KEY_PREFIX) :], value)
    elif key.startswith(HOLDER_PREFIX):
        _parse_holder(record, key, value)
    else:
        return False
    return True


def parse(tags: Iterable[Mapping[str, str]], server: str = "https://github.com") -> Record:
    """The record in the user's tags. Every field is held to what this action writes (key ids, times,
    places as the inputs allow them, run ids, this run's server): an entry that fails is ignored, named
    in `ignored`, and still counts against the 50-tag limit. `server`: this run's GITHUB_SERVER_URL."""
    record = Record()
    values, used = _joined(tags)
    for key, value in values.items():
        try:
            ours = _parse_entry(record, key, value, server)
        except Unreadable as exc:
            record.ignored[key] = str(exc)
            ours = False
        if not ours:
            record.other_tags += used[key]
            continue
        record.used[key] = used[key]
    return record


# -- tags to write -------------------------------------------------------------------------------------


def _run_fields(run: RunId | None) -> list[str]:
    run = run or RunId()
    return [
        enc(run.run_id),
        str(run.attempt) if run.run_id else "",
        enc(run.job),
        enc(run.repository),
        enc(run.server) if run.run_id else "",
    ]


def intent_tags(intent: Intent) -> list[dict[str, str]]:
    fields = [
        VERSION,
        intent.state,
        _iso(intent.since) if intent.since else "",
        _iso(intent.until) if intent.until else "",
        "+".join(intent.existing),
        intent.key,
        *_run_fields(intent.run),
        str(intent.ref) if intent.ref is not None else "",
    ]
    return split_value(intent.tag, " ".join(fields))


def policy_tag(name: str, version: str) -> dict[str, str]:
    return {"Key": POLICY_KEY, "Value": f"{VERSION} {enc(name)} {version}"[:MAX_VALUE]}


def marker_tag(
    key_id: str, state: str, since: datetime, until: datetime | None = None, run: RunId | None = None
) -> dict[str, str]:
    value = f"{state} {_iso(since)}"
    if until:
        value += f" {_iso(until)}" + (f" {run.token}" if run and run.token else "")
    return {"Key": marker_key(key_id), "Value": value}


def holder_value(place: Place, key_ids: Iterable[str], ref: int | None = None, rewrite: bool = False) -> str:
    ids = "+".join(dict.fromkeys(key_ids)) + ("@" if rewrite else "")
    fields = [
        VERSION,
        ids,
        str(ref) if ref is not None else "",
        enc(place.kind),
        enc(place.name),
        enc(place.environment),
    ]
    return " ".join(fields)


def holder_tags(
    place: Place, key_ids: Iterable[str], ref: int | None = None, rewrite: bool = False
) -> list[dict[str, str]]:
    """`rewrite`: the target holds these keys' secret, maybe beside another id: written anew next time."""
    return split_value(holder_tag_key(place.scope), holder_value(place, key_ids, ref, rewrite))


def holder_tag(place: Place | str, key_ids: Iterable[str], ref: int | None = None) -> dict[str, str]:
    """The first (usually only) tag of a holder entry; for tests and short places."""
    return holder_tags(place if isinstance(place, Place) else from_scope(place), key_ids, ref)[0]


def tag_parts(record: Record, key: str) -> list[str]:
    """Every tag key a value uses now (its continuation parts included), to remove it whole."""
    return [key] + [f"{key}/{n}" for n in range(2, record.used.get(key, 1) + 1)]


def holder_parts(record: Record, scope: str) -> list[str]:
    return tag_parts(record, holder_tag_key(scope))


# -- decisions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPlan:
    reclaim: AccessKey | None  # a key to delete first, to make room under the 2-key limit
    extra_scopes: tuple[str, ...]  # holders outside this run's targets of keys it replaces: they keep them
    unmanaged: tuple[str, ...]  # keys not created by this action, left alone
    # Break before make: the run's own targets that hold `reclaim` (none: it was an orphan). They hold no
    # working key from its deletion until the run writes them, first.
    breaks: tuple[str, ...] = ()


class KeyPlanError(Exception):
    """Why no new key can be created safely; turned into a RotationError by the caller."""


class LeaseHeld(KeyPlanError):
    """Another run holds the lease: the caller says who, until when, and what to do."""

    def __init__(self, intent: Intent | None, until: datetime | None) -> None:
        self.intent = intent
        self.until = until
        super().__init__("another run holds this user's lease")


def _lease_of_keys(record: Record, keys: list[AccessKey]) -> LeaseHeld:
    """For a record whose in-flight keys are pending markers without an intent naming the run."""
    ends = [m.until for k in keys if (m := record.markers.get(k.key_id)) and m.until]
    return LeaseHeld(None, max(ends) if ends else None)


def tags_needed(places: Iterable[Place], record: Record, run: RunId | None) -> int:
    """Tags this run's writes add to the user, at most (entries with three ids and a reference)."""
    worst = ("AKIA" + "X" * 16,) * 3
    needed = 1  # the new key's marker
    intent = Intent(
        "pending",
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        ("AKIA" + "X" * 16,) * 2,
        "AKIA" + "X" * 16,
        run,
        10**10,
        LEASE_PREFIX + "x" * 8,
    )
    needed += len(intent_tags(intent))  # this run's own intent tag
    needed += 0 if POLICY_KEY in record.used else 1
    for place in places:
        parts = len(holder_tags(place, worst, 10**10))
        needed += max(0, parts - record.used.get(holder_tag_key(place.scope), 0))
    return needed


def plan_keys(
    keys: list[AccessKey],
    record: Record,
    places: Iterable[Place],
    now: datetime,
    rules: Retiring,
) -> KeyPlan:
    """Decide, before anything changes, whether a key can be created and which key makes room. `now`
    is IAM's time as this run estimates it; `rules.replaced`: keys this run's targets held before the
    record was settled. A user this run creates counts its own tags in
    `record.other_tags` (they share the 50-tag limit)."""
    retire_unmanaged, current = rules.unmanaged, rules.run
    wanted_places = {p.scope: p for p in places}
    wanted = set(wanted_places)
    lease = record.lease(now, current)
    in_flight = {k.key_id for k in keys if record.in_flight(k.key_id, now, current)}
    if lease is not None:
        raise LeaseHeld(lease, lease.until)
    if in_flight:
        raise _lease_of_keys(record, keys)

    def managed(key_id: str) -> bool:
        return key_id in record.markers or retire_unmanaged

    existing = {k.key_id for k in keys}
    unmanaged = tuple(sorted(k for k in existing if k not in record.markers))
    extra: set[str] = set()
    for key in keys:
        if not managed(key.key_id):
            continue
        for scope in record.holders_of(key.key_id):
            if scope not in wanted:
                extra.add(scope)

    in_use = record.tags_in_use()
    needed = tags_needed(wanted_places.values(), record, current)
    if in_use + needed > MAX_TAGS:
        raise KeyPlanError(
            f"the record needs up to {needed} more tag(s) on the user, and IAM allows {MAX_TAGS} "
            f"({in_use} are used, the user's own tags included); use another iam-user for some "
            "repositories, or fewer tags"
        )

    # The keys this run replaces: its targets' as `record` says, and as the caller saw them (`replaced`).
    replaced = {*rules.replaced, *(k for scope in wanted for k in record.holders.get(scope, ()))}
    free = set(retirable(existing, record, now, Retiring(retire_unmanaged, current, frozenset(replaced))))
    reclaim, breaks = _reclaim(keys, record, managed, wanted, free)
    return KeyPlan(reclaim, tuple(sorted(extra)), unmanaged, breaks)


def _reclaim(
    keys: list[AccessKey],
    record: Record,
    managed: Callable[[str], bool],
    wanted: set[str],
    free: set[str],
) -> tuple[AccessKey | None, tuple[str, ...]]:
    """At the 2-key limit, the key to delete first: the oldest one this action may retire that no place
    holds; else, when both keys are this action's, (break before make) the oldest one whose every holder
    is among this run's targets, which it writes first. Otherwise no key can be made."""
    if len(keys) < MAX_KEYS:
        return None, ()
    mine = sorted((k for k in keys if managed(k.key_id)), key=lambda k: k.created)
    for key in mine:
        if key.key_id in free:
            return key, ()
    if len(mine) < len(keys):  # a key this action did not make takes the slot: the user decides, not us
        raise KeyPlanError(_explain_full(keys, record))
    for key in mine:
        holders = record.holders_of(key.key_id)
        if holders and holders <= wanted:
            return key, tuple(sorted(holders))
    raise KeyPlanError(_explain_full(keys, record))


def _explain_full(keys: list[AccessKey], record: Record) -> str:
    parts = []
    for key in keys:
        labels = sorted(record.place_of(s).label for s in record.holders_of(key.key_id))
        if key.key_id not in record.markers:
            why = "not created by this action"
        elif labels:
            why = "held by " + ", ".join(labels)
        else:
            why = "held by no recorded place, but not one this run's targets held"
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


def retirable(key_ids: Iterable[str], record: Record, now: datetime, rules: Retiring) -> list[str]:
    """Keys that, by the record as it is now, no place holds and no run is writing, and that this run may
    delete: keys this action made that this run's own targets held, that the run which replaced them marked
    so, or that no run ever committed as held (a crashed run's pending key); a key this action did not make
    only under retire-unmanaged-keys. An
    active key that no entry names but that this run did not replace is kept: the record may have been
    rewritten to hide the place that holds it."""

    def may(key_id: str) -> bool:
        marker = record.markers.get(key_id)
        if marker is None:
            return rules.unmanaged
        return key_id in rules.replaced or marker.state in ("pending", "replaced")

    return [
        k for k in key_ids if not record.holders_of(k) and may(k) and not record.in_flight(k, now, rules.run)
    ]


def unsettled(record: Record, now: datetime, current: RunId | None = None) -> dict[str, tuple[str, ...]]:
    """Holder entries naming several keys whose writing run is over (crashed, or failed mid-way)."""
    return {
        scope: ids
        for scope, ids in record.holders.items()
        if len(ids) > 1 and not any(record.in_flight(i, now, current) for i in ids)
    }


@dataclass(frozen=True)
class Settled:
    held: tuple[str, ...]  # the key(s) the target holds
    rewrite: bool = False  # its id may point at a key whose secret it does not hold: write it anew


def _side(stamp: int, ref: int) -> str:
    if stamp <= ref:
        return "before"
    if stamp >= ref + GAP:
        return "after"
    return "tie"


def settle(
    ids: tuple[str, ...],
    ref: int | None,
    id_updated: int | None,
    secret_updated: int | None,
) -> Settled | None:
    """Which of `ids` a target holds, from GitHub's updated_at of its two secrets (epoch seconds) and
    `ref`, the GitHub second the newest key's run recorded before it wrote any target (every write of that
    run lands GAP seconds or more after it). GitHub time is compared with GitHub time only; None when it
    cannot be told (a tie): keep every key and write the target anew.

    That run wrote the id, then the secret, and restored the id only when the secret did not land:
    - the id written before it: the run never reached the target; it holds the older key(s);
    - the secret written since: it holds the newest key;
    - the id written since, the secret before: its secret is the older key's; its id is the newest key's
      (mismatched) or the older one's (restored): it holds the older key, and is written anew.
    """
    if ref is None or id_updated is None or secret_updated is None or len(ids) < 2:
        return None
    newest, older = ids[-1], ids[:-1]
    id_side, secret_side = _side(id_updated, ref), _side(secret_updated, ref)
    if secret_side == "after":
        return Settled((newest,))
    if secret_side == "tie":
        return None
    if id_side == "before":
        return Settled(older)
    if id_side == "after":
        return Settled(older, rewrite=True)
    return None
