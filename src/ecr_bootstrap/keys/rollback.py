"""The one way back from a rotation that stopped, for a fault and a cancellation alike: what the log says
exists is undone as far as the stage says the run got. A cancellation (the runner's SIGINT, then SIGTERM
7.5 s later) rolls back with short, single-try requests; a fault with the run's own clients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from ..aws import iam, is_code
from ..cancel import ROLLBACK_REQUEST
from ..errors import BootstrapError, Cancelled, GitHubError, KeyRaced, RotationError
from ..plan import Target
from ..report import TargetResult
from ..times import WriteDeadline, readable
from .commit import Pair, RotationState, Stage, entry_keys
from .record import holder_tags
from .rules import IAM_CLOCK_MARGIN

Stop = BootstrapError | Cancelled  # either way, what the user reads is an errors.Failure


def rollback(rot: RotationState, cause: Stop, what: str = "") -> Stop:
    """Undo what `rot` made; `what` names the step that failed (a fault). Returns the error to raise."""
    if not isinstance(cause, Cancelled):
        return _undo(rot, cause, what)
    rot.workflow.info(f"{cause.signal_name} received while {rot.stage.value}: rolling back.")
    seconds = min(ROLLBACK_REQUEST, max(0.5, cause.remaining() / 2))
    rot.aws, rot.github = rot.aws.bounded(seconds), rot.github.bounded(seconds)
    try:
        _undo(rot, cause, what)
    except BootstrapError as failed:
        cause.message += f" Rolling back stopped: {failed.message}. The next run repairs the rest."
    return cause


def _undo(rot: RotationState, cause: Stop, what: str) -> Stop:
    """By stage, i.e. by what may have been on its way. A fault while reclaiming a slot or writing the lease
    is not rolled back: nothing of this run's exists but, at most, its lease, which runs out."""
    cancelled = isinstance(cause, Cancelled)
    match rot.stage:
        case Stage.USER | Stage.START | Stage.INTENT:  # no key: a new user's entries go, or the lease ends
            if cancelled and rot.created_user and rot.user is None:  # CreateUser was on its way
                with contextlib.suppress(BootstrapError):
                    rot.user = iam.find_user(rot.aws, rot.settings.iam_user)
            _withdraw(rot, "done")
            if cancelled and rot.stage is not Stage.USER:
                cause.message += " No key was created and no target was changed."
        case Stage.CREATING if isinstance(cause, Cancelled):
            _find_made_key(rot, cause)
        case Stage.CREATING:  # LimitExceeded: no key was made; otherwise one may have been (window open)
            _withdraw(rot, "done" if is_code(cause, "LimitExceeded") else "pending")
        case Stage.CREATED:
            return _unmake(rot, cause, what)
        case Stage.WRITING if isinstance(cause, Cancelled):  # a failed write is only its target's outcome
            _settle(rot, cause)
        case Stage.COMMIT | Stage.COMMITTED if isinstance(cause, BootstrapError):  # nothing is deleted
            return _commit_failed(rot, cause)
        case Stage.COMMIT | Stage.COMMITTED:
            rot.commit()
            cause.message += " Its record was written; older keys are retired by the next run."
        case _ if cancelled:  # RETIRE, DONE: the next run retires what this one did not
            cause.message += " Every target was written; older keys are retired by the next run."
    return cause


def _release(rot: RotationState, state: str, entries: Iterable[dict[str, str]] = ()) -> None:
    """End the lease early (in the request that writes `entries`), so that the next run need not wait for it;
    `pending` (ended at once) keeps the creation window open for a key this run may have made without
    learning its id. When the lease cannot be marked done, removing it frees it just as well."""
    lease, user = rot.lease, rot.user
    if lease is None or user is None:
        return
    if state == "pending":
        lease.until = rot.now()
    try:
        iam.tag_user(rot.aws, user.name, [*entries, *lease.tags(state)])
    except BootstrapError:
        if state == "done":
            keys = [t["Key"] for s in ("pending", "done") for t in lease.tags(s)]
            with contextlib.suppress(BootstrapError):  # the lease runs out instead
                iam.untag_user(rot.aws, user.name, sorted({*keys, f"{lease.tag}/2", f"{lease.tag}/3"}))


