"""The one error boundary: inputs -> run -> annotations, outputs, summary, exit code."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

from .cancel import Cancellation
from .errors import BootstrapError, Cancelled
from .report import Report, outputs, summary, summary_text
from .workflow import Workflow, docs_url

VERBS = ("apply", "plan", "permissions", "bootstrap-role")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The action (no verb: inputs from INPUT_* and `--name VALUE` flags), or a verb of `ecr-bootstrap`."""
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in VERBS:
        from .command import main as command

        return command(argv, env)
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
    cancellation.install()  # the container's PID 1 ignores SIGTERM without a handler
    failed = _run(given, argv, env, workflow, report)
    cancellation.finish()  # a signal from here on changes nothing: the outputs are written either way
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
        from .inputs import from_argv, from_values

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
    except (BootstrapError, Cancelled) as exc:
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
        from .command import build_parser

        build_parser().print_help()
        sys.exit(0 if argv else 2)
    sys.exit(main(argv))
