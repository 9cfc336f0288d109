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


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["permissions"]:
        return print_permissions(argv[1:], env)
    workflow = Workflow(env)
    report = Report()
    cancellation = Cancellation()
    cancellation.install()  # the container's PID 1 ignores SIGTERM without a handler
    failed = _run(argv, env, workflow, report)
    cancellation.finish()  # a signal from here on changes nothing: the outputs are written either way
    workflow.set_outputs({k: v for k, v in outputs(report).items() if v})
    if report.changes or failed or report.dry_run:
        workflow.write_summary(summary(report, failed=failed), summary_text(report, failed=failed))
    return 1 if failed else 0


def _run(argv: Sequence[str], env: Mapping[str, str], workflow: Workflow, report: Report) -> str:
    """The run itself; what failed, as the message shown ("" when nothing did)."""
    failed = ""
    try:
        from .inputs import from_argv

        settings = from_argv(argv, env)  # every input checked before any client exists
        workflow.mask(settings.github_token)  # before anything could print them
        workflow.mask(settings.actions_token)
        from .aws import AwsClients
        from .bootstrap import run
        from .github import GitHub, Pacer

        aws = AwsClients.create(settings.aws_region)
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
    """`ecr-bootstrap`, the wheel's console script: the same as `python entrypoint.py`."""
    sys.exit(main())


def print_permissions(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`entrypoint.py permissions [--auth oidc ...]`: the policy the action's AWS identity needs for
    these options (the same flags and INPUT_* variables as a run; no token needed)."""
    from .inputs import from_argv
    from .permissions import action_policy

    # Only the options matter here: stand-ins for what a run would also need.
    stand_ins = {"INPUT_GITHUB-TOKEN": "unused", "AWS_REGION": "us-east-1", "GITHUB_REPOSITORY": "owner/repo"}
    region_given = any(a.startswith("--aws-region") for a in argv) or bool(env.get("INPUT_AWS-REGION"))
    try:
        settings = from_argv(argv, {**stand_ins, **{k: v for k, v in env.items() if k.startswith("INPUT_")}})
        document = action_policy(settings, region=settings.aws_region if region_given else "*")
    except BootstrapError as exc:
        Workflow(env).error(exc.render(docs_url(env)), title=exc.title)
        return 1
    print(json.dumps(document, indent=2))
    return 0
