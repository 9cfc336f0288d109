"""Inputs: declared once, read from INPUT_* (the runner) or flags (a local run), validated into Settings.

Every rule lives here and every error names the input it is about, so a bad value stops the run before
anything is changed anywhere.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import InputError
from .keys.record import RunId
from .places import valid_owner, valid_repository

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
        "AWS region of the ECR repository. Empty means AWS_REGION, then AWS_DEFAULT_REGION.",
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
        "On a rotation, how long to wait for the new access key to become usable (IAM is eventually "
        "consistent) before giving up and rolling back. A new user's first key replaces nothing and is "
        "not waited for.",
    ),
    Input(
        "auth",
        "access-key",
        "How the target workflows reach AWS: access-key (an IAM user's key in secrets) or oidc (an IAM "
        "role that the targets assume through GitHub's OIDC provider; no long-lived key; recommended).",
    ),
    Input("iam-role", "fcj-ecr-ci-cd-role", "With auth: oidc, the name of the IAM role the targets assume."),
    Input(
        "oidc-subjects",
        "",
        "With auth: oidc, which workflow runs of the targets may assume the role (newline or comma "
        "separated). Empty: any ref of each target. A pattern such as branch:main, tag:v*, "
        "environment:prod, pull_request or ref:refs/heads/main applies to every target; a full subject "
        "(repo:OWNER/REPO:..., or the immutable repo:OWNER@ID/REPO@ID:...) is taken as given and must "
        "name a target.",
    ),
    Input(
        "retire-user-keys",
        "false",
        "With auth: oidc, switch the targets from keys to the role: remove their access-key secrets and "
        "delete the user's keys that no other repository still holds.",
    ),
    Input(
        "environment",
        "",
        "Write environment secrets of this environment in each target instead of repository secrets "
        "(created when missing, if the token may).",
    ),
    Input(
        "organization",
        "",
        "Write organization secrets of this organization, once, instead of repository secrets.",
    ),
    Input(
        "visibility",
        "private",
        "With organization: which repositories see the secrets: all, private, or selected (the "
        "repositories input; merged with those already selected, never dropping one).",
    ),
    Input("secret-name-access-key-id", "AWS_ACCESS_KEY_ID", "Name of the secret holding the access key id."),
    Input(
        "secret-name-secret-access-key",
        "AWS_SECRET_ACCESS_KEY",
        "Name of the secret holding the secret access key.",
    ),
    Input(
        "secret-name-repository-uri", "ECR_REPOSITORY_URI", "Name of the secret holding the repository URI."
    ),
    Input(
        "secret-name-role-arn", "AWS_ROLE_ARN", "With auth: oidc, name of the secret holding the role ARN."
    ),
    Input(
        "write-variables",
        "false",
        "Also write the non-secret values as Actions variables at the same place: the repository URI "
        "and (oidc) the role ARN under their secret names, and AWS_REGION.",
    ),
    Input("scan-on-push", "true", "ECR image scanning on push."),
    Input("tag-mutability", "MUTABLE", "ECR image tag mutability: MUTABLE or IMMUTABLE."),
    Input(
        "encryption",
        "AES256",
        "ECR encryption: AES256, or KMS (with kms-key). Only settable when the repository is created.",
    ),
    Input(
        "kms-key",
        "",
        "With encryption: KMS, the full ARN of the KMS key (arn:aws:kms:REGION:ACCOUNT:key/ID) or of its "
        "alias (arn:aws:kms:REGION:ACCOUNT:alias/NAME), in the repository's region; empty: the "
        "AWS-managed key.",
    ),
    Input("keep-images", "", "Lifecycle: keep only the last N images. Empty: no such rule."),
    Input("expire-untagged-days", "", "Lifecycle: expire untagged images after D days. Empty: no such rule."),
    Input(
        "tags",
        "",
        "Resource tags (key=value, newline or comma separated) for everything this action creates.",
    ),
    Input(
        "dry-run",
        "false",
        "Plan mode: read only. Print what a real run would do, in the log and the summary; change nothing.",
    ),
    Input(
        "lease-seconds",
        "900",
        "How long a run's new key counts as in flight. The run writes no target after that; a later run "
        "treats an older pending key as abandoned (a crashed run) and repairs what it left. Must be "
        "longer than key-wait-seconds. A later attempt of the same run (Re-run jobs) takes over at once.",
    ),
    Input(
        "rotate-after",
        "",
        "Rotate the access key only when it is this old: a duration such as 30d, 12h, 90m or 45s. Empty: a "
        "new key on every run. Inside the duration, a run whose targets all hold the user's current key "
        "writes nothing (it still repairs a drifted policy or ECR settings); a new target, or one whose "
        "record is missing or different, gets a rotation.",
    ),
    Input(
        "actions-token",
        "",
        "Optional token with 'actions: read' on the repositories whose workflows use this IAM user (for "
        "runs of this repository, the workflow's own github.token with permissions actions: read). When "
        "another run "
        "holds the user's lease, the action asks GitHub whether that run has completed and, if so, takes "
        "over at once instead of waiting for the lease to end.",
        secret=True,
    ),
    Input(
        "permissions-boundary",
        "",
        "ARN of an IAM managed policy (arn:aws:iam::ACCOUNT:policy/NAME) set as the permissions boundary "
        "of the IAM user or role this action creates; one that exists already keeps the boundary it has. "
        "Empty: none.",
    ),
)
INPUT_DEFAULTS = {i.name: i.default for i in INPUTS}

INPUT_NAMES = tuple(i.name for i in INPUTS)

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


@dataclass(frozen=True)
class SecretNames:
    key_id: str = "AWS_ACCESS_KEY_ID"
    secret_key: str = "AWS_SECRET_ACCESS_KEY"
    repository_uri: str = "ECR_REPOSITORY_URI"
    role_arn: str = "AWS_ROLE_ARN"


@dataclass(frozen=True)
class EcrSettings:
    scan_on_push: bool = True
    tag_mutability: str = "MUTABLE"
    encryption: str = "AES256"
    kms_key: str = ""
    keep_images: int | None = None
    expire_untagged_days: int | None = None


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
    auth: str = "access-key"
    iam_role: str = "fcj-ecr-ci-cd-role"
    oidc_subjects: tuple[str, ...] = ()
    retire_user_keys: bool = False
    environment: str = ""
    organization: str = ""
    visibility: str = "private"
    secret_names: SecretNames = field(default_factory=SecretNames)
    write_variables: bool = False
    ecr: EcrSettings = field(default_factory=EcrSettings)
    tags: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False
    github_timeout: float = 15.0  # seconds per GitHub request; ECR_BOOTSTRAP_GITHUB_TIMEOUT (tests, GHES)
    github_points: tuple[int, float] = (900, 60.0)  # secondary limit: points per window; ..._GITHUB_POINTS
    actions_token: str = ""
    rotate_after: float = 0.0  # seconds; 0: rotate on every run
    permissions_boundary: str = ""  # policy ARN set as the boundary of the user or role created
    run: RunId = field(default_factory=RunId)  # the GitHub Actions run this is (empty outside Actions)

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


def parse_secret_names(get: Callable[[str], str]) -> SecretNames:
    """The four secret names, all different (AWS_REGION is the region variable's)."""
    names = SecretNames(
        key_id=parse_secret_name("secret-name-access-key-id", get("secret-name-access-key-id")),
        secret_key=parse_secret_name("secret-name-secret-access-key", get("secret-name-secret-access-key")),
        repository_uri=parse_secret_name("secret-name-repository-uri", get("secret-name-repository-uri")),
        role_arn=parse_secret_name("secret-name-role-arn", get("secret-name-role-arn")),
    )
    given = {
        "secret-name-access-key-id": names.key_id,
        "secret-name-secret-access-key": names.secret_key,
        "secret-name-repository-uri": names.repository_uri,
        "secret-name-role-arn": names.role_arn,
    }
    seen: dict[str, str] = {"AWS_REGION": "the region variable"}
    # The input that repeats a name is named: the one set away from its default, where one is.
    for name in sorted(given, key=lambda n: get(n) != INPUT_DEFAULTS[n]):
        value = given[name]
        if value in seen:
            raise InputError(
                name,
                f"'{value}' is also the name of {seen[value]}.",
                fix="Give the secret-name-* inputs four different names, none of them AWS_REGION.",
            )
        seen[value] = name
    return names


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


Getter = Callable[[str], str]


def from_values(values: Mapping[str, str], env: Mapping[str, str]) -> Settings:
    """Validate raw input values (keyed by input name; missing ones take their defaults)."""

    def get(name: str) -> str:
        spec = next(i for i in INPUTS if i.name == name)
        value = values.get(name)
        if value is None:
            value = "" if spec.default.startswith("${{") else spec.default
        return value.strip()

    token = _github_token(get)
    key_wait, lease = _waits(get)
    auth = parse_choice("auth", get("auth"), ("access-key", "oidc"))
    organization, visibility, environment, repositories = _places(get, values, env)
    ecr = _ecr_settings(get)
    retire_user_keys = parse_bool("retire-user-keys", get("retire-user-keys"))
    if retire_user_keys and auth != "oidc":
        raise InputError(
            "retire-user-keys", "only applies with auth: oidc.", fix="Set auth: oidc, or leave this false."
        )
    return Settings(
        auth=auth,
        iam_role=parse_iam_name("iam-role", get("iam-role"), 64),
        oidc_subjects=parse_subjects(get("oidc-subjects")),
        retire_user_keys=retire_user_keys,
        environment=environment,
        organization=organization,
        visibility=visibility,
        secret_names=parse_secret_names(get),
        write_variables=parse_bool("write-variables", get("write-variables")),
        ecr=ecr,
        tags=parse_tags(get("tags")),
        dry_run=parse_bool("dry-run", get("dry-run")),
        github_token=token,
        github_api_url=parse_api_url(env.get("GITHUB_API_URL", "")),
        aws_region=parse_region(get("aws-region"), env),
        ecr_repository=parse_ecr_repository(get("ecr-repository")),
        iam_policy=parse_iam_name("iam-policy", get("iam-policy"), 128),
        iam_user=parse_iam_name("iam-user", get("iam-user"), 64),
        repositories=repositories,
        retire_unmanaged_keys=parse_bool("retire-unmanaged-keys", get("retire-unmanaged-keys")),
        key_wait_seconds=key_wait,
        lease_seconds=lease,
        github_timeout=parse_timeout(env.get("ECR_BOOTSTRAP_GITHUB_TIMEOUT", "")),
        github_points=parse_points(env.get("ECR_BOOTSTRAP_GITHUB_POINTS", "")),
        actions_token=parse_actions_token(get("actions-token")),
        rotate_after=parse_duration("rotate-after", get("rotate-after")),
        permissions_boundary=parse_boundary(get("permissions-boundary")),
        run=run_id(env),
    )


def _github_token(get: Getter) -> str:
    token = get("github-token")
    if not token:
        raise InputError(
            "github-token",
            "no token given.",
            fix="Pass github-token: ${{ secrets.YOUR_PAT }} with " + GITHUB_TOKEN_HELP + ".",
        )
    if any(c.isspace() for c in token):
        raise InputError("github-token", "the token contains white space.", fix="Check the secret.")
    return token


def _waits(get: Getter) -> tuple[float, float]:
    key_wait = parse_seconds("key-wait-seconds", get("key-wait-seconds"))
    lease = parse_seconds("lease-seconds", get("lease-seconds"))
    if lease <= key_wait:
        raise InputError(
            "lease-seconds",
            f"{lease:g} is not longer than key-wait-seconds ({key_wait:g}).",
            fix="Give the run time to write the targets after the key works: for example 900.",
        )
    return key_wait, lease


def _places(
    get: Getter, values: Mapping[str, str], env: Mapping[str, str]
) -> tuple[str, str, str, tuple[str, ...]]:
    """(organization, visibility, environment, repositories), checked against each other."""
    organization = get("organization")
    if organization and not valid_owner(organization):
        raise InputError(
            "organization",
            f"'{organization}' is not an organization name.",
            fix="Use the login, e.g. octo-org.",
        )
    visibility = parse_choice("visibility", get("visibility"), ("all", "private", "selected"))
    environment = parse_environment(get("environment"))
    if organization and environment:
        raise InputError(
            "environment",
            "environment and organization were both given.",
            fix="Organization secrets have no environments: set only one of them.",
        )
    repositories = parse_repositories(values.get("repositories", ""), env)
    if organization and visibility == "selected":
        strangers = [r for r in repositories if r.split("/")[0].lower() != organization.lower()]
        if strangers:
            raise InputError(
                "repositories",
                f"{', '.join(strangers)} not in organization {organization}.",
                fix="With visibility: selected, list repositories of that organization only.",
            )
    return organization, visibility, environment, tuple(repositories)


def _ecr_settings(get: Getter) -> EcrSettings:
    encryption = parse_choice("encryption", get("encryption"), ("AES256", "KMS"))
    kms_key = get("kms-key")
    if kms_key and encryption != "KMS":
        raise InputError(
            "kms-key", "a KMS key was given but encryption is AES256.", fix="Set encryption: KMS."
        )
    if kms_key:
        parse_kms_key(kms_key)
    return EcrSettings(
        scan_on_push=parse_bool("scan-on-push", get("scan-on-push")),
        tag_mutability=parse_choice("tag-mutability", get("tag-mutability"), ("MUTABLE", "IMMUTABLE")),
        encryption=encryption,
        kms_key=kms_key,
        keep_images=parse_count("keep-images", get("keep-images"), 10000),
        expire_untagged_days=parse_count("expire-untagged-days", get("expire-untagged-days"), 3650),
    )


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
