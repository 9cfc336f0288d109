"""`ecr-bootstrap` for a person at a terminal: the verbs apply, plan, permissions and bootstrap-role; AWS from
the standard chain (or --profile, --region), the GitHub token from GITHUB_TOKEN, GH_TOKEN or `gh auth token`,
the target from the git remote `origin`. Outside GitHub Actions nothing printed is a workflow command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence

from . import action_yml, discover
from .cli import VERBS, execute
from .errors import BootstrapError
from .inputs import NOT_FLAGS, from_values, given_values
from .workflow import Workflow, docs_url

EXIT_CODES = """exit codes:
  0  done (or, for plan, the plan was printed)
  1  failed, or refused at the prompt: the message says what and how to fix it
  2  the command line itself is wrong (an unknown verb or flag)"""
_SHOWN_DEFAULTS = {
    "repositories": "the GitHub repository of this folder's git remote origin",
    "aws-region": "AWS_REGION, AWS_DEFAULT_REGION, or the profile's region",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecr-bootstrap",
        description="Create or reuse an ECR repository, a least-privilege IAM policy and user (or an OIDC\n"
        "role), and write what a workflow needs to push images as GitHub Actions secrets.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for verb, text in VERBS.items():
        sub = verbs.add_parser(
            verb,
            help=text,
            description=text.capitalize() + ".",
            epilog=EXIT_CODES,
            usage="%(prog)s [options]",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if verb == "bootstrap-role":
            continue  # its own parser reads the rest
        _add_inputs(sub)
        if verb != "permissions":
            sub.add_argument(
                "--profile", metavar="NAME", help="AWS named profile (default: the standard chain)"
            )
            sub.add_argument("-y", "--yes", action="store_true", help="do not ask before changing anything")
            sub.add_argument(
                "--output",
                choices=("text", "json"),
                default="text",
                help="json: the outputs as one JSON object",
            )
    return parser


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    """A flag per input of action.yml; an on/off input takes `--name`, `--no-name` or `--name=true|false`."""
    for spec in action_yml.inputs().values():
        if spec.name in NOT_FLAGS:
            continue
        names = [f"--{spec.name}", "--region"] if spec.name == "aws-region" else [f"--{spec.name}"]
        shown = _SHOWN_DEFAULTS.get(spec.name, spec.default)
        text = spec.description.split(". ")[0].rstrip(".") + (f" (default: {shown})" if shown else "")
        if spec.default in ("true", "false"):
            parser.add_argument(*names, nargs="?", const="true", metavar="true|false", help=text)
            parser.add_argument(
                f"--no-{spec.name}",
                dest=spec.name.replace("-", "_"),
                action="store_const",
                const="false",
                help=argparse.SUPPRESS,
            )
        else:
            parser.add_argument(*names, metavar=spec.name.upper().replace("-", "_"), help=text)


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    if argv[:1] == ["bootstrap-role"]:
        from .bootstrap_role import main as bootstrap_role

        return bootstrap_role(argv[1:], env)
    args = build_parser().parse_args(list(argv))  # a usage error exits with 2
    given = given_values(env, args)  # as the action reads them: INPUT_* variables, the flags over them
    if args.verb == "permissions":
        return print_permissions(given, env)
    if args.verb == "plan":
        given["dry-run"] = "true"
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile  # read by the SDK's credential and config chain
    import botocore.exceptions

    try:
        given.update(_discovered(given, env))
    except botocore.exceptions.BotoCoreError as exc:  # an unknown profile: before any request
        Workflow(env).error(
            f"--profile: {exc}. Fix: name a profile of your AWS config (aws configure list-profiles)."
        )
        return 2
    if not (given.get("repositories") or env.get("GITHUB_REPOSITORY")):
        Workflow(env).error(
            "--repositories: no target given, and this folder is not a clone with a GitHub remote 'origin'. "
            "Fix: pass --repositories OWNER/NAME, or run the command in a clone of that repository."
        )
        return 1
    if (
        not args.yes
        and given.get("dry-run", "false") != "true"
        and sys.stdin.isatty()
        and sys.stdout.isatty()
    ):
        code = execute(given | {"dry-run": "true"}, env, show_outputs=False)
        if code or not _confirm("Apply these changes?"):
            print("Nothing was changed.", file=sys.stderr)
            return 1
    return execute(given, env, as_json=args.output == "json")


def _discovered(given: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """What a person at a terminal need not type: the token, the target, the region of the profile."""
    found = {"github-token": given.get("github-token") or discover.github_token(env)}
    if not given.get("repositories") and not env.get("GITHUB_REPOSITORY"):
        found["repositories"] = discover.origin_repository()
    region = discover.profile_region(os.environ.get("AWS_PROFILE", ""))  # checks the profile too
    if not (given.get("aws-region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        found["aws-region"] = region
    return {name: value for name, value in found.items() if value}


def _confirm(question: str) -> bool:
    """apply's question: input()'s prompt (readline's editing; on stderr where readline is not loaded)."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def print_permissions(given: Mapping[str, str], env: Mapping[str, str]) -> int:
    """`ecr-bootstrap permissions [--auth oidc ...]`: the policy the action's AWS identity needs for these
    options (the same flags and INPUT_* variables as a run; no token needed)."""
    from .permissions import action_policy

    region = given.get("aws-region")
    stand_ins = {"github-token": "unused", "aws-region": region or "us-east-1"}  # only the options matter
    try:
        settings = from_values({**given, **stand_ins}, {"GITHUB_REPOSITORY": "owner/repo"})
        document = action_policy(settings, region=settings.aws_region if region else "*")
    except BootstrapError as exc:
        Workflow(env).error(exc.render(docs_url(env)), title=exc.title)
        return 1
    print(json.dumps(document, indent=2))
    return 0
