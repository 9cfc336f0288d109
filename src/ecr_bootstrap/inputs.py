"""Inputs: declared once, read from INPUT_* (the runner) or flags (a local run), validated into Settings.

Every rule lives here and every error names the input it is about, so a bad value stops the run before
anything is changed anywhere.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import InputError

GITHUB_TOKEN_HELP = (
    "a fine-grained personal access token with the repository permission 'Secrets: Read and write' on "
    "every target, a classic token with the 'repo' scope, or a GitHub App installation token with "
    "'secrets: write'. The workflow's own GITHUB_TOKEN cannot write secrets"
)


@dataclass(frozen=True)
class Input:
    name: str
    default: str
    description: str
    required: bool = False
    secret: bool = False  # never accepted as a command-line flag


INPUTS: tuple[Input, ...] = (
    Input(
        "github-token",
        "",
        "Token allowed to write Actions secrets in every target repository: " + GITHUB_TOKEN_HELP + ".",
        required=True,
        secret=True,
    ),
    Input(
        "aws-region",
        "",
        "AWS region of the ECR repository. Empty: AWS_REGION, then AWS_DEFAULT_REGION.",
    ),
    Input("ecr-repository", "fcj-workshop-app", "Name of the private ECR repository."),
    Input("iam-policy", "fcj-ecr-ci-cd-policy", "Name of the customer-managed IAM policy."),
    Input("iam-user", "fcj-ecr-ci-cd-user", "Name of the IAM user whose access key is written."),
    Input(
        "repositories",
        "${{ github.repository }}",
        "Repositories (owner/name, newline or comma separated) that receive the secrets.",
    ),
    Input(
        "retire-unmanaged-keys",
        "false",
        "Also retire (and, at the 2-key limit, reclaim) access keys of the user that this action did "
        "not create. Off by default: such a key may be in use somewhere this action cannot see.",
    ),
    Input(
        "key-wait-seconds",
        "120",
        "How long to wait for a new access key to become usable (IAM is eventually consistent) "
        "before giving up and rolling back.",
    ),
    Input(
        "lease-seconds",
        "900",
        "How long a run's new key counts as in flight. The run writes no target after that; a later run "
        "treats an older pending key as abandoned (a crashed run) and repairs what it left. Must be "
        "longer than key-wait-seconds.",
    ),
)

INPUT_NAMES = tuple(i.name for i in INPUTS)

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
# ECR's own pattern (CreateRepository API reference).
_ECR_NAME = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
_IAM_NAME = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


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
    github_timeout: float = 15.0  # seconds per GitHub request; ECR_BOOTSTRAP_GITHUB_TIMEOUT (tests, GHES)

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
        owner, sep, name = entry.partition("/")
        if not sep or not _OWNER.match(owner) or not _REPO.match(name) or name in (".", ".."):
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


def parse_seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise InputError(name, f"'{value}' is not a number of seconds.", fix="Use 0 to 3600.")
    return seconds


def parse_timeout(value: str) -> float:
    if not value.strip():
        return 15.0
    seconds = parse_seconds("ECR_BOOTSTRAP_GITHUB_TIMEOUT", value.strip())
    if not 1 <= seconds <= 300:
        raise InputError(
            "ECR_BOOTSTRAP_GITHUB_TIMEOUT", f"'{value}' is out of range.", fix="Use 1 to 300 seconds."
        )
    return seconds


def parse_api_url(value: str) -> str:
    url = value.rstrip("/") or "https://api.github.com"
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
        raise InputError(
            "GITHUB_API_URL",
            f"'{url}' is not an http(s) URL.",
            fix="Leave GITHUB_API_URL as the runner sets it.",
        )
    return url


def from_values(values: Mapping[str, str], env: Mapping[str, str]) -> Settings:
    """Validate raw input values (keyed by input name; missing ones take their defaults)."""

    def get(name: str) -> str:
        spec = next(i for i in INPUTS if i.name == name)
        value = values.get(name)
        if value is None:
            value = "" if spec.default.startswith("${{") else spec.default
        return value.strip()

    token = get("github-token")
    if not token:
        raise InputError(
            "github-token",
            "no token given.",
            fix="Pass github-token: ${{ secrets.YOUR_PAT }} with " + GITHUB_TOKEN_HELP + ".",
        )
    if any(c.isspace() for c in token):
        raise InputError("github-token", "the token contains white space.", fix="Check the secret.")
    key_wait = parse_seconds("key-wait-seconds", get("key-wait-seconds"))
    lease = parse_seconds("lease-seconds", get("lease-seconds"))
    if lease <= key_wait:
        raise InputError(
            "lease-seconds",
            f"{lease:g} is not longer than key-wait-seconds ({key_wait:g}).",
            fix="Give the run time to write the targets after the key works: for example 900.",
        )
    return Settings(
        github_token=token,
        github_api_url=parse_api_url(env.get("GITHUB_API_URL", "")),
        aws_region=parse_region(get("aws-region"), env),
        ecr_repository=parse_ecr_repository(get("ecr-repository")),
        iam_policy=parse_iam_name("iam-policy", get("iam-policy"), 128),
        iam_user=parse_iam_name("iam-user", get("iam-user"), 64),
        repositories=parse_repositories(values.get("repositories", ""), env),
        retire_unmanaged_keys=parse_bool("retire-unmanaged-keys", get("retire-unmanaged-keys")),
        key_wait_seconds=key_wait,
        lease_seconds=lease,
        github_timeout=parse_timeout(env.get("ECR_BOOTSTRAP_GITHUB_TIMEOUT", "")),
    )


def env_values(env: Mapping[str, str]) -> dict[str, str]:
    """Inputs as the runner passes them: INPUT_<NAME>, upper-cased, hyphens kept."""
    out: dict[str, str] = {}
    for spec in INPUTS:
        key = "INPUT_" + spec.name.upper()
        if key in env:
            out[spec.name] = env[key]
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entrypoint.py",
        description="Create or reuse an ECR repository, a least-privilege IAM policy and user, rotate "
        "the user's access key and write it as GitHub Actions secrets. Inputs come from INPUT_* "
        "variables (as in a workflow) or from these flags. The token is read from "
        "INPUT_GITHUB-TOKEN or GITHUB_TOKEN only, never from the command line.",
    )
    for spec in INPUTS:
        if spec.secret:
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
    for spec in INPUTS:
        flag = getattr(args, spec.name.replace("-", "_"), None)
        if flag is not None:
            values[spec.name] = flag
    return from_values(values, env)
