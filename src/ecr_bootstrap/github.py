"""GitHub Actions secrets: one client per run, public keys cached per repository, sealed writes, retries.

PyGithub carries the requests (auth, base URL, GitHub Enterprise Server paths); retries are ours, so that
5xx and rate-limit answers are retried the same way everywhere, Retry-After is honoured, and a fault that
persists fails in bounded time. Writes are made one at a time, as GitHub asks; nothing sleeps otherwise.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .errors import GitHubError
from .inputs import GITHUB_TOKEN_HELP
from .places import Place

SECONDARY_LIMIT = "secondary rate limit"
INTEGRATION_403 = "Resource not accessible by integration"


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    key: str  # base64 libsodium public key


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5  # first wait for a 5xx or a dropped connection; doubles each time
    max_wait: float = 90.0  # longest single wait (Retry-After included) before giving up
    budget: float = 300.0  # longest time one request may take, retries included


@dataclass
class Pacer:
    """Stays under GitHub's secondary rate limit for REST (900 points per minute; a GET costs 1, any
    other request 5) instead of colliding with it: before a request that would go over, wait until enough
    of this run's earlier points have left the window. Points are counted when the answer arrives, which is
    after GitHub counted them, so the client never believes a point free before GitHub does."""

    points: int = 900
    window: float = 60.0
    spent: list[tuple[float, int]] = field(default_factory=list)

    @staticmethod
    def cost(verb: str) -> int:
        return 1 if verb in ("GET", "HEAD") else 5

    def delay(self, verb: str, now: float) -> float:
        self.spent = [(t, c) for t, c in self.spent if now - t < self.window]
        over = sum(c for _, c in self.spent) + self.cost(verb) - self.points
        for t, c in self.spent:
            if over <= 0:
                break
            over -= c
            if over <= 0:
                return t + self.window - now
        return 0.0

    def spend(self, verb: str, now: float) -> None:
        self.spent.append((now, self.cost(verb)))


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


def _header(headers: dict[str, Any] | None, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return ""


def rate_limit_wait(status: int, headers: dict[str, Any] | None, message: str, now: float) -> float | None:
    """Seconds to wait before retrying a rate-limited answer, or None when it is not one."""
    if status not in (403, 429):
        return None
    retry_after = _header(headers, "retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return 60.0
    if _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        try:
            return max(0.0, float(reset) - now) + 1.0
        except ValueError:
            return 60.0
    if SECONDARY_LIMIT in message.lower() or status == 429:
        return 60.0  # GitHub: "wait at least one minute" when no header says how long
    return None


class GitHub:
    """The REST calls the action makes, against GITHUB_API_URL."""

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
    ) -> None:
        self._connect = (token, api_url, max(1, round(timeout)))
        self._requester_made: Any = None
        self._retry = retry or RetryPolicy()
        self._pacer = pacer or Pacer()
        self._sleep = sleep
        self._clock = clock
        self._keys: dict[str, PublicKey] = {}
        self._ids: dict[str, tuple[int, int]] = {}
        self.requests = 0
        # Monotonic time after which no request is retried (the rotation's lease); None: no limit.
        self.deadline: float | None = None

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

    def _request(self, verb: str, path: str, what: str, body: Any = None) -> Any:
        import requests
        from github import GithubException

        policy = self._retry
        started = self._clock()
        ambiguous = False
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            pause = self._pacer.delay(verb, self._clock())
            if pause > 0:
                self._sleep(pause)
            try:
                _headers, data = self._requester.requestJsonAndCheck(verb, path, input=body)
                self._pacer.spend(verb, self._clock())
                return data
            except GithubException as exc:
                self._pacer.spend(verb, self._clock())
                status, message = exc.status, _message(exc.data)
                wait = rate_limit_wait(status, exc.headers, message, time.time())
                retryable = wait is not None or status >= 500
                if wait is None:
                    wait = policy.backoff * 2 ** (attempt - 1)
                error = GitHubError(
                    f"{what}: HTTP {status}{': ' + message if message else ''}",
                    status=status,
                    ambiguous=ambiguous,
                )
            except requests.RequestException as exc:
                # No answer: a write may have landed. Callers that care check before assuming either way.
                ambiguous = True
                retryable = True
                wait = policy.backoff * 2 ** (attempt - 1)
                error = GitHubError(
                    f"{what}: no answer from GitHub ({type(exc).__name__})",
                    status=None,
                    ambiguous=True,
                )
            wait += random.uniform(0, policy.backoff / 2) if wait else 0.0  # noqa: S311 - jitter
            elapsed = self._clock() - started
            if (
                not retryable
                or attempt >= policy.attempts
                or wait > policy.max_wait
                or elapsed + wait > policy.budget
                or (self.deadline is not None and self._clock() + wait > self.deadline)
            ):
                raise error
            self._sleep(wait)

    def public_key(self, place: Place) -> PublicKey:
        """Read once per run and place: it also proves the token may use that place's secrets API."""
        if place.secrets_path not in self._keys:
            try:
                data = self._request(
                    "GET",
                    f"{place.secrets_path}/public-key",
                    f"Reading the Actions secrets public key of {place.label}",
                )
            except GitHubError as exc:
                raise _explain_access(place, exc) from exc
            self._keys[place.secrets_path] = PublicKey(str(data["key_id"]), str(data["key"]))
        return self._keys[place.secrets_path]

    def repository_ids(self, repository: str) -> tuple[int, int]:
        """(owner id, repository id): for immutable OIDC subjects and selected organization secrets."""
        if repository not in self._ids:
            try:
                data = self._request("GET", f"/repos/{repository}", f"Reading repository {repository}")
            except GitHubError as exc:
                raise _explain_access(Place("repo", repository), exc) from exc
            self._ids[repository] = (int(data["owner"]["id"]), int(data["id"]))
        return self._ids[repository]

    def environment_exists(self, place: Place) -> bool:
        try:
            self._request(
                "GET",
                f"/repos/{place.name}/environments/{quote(place.environment, safe='')}",
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
                f"/repos/{place.name}/environments/{quote(place.environment, safe='')}",
                f"Creating environment {place.environment} in {place.name}",
                {},
            )
        except GitHubError as exc:
            raise GitHubError(
                f"Environment {place.environment} does not exist in {place.name} (or the token cannot see "
                f"the repository), and creating it failed "
                f"({exc.message}).",
                status=exc.status,
                fix="Create the environment in the repository's Settings > Environments, or give the token "
                "the 'Administration: Read and write' permission. Nothing else was changed.",
                anchor="github",
            ) from exc

    def _secret_path(self, place: Place, name: str) -> str:
        return f"{place.secrets_path}/{quote(name, safe='')}"

    def _org_fields(self, place: Place, path: str, existing_visibility: str) -> dict[str, Any]:
        """visibility and, for selected, the union of the repositories already selected and ours."""
        visibility = place.visibility or existing_visibility or "private"
        fields: dict[str, Any] = {"visibility": visibility}
        if visibility == "selected":
            ids = set(self._selected(path))
            ids |= {self.repository_ids(r)[1] for r in place.selected}
            fields["selected_repository_ids"] = sorted(ids)
        return fields

    def _selected(self, path: str) -> list[int]:
        try:
            data = self._request("GET", f"{path}/repositories", "Reading the repositories selected for it")
        except GitHubError as exc:
            if exc.status == 404:
                return []
            raise
        return [int(r["id"]) for r in data.get("repositories", [])]

    def put_secret(self, place: Place, name: str, value: str) -> None:
        key = self.public_key(place)
        path = self._secret_path(place, name)
        body: dict[str, Any] = {"encrypted_value": seal(key.key, value), "key_id": key.key_id}
        if place.kind == "org":
            current = (
                self._get_or_none(path, f"Reading secret {name} of {place.label}")
                if not place.visibility
                else None
            )
            body.update(self._org_fields(place, path, str((current or {}).get("visibility", ""))))
        self._request("PUT", path, f"Writing secret {name} to {place.label}", body)

    def _get_or_none(self, path: str, what: str) -> Any:
        try:
            return self._request("GET", path, what)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def delete_secret(self, place: Place, name: str) -> None:
        try:
            self._request(
                "DELETE", self._secret_path(place, name), f"Deleting secret {name} of {place.label}"
            )
        except GitHubError as exc:
            if exc.status != 404:
                raise

    def secret_updated_at(self, place: Place, name: str) -> datetime | None:
        data = self._get_or_none(self._secret_path(place, name), f"Reading secret {name} of {place.label}")
        text = str((data or {}).get("updated_at", ""))
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
        except ValueError:
            return None

    def put_variable(self, place: Place, name: str, value: str) -> None:
        """Update the variable; create it when it does not exist (one request when it does)."""
        path = f"{place.variables_path}/{quote(name, safe='')}"
        body: dict[str, Any] = {"name": name, "value": value}
        if place.kind == "org":
            body.update(self._org_fields(place, path, ""))
        try:
            self._request("PATCH", path, f"Writing variable {name} of {place.label}", body)
        except GitHubError as exc:
            if exc.status != 404:
                raise
            self._request("POST", place.variables_path, f"Creating variable {name} of {place.label}", body)


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
