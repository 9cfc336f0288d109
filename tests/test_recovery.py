"""Nothing lost: crashes at every step boundary, concurrent runs, and the invariant after each.

The cases are the requests a clean run makes, recorded once per worker: one test per request. A "crash"
holds the N-th request in the stand-in, SIGKILLs the action meanwhile, then lets the request go (dropped),
as a cancelled job or a dead runner would leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.stand_ins.aws import AwsFault
from tests.stand_ins.checks import (
    CONDITIONS,
    FAST,
    LEASE,
    OTHER,
    PROPAGATION,
    REPO,
    USER,
    apply_condition,
    assert_invariant,
    assert_no_leak,
    assert_safe_after_failure,
    caught_up,
    final_check,
    held_pair,
    key_works,
    user_keys,
    user_keys_safe,
    working_targets,
)
from tests.stand_ins.github_api import SECONDARY, Fault
from tests.stand_ins.harness import PLAIN, RunResult, Snapshot, Stack

# The matrices: most of the suite's time, so the workers start them first (tests/conftest.py).
pytestmark = pytest.mark.slow(1)


@dataclass(frozen=True)
class Step:
    service: str  # "aws" | "github"
    name: str  # "iam:TagUser" or "PUT /repos/.../AWS_ACCESS_KEY_ID"
    occurrence: int  # how many identical requests came before it

    def __str__(self) -> str:
        return f"{self.name}#{self.occurrence}"


def prepare(
    stack: Stack, rerun: bool, spaced: bool = False, condition: str = "plain"
) -> tuple[str, dict[str, str]]:
    """A clean account and target; with `rerun`, one successful run already made. `spaced` keeps the next
    run's writes a second apart (GitHub's updated_at has whole seconds); with IAM lag, the next run starts
    once IAM shows the first one (back-to-back runs on a lagging IAM are tests of their own). The earlier
    run is not the case under test: it is made once per worker and condition, then restored from a
    snapshot of the stand-ins (what each case checks is the run after it)."""
    if rerun and condition in _prepared:
        token, snap = _prepared[condition]
        stack.restore(snap)  # its lag and clocks are the condition's already
        stack.aws.propagation = PROPAGATION
    else:
        stack.reset()
        apply_condition(stack, condition)
        stack.github.add_repo(REPO)
        token = stack.github.add_token()
        if rerun:
            propagation, stack.aws.propagation = stack.aws.propagation, 0.0
            assert stack.run({"github-token": token, **WAITING}).returncode == 0
            stack.aws.propagation = propagation
            _prepared[condition] = token, stack.snapshot()
    if rerun and stack.aws.lag:
        stack.advance(stack.aws.lag + 0.5)
    elif rerun and spaced:
        stack.advance(1.1)
    return token, {"github-token": token, **WAITING}


_prepared: dict[str, tuple[str, Snapshot]] = {}  # condition -> the earlier run's token and what it left


def recorded_steps(stack: Stack, rerun: bool, condition: str = "plain") -> list[Step]:
    """The requests of one clean run (fresh, or a rerun), in the order each service received them: those
    AWS served (operations() leaves out the refusals while something propagated, whose number depends on
    timing), so that a fault "at the N-th request" is at the N-th one served."""
    _token, inputs = prepare(stack, rerun, condition=condition)
    stack.aws.log.clear()
    stack.github.reset_log()
    assert stack.run(inputs).returncode == 0
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for service, name in [("aws", op) for op in stack.aws.operations()] + [
        ("github", f"{r.method} {r.path}") for r in stack.github.log
    ]:
        steps.append(Step(service, name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    return steps


def hold(stack: Stack, step: Step) -> AwsFault | Fault:
    if step.service == "aws":
        return stack.aws.fail(step.name, status=-1, after=step.occurrence)
    method, path = step.name.split(" ", 1)
    return stack.github.fail(method, f"^{path}$", status=-1, after=step.occurrence)


# FAST, with a key wait that the proof of a key PROPAGATION seconds new fits in (its tries: 0, 1, 2.5 s).
WAITING = {**FAST, "key-wait-seconds": str(PROPAGATION + 3)}
CRASH_CASES = [(False, "plain"), (True, "plain"), (True, "lag-github-behind"), (True, "github-ahead")]
# Requests of a clean run: 9 AWS (one is the first key's proof) + 4 GitHub fresh, 10 + 4 on a rerun. The
# matrices have one test per request (so pytest-xdist spreads them over its workers);
# test_every_request_is_in_the_matrices fails when a run makes a request that these counts leave out.
STEPS = {False: 13, True: 14}
_recorded: dict[tuple[bool, str], list[Step]] = {}


def steps_of(stack: Stack, rerun: bool, condition: str) -> list[Step]:
    """The recorded requests, once per worker and kind of run."""
    if (rerun, condition) not in _recorded:
        _recorded[rerun, condition] = recorded_steps(stack, rerun, condition)
    return _recorded[rerun, condition]


def matrix(cases: list[tuple[bool, str]]) -> list[Any]:
    return [
        pytest.param(rerun, condition, index, id=f"{'rerun' if rerun else 'fresh'}-{condition}-{index}")
        for rerun, condition in cases
        for index in range(STEPS[rerun])
    ]


@pytest.mark.parametrize(("rerun", "condition"), CRASH_CASES)
def test_every_request_is_in_the_matrices(stack: Stack, rerun: bool, condition: str) -> None:
    steps = steps_of(stack, rerun, condition)
    assert len(steps) == STEPS[rerun], (
        f"a clean {'rerun' if rerun else 'fresh run'} made {len(steps)} requests, the matrices cover "
        f"{STEPS[rerun]}: update STEPS and docs/performance.md: {[str(s) for s in steps]}"
    )


@pytest.mark.parametrize(("rerun", "condition", "index"), matrix(CRASH_CASES))
def test_crash_at_every_step_then_rerun(stack: Stack, rerun: bool, condition: str, index: int) -> None:
    step = steps_of(stack, rerun, condition)[index]
    _token, inputs = prepare(stack, rerun, spaced=True, condition=condition)
    fault = hold(stack, step)
    running = stack.start(inputs)
    if not fault.held.wait(60):
        running.kill()
        pytest.fail(f"{step}: the request never came")
    killed = running.kill()
    fault.release.set()
    stack.aws.faults.clear()
    stack.github.faults.clear()
    assert_safe_after_failure(stack, killed, {})
    caught_up(stack)  # the repair comes once IAM shows what the killed run made
    repair = stack.run(inputs)
    assert repair.returncode == 0, f"{step}: {repair.stdout}"
    final_check(stack, inputs)


def test_rerun_within_the_lease_is_refused_then_repairs(stack: Stack) -> None:
    """A kill between the id and the secret writes leaves a mismatched pair: the unavoidable window.
    A rerun while the lease runs is refused (the other run might be alive; it reads IAM once more after
    5 s first); after the lease, it repairs."""
    stack.github.add_repo(REPO)
    token = stack.github.add_token()
    inputs = {"github-token": token, **FAST}
    assert stack.run(inputs).returncode == 0
    stack.advance(1.1)
    fault = stack.github.fail("PUT", "/AWS_SECRET_ACCESS_KEY$", status=-1)
    running = stack.start(inputs)
    assert fault.held.wait(60)
    running.kill()
    fault.release.set()
    stack.github.faults.clear()
    assert len(user_keys(stack)) == 2
    key_id, secret = held_pair(stack, REPO)
    assert not key_works(stack, key_id, secret)  # the new id beside the old secret

    refused = stack.run(inputs)
    assert refused.returncode == 1 and "holds the lease" in refused.errors()[0]
    assert len(user_keys(stack)) == 2

    stack.advance(LEASE + 5)
    repaired = stack.run(inputs)
    assert repaired.returncode == 0, repaired.stdout
    assert "written anew" in repaired.stdout  # its secret is the old key's, beside the new id
    assert_invariant(stack, (REPO,))


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_concurrent_runs_on_the_same_user_and_target(stack: Stack, condition: str) -> None:
    apply_condition(stack, condition)
    stack.github.add_repo(REPO)
    token = stack.github.add_token()
    inputs = {"github-token": token, **WAITING}
    assert stack.run(inputs).returncode == 0
    # Fresh interpreters: each with a hash seed of its own, as two jobs on two runners would have.
    runs = [stack.start(inputs, command=PLAIN), stack.start(inputs, command=PLAIN)]
    results = [r.wait() for r in runs]
    assert any(r.returncode == 0 for r in results), [r.stdout for r in results]
    for r in results:
        assert r.returncode == 0 or r.errors(), r.stdout
        assert "Traceback" not in r.stderr
    stack.advance(LEASE + 5)
    assert stack.run(inputs).returncode == 0
    final_check(stack, inputs)


@pytest.mark.parametrize("condition", list(CONDITIONS))
@pytest.mark.parametrize("shared", [False, True], ids=["new-user", "existing-user"])
def test_concurrent_runs_for_different_targets(stack: Stack, shared: bool, condition: str) -> None:
    apply_condition(stack, condition)
    stack.github.add_repo(REPO)
    stack.github.add_repo(OTHER)
    token = stack.github.add_token()
    if shared:
        assert (
            stack.run({"github-token": token, **WAITING, "repositories": f"{REPO},{OTHER}"}).returncode == 0
        )
    runs = [
        stack.start({"github-token": token, **WAITING}, repository=REPO, command=PLAIN),
        stack.start({"github-token": token, **WAITING}, repository=OTHER, command=PLAIN),
    ]
    results = [r.wait() for r in runs]
    assert any(r.returncode == 0 for r in results), [r.stdout for r in results]
    for r in results:
        assert r.returncode == 0 or r.errors(), r.stdout
    assert len(user_keys(stack)) <= 2
    stack.advance(LEASE + 5)
    for repo in (REPO, OTHER):
        if stack.aws.lag:
            stack.advance(stack.aws.lag + 0.5)
        result = stack.run({"github-token": token, **WAITING}, repository=repo)
        if result.returncode and stack.aws.lag and "the 2 access keys IAM allows" in result.errors()[0]:
            untangle_by_hand(stack, result)
            stack.advance(stack.aws.lag + 0.5)  # until IAM's reads show the deletion
            result = stack.run({"github-token": token, **WAITING}, repository=repo)
        assert result.returncode == 0, result.stdout
    if stack.aws.lag:
        stack.advance(stack.aws.lag + 0.5)
        both = stack.run({"github-token": token, **WAITING, "repositories": f"{REPO},{OTHER}"})
        assert both.returncode == 0, both.stdout
    assert_invariant(stack, (REPO, OTHER))


def untangle_by_hand(stack: Stack, refused: RunResult) -> None:
    """The known limit (README, "Troubleshooting: keys"): two runs for different targets racing on a
    lagging IAM, with no concurrency group, can each leave their target holding its own key. Nothing is
    lost - both pairs work, at most two keys - but the next run has no free slot and refuses, naming each
    key and its holder. What the message tells a user to do works: delete one key; the run then writes
    its holder anew."""
    assert len(user_keys(stack)) == 2
    for repo in (REPO, OTHER):
        assert key_works(stack, *held_pair(stack, repo)), f"{repo} lost its working pair"
    error = refused.errors()[0]
    held = {repo: held_pair(stack, repo)[0] for repo in (REPO, OTHER)}
    # Each key is named, with its holder, or as held by no place this run writes (a lagged read can leave
    # one key's entry unseen): the user can tell which key belongs to which repository.
    assert all(key in error for key in held.values()), error
    assert "iam-user" in error and "repositories" in error
    # Through the AWS stand-in, so that its lagging reads show the deletion once IAM's lag is over.
    import boto3

    iam = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("iam", endpoint_url=stack.aws.url)
    iam.delete_access_key(UserName=USER, AccessKeyId=held[OTHER])


# -- the fault matrix -----------------------------------------------------------------------------------

# (name, status, code or message, persistent): persistent faults must fail the run cleanly; the others
# are transient and must be recovered from by the retries.
AWS_FAULTS = [
    ("AccessDenied", 403, "AccessDenied", True),
    ("Throttling", 400, "Throttling", False),
    ("InternalFailure", 500, "InternalFailure", False),
    ("dropped", 0, "", False),
    ("ConcurrentModification", 409, "ConcurrentModification", False),  # at CONCURRENT steps only
    ("short-pages", 200, "", False),  # at IAM_LISTS steps only: not a failure, every page must be read
]
# IAM lists ConcurrentModification among the errors of these (IAM API Reference, "Errors" of CreateUser,
# CreatePolicy, TagUser, UntagUser); it is not injected where IAM does not document it.
CONCURRENT = {"iam:CreateUser", "iam:CreatePolicy", "iam:TagUser", "iam:UntagUser"}
# The lists the action reads, which "might return fewer than the MaxItems number of results" with
# IsTruncated set (IAM API Reference, "IsTruncated").
IAM_LISTS = {
    "iam:ListUserTags",
    "iam:ListAccessKeys",
    "iam:ListAttachedUserPolicies",
    "iam:ListPolicyVersions",
}
GITHUB_FAULTS = [
    ("500", 500, "Server Error", False),
    ("reset", 0, "", False),
    ("secondary-limit", 403, SECONDARY, False),
    ("401", 401, "Bad credentials", True),
    ("403", 403, "Resource not accessible by personal access token", True),
    ("404", 404, "Not Found", True),
    ("422", 422, "Validation Failed", True),
    ("slow", 200, "", False),  # served, but answered after the client's timeout
    ("late", 0, "", False),  # a write unanswered, applied a second later (a read is dropped, then served)
]
# The slow reply: the client gives up after 2 s; the stand-in answers after 5 s (a loaded machine's
# ordinary replies stay well inside the 2 s).
SLOW_CLIENT = {"ECR_BOOTSTRAP_GITHUB_TIMEOUT": "2"}


def applies(step: Step, kind: tuple[str, int, str, bool]) -> bool:
    """Whether the fault kind can happen at this request (the two IAM-only kinds at some requests only)."""
    if kind[0] == "ConcurrentModification":
        return step.name in CONCURRENT
    return kind[0] != "short-pages" or step.name in IAM_LISTS


def inject(stack: Stack, step: Step, kind: tuple[str, int, str, bool]) -> None:
    _name, status, text, persistent = kind
    times = -1 if persistent else 1
    if _name == "ConcurrentModification":
        stack.aws.concurrent_modification(step.name, after=step.occurrence)
        return
    if _name == "short-pages":
        stack.aws.short_pages.add(step.name)
        return
    if step.service == "aws":
        stack.aws.fail(step.name, code=text, status=status, times=times, after=step.occurrence)
        return
    method, path = step.name.split(" ", 1)
    if _name == "slow":
        stack.github.fail(method, f"^{path}$", slow=5.0, times=1, after=step.occurrence)
        return
    if _name == "late":
        stack.github.fail(
            method, f"^{path}$", status=0, late=1.0, late_after_read=False, after=step.occurrence
        )
        return
    headers = {"Retry-After": "0"} if text == SECONDARY else {}
    stack.github.fail(
        method, f"^{path}$", status=status, times=times, after=step.occurrence, message=text, headers=headers
    )


# With IAM lag each case waits for IAM twice: a persistent AWS fault and a transient GitHub one.
FAULT_CASES = [(False, "plain"), (True, "plain"), (True, "github-ahead"), (True, "lag-github-behind")]
LAGGED_KINDS = {"AccessDenied", "500"}  # the first kind of each list: half 0


def fault_matrix() -> list[Any]:
    """(rerun, condition, index, half); with IAM lag the kinds are LAGGED_KINDS, all in half 0."""
    return [
        pytest.param(*p.values, half, id=f"{p.id}-{half}")
        for p in matrix(FAULT_CASES)
        for half in ((0,) if CONDITIONS[p.values[1]][0] else (0, 1))
    ]


@pytest.mark.parametrize(("rerun", "condition", "index", "half"), fault_matrix())
def test_fault_matrix(stack: Stack, rerun: bool, condition: str, index: int, half: int) -> None:
    """Every fault kind at one request (half of them per test, so the workers share the longest steps):
    persistent faults fail the run cleanly, transient ones are recovered from; either way no target loses
    its working pair, and the next run repairs."""
    step = steps_of(stack, rerun, condition)[index]
    kinds = [k for k in (AWS_FAULTS if step.service == "aws" else GITHUB_FAULTS)[half::2] if applies(step, k)]
    if CONDITIONS[condition][0]:
        kinds = [k for k in kinds if k[0] in LAGGED_KINDS]
    assert kinds
    problems = []
    for kind in kinds:
        try:
            fault_case(stack, rerun, condition, step, kind)
        except AssertionError as exc:
            problems.append(f"{step} {kind[0]}: {str(exc)[:500]}")
    assert not problems, "\n".join(problems)


def fault_case(
    stack: Stack, rerun: bool, condition: str, step: Step, kind: tuple[str, int, str, bool]
) -> None:
    token, inputs = prepare(stack, rerun, condition=condition)
    working = working_targets(stack)
    inject(stack, step, kind)
    result = stack.run(inputs, env=SLOW_CLIENT if kind[0] == "slow" else None)
    stack.github.landed_late()  # what the run left includes a write that landed after it
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if kind[3]:
        assert result.returncode == 1, "a persistent fault did not fail the run"
        assert len(result.errors()) == 1, result.stdout
    else:
        assert result.returncode == 0, f"a transient fault was not recovered: {result.stdout}"
    assert len(user_keys_safe(stack)) <= 2
    assert working <= working_targets(stack), "a target lost its working pair"
    assert_no_leak(result, token, *result.masked)
    stack.aws.faults.clear()
    stack.github.faults.clear()
    caught_up(stack, failed=result.returncode != 0)  # the repair comes once IAM shows what the run made
    repair = stack.run(inputs)
    assert repair.returncode == 0, repair.stdout
    final_check(stack, inputs)
