"""The benchmark: the action against moto and the GitHub stand-in on loopback, with a simulated network.

    python bench/bench.py [--latency 0.05] [--runs 3] [--scenario NAME ...] [--baseline]
    (./dev.sh bench passes its arguments here)

Each request to either side gets `--latency` seconds added. For each scenario it prints the requests per
service, the longest chain of dependent requests (the most requests that had to happen one after
another), the wall time (median and spread over --runs), the bound (start-up + chain x latency, or what
GitHub's points budget allows when that is longer), their ratio, the start-up (process start to first
request), the peak memory of the action's process, and the rate-limit refusals it received. With
--baseline, the same job done by bench/baseline.sh (aws CLI + gh) is timed on the fresh 1-target scenario.
Not a test: figures vary with the machine; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from ecr_bootstrap.github import CONTENT_LIMIT, WRITE_BURST  # noqa: E402
from ecr_bootstrap.keys.settle import GAP  # noqa: E402
from tests.stand_ins.github_api import SecondaryLimit  # noqa: E402
from tests.stand_ins.harness import Stack, action_defaults  # noqa: E402

ORG = "octo-org"


@dataclass
class Scenario:
    name: str
    targets: int
    rerun: bool = False
    limit: tuple[int, float] | None = None  # GitHub's secondary limit (points, window seconds)
    organization: bool = False
    rotate_after: str = ""  # a scheduled run: rotate only when the key is this old

    @property
    def rotates(self) -> bool:
        return self.rerun and not self.rotate_after

    def repos(self) -> list[str]:
        return [f"{ORG}/app"] + [f"{ORG}/app-{i:03d}" for i in range(1, self.targets)]

    def inputs(self) -> dict[str, str]:
        out = {"repositories": ",".join(self.repos())}
        if self.organization:
            out |= {"organization": ORG, "visibility": "selected"}
        if self.rotate_after:
            out["rotate-after"] = self.rotate_after
        return out


# GitHub's limit is 900 points per 60 s. One IAM user's key record holds at most 45 repositories (IAM's
# 50 tags per user), and 45 targets cost 720 points: under the real limit nothing would need pacing. So the
# fan-out keeps GitHub's rate (15 points/s) but shrinks the window to 15 s (225 points): 720 points then
# cannot go in one burst, and the run must pace its writes (a quarter second apart past the first 20, the
# shrunk form of GitHub's one second). The 10-target scenario runs at GitHub's own limits: its 30 writes
# show what spacing costs at full scale (10 writes past the burst, a second each).
SCENARIOS = [
    Scenario("fresh, 1 target", 1),
    Scenario("rerun, 1 target", 1, rerun=True),
    Scenario("scheduled no-op run (rotate-after 30d), 1 target", 1, rerun=True, rotate_after="30d"),
    Scenario("fresh, 10 targets", 10),
    Scenario("fresh, 45 targets, limit 225 points/15 s", 45, limit=(225, 15.0)),
    Scenario("organization, 100 repositories, limit 900/60 s", 100, organization=True, limit=(900, 60.0)),
]


@dataclass
class Measure:
    wall: float
    startup: float
    aws: int
    github: int
    chain: int
    bound: float
    peak_mb: float
    refusals: int
    code: int
    server_ms: float  # mean time the stand-ins spent on a request beyond the added latency


def longest_chain(intervals: list[tuple[float, float]]) -> int:
    """The most requests in a row where each started after the previous one had been answered."""
    ordered = sorted(intervals, key=lambda iv: iv[1])
    best: list[int] = []
    for i, (start, _end) in enumerate(ordered):
        prior = [best[j] for j in range(i) if ordered[j][1] <= start]
        best.append(1 + max(prior, default=0))
    return max(best, default=0)


def budget_time(methods: list[str], latency: float, points: int = 900, window: float = 60.0) -> float:
    """How long these GitHub requests take one after another at `latency` each while keeping GitHub's
    documented limits: the points budget (GET 1, other methods 5), 80 content-creating requests per window,
    and, past the first WRITE_BURST writes, GitHub's "at least one second between" writes (window / 60 at a
    shrunk window). The least time the rules allow, with the client's reading of "a large number"."""
    spent: list[tuple[float, int]] = []
    writes: list[float] = []
    now = 0.0
    for method in methods:
        cost = 1 if method == "GET" else 5
        while True:
            spent = [(t, c) for t, c in spent if now - t < window]
            if sum(c for _, c in spent) + cost <= points:
                break
            now = max(now, spent[0][0] + window) + 1e-6  # past the edge, whatever the float rounding
        if method != "GET":
            if len(writes) >= WRITE_BURST:
                now = max(now, writes[-1] + window / 60)
            recent = [t for t in writes if now - t < window]
            if len(recent) >= CONTENT_LIMIT:
                now = max(now, recent[-CONTENT_LIMIT] + window) + 1e-6
        now += latency
        spent.append((now, cost))
        if method != "GET":
            writes.append(now)
    return now


