"""`ecr-bootstrap bootstrap-role`: the IAM role that one repository's workflows assume (GitHub OIDC) to run
the action itself, with exactly the action's own policy for the options given (what `ecr-bootstrap
permissions` prints), so that no AWS key is stored anywhere. The work itself: bootstrap_role_steps.py."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

from . import action_yml, discover
from . import bootstrap_role_steps as steps
from .aws import AwsClients
from .bootstrap_role_steps import Request
from .errors import BootstrapError, InputError, Usage
from .inputs import TOKENS, given_inputs
from .permissions import options_settings
from .places import valid_repository
from .trust import problems, provider_arn, trust_policy
from .values import parse_iam_name, parse_region
from .workflow import Workflow

if TYPE_CHECKING:
    from .github import GitHub

PROG = "ecr-bootstrap bootstrap-role"
# The action's inputs that this command takes under its own meaning (or not at all): the rest are passed
# through to the action's options as `ecr-bootstrap permissions` takes them.
OWN = {"environment", "dry-run", "permissions-boundary", "aws-region", "tags", *TOKENS}
ROLE_NAME_MAX = 64
DOCS = "docs/bootstrap-role.md"
ACTION_USES = "your-org/ecr-bootstrap-action@v1"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Usage(message, fix=f"See {PROG} --help.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage="%(prog)s --repository OWNER/REPO [--ref REF | --environment NAME] [options] "
        "[the action's options]",
        description="Create or reuse GitHub's OIDC provider in the AWS account and an IAM role that only "
        "the workflows of one GitHub repository (optionally one branch, tag or environment) can assume, "
        "with exactly the action's own policy for the options given (what `ecr-bootstrap permissions` "
        "prints for them). Prints a plan, then the role ARN and the workflow that uses it. Running it "
        "again changes nothing; a trust or policy that drifted is put back.",
        epilog="AWS credentials come from the standard chain (environment, --profile, SSO, instance "
        "role). --write-variable takes the GitHub token from GITHUB_TOKEN, GH_TOKEN or `gh auth token`. "
        f"Exit codes: 0 done, 1 failed or declined, 2 usage error. More: {DOCS}.",
    )
    who = parser.add_argument_group("who may assume the role")
    who.add_argument("--repository", required=True, metavar="OWNER/REPO", help="the GitHub repository")
    which = who.add_mutually_exclusive_group()
    which.add_argument(
        "--ref",
        metavar="REF",
        help="only workflow runs on this ref: a branch name (main), refs/heads/..., or refs/tags/... "
        "(* and ? match as in IAM's StringLike). Default: any ref of the repository",
    )
    which.add_argument(
        "--environment",
        metavar="NAME",
        help="only jobs that run in this GitHub environment (subject repo:OWNER/REPO:environment:NAME)",
    )
    role = parser.add_argument_group("the role")
    role.add_argument("--role-name", metavar="NAME", help="default: ecr-bootstrap-OWNER-REPO (max 64)")
    role.add_argument(
        "--permissions-boundary",
        metavar="ARN",
        help="the role's permissions boundary; also passed to the action's permissions-boundary option, "
        "so the role may only create users and roles with the same boundary",
    )
    role.add_argument("--tags", metavar="K=V,...", help="tags for what is created (also the action's tags)")
    _session_flags(parser)
    _action_flags(parser)
    return parser


def _session_flags(parser: argparse.ArgumentParser) -> None:
    run = parser.add_argument_group("the run")
    run.add_argument("--profile", metavar="NAME", help="AWS profile (default: the standard chain)")
    run.add_argument(
        "--region",
        "--aws-region",
        dest="region",
        metavar="REGION",
        help="AWS region the action will run in (its policy names it); default AWS_REGION, "
        "AWS_DEFAULT_REGION, the profile's region",
    )
    run.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    run.add_argument("--yes", "-y", action="store_true", help="do not ask before changing anything")
    run.add_argument(
        "--write-variable",
        action="store_true",
        help="write the role ARN as an Actions variable of the repository",
    )
    run.add_argument(
        "--variable-name",
        default="AWS_ROLE_ARN",
        metavar="NAME",
        help="the variable's name (default AWS_ROLE_ARN; pick another if the action, with auth: oidc and "
        "write-variables, writes its own AWS_ROLE_ARN variable in this repository)",
    )


def _action_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "the action's options",
        "as `ecr-bootstrap permissions` takes them (booleans as true/false): they shape the role's policy, "
        "and the printed workflow passes them to the action",
    )
    for spec in action_yml.inputs().values():
        if spec.name not in OWN:
            group.add_argument(f"--{spec.name}", metavar="VALUE", help=f"default: {spec.default or 'empty'}")


def default_role_name(repository: str) -> str:
    """ecr-bootstrap-OWNER-REPO (GitHub's names are within IAM's character set); a longer one is cut
    and keeps a hash of the repository, so that two long names do not meet."""
    name = "ecr-bootstrap-" + repository.replace("/", "-")
    if len(name) > ROLE_NAME_MAX:
        digest = hashlib.sha256(repository.lower().encode()).hexdigest()[:8]
        name = name[: ROLE_NAME_MAX - 9] + "-" + digest
    return name


def subject(repository: str, ref: str, environment: str) -> str:
    """GitHub's OIDC subject for the workflow runs allowed (a StringLike pattern)."""
    if environment:
        return f"repo:{repository}:environment:{environment}"
    if ref:
        return f"repo:{repository}:ref:{ref if ref.startswith('refs/') else 'refs/heads/' + ref}"
    return f"repo:{repository}:*"


