"""Pure: what a run did, as step outputs and a Markdown summary. Nothing secret ever gets here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Change:
    resource: str  # "ECR repository", "IAM policy", ...
    name: str
    action: str  # "created" | "reused" | "updated" | "deleted" | "kept"
    detail: str = ""


@dataclass(frozen=True)
class TargetResult:
    repository: str
    state: str  # "written" | "restored" | "unchanged" | "unknown"
    detail: str = ""
    requested: bool = True


@dataclass(frozen=True)
class KeyInfo:
    """One of the user's access keys after the run: when it was made, its age, who holds it."""

    key_id: str
    created: datetime
    age: str
    holders: tuple[str, ...] = ()


@dataclass
class Report:
    repository_uri: str = ""
    registry: str = ""
    policy_arn: str = ""
    user_arn: str = ""
    access_key_id: str = ""
    key_created: str = ""  # ISO 8601: when the key the targets hold was made
    role_arn: str = ""
    dry_run: bool = False
    snippet: str = ""  # workflow lines that use what was written (OIDC mode)
    changes: list[Change] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    keys: list[KeyInfo] = field(default_factory=list)

    def add(self, resource: str, name: str, action: str, detail: str = "") -> None:
        self.changes.append(Change(resource, name, action, detail))


def outputs(report: Report) -> dict[str, str]:
    return {
        "repository-uri": report.repository_uri,
        "registry": report.registry,
        "policy-arn": report.policy_arn,
        "user-arn": report.user_arn,
        "access-key-id": report.access_key_id,
        "key-created": report.key_created,
        "role-arn": report.role_arn,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary(report: Report, *, failed: str = "") -> str:
    lines = ["## ECR delivery bootstrap" + (" - plan (dry run)" if report.dry_run else ""), ""]
    if report.dry_run:
        lines += ["> [!NOTE]\n> Dry run: this is what a real run would do. Nothing was changed.", ""]
    if failed:
        lines += [f"> [!CAUTION]\n> {_cell(failed)}", ""]
    facts = [
        (label, value)
        for label, value in (
            ("Repository URI", report.repository_uri),
            ("Registry", report.registry),
            ("Policy ARN", report.policy_arn),
            ("User ARN", report.user_arn),
            ("Access key id", report.access_key_id),
            ("Role ARN", report.role_arn),
        )
        if value
    ]
    if facts:
        lines += ["| | |", "|---|---|"]
        lines += [f"| {label} | `{_cell(value)}` |" for label, value in facts]
    if report.changes:
        lines += ["", "| Resource | Name | Result | Detail |", "|---|---|---|---|"]
        lines += [
            f"| {c.resource} | `{_cell(c.name)}` | {c.action} | {_cell(c.detail)} |" for c in report.changes
        ]
    if report.targets:
        lines += ["", "| Target repository | Secrets | Detail |", "|---|---|---|"]
        for t in report.targets:
            note = t.detail if t.requested else ("shares this user's key; " + t.detail).rstrip("; ")
            lines.append(f"| `{_cell(t.repository)}` | {t.state} | {_cell(note)} |")
    if report.keys:
        lines += ["", "| Access key | Created | Age | Held by |", "|---|---|---|---|"]
        for k in report.keys:
            held = ", ".join(f"`{_cell(h)}`" for h in k.holders) or "no target"
            created = k.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f"| `{k.key_id}` | {created} | {k.age} | {held} |")
    if report.snippet:
        lines += [
            "",
            "Use the role in a target's workflow:",
            "",
            "```yaml",
            report.snippet.rstrip("\n"),
            "```",
        ]
    return "\n".join(lines) + "\n"
