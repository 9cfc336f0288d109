"""GitHub Actions secrets: one client per run, public keys cached per repository, sealed writes, retries.

PyGithub carries the requests (auth, base URL, GitHub Enterprise Server paths); retries are ours, so that
5xx and rate-limit answers are retried the same way everywhere, Retry-After is honoured, and a fault that
persists fails in bounded time. Writes are made one at a time, as GitHub asks; nothing sleeps otherwise.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from .deadline import WriteDeadline
from .errors import GitHubError, LeaseExpired
from .inputs import GITHUB_TOKEN_HELP
from .places import Place

SECONDARY_LIMIT = "secondary rate limit"
INTEGRATION_403 = "Resource not accessible by integration"
# Sent with every request: GitHub's own media type and the REST API version this client is written against
# ("Getting started with the REST API": without them GitHub picks a default that may change).
API_VERSION = "2022-11-28"
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
READS = ("GET", "HEAD")
# Followed with the same method and body. GitHub answers a renamed or transferred repository's old name with
# 301 for reads and 307 for other methods ("Best practices for using the REST API": follow redirects).
# PyGithub follows a 301 itself (same method and body, same host only); a 302 to a write may turn it into a
# GET in other clients, so it is refused, never taken as done.
REDIRECTS = (301, 302, 307, 308)
MAX_REDIRECTS = 5
PER_PAGE = 100  # the most GitHub serves in one page
# "If you are making a large number of POST, PATCH, PUT, or DELETE requests [...] wait at least one second
# between each request" (REST rate limits). "A large number" here: more than 20 in one run (a run for 6
# targets makes 18); from the 21st write on, writes are a second apart. 20 is the largest burst that keeps
# any 60 s within the 80 content-creating requests a minute GitHub allows (20 + 60 at one a second).
WRITE_BURST = 20
CONTENT_LIMIT = 80
# GitHub's Date header and the updated_at it stores come from different servers' clocks.
CLOCK_MARGIN = 2.0
MOVED = re.compile(r"^/repos/[^/]+/[^/]+(?=/|$)", re.IGNORECASE)
MOVED_TO = re.compile(r"^/repositories/\d+(?=/|$)")
LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    key: str  # base64 libsodium public key


@dataclass(frozen=True)
class Call:
    """What a request is for (error messages) and the lease it must stay within, if any."""

    what: str
    lease: WriteDeadline | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    data: Any


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5  # first wait for a 5xx or a dropped connection; doubles each time
    max_wait: float = 240.0  # longest single wait (Retry-After included) before giving up
    budget: float = 480.0  # longest time one request may take, retries included


@dataclass
class Pacer:
    """Stays under GitHub's secondary rate limits for REST instead of colliding with them: 900 points per
    minute (a GET costs 1, any other request 5), 80 content-creating requests per minute, and "at least one
    second between" writes once they are many (WRITE_BURST). Before a request that would go over, it waits
    until enough of this run's earlier requests have left the window. Requests are counted when the answer
    arrives, which is after GitHub counted them, so the client never believes a slot free before GitHub
    does. A smaller `window` scales all of it (tests, and GitHub Enterprise Server's own limits)."""

    points: int = 900
    window: float = 60.0
    spent: list[tuple[float, int]] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)

    @staticmethod
    def cost(verb: str) -> int:
        return 1 if verb in READS else 5

    @property
    def spacing(self) -> float:
        return self.window / 60.0

    def delay(self, verb: str, now: float) -> float:
        self.spent = [(t, c) for t, c in self.spent if now - t < self.window]
        wait = 0.0
        over = sum(c for _, c in self.spent) + self.cost(verb) - self.points
        for t, c in self.spent:
            if over <= 0:
                break
            over -= c
            if over <= 0:
                wait = t + self.window - now
        if verb not in READS:
            if len(self.writes) >= WRITE_BURST:
                wait = max(wait, self.writes[-1] + self.spacing - now)
            recent = [t for t in self.writes if now - t < self.window]
            if len(recent) >= CONTENT_LIMIT:
                wait = max(wait, recent[-CONTENT_LIMIT] + self.window - now)
        return max(wait, 0.0)

    def spend(self, verb: str, now: float) -> None:
        self.spent.append((now, self.cost(verb)))
        if verb not in READS:
            self.writes.append(now)


