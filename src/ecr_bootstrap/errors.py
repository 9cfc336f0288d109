"""One exception base class; every failure the user can act on is one of these."""

from __future__ import annotations


class BootstrapError(Exception):
    """A failure with a title, what happened, and what to do about it.

    Messages never contain secret values: callers pass only names, ids and AWS/GitHub error texts.
    """

    title = "ECR bootstrap failed"

    def __init__(self, message: str, *, fix: str = "", anchor: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.anchor = anchor

    def render(self, docs: str) -> str:
        """The message, the fix, and a link to the README section; `docs` is the README's URL."""
        parts = [self.message]
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        parts.append(f"Docs: {docs}#troubleshooting{'-' + self.anchor if self.anchor else ''}")
        return " ".join(parts)


class InputError(BootstrapError):
    title = "Invalid input"

    def __init__(self, name: str, message: str, *, fix: str = "") -> None:
        super().__init__(f"Input '{name}': {message}", fix=fix, anchor="inputs")
        self.input_name = name


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

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message, fix=fix, anchor="keys")


class LeaseExpired(GitHubError):
    """A write (or its retry) would start past this run's lease: another run may take over from then on,
    so this run stops writing targets."""

    title = "Lease ran out"
