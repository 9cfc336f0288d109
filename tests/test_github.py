"""GitHub as github.com answers it (issue 10): the stand-in held to GitHub's published description, and the
action against renamed repositories, long selections, variables that are not `selected`, rate limits
without Retry-After, large fan-outs and a skewed GitHub clock.

Every test that uses the `stack` fixture is also checked afterwards against the description (conftest.py):
each request the action sent and each answer the stand-in gave.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import pytest

from ecr_bootstrap.github import Pacer, rate_limit_wait
from tests.stand_ins import openapi
from tests.stand_ins.checks import (
    REPO,
    assert_target_works,
    pair_works,
    setup,
    user_keys,
)
from tests.stand_ins.github_api import ABUSE, SECONDARY, GitHubStandIn, SecondaryLimit, Secret, Variable
from tests.stand_ins.harness import Stack

ORG = "octo-org"
OLD = "octo-org/old-name"
NEW = "octo-org/new-name"
NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ECR_REPOSITORY_URI")

# Every operation of GitHub's REST API the action calls (the description documents each in tests/data).
ACTION_OPERATIONS = {
    "GET /repos/{owner}/{repo}",
    "GET /repos/{owner}/{repo}/environments/{environment_name}",
    "PUT /repos/{owner}/{repo}/environments/{environment_name}",
    "GET /repos/{owner}/{repo}/actions/secrets/public-key",
    "GET /repos/{owner}/{repo}/actions/secrets/{secret_name}",
    "PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}",
    "DELETE /repos/{owner}/{repo}/actions/secrets/{secret_name}",
    "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key",
    "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
    "PUT /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
    "DELETE /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
    "GET /orgs/{org}/actions/secrets/public-key",
    "GET /orgs/{org}/actions/secrets/{secret_name}",
    "PUT /orgs/{org}/actions/secrets/{secret_name}",
    "DELETE /orgs/{org}/actions/secrets/{secret_name}",
    "GET /orgs/{org}/actions/secrets/{secret_name}/repositories",
    "POST /repos/{owner}/{repo}/actions/variables",
    "PATCH /repos/{owner}/{repo}/actions/variables/{name}",
    "GET /repos/{owner}/{repo}/actions/variables/{name}",
    "GET /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
    "GET /orgs/{org}/actions/variables/{name}",
    "POST /repos/{owner}/{repo}/environments/{environment_name}/variables",
    "PATCH /repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
    "POST /orgs/{org}/actions/variables",
    "PATCH /orgs/{org}/actions/variables/{name}",
    "GET /orgs/{org}/actions/variables/{name}/repositories",
    "GET /repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}",
}


def exchanges(stack: Stack) -> list[openapi.Exchange]:
    return [r.exchange for r in stack.github.log if r.exchange is not None]


def org_repos(stack: Stack, count: int, prefix: str = "svc") -> list[int]:
    return [stack.github.add_repo(f"{ORG}/{prefix}-{i:03d}").id for i in range(count)]


def seed_org_secret(stack: Stack, name: str, selected: list[int]) -> None:
    org = stack.github.box(org=ORG)
    sealed = stack.github.seal_in(org, "set by hand")
    org.secrets[name] = Secret(sealed, org.key_id, "2026-01-01T00:00:00Z", "selected", list(selected))


# -- the description covers every operation the action calls ---------------------------------------


def _run_every_operation(stack: Stack) -> set[str]:
    """Runs that between them call every operation the action uses; returns the operations seen."""
    seen: set[str] = set()

    def run(inputs: dict[str, str], ok: bool = True) -> None:
        stack.github.reset_log()
        result = stack.run({"github-token": token, **inputs})
        assert (result.returncode == 0) == ok, result.stdout
        for x in exchanges(stack):
            operation = openapi.operation_of(x.method, x.path)
            assert operation, f"{x.method} {x.path} is no documented operation"
            seen.add(operation)
        problems = openapi.conformance_problems(exchanges(stack))
        assert not problems, problems

    stack.github.add_org(ORG)
    token = setup(stack, REPO, f"{ORG}/web")
    variables = {"write-variables": "true"}
    run(variables)  # repository: public key, secrets, variables created
    stack.github.fail("PUT", "/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=0, times=-1, apply_first=True)
    lost = {"status": 0, "times": -1, "apply_first": True}
    stack.github.fail("PATCH", "/variables/AWS_REGION$", **lost)
    run(variables)  # a rotation whose secret and variable writes lose every reply: both read back
    stack.github.faults.clear()
    run({**variables, "environment": "prod"})  # environment: looked up, created, secrets and variables
    stack.github.fail("PATCH", "/variables/AWS_REGION$", **lost)
    run({**variables, "environment": "prod"})
    stack.github.faults.clear()
    stack.github.fail("PUT", "/environments/prod/secrets/AWS_SECRET_ACCESS_KEY$", status=502, times=-1)
    run({"environment": "prod"}, ok=False)  # the failed write is read back
    stack.github.faults.clear()
    org = {"organization": ORG, "visibility": "selected", "repositories": f"{REPO},{ORG}/web", **variables}
    run(org)  # organization, selected: repository ids, selected lists of secrets and variables
    stack.github.fail("PATCH", "/variables/AWS_REGION$", **lost)
    run(org, ok=False)  # the value reads back, the selection cannot: reported as unknown
    stack.github.faults.clear()
    stack.github.fail("PUT", f"^/orgs/{ORG}/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=0, times=-1)
    run({"organization": ORG, "visibility": "all"}, ok=False)  # the lost write is read back
    stack.github.faults.clear()
    # A run killed mid-pair holds the lease; GitHub says that run has completed: taken over at once.
    held = stack.github.fail("PUT", "/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=-1)
    running = stack.start({"github-token": token}, env={"GITHUB_RUN_ID": "77"})
    assert held.held.wait(60)
    running.kill()
    held.release.set()
    stack.github.faults.clear()
    stack.github.add_run(REPO, 77, 1, "completed")
    run({"actions-token": stack.github.add_token(actions_read=True)})
    run({"auth": "oidc", "retire-user-keys": "true", "environment": "prod"})  # env secrets deleted
    run({"auth": "oidc", "retire-user-keys": "true"})  # repository secrets deleted
    run({"auth": "oidc", "retire-user-keys": "true", "organization": ORG, "visibility": "all"})
    return seen


@pytest.mark.slow(2)
def test_conformance_covers_every_operation_the_action_calls(stack: Stack) -> None:
    seen = _run_every_operation(stack)
    assert seen >= ACTION_OPERATIONS, sorted(ACTION_OPERATIONS - seen)
    assert seen <= ACTION_OPERATIONS, sorted(seen - ACTION_OPERATIONS)  # a new call must be listed here
    documented = set(openapi.extract()["operations"])
    assert documented >= ACTION_OPERATIONS


def test_every_request_carries_the_media_type_and_api_version(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    for x in exchanges(stack):
        assert x.headers["Accept"] == "application/vnd.github+json"
        assert x.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert x.headers["Authorization"].endswith(f" {token}")


# -- the stand-in is as strict as github.com ---------------------------------------------------------


def call(
    stand_in: GitHubStandIn, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    token = next(iter(stand_in.tokens))
    request = urllib.request.Request(
        stand_in.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"token {token}",
            "Accept": openapi.MEDIA_TYPE,
            "X-GitHub-Api-Version": openapi.API_VERSION,
            "Content-Type": "application/json",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        },
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request) as answer:
            status, got, text = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        status, got, text = exc.code, dict(exc.headers), exc.read()
    return status, got, json.loads(text) if text else None


def test_stand_in_pages_every_list_as_github_does(bare: GitHubStandIn) -> None:
    bare.add_token()
    org = bare.add_org(ORG)
    ids = [bare.add_repo(f"{ORG}/r{i:03d}").id for i in range(250)]
    org.secrets["S"] = Secret(bare.seal_in(org, "v"), org.key_id, bare.now(), "selected", ids)
    path = f"/orgs/{ORG}/actions/secrets/S/repositories"
    status, headers, body = call(bare, "GET", path)
    assert status == 200 and body["total_count"] == 250 and len(body["repositories"]) == 30  # default
    assert 'rel="next"' in headers["Link"] and 'rel="last"' in headers["Link"]
    assert f"/organizations/{org.id}/" in headers["Link"]  # as github.com links organization lists
    status, headers, body = call(bare, "GET", path + "?per_page=1000&page=3")
    assert len(body["repositories"]) == 50  # at most 100 a page: page 3 holds the last 50
    assert 'rel="prev"' in headers["Link"] and 'rel="next"' not in headers["Link"]
    for x in [r.exchange for r in bare.log if r.exchange]:
        assert not openapi.response_problems(x)


def test_stand_in_redirects_a_renamed_repository(bare: GitHubStandIn) -> None:
    bare.add_token()
    bare.add_repo(OLD)
    repo = bare.rename(OLD, NEW)
    status, headers, body = call(bare, "GET", f"/repos/{OLD}/actions/secrets/public-key")
    assert status == 301 and headers["Location"].endswith(
        f"/repositories/{repo.id}/actions/secrets/public-key"
    )
    assert body["message"] == "Moved Permanently"
    put = {"encrypted_value": bare.seal_in(repo, "v"), "key_id": repo.key_id}
    status, headers, _ = call(bare, "PUT", f"/repos/{OLD}/actions/secrets/S", put)
    assert status == 307 and "S" not in repo.secrets  # nothing written at the old name
    status, _, _ = call(bare, "PUT", f"/repositories/{repo.id}/actions/secrets/S", put)
    assert status == 201 and bare.decrypt(NEW, "S") == "v"


def test_stand_in_refuses_what_github_refuses(bare: GitHubStandIn) -> None:
    bare.add_token()
    org = bare.add_org(ORG)
    repo = bare.add_repo(REPO)
    org.variables["V"] = Variable("v", bare.now(), "all", [], bare.now())
    assert call(bare, "GET", f"/orgs/{ORG}/actions/variables/V/repositories")[0] == 409
    assert call(bare, "GET", f"/repos/{REPO}", X_GitHub_Api_Version="2021-01-01")[0] == 400
    bad = {"encrypted_value": "not base64!", "key_id": repo.key_id}
    assert call(bare, "PUT", f"/repos/{REPO}/actions/secrets/S", bad)[0] == 422  # schema: pattern
    assert call(bare, "PUT", f"/repos/{REPO}/actions/secrets/S", {"key_id": "1"})[0] == 422  # required
    assert call(bare, "PUT", f"/repos/{REPO}/environments/{'x' * 256}", {})[0] == 422
    assert call(bare, "POST", f"/repos/{REPO}/actions/secrets/public-key")[0] == 404  # no such operation


def test_stand_in_clock_has_whole_seconds_and_can_be_skewed(bare: GitHubStandIn) -> None:
    bare.add_token()
    repo = bare.add_repo(REPO)
    bare.skew = -3600.0
    put = {"encrypted_value": bare.seal_in(repo, "v"), "key_id": repo.key_id}
    assert call(bare, "PUT", f"/repos/{REPO}/actions/secrets/S", put)[0] == 201
    _, headers, body = call(bare, "GET", f"/repos/{REPO}/actions/secrets/S")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["updated_at"])  # whole seconds, UTC
    updated = datetime.fromisoformat(body["updated_at"].replace("Z", "+00:00")).timestamp()
    assert abs(updated - (time.time() - 3600)) < 5
    from email.utils import parsedate_to_datetime

    assert abs(parsedate_to_datetime(headers["Date"]).timestamp() - (time.time() - 3600)) < 5
    assert int(headers["x-ratelimit-remaining"]) < 5000


def test_stand_in_secondary_limits_with_and_without_retry_after(bare: GitHubStandIn) -> None:
    bare.add_token()
    repo = bare.add_repo(REPO)
    bare.limit = SecondaryLimit(window=30.0, content=3, status=429, retry_after=False)
    put = {"encrypted_value": bare.seal_in(repo, "v"), "key_id": repo.key_id}
    statuses = [call(bare, "PUT", f"/repos/{REPO}/actions/secrets/S{i}", put) for i in range(4)]
    assert [s for s, _, _ in statuses] == [201, 201, 201, 429]  # the content-creation limit
    assert "Retry-After" not in statuses[-1][1] and "secondary rate limit" in statuses[-1][2]["message"]
    assert call(bare, "GET", f"/repos/{REPO}/actions/secrets/S0")[0] == 200  # reads are not content
    bare.limit = SecondaryLimit(points=6, window=30.0)
    answers = [call(bare, "PUT", f"/repos/{REPO}/actions/secrets/S", put) for _ in range(2)]
    assert [status for status, _, _ in answers] == [201, 403]  # the points limit, with Retry-After
    assert int(answers[1][1]["Retry-After"]) >= 1


# -- renamed and transferred repositories -----------------------------------------------------------


def test_renamed_repository_fresh_run_writes_the_pair_where_the_repository_now_is(stack: Stack) -> None:
    stack.github.add_repo(OLD)
    token = stack.github.add_token()
    stack.github.rename(OLD, NEW)
    result = stack.run({"github-token": token, "repositories": OLD})
    assert result.returncode == 0, result.stdout
    key_id = assert_target_works(stack, NEW)
    assert user_keys(stack) == [key_id]
    assert any("renamed or transferred" in line for line in result.stdout.splitlines() if "::warning" in line)
    statuses = [(r.method, r.status) for r in stack.github.log]
    assert ("PUT", 307) in statuses  # GitHub's answer to a write at the old name, followed
    assert all(s < 300 or s in (301, 307) for _, s in statuses)


def test_renamed_repository_rotation_ends_with_the_new_pair(stack: Stack) -> None:
    stack.github.add_repo(OLD)
    token = stack.github.add_token()
    assert stack.run({"github-token": token, "repositories": OLD}).returncode == 0
    old_key = assert_target_works(stack, OLD)
    stack.github.rename(OLD, NEW)
    result = stack.run({"github-token": token, "repositories": OLD})
    assert result.returncode == 0, result.stdout
    new_key = assert_target_works(stack, NEW)
    assert new_key != old_key and user_keys(stack) == [new_key]


@pytest.mark.parametrize("secret", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_redirect_that_is_not_followed_never_counts_as_written(stack: Stack, secret: str) -> None:
    """A 307 to another host (which never gets the token) and a 302 answer to a write: the run fails, says
    the write was not made, and the repository keeps its old, working pair."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    here = f"{stack.github.url}/repositories/{stack.github.repos[REPO].id}/actions/secrets/{secret}"
    for status, location in ((307, "http://127.0.0.2:9/elsewhere"), (302, here)):
        fault = stack.github.fail(
            "PUT", f"/actions/secrets/{secret}$", status=status, times=-1, headers={"Location": location}
        )
        result = stack.run({"github-token": token})
        assert result.returncode == 1, result.stdout
        assert f"answered {status}" in result.errors()[0] and "was not made" in result.errors()[0]
        assert fault.hits == 1  # refused, not retried and not followed
        assert assert_target_works(stack, REPO) == old_key and user_keys(stack) == [old_key]
        stack.github.faults.clear()


