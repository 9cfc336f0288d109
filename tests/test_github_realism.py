"""GitHub as it answers beyond the description (issue 22): GitHub Enterprise Server's older "abuse detection"
wording of a secondary limit, the number of secrets a place may hold, and the permissions an environment's
secrets need from a fine-grained token."""

from __future__ import annotations

from typing import Any

import pytest

from ecr_bootstrap.github import rate_limit_wait
from tests.stand_ins.checks import REPO, setup, user_keys
from tests.stand_ins.github_api import ABUSE, GitHubStandIn, SecondaryLimit, Secret
from tests.stand_ins.harness import Stack
from tests.test_github import call

ORG = "octo-org"
# The content-creation variant of the older wording, as GitHub answered it (see ABUSE).
ABUSE_CONTENT = (
    "You have triggered an abuse detection mechanism and have been temporarily blocked from content "
    "creation. Please retry your request again later."
)


# -- 1. the older "abuse detection" wording of a secondary limit --------------------------------------


@pytest.mark.parametrize("message", [ABUSE, ABUSE_CONTENT])
def test_abuse_detection_is_a_secondary_limit(message: str) -> None:
    now = 1_000_000.0
    assert [rate_limit_wait(403, {}, message, now, repeats=n) for n in range(3)] == [60.0, 120.0, 240.0]
    assert rate_limit_wait(403, {"Retry-After": "30"}, message, now) == 30.0
    assert rate_limit_wait(403, {}, "Resource not accessible by personal access token", now) is None


def test_stand_in_can_answer_with_the_abuse_detection_message(bare: GitHubStandIn) -> None:
    bare.add_token()
    repo = bare.add_repo(REPO)
    bare.limit = SecondaryLimit(window=30.0, content=1, retry_after=False, message=ABUSE)
    put = {"encrypted_value": bare.seal_in(repo, "v"), "key_id": repo.key_id}
    answers = [call(bare, "PUT", f"/repos/{REPO}/actions/secrets/S{i}", put) for i in range(2)]
    assert [status for status, _, _ in answers] == [201, 403]
    assert "abuse detection mechanism" in answers[1][2]["message"]


def fill(stand_in: GitHubStandIn, count: int, **where: str) -> None:
    box = stand_in.box(**where)
    for i in range(count):
        box.secrets[f"OTHER_{i:04d}"] = Secret(stand_in.seal_in(box, "x"), box.key_id, "2026-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("where", "prefix", "cap"),
    [
        ({"repo": REPO}, f"/repos/{REPO}/actions", 100),
        ({"repo": REPO, "environment": "prod"}, f"/repos/{REPO}/environments/prod", 100),
        ({"org": ORG}, f"/orgs/{ORG}/actions", 1000),
    ],
)
def test_stand_in_refuses_a_secret_past_the_limit(
    bare: GitHubStandIn, where: dict[str, str], prefix: str, cap: int
) -> None:
    bare.add_token()
    bare.add_repo(REPO, environments=("prod",))
    bare.add_org(ORG)
    fill(bare, cap - 1, **where)
    box = bare.box(**where)
    put: dict[str, Any] = {"encrypted_value": bare.seal_in(box, "v"), "key_id": box.key_id}
    if "org" in where:
        put["visibility"] = "private"
    assert call(bare, "PUT", f"{prefix}/secrets/LAST", put)[0] == 201  # the last one that fits
    status, _, body = call(bare, "PUT", f"{prefix}/secrets/ONE_TOO_MANY", put)
    assert status == 422 and str(cap) in body["message"], body
    assert call(bare, "PUT", f"{prefix}/secrets/LAST", put)[0] == 204  # updating one is no new secret


def test_full_repository_fails_cleanly_and_says_why(stack: Stack) -> None:
    """A repository already holding 100 other secrets: GitHub refuses the first new one; the run fails,
    leaves no key behind, and the message names the limit and the fix."""
    token = setup(stack)
    fill(stack.github, 100, repo=REPO)
    result = stack.run({"github-token": token})
    assert result.returncode == 1, result.stdout
    error = "\n".join(result.errors())
    assert "at most 100 secrets in a repository" in error and "delete the secrets it no longer uses" in error
    assert user_keys(stack) == []
    assert set(stack.github.repos[REPO.lower()].secrets) == {f"OTHER_{i:04d}" for i in range(100)}


# -- 3. environment secrets with a fine-grained token ------------------------------------------------------


def test_environment_refused_names_the_environments_permission(stack: Stack) -> None:
    stack.github.add_repo(REPO, environments=("prod",))
    token = stack.github.add_token(secrets_permission=False)
    result = stack.run({"github-token": token, "environment": "prod"})
    assert result.returncode == 1, result.stdout
    error = result.errors()[0]
    assert "Secrets: Read and write" in error and "Environments: Read and write" in error, error
    assert stack.boto("iam").list_users()["Users"] == []  # checked before anything in AWS changed


# -- 4. an organization secret's selection moves its updated_at --------------------------------------------


def test_stand_in_selection_put_moves_the_secrets_updated_at(bare: GitHubStandIn) -> None:
    bare.add_token()
    repo = bare.add_repo(f"{ORG}/app")
    org = bare.add_org(ORG)
    org.secrets["S"] = Secret(bare.seal_in(org, "x"), org.key_id, "2026-01-01T00:00:00Z", "selected")
    path = f"/orgs/{ORG}/actions/secrets/S"
    before = bare.now()
    assert call(bare, "PUT", f"{path}/repositories", {"selected_repository_ids": [repo.id]})[0] == 204
    assert before <= call(bare, "GET", path)[2]["updated_at"] <= bare.now()  # ISO, whole seconds, UTC
