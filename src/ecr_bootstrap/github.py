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
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .errors import GitHubError
from .inputs import GITHUB_TOKEN_HELP

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
    ) -> None:
        from github import Auth, Github

        self._requester = Github(
            auth=Auth.Token(token),
            base_url=api_url,
            timeout=max(1, round(timeout)),
            retry=None,  # retried here, uniformly
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        ).requester
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._keys: dict[str, PublicKey] = {}
        self.requests = 0
        # Monotonic time after which no request is retried (the rotation's lease); None: no limit.
        self.deadline: float | None = None

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
            try:
                _headers, data = self._requester.requestJsonAndCheck(verb, path, input=body)
                return data
            except GithubException as exc:
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

    def public_key(self, repository: str) -> PublicKey:
        """Read once per run: it also proves the token may use the repository's secrets API."""
        if repository not in self._keys:
            try:
                data = self._request(
                    "GET",
                    f"/repos/{repository}/actions/secrets/public-key",
                    f"Reading the Actions secrets public key of {repository}",
                )
            except GitHubError as exc:
                raise _explain_access(repository, exc) from exc
            self._keys[repository] = PublicKey(str(data["key_id"]), str(data["key"]))
        return self._keys[repository]

    def _secret_path(self, repository: str, name: str) -> str:
        return f"/repos/{repository}/actions/secrets/{quote(name, safe='')}"

    def put_secret(self, repository: str, name: str, value: str) -> None:
        key = self.public_key(repository)
        self._request(
            "PUT",
            self._secret_path(repository, name),
            f"Writing secret {name} to {repository}",
            {"encrypted_value": seal(key.key, value), "key_id": key.key_id},
        )

    def delete_secret(self, repository: str, name: str) -> None:
        try:
            self._request(
                "DELETE", self._secret_path(repository, name), f"Deleting secret {name} of {repository}"
            )
        except GitHubError as exc:
            if exc.status != 404:
                raise

    def secret_updated_at(self, repository: str, name: str) -> datetime | None:
        try:
            data = self._request(
                "GET", self._secret_path(repository, name), f"Reading secret {name} of {repository}"
            )
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        text = str(data.get("updated_at", ""))
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
        except ValueError:
            return None


def _explain_access(repository: str, exc: GitHubError) -> GitHubError:
    text = str(exc)
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
    return GitHubError(
        f"Checking access to {repository}: {problem} ({text})",
        status=exc.status,
        fix=f"Pass github-token with {GITHUB_TOKEN_HELP}. Nothing was changed.",
        anchor="token",
    )
