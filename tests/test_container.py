"""The built image, run as GitHub runs a container action, against the loopback stand-ins.

Runs when ECR_BOOTSTRAP_IMAGE names an image built by scripts/build-image.sh (.ci/run does that).
"""

from __future__ import annotations

import os

import pytest

from tests.stand_ins.harness import Stack
from tests.test_core import REPO, assert_no_leak, assert_policy_least_privilege, assert_target_works, setup

IMAGE = os.environ.get("ECR_BOOTSTRAP_IMAGE", "")


@pytest.mark.skipif(not IMAGE, reason="set ECR_BOOTSTRAP_IMAGE to an image built by scripts/build-image.sh")
def test_fresh_run_in_the_image(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token}, image=IMAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    key_id = assert_target_works(stack, REPO)
    assert result.outputs["access-key-id"] == key_id
    assert_policy_least_privilege(stack)
    assert "| ECR repository | `fcj-workshop-app` | created |" in result.summary
    assert_no_leak(result, token, stack.github.decrypt(REPO, "AWS_SECRET_ACCESS_KEY"))


@pytest.mark.skipif(not IMAGE, reason="set ECR_BOOTSTRAP_IMAGE to an image built by scripts/build-image.sh")
def test_every_mode_runs_in_the_pruned_image(stack: Stack) -> None:
    """The image keeps only what the action loads: a rerun, a plan, the OIDC mode and environment
    secrets all still work inside it."""
    token = setup(stack)
    for inputs in (
        {},
        {"dry-run": "true", "keep-images": "5"},
        {"auth": "oidc", "tags": "team=web", "write-variables": "true"},
        {"environment": "prod", "tag-mutability": "IMMUTABLE"},
    ):
        result = stack.run({"github-token": token, **inputs}, image=IMAGE)
        assert result.returncode == 0, (inputs, result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
    assert stack.github.decrypt(REPO, "AWS_ROLE_ARN").endswith(":role/fcj-ecr-ci-cd-role")
