"""Inputs: declared once, in action.yml; read (given_inputs) from INPUT_* (the runner) or flags (a local run),
validated into Settings by RULES, one rule per input (values.py: the rules for each kind of value). Every
error names its input, so a bad value stops the run before anything is changed anywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import action_yml, values
from .errors import InputError
from .keys.record import RunId

TOKENS = ("github-token", "actions-token")  # never a flag: they come from the environment


# No defaults: from_values sets every field, from action.yml's defaults where an input is not given. A field
# of Settings or EcrSettings named after an input (hyphens as underscores) holds that input's value.
@dataclass(frozen=True)
class SecretNames:
    key_id: str
    secret_key: str
    repository_uri: str
    role_arn: str


@dataclass(frozen=True)
class EcrSettings:
    scan_on_push: bool
    tag_mutability: str
    encryption: str
    kms_key: str
    keep_images: int | None
    expire_untagged_days: int | None


@dataclass(frozen=True)
class Settings:
    github_token: str
    github_api_url: str
    aws_region: str
    ecr_repository: str
    iam_policy: str
    iam_user: str
    repositories: tuple[str, ...]
    retire_unmanaged_keys: bool
    key_wait_seconds: float
    lease_seconds: float
    auth: str
    iam_role: str
    oidc_subjects: tuple[str, ...]
    retire_user_keys: bool
    environment: str
    organization: str
    visibility: str
    secret_names: SecretNames
    write_variables: bool
    ecr: EcrSettings
    tags: tuple[tuple[str, str], ...]
    dry_run: bool
    github_timeout: float  # seconds per GitHub request; ECR_BOOTSTRAP_GITHUB_TIMEOUT (tests, GHES)
    github_points: tuple[int, float]  # secondary limit: points per window; ECR_BOOTSTRAP_GITHUB_POINTS
    actions_token: str
    rotate_after: float  # seconds; 0: rotate on every run
    permissions_boundary: str  # policy ARN set as the boundary of the user or role created
    run: RunId  # the GitHub Actions run this is (empty outside Actions)

    def __repr__(self) -> str:  # keep the token out of any accidental log line
        return f"Settings(user={self.iam_user!r}, repositories={self.repositories!r}, …)"


def run_id(env: Mapping[str, str]) -> RunId:
    """This run as the runner names it; empty outside GitHub Actions (or with values it never sets)."""
    run = env.get("GITHUB_RUN_ID", "")
    attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
    if not values.digits(run):
        return RunId()
    return RunId(
        run,
        int(attempt) if values.digits(attempt) and int(attempt) > 0 else 1,
        env.get("GITHUB_JOB", "")[:100],
        env.get("GITHUB_REPOSITORY", "")[:200],
        env.get("GITHUB_SERVER_URL", "") or "https://github.com",
    )


# -- each input's rule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """What a rule sees besides its own value: the environment, and the inputs checked before it."""

    env: Mapping[str, str]
    values: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[str, str, Checked], Any]  # (input name, value, checked so far) -> the value parsed


def _named(parse: Callable[..., Any], **options: Any) -> Rule:
    return lambda name, value, _checked: parse(name, value, **options)


def _github_token(name: str, token: str, _checked: Checked) -> str:
    if not token:
        raise InputError(
            name,
            "no token given.",
            fix="Pass github-token: ${{ secrets.YOUR_PAT }} with " + values.GITHUB_TOKEN_HELP + ".",
        )
    return values.parse_token(name, token)


def _lease(name: str, value: str, checked: Checked) -> float:
    lease = values.parse_seconds(name, value)
    key_wait = checked.values["key-wait-seconds"]
    if lease <= key_wait:
        raise InputError(
            name,
            f"{lease:g} is not longer than key-wait-seconds ({key_wait:g}).",
            fix="Give the run time to write the targets after the key works: for example 900.",
        )
    return lease


def _environment(name: str, value: str, checked: Checked) -> str:
    environment = values.parse_environment(name, value)
    if checked.values["organization"] and environment:
        raise InputError(
            name,
            "environment and organization were both given.",
            fix="Organization secrets have no environments: set only one of them.",
        )
    return environment


def _repositories(name: str, value: str, checked: Checked) -> tuple[str, ...]:
    repositories = values.parse_repositories(value, checked.env)
    organization = checked.values["organization"]
    if organization and checked.values["visibility"] == "selected":
        strangers = [r for r in repositories if r.split("/")[0].lower() != organization.lower()]
        if strangers:
            raise InputError(
                name,
                f"{', '.join(strangers)} not in organization {organization}.",
                fix="With visibility: selected, list repositories of that organization only.",
            )
    return repositories


def _kms_key(name: str, value: str, checked: Checked) -> str:
    if value and checked.values["encryption"] != "KMS":
        raise InputError(name, "a KMS key was given but encryption is AES256.", fix="Set encryption: KMS.")
    return values.parse_kms_key(name, value)


def _retire_user_keys(name: str, value: str, checked: Checked) -> bool:
    retire = values.parse_bool(name, value)
    if retire and checked.values["auth"] != "oidc":
        raise InputError(name, "only applies with auth: oidc.", fix="Set auth: oidc, or leave this false.")
    return retire


# Every input of action.yml and its rule, in the order they are checked: a rule may read the inputs above
# it (so a bad value is reported before anything that depends on it).
RULES: dict[str, Rule] = {
    "github-token": _github_token,
    "key-wait-seconds": _named(values.parse_seconds),
    "lease-seconds": _lease,
    "auth": _named(values.parse_choice, choices=("access-key", "oidc")),
    "organization": _named(values.parse_owner),
    "visibility": _named(values.parse_choice, choices=("all", "private", "selected")),
    "environment": _environment,
    "repositories": _repositories,
    "encryption": _named(values.parse_choice, choices=("AES256", "KMS")),
    "kms-key": _kms_key,
    "scan-on-push": _named(values.parse_bool),
    "tag-mutability": _named(values.parse_choice, choices=("MUTABLE", "IMMUTABLE")),
    "keep-images": _named(values.parse_count, most=10000),
    "expire-untagged-days": _named(values.parse_count, most=3650),
    "retire-user-keys": _retire_user_keys,
    "iam-role": _named(values.parse_iam_name, max_len=64),
    "oidc-subjects": _named(values.parse_subjects),
    # in the order of SecretNames' fields
    "secret-name-access-key-id": _named(values.parse_secret_name),
    "secret-name-secret-access-key": _named(values.parse_secret_name),
    "secret-name-repository-uri": _named(values.parse_secret_name),
    "secret-name-role-arn": _named(values.parse_secret_name),
    "write-variables": _named(values.parse_bool),
    "tags": _named(values.parse_tags),
    "dry-run": _named(values.parse_bool),
    "aws-region": lambda _name, value, checked: values.parse_region(value, checked.env),
    "ecr-repository": lambda _name, value, _checked: values.parse_ecr_repository(value),
    "iam-policy": _named(values.parse_iam_name, max_len=128),
    "iam-user": _named(values.parse_iam_name, max_len=64),
    "retire-unmanaged-keys": _named(values.parse_bool),
    "actions-token": _named(values.parse_token),
    "rotate-after": _named(values.parse_duration),
    "permissions-boundary": _named(values.parse_boundary),
}
_SECRET_NAMES = [name for name in RULES if name.startswith("secret-name-")]


def from_values(raw: Mapping[str, str], env: Mapping[str, str]) -> Settings:
    """Validate raw input values (keyed by input name; missing ones take action.yml's defaults)."""

    def given(name: str) -> str:
        return raw.get(name, action_yml.inputs()[name].default).strip()

    checked = Checked(env)
    for name, rule in RULES.items():
        checked.values[name] = rule(name, given(name), checked)
    # Each input's value goes to the field of its name (but for the secret names, gathered below).
    parsed = {n.replace("-", "_"): v for n, v in checked.values.items() if n not in _SECRET_NAMES}
    ecr = EcrSettings(**{f.name: parsed.pop(f.name) for f in fields(EcrSettings)})
    return Settings(
        **parsed,
        secret_names=_secret_names(checked.values, given),
        ecr=ecr,
        github_api_url=values.parse_api_url(env.get("GITHUB_API_URL", "")),
        github_timeout=values.parse_timeout(env.get("ECR_BOOTSTRAP_GITHUB_TIMEOUT", "")),
        github_points=values.parse_points(env.get("ECR_BOOTSTRAP_GITHUB_POINTS", "")),
        run=run_id(env),
    )


def _secret_names(parsed: Mapping[str, Any], given: Callable[[str], str]) -> SecretNames:
    """The four secret names, all different (AWS_REGION is the region variable's)."""
    seen: dict[str, str] = {"AWS_REGION": "the region variable"}
    # The input that repeats a name is named: the one set away from its default, where one is.
    for name in sorted(_SECRET_NAMES, key=lambda n: given(n) != action_yml.inputs()[n].default):
        value = parsed[name]
        if value in seen:
            raise InputError(
                name,
                f"'{value}' is also the name of {seen[value]}.",
                fix="Give the secret-name-* inputs four different names, none of them AWS_REGION.",
            )
        seen[value] = name
    return SecretNames(*(parsed[name] for name in _SECRET_NAMES))


def given_inputs(env: Mapping[str, str], flags: object) -> dict[str, str]:
    """Input values as the action reads them: INPUT_* variables (upper-cased, hyphens kept), and the flags
    (`--name`, the attribute named with underscores) over them."""
    declared = action_yml.inputs()
    given = {name: env[key] for name in declared if (key := "INPUT_" + name.upper()) in env}
    return given | {n: v for n in declared if (v := getattr(flags, n.replace("-", "_"), None)) is not None}
