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
