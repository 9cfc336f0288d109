# The action's image: a slim Python base, the locked dependencies in a venv (hash-checked wheels only, so
# no compiler is needed or left behind), and the code. GitHub runs container actions as root: no USER.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes pip

FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
COPY entrypoint.py /app/entrypoint.py
COPY src/ /app/src/
RUN /opt/venv/bin/python -m compileall -q /app/src
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["/opt/venv/bin/python", "/app/entrypoint.py"]
