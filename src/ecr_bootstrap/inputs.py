"""Inputs: declared once, in action.yml (names, defaults, descriptions); read from INPUT_* (the runner) or
flags (a local run) and validated into Settings by RULES, one rule per input.

Every rule lives here and every error names the input it is about, so a bad value stops the run before
anything is changed anywhere.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import action_yml
from .errors import InputError
from .keys.record import RunId
from .places import valid_owner, valid_repository

GITHUB_TOKEN_HELP = (
    "a fine-grained personal access token with the repository permission 'Secrets: Read and write' on "
    "every target, a classic token with the 'repo' scope, or a GitHub App installation token with "
    "'secrets: write'. The workflow's own GITHUB_TOKEN cannot write secrets"
)


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
# ECR's own pattern (CreateRepository API reference).
_ECR_NAME = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
_IAM_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
_PARTITION = r"aws(-[a-z]+)*"
_REGION_PART = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"
# A KMS key id (a UUID, or mrk- and 32 hex digits for a multi-Region key) or an alias name.
_KMS_ARN = re.compile(
    rf"^arn:{_PARTITION}:kms:(?P<region>{_REGION_PART}):\d{{12}}:"
    r"(key/([0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|mrk-[0-9a-f]{32})|alias/[A-Za-z0-9/_-]{1,250})$"
)
# IAM's policy ARN: an account's own policy or an AWS-managed one (account "aws"), with an optional path.
_POLICY_ARN = re.compile(rf"^arn:{_PARTITION}:iam::(\d{{12}}|aws):policy/([\w+=,.@-]+/)*[\w+=,.@-]{{1,128}}$")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


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


def parse_bool(name: str, value: str) -> bool:
    """Strict YAML 1.2 core booleans, as the runner's own inputs use them."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(name, f"'{value}' is not a boolean.", fix="Use true or false.")


def parse_region(raw: str, env: Mapping[str, str]) -> str:
    region = raw or env.get("AWS_REGION", "") or env.get("AWS_DEFAULT_REGION", "")
    if not region:
        raise InputError(
            "aws-region",
            "no region given, and neither AWS_REGION nor AWS_DEFAULT_REGION is set.",
            fix="Set aws-region (for example us-east-1), or set AWS_REGION in an earlier step "
            "(aws-actions/configure-aws-credentials does).",
        )
    if not _REGION.match(region):
        raise InputError(
            "aws-region",
            f"'{region}' is not an AWS region code.",
            fix="Use a region code such as us-east-1 or ap-southeast-1.",
        )
    return region


def parse_ecr_repository(value: str) -> str:
    if not 2 <= len(value) <= 256 or not _ECR_NAME.match(value):
        raise InputError(
            "ecr-repository",
            f"'{value}' is not a valid ECR repository name.",
            fix="Use 2-256 characters: lower-case letters and digits, separated by '.', '_', '__', "
            "'-' or '/' (for example team/app).",
        )
    return value


def parse_iam_name(name: str, value: str, max_len: int) -> str:
    if not 1 <= len(value) <= max_len or not _IAM_NAME.match(value):
        raise InputError(
            name,
            f"'{value}' is not a valid IAM name.",
            fix=f"Use 1-{max_len} characters: letters, digits and + = , . @ _ -",
        )
    return value