def test_renamed_repository_that_fails_after_the_redirect_keeps_its_old_pair(stack: Stack) -> None:
    stack.github.add_repo(OLD)
    token = stack.github.add_token()
    assert stack.run({"github-token": token, "repositories": OLD}).returncode == 0
    old_key = assert_target_works(stack, OLD)
    stack.advance(1.1)  # whole-second timestamps tell the 500's outcome only for runs a second apart
    stack.github.rename(OLD, NEW)
    stack.github.fail(
        "PUT", r"^/repositories/\d+/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=500, times=-1
    )
    result = stack.run({"github-token": token, "repositories": OLD})
    assert result.returncode == 1, result.stdout
    assert assert_target_works(stack, NEW) == old_key and user_keys(stack) == [old_key]
    stack.github.faults.clear()
    assert stack.run({"github-token": token, "repositories": OLD}).returncode == 0
    assert user_keys(stack) == [assert_target_works(stack, NEW)] != [old_key]


# -- organization selections ------------------------------------------------------------------------


@pytest.mark.slow(1)
def test_organization_secrets_selected_for_250_repositories_keep_all_of_them(stack: Stack) -> None:
    stack.github.add_org(ORG)
    selected = org_repos(stack, 250)
    token = setup(stack, REPO, f"{ORG}/web")
    for name in NAMES:
        seed_org_secret(stack, name, selected)
    ours = {stack.github.repos[r].id for r in (REPO, f"{ORG}/web")}
    inputs = {"github-token": token, "organization": ORG, "visibility": "selected"}
    inputs["repositories"] = f"{REPO},{ORG}/web"
    org = stack.github.box(org=ORG)
    for run in ("fresh", "rotation"):
        result = stack.run(inputs)
        assert result.returncode == 0, f"{run}: {result.stdout}"
        for name in NAMES:
            assert sorted(org.secrets[name].selected) == sorted({*selected, *ours}), (run, name)
        key_id = stack.github.decrypt_in(org, "AWS_ACCESS_KEY_ID")
        assert pair_works(stack, key_id, stack.github.decrypt_in(org, "AWS_SECRET_ACCESS_KEY"))
        assert user_keys(stack) == [key_id]
        pages = [x for x in exchanges(stack) if x.path.endswith("/repositories")]
        assert any(x.path.startswith("/organizations/") for x in pages)  # the Link was followed


