"""A GitHub REST API stand-in on loopback: the Actions secrets and variables endpoints the action uses, held
to GitHub's published description (tests/stand_ins/openapi.py) and to what github.com does beyond it.

Real HTTP, a real libsodium key pair per repository, environment and organization, tokens with or without
the secrets permission, fault injection per request, and a record of every exchange (headers and bodies
included). Tests decrypt what was stored. As strict as github.com, where the docs say how it behaves:
- requests are checked against the description (unknown operations 404, bodies that break the schema 422);
  an `X-GitHub-Api-Version` GitHub does not support is a 400 ("API versions" in the REST docs);
- every list is paginated: `page`/`per_page` (default 30, at most 100), `Link` with first/prev/next/last
  ("Using pagination in the REST API"); organization lists link to /organizations/{id}/..., as github.com's
  do;
- a renamed or transferred repository answers its old name with 301 (GET) or 307 (other methods) to
  /repositories/{id}/... ("Best practices for using the REST API": follow redirects);
- 409 for the selected repositories of an organization variable whose visibility is not `selected`, 422 for
  an environment name GitHub refuses (both documented);
- timestamps and the Date header are whole seconds from GitHub's clock, which a test can skew against the
  runner's (`skew`); the Date header's servers can be off from the one that stores timestamps (`date_offset`);
- the primary limit (5,000 per hour, `x-ratelimit-*` on every answer) and the secondary limits: 900 points
  per minute (GET 1, other methods 5) and 80 content-creating requests per minute, 500 per hour, refused
  with 403 or 429, with or without Retry-After ("Rate limits for the REST API").
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from nacl.public import PrivateKey, SealedBox

from . import openapi

# A "box" is where secrets and variables live: a repository, one of its environments, or an organization.
BOX = r"(/repos/(?P<repo>[^/]+/[^/]+)(?:/actions|/environments/(?P<env>[^/]+))|/orgs/(?P<org>[^/]+)/actions)"
PUBLIC_KEY = re.compile(rf"^{BOX}/secrets/public-key$")
SECRET = re.compile(rf"^{BOX}/secrets/(?P<name>[^/]+)$")
SELECTED = re.compile(rf"^{BOX}/(?P<what>secrets|variables)/(?P<name>[^/]+)/repositories$")
VARIABLES = re.compile(rf"^{BOX}/variables$")
VARIABLE = re.compile(rf"^{BOX}/variables/(?P<name>[^/]+)$")
REPO = re.compile(r"^/repos/([^/]+/[^/]+)$")
ENVIRONMENT = re.compile(r"^/repos/([^/]+/[^/]+)/environments/([^/]+)$")
RUN_ATTEMPT = re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs/([0-9]+)/attempts/([0-9]+)$")
OLD_NAME = re.compile(r"^/repos/(?P<name>[^/]+/[^/]+)(?P<rest>/.*)?$")
BY_ID = re.compile(r"^/(?P<kind>repositories|organizations)/(?P<id>\d+)(?P<rest>/.*)?$")
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
# The older wording of a secondary limit, which GitHub Enterprise Server still answers: "abuse rate limits"
# until 2021 (REST v3 docs, developer.github.com/v3/#abuse-rate-limits; quoted in hub4j/github-api#289).
ABUSE = "You have triggered an abuse detection mechanism. Please wait a few minutes before you try again."
# "Limits for secrets" (GitHub Docs, Secrets reference): up to 1,000 organization secrets, 100 repository
# secrets and 100 environment secrets. The REST answer to one more is not documented: a 422 naming the limit.
SECRET_LIMITS = {"organization": 1000, "repository": 100, "environment": 100}
PRIMARY = "API rate limit exceeded for user ID 1."
DOCS = "https://docs.github.com/rest"
API_VERSIONS = ("2022-11-28", "2026-03-10")  # the versions GitHub serves; anything else is a 400
# The *_url fields GitHub's repository schemas require.
URL_FIELDS = (
    *("archive", "assignees", "blobs", "branches", "collaborators", "comments", "commits", "compare"),
    *("contents", "contributors", "deployments", "downloads", "events", "forks", "git_commits"),
    *("git_refs", "git_tags", "hooks", "issue_comment", "issue_events", "issues", "keys", "labels"),
    *("languages", "merges", "milestones", "notifications", "pulls", "releases", "stargazers"),
    *("statuses", "subscribers", "subscription", "tags", "teams", "trees"),
)


@dataclass
class Secret:
    sealed: str
    key_id: str
    updated_at: str
    visibility: str = ""  # organization secrets
    selected: list[int] = field(default_factory=list)
    created_at: str = ""


@dataclass
class Variable:
    value: str
    updated_at: str
    visibility: str = ""
    selected: list[int] = field(default_factory=list)
    created_at: str = ""


@dataclass
class Box:
    private_key: PrivateKey = field(default_factory=PrivateKey.generate)
    key_id: str = field(default_factory=lambda: str(secrets.randbelow(10**18)))
    secrets: dict[str, Secret] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    id: int = field(default_factory=lambda: 10**6 + secrets.randbelow(10**8))
    name: str = ""  # an organization's login or an environment's name
    created_at: str = "2020-01-01T00:00:00Z"


@dataclass
class Repo(Box):
    owner_id: int = 0
    environments: dict[str, Box] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)  # earlier names (lower-case): renamed or transferred


@dataclass
class Token:
    repos: set[str] | None = None  # None: every repository
    secrets_permission: bool = True
    integration: bool = False  # a GITHUB_TOKEN-like installation token
    admin: bool = True  # may create environments (Administration: write)
    orgs: set[str] | None = None  # organizations whose secrets it may write; None: every one
    actions_read: bool = False  # may read workflow runs (Actions: read)

    def sees(self, repo: Repo) -> bool:
        """A fine-grained token lists repositories by id: a renamed one stays in its list."""
        return self.repos is None or bool({repo.name.lower(), *repo.aliases} & self.repos)


@dataclass
class Fault:
    """Answer matching requests with `status` (or drop the connection when status is 0)."""

    method: str
    path: str  # regular expression, matched against the path
    status: int = 500
    times: int = 1  # -1: every time
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "injected fault"
    apply_first: bool = False  # do the real work, then answer with the fault (a lost reply)
    after: int = 0  # let this many matching requests through first
    slow: float = 0.0  # > 0: serve the request for real, but answer this many seconds late
    # > 0 (with status 0): drop the connection unanswered and apply the request this many seconds later,
    # from a timer of the stand-in's, and never before a read of that path was answered since (so the
    # client's first read-back sees nothing, however slow the machine): a write GitHub is still processing
    # after the client saw it fail (GitHub ends a request only after 10 s: "Troubleshooting the REST API",
    # Timeouts).
    late: float = 0.0
    late_after_read: bool = True  # False: on the timer alone
    echo: bool = False  # put the decrypted value of a PUT in the error message (a careless server)
    echoed: list[str] = field(default_factory=list)
    hits: int = 0
    # status -1: hold the request until `release` is set (a test kills the client meanwhile), then drop it
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Request:
    method: str
    path: str
    status: int
    at: float  # monotonic: answer ready
    start: float = 0.0  # monotonic: request received
    exchange: openapi.Exchange | None = None  # headers and bodies both ways


@dataclass
class SecondaryLimit:
    """GitHub's secondary rate limits for REST, per token: `points` per sliding `window` (GET 1, other
    methods 5), and content-creating requests (every method but GET): `content` per window and
    `content_hourly` per 60 windows. Tests shrink `window` to keep GitHub's proportions in less time."""

    points: int = 900
    window: float = 60.0
    content: int = 80
    content_hourly: int = 500
    status: int = 403  # GitHub answers 403 or 429
    retry_after: bool = True  # GitHub "may" send Retry-After; without it the client must back off
    message: str = SECONDARY  # ABUSE: GitHub Enterprise Server's older wording
    spent: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    created: dict[str, list[float]] = field(default_factory=dict)
    refusals: int = 0

    def take(self, token: str, method: str, now: float) -> float:
        """0 when the request may go; otherwise the seconds until it could (its Retry-After)."""
        cost = 1 if method in ("GET", "HEAD") else 5
        log = [(t, c) for t, c in self.spent.get(token, []) if now - t < self.window]
        self.spent[token] = log
        waits = []
        used = sum(c for _, c in log)
        if used + cost > self.points:
            free = used + cost - self.points
            for t, c in log:
                free -= c
                if free <= 0:
                    waits.append(t + self.window - now)
                    break
        if method != "GET":
            made = [t for t in self.created.get(token, []) if now - t < 60 * self.window]
            self.created[token] = made
            minute = [t for t in made if now - t < self.window]
            if len(minute) >= self.content:
                waits.append(minute[-self.content] + self.window - now)
            if len(made) >= self.content_hourly:
                waits.append(made[-self.content_hourly] + 60 * self.window - now)
        if waits:
            self.refusals += 1
            return max(*waits, 0.001)
        log.append((now, cost))
        if method != "GET":
            self.created[token].append(now)
        return 0.0


