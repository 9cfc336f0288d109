"""Pure: where secrets and variables go (a repository, an environment of one, or an organization), the
REST paths of each, and the scope string the key record uses for it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Place:
    kind: str  # "repo" | "env" | "org"
    name: str  # owner/repo, or the organization
    environment: str = ""
    visibility: str = ""  # org only: all | private | selected ("" = keep what the secret has)
    selected: tuple[str, ...] = ()  # org + selected: the repositories that must see the secrets

    @property
    def scope(self) -> str:
        if self.kind == "env":
            return f"env:{self.name.lower()}:{self.environment.lower()}"
        return f"{self.kind}:{self.name.lower()}"

    @property
    def label(self) -> str:
        if self.kind == "env":
            return f"{self.name} (environment {self.environment})"
        if self.kind == "org":
            return f"organization {self.name}"
        return self.name

    @property
    def repository(self) -> str:
        """The repository whose token access is checked (for an organization, its name)."""
        return self.name

    @property
    def secrets_path(self) -> str:
        if self.kind == "env":
            return f"/repos/{self.name}/environments/{quote(self.environment, safe='')}/secrets"
        if self.kind == "org":
            return f"/orgs/{self.name}/actions/secrets"
        return f"/repos/{self.name}/actions/secrets"

    @property
    def variables_path(self) -> str:
        if self.kind == "env":
            return f"/repos/{self.name}/environments/{quote(self.environment, safe='')}/variables"
        if self.kind == "org":
            return f"/orgs/{self.name}/actions/variables"
        return f"/repos/{self.name}/actions/variables"


def from_scope(scope: str) -> Place:
    """The place an earlier run recorded (names lower-cased; GitHub does not mind)."""
    kind, _, rest = scope.partition(":")
    if kind == "env":
        name, _, environment = rest.partition(":")  # owner/repo has no ":"; an environment may
        return Place("env", name, environment)
    return Place(kind if kind in ("repo", "org") else "repo", rest)


def places(
    repositories: tuple[str, ...], environment: str, organization: str, visibility: str
) -> list[Place]:
    if organization:
        selected = repositories if visibility == "selected" else ()
        return [Place("org", organization, visibility=visibility, selected=selected)]
    if environment:
        return [Place("env", r, environment) for r in repositories]
    return [Place("repo", r) for r in repositories]
