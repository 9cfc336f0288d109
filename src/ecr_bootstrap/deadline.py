"""The write deadline: the part of the run's recorded lease in which it writes targets, on the local clock.
Passed with each target write, so that no write starts (and no request is retried) once too little is left."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WriteDeadline:
    """Until when (time.monotonic) this run may write targets: its IAM lease minus a margin for the
    write in flight."""

    ends: float

    @classmethod
    def lasting(cls, seconds: float) -> WriteDeadline:
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return self.ends - time.monotonic()
