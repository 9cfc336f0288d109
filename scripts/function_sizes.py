"""Lint: no function longer than 50 lines (ruff's PLR0915 counts statements, not lines). A function that
must be longer says why in a `# long:` comment on its `def` line."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 50
ROOTS = ("src", "scripts", "bench", "entrypoint.py")


def long_functions(root: Path) -> list[tuple[int, str]]:
    found = []
    for path in sorted(
        p for r in ROOTS for p in ([root / r] if r.endswith(".py") else (root / r).rglob("*.py"))
    ):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > LIMIT and "# long:" not in lines[node.lineno - 1]:
                    found.append((size, f"{path.relative_to(root)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    found = long_functions(root)
    for size, where in found:
        print(f"{where}: {size} lines (at most {LIMIT})", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