Command = Callable[[Stack, str, str], tuple[list[str], dict[str, str]]]


def run_action(
    stack: Stack, inputs: dict[str, str], command: Command | None = None
) -> tuple[float, int, float]:
    """Start the action as the runner would; returns (start time, exit code, peak RSS in MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = stack.env(Path(tmp), f"{ORG}/app")
        argv = [sys.executable, str(ROOT / "entrypoint.py")]
        if command:
            argv, extra = command(stack, inputs["github-token"], tmp)
            env.update(extra)
        values = action_defaults(f"{ORG}/app")
        values.update(inputs)
        for name, value in values.items():
            if name.startswith("ECR_BOOTSTRAP_"):
                env[name] = value  # a setting of the environment, not an input
            else:
                env["INPUT_" + name.upper()] = value
        (Path(tmp) / "output").touch()
        (Path(tmp) / "summary").touch()
        started = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 - our own entry point or bench/baseline.sh
            argv,
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = 0
        # VmHWM is the peak resident size of the process's own memory since exec (wait4's ru_maxrss
        # would also count the benchmark's pages copied at fork). Polled until the process ends.
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = max(
                    peak, int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")))
                )
            except (OSError, StopIteration, ValueError):
                pass
            time.sleep(0.01)
        return started, proc.returncode, peak / 1024


def prepare(stack: Stack, scenario: Scenario) -> str:
    stack.reset()
    stack.aws.latency = 0.0
    stack.github.latency = 0.0
    stack.github.limit = None
    if scenario.organization:
        stack.github.add_org(ORG)
    for repo in scenario.repos():
        stack.github.add_repo(repo)
    token = stack.github.add_token()
    if scenario.rerun:
        _started, code, _ = run_action(stack, {"github-token": token, **scenario.inputs()})
        if code:
            raise SystemExit(f"{scenario.name}: the first run failed")
    # moto builds each service's backend on its first request after a reset (IAM loads every AWS managed
    # policy: ~100 ms); real AWS has no such cost, so the stand-in is warmed up before the measured run.
    stack.boto("ecr").describe_repositories()
    stack.boto("iam").list_users()
    stack.boto("sts").get_caller_identity()
    return token


def measure(stack: Stack, scenario: Scenario, latency: float, command: Command | None) -> Measure:
    token = prepare(stack, scenario)
    stack.aws.log.clear()
    stack.github.reset_log()
    stack.aws.latency = latency
    stack.github.latency = latency
    stack.github.limit = SecondaryLimit(*scenario.limit) if scenario.limit else SecondaryLimit()
    inputs = {"github-token": token, **scenario.inputs()}
    if scenario.limit:
        inputs["ECR_BOOTSTRAP_GITHUB_POINTS"] = f"{scenario.limit[0]}/{scenario.limit[1]:g}"
    started, code, peak = run_action(stack, inputs, command)
    ended = time.monotonic()
    aws = [(c.start, c.end) for c in stack.aws.log]
    gh = [(r.start, r.at) for r in stack.github.log]
    first = min((s for s, _ in aws + gh), default=ended)
    chain = longest_chain(aws + gh)
    methods = [
        r.method for r in sorted(stack.github.log, key=lambda r: r.start) if r.status not in (403, 429)
    ]
    in_chain_aws = max(chain - len(methods), 0)
    points, window = scenario.limit or (900, 60.0)
    paced = in_chain_aws * latency + budget_time(methods, latency, points, window)
    startup = first - started
    bound = startup + max(chain * latency, paced)
    if scenario.rotates:
        # A rotation writes no key id until GAP seconds after the GitHub answer it took its reference
        # second from (the first, one latency in); then the id, the secret, the commit and the retirement.
        bound = max(bound, startup + latency + GAP + 4 * latency)
    refusals = stack.github.limit.refusals
    spans = [end - start for start, end in aws + gh]
    server = (sum(spans) / len(spans) - latency) * 1000 if spans else 0.0
    return Measure(ended - started, startup, len(aws), len(gh), chain, bound, peak, refusals, code, server)


def spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f})"


def table(rows: list[tuple[str, list[Measure]]], latency: float) -> str:
    head = (
        "| scenario | AWS req | GitHub req | chain | wall s, median (min-max) | bound s | wall/bound "
        "| start-up s | peak MB | 403s | exit | stand-in ms/req |"
    )
    lines = [f"latency {latency * 1000:.0f} ms per request on each side", "", head, "|" + "---|" * 12]
    for name, ms in rows:
        m = ms[len(ms) // 2]
        walls = [x.wall for x in ms]
        ratio = statistics.median(walls) / statistics.median([x.bound for x in ms])
        lines.append(
            f"| {name} | {m.aws} | {m.github} | {m.chain} | {spread(walls)} | "
            f"{statistics.median([x.bound for x in ms]):.2f} | {ratio:.2f} | "
            f"{statistics.median([x.startup for x in ms]):.2f} | "
            f"{'-' if name.startswith('baseline') else f'{max(x.peak_mb for x in ms):.0f}'} | "
            f"{max(x.refusals for x in ms)} | {max(x.code for x in ms)} | "
            f"{statistics.median([x.server_ms for x in ms]):.0f} |"
        )
    return "\n".join(lines)


def baseline_command(stack: Stack, token: str, tmp: str) -> tuple[list[str], dict[str, str]]:
    """bench/baseline.sh with the aws CLI of .venv-bench and Debian's gh pointed at the stand-in: gh talks
    plain HTTP to api.github.localhost when GH_HOST=github.localhost, and HTTP_PROXY sends that to the
    stand-in (NO_PROXY keeps the aws CLI's own loopback requests direct)."""
    bin_dir = ROOT / ".venv-bench" / "bin"
    return ["bash", str(ROOT / "bench" / "baseline.sh")], {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "GH_HOST": "github.localhost",
        "GH_TOKEN": token,
        "GH_CONFIG_DIR": tmp,
        "GH_NO_UPDATE_NOTIFIER": "1",
        "GH_PROMPT_DISABLED": "1",
        "HTTP_PROXY": stack.github.url,
        "NO_PROXY": "127.0.0.1",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request, each side (0.05)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (3)")
    parser.add_argument("--scenario", action="append", help="only scenarios whose name contains this")
    parser.add_argument("--baseline", action="store_true", help="also time bench/baseline.sh (aws CLI + gh)")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.scenario or any(k in s.name for k in args.scenario)]
    stack = Stack()
    rows: list[tuple[str, list[Measure]]] = []
    try:
        for scenario in chosen:
            ms = sorted(
                (measure(stack, scenario, args.latency, None) for _ in range(args.runs)), key=lambda m: m.wall
            )
            rows.append((scenario.name, ms))
            print(f"done: {scenario.name}", file=sys.stderr)
        if args.baseline:
            fresh = SCENARIOS[0]
            ms = sorted(
                (measure(stack, fresh, args.latency, baseline_command) for _ in range(args.runs)),
                key=lambda m: m.wall,
            )
            rows.append(("baseline script (aws CLI + gh), fresh, 1 target", ms))
    finally:
        stack.stop()
    print(table(rows, args.latency))
    if args.baseline:
        ours = statistics.median(m.wall for m in rows[0][1])
        theirs = statistics.median(m.wall for m in rows[-1][1])
        print(f"\nbaseline / action, fresh 1 target: {theirs / ours:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
