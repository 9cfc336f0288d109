"""The GitHub client's HTTP layer, whatever the endpoint. PyGithub carries the requests (auth, base URL,
GitHub Enterprise Server paths); ours are the retries, pacing, remembered redirects and pagination. Writes
go one at a time, as GitHub asks; nothing sleeps otherwise. Rate limits as "Rate limits for the REST API"
has them: the primary limit (x-ratelimit-remaining and -reset), secondary limits (a 403 or 429 whose
message says so; Retry-After when given, else at least a minute), and the points a minute each verb costs.
GitHub Enterprise Server may still word a secondary limit as before 2021: "You have triggered an abuse
detection mechanism" (the REST v3 docs' "abuse rate limits")."""

from __future__ import annotations

import copy
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, Self
from urllib.parse import urlsplit

from ..errors import GitHubError, LeaseExpired
from ..times import WriteDeadline

# Sent with every request: GitHub's own media type and the REST API version this client is written against
# ("Getting started with the REST API": without them GitHub picks a default that may change).
API_VERSION = "2022-11-28"
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
# Followed with the same method and body. GitHub answers a renamed or transferred repository's old name with
# 301 for reads and 307 for other methods ("Best practices for using the REST API": follow redirects).
# PyGithub follows a 301 itself (same method and body, same host only); a 302 to a write may turn it into a
# GET in other clients, so it is refused, never taken as done.
REDIRECTS = (301, 302, 307, 308)
MAX_REDIRECTS = 5
PER_PAGE = 100  # the most GitHub serves in one page
MOVED = re.compile(r"^/repos/[^/]+/[^/]+(?=/|$)", re.IGNORECASE)
MOVED_TO = re.compile(r"^/repositories/\d+(?=/|$)")
LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
READS = ("GET", "HEAD")
SECONDARY_WORDS = ("secondary rate limit", "abuse detection mechanism")
# "If you are making a large number of POST, PATCH, PUT, or DELETE requests [...] wait at least one second
# between each request" (REST rate limits). "A large number" here: more than 20 in one run (a run for 6
# targets makes 18); from the 21st write on, writes are a second apart. 20 is the largest burst that keeps
# any 60 s within the 80 content-creating requests a minute GitHub allows (20 + 60 at one a second).
WRITE_BURST = 20
CONTENT_LIMIT = 80


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    data: Any
    date: float | None  # GitHub's Date header, epoch seconds


def epoch(text: str) -> float | None:
    """A time GitHub stores (ISO 8601) or its Date header (RFC 9110) in epoch seconds; None if unreadable."""
    for parse in (datetime.fromisoformat, parsedate_to_datetime):
        try:
            return parse(text).timestamp()
        except (TypeError, ValueError):
            pass
    return None


def uncertain(exc: GitHubError) -> bool:
    """After a write: no answer (on any attempt) or a server error leaves its outcome open. A redirect not
    followed does not: GitHub answered it without acting on the request (it never counts as written)."""
    return exc.ambiguous or exc.status is None or exc.status >= 500


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
        for t, c in self.spent:  # the oldest first, until enough have left (points >= 10 > any cost)
            if over <= 0:
                break
            over -= c
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