def parse(argv: Sequence[str], env: Mapping[str, str]) -> Request:
    """The checked command line; Usage for anything wrong, before any request."""
    args = build_parser().parse_args(list(argv))
    repository = args.repository.strip()
    if not valid_repository(repository):
        raise Usage(f"--repository: '{repository}' is not OWNER/REPO.", fix="For example octo-org/app.")
    if args.environment is not None and (not args.environment or any(c in args.environment for c in "*?")):
        raise Usage(f"--environment: '{args.environment}' is not an environment name.", fix="Name one.")
    pattern = subject(repository, args.ref or "", args.environment or "")
    found = problems(trust_policy(provider_arn("aws", "123456789012"), [pattern]))
    if found:
        raise Usage(
            f"the subject {pattern} cannot be trusted: " + "; ".join(found) + ".",
            fix="Use letters, digits and _ . : / @ = + - in --ref or --environment.",
        )
    options = _options(args)
    try:  # as `ecr-bootstrap permissions` reads them
        settings = options_settings(dict(options), _region(args.region, env, args.profile), repository)
    except InputError as exc:
        flag = f"--{exc.input_name}"
        raise Usage(exc.message.replace(f"Input '{exc.input_name}'", flag, 1), fix=exc.fix) from exc
    role_name = args.role_name or default_role_name(repository)
    _check_names(role_name, args.variable_name)
    return Request(
        repository=repository,
        subject=pattern,
        environment=args.environment or "",
        ref=args.ref or "",
        role_name=role_name,
        profile=args.profile or "",
        dry_run=args.dry_run,
        yes=args.yes,
        variable=args.variable_name if args.write_variable else "",
        options=options,
        settings=settings,
    )


def _region(given: str | None, env: Mapping[str, str], profile: str | None) -> str:
    import botocore.exceptions

    try:  # an unknown profile is refused here, before any request
        region = discover.region(given or "", env, profile or "")
    except botocore.exceptions.BotoCoreError as exc:
        fix = "Name a profile of your AWS config (aws configure list-profiles)."
        raise Usage(f"--profile: {exc}", fix=fix) from exc
    if not region:
        raise Usage(
            "no AWS region: no --region, AWS_REGION, AWS_DEFAULT_REGION, or region of the AWS profile.",
            fix="Pass --region with the region the action will run in, e.g. --region us-east-1.",
        )
    try:
        return parse_region(region, {})
    except InputError as exc:
        raise Usage(f"--region: '{region}' is not an AWS region code.", fix="For example us-east-1.") from exc


