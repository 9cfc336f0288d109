"""The GitHub REST endpoints the action calls: Actions secrets and variables (of a repository, an
environment or an organization), environments, repositories and workflow runs."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import quote

from ..errors import GitHubError
from ..places import Place
from ..times import WriteDeadline
from ..values import GITHUB_TOKEN_HELP
from .http import Http, epoch, uncertain

# GitHub's Date header and the updated_at it stores come from different servers' clocks.
CLOCK_MARGIN = 2.0
# A write whose answer was lost may still be applied after it was read back as absent. GitHub ends a request
# it has processed for 10 s ("If GitHub takes more than 10 seconds to process an API request, GitHub will
# terminate the request", Troubleshooting the REST API, Timeouts); with a margin, "not written" is believed
# only this long after the last attempt failed (docs/rotation.md, "A write that lands late").
LATE_WINDOW = 12.0
LATE_POLL = 2.0  # how often a lost write is read back within that window: "written" is believed at once


def seal(public_key: str, value: str) -> str:
    """libsodium sealed box over the repository's public key, base64 as the API wants it."""
    from nacl.public import PublicKey, SealedBox

    box = SealedBox(PublicKey(base64.b64decode(public_key)))
    return base64.b64encode(box.encrypt(value.encode("utf-8"))).decode("ascii")


