"""A fork server for the action's runs: one process per test worker imports the action and its SDKs once
(botocore, PyGithub, PyNaCl: about 0.3 s of CPU saved per run here), then forks a child per run. The child
is a process of its own, as the runner's is: its own environment (INPUT_*, GITHUB_OUTPUT, ...), working
folder, argv, stdin from /dev/null, stdout and stderr on the test's pipes, its own signals and exit status.
What it does not repeat is the import (the action does no work at import time) and the hash seed.

Real interpreters still run: harness.PLAIN (a fresh run, a cancellation and the concurrency matrix use it),
the container scenarios, the wheel's console script and the command line; ECR_BOOTSTRAP_TEST_FORK=0 makes
every run one."""

from __future__ import annotations

import array
import atexit
import contextlib
import io
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def enabled() -> bool:
    return os.environ.get("ECR_BOOTSTRAP_TEST_FORK", "1") != "0"


# --- the server (its own process: no threads, so a fork copies no held lock) ---


def _preload() -> None:
    import pkgutil

    sys.path.insert(0, str(ROOT / "src"))
    # What a run imports when it first needs AWS or GitHub (imported lazily by the action, so that a run
    # that fails its input checks never pays for them): PyGithub with requests, PyNaCl, botocore.
    import botocore.session  # noqa: F401
    import github  # noqa: F401
    import nacl.public  # noqa: F401
    import requests  # noqa: F401

    import ecr_bootstrap

    for module in pkgutil.walk_packages(ecr_bootstrap.__path__, "ecr_bootstrap."):
        if not module.name.endswith(".__main__"):  # that one runs the program
            __import__(module.name)


def _child(request: dict[str, Any], out: int, err: int) -> None:
    """Become the run: never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, 1 << 16)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        tempfile.tempdir = None
        unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        out_file = io.FileIO(1, "w", closefd=False)
        sys.stdout = io.TextIOWrapper(out_file, encoding="utf-8", write_through=unbuffered)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
        )
        sys.argv = request["argv"][1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as stop:  # as the interpreter turns SystemExit into a status
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:  # as the interpreter: the traceback, then death by SIGINT
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # noqa: BLE001 - as the interpreter prints an uncaught exception and exits 1
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader that went away
                stream.flush()
        os._exit(code)


def serve(path: str) -> None:
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    selector.register(0, selectors.EVENT_READ)  # end of input: the test worker is gone
    running: dict[int, socket.socket] = {}  # not yet reaped, so the pid is still the run's
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                data, fds = _receive(conn)
                pid = os.fork()
                if pid == 0:
                    _child(json.loads(data), *fds)
                for fd in fds:
                    os.close(fd)
                running[pid] = conn
                selector.register(conn, selectors.EVENT_READ, pid)
                _tell(conn, {"pid": pid})
            elif key.fd == 0:
                if not os.read(0, 4096):
                    return
            elif key.fd == wake_r:
                os.read(wake_r, 4096)
            else:
                _order(selector, key, running)
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = running.pop(pid)
            # Closed once the test closes its end (_order), or already; closing it here could leave a signal
            # the test sent meanwhile unread, and a Unix socket closed with unread data resets its peer,
            # whose status would then be lost.
            if conn.fileno() >= 0 and not _tell(conn, {"status": os.waitstatus_to_exitcode(status)}):
                selector.unregister(conn)
                conn.close()


def _order(
    selector: selectors.BaseSelector, key: selectors.SelectorKey, running: dict[int, socket.socket]
) -> None:
    """A signal for a run from its test, sent here so that it reaches only a run not yet reaped; a test that
    went away (its connection closed) leaves no run behind."""
    conn, pid = key.fileobj, key.data
    assert isinstance(conn, socket.socket)
    try:
        message = conn.recv(4096)
    except ConnectionResetError:  # the test's end closed with the status unread: gone all the same
        message = b""
    if pid in running:
        os.kill(pid, json.loads(message)["signal"] if message else signal.SIGKILL)
    if not message:
        selector.unregister(conn)
        conn.close()


def _tell(conn: socket.socket, message: dict[str, int]) -> bool:
    """Whether the test's end is still there to be told."""
    try:
        conn.send(json.dumps(message).encode())
    except OSError:
        return False
    return True


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = conn.recvmsg(1 << 20, socket.CMSG_LEN(2 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


# --- the test's side ---

_lock = threading.Lock()
_server: dict[str, Any] = {}


def _address() -> str:
    """The worker's server, started on first use and ended with the worker."""
    with _lock:
        if "path" not in _server:
            folder = tempfile.mkdtemp(prefix="ecr-fork-")
            path = os.path.join(folder, "socket")
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.stand_ins.forkserver", path],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stdin=subprocess.PIPE,  # closed when this worker ends, however it ends: then the server ends
                text=True,
            )
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the fork server did not start; ECR_BOOTSTRAP_TEST_FORK=0 runs without it")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            atexit.register(proc.communicate)
            _server.update(path=path, proc=proc)
        return str(_server["path"])


class Forked:
    """What the harness uses of subprocess.Popen (text mode), for a run forked by the server."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self._argv = argv
        self._pipes = {out_r: bytearray(), err_r: bytearray()}  # stdout's, then stderr's
        self._open = {out_r, err_r}
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._conn.connect(_address())
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
        fds = array.array("i", [out_w, err_w])
        self._conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        os.close(out_w)
        os.close(err_w)
        self.pid: int = json.loads(self._conn.recv(4096))["pid"]
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._conn.setblocking(False)
            try:
                self._status(self._conn.recv(4096))
            except BlockingIOError:
                pass
            finally:
                if self.returncode is None:
                    self._conn.setblocking(True)
        return self.returncode

    def _status(self, data: bytes) -> None:
        if not data:
            raise RuntimeError("the fork server ended before the run did")
        self.returncode = json.loads(data)["status"]
        self._conn.close()

    def send_signal(self, signum: int) -> None:
        """Through the server, which signals the run only while it is not reaped (its pid still its own)."""
        if self.poll() is None:
            with contextlib.suppress(OSError):
                self._conn.send(json.dumps({"signal": int(signum)}).encode())

    def __del__(self) -> None:
        """A run dropped unfinished (a test that failed between start and wait) is killed by the server."""
        for fd in getattr(self, "_open", ()):
            os.close(fd)
        self._open = set()
        if hasattr(self, "_conn"):
            self._conn.close()

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for fd in self._open:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self._argv, timeout or 0)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        self._pipes[key.fd] += chunk
                    else:
                        selector.unregister(key.fd)
                        self._open.discard(key.fd)
                        os.close(key.fd)
        if self.returncode is None:
            self._conn.settimeout(None if deadline is None else max(0.0, deadline - time.monotonic()))
            try:
                self._status(self._conn.recv(4096))
            except TimeoutError:
                raise subprocess.TimeoutExpired(self._argv, timeout or 0) from None
        out, err = (_text(bytes(data)) for data in self._pipes.values())
        return out, err


def _text(data: bytes) -> str:
    """As Popen(text=True) decodes: the locale's encoding (UTF-8 here) with universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


if __name__ == "__main__":
    serve(sys.argv[1])
