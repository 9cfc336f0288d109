"""Carrying out the plan's key fates: the one place that deletes an older key. When a key the run's look
showed is already gone, the look was stale (IAM's reads lag its writes: IAM User Guide, "Troubleshoot IAM"),
and a key that an earlier run made meanwhile was hidden from it: that one is found and retired too."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from ..aws import AwsClients, iam
from ..look import IAM_READ_LAG
from ..plan import Step
from ..report import Report
from ..workflow import Workflow
from .record import Record, RunId
from .rules import UNMANAGED, hidden, kept_because, read_record

_HIDDEN = (
    "made by an earlier run that this run's look did not show yet (IAM's reads lag its writes); "
    "no place holds it"
)


def fates_now(planned: Iterable[Step], record: Record, now: datetime, run: RunId | None) -> tuple[Step, ...]:
    """The plan's key fates against the record once the run's writes are done: a key the plan lets go stays
    while a place holds it or a run writes it (a target this run failed to write still holds its key)."""
    out = []
    for step in planned:
        why = kept_because(record, step.name, now, run) if step.action == "delete" else ""
        out.append(replace(step, action="keep", detail=why) if why else step)
    return tuple(out)


def retire(
    aws: AwsClients,
    user: str,
    fates: Iterable[Step],
    workflow: Workflow,
    report: Report,
    *,
    warn: bool = False,
) -> bool:
    """Delete the keys the fates let go and say why each other key stays (`warn`: every kept key is a
    warning, as when switching away from keys). Returns False when a key to delete was already gone."""
    fates = list(fates)
    fresh = True
    for fate in fates:
        if fate.action == "delete":
            fresh = iam.delete_key(aws, user, fate.name) and fresh
            report.changes.append(fate.done())
    for fate in (f for f in fates if f.action == "keep"):
        if warn:
            workflow.warning(
                f"Access key {fate.name} of {user} was kept: {fate.detail}.", title="Access key kept"
            )
        elif fate.detail == UNMANAGED:
            workflow.warning(
                f"Access key {fate.name} of {user} was not created by this action and was left alone. While "
                "it exists, the next run has no free key slot (IAM allows 2). Delete it once nothing uses "
                "it, or set retire-unmanaged-keys: true.",
                title="Unmanaged access key kept",
            )
        report.changes.append(fate.done())
    return fresh


def retire_hidden(
    aws: AwsClients, user: str, seen: Iterable[str], where: tuple[list[str], str], report: Report
) -> list[str]:
    """After a stale look, once IAM's lag is over: delete the keys keys.rules.hidden names. `where`: this
    run's target scopes and GITHUB_SERVER_URL. Returns the keys deleted."""
    time.sleep(IAM_READ_LAG)
    keys = iam.list_keys(aws, user)
    scopes, server = where
    record = read_record(iam.list_tags(aws, user), keys, scopes, server)
    gone = hidden(keys, record, seen, aws.iam_now())
    for key_id in gone:
        iam.delete_key(aws, user, key_id)
        report.add("Access key", key_id, "deleted", _HIDDEN)
    return gone
