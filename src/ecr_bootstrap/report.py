"""Pure: what a run did, as step outputs and a summary (Markdown, or plain text). Nothing secret gets here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .keys.record import AccessKey, Record
from .times import iso
from .workflow import OTHER_BREAKS


@dataclass(frozen=True)
class Note:
    """Something the plan found worth saying before anything is done (printed by the run)."""

    text: str
    title: str = ""  # a title: a warning; none: an info line


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


@dataclass(frozen=True)
class KeyInfo:  # one of the user's access keys after the run
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


OUTPUTS = ("repository_uri", "registry", "policy_arn", "user_arn", "access_key_id", "key_created", "role_arn")


def outputs(report: Report) -> dict[str, str]:
    """The step outputs: the Report's fields of the same names, with dashes."""
    return {name.replace("_", "-"): getattr(report, name) for name in OUTPUTS}


# -- the summary -------------------------------------------------------------------------------------------
# Built once as blocks, then written as Markdown (the step summary) or as plain text (a local run). In the
# Markdown, every value that is not the action's own words goes through `md_escape` (or `_md_code`, which
# falls back on it), so a name, id or error text shows as the characters it is and a table row stays one line.

# Every line break some reader splits on (CommonMark only knows CR and LF; Python's splitlines more).
_BREAKS = re.compile(f"\r\n|[\r\n{OTHER_BREAKS}]")
_MD_ENTITIES = {
    "&": "&amp;",  # an entity in the value shows as written, not as what it stands for
    "\\": "&#92;",  # a backslash of the value never escapes what follows it (GFM's table scan would)
    "|": "\\|",  # GFM's escape of a pipe in a table cell (undone before inlines); elsewhere a plain escape
    "`": "&#96;",
    "<": "&lt;",
    ">": "&gt;",
    "[": "&#91;",
    "]": "&#93;",
}
_MD_SPECIAL = re.compile("[" + re.escape("".join(_MD_ENTITIES)) + "]")


def _one_line(text: str) -> str:
    return _BREAKS.sub(" ", text)


def md_escape(text: str) -> str:
    """A value as literal Markdown text on one line: no table cell split, no code, link, image or HTML of
    its own, every character shown as it is in GitHub's Markdown (a bare URL is still linked there)."""
    return _MD_SPECIAL.sub(lambda m: _MD_ENTITIES[m.group(0)], _one_line(text))


def _md_code(text: str) -> str:
    """A value as inline code: in backticks when it needs no escape at all, else escaped in <code> (which
    GitHub keeps): inside backticks an entity or backslash escape would show as written, not as meant."""
    if not text:
        return ""
    escaped = md_escape(text)
    return f"`{text}`" if escaped == text else f"<code>{escaped}</code>"


@dataclass(frozen=True)
class Code:  # a cell part shown as code
    value: str


Part = str | Code
Cell = Part | tuple[Part, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]  # the action's own words; all empty: no header line in plain text
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Alert:
    kind: str  # "NOTE" | "CAUTION"
    text: str


@dataclass(frozen=True)
class Snippet:
    intro: str
    language: str
    text: str


Block = Table | Alert | Snippet


def _blocks(report: Report, failed: str) -> list[Block]:
    blocks: list[Block] = []
    if report.dry_run:
        blocks.append(Alert("NOTE", "Dry run: this is what a real run would do. Nothing was changed."))
    if failed:
        blocks.append(Alert("CAUTION", failed))
    facts = (
        ("Repository URI", report.repository_uri),
        ("Registry", report.registry),
        ("Policy ARN", report.policy_arn),
        ("User ARN", report.user_arn),
        ("Access key id", report.access_key_id),
        ("Role ARN", report.role_arn),
    )
    changes = tuple((c.resource, Code(c.name), c.action, c.detail) for c in report.changes)
    targets = tuple((Code(t.repository), t.state, t.detail) for t in report.targets)
    tables = (
        Table(("", ""), tuple((label, Code(value)) for label, value in facts if value)),
        Table(("Resource", "Name", "Result", "Detail"), changes),
        Table(("Target repository", "Secrets", "Detail"), targets),
        Table(("Access key", "Created", "Age", "Held by"), tuple(map(_key_row, report.keys))),
    )
    blocks += [table for table in tables if table.rows]
    if report.snippet:
        blocks.append(Snippet("Use the role in a target's workflow:", "yaml", report.snippet.rstrip("\n")))
    return blocks


