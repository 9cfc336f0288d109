"""Every exception of the action, in one place. Every failure the user can act on is a BootstrapError;
a cancellation is a Cancelled, rendered the same way (both are a Failure)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .keys.record import Lease
    from .report import Note


class Failure:
    """What the user reads: a title, what happened, what to do about it, and a Troubleshooting anchor.
    Messages never contain secret values: callers pass only names, ids and AWS/GitHub error texts."""

    title = "ECR bootstrap failed"
    message = ""
    fix = ""
    anchor = ""

    def render(self, docs: str) -> str:
        """`docs`: the README's URL."""
        fix = f"Fix: {self.fix} " if self.fix else ""
        anchor = f"-{self.anchor}" if self.anchor else ""
        return f"{self.message} {fix}Docs: {docs}#troubleshooting{anchor}"


class BootstrapError(Failure, Exception):
    def __init__(self, message: str, *, fix: str = "", anchor: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.anchor = anchor or self.anchor  # or the class's own


class Cancelled(Failure, BaseException):
    """Like KeyboardInterrupt, not an Exception: the SDKs wrap any Exception raised inside a request (a
    signal lands there most often) into a retryable connection error, and would retry it."""

    title = "ECR bootstrap cancelled"
    fix = "Rerun when ready: a run started after a cancelled one goes ahead at once."
    anchor = "cancelled"

    def __init__(self, signal: str, deadline: float) -> None:
        self.message = f"The job was cancelled ({signal}); the run stopped and rolled back what it could."
        super().__init__(self.message)
        self.signal_name = signal
        self.deadline = deadline  # time.monotonic() by which the rollback is over
        self.handled = False  # set first where it is caught: until then, a signal raises it again

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class InputError(BootstrapError):
    title = "Invalid input"

    def __init__(self, name: str, message: str, *, fix: str = "") -> None:
        super().__init__(f"Input '{name}': {message}", fix=fix, anchor="inputs")
        self.input_name = name


class Usage(BootstrapError):
    """A command line that cannot work (exit code 2); nothing was read or changed."""


class AwsError(BootstrapError):
    title = "AWS request failed"

    def __init__(self, message: str, *, code: str = "", fix: str = "", anchor: str = "aws") -> None:
        super().__init__(message, fix=fix, anchor=anchor)
        self.code = code


class GitHubError(BootstrapError):
    title = "GitHub request failed"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        ambiguous: bool = False,
        fix: str = "",
        anchor: str = "github",
    ) -> None:
        super().__init__(message, fix=fix, anchor=anchor)
        # None: no HTTP answer at all (reset, timeout): a write may or may not have landed.
        self.status = status
        self.ambiguous = ambiguous


class RotationError(BootstrapError):
    title = "Key rotation stopped"
    anchor = "keys"


class LeaseExpired(GitHubError):
    """A write (or its retry) would start past this run's lease: another run may take over from then on,
    so this run stops writing targets."""

    title = "Lease ran out"


class NoSafeKey(RotationError):
    """No new key can be made safely; `notes`: what settling the record found, which explains why."""

    def __init__(self, message: str, *, fix: str, notes: tuple[Note, ...] = ()) -> None:
        super().__init__(message, fix=fix)
        self.notes = notes


class KeyRaced(RotationError):
    """This run's look showed no key, but another run had made one first (racing, or seen late through
    IAM's read lag): this run's key is deleted and nothing was written. The caller reads IAM again."""


class KeyPlanError(Exception):
    """Why no new key can be created safely (keys.rules); turned into a NoSafeKey by the plan."""


class LeaseHeld(KeyPlanError):
    """Another run holds the lease recorded on the user: the caller says who, until when, what to do."""

    def __init__(self, lease: Lease | None, until: datetime | None) -> None:
        self.lease = lease
        self.until = until
        super().__init__("another run holds this user's lease")


class Unreadable(ValueError):
    """A key record entry that is not what this action writes: the reason names what is wrong."""
