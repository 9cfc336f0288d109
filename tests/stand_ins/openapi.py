"""GitHub's published REST description, as the stand-in and the conformance test use it.

`tests/data/github-rest-openapi-extract.json` is an extract of github/rest-api-description (MIT; the
repository, file and commit are in its "source" field): every operation the action calls, with its
parameters, request schema and documented responses. Here it becomes an OpenAPI 3.0 document that
openapi-core validates requests and answers against, so that neither the stand-in nor the client is held
to a reading of ours.

What the description leaves out and GitHub does anyway is stated here, each with its source:
- Any operation may answer an error the description does not list (401, 403, 404, 422, 5xx, secondary rate
  limits as 403 or 429), with a "Basic Error" body ("Troubleshooting the REST API", "Rate limits for the
  REST API").
- A renamed or transferred repository answers its old name with 301 (reads) or 307 (other methods) and a
  Location under /repositories/{id} ("Best practices for using the REST API": follow redirects). Paging
  links of organization lists name /organizations/{id}. Both are the documented operations under another
  path: they are validated as the operation they stand for.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "github-rest-openapi-extract.json"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
REDIRECTS = (301, 302, 307, 308)
# Paths that stand for a documented one (see the module's docstring).
ALIASES = (
    (re.compile(r"^/repositories/\d+(?=/|$)"), "/repos/_owner/_repo"),
    (re.compile(r"^/organizations/\d+(?=/|$)"), "/orgs/_org"),
)


@functools.cache
def extract() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


@functools.cache
def document() -> dict[str, Any]:
    """The extract as an OpenAPI 3.0 document (only the shape changes; schemas are as published)."""
    paths: dict[str, dict[str, Any]] = {}
    for key, op in extract()["operations"].items():
        method, path = key.split(" ", 1)
        operation: dict[str, Any] = {
            "operationId": op["operationId"],
            "parameters": op["parameters"],
            "responses": {},
        }
        body = op.get("requestBody")
        if body:
            operation["requestBody"] = {
                "required": body["required"],
                "content": {body["contentType"]: {"schema": body["schema"]}},
            }
        for code, answer in op["responses"].items():
            response: dict[str, Any] = {"description": answer["description"]}
            kinds = answer.get("contentType")
            if kinds:
                kinds = kinds if isinstance(kinds, list) else [kinds]
                response["content"] = {kind: {"schema": answer["schema"]} for kind in kinds}
            operation["responses"][code] = response
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "GitHub REST API (extract)", "version": API_VERSION},
        "paths": paths,
    }


@functools.cache
def api() -> Any:
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(document())


@functools.cache
def basic_error() -> dict[str, Any]:
    schema: dict[str, Any] = extract()["operations"]["GET /repos/{owner}/{repo}"]["responses"]["404"][
        "schema"
    ]
    return schema


def canonical(path: str) -> str:
    for pattern, documented in ALIASES:
        path = pattern.sub(documented, path, count=1)
    return path


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as they crossed the wire."""

    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # 0: no answer (a dropped connection)
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""
    problems: tuple[str, ...] = ()  # what request_problems found when it arrived

    def header(self, name: str) -> str:
        return next((v for k, v in self.response_headers if k.lower() == name.lower()), "")


def _mock_request(x: Exchange) -> Any:
    from openapi_core.testing import MockRequest

    return MockRequest(
        "https://api.github.com",
        x.method.lower(),
        canonical(x.path),
        args=x.query,
        headers=x.headers,
        data=x.body or None,
        content_type=x.headers.get("Content-Type", "").split(";")[0] or "application/json",
    )


def _why(errors: list[Any]) -> list[str]:
    out = []
    for error in errors:
        cause = error.__cause__
        detail = getattr(cause, "schema_errors", None) or ([cause] if cause else [])
        out.append(f"{type(error).__name__}: {error} {'; '.join(str(d).splitlines()[0] for d in detail)}")
    return out


def request_problems(x: Exchange) -> list[str]:
    """What GitHub's description says is wrong with a request: unknown operation, parameters, body."""
    return _why(list(api().unmarshal_request(_mock_request(x)).errors))


def response_problems(x: Exchange) -> list[str]:
    """What is wrong with an answer: a documented status must match its schema; a status the operation
    does not document must be an error or a redirect, with a Basic Error body (see the docstring)."""
    from openapi_core.templating.responses.exceptions import ResponseNotFound
    from openapi_core.testing import MockResponse

    if x.status == 0:
        return []
    kind = x.header("Content-Type").split(";")[0]
    response = MockResponse(x.response_body, status_code=x.status, content_type=kind)
    errors = list(api().unmarshal_response(_mock_request(x), response).errors)
    unknown = any(type(e).__name__ in ("PathNotFound", "OperationNotFound") for e in errors)
    if not unknown and not any(isinstance(e, ResponseNotFound) for e in errors):
        return _why(errors)
    problems = [f"{x.status} to a request for no documented operation"] if unknown and x.status != 404 else []
    if x.status < 300 or (x.status < 400 and x.status not in REDIRECTS):
        problems.append(f"status {x.status} is not documented for {x.method} {canonical(x.path)}")
    if x.status in REDIRECTS and not x.header("Location"):
        problems.append(f"redirect {x.status} without a Location")
    if x.status >= 400 and not x.response_body:
        problems.append(f"status {x.status} without a body (GitHub's errors carry a message)")
    if x.response_body:
        import jsonschema

        try:
            jsonschema.validate(json.loads(x.response_body), basic_error())
        except (ValueError, jsonschema.ValidationError) as exc:
            problems.append(f"status {x.status}: body is not a Basic Error ({str(exc).splitlines()[0]})")
    return problems


# Answers of one operation and status are built by the same code: past this many of a kind in one test,
# the rest are not validated again (a 250-repository listing spent minutes of CPU on identical shapes).
SAME_KIND = 5


def conformance_problems(exchanges: list[Exchange]) -> list[str]:
    """Every request against the description (on arrival) and the headers GitHub asks for; the answers
    against the description, up to SAME_KIND of each operation and status. One line per problem, naming
    the exchange."""
    out = []
    seen: dict[tuple[str, int], int] = {}
    for x in exchanges:
        found = list(x.problems)
        if x.headers.get("Accept") != MEDIA_TYPE:
            found.append(f"Accept is {x.headers.get('Accept')!r}, not {MEDIA_TYPE}")
        if x.headers.get("X-GitHub-Api-Version") != API_VERSION:
            found.append(f"X-GitHub-Api-Version is {x.headers.get('X-GitHub-Api-Version')!r}")
        kind = (operation_of(x.method, x.path) or f"{x.method} {x.path}", x.status)
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= SAME_KIND:
            found += response_problems(x)
        out += [f"{x.method} {x.path} -> {x.status}: {problem}" for problem in found]
    return out


def operation_of(method: str, path: str) -> str:
    """The documented operation ("METHOD /template") a request is, or "" for none."""
    path = canonical(path)
    for key in extract()["operations"]:
        verb, template = key.split(" ", 1)
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if verb == method and re.fullmatch(pattern, path):
            return str(key)
    return ""