class GitHub(Http):
    """The REST calls the action makes, against GITHUB_API_URL."""

    def _read_once(self, path: str, what: str, place: Place) -> Any:
        if path not in self._once:
            try:
                self._once[path] = self.request("GET", path, what).data
            except GitHubError as exc:
                raise _explain_access(place, exc) from exc
        return self._once[path]

    def public_key(self, place: Place) -> tuple[str, str]:
        """(key id, base64 key), read once per run and place: it also proves the token may use that place's
        secrets API."""
        what = f"Reading the Actions secrets public key of {place.label}"
        data = self._read_once(f"{place.actions_path}/secrets/public-key", what, place)
        return str(data["key_id"]), str(data["key"])

    def repository_ids(self, repository: str) -> tuple[int, int]:
        """(owner id, repository id): for immutable OIDC subjects and selected organization secrets."""
        path = f"/repos/{repository}"
        first = path not in self._once  # warned about on the first read only
        data = self._read_once(path, f"Reading repository {repository}", Place("repo", repository))
        full_name = str(data.get("full_name", repository))
        if first and full_name.lower() != repository.lower():
            self._warn(
                f"GitHub redirects {repository} to {full_name}: it was renamed or transferred. Its id "
                f"stays {data['id']}; update the repositories input to {full_name}."
            )
        return int(data["owner"]["id"]), int(data["id"])

    def run_completed(self, repository: str, run_id: str, attempt: int) -> bool:
        """Whether GitHub says that attempt of that workflow run has completed (needs actions: read)."""
        path = f"/repos/{repository}/actions/runs/{run_id}/attempts/{attempt}"
        what = f"Reading run {run_id} attempt {attempt} of {repository}"
        data = self.request("GET", f"{path}?exclude_pull_requests=true", what).data
        return str((data or {}).get("status", "")) == "completed"

    def environment_exists(self, place: Place) -> bool:
        what = f"Reading environment {place.environment} of {place.name}"
        try:
            return self.request_or_none("GET", place.environment_path, what) is not None
        except GitHubError as exc:
            raise _explain_access(place, exc) from exc

    def create_environment(self, place: Place) -> None:
        what = f"Creating environment {place.environment} in {place.name}"
        try:
            self.request("PUT", place.environment_path, what, {})
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

    def put_secret(
        self, place: Place, name: str, value: str, *, after: str = "", deadline: WriteDeadline | None = None
    ) -> None:
        """Seal and write one secret. A write whose outcome is open (no answer, a server error) is settled
        by reading the secret back (see `landed`); only then does it count as written or not. Raises
        GitHubError with the original status; `ambiguous` only when even the read-back cannot tell."""
        key_id, key = self.public_key(place)
        path, what = _secret_path(place, name), f"secret {name} of {place.label}"
        body: dict[str, Any] = {"encrypted_value": seal(key, value), "key_id": key_id}
        if place.kind == "org":
            current = self.get_or_none(path, f"Reading {what}", deadline) if not place.visibility else None
            body.update(self._org_fields(place, path, str((current or {}).get("visibility", "")), what))
        since = self.github_now()
        try:
            self.request("PUT", path, f"Writing {what}", body, deadline=deadline)
        except GitHubError as exc:
            if exc.status == 422:
                raise _refused(place, exc) from exc
            if not uncertain(exc):
                raise
            landed = self._settle_lost(place, name, after, since, deadline)
            if landed:
                return
            outcome = "it was not written" if landed is False else "whether it was written is unknown"
            text = f"{exc.message}; read back: {outcome}"
            raise GitHubError(text, status=exc.status, ambiguous=landed is None, fix=exc.fix) from exc

    def landed(
        self, place: Place, name: str, after: str, since: float | None, deadline: WriteDeadline | None
    ) -> bool | None:
        """Did a write of secret `name` whose answer never came land? None: cannot tell. Timestamps have
        whole seconds. With `after` (a secret of the same place this run wrote, and GitHub confirmed, just
        before), both come from GitHub's storage clock and compare exactly: later than `after` is written,
        earlier is not, the same second cannot tell. Without it, `since` is GitHub's Date (its web servers'
        clock) before the write, so only a gap of CLOCK_MARGIN either way tells."""
        try:
            mine = self.updated_at(place, name, deadline)
            if mine is None:
                return False
            if after:
                before = self.updated_at(place, after, deadline)
                return None if before is None or int(mine) == int(before) else mine > before
        except GitHubError:
            return None
        if since is None or abs(mine - since) < CLOCK_MARGIN:
            return None
        return mine > since

    def wait_out_open_write(self, place: Place, name: str, deadline: WriteDeadline | None) -> bool:
        """Before a different value is written to secret `name`: an attempt of this run's that went
        unanswered (even one a retry then wrote) may land for LATE_WINDOW after it; wait that out if the
        deadline allows. False: it does not, and the other value must not be written."""
        left = self._late_until(place, name) - time.monotonic()
        if _secret_path(place, name) not in self.open_writes or left <= 0:
            return True
        if deadline is not None and deadline.left() < left:
            return False
        time.sleep(left)
        return True

    def _late_until(self, place: Place, name: str) -> float:
        """When this run's last unanswered write of secret `name` can no longer land (monotonic)."""
        return self.open_writes.get(_secret_path(place, name), time.monotonic()) + LATE_WINDOW

    def _settle_lost(
        self, place: Place, name: str, after: str, since: float | None, deadline: WriteDeadline | None
    ) -> bool | None:
        """`landed`, read again until the lost write is seen or LATE_WINDOW has passed since its last
        attempt failed (GitHub may still apply it); "not written" before that is unknown (None), as it is
        when the write deadline ends first."""
        trusted = self._late_until(place, name)
        while True:
            landed = self.landed(place, name, after, since, deadline)
            wait = min(LATE_POLL, trusted - time.monotonic())
            if landed is not False or wait <= 0:
                return landed
            if deadline is not None and deadline.left() < trusted - time.monotonic():
                return None
            time.sleep(wait)

    def updated_at(self, place: Place, name: str, deadline: WriteDeadline | None = None) -> float | None:
        """When GitHub last wrote the secret (epoch seconds); None when it does not exist. One with no
        readable time raises: the caller cannot tell, rather than "not written"."""
        what = f"Reading secret {name} of {place.label}"
        data = self.get_or_none(_secret_path(place, name), what, deadline)
        if data is None:
            return None
        at = epoch(str(data.get("updated_at", "")))
        if at is None:
            raise GitHubError(f"{what}: no readable updated_at")
        return at

    def delete_secret(self, place: Place, name: str, deadline: WriteDeadline | None = None) -> None:
        what = f"Deleting secret {name} of {place.label}"
        self.request_or_none("DELETE", _secret_path(place, name), what, deadline=deadline)  # gone already

    def put_variable(self, place: Place, name: str, value: str) -> None:
        """Update the variable; create it when it does not exist (one request when it does). A write whose
        outcome is open is settled by reading the variable back (its value is readable, unlike a secret's)."""
        variables = f"{place.actions_path}/variables"
        path = f"{variables}/{quote(name, safe='')}"
        what = f"variable {name} of {place.label}"
        body: dict[str, Any] = {"name": name, "value": value}
        if place.kind == "org":
            body.update(self._org_fields(place, path, "", what))
        try:
            if self.request_or_none("PATCH", path, f"Writing {what}", body) is None:
                self.request("POST", variables, f"Creating {what}", body)
        except GitHubError as exc:
            if not uncertain(exc):
                raise
            try:
                current = self.get_or_none(path, f"Reading {what} back")
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

    def _org_fields(self, place: Place, path: str, existing_visibility: str, what: str) -> dict[str, Any]:
        """visibility and, for selected, the union of the repositories already selected and ours."""
        visibility = place.visibility or existing_visibility or "private"
        if visibility != "selected":
            return {"visibility": visibility}
        try:
            reading = f"Reading the repositories selected for {what}"
            found = self.pages(f"{path}/repositories", reading, "repositories")
        except GitHubError as exc:
            if exc.status not in (404, 409):  # 404: it does not exist yet, so nothing is selected
                raise
            if exc.status == 409:  # documented: its visibility is not `selected`, so nothing is selected
                self._warn(
                    f"{what} had visibility all or private; visibility: selected now limits it to the "
                    "repositories this run names."
                )
            found = []
        ids = {int(r["id"]) for r in found} | {self.repository_ids(r)[1] for r in place.selected}
        return {"visibility": visibility, "selected_repository_ids": sorted(ids)}


