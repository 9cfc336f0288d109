#!/usr/bin/env bash
# Developer entry point. Every command first makes .venv and installs what it needs (once).
#   ./dev.sh demo   run the whole job locally against embedded stand-ins (moto + local GitHub API) and
#                   print the step summary
#   ./dev.sh test   run the test suite
#   ./dev.sh lint   ruff, mypy, action.yml schema, hadolint
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
stamp=$venv/.installed
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi
py=$venv/bin/python
case "${1:-}" in
  demo) shift; exec "$py" -m tests.stand_ins.demo "$@" ;;
  test) shift; exec "$py" -m pytest "$@" ;;
  lint)
    "$py" -m ruff check src tests entrypoint.py
    "$py" -m ruff format --check src tests entrypoint.py
    "$py" -m mypy
    "$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
    "$venv/bin/hadolint" Dockerfile
    ;;
  *) echo "usage: ./dev.sh demo|test|lint" >&2; exit 2 ;;
esac