def seal(public_key: str, value: str) -> str:
    """libsodium sealed box over the repository's public key, base64 as the API wants it."""
    from nacl.public import PublicKey as NaclKey
    from nacl.public import SealedBox

    box = SealedBox(NaclKey(base64.b64decode(public_key)))
    return base64.b64encode(box.encrypt(value.encode("utf-8"))).decode("ascii")


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message", ""))
    return str(data or "")


def _epoch(http_date: str) -> float | None:
    try:
        return parsedate_to_datetime(http_date).timestamp() if http_date else None
    except (TypeError, ValueError):
        return None


def _iso_time(text: str) -> datetime | None:
    """GitHub's timestamps: ISO 8601, UTC, "Z"."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def rate_limit_wait(
    status: int, headers: dict[str, str], message: str, now: float, window: float = 60.0, repeats: int = 0
) -> float | None:
    """Seconds to wait before retrying a rate-limited answer, or None when it is not one. As GitHub's docs
    ask: Retry-After when sent; else, with x-ratelimit-remaining at 0, until x-ratelimit-reset; else at
    least a minute (`window`), doubling each time it repeats (`repeats` earlier refusals in a row). `now`
    is GitHub's time (the answer's Date), so that the reset is not compared with another clock."""
    if status not in (403, 429):
        return None
    headers = {k.lower(): v for k, v in headers.items()}
    retry_after = headers.get("retry-after", "")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return window
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - now) + 1.0
        except ValueError:
            return window
    if SECONDARY_LIMIT in message.lower() or status == 429:
        return window * 2.0**repeats
    return None


def uncertain(exc: GitHubError) -> bool:
    """After a write: no answer (on any attempt) or a server error leaves its outcome open. A redirect not
    followed does not: GitHub answered it without acting on the request (it never counts as written)."""
    return exc.ambiguous or exc.status is None or exc.status >= 500


class GitHub:
    """The REST calls the action makes, against GITHUB_API_URL."""

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        warn: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self._connect = (token, api_url, max(1, round(timeout)))
        parts = urlsplit(api_url)
        self._origin = (parts.scheme, parts.netloc.lower())
        self._prefix = parts.path.rstrip("/")  # /api/v3 on GitHub Enterprise Server
        self._requester_made: Any = None
        self._retry = retry or RetryPolicy()
        self._pacer = pacer or Pacer()
        self._sleep = time.sleep
        self._clock = time.monotonic
        self._warn = warn
        self._keys: dict[str, PublicKey] = {}
        self._ids: dict[str, tuple[int, int]] = {}
        self._moves: dict[str, str] = {}  # /repos/old/name (lower-case) -> /repositories/{id}
        self._github_time: tuple[float, float] | None = None  # (GitHub's Date, our clock then)
        self._limited = 0  # secondary-limit refusals without Retry-After in a row
        self.requests = 0

    @property
    def _requester(self) -> Any:
        """Made on first use: PyGithub's import is paid by the look-up thread, beside botocore's."""
        if self._requester_made is None:
            from github import Auth, Github

            token, api_url, timeout = self._connect
            self._requester_made = Github(
                auth=Auth.Token(token),
                base_url=api_url,
                timeout=timeout,
                retry=None,  # retried here, uniformly
                seconds_between_requests=None,
                seconds_between_writes=None,
                lazy=True,
            ).requester
        return self._requester_made

    def __repr__(self) -> str:  # the token stays out of any accidental log line
        return f"GitHub({self._connect[1]!r})"

    def bounded(self, seconds: float) -> GitHub:
        """The same client for a rollback: one try per request of at most `seconds`, no pacing waits."""
        token, api_url, _timeout = self._connect
        copy = GitHub(token, api_url, timeout=seconds, retry=RetryPolicy(attempts=1), warn=self._warn)
        copy._keys, copy._ids, copy._moves = self._keys, self._ids, self._moves
        copy._github_time = self._github_time
        return copy

    def with_token(self, token: str) -> GitHub:
        """The same API with another token (the optional actions-token)."""
        _token, api_url, timeout = self._connect
        return GitHub(token, api_url, timeout=timeout, retry=self._retry, warn=self._warn)

    def reference(self) -> tuple[int, float] | None:
        """(GitHub's Date of the last answer, whole seconds; our monotonic clock when it arrived): every
        write GitHub stored before that answer has an updated_at at or before that second."""
        if self._github_time is None:
            return None
        date, then = self._github_time
        return int(date), then

    def github_now(self) -> float | None:
        """A lower bound of GitHub's clock now (epoch seconds), from the last answer's Date header: what
        GitHub's own timestamps are compared with, never the runner's clock. None before any answer."""
        if self._github_time is None:
            return None
        date, then = self._github_time
        return date + max(0.0, self._clock() - then)

    def _send(self, verb: str, path: str, body: Any, params: dict[str, Any] | None, call: Call) -> Answer:
        """One HTTP request, paced (each redirect hop counts), never past the lease. PyGithub follows a
        301 itself, with the same method and body, on the same host only. Raises requests' errors."""
        pause = self._pacer.delay(verb, self._clock())
        if pause > 0:
            if call.lease is not None and pause > call.lease.left():
                # Not sent: nothing to read back (a 429-like refusal, not an open outcome).
                raise LeaseExpired(
                    f"{call.what}: GitHub's rate limits would hold it past this run's lease", status=429
                )
            self._sleep(pause)
        self.requests += 1
        try:
            status, headers, text = self._requester.requestJson(
                verb, path, parameters=params, headers=dict(HEADERS), input=body
            )
        finally:
            self._pacer.spend(verb, self._clock())
        headers = {k.lower(): str(v) for k, v in headers.items()}
        date = _epoch(headers.get("date", ""))
        if date is not None:
            self._github_time = (date, self._clock())
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = {"message": text[:200]}
        return Answer(status, headers, data)

    def _api_path(self, url: str) -> str | None:
        """A Location or Link as a path under the API URL; None when it points anywhere else (the token
        is never sent there)."""
        parts = urlsplit(url)
        if parts.netloc and (parts.scheme, parts.netloc.lower()) != self._origin:
            return None
        if not parts.path.startswith(self._prefix + "/"):
            return None
        return parts.path[len(self._prefix) :] + (f"?{parts.query}" if parts.query else "")

    def _moved(self, path: str) -> str:
        m = MOVED.match(path)
        if m and m.group(0).lower() in self._moves:
            return self._moves[m.group(0).lower()] + path[m.end() :]
        return path

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

    def _follow(self, verb: str, path: str, body: Any, params: dict[str, Any] | None, call: Call) -> Answer:
        """Send, following redirects GitHub documents: 307/308 with the same method and body, and any
        redirect of a read. A redirect not followed is returned as the answer (and never counts as done)."""
        path = self._moved(path)
        for _hop in range(MAX_REDIRECTS + 1):
            answer = self._send(verb, path, body, params, call)
            if answer.status not in REDIRECTS:
                return answer
            target = self._api_path(answer.headers.get("location", ""))
            if target is None or (verb not in READS and answer.status in (301, 302)):
                return answer
            self._remember_move(path, target)
            path, params = target, None
        return answer

    def _refusal(self, answer: Answer, what: str, ambiguous: bool) -> tuple[GitHubError, float | None]:
        """The error for an answer that is not a success, and how long to wait before a retry (None: do
        not retry)."""
        status, message = answer.status, _message(answer.data)
        if status in REDIRECTS:
            location = answer.headers.get("location", "")
            text = f"{what}: GitHub answered {status} (moved{' to ' + location if location else ''}), a "
            text += "redirect this client does not follow for this request, so the request was not made"
            return GitHubError(text, status=status, ambiguous=ambiguous), None
        now = _epoch(answer.headers.get("date", "")) or time.time()
        wait = rate_limit_wait(status, answer.headers, message, now, self._pacer.window, self._limited)
        if wait is not None and not answer.headers.get("retry-after"):
            self._limited += 1
        if wait is None and status >= 500:
            wait = -1.0  # the usual backoff
        error = GitHubError(
            f"{what}: HTTP {status}{': ' + message if message else ''}", status=status, ambiguous=ambiguous
        )
        return error, wait

    def _request(
        self,
        verb: str,
        path: str,
        what: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        lease: WriteDeadline | None = None,
    ) -> Answer:
        import requests

        call = Call(what, lease)
        started = self._clock()
        ambiguous = False
        attempt = 0
        while True:
            attempt += 1
            wait: float | None
            try:
                answer = self._follow(verb, path, body, params, call)
            except RuntimeError as exc:  # PyGithub's refusal to follow a 301 to another host or scheme
                raise GitHubError(
                    f"{what}: GitHub redirected elsewhere ({exc}); not followed, so the request was not made",
                    status=301,
                    ambiguous=ambiguous,
                ) from exc
            except requests.RequestException as exc:
                # No answer: a write may have landed. Callers that care check before assuming either way.
                ambiguous = True
                wait = -1.0
                error = GitHubError(
                    f"{what}: no answer from GitHub ({type(exc).__name__})", status=None, ambiguous=True
                )
            else:
                if 200 <= answer.status < 300:
                    self._limited = 0
                    return answer
                error, wait = self._refusal(answer, what, ambiguous)
            self._sleep(self._retry_wait(error, wait, attempt, started, lease))

    def _retry_wait(
        self,
        error: GitHubError,
        wait: float | None,
        attempt: int,
        started: float,
        lease: WriteDeadline | None,
    ) -> float:
        """How long to wait before the next attempt; raises `error` when there is to be none."""
        policy = self._retry
        if wait is None:
            raise error
        if wait < 0:
            wait = policy.backoff * 2 ** (attempt - 1)
        wait += random.uniform(0, policy.backoff / 2) if wait else 0.0  # noqa: S311 - jitter
        elapsed = self._clock() - started
        if attempt >= policy.attempts or wait > policy.max_wait or elapsed + wait > policy.budget:
            raise error
        if lease is not None and wait > lease.left():
            raise LeaseExpired(
                f"{error.message}; a retry would come after this run's lease",
                status=error.status,
                ambiguous=error.ambiguous,
                fix=error.fix,
            )
        return wait

    def _list(self, first: Answer, what: str, key: str) -> list[Any]:
        """Every item of a paginated list, from its first page on: each `Link: rel="next"` as given. An
        error on a later page is an error of the whole list (never a shorter list)."""
        answer, seen = first, set()
        items = list((answer.data or {}).get(key, []))
        total = (answer.data or {}).get("total_count")
        while m := LINK_NEXT.search(answer.headers.get("link", "")):
            following = self._api_path(m.group(1))
            if following is None or following in seen:
                raise GitHubError(f"{what}: GitHub's next page {m.group(1)} is outside the API or repeats")
            seen.add(following)
            try:
                answer = self._request("GET", following, what)
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

    def public_key(self, place: Place) -> PublicKey:
        """Read once per run and place: it also proves the token may use that place's secrets API."""
        if place.secrets_path not in self._keys:
            try:
                data = self._request(
                    "GET",
                    f"{place.secrets_path}/public-key",
                    f"Reading the Actions secrets public key of {place.label}",
                ).data
            except GitHubError as exc:
                raise _explain_access(place, exc) from exc
            self._keys[place.secrets_path] = PublicKey(str(data["key_id"]), str(data["key"]))
        return self._keys[place.secrets_path]

    def repository_ids(self, repository: str) -> tuple[int, int]:
        """(owner id, repository id): for immutable OIDC subjects and selected organization secrets."""
        if repository not in self._ids:
            try:
                data = self._request("GET", f"/repos/{repository}", f"Reading repository {repository}").data
            except GitHubError as exc:
                raise _explain_access(Place("repo", repository), exc) from exc
            self._ids[repository] = (int(data["owner"]["id"]), int(data["id"]))
            full_name = str(data.get("full_name", repository))
            if full_name.lower() != repository.lower():
                self._warn(
                    f"GitHub redirects {repository} to {full_name}: it was renamed or transferred. Its id "
                    f"stays {data['id']}; update the repositories input to {full_name}."
                )
        return self._ids[repository]

    def run_completed(self, repository: str, run_id: str, attempt: int) -> bool:
        """Whether GitHub says that attempt of that workflow run has completed (needs actions: read)."""
        data = self._request(
            "GET",
            f"/repos/{repository}/actions/runs/{run_id}/attempts/{attempt}",
            f"Reading run {run_id} attempt {attempt} of {repository}",
            params={"exclude_pull_requests": "true"},
        ).data
        return str((data or {}).get("status", "")) == "completed"

    def _environment_path(self, place: Place) -> str:
        return f"/repos/{place.name}/environments/{quote(place.environment, safe='')}"

    def environment_exists(self, place: Place) -> bool:
        try:
            self._request(
                "GET",
                self._environment_path(place),
                f"Reading environment {place.environment} of {place.name}",
            )
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise _explain_access(place, exc) from exc
        return True

    def create_environment(self, place: Place) -> None:
        try:
            self._request(
                "PUT",
                self._environment_path(place),
                f"Creating environment {place.environment} in {place.name}",
                {},
            )
        except GitHubError as exc:
            refused = " GitHub refused the environment's name." if exc.status == 422 else ""
            raise GitHubError(
                f"Environment {place.environment} does not exist in {place.name} (or the token cannot see "
                f"the repository), and creating it failed ({exc.message}).{refused}",
                status=exc.status,
                fix="Create the environment in the repository's Settings > Environments, or give the token "
                "the 'Administration: Read and write' permission. Nothing else was changed.",
                anchor="github",
            ) from exc

    def _secret_path(self, place: Place, name: str) -> str:
        return f"{place.secrets_path}/{quote(name, safe='')}"

    def _org_fields(self, place: Place, path: str, existing_visibility: str, what: str) -> dict[str, Any]:
        """visibility and, for selected, the union of the repositories already selected and ours."""
        visibility = place.visibility or existing_visibility or "private"
        fields: dict[str, Any] = {"visibility": visibility}
        if visibility == "selected":
            ids = set(self._selected(path, what))
            ids |= {self.repository_ids(r)[1] for r in place.selected}
            fields["selected_repository_ids"] = sorted(ids)
        return fields

    def _selected(self, path: str, what: str) -> list[int]:
        """The repositories an organization secret or variable is selected for, every page of them."""
        reading = f"Reading the repositories selected for {what}"
        try:
            first = self._request("GET", f"{path}/repositories", reading, params={"per_page": PER_PAGE})
        except GitHubError as exc:
            if exc.status == 404:  # it does not exist yet
                return []
            if exc.status == 409:  # documented: its visibility is not `selected`, so nothing is selected
                self._warn(
                    f"{what} had visibility all or private; visibility: selected now limits it to the "
                    "repositories this run names."
                )
                return []
            raise
        return [int(r["id"]) for r in self._list(first, reading, "repositories")]

    def put_secret(
        self, place: Place, name: str, value: str, *, after: str = "", lease: WriteDeadline | None = None
    ) -> None:
        """Seal and write one secret. A write whose outcome is open (no answer, a server error) is settled
        by reading the secret back; only then does it count as written or not. `after`: a secret of the same
        place this run wrote (and GitHub confirmed) just before, to compare with. Raises GitHubError with
        the original status; `ambiguous` only when even the read-back cannot tell."""
        key = self.public_key(place)
        path = self._secret_path(place, name)
        what = f"secret {name} of {place.label}"
        body: dict[str, Any] = {"encrypted_value": seal(key.key, value), "key_id": key.key_id}
        if place.kind == "org":
            current = self._get_or_none(path, f"Reading {what}", lease) if not place.visibility else None
            body.update(self._org_fields(place, path, str((current or {}).get("visibility", "")), what))
        since = self.github_now()
        try:
            self._request("PUT", path, f"Writing {what}", body, lease=lease)
        except GitHubError as exc:
            if not uncertain(exc):
                raise
            landed = self._landed(place, name, after, since, lease)
            if landed:
                return
            outcome = "it was not written" if landed is False else "whether it was written is unknown"
            raise GitHubError(
                f"{exc.message}; read back: {outcome}",
                status=exc.status,
                ambiguous=landed is None,
                fix=exc.fix,
            ) from exc

    def landed(self, place: Place, name: str, after: str) -> bool | None:
        """Whether a write of `name` whose answer never came landed: compared with `after`, a secret of
        the same place this run wrote just before (None: cannot tell)."""
        return self._landed(place, name, after, None)

    def _updated(self, place: Place, name: str, lease: WriteDeadline | None = None) -> float | None:
        """updated_at in epoch seconds; None when the secret does not exist. A secret that exists with no
        readable time raises (the caller cannot tell, rather than "not written")."""
        data = self._get_or_none(
            self._secret_path(place, name), f"Reading secret {name} of {place.label} back", lease
        )
        if data is None:
            return None
        at = _iso_time(str(data.get("updated_at", "")))
        if at is None:
            raise GitHubError(f"Secret {name} of {place.label} has no readable updated_at")
        return at.timestamp()

    def _landed(
        self, place: Place, name: str, after: str, since: float | None, lease: WriteDeadline | None = None
    ) -> bool | None:
        """Did the write land? None: cannot tell. Timestamps have whole seconds. With `after`, both come from
        GitHub's storage clock and compare exactly: later than `after` is written, earlier is not, the same
        second cannot tell. Without it, `since` is GitHub's Date (its web servers' clock), so only a gap of
        CLOCK_MARGIN either way tells."""
        try:
            mine = self._updated(place, name, lease)
            if mine is None:
                return False
            if after:
                before = self._updated(place, after, lease)
                return None if before is None or int(mine) == int(before) else mine > before
        except GitHubError:
            return None
        if since is None or abs(mine - since) < CLOCK_MARGIN:
            return None
        return mine > since

    def _get_or_none(self, path: str, what: str, lease: WriteDeadline | None = None) -> Any:
        try:
            return self._request("GET", path, what, lease=lease).data
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def delete_secret(self, place: Place, name: str, lease: WriteDeadline | None = None) -> None:
        try:
            self._request(
                "DELETE",
                self._secret_path(place, name),
                f"Deleting secret {name} of {place.label}",
                lease=lease,
            )
        except GitHubError as exc:
            if exc.status != 404:
                raise

    def secret_updated_at(self, place: Place, name: str) -> datetime | None:
        data = self._get_or_none(self._secret_path(place, name), f"Reading secret {name} of {place.label}")
        return _iso_time(str((data or {}).get("updated_at", "")))

    def put_variable(self, place: Place, name: str, value: str) -> None:
        """Update the variable; create it when it does not exist (one request when it does). A write whose
        outcome is open is settled by reading the variable back (its value is readable, unlike a secret's)."""
        path = f"{place.variables_path}/{quote(name, safe='')}"
        what = f"variable {name} of {place.label}"
        body: dict[str, Any] = {"name": name, "value": value}
        if place.kind == "org":
            body.update(self._org_fields(place, path, "", what))
        try:
            try:
                self._request("PATCH", path, f"Writing {what}", body)
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                self._request("POST", place.variables_path, f"Creating {what}", body)
        except GitHubError as exc:
            if not uncertain(exc):
                raise
            try:
                current = self._get_or_none(path, f"Reading {what} back")
            except GitHubError:
                current = {}
            if current is None or ("value" in current and current["value"] != value):
                outcome = "it was not written"
            elif "value" not in current:
                outcome = "whether it was written is unknown"
            elif place.kind != "org":
                return  # a repository's or environment's variable: its value is all there is to it
            else:
                outcome = "its value was written; whether its visibility and selection were is unknown"
            raise GitHubError(f"{exc.message}; read back: {outcome}", status=exc.status) from exc


def _explain_access(place: Place, exc: GitHubError) -> GitHubError:
    text = str(exc)
    repository = place.label
    if exc.status == 401:
        problem = "GitHub refused the token (bad credentials: wrong, expired or revoked)."
    elif exc.status == 403 and INTEGRATION_403.lower() in text.lower():
        problem = (
            f"the token cannot use the Actions secrets API of {repository} (it lacks the secrets "
            "permission). The workflow's own GITHUB_TOKEN always answers this way: it can never write "
            "secrets."
        )
    elif exc.status == 403:
        problem = f"the token lacks the 'Secrets: Read and write' permission on {repository}."
    elif exc.status == 404:
        problem = (
            f"{repository} was not found, or the token cannot see it (a fine-grained token must list it; "
            "a classic token needs the 'repo' scope)."
        )
    else:
        return exc
    if place.kind == "org":
        problem += (
            " Organization secrets need a token with 'Organization secrets: Read and write' (admin:org)."
        )
    return GitHubError(
        f"Checking access to {repository}: {problem} ({text})",
        status=exc.status,
        fix=f"Pass github-token with {GITHUB_TOKEN_HELP}. Nothing was changed.",
        anchor="token",
    )
