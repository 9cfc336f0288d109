"""AWS on loopback: a moto server, behind a small proxy of ours that records each operation and can fail
chosen ones (IAM/STS name the operation in the form body's Action=, ECR in the X-Amz-Target header)."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class AwsFault:
    operation: str  # e.g. "iam:CreateAccessKey"
    code: str = "Throttling"
    status: int = 400
    times: int = 1  # -1: every time
    except_key: str = ""  # leave requests signed with this access key alone
    after: int = 0  # let this many matching requests through first
    hits: int = 0
    # status -1: hold the request until `release` is set (a test kills the client meanwhile), then drop it
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class AwsCall:
    operation: str
    status: int
    access_key: str = ""
    start: float = 0.0  # monotonic: request received
    end: float = 0.0  # monotonic: answer ready


def _service(headers: Any) -> str:
    auth = headers.get("Authorization", "")
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", auth)
    return m.group(1) if m else ""


def _access_key(headers: Any) -> str:
    m = re.search(r"Credential=([^/]+)/", headers.get("Authorization", ""))
    return m.group(1) if m else ""


def operation_of(headers: Any, body: bytes) -> str:
    service = _service(headers)
    target = headers.get("X-Amz-Target", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return f"{service}:{action}"


@dataclass
class AwsProxy:
    upstream: str  # host:port of the moto server
    log: list[AwsCall] = field(default_factory=list)
    faults: list[AwsFault] = field(default_factory=list)
    latency: float = 0.0  # seconds added to every request (the benchmark's simulated network)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, operation: str, **kwargs: Any) -> AwsFault:
        fault = AwsFault(operation, **kwargs)
        self.faults.append(fault)
        return fault

    def operations(self) -> list[str]:
        return [c.operation for c in self.log]

    def start(self) -> AwsProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stall

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _fault_for(self, operation: str, key: str) -> AwsFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.except_key and fault.except_key == key:
                    continue
                if fault.operation == operation and fault.times != 0:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.hits += 1
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        start = time.monotonic()
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        operation = operation_of(h.headers, body)
        if self.latency:
            time.sleep(self.latency)
        fault = self._fault_for(operation, _access_key(h.headers))
        if fault is not None:
            self._answer_fault(h, fault, operation)
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() != "connection"}
        conn.request(h.command, h.path, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        with self._lock:
            self.log.append(AwsCall(operation, reply.status, _access_key(h.headers), start, time.monotonic()))
        h.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        conn.close()

    def _answer_fault(self, h: BaseHTTPRequestHandler, fault: AwsFault, operation: str) -> None:
        with self._lock:
            self.log.append(AwsCall(operation, fault.status, _access_key(h.headers)))
        if fault.status == -1:
            fault.held.set()
            fault.release.wait(60)
        if fault.status in (0, -1):
            h.close_connection = True
            h.connection.close()
            return
        if h.headers.get("X-Amz-Target"):
            data = json.dumps({"__type": fault.code, "message": "injected fault"}).encode()
            ctype = "application/x-amz-json-1.1"
        else:
            data = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{fault.code}</Code>"
                f"<Message>injected fault</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            ).encode()
            ctype = "text/xml"
        h.send_response(fault.status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