@dataclass
class PrimaryLimit:
    """5,000 requests per hour for a personal access token; `x-ratelimit-*` headers on every answer."""

    limit: int = 5000
    used: int = 0
    reset: int = 0  # epoch seconds (GitHub's clock) when the hour's budget comes back


class GitHubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.orgs: dict[str, Box] = {}
        self.owner_ids: dict[str, int] = {}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        self.log: list[Request] = []
        self.latency = 0.0  # seconds added to every request (the benchmark's simulated network)
        self.skew = 0.0  # seconds GitHub's clock is ahead of this machine's (negative: behind)
        self.date_offset = 0.0  # seconds the Date header's servers are off from the clock stored times use
        self.limit: SecondaryLimit | None = SecondaryLimit()  # None: off (only the benchmark's baseline)
        self.primary = PrimaryLimit()
        self.runs: dict[tuple[str, int, int], str] = {}  # (repo, run id, attempt) -> status
        # Called once, under the lock, when the first request arrives: a test arms a limit relative to the
        # run's first request, not to when the process was started (which a loaded machine delays).
        self.on_first_request: Callable[[], None] | None = None
        # The same, when the first request that is not a GET arrives (before it is counted): a test
        # arranges "another client spent the budget" right where it must bite, however slow the run.
        self.on_first_write: Callable[[], None] | None = None
        self.on_write_to: dict[str, Callable[[], None]] = {}  # path pattern -> called when one arrives
        self.late: list[threading.Timer] = []  # writes still to land (Fault.late)
        self.awaited_reads: list[tuple[str, threading.Event]] = []  # (path, set once a read of it answered)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up -------------------------------------------------------------------------------------

    def add_repo(self, name: str, environments: tuple[str, ...] = ()) -> Repo:
        owner = name.split("/", maxsplit=1)[0].lower()
        owner_id = self.owner_ids.setdefault(owner, 1000 + len(self.owner_ids))
        repo = Repo(name=name, owner_id=owner_id)
        for env in environments:
            repo.environments[env.lower()] = Box(name=env)
        self.repos[name.lower()] = repo
        return repo

    def add_org(self, name: str) -> Box:
        owner_id = self.owner_ids.setdefault(name.lower(), 1000 + len(self.owner_ids))
        return self.orgs.setdefault(name.lower(), Box(id=owner_id, name=name))

    def rename(self, old: str, new: str) -> Repo:
        """Rename (or, with another owner, transfer) a repository: its old name then redirects."""
        repo = self.repos.pop(old.lower())
        repo.aliases.add(old.lower())
        repo.name = new
        repo.owner_id = self.owner_ids.setdefault(new.partition("/")[0].lower(), 1000 + len(self.owner_ids))
        self.repos[new.lower()] = repo
        return repo

    def box(self, repo: str = "", environment: str = "", org: str = "") -> Box:
        if org:
            return self.orgs[org.lower()]
        r = self.repos[repo.lower()]
        return r.environments[environment.lower()] if environment else r

    def seal_in(self, box: Box, value: str) -> str:
        return base64.b64encode(SealedBox(box.private_key.public_key).encrypt(value.encode())).decode()

    def decrypt_in(self, box: Box, name: str) -> str:
        return SealedBox(box.private_key).decrypt(base64.b64decode(box.secrets[name].sealed)).decode()

    def repo_by_id(self, repo_id: int) -> Repo:
        return next(r for r in self.repos.values() if r.id == repo_id)

    def add_token(self, **kwargs: Any) -> str:
        token = "ghp_" + secrets.token_hex(18)
        self.tokens[token] = Token(**kwargs)
        return token

    def fail(self, method: str, path: str, **kwargs: Any) -> Fault:
        fault = Fault(method, path, **kwargs)
        self.faults.append(fault)
        return fault

    def _read_of(self, path: str) -> threading.Event:
        """Set once a read of `path` has been answered from now on."""
        event = threading.Event()
        with self._lock:
            self.awaited_reads.append((path, event))
        return event

    def _reads_answered(self, path: str) -> None:
        with self._lock:
            for awaited, event in self.awaited_reads:
                if awaited == path:
                    event.set()

    def landed_late(self) -> None:
        """Returns once every late write (Fault.late) has been applied: what a test checks comes after."""
        for later in list(self.late):
            later.join()

    def reset_log(self) -> None:
        self.log.clear()

    # -- what tests read back -----------------------------------------------------------------------

    def decrypt(self, repo: str, name: str) -> str:
        return self.decrypt_in(self.repos[repo.lower()], name)

    def secret_names(self, repo: str) -> set[str]:
        return set(self.repos[repo.lower()].secrets)

    def clock(self) -> float:
        """GitHub's clock: this machine's, skewed (and moved on by `advance`)."""
        return time.time() + self.skew

    def advance(self, seconds: float) -> None:
        """Time passes at once for GitHub: later timestamps and Date headers are `seconds` later (stored
        ones stay as they were), as if the test had slept that long."""
        self.skew += seconds

    def now(self) -> str:
        """A timestamp as github.com writes one: UTC, whole seconds."""
        return datetime.fromtimestamp(int(self.clock()), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- server -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GitHubStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stall

            def log_message(self, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                return email.utils.formatdate(int(stand_in.clock() + stand_in.date_offset), usegmt=True)

            def _handle(self) -> None:
                stand_in._dispatch(self)

            do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _handle

        openapi.api()  # built once per process (about 0.2 s), before the first request is timed
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        start = time.monotonic()
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-request (a cancelled run): nothing to answer
            h.close_connection = True
            return
        path, _, query = h.path.partition("?")
        if path.startswith(("http://", "https://")):  # an absolute-URL request line (via HTTP_PROXY)
            path = "/" + path.split("://", 1)[1].partition("/")[2]
            path = path.removeprefix("/api/v3")
        x = openapi.Exchange(h.command, path, dict(parse_qsl(query)), dict(h.headers.items()), body)
        x = replace(x, problems=tuple(openapi.request_problems(x)))
        if self.latency:
            time.sleep(self.latency)
        refusal = self._limited(h)
        if refusal is not None:
            self._finish(h, x, start, *refusal)
            return
        fault = self._match_fault(h.command, path)
        if fault is not None and fault.slow > 0:
            status, payload, headers = self._route(h, x)
            self._record(x, start, status)
            time.sleep(fault.slow)  # past the client's timeout: it cannot know whether this landed
            with contextlib.suppress(OSError):  # the client gave up and closed the connection
                self._send(h, status, payload, headers)
            return
        if fault is not None and fault.late > 0:
            self._answer_fault(h, x, start, fault)
            read = self._read_of(path)
            if not fault.late_after_read:
                read.set()
            later = threading.Timer(fault.late, lambda: (read.wait(60), self._route(h, x)))
            later.daemon = True
            self.late.append(later)
            later.start()
            return
        if fault is not None and fault.echo:
            fault.echoed.append(self._unseal(path, body))
            fault = Fault(**{**fault.__dict__, "message": f"{fault.message}: {fault.echoed[-1]}"})
        if fault is not None and not fault.apply_first:
            self._answer_fault(h, x, start, fault)
            return
        status, payload, headers = self._route(h, x)
        if fault is not None:
            self._answer_fault(h, x, start, fault)
            return
        self._finish(h, x, start, status, payload, headers)
        if h.command == "GET":
            self._reads_answered(path)  # its answer is sent: a late write may land now

    def _limited(self, h: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]] | None:
        """The primary and secondary rate limits, checked before anything else."""
        auth = h.headers.get("Authorization", "")
        with self._lock:
            if self.on_first_request is not None:
                self.on_first_request()
                self.on_first_request = None
            if self.on_first_write is not None and h.command != "GET":
                self.on_first_write()
                self.on_first_write = None
            for pattern, hook in list(self.on_write_to.items()):  # once each, when such a write arrives
                if h.command != "GET" and re.search(pattern, h.path):
                    del self.on_write_to[pattern]
                    hook()
            p = self.primary
            if p.reset <= self.clock():
                p.used, p.reset = 0, int(self.clock()) + 3600
            if p.used >= p.limit:
                return 403, {"message": PRIMARY, "documentation_url": DOCS}, {}
            wait = self.limit.take(auth, h.command, time.monotonic()) if self.limit else 0.0
            p.used += 1
        if not wait:
            return None
        assert self.limit is not None
        headers = {"Retry-After": str(max(1, round(wait + 0.499)))} if self.limit.retry_after else {}
        return self.limit.status, {"message": self.limit.message, "documentation_url": DOCS}, headers

    def _rate_headers(self) -> dict[str, str]:
        p = self.primary
        return {
            "x-ratelimit-limit": str(p.limit),
            "x-ratelimit-remaining": str(max(p.limit - p.used, 0)),
            "x-ratelimit-used": str(p.used),
            "x-ratelimit-reset": str(p.reset),
            "x-ratelimit-resource": "core",
        }

    def _unseal(self, path: str, body: bytes) -> str:
        m = SECRET.match(path)
        try:
            box = self._box(m) if m else None
            sealed = base64.b64decode(json.loads(body)["encrypted_value"])
            return SealedBox(box.private_key).decrypt(sealed).decode() if box else ""
        except Exception:  # noqa: BLE001 - nothing to echo
            return ""

    def _match_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and re.search(fault.path, path) and fault.times != 0:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.hits += 1
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _answer_fault(
        self, h: BaseHTTPRequestHandler, x: openapi.Exchange, start: float, fault: Fault
    ) -> None:
        if fault.status in (0, -1):
            self._record(x, start, fault.status)
            if fault.status == -1:
                fault.held.set()
                fault.release.wait(60)
            h.close_connection = True
            h.connection.close()  # the client sees a reset / remote disconnect
            return
        self._finish(h, x, start, fault.status, {"message": fault.message}, fault.headers)

    def _record(self, x: openapi.Exchange, start: float, status: int) -> Request:
        with self._lock:
            now = time.monotonic()
            request = Request(x.method, x.path, status, now, start or now, x)
            self.log.append(request)
            return request

    def _finish(
        self,
        h: BaseHTTPRequestHandler,
        x: openapi.Exchange,
        start: float,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        request = self._record(x, start, status)
        data, sent = self._send(h, status, payload, headers)
        request.exchange = replace(x, status=status, response_headers=tuple(sent.items()), response_body=data)

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        data = b"" if payload is None else json.dumps(payload).encode()
        sent = {**self._rate_headers(), **(headers or {})}
        if data:
            sent["Content-Type"] = "application/json; charset=utf-8"
        sent["Content-Length"] = str(len(data))
        h.send_response(status)
        for key, value in sent.items():
            h.send_header(key, value)
        h.end_headers()
        if data:
            h.wfile.write(data)
        return data, sent

    def _box(self, m: re.Match[str]) -> Box | None:
        if m.group("org"):
            return self.orgs.get(m.group("org").lower())
        repo = self.repos.get(m.group("repo").lower())
        if repo is None or not m.group("env"):
            return repo
        return repo.environments.get(unquote(m.group("env")).lower())

    # -- routing ------------------------------------------------------------------------------------

    def _moved(self, x: openapi.Exchange) -> tuple[int, Any, dict[str, str]] | None:
        """A repository's old name: 301 for GET, 307 for the rest, to /repositories/{id}/..."""
        m = OLD_NAME.match(x.path)
        if not m or m.group("name").lower() in self.repos:
            return None
        repo = next((r for r in self.repos.values() if m.group("name").lower() in r.aliases), None)
        if repo is None:
            return None
        location = f"{self.url}/repositories/{repo.id}{m.group('rest') or ''}"
        if x.query:
            location += "?" + urlencode(x.query)
        status = 301 if x.method in ("GET", "HEAD") else 307
        message = "Moved Permanently" if status == 301 else "Temporary Redirect"
        docs = "https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#follow-redirects"
        return (
            status,
            {"message": message, "url": location, "documentation_url": docs},
            {"Location": location},
        )

    def _by_id(self, path: str) -> str | None:
        """/repositories/{id}/... and /organizations/{id}/...: the same operations under the name."""
        m = BY_ID.match(path)
        if not m:
            return path
        rest, wanted = m.group("rest") or "", int(m.group("id"))
        if m.group("kind") == "repositories":
            repo = next((r for r in self.repos.values() if r.id == wanted), None)
            return f"/repos/{repo.name}{rest}" if repo else None
        org = next((o for o in self.orgs.values() if o.id == wanted), None)
        return f"/orgs/{org.name}{rest}" if org else None

    def _route(self, h: BaseHTTPRequestHandler, x: openapi.Exchange) -> tuple[int, Any, dict[str, str]]:
        auth = h.headers.get("Authorization", "")
        token = self.tokens.get(auth.split(" ", 1)[1] if " " in auth else "")
        if token is None:
            return 401, {"message": "Bad credentials", "documentation_url": DOCS}, {}
        version = h.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in API_VERSIONS:
            return 400, {"message": f"Unsupported 'X-GitHub-Api-Version': {version}"}, {}
        moved = self._moved(x)
        if moved is not None:
            return moved
        path = self._by_id(x.path)
        if path is None or any("PathNotFound" in p or "OperationNotFound" in p for p in x.problems):
            return 404, {"message": "Not Found", "documentation_url": DOCS}, {}
        if x.problems:
            return 422, {"message": "Invalid request.\n\n" + "\n".join(x.problems)}, {}
        try:
            data = json.loads(x.body) if x.body else {}
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}, {}
        with self._lock:
            status, payload, headers = self._route_known(token, h.command, path, data, x.query)
        if status >= 400 and isinstance(payload, dict):
            payload.setdefault("documentation_url", DOCS)
        return status, payload, headers

    def _allowed(self, token: Token, m: re.Match[str]) -> bool:
        if m.group("org"):
            org = m.group("org").lower()
            return org in self.orgs and (token.orgs is None or org in token.orgs)
        repo = self.repos.get(m.group("repo").lower())
        return repo is not None and token.sees(repo)

    def _route_known(
        self, token: Token, method: str, path: str, data: Any, query: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        m = (
            PUBLIC_KEY.match(path)
            or SELECTED.match(path)
            or SECRET.match(path)
            or VARIABLES.match(path)
            or VARIABLE.match(path)
        )
        if m is None:
            return self._route_repo(token, method, path)
        box = self._box(m) if self._allowed(token, m) else None
        if box is None:
            return 404, {"message": "Not Found"}, {}
        if not token.secrets_permission:
            return (
                403,
                {
                    "message": "Resource not accessible by integration"
                    if token.integration
                    else "Resource not accessible by personal access token"
                },
                {},
            )
        if m.re is PUBLIC_KEY:
            public = base64.b64encode(bytes(box.private_key.public_key)).decode()
            return 200, {"key_id": box.key_id, "key": public}, {}
        if m.re is SELECTED:
            return self._selected(box, method, m, data, query)
        if m.re is SECRET:
            return (
                *self._secret(box, method, unquote(m.group("name")).upper(), data, bool(m.group("org"))),
                {},
            )
        return (*self._variable(box, method, m, data), {})

    def _selected(
        self, box: Box, method: str, m: re.Match[str], data: Any, query: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        variables = m.group("what") == "variables"
        item: Secret | Variable | None = (box.variables if variables else box.secrets).get(
            unquote(m.group("name")).upper()
        )
        if item is None:
            return 404, {"message": "Not Found"}, {}
        if variables and item.visibility != "selected":
            # Documented for the variable's GET and PUT; the secret's operations document no 409.
            return 409, {"message": "Visibility of the variable is not set to selected"}, {}
        if method == "PUT":
            item.selected = sorted(set(data["selected_repository_ids"]))
            if not variables:  # as github.com does: a secret's updated_at moves when its selection changes
                item.updated_at = self.now()
            return 204, None, {}
        repos = [self._repository(self.repo_by_id(i)) for i in item.selected if self._has_repo(i)]
        link = f"/organizations/{box.id}/actions/{m.group('what')}/{m.group('name')}/repositories"
        page, headers = self._page(repos, query, link)
        return 200, {"total_count": len(repos), "repositories": page}, headers

    def _has_repo(self, repo_id: int) -> bool:
        return any(r.id == repo_id for r in self.repos.values())

    def _page(self, items: list[Any], query: dict[str, str], path: str) -> tuple[list[Any], dict[str, str]]:
        """One page and its Link header, as github.com pages every list (per_page at most 100)."""
        try:
            per_page = min(max(int(query.get("per_page", 30)), 1), 100)
            page = max(int(query.get("page", 1)), 1)
        except ValueError:
            per_page, page = 30, 1
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = []

        def link(n: int, rel: str) -> None:
            links.append(f'<{self.url}{path}?{urlencode({"per_page": per_page, "page": n})}>; rel="{rel}"')

        if page > 1:
            link(page - 1, "prev")
        if page < last:
            link(page + 1, "next")
            link(last, "last")
        if page > 1:
            link(1, "first")
        return items[(page - 1) * per_page : page * per_page], ({"Link": ", ".join(links)} if links else {})

    def _repository(self, repo: Repo) -> dict[str, Any]:
        """A repository as GitHub's "Minimal Repository" and "Full Repository" require it."""
        api = f"{self.url}/repos/{repo.name}"
        owner = repo.name.split("/")[0]
        out: dict[str, Any] = {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name.split("/")[1],
            "full_name": repo.name,
            "owner": self._owner(owner, repo.owner_id),
            "private": True,
            "html_url": f"https://github.com/{repo.name}",
            "description": None,
            "fork": False,
            "url": api,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
        }
        for name in URL_FIELDS:
            out[f"{name}_url"] = f"{api}/{name.replace('_', '/')}"
        return out

    def _owner(self, login: str, owner_id: int) -> dict[str, Any]:
        """A "Simple User" with every field GitHub's schema requires."""
        api = f"{self.url}/users/{login}"
        out: dict[str, Any] = {
            "login": login,
            "id": owner_id,
            "node_id": f"O_{owner_id}",
            "type": "Organization",
            "site_admin": False,
            "gravatar_id": "",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{owner_id}",
            "html_url": f"https://github.com/{login}",
            "url": api,
        }
        for name in ("events", "followers", "following", "gists", "organizations", "received_events"):
            out[f"{name}_url"] = f"{api}/{name}"
        out.update(repos_url=f"{api}/repos", starred_url=f"{api}/starred")
        out["subscriptions_url"] = f"{api}/subscriptions"
        return out

    def _full_repository(self, repo: Repo) -> dict[str, Any]:
        out = self._repository(repo)
        counts = "forks forks_count open_issues open_issues_count size stargazers_count watchers "
        counts += "watchers_count network_count subscribers_count"
        out.update(dict.fromkeys(counts.split(), 0))
        flags = "has_issues has_projects has_wiki has_pages has_discussions archived disabled"
        out.update(dict.fromkeys(flags.split(), False))
        out.update(
            clone_url=f"https://github.com/{repo.name}.git",
            git_url=f"git://github.com/{repo.name}.git",
            ssh_url=f"git@github.com:{repo.name}.git",
            svn_url=f"https://github.com/{repo.name}",
            default_branch="main",
            homepage=None,
            language=None,
            mirror_url=None,
            license=None,
        )
        return out

    def _environment(self, repo: Repo, env: Box) -> dict[str, Any]:
        return {
            "id": env.id,
            "node_id": f"EN_{env.id}",
            "name": env.name,
            "url": f"{self.url}/repos/{repo.name}/environments/{quote(env.name, safe='')}",
            "html_url": f"https://github.com/{repo.name}/deployments/activity_log?environments_filter={env.name}",
            "created_at": env.created_at,
            "updated_at": env.created_at,
        }

    def add_run(self, repo: str, run_id: int, attempt: int = 1, status: str = "in_progress") -> None:
        self.runs[(repo.lower(), run_id, attempt)] = status

    def _run_attempt(self, token: Token, m: re.Match[str]) -> tuple[int, Any, dict[str, str]]:
        """GET a workflow run attempt: needs Actions: read on the repository (404 without, as GitHub
        hides what a token may not read)."""
        repo = self.repos.get(m.group(1).lower())
        key = (m.group(1).lower(), int(m.group(2)), int(m.group(3)))
        if repo is None or not token.sees(repo) or not token.actions_read or key not in self.runs:
            return 404, {"message": "Not Found"}, {}
        status = self.runs[key]
        api = f"{self.url}/repos/{repo.name}/actions/runs/{key[1]}"
        body = {
            "id": key[1],
            "name": "deliver",
            "node_id": f"WFR_{key[1]}",
            "run_attempt": key[2],
            "run_number": 7,
            "status": status,
            "conclusion": "cancelled" if status == "completed" else None,
            "created_at": self.now(),
            "updated_at": self.now(),
            "display_title": "deliver",
            "event": "push",
            "head_branch": "main",
            "head_sha": "0" * 40,
            "head_commit": None,
            "head_repository": self._repository(repo),
            "repository": self._repository(repo),
            "path": ".github/workflows/deliver.yml",
            "pull_requests": [],
            "workflow_id": 1,
            "url": api,
            "html_url": f"https://github.com/{repo.name}/actions/runs/{key[1]}",
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "artifacts_url": f"{api}/artifacts",
            "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun",
            "check_suite_url": f"{self.url}/repos/{repo.name}/check-suites/1",
            "workflow_url": f"{self.url}/repos/{repo.name}/actions/workflows/1",
        }
        return 200, body, {}

    def _route_repo(self, token: Token, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        run = RUN_ATTEMPT.match(path)
        if run and method == "GET":
            return self._run_attempt(token, run)
        m = REPO.match(path) or ENVIRONMENT.match(path)
        if not m:
            return 404, {"message": "Not Found"}, {}
        repo = self.repos.get(m.group(1).lower())
        if repo is None or not token.sees(repo):
            return 404, {"message": "Not Found"}, {}
        if m.re is REPO:
            return 200, self._full_repository(repo), {}
        name = unquote(m.group(2))
        env = repo.environments.get(name.lower())
        if method == "GET":
            return (
                (404, {"message": "Not Found"}, {})
                if env is None
                else (200, self._environment(repo, env), {})
            )
        if not token.admin:
            return 403, {"message": "Resource not accessible by personal access token"}, {}
        if len(name) > 255 or not name.strip() or any(ord(c) < 32 for c in name):
            return 422, {"message": f"Validation Failed: environment name '{name}' is invalid"}, {}
        if env is None:
            env = repo.environments[name.lower()] = Box(name=name, created_at=self.now())
        return 200, self._environment(repo, env), {}

    def _secret(self, box: Box, method: str, name: str, data: Any, org: bool) -> tuple[int, Any]:
        if method == "GET":
            s = box.secrets.get(name)
            if s is None:
                return 404, {"message": "Not Found"}
            out = {"name": name, "created_at": s.created_at or s.updated_at, "updated_at": s.updated_at}
            if not org:
                return 200, out
            out["visibility"] = s.visibility
            if s.visibility == "selected":
                out["selected_repositories_url"] = (
                    f"{self.url}/orgs/{box.name}/actions/secrets/{name}/repositories"
                )
            return 200, out
        if method == "DELETE":
            if box.secrets.pop(name, None) is None:
                return 404, {"message": "Not Found"}
            return 204, None
        sealed, key_id = data["encrypted_value"], data["key_id"]
        try:
            SealedBox(box.private_key).decrypt(base64.b64decode(sealed))
        except Exception:  # noqa: BLE001 - GitHub refuses what its key cannot open
            return 422, {"message": "Bad request: encrypted_value must be sealed with the public key"}
        if key_id != box.key_id:
            return 422, {"message": "key_id does not match the public key"}
        visibility, selected = "", []
        if org:
            visibility = data["visibility"]
            selected = list(data.get("selected_repository_ids", []))
            if selected and visibility != "selected":
                return 422, {"message": "selected_repository_ids needs visibility 'selected'"}
            if any(not self._has_repo(i) for i in selected):
                return 422, {"message": "unknown repository id"}
        old = box.secrets.get(name)
        kind = "organization" if org else "repository" if isinstance(box, Repo) else "environment"
        if old is None and len(box.secrets) >= SECRET_LIMITS[kind]:
            return 422, {"message": f"Secret limit reached: at most {SECRET_LIMITS[kind]} secrets per {kind}"}
        now = self.now()
        box.secrets[name] = Secret(sealed, key_id, now, visibility, selected, old.created_at if old else now)
        return (201, {}) if old is None else (204, None)

    def _variable(self, box: Box, method: str, m: re.Match[str], data: Any) -> tuple[int, Any]:
        org = bool(m.group("org"))
        if m.re is VARIABLES:
            name = str(data["name"]).upper()
            if name in box.variables:
                return 409, {"message": "Already exists - Variable already exists"}
            now = self.now()
            selected = list(data.get("selected_repository_ids", []))
            if any(not self._has_repo(i) for i in selected):
                return 422, {"message": "unknown repository id"}
            box.variables[name] = Variable(str(data["value"]), now, data.get("visibility", ""), selected, now)
            return 201, {}
        name = unquote(m.group("name")).upper()
        v = box.variables.get(name)
        if v is None:
            return 404, {"message": "Not Found"}
        if method == "GET":
            out = {"name": name, "value": v.value, "created_at": v.created_at, "updated_at": v.updated_at}
            return 200, {**out, "visibility": v.visibility} if org else out
        v.value = str(data.get("value", v.value))
        if org:
            v.visibility = data.get("visibility", v.visibility)
            v.selected = list(data.get("selected_repository_ids", v.selected))
        v.updated_at = self.now()
        return 204, None
