from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest

import pytest

from tests.stand_ins import openapi
from tests.stand_ins.github_api import GitHubStandIn
from tests.stand_ins.harness import Stack
from tests.stand_ins.openapi import conformance_problems


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (`slow(minutes)`), so that the workers start them early and end together;
    otherwise in the order collected. xdist's load scheduling hands each worker two tests at the start, so
    each of the longest (2 minutes or more) is followed by a shorter one, never by another of them."""

    def minutes(item: pytest.Item) -> float:
        mark = item.get_closest_marker("slow")
        return 0 if mark is None else mark.args[0] if mark.args else 1

    items.sort(key=minutes, reverse=True)
    longest = [item for item in items if minutes(item) >= 2]
    rest = items[len(longest) :]
    items[:] = [item for pair in zip_longest(longest, rest) for item in pair if item is not None]


@pytest.fixture(scope="session")
def _stack() -> Iterator[Stack]:
    stack = Stack()
    yield stack
    stack.stop()


@pytest.fixture
def stack(_stack: Stack) -> Iterator[Stack]:
    """A clean AWS account and a fresh GitHub stand-in for each test. Afterwards, every request the action
    sent and every answer the stand-in gave is checked against GitHub's published description."""
    _stack.reset()
    yield _stack
    exchanges = [r.exchange for r in _stack.github.log if r.exchange is not None]
    problems = conformance_problems(exchanges)
    assert not problems, "GitHub traffic that GitHub's description does not allow:\n" + "\n".join(problems)


@pytest.fixture
def bare() -> Iterator[GitHubStandIn]:
    """A GitHub stand-in of its own, for raw requests that the action would never send. Afterwards its
    answers (not those requests) are checked against GitHub's description."""
    stand_in = GitHubStandIn().start()
    yield stand_in
    stand_in.stop()
    answers = [r.exchange for r in stand_in.log if r.exchange is not None]
    assert not [p for x in answers for p in openapi.response_problems(x)]
