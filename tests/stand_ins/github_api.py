"""A GitHub REST API stand-in on loopback: the Actions-secrets endpoints the action uses.

Real HTTP, a real libsodium key pair per repository, tokens with or without the secrets permission,
fault injection per request, and a record of every request. Tests decrypt what was stored.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nacl.public import PrivateKey, SealedBox

PUBLIC_KEY = re.compile(r"^/repos/([^/]+/[^/]+)/actions/secrets/public-key$")
SECRET = re.compile(r"^/repos/([^/]+/[^/]+)/actions/secrets/([^/]+)$")
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@dataclass
class Secret:
    sealed: str
    key_id: str
    updated_at: str


@dataclass
class Repo:
    name: str
    private_key: PrivateKey = field(default_factory=PrivateKey.generate)
    key_id: str = field(default_factory=lambda: str(secrets.randbelow(10**18)))
    secrets: dict[str, Secret] = field(default_factory=dict)


@dataclass
class Token:
    repos: set[str] | None = None  # None: every repository
    secrets_permission: bool = True
    integration: bool = False  # a GITHUB_TOKEN-like installation token


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
    at: float


class GitHubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up -------------------------------------------------------------------------------------

    def add_repo(self, name: str) -> Repo:
        repo = Repo(name)
        self.repos[name.lower()] = repo
        return repo

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
        r = self.repos[repo.lower()]
        sealed = base64.b64decode(r.secrets[name].sealed)
        return SealedBox(r.private_key).decrypt(sealed).decode()

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
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        fault = self._match_fault(h.command, path)
        if fault is not None and fault.slow > 0:
            status, payload = self._route(h, path, body)
            self._record(h.command, path, status)
            time.sleep(fault.slow)  # past the client's timeout: it cannot know whether this landed
            try:
                self._send(h, status, payload)
            except OSError:
                pass  # the client gave up and closed the connection
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
        self._record(h.command, path, status)
        self._send(h, status, payload)

    def _unseal(self, path: str, body: bytes) -> str:
        m = SECRET.match(path)
        try:
            repo = self.repos[m.group(1).lower()] if m else None
            sealed = base64.b64decode(json.loads(body)["encrypted_value"])
            return SealedBox(repo.private_key).decrypt(sealed).decode() if repo else ""
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

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append(Request(method, path, status, time.monotonic()))

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

    def _route(self, h: BaseHTTPRequestHandler, path: str, body: bytes) -> tuple[int, Any]:
        auth = h.headers.get("Authorization", "")
        token = self.tokens.get(auth.split(" ", 1)[1] if " " in auth else "")
        if token is None:
            return 401, {"message": "Bad credentials"}
        m = PUBLIC_KEY.match(path) or SECRET.match(path)
        if not m:
            return 404, {"message": "Not Found"}
        repo = self.repos.get(m.group(1).lower())
        if repo is None or (token.repos is not None and m.group(1).lower() not in token.repos):
            return 404, {"message": "Not Found"}
        if not token.secrets_permission:
            return 403, {
                "message": "Resource not accessible by integration"
                if token.integration
                else "Resource not accessible by personal access token"
            }
        with self._lock:
            if PUBLIC_KEY.match(path):
                if h.command != "GET":
                    return 405, {"message": "Method Not Allowed"}
                public = base64.b64encode(bytes(repo.private_key.public_key)).decode()
                return 200, {"key_id": repo.key_id, "key": public}
            name = m.group(2).upper()
            if h.command == "GET":
                s = repo.secrets.get(name)
                if s is None:
                    return 404, {"message": "Not Found"}
                return 200, {"name": name, "created_at": s.updated_at, "updated_at": s.updated_at}
            if h.command == "DELETE":
                if repo.secrets.pop(name, None) is None:
                    return 404, {"message": "Not Found"}
                return 204, None
            if h.command != "PUT":
                return 405, {"message": "Method Not Allowed"}
            try:
                data = json.loads(body)
                sealed, key_id = data["encrypted_value"], data["key_id"]
                SealedBox(repo.private_key).decrypt(base64.b64decode(sealed))
            except Exception:  # noqa: BLE001 - any malformed body is GitHub's 422
                return 422, {"message": "Bad request: encrypted_value must be sealed with the public key"}
            if key_id != repo.key_id:
                return 422, {"message": "key_id does not match the repository's public key"}
            created = name not in repo.secrets
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            repo.secrets[name] = Secret(sealed, key_id, now)
            return (201, {}) if created else (204, None)