def test_an_error_on_a_later_page_stops_the_run_and_keeps_the_selection(stack: Stack) -> None:
    stack.github.add_org(ORG)
    selected = org_repos(stack, 150)
    token = setup(stack, REPO)
    for name in NAMES:
        seed_org_secret(stack, name, selected)
    stack.github.fail("GET", r"^/organizations/\d+/actions/secrets/\w+/repositories$", status=404, times=-1)
    inputs = {"github-token": token, "organization": ORG, "visibility": "selected", "repositories": REPO}
    result = stack.run(inputs)
    assert result.returncode == 1, result.stdout
    assert "page 2" in result.errors()[0]
    org = stack.github.box(org=ORG)
    for name in NAMES:
        assert org.secrets[name].selected == selected  # nothing written from a partial list
    assert user_keys(stack) == []  # the first key was rolled back


@pytest.mark.parametrize("visibility", ["all", "private"])
def test_organization_variable_that_is_not_selected_is_written(stack: Stack, visibility: str) -> None:
    """GitHub answers 409 for the selected repositories of such a variable (documented). Its visibility is
    put back before the rotation too, as an administrator might."""
    stack.github.add_org(ORG)
    token = setup(stack, REPO)
    org = stack.github.box(org=ORG)
    org.variables["AWS_REGION"] = Variable("eu-west-1", "2026-01-01T00:00:00Z", visibility, [], "")
    inputs = {"github-token": token, "organization": ORG, "visibility": "selected", "repositories": REPO}
    for run in ("fresh", "rotation"):
        org.variables["AWS_REGION"].visibility = visibility
        stack.github.reset_log()
        result = stack.run({**inputs, "write-variables": "true"})
        assert result.returncode == 0, f"{run}: {result.stdout}"
        assert [r.path for r in stack.github.log if r.status == 409] == [
            f"/orgs/{ORG}/actions/variables/AWS_REGION/repositories"
        ]
        variable = org.variables["AWS_REGION"]
        assert (variable.value, variable.visibility) == ("us-east-1", "selected")
        assert variable.selected == [stack.github.repos[REPO].id]
        assert "visibility all or private" in result.stdout


