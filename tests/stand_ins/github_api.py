"""A GitHub REST API stand-in on loopback: the Actions-secrets endpoints the action uses.

Real HTTP, a real libsodium key pair per repository, tokens with or without the secrets permission,
fault injection per request, and a record of every request. Tests decrypt what was stored.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from nacl.public import PrivateKey, SealedBox

# A "box" is where secrets and variables live: a repository, one of its environments, or an organization.
BOX = r"(/repos/(?P<repo>[^/]+/[^/]+)(?:/actions|/environments/(?P<env>[^/]+))|/orgs/(?P<org>[^/]+)/actions)"
PUBLIC_KEY = re.compile(rf"^{BOX}/secrets/public-key$")
SECRET = re.compile(rf"^{BOX}/secrets/(?P<name>[^/]+)$")
SELECTED = re.compile(rf"^{BOX}/(?P<what>secrets|variables)/(?P<name>[^/]+)/repositories$")
VARIABLES = re.compile(rf"^{BOX}/variables$")
VARIABLE = re.compile(rf"^{BOX}/variables/(?P<name>[^/]+)$")
REPO = re.compile(r"^/repos/([^/]+/[^/]+)$")
ENVIRONMENT = re.compile(r"^/repos/([^/]+/[^/]+)/environments/([^/]+)$")
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@dataclass
class Secret:
    sealed: str
    key_id: str
    updated_at: str
    visibility: str = ""  # organization secrets
    selected: list[int] = field(default_factory=list)


@dataclass
class Variable:
    value: str
    updated_at: str
    visibility: str = ""
    selected: list[int] = field(default_factory=list)


@dataclass
class Box:
    private_key: PrivateKey = field(default_factory=PrivateKey.generate)
    key_id: str = field(default_factory=lambda: str(secrets.randbelow(10**18)))
    secrets: dict[str, Secret] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)


@dataclass
class Repo(Box):
    name: str = ""
    id: int = field(default_factory=lambda: 10**6 + secrets.randbelow(10**8))
    owner_id: int = 0
    environments: dict[str, Box] = field(default_factory=dict)


@dataclass
class Token:
    repos: set[str] | None = None  # None: every repository
    secrets_permission: bool = True
    integration: bool = False  # a GITHUB_TOKEN-like installation token
    admin: bool = True  # may create environments (Administration: write)
    orgs: set[str] | None = None  # organizations whose secrets it may write; None: every one


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


@dataclass
class SecondaryLimit:
    """GitHub's secondary rate limit for REST: points per sliding window per token (GET 1, writes 5)."""

    points: int = 900
    window: float = 60.0
    spent: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    refusals: int = 0

    def take(self, token: str, method: str, now: float) -> float:
        """0 when the request may go; otherwise the seconds until it could (its Retry-After)."""
        cost = 1 if method in ("GET", "HEAD") else 5
        log = [(t, c) for t, c in self.spent.get(token, []) if now - t < self.window]
        used = sum(c for _, c in log)
        if used + cost > self.points:
            free, wait = used + cost - self.points, 0.0
            for t, c in log:
                free -= c
                wait = t + self.window - now
                if free <= 0:
                    break
            self.refusals += 1
            self.spent[token] = log
            return max(wait, 0.001)
        log.append((now, cost))
        self.spent[token] = log
        return 0.0


class GitHubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.orgs: dict[str, Box] = {}
        self.owner_ids: dict[str, int] = {}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        self.log: list[Request] = []
        self.latency = 0.0  # seconds added to every request (the benchmark's simulated network)
        self.limit: SecondaryLimit | None = None  # GitHub's secondary rate limit, when set
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up -------------------------------------------------------------------------------------

    def add_repo(self, name: str, environments: tuple[str, ...] = ()) -> Repo:
        owner = name.split("/", maxsplit=1)[0].lower()
        owner_id = self.owner_ids.setdefault(owner, 1000 + len(self.owner_ids))
        repo = Repo(name=name, owner_id=owner_id)
        for env in environments:
            repo.environments[env.lower()] = Box()
        self.repos[name.lower()] = repo
        return repo

    def add_org(self, name: str) -> Box:
        self.owner_ids.setdefault(name.lower(), 1000 + len(self.owner_ids))
        return self.orgs.setdefault(name.lower(), Box())

    def box(self, repo: str = "", environment: str = "", org: str = "") -> Box:
        if org:
            return self.orgs[org.lower()]
        r = self.repos[repo.lower()]
        return r.environments[environment.lower()] if environment else r

    def decrypt_in(self, box: Box, name: str) -> str:
        return SealedBox(box.private_key).decrypt(base64.b64decode(box.secrets[name].sealed)).decode()

    def repo_by_id(self, repo_id: int) -> str:
        return next(r.name for r in self.repos.values() if r.id == repo_id)

    def add_token(self, **kwargs: Any) -> str:
        token = "ghp_" + secrets.token_hex(18)
        self.tokens[token] = Token(**kwargs)
        return token

    def fail(self, method: str, path: str, **kwargs: Any) -> Fault:
        fault = Fault(method, path, **kwargs)
        self.faults.append(fault)
        return fault

    def reset_log(self) -> None:
        self.log.clear()

    # -- what tests read back -----------------------------------------------------------------------

    def decrypt(self, repo: str, name: str) -> str:
        return self.decrypt_in(self.repos[repo.lower()], name)

    def secret_names(self, repo: str) -> set[str]:
        return set(self.repos[repo.lower()].secrets)

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

            def _handle(self) -> None:
                stand_in._dispatch(self)

            do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _handle

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
        path = h.path.split("?", 1)[0]
        if path.startswith(("http://", "https://")):  # an absolute-URL request line (via HTTP_PROXY)
            path = "/" + path.split("://", 1)[1].partition("/")[2]
            path = path.removeprefix("/api/v3")
        if self.latency:
            time.sleep(self.latency)
        if self.limit is not None:
            auth = h.headers.get("Authorization", "")
            with self._lock:
                wait = self.limit.take(auth, h.command, time.monotonic())
            if wait:
                self._record(h.command, path, 403, start)
                retry = str(max(1, round(wait + 0.499)))
                self._send(h, 403, {"message": SECONDARY}, {"Retry-After": retry})
                return
        fault = self._match_fault(h.command, path)
        if fault is not None and fault.slow > 0:
            status, payload = self._route(h, path, body)
            self._record(h.command, path, status, start)
            time.sleep(fault.slow)  # past the client's timeout: it cannot know whether this landed
            with contextlib.suppress(OSError):  # the client gave up and closed the connection
                self._send(h, status, payload)
            return
        if fault is not None and fault.echo:
            fault.echoed.append(self._unseal(path, body))
            fault = Fault(**{**fault.__dict__, "message": f"{fault.message}: {fault.echoed[-1]}"})
        if fault is not None and not fault.apply_first:
            self._answer_fault(h, fault, path)
            return
        status, payload = self._route(h, path, body)
        if fault is not None:
            self._answer_fault(h, fault, path)
            return
        self._record(h.command, path, status, start)
        self._send(h, status, payload)

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

    def _answer_fault(self, h: BaseHTTPRequestHandler, fault: Fault, path: str) -> None:
        self._record(h.command, path, fault.status)
        if fault.status == -1:
            fault.held.set()
            fault.release.wait(60)
        if fault.status in (0, -1):
            h.close_connection = True
            h.connection.close()  # the client sees a reset / remote disconnect
            return
        self._send(h, fault.status, {"message": fault.message}, fault.headers)

    def _record(self, method: str, path: str, status: int, start: float = 0.0) -> None:
        with self._lock:
            now = time.monotonic()
            self.log.append(Request(method, path, status, now, start or now))

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        if data:
            h.wfile.write(data)

    def _box(self, m: re.Match[str]) -> Box | None:
        if m.group("org"):
            return self.orgs.get(m.group("org").lower())
        repo = self.repos.get(m.group("repo").lower())
        if repo is None or not m.group("env"):
            return repo
        return repo.environments.get(unquote(m.group("env")).lower())

    def _route(self, h: BaseHTTPRequestHandler, path: str, body: bytes) -> tuple[int, Any]:
        auth = h.headers.get("Authorization", "")
        token = self.tokens.get(auth.split(" ", 1)[1] if " " in auth else "")
        if token is None:
            return 401, {"message": "Bad credentials"}
        method = h.command
        m = (
            PUBLIC_KEY.match(path)
            or SELECTED.match(path)
            or SECRET.match(path)
            or VARIABLES.match(path)
            or VARIABLE.match(path)
        )
        with self._lock:
            if m is None:
                return self._route_repo(token, method, path)
            if m.group("org"):
                org = m.group("org").lower()
                if org not in self.orgs or (token.orgs is not None and org not in token.orgs):
                    return 404, {"message": "Not Found"}
            else:
                name = m.group("repo").lower()
                if name not in self.repos or (token.repos is not None and name not in token.repos):
                    return 404, {"message": "Not Found"}
            box = self._box(m)
            if box is None:
                return 404, {"message": "Not Found"}
            if not token.secrets_permission:
                return 403, {
                    "message": "Resource not accessible by integration"
                    if token.integration
                    else "Resource not accessible by personal access token"
                }
            data = json.loads(body) if body else {}
            if m.re is PUBLIC_KEY:
                if method != "GET":
                    return 405, {"message": "Method Not Allowed"}
                public = base64.b64encode(bytes(box.private_key.public_key)).decode()
                return 200, {"key_id": box.key_id, "key": public}
            if m.re is SELECTED:
                item = (box.secrets if m.group("what") == "secrets" else box.variables).get(
                    m.group("name").upper()
                )
                if item is None or method != "GET":
                    return 404, {"message": "Not Found"}
                repos = [{"id": i, "full_name": self.repo_by_id(i)} for i in item.selected]
                return 200, {"total_count": len(repos), "repositories": repos}
            if m.re is SECRET:
                return self._secret(box, method, m.group("name").upper(), data, bool(m.group("org")))
            return self._variable(box, method, m, data)

    def _route_repo(self, token: Token, method: str, path: str) -> tuple[int, Any]:
        m = REPO.match(path) or ENVIRONMENT.match(path)
        if not m:
            return 404, {"message": "Not Found"}
        repo = self.repos.get(m.group(1).lower())
        if repo is None or (token.repos is not None and m.group(1).lower() not in token.repos):
            return 404, {"message": "Not Found"}
        if m.re is REPO:
            if method != "GET":
                return 405, {"message": "Method Not Allowed"}
            return 200, {"id": repo.id, "full_name": repo.name, "owner": {"id": repo.owner_id}}
        env = unquote(m.group(2))
        if method == "GET":
            if env.lower() not in repo.environments:
                return 404, {"message": "Not Found"}
            return 200, {"name": env}
        if method != "PUT":
            return 405, {"message": "Method Not Allowed"}
        if not token.admin:
            return 403, {"message": "Resource not accessible by personal access token"}
        repo.environments.setdefault(env.lower(), Box())
        return 200, {"name": env}

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _secret(self, box: Box, method: str, name: str, data: Any, org: bool) -> tuple[int, Any]:
        if method == "GET":
            s = box.secrets.get(name)
            if s is None:
                return 404, {"message": "Not Found"}
            out = {"name": name, "created_at": s.updated_at, "updated_at": s.updated_at}
            return 200, {**out, "visibility": s.visibility} if org else out
        if method == "DELETE":
            if box.secrets.pop(name, None) is None:
                return 404, {"message": "Not Found"}
            return 204, None
        if method != "PUT":
            return 405, {"message": "Method Not Allowed"}
        try:
            sealed, key_id = data["encrypted_value"], data["key_id"]
            SealedBox(box.private_key).decrypt(base64.b64decode(sealed))
        except Exception:  # noqa: BLE001 - any malformed body is GitHub's 422
            return 422, {"message": "Bad request: encrypted_value must be sealed with the public key"}
        if key_id != box.key_id:
            return 422, {"message": "key_id does not match the public key"}
        visibility, selected = "", []
        if org:
            visibility = data.get("visibility", "")
            if visibility not in ("all", "private", "selected"):
                return 422, {"message": "visibility must be all, private or selected"}
            selected = list(data.get("selected_repository_ids", []))
            if visibility == "selected" and any(
                not any(r.id == i for r in self.repos.values()) for i in selected
            ):
                return 422, {"message": "unknown repository id"}
        created = name not in box.secrets
        box.secrets[name] = Secret(sealed, key_id, self._now(), visibility, selected)
        return (201, {}) if created else (204, None)

    def _variable(self, box: Box, method: str, m: re.Match[str], data: Any) -> tuple[int, Any]:
        org = bool(m.group("org"))
        if m.re is VARIABLES:
            if method != "POST":
                return 405, {"message": "Method Not Allowed"}
            name = str(data.get("name", "")).upper()
            if not name or name in box.variables:
                return 409, {"message": "Already exists"}
            box.variables[name] = Variable(
                str(data["value"]),
                self._now(),
                data.get("visibility", ""),
                list(data.get("selected_repository_ids", [])),
            )
            return 201, {}
        name = m.group("name").upper()
        v = box.variables.get(name)
        if v is None:
            return 404, {"message": "Not Found"}
        if method == "GET":
            return 200, {"name": name, "value": v.value, "updated_at": v.updated_at}
        if method != "PATCH":
            return 405, {"message": "Method Not Allowed"}
        v.value = str(data.get("value", v.value))
        if org:
            v.visibility = data.get("visibility", v.visibility)
            v.selected = list(data.get("selected_repository_ids", v.selected))
        v.updated_at = self._now()
        return 204, None
