# The action's image: a slim Python base, the locked dependencies in a venv (hash-checked wheels only, so
# no compiler is needed or left behind), and the code. GitHub runs container actions as root: no USER.
# The base is pinned by digest. scripts/build-image.sh overrides BASE only where no registry can be reached
# (it then builds a Debian stand-in for this image).
ARG BASE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes pip

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
COPY entrypoint.py /app/entrypoint.py
COPY src/ /app/src/
RUN /opt/venv/bin/python -m compileall -q /app/src
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["/opt/venv/bin/python", "/app/entrypoint.py"]