# -- limits -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "message"), [(403, SECONDARY), (429, SECONDARY), (403, ABUSE)])
def test_secondary_limit_without_retry_after_backs_off_at_least_a_window(
    stack: Stack, status: int, message: str
) -> None:
    """GitHub's scale shrunk to a 2 s "minute": refused with 403 or 429 and no Retry-After (in github.com's
    wording, or GitHub Enterprise Server's older "abuse detection" one), the client waits at least the window
    before trying again."""
    token = setup(stack)
    limit = SecondaryLimit(points=60, window=2.0, status=status, retry_after=False, message=message)
    stack.github.limit = limit

    def spend() -> None:  # right before the first write, however long the run took to get there
        limit.spent["token " + token] = [(time.monotonic(), 59)]

    stack.github.on_first_write = spend
    result = stack.run({"github-token": token}, env={"ECR_BOOTSTRAP_GITHUB_POINTS": "60/2"})
    assert result.returncode == 0, result.stdout
    assert_target_works(stack, REPO)
    log = stack.github.log
    refused = [i for i, r in enumerate(log) if r.status == status]
    assert refused
    first = refused[0]
    retry = next(r for r in log[first + 1 :] if r.method == log[first].method and r.path == log[first].path)
    assert retry.start - log[first].at >= 2.0


