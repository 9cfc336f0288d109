"""`bootstrap-role`'s work: look at the account (and the repository's variable), plan each change as a
step (create, reuse, update, write), carry the plan out. The CLI and its output are bootstrap_role.py.
The role's policy is inline (PutRolePolicy): it belongs to this role alone, has no versions to prune (a
managed policy keeps at most 5), is read back whole by GetRolePolicy, and goes when the role goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .aws import AwsClients, call, caller_account, pages
from .aws import oidc as aws_oidc
from .aws.iam import attached_policies, decoded_document
from .errors import BootstrapError, GitHubError
from .inputs import Settings
from .permissions import action_policy
from .places import Place
from .policy import Document, same_policy, to_json
from .trust import AUDIENCE, PROVIDER_HOST, provider_arn, trust_policy

if TYPE_CHECKING:  # imported when the variable is asked for (bootstrap_role._github)
    from .github import GitHub

POLICY_NAME = "ecr-bootstrap-action"  # the role's inline policy: the action's own permissions
PURPOSE = ("ecr-bootstrap:purpose", "bootstrap-role")  # marks a role this command made (and may change)
REPOSITORY_TAG = "ecr-bootstrap:repository"
# What the identity running bootstrap-role needs (an administrator's, not the action's: tests/test_permissions
# holds this module's calls, and those of the aws/ functions it calls, to it); docs/bootstrap-role.md
# lists it.
NEEDED = (
    "sts:GetCallerIdentity",
    "iam:GetOpenIDConnectProvider",
    "iam:CreateOpenIDConnectProvider",
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:TagOpenIDConnectProvider",
    "iam:GetRole",
    "iam:CreateRole",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
)
DESCRIPTION = "Assumed by GitHub Actions of {} to run the ECR bootstrap action (ecr-bootstrap bootstrap-role)"


@dataclass(frozen=True)
class Request:
    """The command line, checked: what it asks for, before the account is known."""

    repository: str
    subject: str  # GitHub's OIDC subject pattern, e.g. repo:octo-org/app:ref:refs/heads/main
    environment: str
    ref: str
    role_name: str
    profile: str
    dry_run: bool
    yes: bool
    variable: str  # the Actions variable to write the role ARN to ("" unless --write-variable)
    options: tuple[tuple[str, str], ...]  # the action's options given (input name, value)
    settings: Settings  # for those options: the role's policy, its tags, boundary and region


@dataclass(frozen=True)
class Found:
    partition: str
    account: str
    provider: aws_oidc.Provider | None
    role: aws_oidc.Role | None
    policy: Document | str | None  # the role's inline policy of ours, None when missing
    others: tuple[str, ...]  # its other inline policies and attached managed policies: kept, reported
    variable: str | None  # the variable's current value; None when it does not exist (or is not read)


@dataclass(frozen=True)
class Step:
    action: str  # create | reuse | update | write | keep | note
    what: str
    detail: str = ""

    @property
    def changes(self) -> bool:
        return self.action in ("create", "update", "write")

    def line(self) -> str:
        return f"{self.action:<7} {self.what}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Plan:
    wanted: Request
    found: Found
    trust: Document
    policy: Document
    steps: list[Step] = field(default_factory=list)

    @property
    def role_arn(self) -> str:
        if self.found.role is not None:
            return self.found.role.arn
        return f"arn:{self.found.partition}:iam::{self.found.account}:role/{self.wanted.role_name}"

    @property
    def changes(self) -> bool:
        return any(s.changes for s in self.steps)

    def step(self, what: str) -> Step:
        return next(s for s in self.steps if s.what.startswith(what))


# -- look ---------------------------------------------------------------------------------------------


def look(aws: AwsClients, wanted: Request, github: GitHub | None) -> Found:
    """Every read, before anything is changed (the variable first: a token that cannot read it stops the
    command before AWS is touched). `github`: None when the variable is not read."""
    variable = _read_variable(github, wanted.repository, wanted.variable) if github else None
    account, partition = caller_account(aws)
    provider = aws_oidc.find_provider(aws, provider_arn(partition, account))
    role = aws_oidc.find_role(aws, wanted.role_name)
    policy, others = _role_policies(aws, role.name) if role else (None, ())
    return Found(partition, account, provider, role, policy, others, variable)


def _role_policies(aws: AwsClients, name: str) -> tuple[Document | str | None, tuple[str, ...]]:
    """The role's inline policy of ours (None when missing), and its other policies."""
    inline = pages(
        f"Listing the inline policies of IAM role '{name}'",
        "iam:ListRolePolicies",
        aws.iam,
        "PolicyNames",
        RoleName=name,
        MaxItems=1000,
    )
    others = {f"inline policy {p}" for p in inline if p != POLICY_NAME} | attached_policies(aws, name, "role")
    ours = POLICY_NAME in inline and call(
        f"Reading the inline policy {POLICY_NAME} of IAM role '{name}'",
        "iam:GetRolePolicy",
        aws.iam,
        none_on="NoSuchEntity",
        RoleName=name,
        PolicyName=POLICY_NAME,
    )
    return (decoded_document(ours.get("PolicyDocument", {})) if ours else None), tuple(sorted(others))


# -- plan ---------------------------------------------------------------------------------------------


def plan(wanted: Request, found: Found) -> Plan:
    """Pure: each change as a step; raises BootstrapError for a role this command may not take over. The
    trust policy was checked by bootstrap_role.parse: only the provider's partition and account differ."""
    trust = trust_policy(provider_arn(found.partition, found.account), [wanted.subject])
    policy = action_policy(
        wanted.settings, partition=found.partition, account=found.account, region=wanted.settings.aws_region
    )
    decided = Plan(wanted, found, trust, policy)
    decided.steps.append(_provider_step(found.provider))
    decided.steps += _role_steps(decided)
    if wanted.variable:
        decided.steps.append(_variable_step(decided))
    return decided


