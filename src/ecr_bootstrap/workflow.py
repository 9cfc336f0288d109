"""Runner I/O only: workflow commands on stdout, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Workflow:
    """Writes what the runner reads. `out` is stdout in production; tests pass their own."""

    def __init__(self, env: Mapping[str, str], out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._output_path = env.get("GITHUB_OUTPUT", "")
        self._summary_path = env.get("GITHUB_STEP_SUMMARY", "")
        self._masked: list[str] = []

    def redact(self, text: str) -> str:
        """Masked values never leave this process, even where the runner would not mask them (the step
        summary, a local run) or where one slipped into an exception message."""
        for value in self._masked:
            text = text.replace(value, "***")
        return text

    def _command(self, text: str, *, raw: bool = False) -> None:
        # Flushed at once so a mask always reaches the runner before anything that could contain the value.
        self._out.write((text if raw else self.redact(text)) + "\n")
        self._out.flush()

    def mask(self, value: str) -> None:
        for line in value.splitlines() or [value]:
            if line.strip():
                self._masked.append(line)
                self._command(f"::add-mask::{_escape_data(line)}", raw=True)
        self._masked.sort(key=len, reverse=True)  # longest first, so no part of a value survives

    def info(self, text: str) -> None:
        self._command(text)

    def _annotate(self, kind: str, message: str, title: str) -> None:
        props = f" title={_escape_property(title)}" if title else ""
        self._command(f"::{kind}{props}::{_escape_data(message)}")

    def error(self, message: str, title: str = "") -> None:
        self._annotate("error", message, title)

    def warning(self, message: str, title: str = "") -> None:
        self._annotate("warning", message, title)

    def notice(self, message: str, title: str = "") -> None:
        self._annotate("notice", message, title)

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        self._command(f"::group::{_escape_data(name)}")
        try:
            yield
        finally:
            self._command("::endgroup::")

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        if not self._output_path:
            for name, value in outputs.items():
                self.info(f"output {name}={value}")
            return
        with open(self._output_path, "a", encoding="utf-8") as fh:
            for name, raw in outputs.items():
                value = self.redact(raw)
                if "\n" in value:
                    delimiter = f"ghadelimiter_{uuid.uuid4()}"
                    fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
                else:
                    fh.write(f"{name}={value}\n")

    def write_summary(self, markdown: str) -> None:
        if not self._summary_path:
            self.info(markdown)
            return
        with open(self._summary_path, "a", encoding="utf-8") as fh:
            markdown = self.redact(markdown)
            fh.write(markdown if markdown.endswith("\n") else markdown + "\n")


def docs_url(env: Mapping[str, str]) -> str:
    """The README of the action's own repository, wherever the action is used from."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo = env.get("GITHUB_ACTION_REPOSITORY", "")
    ref = env.get("GITHUB_ACTION_REF", "") or "main"
    if repo:
        return f"{server}/{repo}/blob/{ref}/README.md"
    return "README.md"
