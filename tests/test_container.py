"""The built image, run as GitHub runs a container action, against the loopback stand-ins.

Runs when ECR_BOOTSTRAP_IMAGE names an image built by scripts/build-image.sh (.ci/run does that).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.stand_ins.checks import (
    REPO,
    assert_no_leak,
    assert_policy_least_privilege,
    assert_target_works,
    setup,
)
from tests.stand_ins.harness import Stack

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


@pytest.mark.skipif(not IMAGE, reason="set ECR_BOOTSTRAP_IMAGE to an image built by scripts/build-image.sh")
def test_sigterm_to_the_container_rolls_back(stack: Stack) -> None:
    """The entry point is PID 1 in its container, where a signal without a handler is ignored. podman run,
    like the runner's docker run, forwards the signal to it; the run rolls back and exits 1 in time."""
    token = setup(stack)
    assert stack.run({"github-token": token}, image=IMAGE).returncode == 0
    old = assert_target_works(stack, REPO)
    hung = stack.github.fail("PUT", "/actions/secrets/AWS_SECRET_ACCESS_KEY$", status=-1)
    running = stack.start({"github-token": token}, image=IMAGE)
    assert hung.held.wait(120)
    start = time.monotonic()
    running.signal(signal.SIGTERM)
    result = running.wait(60)
    elapsed = time.monotonic() - start
    hung.release.set()
    stack.github.faults.clear()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "title=ECR bootstrap cancelled" in result.errors()[0]
    assert elapsed <= 7.5, f"{elapsed:.1f} s: the runner would have sent SIGTERM's successor by now"
    # The secret on its way may still land, so it is sent again rather than undone: a working new pair.
    assert assert_target_works(stack, REPO) != old
