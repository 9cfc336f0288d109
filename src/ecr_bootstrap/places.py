"""Pure: where secrets and variables go (a repository, an environment of one, or an organization), the
REST paths of each, and the scope string the key record uses for it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

# GitHub's rules for names (the same the inputs are held to): an owner of 1-39 letters, digits and
# hyphens, not starting with a hyphen; a repository name of 1-100 letters, digits, ".", "_" and "-".
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


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
        return f"organization {self.name}" if self.kind == "org" else self.name

    @property
    def environment_path(self) -> str:
        return f"/repos/{self.name}/environments/{quote(self.environment, safe='')}"

    @property
    def actions_path(self) -> str:  # + /secrets or /variables
        if self.kind == "env":
            return self.environment_path
        return f"/orgs/{self.name}/actions" if self.kind == "org" else f"/repos/{self.name}/actions"


def valid_owner(owner: str) -> bool:
    return bool(_OWNER.match(owner))


def valid_repository(entry: str) -> bool:
    """owner/name as GitHub allows it."""
    owner, sep, name = entry.partition("/")
    return bool(sep) and valid_owner(owner) and bool(_REPO.match(name)) and name not in (".", "..")


def place_problem(place: Place) -> str:
    """Why a place read back from the key record is not one the inputs could have named ("" if it is)."""
    if place.kind == "org":
        return "" if valid_owner(place.name) and not place.environment else "not an organization name"
    if place.kind not in ("repo", "env"):
        return f"unknown kind {place.kind!r}"
    if not valid_repository(place.name):
        return "not an owner/name repository"
    if place.kind == "repo":
        return "" if not place.environment else "a repository entry with an environment"
    return environment_problem(place.environment)


def environment_problem(name: str) -> str:
    """GitHub's rules for an environment's name (values.parse_environment holds the input to them too)."""
    bad = not name or len(name) > 255 or any(c in name for c in "/\\:,'\"") or not name.isprintable()
    return "not a usable environment name" if bad or name != name.strip() else ""


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
