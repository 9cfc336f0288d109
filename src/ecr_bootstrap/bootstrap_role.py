"""Placeholder until the bootstrap-role branch lands."""

from collections.abc import Mapping, Sequence


def main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    return 2
