"""The one error boundary: inputs -> run -> annotations, outputs, summary, exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from .errors import BootstrapError
from .report import Report, outputs, summary
from .workflow import Workflow, docs_url


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["permissions"]:
        return print_permissions(argv[1:], env)
    workflow = Workflow(env)
    report = Report()
    failed = ""
    try:
        from .inputs import from_argv

        settings = from_argv(argv, env)  # every input checked before any client exists
        from .aws import AwsClients
        from .bootstrap import run
        from .github import GitHub

        run(
            settings,
            AwsClients.create(settings.aws_region),
            GitHub(settings.github_token, settings.github_api_url, timeout=settings.github_timeout),
            workflow,
            report,
        )
    except BootstrapError as exc:
        failed = exc.render(docs_url(env))
        workflow.error(failed, title=exc.title)
    except KeyboardInterrupt:
        failed = "Interrupted."
        workflow.error(failed, title="ECR bootstrap interrupted")
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback, but say what broke
        failed = f"Unexpected {type(exc).__name__}: {exc}"
        workflow.error(failed + " Please report this as a bug.", title="ECR bootstrap crashed")
    workflow.set_outputs({k: v for k, v in outputs(report).items() if v})
    if report.changes or failed:
        workflow.write_summary(summary(report, failed=failed))
    return 1 if failed else 0


def print_permissions(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`entrypoint.py permissions [--ecr-repository ...]`: the policy the action's AWS identity needs."""
    import json

    from .inputs import build_parser, parse_ecr_repository, parse_iam_name
    from .permissions import action_policy

    args = build_parser().parse_args(list(argv))
    try:
        document = action_policy(
            parse_ecr_repository(args.ecr_repository or "fcj-workshop-app"),
            parse_iam_name("iam-policy", args.iam_policy or "fcj-ecr-ci-cd-policy", 128),
            parse_iam_name("iam-user", args.iam_user or "fcj-ecr-ci-cd-user", 64),
            region=args.aws_region or "*",
        )
    except BootstrapError as exc:
        Workflow(env).error(exc.render(docs_url(env)), title=exc.title)
        return 1
    print(json.dumps(document, indent=2))
    return 0