def test_spent_primary_limit_is_waited_out_until_its_reset(stack: Stack) -> None:
    """x-ratelimit-remaining 0: the client waits until x-ratelimit-reset (GitHub's clock, skewed here)."""
    token = setup(stack)
    stack.github.skew = -600.0
    primary = stack.github.primary

    def spend() -> None:
        primary.used, primary.reset = primary.limit, int(stack.github.clock()) + 2

    stack.github.on_first_request = spend
    result = stack.run({"github-token": token})
    assert result.returncode == 0, result.stdout
    assert_target_works(stack, REPO)
    assert stack.github.log[0].status == 403 and stack.github.log[1].status == 200
    # At least until the reset (about 3 s on GitHub's clock); far less than the 600 s a wait reckoned on the
    # local clock would take. The upper bound has room for a machine many times slower than this one.
    waited = stack.github.log[1].start - stack.github.log[0].at
    assert 1.0 <= waited < 100, waited


def test_rate_limit_wait_follows_githubs_rules() -> None:
    now = 1_000_000.0
    assert rate_limit_wait(403, {"retry-after": "7"}, "", now) == 7.0
    primary = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 30)}
    assert rate_limit_wait(403, primary, "API rate limit exceeded", now) == 31.0
    secondary = "You have exceeded a secondary rate limit"
    assert [rate_limit_wait(429, {}, secondary, now, repeats=n) for n in range(3)] == [60.0, 120.0, 240.0]
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "4999"}, "Forbidden", now) is None


