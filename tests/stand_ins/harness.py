"""Starts the loopback stand-ins and runs the action the way the runner does: a process of its own with
INPUT_* variables filled from action.yml's defaults, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_API_URL
(forked from a server that has imported the action once: forkserver.py)."""

from __future__ import annotations

import copy
import copyreg
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import forkserver
from .aws import AwsProxy, keep_user_boundaries
from .github_api import GitHubStandIn

ROOT = forkserver.ROOT
REGION = "us-east-1"
# A fresh interpreter for a run (`command=PLAIN`), where forking from the server could hide something: the
# start-up itself, a signal during it, a hash seed of its own (forkserver.py).
PLAIN = [sys.executable, str(ROOT / "entrypoint.py")]


@functools.cache
def _action_inputs() -> dict[str, Any]:
    inputs: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    return inputs


def action_defaults(repository: str) -> dict[str, str]:
    out = {}
    for name, meta in _action_inputs().items():
        default = str(meta.get("default", ""))
        out[name] = default.replace("${{ github.repository }}", repository)
    return out


# What a snapshot holds: moto's services the action uses, and the stand-ins' state (not their faults, logs
# or servers).
MOTO_SERVICES = ("iam", "ecr", "sts", "kms")
PROXY_STATE = ("issued", "views", "offsets", "lag", "skew")
GITHUB_STATE = ("repos", "orgs", "owner_ids", "tokens", "runs", "skew", "date_offset")


@dataclass(frozen=True)
class Snapshot:
    moto: dict[str, dict[str, Any]]
    aws: dict[str, Any]
    github: dict[str, Any]
    taken: float  # time.time()


def _backend(service: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)  # type: ignore[call-overload]


def _fresh(lock: Any) -> tuple[Any, tuple[()]]:
    return (threading.RLock if "RLock" in type(lock).__name__ else threading.Lock), ()


