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
from .rules import UNMANAGED, hidden, in_flight, read_record


def fates_now(planned: Iterable[Step], record: Record, now: datetime, run: RunId | None) -> tuple[Step, ...]:
    """The plan's key fates carried out against the record as it is once the run's writes are done: a key
    the plan lets go stays while that record names a holder of it or a run is writing it (a target this run
    did not manage to write still holds its key). Nothing is let go that the plan kept."""
    out = []
    for step in planned:
        holders = sorted(record.place_of(s).label for s in record.holders_of(step.name))
        if step.action != "delete":
            out.append(step)
        elif holders:
            out.append(replace(step, action="keep", detail="still held by " + ", ".join(holders)))
        elif in_flight(record, step.name, now, run):
            out.append(replace(step, action="keep", detail="being written by another run"))
        else:
            out.append(step)
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
    for fate in fates:
        if fate.action != "keep":
            continue
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
    """After a stale look: once IAM's lag is over, read the user again and delete the keys the look did not
    show that an earlier run committed and that no place holds now (keys.rules.hidden). `where`: this run's
    target scopes and GITHUB_SERVER_URL. Returns the keys deleted."""
    time.sleep(IAM_READ_LAG)
    keys = iam.list_keys(aws, user)
    scopes, server = where
    record = read_record(iam.list_tags(aws, user), keys, scopes, server)
    gone = hidden(keys, record, seen, aws.iam_now())
    for key_id in gone:
        iam.delete_key(aws, user, key_id)
        report.add(
            "Access key",
            key_id,
            "deleted",
            "made by an earlier run that this run's look did not show yet (IAM's reads lag its writes); "
            "no place holds it",
        )
    return gone