def parse_repositories(raw: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """owner/name entries, newline or comma separated; duplicates (case-insensitive) dropped."""
    # An unexpanded "${{ github.repository }}" (a local run reading action.yml's default) means "unset".
    text = raw if raw.strip() and "${{" not in raw else env.get("GITHUB_REPOSITORY", "")
    out: list[str] = []
    seen: set[str] = set()
    for item in re.split(r"[,\n]", text):
        entry = item.strip()
        if not entry:
            continue
        if not valid_repository(entry):
            raise InputError(
                "repositories",
                f"'{entry}' is not an owner/name repository.",
                fix="List repositories as owner/name, one per line or comma separated "
                "(for example octo-org/web-app).",
            )
        if entry.lower() not in seen:
            seen.add(entry.lower())
            out.append(entry)
    if not out:
        raise InputError(
            "repositories",
            "no repository given.",
            fix="Set repositories to one or more owner/name (the default is the workflow's own "
            "repository, ${{ github.repository }}).",
        )
    return tuple(out)


_DURATION = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, value: str) -> float:
    """`30d`, `12h`, `90m`, `45s` -> seconds; empty -> 0 (no duration). Up to 3650 days."""
    if not value:
        return 0.0
    m = _DURATION.fullmatch(value)
    seconds = int(m.group(1)) * _UNITS[m.group(2)] if m else 0
    if not 0 < seconds <= 3650 * 86400:
        raise InputError(
            name,
            f"'{value}' is not a duration.",
            fix="Use a number and a unit, s, m, h or d (for example 30d or 12h; at most 3650d), or nothing.",
        )
    return float(seconds)


def parse_seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise InputError(name, f"'{value}' is not a number of seconds.", fix="Use 0 to 3600.")
    return seconds


_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG_KEY = re.compile(r"^[\w.:/=+@ -]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w.:/=+@ -]{0,256}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_.:/@*?=+-]+$")
_SUBJECT_SHORT = {"branch": "ref:refs/heads/", "tag": "ref:refs/tags/"}
MAX_RESOURCE_TAGS = 10  # the IAM user keeps its key record in tags too (50 in all)


def parse_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise InputError(
        name, f"'{value}' is not one of {', '.join(choices)}.", fix=f"Use {' or '.join(choices)}."
    )


def parse_secret_name(name: str, value: str) -> str:
    """GitHub's rules for secret and variable names."""
    if not value or len(value) > 255 or not _SECRET_NAME.match(value) or value.upper().startswith("GITHUB_"):
        raise InputError(
            name,
            f"'{value}' is not a valid GitHub secret name.",
            fix="Use letters, digits and underscores, not starting with a digit or with GITHUB_.",
        )
    return value.upper()  # GitHub stores names upper-cased


def parse_count(name: str, value: str, most: int) -> int | None:
    if not value:
        return None
    # isdigit() alone takes superscripts and other Unicode digits, which int() refuses.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= most:
        raise InputError(name, f"'{value}' is not a whole number from 1 to {most}.", fix="Or leave it empty.")
    return int(value)


def parse_tags(value: str) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for item in re.split(r"[,\n]", value):
        if not item.strip():
            continue
        key, sep, val = item.strip().partition("=")
        key, val = key.strip(), val.strip()
        if (
            not sep
            or not _TAG_KEY.match(key)
            or not _TAG_VALUE.match(val)
            or key.lower().startswith(("aws:", "ecr-bootstrap:"))
        ):
            raise InputError(
                "tags",
                f"'{item.strip()}' is not a key=value resource tag.",
                fix="Use key=value pairs, newline or comma separated; keys may not start with aws: or "
                "ecr-bootstrap:.",
            )
        out[key] = val
    if len(out) > MAX_RESOURCE_TAGS:
        raise InputError("tags", f"{len(out)} tags given.", fix=f"Use at most {MAX_RESOURCE_TAGS}.")
    return tuple(out.items())


def parse_environment(value: str) -> str:
    if value and (
        len(value) > 255
        or any(c in value for c in "/\\:,'\"")
        or not value.isprintable()
        or value != value.strip()
    ):
        raise InputError(
            "environment",
            f"'{value}' is not a usable environment name.",
            fix="Use up to 255 printable characters without / \\ : , or quotes.",
        )
    return value


