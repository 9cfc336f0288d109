"""The command line, and the one error boundary: inputs -> run -> annotations, outputs, summary, exit code.
The action reads INPUT_* (and `--name VALUE` flags); `ecr-bootstrap` is for a person at a terminal: the verbs
apply, plan, permissions and bootstrap-role; AWS from the standard chain (or --profile, --region), the GitHub
token from GITHUB_TOKEN, GH_TOKEN or `gh auth token`, the target from the git remote `origin`. Outside GitHub
Actions nothing printed is a workflow command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence

from . import action_yml, discover
from .cancel import Cancellation
from .errors import BootstrapError, Cancelled
from .inputs import TOKENS, Settings, from_values, given_inputs
from .report import Report, outputs, summary, summary_text
from .workflow import Workflow, docs_url

VERBS = {  # `ecr-bootstrap`'s verbs, each with its help
    "apply": "make the changes (shows the plan and asks first on a terminal)",
    "plan": "print what apply would change; change nothing",
    "permissions": "print the IAM policy the identity running apply needs for these options",
    "bootstrap-role": "create the OIDC role a workflow assumes to run this action (see its --help)",
}
EXIT_CODES = """exit codes:
  0  done (or, for plan, the plan was printed)
  1  failed, or refused at the prompt: the message says what and how to fix it
  2  the command line itself is wrong (an unknown verb or flag)"""
_SHOWN_DEFAULTS = {
    "repositories": "the GitHub repository of this folder's git remote origin",
    "aws-region": "AWS_REGION, AWS_DEFAULT_REGION, or the profile's region",
}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The action (no verb: inputs from INPUT_* and `--name VALUE` flags), or a verb of `ecr-bootstrap`."""
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in VERBS:
        return _verb(argv, env)
    return execute(None, env, argv=argv)


def execute(
    given: Mapping[str, str] | None,
    env: Mapping[str, str],
    *,
    argv: Sequence[str] = (),
    show_outputs: bool = True,
    as_json: bool = False,
) -> int:
    """One run, from input values (`given`) or, for the action, from INPUT_* and `argv`. With `as_json` the
    outputs are one JSON object on stdout and everything else goes to stderr."""
    workflow = Workflow(env, out=sys.stderr if as_json else None)
    report = Report()
    cancellation = Cancellation()
    try:
        cancellation.install()  # the container's PID 1 ignores SIGTERM without a handler
        failed = _run(given, argv, env, workflow, report)
        cancellation.finish()  # a signal from here on changes nothing: the outputs are written either way
    except Cancelled as cancelled:  # rolled back where it came (keys/rotate.py), if anything had to be
        cancelled.handled = True  # the first statement: no signal is handled before it (cancel.py)
        failed = cancelled.render(docs_url(env))
        workflow.error(failed, title=cancelled.title)
    finally:
        cancellation.finish()  # again, for what leaves _run otherwise (argparse's exit)
    shown = {k: v for k, v in outputs(report).items() if v}
    if as_json:
        print(json.dumps(shown, indent=2))
    elif show_outputs:
        workflow.set_outputs(shown)
    if report.changes or failed or report.dry_run:
        workflow.write_summary(summary(report, failed=failed), summary_text(report, failed=failed))
    return 1 if failed else 0


def _run(
    given: Mapping[str, str] | None,
    argv: Sequence[str],
    env: Mapping[str, str],
    workflow: Workflow,
    report: Report,
) -> str:
    """The run itself; what failed, as the message shown ("" when nothing did)."""
    failed = ""
    try:
        # every input checked before any client exists
        settings = from_argv(argv, env) if given is None else from_values(given, env)
        workflow.mask(settings.github_token)  # before anything could print them
        workflow.mask(settings.actions_token)
        from .apply import run
        from .aws import AwsClients
        from .github import GitHub, Pacer

        aws = AwsClients(settings.aws_region)
        github = GitHub(
            settings.github_token,
            settings.github_api_url,
            timeout=settings.github_timeout,
            pacer=Pacer(*settings.github_points),
            warn=lambda text: workflow.warning(text, title="GitHub"),
        )
        run(settings, aws, github, workflow, report)
    except BootstrapError as exc:
        failed = exc.render(docs_url(env))
        workflow.error(failed, title=exc.title)
    except KeyboardInterrupt:
        failed = "Interrupted."
        workflow.error(failed, title="ECR bootstrap interrupted")
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback, but say what broke
        failed = f"Unexpected {type(exc).__name__}: {exc}"
        workflow.error(failed + " Please report this as a bug.", title="ECR bootstrap crashed")
    return failed


