"""A rotation's writes of each target's key pair, whose outcomes go to the log (journal.py). The id goes
before the secret because an id can be restored (IAM lists it) and a secret cannot: if the secret write
fails, writing the old id back leaves the old pair whole. A write whose outcome stays unknown may still land
(github/api.py, LATE_WINDOW): no other value is written to that secret, so both keys stay possible."""

from __future__ import annotations

from ..deadline import WriteDeadline
from ..errors import GitHubError
from ..plan import Target
from .commit import RotationState
from .journal import Pair, TargetFact


def _note(rot: RotationState, t: Target, step: Pair, detail: str = "") -> None:
    rot.log.add(TargetFact(t.scope, step, detail))


def write(rot: RotationState, t: Target, lease: WriteDeadline | None) -> GitHubError | None:
    """Returns the failure, if any. Each write is compared, when its outcome is open, with the one this run
    made just before it."""
    key, names = rot.key, rot.settings.secret_names
    _note(rot, t, Pair.ID_SENT)
    try:
        rot.github.put_secret(t.place, names.key_id, key.key_id, after=names.repository_uri, deadline=lease)
    except GitHubError as exc:
        if exc.ambiguous:  # it may still land: the old id is not put back over it
            _note(rot, t, Pair.ID_UNCERTAIN)
        else:  # refused, or read back as not written: nothing changed
            _note(rot, t, Pair.ID_REFUSED)
        return exc
    _note(rot, t, Pair.ID_WRITTEN)
    _note(rot, t, Pair.SECRET_SENT)
    try:
        rot.github.put_secret(t.place, names.secret_key, key.secret, after=names.key_id, deadline=lease)
    except GitHubError as exc:
        if exc.ambiguous:  # even reading it back could not tell
            _note(rot, t, Pair.SECRET_UNCERTAIN)
        else:
            restore_id(rot, t, lease)
        return exc
    _note(rot, t, Pair.SECRET_WRITTEN)
    return None


def restore_id(rot: RotationState, t: Target, lease: WriteDeadline | None) -> None:
    """The secret did not change (or may not have): the id goes back to the previous key, the one key the
    secret can belong to. If that is not known, or the write fails, the target is unknown."""
    name = rot.settings.secret_names.key_id
    alive = {k.key_id for k in rot.keys}  # an id is only ever put back to one of the user's older keys
    live = [k for k in t.previous if k in alive]
    if not rot.github.wait_out_open_write(t.place, name, lease):  # the new id could land over the old
        _note(rot, t, Pair.RESTORE_FAILED, f"a write of its {name} may still land")
        return
    _note(rot, t, Pair.ID_SENT)
    try:
        if len(live) == 1:
            rot.github.put_secret(t.place, name, live[0], deadline=lease)
            _note(rot, t, Pair.ID_RESTORED, live[0])
        elif not t.previous:
            rot.github.delete_secret(t.place, name, lease)
            _note(rot, t, Pair.ID_RESTORED)
        else:
            _note(rot, t, Pair.RESTORE_FAILED)
    except GitHubError as exc:
        _note(rot, t, Pair.RESTORE_FAILED, exc.message)  # its secret is still the previous key's


def settle(rot: RotationState, t: Target, read_back: bool) -> None:
    """After a cancellation: a target whose id was written (and no secret sent) gets its old id back. A
    secret on its way when it came may land later (github/api.py, LATE_WINDOW), longer than the rollback
    may take, so no other value is put over it: the same secret is sent once more (`read_back`: time allows
    it), and whichever of the two lands, the target holds the new pair. If that fails too, the target stays
    unknown, both keys kept, for the next run to settle. None of these waits out a lost answer."""
    last, names = rot.log.last(t.scope), rot.settings.secret_names
    step = last.step if last else None
    brief = WriteDeadline.lasting(1.0)  # the rollback's budget, not the late-write window
    if step is Pair.SECRET_SENT and read_back:
        try:
            rot.github.put_secret(
                t.place, names.secret_key, rot.key.secret, after=names.key_id, deadline=brief
            )
        except GitHubError:
            return
        _note(rot, t, Pair.SECRET_WRITTEN)
    elif step is Pair.ID_WRITTEN:
        restore_id(rot, t, brief)
