"""The plan, decided: a lease that looks held is checked once more before the run is refused."""

from __future__ import annotations

from collections.abc import Iterable

from .aws import AwsClients
from .errors import GitHubError, LeaseHeld, NoSafeKey, RotationError
from .github import GitHub
from .inputs import Settings
from .keys.record import Lease
from .look import IAM_READ_LAG, Picture, look_at_user_again, look_up_holders
from .plan import Plan, plan, settings_places
from .report import Note
from .times import readable
from .workflow import Workflow


def decide(
    settings: Settings, aws: AwsClients, github: GitHub, workflow: Workflow, picture: Picture
) -> tuple[Plan, Picture]:
    """The plan, and the picture it was made from. A lease that looks held is checked with GitHub (an
    actions-token shows whether its run has completed), else by reading IAM again after its read lag."""
    over: frozenset[str] = frozenset()
    for attempt in range(2):
        try:
            return plan(settings, picture, aws.iam_now(), over), picture
        except NoSafeKey as refused:
            say(refused.notes, workflow)  # what settling found explains the refusal
            raise
        except LeaseHeld as held:
            if attempt or picture.user is None:
                raise lease_error(settings, held) from held
            lease = held.lease
            if lease is not None and lease.run and run_completed(settings, github, workflow, lease):
                over |= {lease.run.token}
                # Its targets' timestamps as they are now that it has finished writing.
                picture = look_up_holders(github, settings, picture, settings_places(settings))
                continue
            workflow.info(
                f"The lease on {settings.iam_user} looks held; reading IAM again in {IAM_READ_LAG:g} s "
                "(its reads may lag its writes)."
            )
            picture = look_at_user_again(aws, github, settings, picture, settings_places(settings))
    raise AssertionError("unreachable")  # pragma: no cover


def say(notes: Iterable[Note], workflow: Workflow) -> None:
    for note in notes:
        if note.title:
            workflow.warning(note.text, title=note.title)
        else:
            workflow.info(note.text)


def run_completed(settings: Settings, github: GitHub, workflow: Workflow, lease: Lease) -> bool:
    """Ask GitHub whether the run holding the lease has completed (needs actions-token)."""
    run = lease.run
    if not settings.actions_token or run is None or not run.repository:
        return False
    checker = github.with_token(settings.actions_token)
    try:
        done = checker.run_completed(run.repository, run.run_id, run.attempt)
    except GitHubError as exc:
        workflow.warning(
            f"Could not ask GitHub whether {run.describe()} has completed ({exc.message}); "
            "the actions-token needs actions: read on that repository.",
            title="Lease holder not checked",
        )
        return False
    if done:
        workflow.info(f"GitHub says {run.describe()} has completed: taking over its lease.")
    return done


def lease_error(settings: Settings, held: LeaseHeld) -> RotationError:
    until = readable(held.until) if held.until else "its lease ends"
    run = held.lease.run if held.lease else None
    serialise = "Serialise runs for one IAM user with a workflow concurrency group keyed on the user."
    if run is not None and run.run_id:
        who = run.describe()
        fix = (
            f"Wait until {until} and rerun; or, if that run is over, re-run it ({run.link}: a later attempt "
            "takes over at once) or cancel it; or give this action an actions-token with actions: read "
            f"so it can see that the run has completed. {serialise}"
        )
    else:
        who = "another run (one that did not record its name: outside GitHub Actions, or an older version)"
        fix = f"Wait until {until} and rerun, once that run has finished. {serialise}"
    return RotationError(
        f"{who} holds the lease on IAM user {settings.iam_user} until {until}: it may still be writing a "
        "new key, and two runs must not write one user's keys at once. Nothing was changed.",
        fix=fix,
    )
