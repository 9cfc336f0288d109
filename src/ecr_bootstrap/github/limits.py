"""GitHub's rate limits and retries. REST docs, "Rate limits for the REST API": the primary limit
(x-ratelimit-remaining and -reset), secondary limits (a 403 or 429 whose message says so; Retry-After when
given, else at least a minute), and the points a minute each verb costs. GitHub Enterprise Server may still
word a secondary limit as before 2021: "You have triggered an abuse detection mechanism" (the REST v3 docs'
"abuse rate limits")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import GitHubError, LeaseExpired
from ..times import WriteDeadline

READS = ("GET", "HEAD")
SECONDARY_WORDS = ("secondary rate limit", "abuse detection mechanism")
# "If you are making a large number of POST, PATCH, PUT, or DELETE requests [...] wait at least one second
# between each request" (REST rate limits). "A large number" here: more than 20 in one run (a run for 6
# targets makes 18); from the 21st write on, writes are a second apart. 20 is the largest burst that keeps
# any 60 s within the 80 content-creating requests a minute GitHub allows (20 + 60 at one a second).
WRITE_BURST = 20
CONTENT_LIMIT = 80


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5  # first wait for a 5xx or a dropped connection; doubles each time
    max_wait: float = 240.0  # longest single wait (Retry-After included) before giving up
    budget: float = 480.0  # longest time one request may take, retries included

    def wait(
        self,
        error: GitHubError,
        asked: float | None,
        attempt: int,
        elapsed: float,
        deadline: WriteDeadline | None,
    ) -> float:
        """Seconds before the next attempt after `error`, or raises it when there is to be none. `asked`:
        what the answer asked for (None: not to be retried; negative: the usual backoff)."""
        if asked is None:
            raise error
        wait = self.backoff * 2 ** (attempt - 1) if asked < 0 else asked
        wait += random.uniform(0, self.backoff / 2) if wait else 0.0  # noqa: S311 - jitter
        if attempt >= self.attempts or wait > self.max_wait or elapsed + wait > self.budget:
            raise error
        if deadline is not None and wait > deadline.left():
            raise LeaseExpired(
                f"{error.message}; a retry would come after this run's lease",
                status=error.status,
                ambiguous=error.ambiguous,
                fix=error.fix,
            )
        return wait


@dataclass
class Pacer:
    """Stays under GitHub's secondary rate limits for REST instead of colliding with them: 900 points per
    minute (a GET costs 1, any other request 5), 80 content-creating requests per minute, and "at least one
    second between" writes past WRITE_BURST. Requests are counted when the answer arrives, after GitHub
    counted them, so the client never believes a slot free before GitHub does. A smaller `window` scales
    all of it (tests, and GitHub Enterprise Server's own limits)."""

    points: int = 900
    window: float = 60.0
    spent: list[tuple[float, int]] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)

    def delay(self, verb: str, now: float) -> float:
        """How long to wait until enough of this run's earlier requests have left the window."""
        self.spent = [(t, c) for t, c in self.spent if now - t < self.window]
        wait = 0.0
        over = sum(c for _, c in self.spent) + _cost(verb) - self.points
        for t, c in self.spent:
            if over <= 0:
                break
            over -= c
            if over <= 0:
                wait = t + self.window - now
        if verb not in READS:
            if len(self.writes) >= WRITE_BURST:
                wait = max(wait, self.writes[-1] + self.window / 60.0 - now)
            recent = [t for t in self.writes if now - t < self.window]
            if len(recent) >= CONTENT_LIMIT:
                wait = max(wait, recent[-CONTENT_LIMIT] + self.window - now)
        return max(wait, 0.0)

    def spend(self, verb: str, now: float) -> None:
        self.spent.append((now, _cost(verb)))
        if verb not in READS:
            self.writes.append(now)


def _cost(verb: str) -> int:
    return 1 if verb in READS else 5


def rate_limit_wait(
    status: int, headers: dict[str, str], message: str, now: float, window: float = 60.0, repeats: int = 0
) -> float | None:
    """Seconds to wait before retrying a rate-limited answer, or None when it is not one. As GitHub's docs
    ask: Retry-After when sent; else, with x-ratelimit-remaining at 0, until x-ratelimit-reset; else at
    least a minute (`window`), doubling with each of `repeats` earlier refusals in a row. `now` is GitHub's
    time (the answer's Date), so that the reset is not compared with another clock."""
    if status not in (403, 429):
        return None
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        if headers.get("retry-after"):
            return max(0.0, float(headers["retry-after"]))
        if headers.get("x-ratelimit-remaining") == "0":
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - now) + 1.0
    except ValueError:
        return window
    if any(words in message.lower() for words in SECONDARY_WORDS) or status == 429:
        return window * 2.0**repeats
    return None
