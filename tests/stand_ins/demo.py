"""Run the action end to end on this machine, against moto and the GitHub stand-in, and show the result.

python -m tests.stand_ins.demo [--rerun]   (./dev.sh demo)
"""

from __future__ import annotations

import argparse
import sys

from .harness import Stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rerun", action="store_true", help="run a second time (everything reused)")
    parser.add_argument(
        "--repositories", default="octo-org/app", help="targets (owner/name, comma separated)"
    )
    args = parser.parse_args()
    stack = Stack()
    try:
        repos = [r.strip() for r in args.repositories.split(",") if r.strip()]
        for repo in repos:
            stack.github.add_repo(repo)
        token = stack.github.add_token()
        result = None
        for _ in range(2 if args.rerun else 1):
            stack.github.reset_log()
            stack.aws.log.clear()
            result = stack.run({"github-token": token, "repositories": ",".join(repos)}, repository=repos[0])
        assert result is not None
        print("---- log (the secret key appears only in ::add-mask::) ----")
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
        print("---- step summary ----")
        print(result.summary, end="")
        print("---- outputs ----")
        for name, value in result.outputs.items():
            print(f"{name}={value}")
        print("---- requests of the last run ----")
        print(f"AWS: {len(stack.aws.log)} ({', '.join(stack.aws.operations())})")
        github = ", ".join(f"{r.method} {r.path}" for r in stack.github.log)
        print(f"GitHub: {len(stack.github.log)} ({github})")
        return result.returncode
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
