"""Times: one format for the record and the outputs, one for people; and the write deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

_ISO = "%Y-%m-%dT%H:%M:%SZ"


def iso(when: datetime) -> str:
    """ISO 8601 in UTC to the second: the record's times and the key-created output."""
    return when.astimezone(UTC).strftime(_ISO)


def parse_iso(text: str) -> datetime | None:
    """The inverse of iso(); None for anything else."""
    try:
        return datetime.strptime(text, _ISO).replace(tzinfo=UTC)
    except ValueError:
        return None


def readable(when: datetime, *, seconds: bool = True) -> str:
    """For messages: 2026-12-01 05:20:30 UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class WriteDeadline:
    """The part of the run's recorded lease (less a margin for the write in flight) in which it writes
    targets, on the local clock. No target write starts, and no request is retried, once it is over."""

    ends: float  # time.monotonic()

    @classmethod
    def lasting(cls, seconds: float) -> WriteDeadline:
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return self.ends - time.monotonic()
