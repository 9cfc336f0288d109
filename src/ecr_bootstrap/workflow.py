"""Runner I/O only: workflow commands on stdout, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY. Every line goes out
escaped through `Workflow._line`, so nothing decoded from IAM tags or GitHub answers can end a line early or
start a workflow command. Outside GitHub Actions (GITHUB_ACTIONS is not `true`): plain lines, no commands."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

# Line breaks besides CR and LF that some readers split on (Python's str.splitlines among them): in data,
# escaped as their UTF-8 bytes like `%`, CR and LF (as the toolkit escapes a command's data), so a printed
# line is one line to every reader.
OTHER_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = {ord(c): "".join(f"%{b:02X}" for b in c.encode()) for c in "%\r\n" + OTHER_BREAKS}
# The runner takes a line as a command when it starts with `::` after leading white space (TrimStart), or
# when it holds `##[` anywhere (the legacy form is found with IndexOf). Python's \s covers .NET's white space.
_COMMAND_START = re.compile(r"^(\s*)::")


class Workflow:
    """Writes what the runner reads: to stdout and stderr, or the streams tests pass."""

    def __init__(self, env: Mapping[str, str], out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out, self._err = out or sys.stdout, err or sys.stderr
        self.actions = env.get("GITHUB_ACTIONS", "") == "true"
        self._output_path = env.get("GITHUB_OUTPUT", "")
        self._summary_path = env.get("GITHUB_STEP_SUMMARY", "")
        self._masked: list[str] = []

    def redact(self, text: str) -> str:
        """Masked values never leave this process, even where the runner would not mask them (the step
        summary, a local run) or where one slipped into an exception message."""
        for value in self._masked:
            text = text.replace(value, "***")
        return text

    def _line(self, text: str, *, command: str = "", stream: TextIO | None = None, raw: bool = False) -> None:
        """The one way out. `command`: a workflow command the action wrote itself, already escaped; `text`:
        any text, redacted (unless `raw`, for the mask itself) and escaped, so the line starts no command but
        `command`. Flushed at once, so a mask reaches the runner before anything that could hold the value."""
        out = stream or self._out
        text = (text if raw else self.redact(text)).translate(_ESCAPES)
        # After a command the runner parses the data as data: nothing in it can start another command.
        if not command:  # shown as it is, never taken for a command, wherever it stands
            text = _COMMAND_START.sub(r"\1%3A%3A", text.replace("##[", "%23%23["), count=1)
        out.write(command + text + "\n")
        out.flush()

    def mask(self, value: str) -> None:
        for line in value.splitlines():
            if line.strip():
                self._masked.append(line)
                if self.actions:  # outside Actions no runner reads it, and the value is never printed
                    self._line(line, command="::add-mask::", raw=True)
        self._masked.sort(key=len, reverse=True)  # longest first, so no part of a value survives

    def info(self, text: str) -> None:
        self._line(text)

    def _annotate(self, kind: str, message: str, title: str) -> None:
        if self.actions:
            title = self.redact(title).translate(_ESCAPES).replace(":", "%3A").replace(",", "%2C")
            self._line(message, command=f"::{kind}{' title=' + title if title else ''}::")
        elif kind == "notice":
            self._line(message)
        else:
            self._line(f"{kind}: {message}", stream=self._err)

    def error(self, message: str, title: str = "") -> None:
        self._annotate("error", message, title)

    def warning(self, message: str, title: str = "") -> None:
        self._annotate("warning", message, title)

    def notice(self, message: str, title: str = "") -> None:
        self._annotate("notice", message, title)

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        if not self.actions:
            self._line(f"== {name}")
            yield
            return
        self._line(name, command="::group::")
        try:
            yield
        finally:
            self._line("", command="::endgroup::")

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        if not self._output_path:
            for name, value in outputs.items():
                self._line(f"output {name}={value}" if self.actions else f"{name}={value}")
            return
        with open(self._output_path, "a", encoding="utf-8") as fh:
            for name, raw in outputs.items():
                value = self.redact(raw)
                if "\n" in value:
                    delimiter = f"ghadelimiter_{uuid.uuid4()}"
                    fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
                else:
                    fh.write(f"{name}={value}\n")

    def write_summary(self, markdown: str, text: str = "") -> None:
        """The step summary: `markdown` into GITHUB_STEP_SUMMARY; without that file, printed: inside Actions
        the Markdown, outside it `text` (the same summary as plain text) if given."""
        if not self._summary_path:
            shown = markdown if self.actions else text or _plain(markdown)
            for line in shown.rstrip("\n").split("\n"):
                self._line(line)
            return
        with open(self._summary_path, "a", encoding="utf-8") as fh:
            markdown = self.redact(markdown)
            fh.write(markdown if markdown.endswith("\n") else markdown + "\n")


def _plain(markdown: str) -> str:
    """Markdown made readable on a terminal when no plain text was given: no alert markers, no quote marks."""
    lines = []
    for line in markdown.split("\n"):
        alert = re.fullmatch(r">\s*\[!(\w+)\]\s*", line)
        lines.append(alert.group(1).capitalize() + ":" if alert else re.sub(r"^>\s?", "", line))
    return "\n".join(lines)


def docs_url(env: Mapping[str, str]) -> str:
    """The README of the action's own repository, wherever the action is used from."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo = env.get("GITHUB_ACTION_REPOSITORY", "")
    ref = env.get("GITHUB_ACTION_REF", "") or "main"
    return f"{server}/{repo}/blob/{ref}/README.md" if repo else "README.md"
