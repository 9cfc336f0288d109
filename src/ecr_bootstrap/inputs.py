"""Inputs: declared once, in action.yml (names, defaults, descriptions); read from INPUT_* (the runner) or
flags (a local run) and validated into Settings by RULES, one rule per input.

Which input takes which rule lives here (values.py holds the rules for each kind of value); every error
names the input it is about, so a bad value stops the run before anything is changed anywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import action_yml
from .errors import InputError
from .keys.record import RunId
from .places import valid_owner
from .values import (
    GITHUB_TOKEN_HELP,
    parse_actions_token,
    parse_api_url,
    parse_bool,
    parse_boundary,
    parse_choice,
    parse_count,
    parse_duration,
    parse_ecr_repository,
    parse_environment,
    parse_iam_name,
    parse_kms_key,
    parse_points,
    parse_region,
    parse_repositories,
    parse_seconds,
    parse_secret_name,
    parse_subjects,
    parse_tags,
    parse_timeout,
)


# The dataclasses have no defaults: from_values sets every field, from action.yml's defaults where an
# input is not given.
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
    if not (run.isascii() and run.isdigit()):
        return RunId()
    return RunId(
        run,
        int(attempt) if attempt.isascii() and attempt.isdigit() and int(attempt) > 0 else 1,
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


def _alone(parse: Callable[[str], Any]) -> Rule:
    return lambda _name, value, _checked: parse(value)


def _named(parse: Callable[[str, str], Any]) -> Rule:
    return lambda name, value, _checked: parse(name, value)


def _github_token(token: str) -> str:
    if not token:
        raise InputError(
            "github-token",
            "no token given.",
            fix="Pass github-token: ${{ secrets.YOUR_PAT }} with " + GITHUB_TOKEN_HELP + ".",
        )
    if any(c.isspace() for c in token):
        raise InputError("github-token", "the token contains white space.", fix="Check the secret.")
    return token


def _lease(name: str, value: str, checked: Checked) -> float:
    lease = parse_seconds(name, value)
    key_wait = checked.values["key-wait-seconds"]
    if lease <= key_wait:
        raise InputError(
            name,
            f"{lease:g} is not longer than key-wait-seconds ({key_wait:g}).",
            fix="Give the run time to write the targets after the key works: for example 900.",
        )
    return lease


def _organization(organization: str) -> str:
    if organization and not valid_owner(organization):
        raise InputError(
            "organization",
            f"'{organization}' is not an organization name.",
            fix="Use the login, e.g. octo-org.",
        )
    return organization


def _environment(name: str, value: str, checked: Checked) -> str:
    environment = parse_environment(value)
    if checked.values["organization"] and environment:
        raise InputError(
            name,
            "environment and organization were both given.",
            fix="Organization secrets have no environments: set only one of them.",
        )
    return environment


def _repositories(name: str, value: str, checked: Checked) -> tuple[str, ...]:
    repositories = parse_repositories(value, checked.env)
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
    if value:
        parse_kms_key(value)
    return value


def _retire_user_keys(name: str, value: str, checked: Checked) -> bool:
    retire = parse_bool(name, value)
    if retire and checked.values["auth"] != "oidc":
        raise InputError(name, "only applies with auth: oidc.", fix="Set auth: oidc, or leave this false.")
    return retire


def _choice(*choices: str) -> Rule:
    return _named(partial(parse_choice, choices=choices))


def _iam_name(max_len: int) -> Rule:
    return _named(partial(parse_iam_name, max_len=max_len))


def _count(most: int) -> Rule:
    return _named(partial(parse_count, most=most))


# Every input of action.yml and its rule, in the order they are checked: a rule may read the inputs above
# it (so a bad value is reported before anything that depends on it).
RULES: dict[str, Rule] = {
    "github-token": _alone(_github_token),
    "key-wait-seconds": _named(parse_seconds),
    "lease-seconds": _lease,
    "auth": _choice("access-key", "oidc"),
    "organization": _alone(_organization),
    "visibility": _choice("all", "private", "selected"),
    "environment": _environment,
    "repositories": _repositories,
    "encryption": _choice("AES256", "KMS"),
    "kms-key": _kms_key,
    "scan-on-push": _named(parse_bool),
    "tag-mutability": _choice("MUTABLE", "IMMUTABLE"),
    "keep-images": _count(10000),
    "expire-untagged-days": _count(3650),
    "retire-user-keys": _retire_user_keys,
    "iam-role": _iam_name(64),
    "oidc-subjects": _alone(parse_subjects),
    "secret-name-access-key-id": _named(parse_secret_name),
    "secret-name-secret-access-key": _named(parse_secret_name),
    "secret-name-repository-uri": _named(parse_secret_name),
    "secret-name-role-arn": _named(parse_secret_name),
    "write-variables": _named(parse_bool),
    "tags": _alone(parse_tags),
    "dry-run": _named(parse_bool),
    "aws-region": lambda _name, value, checked: parse_region(value, checked.env),
    "ecr-repository": _alone(parse_ecr_repository),
    "iam-policy": _iam_name(128),
    "iam-user": _iam_name(64),
    "retire-unmanaged-keys": _named(parse_bool),
    "actions-token": _alone(parse_actions_token),
    "rotate-after": _named(parse_duration),
    "permissions-boundary": _alone(parse_boundary),
}
TOKENS = ("github-token", "actions-token")  # from the environment only, never a command-line flag
_SECRET_NAMES = (
    "secret-name-access-key-id",
    "secret-name-secret-access-key",
    "secret-name-repository-uri",
    "secret-name-role-arn",
)


def from_values(values: Mapping[str, str], env: Mapping[str, str]) -> Settings:
    """Validate raw input values (keyed by input name; missing ones take action.yml's defaults)."""
    declared = action_yml.inputs()

    def given(name: str) -> str:
        value = values.get(name)
        if value is None:
            default = declared[name].default
            value = "" if default.startswith("${{") else default  # the runner's to expand: here, unset
        return value.strip()

    checked = Checked(env)
    for name, rule in RULES.items():
        checked.values[name] = rule(name, given(name), checked)
    return _settings(checked.values, _secret_names(checked.values, given), env)


def _secret_names(parsed: Mapping[str, Any], given: Callable[[str], str]) -> SecretNames:
    """The four secret names, all different (AWS_REGION is the region variable's)."""
    seen: dict[str, str] = {"AWS_REGION": "the region variable"}
    defaults = action_yml.inputs()
    # The input that repeats a name is named: the one set away from its default, where one is.
    for name in sorted(_SECRET_NAMES, key=lambda n: given(n) != defaults[n].default):
        value = parsed[name]
        if value in seen:
            raise InputError(
                name,
                f"'{value}' is also the name of {seen[value]}.",
                fix="Give the secret-name-* inputs four different names, none of them AWS_REGION.",
            )
        seen[value] = name
    return SecretNames(*(parsed[name] for name in _SECRET_NAMES))  # in the order of its fields


def _settings(parsed: Mapping[str, Any], secret_names: SecretNames, env: Mapping[str, str]) -> Settings:
    return Settings(
        auth=parsed["auth"],
        iam_role=parsed["iam-role"],
        oidc_subjects=parsed["oidc-subjects"],
        retire_user_keys=parsed["retire-user-keys"],
        environment=parsed["environment"],
        organization=parsed["organization"],
        visibility=parsed["visibility"],
        secret_names=secret_names,
        write_variables=parsed["write-variables"],
        ecr=EcrSettings(
            scan_on_push=parsed["scan-on-push"],
            tag_mutability=parsed["tag-mutability"],
            encryption=parsed["encryption"],
            kms_key=parsed["kms-key"],
            keep_images=parsed["keep-images"],
            expire_untagged_days=parsed["expire-untagged-days"],
        ),
        tags=parsed["tags"],
        dry_run=parsed["dry-run"],
        github_token=parsed["github-token"],
        github_api_url=parse_api_url(env.get("GITHUB_API_URL", "")),
        aws_region=parsed["aws-region"],
        ecr_repository=parsed["ecr-repository"],
        iam_policy=parsed["iam-policy"],
        iam_user=parsed["iam-user"],
        repositories=parsed["repositories"],
        retire_unmanaged_keys=parsed["retire-unmanaged-keys"],
        key_wait_seconds=parsed["key-wait-seconds"],
        lease_seconds=parsed["lease-seconds"],
        github_timeout=parse_timeout(env.get("ECR_BOOTSTRAP_GITHUB_TIMEOUT", "")),
        github_points=parse_points(env.get("ECR_BOOTSTRAP_GITHUB_POINTS", "")),
        actions_token=parsed["actions-token"],
        rotate_after=parsed["rotate-after"],
        permissions_boundary=parsed["permissions-boundary"],
        run=run_id(env),
    )


def env_values(env: Mapping[str, str]) -> dict[str, str]:
    """Inputs as the runner passes them: INPUT_<NAME>, upper-cased, hyphens kept."""
    return {name: env[key] for name in action_yml.inputs() if (key := "INPUT_" + name.upper()) in env}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entrypoint.py",
        description="Create or reuse an ECR repository, a least-privilege IAM policy and user, rotate "
        "the user's access key and write it as GitHub Actions secrets. Inputs come from INPUT_* "
        "variables (as in a workflow) or from these flags. The token is read from "
        "INPUT_GITHUB-TOKEN or GITHUB_TOKEN only, never from the command line.",
    )
    for spec in action_yml.inputs().values():
        if spec.name in TOKENS:
            continue
        parser.add_argument(
            f"--{spec.name}",
            dest=spec.name.replace("-", "_"),
            metavar="VALUE",
            help=f"{spec.description} (default: {spec.default or 'empty'})",
        )
    return parser


def from_argv(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """Flags override INPUT_* variables; the token only ever comes from the environment."""
    args = build_parser().parse_args(list(argv))
    values = env_values(env)
    if "github-token" not in values and env.get("GITHUB_TOKEN"):
        values["github-token"] = env["GITHUB_TOKEN"]
    for name in action_yml.inputs():
        flag = getattr(args, name.replace("-", "_"), None)
        if flag is not None:
            values[name] = flag
    return from_values(values, env)
