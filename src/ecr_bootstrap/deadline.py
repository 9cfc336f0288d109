"""The write deadline: the part of the run's recorded lease (less a margin for the write in flight) in which
it writes targets, on the local clock. No target write starts, and no request is retried, once it is over."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WriteDeadline:
    ends: float  # time.monotonic()

    @classmethod
    def lasting(cls, seconds: float) -> WriteDeadline:
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return self.ends - time.monotonic()