def test_pacer_spaces_writes_past_the_burst_and_keeps_under_the_content_limit() -> None:
    pacer = Pacer()
    now = 0.0
    times = []
    for _ in range(100):
        now += pacer.delay("PUT", now)
        times.append(now)
        pacer.spend("PUT", now)
    assert times[19] == 0.0 and all(b - a >= 1.0 for a, b in itertools.pairwise(times[20:]))
    assert max(sum(1 for t in times if s <= t < s + 60) for s in times) <= 80
    assert Pacer().delay("GET", 0.0) == 0.0


def test_large_fan_out_is_spaced_and_never_refused(stack: Stack) -> None:
    """30 targets, 90 writes, at GitHub's proportions in a 3 s "minute" (content limit 80 per window):
    the spacing after the first 20 writes keeps every write under the limit."""
    repos = [f"{ORG}/fan-{i:02d}" for i in range(30)]
    token = setup(stack, *repos)
    stack.github.limit = SecondaryLimit(window=3.0)
    result = stack.run(
        {"github-token": token, "repositories": ",".join(repos)}, env={"ECR_BOOTSTRAP_GITHUB_POINTS": "900/3"}
    )
    assert result.returncode == 0, result.stdout
    assert stack.github.limit.refusals == 0
    writes = [r for r in stack.github.log if r.method != "GET"]
    assert len(writes) == 90
    gaps = [b.start - a.at for a, b in itertools.pairwise(writes[20:])]
    assert min(gaps) >= 0.05 - 0.01
    for repo in repos[::7]:
        assert_target_works(stack, repo)


# -- GitHub's clock -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("skew", "date_offset"), [(-3.0, 0.0), (3.0, 0.0), (-3600.0, 1.5), (0.0, -1.5)])
@pytest.mark.parametrize("landed", [True, False])
def test_an_uncertain_secret_write_is_settled_by_reading_it_back(
    stack: Stack, skew: float, date_offset: float, landed: bool
) -> None:
    """Every reply to the secret write is lost; the first attempt landed (or none did). Reading the secret
    back compares GitHub's timestamps with each other, so neither the runner's clock (`skew`) nor the Date
    header's servers (`date_offset`) can make it restore the old id over a new secret. Outcomes: written
    (exit 0), unknown (exit 1, the new key kept, a working pair), or not written (exit 1, the old pair)."""
    token = setup(stack)
    stack.github.skew, stack.github.date_offset = skew, date_offset  # GitHub's clocks, from the start
    assert stack.run({"github-token": token}).returncode == 0
    old_key = assert_target_works(stack, REPO)
    stack.advance(1.1)  # runs are seconds apart on github.com; timestamps have whole seconds
    path = "/actions/secrets/AWS_SECRET_ACCESS_KEY$"
    if landed:
        stack.github.fail("PUT", path, status=0, times=1, apply_first=True)
    stack.github.fail("PUT", path, status=0, times=-1)
    result = stack.run({"github-token": token})
    key_id = assert_target_works(stack, REPO)  # whatever happened, the target holds a working pair
    if not landed:
        assert result.returncode == 1 and key_id == old_key and user_keys(stack) == [old_key]
        assert "read back: it was not written" in result.stdout
    elif result.returncode == 0:
        assert key_id != old_key and user_keys(stack) == [key_id]
    else:
        # Its id is the new key's either way: the old key is no longer held, and the record marks the
        # target to be written anew.
        assert "unknown" in result.stdout and user_keys(stack) == [key_id]
    stack.github.faults.clear()
    assert stack.run({"github-token": token}).returncode == 0
    assert user_keys(stack) == [assert_target_works(stack, REPO)]