def console() -> None:
    """`ecr-bootstrap` (the console script, `python -m ecr_bootstrap`): the verbs. With no verb, the action,
    reading INPUT_* as in a workflow; with nothing at all (a person, not a workflow) it shows its help."""
    argv = sys.argv[1:]
    if argv[:1] in (["-h"], ["--help"]) or not (argv or any(k.startswith("INPUT_") for k in os.environ)):
        build_parser().print_help()
        sys.exit(0 if argv else 2)
    sys.exit(main(argv))


def from_argv(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """The action's flags over its INPUT_* variables; the token only ever comes from the environment."""
    parser = argparse.ArgumentParser(
        prog="entrypoint.py",
        description="Create or reuse an ECR repository, a least-privilege IAM policy and user, rotate "
        "the user's access key and write it as GitHub Actions secrets. Inputs come from INPUT_* "
        "variables (as in a workflow) or from these flags. The token is read from "
        "INPUT_GITHUB-TOKEN or GITHUB_TOKEN only, never from the command line.",
    )
    _add_inputs(parser, terse=False)
    raw = given_inputs(env, parser.parse_args(list(argv)))
    if "github-token" not in raw and env.get("GITHUB_TOKEN"):
        raw["github-token"] = env["GITHUB_TOKEN"]
    return from_values(raw, env)


# -- `ecr-bootstrap VERB`, for a person at a terminal ------------------------------------------------------


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


def _add_inputs(parser: argparse.ArgumentParser, *, terse: bool = True) -> None:
    """A flag per input of action.yml, but the tokens: they come from the environment, never a flag. The
    verbs' (`terse`): an on/off input takes `--name`, `--no-name` or `--name=true|false`. The action's: the
    whole description, `--name VALUE`."""
    for spec in action_yml.inputs().values():
        if spec.name in TOKENS:
            continue
        if not terse:
            help_text = f"{spec.description} (default: {spec.default or 'empty'})"
            parser.add_argument(f"--{spec.name}", metavar="VALUE", help=help_text)
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


def _verb(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`ecr-bootstrap VERB`, for a person at a terminal."""
    if argv[:1] == ["bootstrap-role"]:
        from .bootstrap_role import main as bootstrap_role

        return bootstrap_role(argv[1:], env)
    args = build_parser().parse_args(list(argv))  # a usage error exits with 2
    given = given_inputs(env, args)  # as the action reads them: INPUT_* variables, the flags over them
    if args.verb == "permissions":
        return print_permissions(given, env)
    if args.verb == "plan":
        given["dry-run"] = "true"
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile  # read by the SDK's credential and config chain
    import botocore.exceptions

    try:  # checks the profile too, a region given or not
        region = discover.region(given.get("aws-region", ""), env, os.environ.get("AWS_PROFILE", ""))
    except botocore.exceptions.BotoCoreError as exc:  # an unknown profile: before any request
        Workflow(env).error(
            f"--profile: {exc}. Fix: name a profile of your AWS config (aws configure list-profiles)."
        )
        return 2
    # what a person at a terminal need not type: the token, the target (below), the profile's region
    token = given.get("github-token") or discover.github_token(env)
    given |= {name: value for name, value in (("github-token", token), ("aws-region", region)) if value}
    if not (given.get("repositories") or env.get("GITHUB_REPOSITORY")):
        given["repositories"] = discover.origin_repository()
        if not given["repositories"]:
            Workflow(env).error(
                "--repositories: no target given, and this folder is not a clone with a GitHub remote "
                "'origin'. Fix: pass --repositories OWNER/NAME, or run the command in a clone of that "
                "repository."
            )
            return 1
    if not args.yes and given.get("dry-run") != "true" and sys.stdin.isatty() and sys.stdout.isatty():
        code = execute(given | {"dry-run": "true"}, env, show_outputs=False)
        if code or not _confirm("Apply these changes?"):
            print("Nothing was changed.", file=sys.stderr)
            return 1
    return execute(given, env, as_json=args.output == "json")


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
    from .permissions import action_policy, options_settings

    region = given.get("aws-region")
    try:
        settings = options_settings(given, region or "us-east-1")
        document = action_policy(settings, region=settings.aws_region if region else "*")
    except BootstrapError as exc:
        Workflow(env).error(exc.render(docs_url(env)), title=exc.title)
        return 1
    print(json.dumps(document, indent=2))
    return 0