def _withdraw(rot: RotationState, state: str) -> None:
    """No key of this run's exists (`pending`: one may, unseen). A new user's entries go and its intent is
    done, so that the next run is not refused while this one's lease would run."""
    if not rot.created_user:
        _release(rot, state)
    elif rot.user is not None and rot.lease is not None:
        gone = [k for t in rot.rotate.targets for k in entry_keys(rot.record, t, rot.log.new_key)]
        with contextlib.suppress(BootstrapError):  # the lease runs out instead
            iam.tag_user(rot.aws, rot.user.name, rot.lease.tags("done"))
            iam.untag_user(rot.aws, rot.user.name, gone)


def _find_made_key(rot: RotationState, cause: Cancelled) -> None:
    """CreateAccessKey was on its way: the key it may have made (not one that existed) is deleted; if IAM
    does not show it (yet), the lease ends with its creation window open."""
    existing = {k.key_id for k in rot.keys}
    made = [k for k in iam.list_keys(rot.aws, rot.user_name) if k.key_id not in existing]
    if len(made) == 1 and rot.lease and made[0].created >= rot.lease.since - IAM_CLOCK_MARGIN:
        rot.delete_key(made[0].key_id, "")
        _release(rot, "done")
        cause.message += f" The key it was creating ({made[0].key_id}) was deleted; no target was changed."
    else:
        _release(rot, "pending")
        cause.message += " No target was changed; a key it may have created is reclaimed by the next run."
    _all_unchanged(rot)


def _unmake(rot: RotationState, cause: Stop, what: str) -> Stop:
    """No target changed yet: the new key goes, then the record is put back as it was (lease done)."""
    new, user, raced = rot.key.key_id, rot.user_name, isinstance(cause, KeyRaced)
    why = "another run made one first" if raced else "rolled back before any target changed"
    try:
        rot.delete_key(new, why)
    except BootstrapError as failed:
        _release(rot, "pending")  # a later run adopts the key (its creation window) and reclaims it
        if isinstance(cause, Cancelled):
            return cause
        return RotationError(
            f"{what} failed ({cause.message}); deleting the new key {new} then failed too "
            f"({failed.message}). No target was changed.",
            fix=f"Delete access key {new} of {user} in IAM, then rerun.",
        )
    if raced:
        _release(rot, "done")
        cause.message += f"; this run deleted its own key {new} and stopped before writing any target."
        return cause
    targets = rot.rotate.targets
    _release(rot, "done", [tag for t in targets if t.previous for tag in holder_tags(t.place, t.previous)])
    with contextlib.suppress(BootstrapError):  # entries naming a deleted key are ignored by later runs
        iam.untag_user(
            rot.aws, user, [k for t in targets if not t.previous for k in entry_keys(rot.record, t, new)]
        )
    _all_unchanged(rot)
    if isinstance(cause, Cancelled):
        cause.message += (
            f" The new key {new} was deleted; no target was changed and every target keeps its previous key."
        )
        return cause
    return RotationError(
        f"{what} failed: {cause.message}. Rolled back: the new key {new} was deleted; no target was changed "
        "and every target keeps its previous key.",
        fix=cause.fix,
    )


def _settle(rot: RotationState, cause: Cancelled) -> None:
    """Cancelled amid the pairs: a target whose id was written (and no secret sent) gets its old id back. A
    secret on its way when it came may land later (github/api.py, LATE_WINDOW), longer than the rollback
    may take, so no other value is put over it: the same secret is sent once more (if time allows), and
    whichever of the two lands, the target holds the new pair. If that fails too, the target stays unknown,
    both keys kept, for the next run to settle. None of these waits out a lost answer. The record then says
    what each target holds."""
    names = rot.settings.secret_names
    for t in rot.rotate.targets:
        last, brief = rot.log.last(t.scope), WriteDeadline.lasting(1.0)  # the rollback's, not the late window
        step = last.step if last else None
        if step is Pair.SECRET_SENT and cause.remaining() > 1:
            with contextlib.suppress(GitHubError):
                rot.github.put_secret(
                    t.place, names.secret_key, rot.key.secret, after=names.key_id, deadline=brief
                )
                rot.note(t, Pair.SECRET_WRITTEN)
        elif step is Pair.ID_WRITTEN:
            restore_id(rot, t, brief)
    rot.report.targets = rot.results()
    rot.commit()
    states = ", ".join(f"{r.repository}: {r.state}" for r in rot.report.targets)
    cause.message += f" Targets: {states}."