def _options(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The action's options given, by input name, in action.yml's order; tags and the boundary last."""
    given = given_inputs({}, args)
    out = [(name, value) for name, value in given.items() if name not in OWN]
    return tuple(out + [(name, given[name]) for name in ("tags", "permissions-boundary") if given.get(name)])


def _check_names(role_name: str, variable: str) -> None:
    try:
        parse_iam_name("role-name", role_name, ROLE_NAME_MAX)
    except InputError as exc:
        raise Usage(f"--role-name: '{role_name}' is not a valid IAM role name.", fix=exc.fix) from exc
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable) or variable.upper().startswith("GITHUB_"):
        raise Usage(
            f"--variable-name: '{variable}' is not a variable name GitHub allows.", fix="E.g. AWS_ROLE_ARN."
        )


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`ecr-bootstrap bootstrap-role ARGS`: 0 done (or nothing to do), 1 failed or declined, 2 usage."""
    workflow = Workflow(env)
    try:
        return run(parse(argv, env), env, workflow)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except BootstrapError as exc:  # Usage comes from parse alone, before any request
        workflow.error(exc.message + (f" Fix: {exc.fix}" if exc.fix else ""))
        return 2 if isinstance(exc, Usage) else 1
    except KeyboardInterrupt:
        workflow.error("Interrupted.")
        return 1


def run(request: Request, env: Mapping[str, str], workflow: Workflow, stdin: TextIO | None = None) -> int:
    import botocore.session

    stdin = stdin or sys.stdin
    github = _github(request, env, workflow)
    # the standard credential chain, or the named profile's (its name checked in parse)
    aws = AwsClients(request.settings.aws_region, botocore.session.Session(profile=request.profile or None))
    decided = steps.plan(request, steps.look(aws, request, github))
    workflow.info(f"Plan for {request.repository} in AWS account {decided.found.account}:")
    for step in decided.steps:
        workflow.info("  " + step.line())
    if request.variable and github is None:
        workflow.info(f"  (variable {request.variable} not read: no GitHub token; a real run needs one)")
    if request.dry_run:
        workflow.info("Dry run: nothing was changed.")
        _result(request, decided.role_arn, workflow, state="would be written")
        return 0
    if not decided.changes:
        workflow.info("Nothing to change: the provider, the role and its policy are as wanted.")
    elif not (request.yes or not stdin.isatty() or _confirmed(stdin)):  # no terminal: a go
        workflow.error("Not confirmed; nothing was changed. Fix: answer y, or pass --yes.")
        return 1
    else:
        steps.apply(aws, decided, github)
        workflow.info("Done.")
    wrote = any(step.action == "write" for step in decided.steps)
    _result(request, decided.role_arn, workflow, state="written" if wrote else "already set")
    return 0


def _github(request: Request, env: Mapping[str, str], workflow: Workflow) -> GitHub | None:
    """The GitHub client for --write-variable; None when not asked for (or, in a dry run, no token)."""
    if not request.variable:
        return None
    token = discover.github_token(env)
    if not token:
        if request.dry_run:
            return None
        raise BootstrapError(
            "--write-variable needs a GitHub token: GITHUB_TOKEN and GH_TOKEN are not set, and `gh auth "
            "token` gave none; nothing was changed.",
            fix=f"Run `gh auth login`, or set GH_TOKEN to a token that may write Actions variables of "
            f"{request.repository}; or leave out --write-variable and set the variable yourself.",
        )
    workflow.mask(token)
    from .github import GitHub
    from .values import parse_api_url, parse_timeout

    return GitHub(
        token,
        parse_api_url(env.get("GITHUB_API_URL", "")),
        timeout=parse_timeout(env.get("ECR_BOOTSTRAP_GITHUB_TIMEOUT", "")),
        warn=workflow.warning,
    )


def _confirmed(stdin: TextIO) -> bool:
    """Only y or yes is a yes (no answer at all is a no)."""
    sys.stdout.write("Proceed? [y/N] ")
    sys.stdout.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def _result(request: Request, arn: str, workflow: Workflow, *, state: str) -> None:
    workflow.info(f"Role ARN: {arn}")
    if request.variable:
        workflow.info(f"Variable {request.variable} of {request.repository}: {state}")
    role = f"${{{{ vars.{request.variable} }}}}" if request.variable else arn
    workflow.info(f"A workflow for {request.repository} that runs the action with this role:")
    for line in snippet(request, role).splitlines():
        workflow.info(line)


def snippet(request: Request, role: str) -> str:
    """The workflow that runs the action with the role (`role`: the ARN, or the variable's expression)."""
    lines = ["name: Bootstrap ECR delivery", "on: workflow_dispatch"]
    if request.ref:
        lines[-1] += f"   # run it on {request.ref}: the role trusts only that ref"
    lines += [
        "permissions:",
        "  id-token: write   # lets configure-aws-credentials ask GitHub for an OIDC token",
        "  contents: read",
        "jobs:",
        "  bootstrap:",
        "    runs-on: ubuntu-latest",
    ]
    if request.environment:
        lines.append(
            f"    environment: {_yaml(request.environment)}   # the role trusts only this environment"
        )
    lines += [
        "    steps:",
        "      - uses: aws-actions/configure-aws-credentials@v6",
        "        with:",
        f"          role-to-assume: {role}",
        f"          aws-region: {request.settings.aws_region}",
        "      - id: ecr",
        f"        uses: {ACTION_USES}",
        "        with:",
        "          github-token: ${{ secrets.SECRETS_WRITER_TOKEN }}   # may write the targets' secrets",
    ]
    lines += [f"          {name}: {_yaml(value)}" for name, value in request.options]
    if not any(name == "repositories" for name, _ in request.options):
        lines.append(
            f"          # repositories: {request.repository}   # the targets (default: this repository)"
        )
    return "\n".join(lines) + "\n"


def _yaml(value: str) -> str:
    """A YAML scalar that reads back as this string."""
    plain = re.fullmatch(r"[A-Za-z][\w./@=+:-]*", value) and not value.endswith(":")
    if plain and value.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "y", "n"):
        return value
    return json.dumps(value)
