from __future__ import annotations

from tests.stand_ins.harness import Stack


def test_smoke(stack: Stack) -> None:
    stack.github.add_repo("octo-org/app")
    token = stack.github.add_token()
    result = stack.run({"github-token": token})
    print(result.stdout, result.stderr, result.summary, result.outputs)
    assert result.returncode == 0
