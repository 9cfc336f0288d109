"""Input values: one function per kind of value, holding it to what AWS and GitHub accept. Each error
names the input and says how to fix it; inputs.py says which input takes which rule."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import InputError
from .places import environment_problem, valid_owner, valid_repository

GITHUB_TOKEN_HELP = (
    "a fine-grained personal access token with the repository permission 'Secrets: Read and write' on "
    "every target, a classic token with the 'repo' scope, or a GitHub App installation token with "
    "'secrets: write'. The workflow's own GITHUB_TOKEN cannot write secrets"
)
MAX_RESOURCE_TAGS = 10  # the IAM user keeps its key record in tags too (50 in all)

_PARTITION = r"aws(-[a-z]+)*"
_REGION_PART = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"
_REGION = re.compile(rf"^{_REGION_PART}$")
# ECR's own pattern (CreateRepository API reference).
_ECR_NAME = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
_IAM_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
# A KMS key id (a UUID, or mrk- and 32 hex digits for a multi-Region key) or an alias name.
_KMS_ARN = re.compile(
    rf"^arn:{_PARTITION}:kms:{_REGION_PART}:\d{{12}}:"
    r"(key/([0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|mrk-[0-9a-f]{32})|alias/[A-Za-z0-9/_-]{1,250})$"
)
# IAM's policy ARN: an account's own policy or an AWS-managed one (account "aws"), with an optional path.
_POLICY_ARN = re.compile(rf"^arn:{_PARTITION}:iam::(\d{{12}}|aws):policy/([\w+=,.@-]+/)*[\w+=,.@-]{{1,128}}$")
_DURATION = re.compile(r"([0-9]{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG_KEY = re.compile(r"^[\w.:/=+@ -]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w.:/=+@ -]{0,256}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_.:/@*?=+-]+$")
_SUBJECT_SHORT = {"branch": "ref:refs/heads/", "tag": "ref:refs/tags/"}


def digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes superscripts, which int() refuses."""
    return text.isascii() and text.isdigit()


def _items(text: str) -> list[str]:
    """The entries of a list given one per line or comma separated."""
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


def parse_bool(name: str, value: str) -> bool:
    """Strict YAML 1.2 core booleans, as the runner's own inputs use them."""
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
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
    if not 1 <= len(value) <= max_len or not _IAM_NAME.fullmatch(value):
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
    out: dict[str, str] = {}  # by the lower-cased name: the first spelling given
    for entry in _items(text):
        if not valid_repository(entry):
            raise InputError(
                "repositories",
                f"'{entry}' is not an owner/name repository.",
                fix="List repositories as owner/name, one per line or comma separated "
                "(for example octo-org/web-app).",
            )
        out.setdefault(entry.lower(), entry)
    if not out:
        raise InputError(
            "repositories",
            "no repository given.",
            fix="Set repositories to one or more owner/name (the default is the workflow's own "
            "repository, ${{ github.repository }}).",
        )
    return tuple(out.values())


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
    if not digits(value) or not 1 <= int(value) <= most:
        raise InputError(name, f"'{value}' is not a whole number from 1 to {most}.", fix="Or leave it empty.")
    return int(value)


def parse_tags(name: str, value: str) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for item in _items(value):
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        reserved = key.lower().startswith(("aws:", "ecr-bootstrap:"))
        if not sep or reserved or not _TAG_KEY.match(key) or not _TAG_VALUE.match(val):
            raise InputError(
                name,
                f"'{item}' is not a key=value resource tag.",
                fix="Use key=value pairs, newline or comma separated; keys may not start with aws: or "
                "ecr-bootstrap:.",
            )
        out[key] = val
    if len(out) > MAX_RESOURCE_TAGS:
        raise InputError(name, f"{len(out)} tags given.", fix=f"Use at most {MAX_RESOURCE_TAGS}.")
    return tuple(out.items())


def parse_owner(name: str, value: str) -> str:
    if value and not valid_owner(value):
        raise InputError(name, f"'{value}' is not an organization name.", fix="Use the login, e.g. octo-org.")
    return value


def parse_environment(name: str, value: str) -> str:
    if value and environment_problem(value):
        raise InputError(
            name,
            f"'{value}' is not a usable environment name.",
            fix="Use up to 255 printable characters without / \\ : , or quotes.",
        )
    return value


def parse_subjects(name: str, value: str) -> tuple[str, ...]:
    """Subject patterns for the role's trust policy: kept as given (expanded later, per target)."""
    out: list[str] = []
    for item in _items(value):
        kind, _, rest = item.partition(":")
        entry = _SUBJECT_SHORT[kind] + rest if kind in _SUBJECT_SHORT and rest else item
        if not _SUBJECT.match(entry) or len(entry) > 256 or entry.strip("*?:") == "" or entry == "repo":
            raise InputError(
                name,
                f"'{item}' is not a subject pattern.",
                fix="Use patterns such as branch:main, tag:v*, environment:prod, pull_request, or a full "
                "subject repo:OWNER/REPO:ref:refs/heads/main.",
            )
        if entry.startswith("repo:"):
            owner_repo = entry[5:].split(":", 1)[0]
            if "*" in owner_repo or "?" in owner_repo or owner_repo.count("/") != 1:
                raise InputError(
                    name,
                    f"'{entry}' does not name one repository.",
                    fix="Wildcards may follow the repository (repo:OWNER/REPO:*), never replace it.",
                )
        out.append(entry)
    return tuple(dict.fromkeys(out))


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


def parse_kms_key(name: str, value: str) -> str:
    """A full key or alias ARN: the action's own policy names the key (or the alias's account and region)
    in its KMS statement, so a bare id or alias (resolved only inside an account) or a wildcard is refused.
    Empty: the AWS-managed key."""
    if value and not _KMS_ARN.match(value):
        what = "contains a wildcard" if "*" in value or "?" in value else "is not a full KMS key or alias ARN"
        raise InputError(
            name,
            f"'{value}' {what}.",
            fix="Give the full ARN of the key, e.g. "
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab, or of its alias, "
            "e.g. arn:aws:kms:us-east-1:123456789012:alias/ecr (aws kms describe-key --key-id alias/ecr "
            "prints the key's ARN); leave it empty for the AWS-managed key.",
        )
    return value


def parse_boundary(name: str, value: str) -> str:
    if value and (len(value) > 2048 or not _POLICY_ARN.match(value)):
        what = "contains a wildcard" if "*" in value or "?" in value else "is not an IAM policy ARN"
        raise InputError(
            name,
            f"'{value}' {what}.",
            fix="Give the ARN of one managed policy, e.g. arn:aws:iam::123456789012:policy/CiBoundary "
            "(or a path: arn:aws:iam::123456789012:policy/boundaries/CiBoundary); or leave it empty.",
        )
    return value


def parse_token(name: str, value: str) -> str:
    if any(c.isspace() for c in value):
        raise InputError(name, "the token contains white space.", fix="Check the secret.")
    return value
