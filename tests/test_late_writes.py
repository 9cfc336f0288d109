"""GitHub writes that land late (issue 22, items 6 and 7): a write whose answer was lost may be applied after
it was read back as absent, and an admin's later change of an organization secret's selection moves its
updated_at. Neither may leave a target with a pair that does not work, or make a run delete a key a target
may hold."""

from __future__ import annotations

from tests.stand_ins.checks import REPO, assert_target_works, pair_works, setup, user_keys
from tests.stand_ins.harness import Stack
from tests.test_github import call

ID_PUT = "/actions/secrets/AWS_ACCESS_KEY_ID$"
SECRET_PUT = "/actions/secrets/AWS_SECRET_ACCESS_KEY$"
ORG = "octo-org"


def _rotate_with_a_late_write(stack: Stack, path: str) -> tuple[str, int]:
    """A first run, then a rotation in which every attempt of one write loses its answer and the last one
    is applied 1 s later (well inside GitHub's 10 s): the read-back right after it sees nothing yet."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old = assert_target_works(stack, REPO)
    stack.advance(1.1)  # timestamps have whole seconds
    stack.github.fail("PUT", path, status=0, times=4)
    stack.github.fail("PUT", path, status=0, times=1, late=1.0)
    result = stack.run({"github-token": token})
    stack.github.landed_late()
    return old, result.returncode


def test_an_id_write_that_lands_late_is_not_undone(stack: Stack) -> None:
    _, code = _rotate_with_a_late_write(stack, ID_PUT)
    key_id = assert_target_works(stack, REPO)  # not the old id beside the new secret, nor a deleted key's
    assert len(user_keys(stack)) <= 2 and key_id in user_keys(stack)
    assert code == 0


def test_a_secret_write_that_lands_late_is_not_undone(stack: Stack) -> None:
    _, code = _rotate_with_a_late_write(stack, SECRET_PUT)
    key_id = assert_target_works(stack, REPO)
    assert len(user_keys(stack)) <= 2 and key_id in user_keys(stack)
    assert code == 0


def test_a_lost_write_that_never_lands_is_believed_after_the_window(stack: Stack) -> None:
    """The one test that waits out the window: then "not written" is believed, and rolled back as ever."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old = assert_target_works(stack, REPO)
    stack.advance(1.1)
    stack.github.fail("PUT", SECRET_PUT, status=0, times=5)
    result = stack.run({"github-token": token})
    assert result.returncode == 1
    assert "read back: it was not written" in result.stdout
    assert assert_target_works(stack, REPO) == old and user_keys(stack) == [old]


def test_an_admins_later_selection_change_is_no_write_of_that_run(stack: Stack) -> None:
    """A run dies with the id written and the secret not; long after its lease, an admin changes the
    secret's selected repositories, which moves its updated_at (as on github.com). The next run must not
    read that as the dead run's secret write: it keeps both keys and writes the target anew."""
    stack.github.add_org(ORG)
    token = setup(stack)
    inputs = {"github-token": token, "organization": ORG, "visibility": "selected", "repositories": REPO}
    assert stack.run(inputs).returncode == 0
    org = stack.github.box(org=ORG)
    old = stack.github.decrypt_in(org, "AWS_ACCESS_KEY_ID")
    stack.advance(1.1)
    held = stack.github.fail("PUT", f"^/orgs/{ORG}{SECRET_PUT}", status=-1)
    running = stack.start(inputs)
    assert held.held.wait(60)
    running.kill()
    held.release.set()  # dropped: never applied
    stack.github.faults.clear()
    assert stack.github.decrypt_in(org, "AWS_ACCESS_KEY_ID") != old  # the id is the dead run's key's
    stack.advance(900 + 60)  # past the dead run's lease
    ids = org.secrets["AWS_SECRET_ACCESS_KEY"].selected
    status, _, _ = call(
        stack.github,
        "PUT",
        f"/orgs/{ORG}/actions/secrets/AWS_SECRET_ACCESS_KEY/repositories",
        {"selected_repository_ids": ids},
    )
    assert status == 204
    stack.github.log.pop()  # the admin's request, not the action's: outside the conformance check
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    key_id = stack.github.decrypt_in(org, "AWS_ACCESS_KEY_ID")
    assert pair_works(stack, key_id, stack.github.decrypt_in(org, "AWS_SECRET_ACCESS_KEY"))
    assert "cannot tell" in result.stdout


def test_a_lost_attempt_that_a_retry_wrote_is_waited_out_before_the_id_is_put_back(stack: Stack) -> None:
    """The id's first attempt loses its answer and a retry writes it; then the secret is refused. The old
    id goes back only once the lost attempt can no longer land (GitHub's window); here it lands 5 s after it
    was sent, so an id put back at once would be overwritten by the new one beside the old secret."""
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old = assert_target_works(stack, REPO)
    stack.advance(1.1)
    stack.github.fail("PUT", ID_PUT, status=0, times=1, late=5.0, late_after_read=False)
    stack.github.fail("PUT", SECRET_PUT, status=403, times=-1, message="Resource not accessible")
    result = stack.run({"github-token": token})
    stack.github.landed_late()
    assert result.returncode == 1
    assert assert_target_works(stack, REPO) == old
    assert user_keys(stack) == [old]