def _secret_path(place: Place, name: str) -> str:
    return f"{place.actions_path}/secrets/{quote(name, safe='')}"


def _refused(place: Place, exc: GitHubError) -> GitHubError:
    """GitHub refused a secret (422): a full place is the refusal a rerun does not cure. "Limits for secrets"
    (GitHub Docs): 100 secrets in a repository or an environment, 1,000 in an organization."""
    org = place.kind == "org"
    limit = "1,000 secrets in an organization" if org else "100 secrets in a repository or an environment"
    return GitHubError(
        exc.message,
        status=exc.status,
        fix=f"GitHub allows at most {limit}: if {place.label} is full, delete the secrets it no longer uses "
        "(Settings > Secrets and variables > Actions), then rerun.",
        anchor="github",
    )


def _explain_access(place: Place, exc: GitHubError) -> GitHubError:
    text = str(exc)
    if exc.status == 401:
        problem = "GitHub refused the token (bad credentials: wrong, expired or revoked)."
    elif exc.status == 403 and "resource not accessible by integration" in text.lower():
        problem = (
            f"the token cannot use the Actions secrets API of {place.label} (it lacks the secrets "
            "permission). The workflow's own GITHUB_TOKEN always answers this way: it can never write "
            "secrets."
        )
    elif exc.status == 403:
        problem = f"the token lacks the 'Secrets: Read and write' permission on {place.label}."
        if place.kind == "env":
            problem += " A fine-grained token also needs 'Environments: Read and write' for its secrets."
    elif exc.status == 404:
        problem = (
            f"{place.label} was not found, or the token cannot see it (a fine-grained token must list it; "
            "a classic token needs the 'repo' scope)."
        )
    else:
        return exc
    if place.kind == "org":
        problem += (
            " Organization secrets need a token with 'Organization secrets: Read and write' (admin:org)."
        )
    return GitHubError(
        f"Checking access to {place.label}: {problem} ({text})",
        status=exc.status,
        fix=f"Pass github-token with {GITHUB_TOKEN_HELP}. Nothing was changed.",
        anchor="token",
    )
