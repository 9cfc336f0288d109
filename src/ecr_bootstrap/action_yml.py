"""action.yml, the one declaration of the inputs. PyYAML is no runtime dependency, so a small reader takes
the YAML its inputs are written in (names, plain or double-quoted scalars, `>-` folded descriptions,
`required: true|false`) and refuses anything else, naming the line; a test holds it to PyYAML's reading."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


@dataclass(frozen=True)
class Declared:
    name: str
    description: str
    default: str = ""
    required: bool = False


@cache
def inputs() -> Mapping[str, Declared]:
    """The declared inputs, in action.yml's order."""
    found: Traversable = resources.files(__package__) / "action.yml"  # the wheel ships it in the package
    if not found.is_file():
        # A checkout, and the image, which lays /app out as the repository (entrypoint.py, src/, action.yml).
        found = Path(__file__).resolve().parents[2] / "action.yml"
    return read_inputs(found.read_text(encoding="utf-8"))


_NAME = re.compile(r"  [a-z0-9][a-z0-9-]*:")
_FIELD = re.compile(r"(description|default|required): (\S.*)")
# Plain scalars YAML would read as something other than the text, or not as one scalar at all.
_NOT_PLAIN = re.compile(
    r"[-?:,\[\]{}#&*!|>'\"%@`]|.*(: | #|:$)|(true|false|yes|no|on|off|null|~|[-+.0-9].*)$", re.IGNORECASE
)


def read_inputs(text: str) -> dict[str, Declared]:
    """The `inputs:` block of action.yml's text."""
    fields: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}  # the fields of the input being read
    folding = ""  # the field whose `>-` lines are being read
    for where, line in _block(text):
        if line.startswith("      "):  # a line of a folded value: joined to it by a space
            _check(bool(folding) and line[6] != " ", where, "an indented line that continues no `>-` value")
            current[folding] = f"{current[folding]} {line[6:]}".lstrip(" ")
            continue
        _check(not folding or bool(current[folding]), where, "an empty `>-` value above")
        folding = ""
        if _NAME.fullmatch(line):
            _check(line[2:-1] not in fields, where, "an input named twice")
            current = fields[line[2:-1]] = {}
            continue
        found = _FIELD.fullmatch(line[4:]) if line.startswith("    ") else None
        _check(found is not None and bool(fields), where, "not an input's name or one of its fields")
        key, value = found.groups() if found else ("", "")
        _check(key not in current, where, f"{key} given twice")
        current[key] = value if key == "required" else "" if value == ">-" else _scalar(value, where)
        folding = key if value == ">-" else ""
    _check(not folding or bool(current[folding]), "action.yml", "an empty `>-` value at the end of inputs")
    return {name: _declared(name, given) for name, given in fields.items()}


def _block(text: str) -> Iterator[tuple[str, str]]:
    """The lines (and where each is) of the top-level `inputs:` mapping, up to the next top-level key."""
    lines = text.splitlines()
    _check(lines.count("inputs:") == 1, "action.yml", "no single top-level `inputs:` line")
    start = lines.index("inputs:") + 1
    for number, line in enumerate(lines[start:], start + 1):
        if line[:1] not in ("", " "):
            return
        where = f"action.yml line {number}"
        _check(line.strip() != "", where, "a blank line inside inputs")
        _check(line == line.rstrip() and "\t" not in line, where, "trailing white space or a tab")
        _check(not line.lstrip().startswith("#"), where, "a comment inside inputs")
        yield where, line


def _scalar(value: str, where: str) -> str:
    if value.startswith('"'):
        inner = value[1:-1]
        ok = len(value) > 1 and value.endswith('"') and not re.search(r'["\\]', inner)
        _check(ok, where, "a double-quoted value with a quote or backslash inside, or none at its end")
        return inner
    _check(
        not _NOT_PLAIN.match(value), where, f"{value} is not text that this reader takes (double-quote it)"
    )
    return value


def _declared(name: str, given: Mapping[str, str]) -> Declared:
    where = f"action.yml input {name}"
    _check("description" in given, where, "no description")
    required = given.get("required", "false")
    _check(required in ("true", "false"), where, "required is neither true nor false")
    return Declared(name, given["description"], given.get("default", ""), required == "true")


def _check(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise ValueError(
            f"{where}: {what} (the reader in src/ecr_bootstrap/action_yml.py takes no other YAML)"
        )