class Http:
    """Requests to one GitHub API URL with one token."""

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        timeout: float = 15.0,
        pacer: Pacer | None = None,
        warn: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self._token, self._api_url, self._timeout = token, api_url, max(1, round(timeout))
        parts = urlsplit(api_url)
        self._origin = (parts.scheme, parts.netloc.lower())
        self._prefix = parts.path.rstrip("/")  # /api/v3 on GitHub Enterprise Server
        self._retry, self._pacer, self._warn = RetryPolicy(), pacer or Pacer(), warn
        self._moves: dict[str, str] = {}  # /repos/old/name (lower-case) -> /repositories/{id}
        self._github_time: tuple[float, float] | None = None  # (GitHub's Date, our clock then)
        self._limited = 0  # secondary-limit refusals without Retry-After in a row
        self._once: dict[str, Any] = {}  # path -> what the endpoints read once per run
        self.open_writes: dict[str, float] = {}  # path -> when a write to it last went unsettled

    @cached_property
    def _requester(self) -> Any:
        """Made on first use: PyGithub's import is paid by the look-up thread, beside botocore's."""
        from github import Auth, Github

        return Github(
            auth=Auth.Token(self._token),
            base_url=self._api_url,
            timeout=self._timeout,
            retry=None,  # retried here, uniformly
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        ).requester

    def __repr__(self) -> str:  # the token stays out of any accidental log line
        return f"{type(self).__name__}({self._api_url!r})"

    def bounded(self, seconds: float) -> Self:
        """The same client for a rollback: one try per request of at most `seconds`, no pacing waits. What
        it has learnt (remembered moves, GitHub's clock, what the endpoints read) stays shared."""
        bounded = copy.copy(self)
        bounded._timeout = max(1, round(seconds))
        vars(bounded).pop("_requester", None)  # made anew, with that timeout
        bounded._retry, bounded._pacer, bounded._limited = RetryPolicy(attempts=1), Pacer(), 0
        return bounded

    def with_token(self, token: str) -> Self:
        """The same API with another token (the optional actions-token)."""
        return type(self)(token, self._api_url, timeout=self._timeout, warn=self._warn)

    def reference(self) -> tuple[int, float] | None:
        """(GitHub's Date of the last answer, whole seconds; our monotonic clock when it arrived): every
        write GitHub stored before that answer has an updated_at at or before that second."""
        return None if self._github_time is None else (int(self._github_time[0]), self._github_time[1])

    def github_now(self) -> float | None:
        """A lower bound of GitHub's clock now (epoch seconds), from the last answer's Date header: what
        GitHub's own timestamps are compared with, never the runner's clock. None before any answer."""
        if self._github_time is None:
            return None
        date, then = self._github_time
        return date + max(0.0, time.monotonic() - then)

    def request(
        self, verb: str, path: str, what: str, body: Any = None, deadline: WriteDeadline | None = None
    ) -> Answer:
        """A 2xx answer, after the retries the policy allows; else GitHubError saying `what` failed
        (`ambiguous` once any attempt went unanswered)."""
        import requests

        started, ambiguous, attempt = time.monotonic(), False, 0
        while True:
            attempt += 1
            asked: float | None
            try:
                answer = self._follow(verb, path, body, what, deadline)
            except LeaseExpired as exc:  # not sent; an earlier attempt of it may still land
                exc.ambiguous = ambiguous
                raise
            except RuntimeError as exc:  # PyGithub's refusal to follow a 301 to another host or scheme
                raise GitHubError(
                    f"{what}: GitHub redirected elsewhere ({exc}); not followed, so the request was not made",
                    status=301,
                    ambiguous=ambiguous,
                ) from exc
            except requests.RequestException as exc:
                # No answer: a write may have landed. Callers that care check before assuming either way.
                ambiguous, asked = True, -1.0
                error = GitHubError(
                    f"{what}: no answer from GitHub ({type(exc).__name__})", status=None, ambiguous=True
                )
            else:
                if 200 <= answer.status < 300:
                    self._limited = 0
                    return answer
                error, asked = self._refusal(answer, what, ambiguous)
            if verb not in READS and uncertain(error):
                self.open_writes[path] = time.monotonic()  # this attempt may still land (api.LATE_WINDOW)
            time.sleep(self._retry.wait(error, asked, attempt, time.monotonic() - started, deadline))

    def _follow(self, verb: str, path: str, body: Any, what: str, deadline: WriteDeadline | None) -> Answer:
        """Send, following redirects GitHub documents: 307/308 with the same method and body, and any
        redirect of a read. A redirect not followed is returned as the answer (and never counts as done)."""
        m = MOVED.match(path)
        if m and m.group(0).lower() in self._moves:
            path = self._moves[m.group(0).lower()] + path[m.end() :]
        for _hop in range(MAX_REDIRECTS + 1):
            pause = self._pacer.delay(verb, time.monotonic())  # each hop counts
            if pause > 0:
                if deadline is not None and pause > deadline.left():
                    # Not sent: nothing to read back (a 429-like refusal, not an open outcome).
                    raise LeaseExpired(
                        f"{what}: GitHub's rate limits would hold it past this run's lease", status=429
                    )
                time.sleep(pause)
            answer = self._send(verb, path, body)
            if answer.status not in REDIRECTS:
                return answer
            target = self._api_path(answer.headers.get("location", ""))
            if target is None or (verb not in READS and answer.status in (301, 302)):
                return answer
            self._remember_move(path, target)
            path = target
        return answer

    def _send(self, verb: str, path: str, body: Any) -> Answer:
        """One HTTP request; raises requests' errors."""
        try:
            status, headers, text = self._requester.requestJson(verb, path, headers=dict(HEADERS), input=body)
        finally:
            self._pacer.spend(verb, time.monotonic())
        headers = {k.lower(): str(v) for k, v in headers.items()}
        date = epoch(headers.get("date", ""))
        if date is not None:
            self._github_time = (date, time.monotonic())
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = {"message": text[:200]}
        return Answer(status, headers, data, date)

    def _api_path(self, url: str) -> str | None:
        """A Location or Link as a path under the API URL; None when it points anywhere else (the token
        is never sent there)."""
        parts = urlsplit(url)
        if parts.netloc and (parts.scheme, parts.netloc.lower()) != self._origin:
            return None
        if not parts.path.startswith(self._prefix + "/"):
            return None
        return parts.path[len(self._prefix) :] + (f"?{parts.query}" if parts.query else "")

    def _remember_move(self, path: str, target: str) -> None:
        """A repository's old name redirected to its id: later requests go there at once, and the user is
        told to update the name."""
        old, new = MOVED.match(path), MOVED_TO.match(target)
        if not old or not new or urlsplit(path[old.end() :]).path != urlsplit(target[new.end() :]).path:
            return
        if old.group(0).lower() not in self._moves:
            self._moves[old.group(0).lower()] = new.group(0)
            name = old.group(0).removeprefix("/repos/")
            self._warn(
                f"GitHub redirects {name} to repository id {new.group(0).rsplit('/', 1)[1]}: it was "
                "renamed or transferred. The secrets were written to it under its new name; update the "
                "repositories input to that name."
            )

    def _refusal(self, answer: Answer, what: str, ambiguous: bool) -> tuple[GitHubError, float | None]:
        """The error for an answer that is not a success, and the wait it asks for before a retry (None:
        do not retry; negative: the usual backoff)."""
        status, data = answer.status, answer.data
        message = str(data.get("message", "")) if isinstance(data, dict) else str(data or "")
        if status in REDIRECTS:
            location = answer.headers.get("location", "")
            text = f"{what}: GitHub answered {status} (moved{' to ' + location if location else ''}), a "
            text += "redirect this client does not follow for this request, so the request was not made"
            return GitHubError(text, status=status, ambiguous=ambiguous), None
        now = answer.date or time.time()
        wait = rate_limit_wait(status, answer.headers, message, now, self._pacer.window, self._limited)
        if wait is not None and not answer.headers.get("retry-after"):
            self._limited += 1
        if wait is None and status >= 500:
            wait = -1.0
        error = GitHubError(
            f"{what}: HTTP {status}{': ' + message if message else ''}", status=status, ambiguous=ambiguous
        )
        return error, wait

    def pages(self, path: str, what: str, key: str) -> list[Any]:
        """Every item of a paginated list: its first page, then each `Link: rel="next"` as given. An error
        on a later page is an error of the whole list (never a shorter list)."""
        answer, seen = self.request("GET", f"{path}?per_page={PER_PAGE}", what), set()
        items = list((answer.data or {}).get(key, []))
        total = (answer.data or {}).get("total_count")
        while m := LINK_NEXT.search(answer.headers.get("link", "")):
            following = self._api_path(m.group(1))
            if following is None or following in seen:
                raise GitHubError(f"{what}: GitHub's next page {m.group(1)} is outside the API or repeats")
            seen.add(following)
            try:
                answer = self.request("GET", following, what)
            except GitHubError as exc:
                raise GitHubError(f"{exc.message} (page {len(seen) + 1})", status=None) from exc
            items += (answer.data or {}).get(key, [])
        if isinstance(total, int) and total != len(items):
            raise GitHubError(
                f"{what}: GitHub counted {total} but listed {len(items)}; the list changed while it was "
                "read, and writing it back could drop an entry",
                fix="Rerun; nothing was written from the partial list.",
            )
        return items

    def request_or_none(
        self, verb: str, path: str, what: str, body: Any = None, deadline: WriteDeadline | None = None
    ) -> Answer | None:
        """`request`'s answer; None when GitHub answers 404."""
        try:
            return self.request(verb, path, what, body, deadline)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def get_or_none(self, path: str, what: str, deadline: WriteDeadline | None = None) -> Any:
        """What is at `path`; None when GitHub answers 404."""
        answer = self.request_or_none("GET", path, what, deadline=deadline)
        return None if answer is None else answer.data
