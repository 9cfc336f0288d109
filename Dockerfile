# The action's image: a slim Python base, the locked dependencies in a venv (hash-checked wheels only, so
# no compiler is needed or left behind), and the code. GitHub runs container actions as root: no USER.
# The base is pinned by digest on the FROM line, where Dependabot reads it. scripts/build-image.sh replaces
# that one line only where no registry can be reached (it then builds a Debian stand-in for this image).
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS base

FROM base AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
# After the hash-checked install, what the action never loads is pruned (see README "The image"):
# pip and setuptools; botocore's models of every service but the three it calls (most of the bytes);
# cryptography and pycparser, which PyGithub pulls in for GitHub App JWTs and cffi for building modules -
# the action authenticates with a token, and PyNaCl's compiled module needs neither.
SHELL ["/bin/sh", "-eu", "-c"]
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip \
    && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d ! -name ecr ! -name iam ! -name sts \
        -exec rm -rf {} + \
    && rm -rf "$site"/cryptography "$site"/cryptography-* "$site"/pycparser "$site"/pycparser-* \
    && find /opt/venv -name __pycache__ -type d -prune -exec rm -rf {} +

FROM base
COPY --from=build /opt/venv /opt/venv
COPY entrypoint.py /app/entrypoint.py
COPY src/ /app/src/
# The declaration of the inputs, which the code reads at run time (beside src/, as in the repository).
COPY action.yml /app/action.yml
# Byte-compiled once here, so that no run pays for it (start-up time).
RUN /opt/venv/bin/python -m compileall -q /opt/venv /app/src
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["/opt/venv/bin/python", "/app/entrypoint.py"]
