from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stand_ins.harness import Stack


@pytest.fixture(scope="session")
def _stack() -> Iterator[Stack]:
    stack = Stack()
    yield stack
    stack.stop()


@pytest.fixture
def stack(_stack: Stack) -> Stack:
    """A clean AWS account and a fresh GitHub stand-in for each test."""
    _stack.reset()
    return _stack
