"""One run: look (read-only, AWS and GitHub overlapping) -> plan (pure) -> apply (provision, then deliver
the key or the role ARN), or with dry-run print the plan, having changed nothing on either side."""

from __future__ import annotations

from .apply import Context, apply
from .aws import AwsClients
from .decide import decide, say
from .github import GitHub
from .inputs import Settings
from .look import Picture, look
from .plan import Plan, settings_places
from .report import Report
from .workflow import Workflow


def run(settings: Settings, aws: AwsClients, github: GitHub, workflow: Workflow, report: Report) -> None:
    targets = settings_places(settings)
    report.dry_run = settings.dry_run
    with workflow.group("Checking AWS state and GitHub access"):
        picture = look(settings, aws, github, workflow, targets)
        workflow.info(
            f"ECR repository {'exists' if picture.repository else 'is new'}; policy "
            f"{'exists' if picture.policy else 'is new' if picture.policy_known else 'to be created'}; "
            f"{len(targets)} target(s)."
        )
        decided, picture = decide(settings, aws, github, workflow, picture)
        say(decided.notes, workflow)
    if settings.dry_run:
        print_plan(decided, picture, workflow, report)
        return
    apply(decided, picture, Context(settings, aws, github, workflow, report))


def print_plan(decided: Plan, picture: Picture, workflow: Workflow, report: Report) -> None:
    """Dry run: the plan's steps, as a real run would take them."""
    if picture.repository is not None:
        report.repository_uri, report.registry = picture.repository.uri, picture.repository.registry
    for step in decided.steps():
        report.changes.append(step.planned())
    for change in report.changes:
        detail = f" ({change.detail})" if change.detail else ""
        workflow.info(f"Plan: {change.resource} {change.name}: {change.action}{detail}")
    workflow.notice("Dry run: nothing was changed.", title="ECR bootstrap plan")