def _key_row(k: KeyInfo) -> tuple[Cell, ...]:
    held: list[Part] = [part for holder in k.holders for part in (", ", Code(holder))][1:]  # comma-separated
    return (Code(k.key_id), iso(k.created), k.age, tuple(held) or "no target")


def _title(report: Report) -> str:
    return "ECR delivery bootstrap" + (" - plan (dry run)" if report.dry_run else "")


def _cell(cell: Cell, code: Callable[[str], str], text: Callable[[str], str]) -> str:
    """A cell as Markdown (`_md_code`, `md_escape`) or plain text (`_one_line` both)."""
    if isinstance(cell, tuple):
        return "".join(_cell(part, code, text) for part in cell)
    return code(cell.value) if isinstance(cell, Code) else text(cell)


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Alert):
        return [f"> [!{block.kind}]", f"> {md_escape(block.text)}"]
    if isinstance(block, Snippet):
        longest = max((len(run) for run in re.findall("`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)  # longer than any backtick run inside: nothing closes it early
        body = block.text.replace("\r\n", "\n").replace("\r", "\n")
        return [md_escape(block.intro), "", fence + block.language, body, fence]
    header = "| " + " | ".join(block.header) + " |" if any(block.header) else "| " * len(block.header) + "|"
    rows = ["| " + " | ".join(_cell(c, _md_code, md_escape) for c in row) + " |" for row in block.rows]
    return [header, "|" + "---|" * len(block.header), *rows]


def summary(report: Report, *, failed: str = "") -> str:
    """The step summary in GitHub's Markdown."""
    lines = [f"## {_title(report)}"]
    for block in _blocks(report, failed):
        lines += ["", *_md_block(block)]
    return "\n".join(lines) + "\n"


def _text_block(block: Block) -> list[str]:
    if isinstance(block, Alert):
        label = {"CAUTION": "Failed"}.get(block.kind, block.kind.capitalize())
        return [f"{label}: {_one_line(block.text)}"]
    if isinstance(block, Snippet):
        return [block.intro, "", *("    " + line for line in block.text.splitlines())]
    rows = [tuple(_cell(c, _one_line, _one_line) for c in row) for row in block.rows]
    if any(block.header):
        rows[:0] = [block.header, tuple("-" * len(h) for h in block.header)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(block.header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def summary_text(report: Report, *, failed: str = "") -> str:
    """The same summary as plain text with aligned columns, for a terminal."""
    lines = [_title(report), "=" * len(_title(report))]
    for block in _blocks(report, failed):
        lines += ["", *_text_block(block)]
    return "\n".join(lines) + "\n"


def age(created: datetime, now: datetime) -> str:
    """A key's age as people say it: 40 s, 12 min, 5 h, 3 d."""
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def key_table(keys: Iterable[AccessKey], record: Record, now: datetime) -> list[KeyInfo]:
    """Each of the user's keys after the run: when made, how old, which places hold it."""
    return [
        KeyInfo(
            k.key_id,
            k.created,
            age(k.created, now),
            tuple(sorted(record.place_of(s).label for s in record.holders_of(k.key_id))),
        )
        for k in sorted(keys, key=lambda k: k.created)
    ]


def old_keys(keys: Iterable[KeyInfo], now: datetime) -> list[str]:
    """Warnings for the keys a place holds that are 90 days old or older (AWS's guidance, said below)."""
    return [
        f"Access key {k.key_id} held by {', '.join(k.holders)} is {k.age} old: AWS recommends rotating "
        "access keys at least every 90 days (Security Hub IAM.3). Rerun without rotate-after, or with a "
        "shorter one."
        for k in keys
        if k.holders and now - k.created >= timedelta(days=90)
    ]
