"""README.md's inputs table, generated from action.yml (the one declaration of the inputs).

python scripts/inputs_table.py --write   replace the table between the markers in README.md
python scripts/inputs_table.py --check   exit 1 when README.md's table is not what action.yml makes
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ecr_bootstrap.action_yml import Declared, read_inputs

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- inputs:start -->", "<!-- inputs:end -->"


def table(declared: Iterable[Declared]) -> str:
    rows = ["| input | default | meaning |", "|---|---|---|"]
    for spec in declared:
        default = "required" if spec.required else f"`{spec.default}`" if spec.default else "empty"
        meaning = spec.description.replace("|", "\\|")  # a bar would end the cell
        rows.append(f"| `{spec.name}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def with_table(readme: str, text: str) -> str:
    """README.md with `text` between the markers, each on a line of its own, which must be there once."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"README.md must hold {START} and then {END}, once each, around the inputs table")
    head, rest = readme.split(START)
    return f"{head}{START}\n{text}{END}{rest.split(END)[1]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the table into README.md")
    mode.add_argument("--check", action="store_true", help="fail when README.md's table differs")
    args = parser.parse_args(argv)
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    declared = read_inputs((ROOT / "action.yml").read_text(encoding="utf-8"))
    try:
        wanted = with_table(readme, table(declared.values()))
    except ValueError as exc:
        print(f"inputs table: {exc}", file=sys.stderr)
        return 1
    if args.write:
        readme_path.write_text(wanted, encoding="utf-8")
    elif wanted != readme:
        print(
            "inputs table: README.md's inputs table is not the one action.yml makes; "
            "run python scripts/inputs_table.py --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