def parse_subjects(value: str) -> tuple[str, ...]:
    """Subject patterns for the role's trust policy: kept as given (expanded later, per target)."""
    out: list[str] = []
    for item in re.split(r"[,\n]", value):
        entry = item.strip()
        if not entry:
            continue
        kind, _, rest = entry.partition(":")
        if kind in _SUBJECT_SHORT and rest:
            entry = _SUBJECT_SHORT[kind] + rest
        if not _SUBJECT.match(entry) or len(entry) > 256 or entry.strip("*?:") == "" or entry == "repo":
            raise InputError(
                "oidc-subjects",
                f"'{item.strip()}' is not a subject pattern.",
                fix="Use patterns such as branch:main, tag:v*, environment:prod, pull_request, or a full "
                "subject repo:OWNER/REPO:ref:refs/heads/main.",
            )
        if entry.startswith("repo:"):
            owner_repo = entry[5:].split(":", 1)[0]
            if "*" in owner_repo or "?" in owner_repo or owner_repo.count("/") != 1:
                raise InputError(
                    "oidc-subjects",
                    f"'{entry}' does not name one repository.",
                    fix="Wildcards may follow the repository (repo:OWNER/REPO:*), never replace it.",
                )
        if entry not in out:
            out.append(entry)
    return tuple(out)


def parse_timeout(value: str) -> float:
    if not value.strip():
        return 15.0
    seconds = parse_seconds("ECR_BOOTSTRAP_GITHUB_TIMEOUT", value.strip())
    if not 1 <= seconds <= 300:
        raise InputError(
            "ECR_BOOTSTRAP_GITHUB_TIMEOUT", f"'{value}' is out of range.", fix="Use 1 to 300 seconds."
        )
    return seconds


def parse_points(value: str) -> tuple[int, float]:
    """GitHub's secondary limit as POINTS/SECONDS (default 900/60; GitHub Enterprise Server may differ)."""
    if not value.strip():
        return (900, 60.0)
    points, _, seconds = value.strip().partition("/")
    try:
        out = (int(points), float(seconds))
    except ValueError:
        out = (0, 0.0)
    if not (10 <= out[0] <= 100000 and 1 <= out[1] <= 3600):
        raise InputError(
            "ECR_BOOTSTRAP_GITHUB_POINTS", f"'{value}' is not POINTS/SECONDS.", fix="For example 900/60."
        )
    return out


def parse_api_url(value: str) -> str:
    url = value.rstrip("/") or "https://api.github.com"
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
        raise InputError(
            "GITHUB_API_URL",
            f"'{url}' is not an http(s) URL.",
            fix="Leave GITHUB_API_URL as the runner sets it.",
        )
    return url


def parse_kms_key(value: str) -> str:
    """A full key or alias ARN: the action's own policy names the key (or the alias's account and region)
    in its KMS statement, so a bare id or alias (resolved only inside an account) or a wildcard is refused.
    Returns the key's region."""
    found = _KMS_ARN.match(value)
    if found is None:
        what = "contains a wildcard" if "*" in value or "?" in value else "is not a full KMS key or alias ARN"
        raise InputError(
            "kms-key",
            f"'{value}' {what}.",
            fix="Give the full ARN of the key, e.g. "
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab, or of its alias, "
            "e.g. arn:aws:kms:us-east-1:123456789012:alias/ecr (aws kms describe-key --key-id alias/ecr "
            "prints the key's ARN); leave it empty for the AWS-managed key.",
        )
    return found.group("region")


def parse_boundary(value: str) -> str:
    if value and (len(value) > 2048 or not _POLICY_ARN.match(value)):
        what = "contains a wildcard" if "*" in value or "?" in value else "is not an IAM policy ARN"
        raise InputError(
            "permissions-boundary",
            f"'{value}' {what}.",
            fix="Give the ARN of one managed policy, e.g. arn:aws:iam::123456789012:policy/CiBoundary "
            "(or a path: arn:aws:iam::123456789012:policy/boundaries/CiBoundary); or leave it empty.",
        )
    return value


def parse_actions_token(value: str) -> str:
    if any(c.isspace() for c in value):
        raise InputError("actions-token", "the token contains white space.", fix="Check the secret.")
    return value


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
