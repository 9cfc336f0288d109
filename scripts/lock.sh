#!/usr/bin/env bash
# Compile the hash locks from pyproject.toml, the one list of dependencies:
#   requirements.lock      the runtime dependencies (the image installs it with --require-hashes)
#   requirements-dev.lock  the runtime dependencies and the dev extra (./dev.sh installs it)
# Existing pins are kept; `scripts/lock.sh --upgrade` moves everything to the newest allowed release.
# No index URL or wheel folder is written: a lock must name no machine's paths (./dev.sh lint checks).
set -euo pipefail
cd "$(dirname "$0")/.."
compile=(.venv/bin/pip-compile --quiet --allow-unsafe --generate-hashes --strip-extras --no-emit-index-url
  --no-emit-find-links --no-emit-trusted-host "$@")
"${compile[@]}" --output-file=requirements.lock pyproject.toml
"${compile[@]}" --extra dev --output-file=requirements-dev.lock pyproject.toml