def restore_id(rot: RotationState, t: Target, lease: WriteDeadline | None) -> None:
    """The secret did not change (or may not have): the id goes back to the previous key, the one key the
    secret can belong to. If that is not known, or the write fails, the target is unknown."""
    name = rot.settings.secret_names.key_id
    alive = {k.key_id for k in rot.keys}  # an id is only ever put back to one of the user's older keys
    live = [k for k in t.previous if k in alive]
    if not rot.github.wait_out_open_write(t.place, name, lease):  # the new id could land over the old
        rot.note(t, Pair.RESTORE_FAILED, f"a write of its {name} may still land")
        return
    rot.note(t, Pair.ID_SENT)
    try:
        if len(live) == 1:
            rot.github.put_secret(t.place, name, live[0], deadline=lease)
            rot.note(t, Pair.ID_RESTORED, live[0])
        elif not t.previous:
            rot.github.delete_secret(t.place, name, lease)
            rot.note(t, Pair.ID_RESTORED)
        else:
            rot.note(t, Pair.RESTORE_FAILED)
    except GitHubError as exc:
        rot.note(t, Pair.RESTORE_FAILED, exc.message)  # its secret is still the previous key's


def _all_unchanged(rot: RotationState) -> None:
    rot.report.targets = [
        TargetResult(t.repository, "unchanged", "keeps its previous key") for t in rot.rotate.targets
    ]


def _commit_failed(rot: RotationState, exc: BootstrapError) -> RotationError:
    held = [r.repository for r in rot.results() if r.state in ("written", "unknown")]
    until = readable(rot.lease.until) if rot.lease else "the lease ends"
    return RotationError(
        f"Recording the outcome on the IAM user failed ({exc.message}) after the targets were written"
        + (f" ({', '.join(held)} hold(s) the new key {rot.key.key_id})" if held else "")
        + f". Nothing was deleted: both keys are kept. This run's lease ends at {until}; a run after "
        "that settles, from GitHub's timestamps, which key each target holds and retires the other.",
        fix=f"Rerun after {until} (a re-run of this run may start at once), once IAM accepts TagUser "
        "again (iam:TagUser must be allowed).",
    )


def failure_error(rot: RotationState, failure: GitHubError) -> RotationError:
    """A target's write failed and the run went on to commit: what became of the new key and each target."""
    outcomes, new = rot.outcomes(), rot.key.key_id
    parts = [outcomes[t.scope].line(t.repository) for t in rot.rotate.targets]
    if any(new in o.holds for o in outcomes.values()):
        outcome = (
            f"Partly done: the new key {new} was kept because some targets hold it; "
            "keys that other targets still hold were kept too."
        )
    else:
        outcome = f"Rolled back: the new key {new} was deleted and every target keeps the key it had."
    fix = "Rerun once GitHub answers again; the record on the IAM user makes the rerun safe."
    if any(o.state == "unknown" for o in outcomes.values()):
        fix = (
            "A target's secrets may now be a mismatched pair: rerun to write a fresh pair (the record "
            "marks it to be written anew, and keeps every key its secret may belong to)."
        )
    return RotationError(f"{failure.message}. {outcome} Targets: " + "; ".join(parts) + ".", fix=fix)


def broken(rot: RotationState, exc: Stop) -> Stop:
    """After a break-before-make deletion, a failure names the targets left without a working key."""
    plan = rot.rotate.keys
    if plan.breaks and plan.reclaim and plan.reclaim.key_id not in {k.key_id for k in rot.keys}:
        labels = ", ".join(rot.record.place_of(s).label for s in plan.breaks)
        exc.message += (
            f" Access key {plan.reclaim.key_id} was deleted first to make room (IAM allows 2 "
            f"keys), so {labels} may hold no working key now: rerun this workflow to write them one."
        )
    return exc