def _provider_step(provider: aws_oidc.Provider | None) -> Step:
    what = f"OIDC provider {PROVIDER_HOST}"
    if provider is None:
        return Step("create", what, f"audience {AUDIENCE}")
    if AUDIENCE not in provider.audiences:
        return Step("update", what, f"add the audience {AUDIENCE}")
    return Step("reuse", what)


def _role_steps(decided: Plan) -> list[Step]:
    wanted, role = decided.wanted, decided.found.role
    boundary = wanted.settings.permissions_boundary  # "" when none is given: an existing one is kept
    what = f"IAM role {wanted.role_name}"
    if role is None:
        detail = f"trusts {wanted.subject}" + (f"; permissions boundary {boundary}" if boundary else "")
        return [Step("create", what, detail), _policy_step(None, decided.policy)]
    if PURPOSE not in role.tags:
        raise BootstrapError(
            f"IAM role '{wanted.role_name}' exists and was not made by bootstrap-role (no tag "
            f"{PURPOSE[0]}={PURPOSE[1]}); nothing was changed.",
            fix=f"Pass --role-name with another name; or, to let this command replace its trust and its "
            f"inline policy {POLICY_NAME}, tag it {PURPOSE[0]}={PURPOSE[1]}.",
        )
    if same_policy(role.trust, decided.trust):
        steps = [Step("reuse", what, f"trusts {wanted.subject}")]
    else:
        steps = [Step("update", what, f"trust policy differs; will trust {wanted.subject}")]
    if boundary and role.boundary != boundary:
        steps.append(Step("update", f"permissions boundary of {wanted.role_name}", boundary))
    elif role.boundary and not boundary:
        steps.append(Step("keep", f"permissions boundary of {wanted.role_name}", role.boundary))
    steps.append(_policy_step(decided.found.policy, decided.policy))
    steps += [
        Step("note", f"{wanted.role_name} also has {o}", "kept; it adds to the role's rights")
        for o in decided.found.others
    ]
    return steps


def _policy_step(found: Document | str | None, policy: Document) -> Step:
    what = f"inline policy {POLICY_NAME}"
    if found is None:
        return Step("create", what, "the action's own policy for these options")
    if same_policy(found, policy):
        return Step("reuse", what)
    return Step("update", what, "differs from the action's own policy for these options")


def _variable_step(decided: Plan) -> Step:
    wanted, current = decided.wanted, decided.found.variable
    what = f"variable {wanted.variable} of {wanted.repository}"
    if current == decided.role_arn:
        return Step("reuse", what)
    return Step("write", what, decided.role_arn + ("" if current is None else f" (was {current})"))


# -- apply --------------------------------------------------------------------------------------------


def apply(aws: AwsClients, decided: Plan, github: GitHub | None) -> None:
    """Carries the plan out, in order (`github` writes the variable)."""
    wanted, boundary = decided.wanted, decided.wanted.settings.permissions_boundary
    provider = decided.step("OIDC provider")
    if provider.action == "create":
        aws_oidc.create_provider(aws, (*wanted.settings.tags, ("ecr-bootstrap:created-by", PURPOSE[1])))
    elif provider.action == "update":
        aws_oidc.add_audience(aws, provider_arn(decided.found.partition, decided.found.account))
    role = decided.step("IAM role")
    if role.action == "create":  # its ARN is role_arn, as the plan printed it
        tags = (PURPOSE, (REPOSITORY_TAG, wanted.repository), *wanted.settings.tags)
        aws_oidc.create_role(
            aws, wanted.role_name, decided.trust, tags, boundary, DESCRIPTION.format(wanted.repository)
        )
    elif role.action == "update":
        aws_oidc.update_trust(aws, wanted.role_name, decided.trust)
    if any(s.action == "update" and s.what.startswith("permissions boundary") for s in decided.steps):
        call(
            f"Setting the permissions boundary of IAM role '{wanted.role_name}'",
            "iam:PutRolePermissionsBoundary",
            aws.iam,
            RoleName=wanted.role_name,
            PermissionsBoundary=boundary,
        )
    if decided.step("inline policy").changes:
        call(
            f"Writing the inline policy {POLICY_NAME} of IAM role '{wanted.role_name}'",
            "iam:PutRolePolicy",
            aws.iam,
            RoleName=wanted.role_name,
            PolicyName=POLICY_NAME,
            PolicyDocument=to_json(decided.policy),
        )
    # github is None only without a token in a dry run, which applies nothing (bootstrap_role._github).
    if wanted.variable and github is not None and decided.step("variable").changes:
        github.put_variable(Place("repo", wanted.repository), wanted.variable, decided.role_arn)


def _read_variable(github: GitHub, repository: str, name: str) -> str | None:
    """The repository's Actions variable `name` (None when it does not exist)."""
    from urllib.parse import quote

    path = f"/repos/{repository}/actions/variables/{quote(name, safe='')}"
    try:
        github.repository_ids(repository)  # a repository the token cannot see would answer 404 below
        data = github.get_or_none(path, f"Reading variable {name} of {repository}")
    except GitHubError as exc:
        raise GitHubError(
            exc.message,
            status=exc.status,
            fix="Give GITHUB_TOKEN (or GH_TOKEN) a token that may read and write Actions variables of "
            f"{repository} (fine-grained: 'Variables: Read and write'). Nothing was changed.",
        ) from exc
    return None if data is None else str(data.get("value", ""))