def _copyable_locks() -> None:
    """moto's backends hold locks; a copy gets fresh ones (no thread holds them between runs)."""
    for lock_type in (type(threading.Lock()), type(threading.RLock())):
        copyreg.pickle(lock_type, _fresh)


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    @property
    def masked(self) -> set[str]:
        return {
            line.split("::add-mask::", 1)[1]
            for line in self.stdout.splitlines()
            if line.startswith("::add-mask::")
        }

    def errors(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error")]


def parse_outputs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delimiter = line.split("<<", 1)
            collected = []
            for inner in lines:
                if inner == delimiter:
                    break
                collected.append(inner)
            out[name] = "\n".join(collected)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def _moto_services_listed_once() -> None:
    """moto's server finds a request's service by listing its own package folder (a stat of each of
    about 200 entries) on every request: the same answer every time, so it is listed once."""
    from moto import backends

    if not isinstance(backends.list_of_moto_modules, functools.partial):
        backends.list_of_moto_modules = functools.partial(tuple, tuple(backends.list_of_moto_modules()))


class Stack:
    """moto (behind the recording proxy) and the GitHub stand-in, all on 127.0.0.1."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer
        from werkzeug.serving import WSGIRequestHandler

        # Without TCP_NODELAY, a reply written as headers then body waits for a delayed ACK (~40 ms).
        WSGIRequestHandler.disable_nagle_algorithm = True

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

        keep_user_boundaries()
        _moto_services_listed_once()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self.aws = AwsProxy(f"{host}:{port}").start()
        self.github = GitHubStandIn().start()
        self._session: Any = None
        self._clients: dict[tuple[Any, ...], Any] = {}

    def reset(self) -> None:
        req = urllib.request.Request(self.moto_url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req).read()
        self.aws.log.clear()
        self.aws.faults.clear()
        self.aws.views.clear()
        self.aws.lag = self.aws.skew = 0.0
        self.aws.propagation = 0.0
        self.aws.pending.clear()
        self.aws.offsets.clear()
        self.aws.short_pages.clear()
        self.aws.record_views, self.aws.pinned = False, {}
        old = self.github
        self.github = GitHubStandIn().start()
        old.stop()

    def snapshot(self) -> Snapshot:
        """Everything a run left in the stand-ins (moto's accounts, the proxy's memory of issued keys and
        of IAM's lagging views, GitHub's repositories and tokens), so that many tests can start from the
        state one run made without making it again: what they check is the next run, not this one."""
        _copyable_locks()
        github = {name: copy.deepcopy(getattr(self.github, name)) for name in GITHUB_STATE}
        aws = {name: copy.deepcopy(getattr(self.aws, name)) for name in PROXY_STATE}
        moto = {n: copy.deepcopy(dict(_backend(n))) for n in MOTO_SERVICES}
        return Snapshot(moto, aws, github, time.time())

    def restore(self, snap: Snapshot) -> None:
        """The state of `snap`, as if the run that made it had just ended."""
        self.reset()
        for name, state in snap.moto.items():
            backend = _backend(name)
            backend.clear()
            backend.update(copy.deepcopy(state))
        for name, value in snap.aws.items():
            setattr(self.aws, name, copy.deepcopy(value))
        for name, value in snap.github.items():
            setattr(self.github, name, copy.deepcopy(value))
        # Their clocks go back to when the snapshot was taken: the next run comes right after that one
        # (the same second on GitHub, IAM's lag not yet over), as it would have without the snapshot.
        self.advance(snap.taken - time.time())

    def advance(self, seconds: float) -> None:
        """Time passes at once for AWS and GitHub alike (leases end, IAM's reads catch up, timestamps
        move on), instead of a sleep whose outcome depends on how fast this machine is. The action's own
        clock is not moved: it only bounds the action's own waits."""
        self.aws.advance(seconds)
        self.github.advance(seconds)

    def stop(self) -> None:
        self.github.stop()
        self.aws.stop()
        self.moto.stop()

    def boto(self, service: str, **kwargs: Any) -> Any:
        """A client on moto, made once per service and credentials from one botocore session (a new
        session per client loads the service models again: a tenth of a second of CPU each time)."""
        import botocore.session

        creds: dict[str, Any] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        creds.update(kwargs)
        key = (service, *sorted(creds.items()))
        if key not in self._clients:
            if self._session is None:
                self._session = botocore.session.get_session()
            self._clients[key] = self._session.create_client(
                service, region_name=REGION, endpoint_url=self.moto_url, **creds
            )
        return self._clients[key]

    def env(self, workdir: Path, repository: str = "octo-org/app") -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")}
        return {
            **keep,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.aws.url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "GITHUB_API_URL": self.github.url,
            "GITHUB_REPOSITORY": repository,
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(workdir / "output"),
            "GITHUB_STEP_SUMMARY": str(workdir / "summary"),
            "PYTHONUNBUFFERED": "1",
        }

    def start(
        self,
        inputs: dict[str, str] | None = None,
        *,
        repository: str = "octo-org/app",
        env: dict[str, str] | None = None,
        image: str = "",
        command: list[str] | None = None,
    ) -> Running:
        """Start the entry point as a process (or, with `image`, the built image under podman; with
        `command`, that program, e.g. an installed console script)."""
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
        full = self.env(work, repository)
        values = action_defaults(repository)
        values.update(inputs or {})
        for name, value in values.items():
            full["INPUT_" + name.upper()] = value
        full.update(env or {})
        (work / "output").touch()
        (work / "summary").touch()
        if image:
            command = container_command(image, full, work)
        elif command is None and forkserver.enabled():
            return Running(forkserver.Forked(PLAIN, full, tmp.name), tmp)
        command = command or PLAIN
        proc = subprocess.Popen(
            command, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp.name
        )
        return Running(proc, tmp)

    def run(
        self,
        inputs: dict[str, str] | None = None,
        *,
        repository: str = "octo-org/app",
        env: dict[str, str] | None = None,
        image: str = "",
        timeout: float = 120,
        command: list[str] | None = None,
    ) -> RunResult:
        return self.start(inputs, repository=repository, env=env, image=image, command=command).wait(timeout)


@dataclass
class Running:
    proc: subprocess.Popen[str] | forkserver.Forked
    tmp: tempfile.TemporaryDirectory[str]

    def wait(self, timeout: float = 120) -> RunResult:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
            work = Path(self.tmp.name)
            assert self.proc.returncode is not None
            return RunResult(
                self.proc.returncode,
                stdout,
                stderr,
                parse_outputs((work / "output").read_text()),
                (work / "summary").read_text(),
            )
        finally:
            self.tmp.cleanup()

    def signal(self, signum: int) -> None:
        """As the runner cancels a job: SIGINT, then SIGTERM (docker run forwards them to PID 1)."""
        self.proc.send_signal(signum)

    def kill(self) -> RunResult:
        """SIGKILL, as a cancelled or crashed runner would; what it printed so far is returned."""
        self.proc.kill()
        return self.wait(30)


def container_command(image: str, env: dict[str, str], work: Path) -> list[str]:
    """podman run as the runner's docker run: file commands mounted, variables passed by name only
    (`-e NAME` takes the value from podman's environment, so no value is on a command line)."""
    env["GITHUB_OUTPUT"] = "/github/file_commands/output"
    env["GITHUB_STEP_SUMMARY"] = "/github/file_commands/summary"
    env["HOME"] = "/github/home"
    ctr = os.environ.get("CONTAINER_WORK", "/tmp/ecr-bootstrap-ctr")
    workspace, home = work / "workspace", work / "home"
    workspace.mkdir()
    home.mkdir()
    command = [
        "podman",
        "--root",
        f"{ctr}/root",
        "--runroot",
        f"{ctr}/run",
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--network=host",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1024:1024",
        "-v",
        f"{work}:/github/file_commands",
        "-v",
        f"{workspace}:/github/workspace",
        "-v",
        f"{home}:/github/home",
        "-w",
        "/github/workspace",
    ]
    for name in env:
        if name.startswith(("INPUT_", "GITHUB_", "AWS_")) or name in ("HOME", "PYTHONUNBUFFERED"):
            command += ["-e", name]
    return [*command, image]
