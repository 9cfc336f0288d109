"""The rotation's lease as a value: passed with each target write, so that no write starts (and no request
is retried) once too little of it is left."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    """Until when (time.monotonic) this run may write targets: its IAM lease minus a margin for the
    write in flight."""

    ends: float

    @classmethod
    def lasting(cls, seconds: float) -> Lease:
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return self.ends - time.monotonic()
