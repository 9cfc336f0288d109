r"""AWS on loopback: a moto server, behind a small proxy of ours that records each operation and can fail
chosen ones (IAM/STS name the operation in the form body's Action=, ECR in the X-Amz-Target header).

The proxy also holds moto to IAM's published behaviour where moto is kinder (shared/reference facts, IAM API
Reference):
- tag rules: a tag key of 1-128 and a value of 0-256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, no `aws:`
  prefix, at most 50 tags per user; any bad tag fails the whole TagUser or CreateUser (moto checks only
  some of this);
- whole-second CreateDate, as IAM's answers have it;
- eventual consistency (IAM User Guide, "Troubleshoot IAM"): with `lag`, GetUser's tags, ListUserTags and
  ListAccessKeys answer what the user looked like `lag` seconds ago, each read on its own (two reads of one
  look can show two moments); `pin()` arranges such a read exactly;
- another clock: `skew` seconds added to every Date header and every IAM CreateDate;
- short pages (`short_pages`): IAM "might return fewer than the MaxItems number of results" with
  IsTruncated set (IAM API Reference, "IsTruncated"); the named list operations answer one item a page;
- AssumeRoleWithWebIdentity, which moto grants to any token: refused (AccessDenied, as STS answers) unless
  the role's trust policy allows the token's claims (`web_identity_refusal`);
- ConcurrentModification (`concurrent_modification`): IAM's TagUser and UntagUser may answer HTTP 409
  "multiple requests to change this object were submitted simultaneously" (IAM API Reference, TagUser and
  UntagUser, "Errors"), which botocore's standard retry mode does not retry;
- what was just created not yet seen (`not_yet_seen`): right after CreateUser, IAM may answer NoSuchEntity
  to AttachUserPolicy or CreateAccessKey naming it, and right after CreatePolicy to AttachUserPolicy (IAM
  User Guide, "Troubleshoot IAM", changes that I make are not always immediately visible);
- propagation (`propagation`, propagation.py): a new user, policy, attachment or access key is visible to
  other requests, and a key usable, only that many seconds after it was made; `propagated()` ends it;
- a user's tag keys are case-blind (IAM User Guide, "Tagging IAM resources", Case sensitivity: a user cannot
  have separate Department and department keys; tagging department replaces Department): TagUser replaces
  a key that differs only by case, UntagUser removes the key whatever its case (moto keeps both, and
  removes neither);
- ECR (ECR API Reference, EncryptionConfiguration, kmsKey; ECR User Guide, "Lifecycle policy properties",
  rulePriority): a KMS alias ARN given to CreateRepository is answered as the key's ARN (moto answers the
  alias), and a lifecycle policy whose "any" rule has not the highest rulePriority is refused (moto takes it);
- signatures (sigv4.py): a request signed with a key issued through the proxy (CreateAccessKey's answer,
  recorded as it passes) is held to that key's secret, and refused with a session token, which a long-term
  key never carries (moto checks neither); the tests' own `testing` credentials are not checked;
- time that passes at once (`advance`): later Date headers, and the CreateDate of what is created from then
  on, are that much later; IAM's read lag is measured on the same clock, so a test that needs "the lease
  is over" or "IAM has caught up" arranges it instead of sleeping.
"""

from __future__ import annotations

import email.utils
import fnmatch
import http.client
import json
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

from . import sigv4
from .propagation import Pending

IAM_TAGGING = {
    "iam:TagUser",
    "iam:CreateUser",
    "iam:TagPolicy",
    "iam:CreatePolicy",
    "iam:TagRole",
    "iam:CreateRole",
}
# Writes after which a user's tags or keys change; reads that may lag them.
USER_WRITES = {"iam:TagUser", "iam:UntagUser", "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:CreateUser"}
LAGGING_READS = {"iam:GetUser", "iam:ListUserTags", "iam:ListAccessKeys"}
MAX_TAGS = 50


def tag_char_ok(ch: str) -> bool:
    return ch in "_.:/=+-@ " or unicodedata.category(ch)[0] in "LNZ"


PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]"


def tag_problem(tags: list[tuple[str, str]]) -> str:
    """IAM's Tag rules (API Reference, data type Tag); "" when every tag passes."""
    for key, value in tags:
        if not 1 <= len(key) <= 128 or not all(tag_char_ok(c) for c in key):
            return (
                f"Value '{key}' at 'tags.member.key' failed to satisfy constraint: Member must satisfy "
                f"regular expression pattern: {PATTERN}+ and have length 1-128"
            )
        if key.lower().startswith("aws:"):
            return f"Tag key '{key}': the aws: prefix is reserved"
        if len(value) > 256 or not all(tag_char_ok(c) for c in value):
            return (
                f"Value '{value[:300]}' at 'tags.member.value' failed to satisfy constraint: Member must "
                f"satisfy regular expression pattern: {PATTERN}* and have length 0-256"
            )
    return ""


def form_tags(form: dict[str, list[str]]) -> list[tuple[str, str]]:
    out = []
    n = 1
    while f"Tags.member.{n}.Key" in form:
        out.append((form[f"Tags.member.{n}.Key"][0], form.get(f"Tags.member.{n}.Value", [""])[0]))
        n += 1
    return out


ECR_TOKEN = "ecr:GetAuthorizationToken"
ECR_TOKEN_ACTION = "ecr:GetAuthorizationToken"


def allows(documents: list[Any], action: str) -> bool:
    """IAM's rule for one action on resource "*": an explicit Deny wins; otherwise some Allow is needed.
    (Only what the tests' policies use: Action lists with wildcards, Resource "*"; conditions are not
    written by the action's policies.)"""
    verdicts = set()
    for document in documents:
        doc = json.loads(document) if isinstance(document, str) else document
        statements = doc.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            actions = statement.get("Action", [])
            resources = statement.get("Resource", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and "*" in resources:
                verdicts.add(statement.get("Effect"))
    return "Deny" not in verdicts and "Allow" in verdicts


def moto_iam() -> Any:
    """moto's IAM of the tests' account, as it is now: moto runs in the tests' own process (harness.py)."""
    from moto.iam.models import iam_backends

    return iam_backends["123456789012"]["aws"]


def _policy_document(iam: Any, arn: str) -> str:
    """The default version's document of a managed policy, in moto's IAM (a backend of this process)."""
    policy = iam.get_policy(arn)
    return str(next(v.document for v in policy.versions if v.version_id == policy.default_version_id))


# -- ECR -------------------------------------------------------------------------------------------------
# ECR API Reference, EncryptionConfiguration, kmsKey: "The alias, key ID, or full ARN of the KMS key can be
# specified. The key must exist in the same Region as the repository." ECR keeps the key an alias names at
# creation: CreateRepository and DescribeRepositories answer that key's ARN (as seen on AWS, issue 22).
ECR_KEY_ANSWERS = {"ecr:CreateRepository", "ecr:DescribeRepositories"}
ALIAS_ARN = re.compile(r"arn:[\w-]+:kms:[\w-]+:\d{12}:alias/[\w/-]+")


def key_arns(data: bytes, resolve: Any) -> bytes:
    """An ECR answer whose alias ARNs in kmsKey are the ARNs of their keys (`resolve`: alias -> key ARN,
    or "" when KMS does not know it: then the answer keeps what moto gave)."""
    text = data.decode()
    for alias in set(ALIAS_ARN.findall(text)):
        key = resolve(alias)
        if key:
            text = text.replace(json.dumps(alias), json.dumps(key))
    return text.encode()


def lifecycle_refusal(operation: str, body: bytes) -> tuple[str, int, str] | None:
    """ECR User Guide, "Lifecycle policy properties", rulePriority: "A rule with a tagStatus value of any
    must have the highest value for rulePriority and be evaluated last." ECR refuses a PutLifecyclePolicy
    that breaks it (InvalidParameterException); moto stores it."""
    if operation != "ecr:PutLifecyclePolicy":
        return None
    try:
        rules = json.loads(json.loads(body)["lifecyclePolicyText"]).get("rules", [])
        priorities = [(int(r["rulePriority"]), r["selection"]["tagStatus"]) for r in rules]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # moto's own answer to a malformed document
    highest = max((p for p, _ in priorities), default=0)
    if any(status == "any" and p != highest for p, status in priorities):
        return (
            "InvalidParameterException",
            400,
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy "
            "validation failure: a rule with tagStatus any must have the highest value for rulePriority'",
        )
    return None


def keep_user_boundaries() -> None:
    """moto keeps a role's permissions boundary but drops the one CreateUser is given; IAM keeps it and
    GetUser answers with it (IAM API Reference, CreateUser: PermissionsBoundary). moto runs in the tests'
    process, so its handler is corrected once, here."""
    from moto.iam.responses import IamResponse

    create_user = IamResponse.create_user
    if getattr(create_user, "keeps_boundary", False):
        return

    def keeping_the_boundary(self: Any) -> Any:
        result = create_user(self)
        boundary = self._get_param("PermissionsBoundary")
        if boundary:
            user = self.backend.get_user(self._get_param("UserName"))
            user.permissions_boundary = {
                "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
                "PermissionsBoundaryArn": boundary,
            }
        return result

    keeping_the_boundary.keeps_boundary = True  # type: ignore[attr-defined]
    IamResponse.create_user = keeping_the_boundary  # type: ignore[method-assign]


def one_page(data: bytes, page: int) -> bytes:
    """An IAM list answer cut to its item number `page`, with IsTruncated and the Marker of the next page
    while more are left."""
    text = data.decode()
    members = re.findall(r"<member>.*?</member>", text, flags=re.S)
    if not members:
        return data
    start, end = text.index(members[0]), text.rindex(members[-1]) + len(members[-1])
    more = page + 1 < len(members)
    text = text[:start] + "".join(members[page : page + 1]) + text[end:]
    flag = f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>" + (
        f"<Marker>page-{page + 1}</Marker>" if more else ""
    )
    text = re.sub(r"<IsTruncated>\w+</IsTruncated>", "", text)
    result_end = re.search(r"</\w+Result>", text)
    if result_end is None:
        return text.encode()
    return (text[: result_end.start()] + flag + text[result_end.start() :]).encode()


@dataclass
class UserView:
    """What a user's tags and keys looked like from `since` on (raw XML of their member lists)."""

    since: float
    tags: str
    keys: str


@dataclass
class AwsFault:
    operation: str  # e.g. "iam:CreateAccessKey"
    code: str = "Throttling"
    status: int = 400
    times: int = 1  # -1: every time
    except_key: str = ""  # leave requests signed with this access key alone
    after: int = 0  # let this many matching requests through first
    contains: str = ""  # only requests whose body contains this (URL-encoded form) text
    armed_by: str = ""  # only once a request of this operation has succeeded (e.g. "iam:CreateUser")
    message: str = "injected fault"
    hits: int = 0
    # status -1: hold the request until `release` is set (a test kills the client meanwhile), then drop it
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class AwsCall:
    operation: str
    status: int
    access_key: str = ""
    start: float = 0.0  # monotonic: request received
    end: float = 0.0  # monotonic: answer ready
    propagating: bool = False  # refused because what it names was not yet visible (not served)


def _service(headers: Any) -> str:
    auth = headers.get("Authorization", "")
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", auth)
    return m.group(1) if m else ""


def _access_key(headers: Any) -> str:
    m = re.search(r"Credential=([^/]+)/", headers.get("Authorization", ""))
    return m.group(1) if m else ""


# STS operations that are sent unsigned (no credential scope names the service).
UNSIGNED_STS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"


def operation_of(headers: Any, body: bytes) -> str:
    service = _service(headers)
    target = headers.get("X-Amz-Target", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    if not service and action in UNSIGNED_STS:
        service = "sts"
    return f"{service}:{action}"


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified: the tests make the tokens themselves (unsigned or HS256, it does not
    matter), and what is held to IAM's rules here is the trust policy, not the token's signature."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def string_like(pattern: str, value: str) -> bool:
    """IAM's StringLike: case-sensitive, `*` any run of characters and `?` one character, nothing else
    special (IAM User Guide, "IAM JSON policy elements: Condition operators", String condition operators)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.S) is not None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def trust_allows(document: Any, provider: str, claims: dict[str, Any]) -> bool:
    """Whether a role's trust policy lets a web identity token of `provider` with these claims assume the
    role: an Allow statement whose Principal.Federated names the provider, whose Action covers
    sts:AssumeRoleWithWebIdentity, and whose every condition holds (StringEquals and StringLike on the
    provider's `aud` and `sub` keys; any other operator or key is not understood here, so it fails). No
    Deny is written by this project, so an explicit Deny is not modelled."""
    doc = json.loads(document) if isinstance(document, str) else document
    host = provider.split("oidc-provider/", 1)[-1]
    for statement in _listed(doc.get("Statement", [])):
        federated = _listed((statement.get("Principal") or {}).get("Federated", []))
        actions = _listed(statement.get("Action", []))
        if statement.get("Effect") != "Allow" or provider not in federated:
            continue
        if not any(fnmatch.fnmatchcase(WEB_IDENTITY.lower(), a.lower()) for a in actions):
            continue
        if _conditions_hold(statement.get("Condition", {}), host, claims):
            return True
    return False


def _conditions_hold(conditions: dict[str, Any], host: str, claims: dict[str, Any]) -> bool:
    tests = {"StringEquals": lambda p, v: p == v, "StringLike": string_like}
    for operator, keys in conditions.items():
        if operator not in tests:
            return False
        for key, patterns in keys.items():
            prefix, _, claim = key.rpartition(":")
            if prefix != host or claim not in ("aud", "sub") or not isinstance(claims.get(claim), str):
                return False
            if not any(tests[operator](str(p), claims[claim]) for p in _listed(patterns)):
                return False
    return True


@dataclass
class AwsProxy:
    upstream: str  # host:port of the moto server
    log: list[AwsCall] = field(default_factory=list)
    faults: list[AwsFault] = field(default_factory=list)
    latency: float = 0.0  # seconds added to every request (the benchmark's simulated network)
    lag: float = 0.0  # IAM reads of a user's tags and keys answer as of this many seconds ago
    skew: float = 0.0  # seconds AWS's clock is ahead of ours (Date headers, IAM CreateDate)
    # advance(): (our wall clock from when, seconds added from then on), oldest first
    offsets: list[tuple[float, float]] = field(default_factory=list)
    strict_tags: bool = True
    short_pages: set[str] = field(default_factory=set)  # e.g. {"iam:ListUserTags"}: one item a page
    views: dict[str, list[UserView]] = field(default_factory=dict)
    record_views: bool = False  # keep every user's views even without lag (for pin())
    # pin(): reads of a user's tags ("tags") and keys ("keys") answer as of these lag-clock times until the
    # next write to it
    pinned: dict[str, float] = field(default_factory=dict)
    pin_once: bool = False  # the pin answers the next read of each kind only
    issued: dict[str, str] = field(default_factory=dict)  # access key id -> secret, from CreateAccessKey
    # Seconds (lag clock) before a new user, policy, attachment or key is visible (propagation.py); a
    # refusal while it is not is decided before any injected fault and counts toward no fault's after/times.
    propagation: float = 0.0
    pending: Pending = field(default_factory=Pending)
    _admin: dict[str, Any] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, operation: str, **kwargs: Any) -> AwsFault:
        fault = AwsFault(operation, **kwargs)
        self.faults.append(fault)
        return fault

    def concurrent_modification(self, operation: str, **kwargs: Any) -> AwsFault:
        """IAM's answer when another request changes the same user at that moment (HTTP 409)."""
        message = (
            "The request was rejected because multiple requests to change this object were submitted "
            "simultaneously. Wait a few minutes and submit your request again."
        )
        return self.fail(operation, code="ConcurrentModification", status=409, message=message, **kwargs)

    def not_yet_seen(self, created: str, operation: str, times: int = 1) -> AwsFault:
        """Right after `created` succeeds (iam:CreateUser, iam:CreatePolicy), `operation` answers
        NoSuchEntity (HTTP 404) `times` times, as IAM does until the new entity is visible to it."""
        what = "policy" if created == "iam:CreatePolicy" else "user"
        message = f"The {what} this request names cannot be found."
        return self.fail(
            operation, code="NoSuchEntity", status=404, times=times, armed_by=created, message=message
        )

    def advance(self, seconds: float) -> None:
        """Time passes at once for AWS: Date headers from now on, and the CreateDate of anything created
        from now on, are `seconds` later; lagging reads count it as time gone by."""
        with self._lock:
            self.offsets.append((time.time(), self.offset() + seconds))

    def offset(self, at: float | None = None) -> float:
        """Seconds added by advance() at our wall-clock time `at` (now by default)."""
        at = time.time() if at is None else at
        return next((added for since, added in reversed(self.offsets) if since <= at), 0.0)

    def _lag_clock(self) -> float:
        return time.monotonic() + self.offset()

    def mark(self) -> float:
        """Now, on the clock that views are kept by (for pin())."""
        return self._lag_clock()

    def pin(self, at: float, keys_at: float | None = None, once: bool = False) -> None:
        """A stale read arranged exactly, not by timing: from now until the next write to the user, IAM's
        reads of its tags and keys answer as the user was at `at` (a mark() taken while record_views), the
        keys' at `keys_at` if given (each read lags on its own: a torn look); `once`: the next read of each
        only (a run's first look), later ones answer as IAM is now."""
        self.pinned, self.pin_once = {"tags": at, "keys": at if keys_at is None else keys_at}, once

    def operations(self) -> list[str]:
        """The operations AWS served, in order (refusals while something propagated left out)."""
        return [c.operation for c in self.log if not c.propagating]

    def propagated(self) -> None:
        """Everything made so far is visible from now on (a check of the final state, not of timing)."""
        with self._lock:
            self.pending.clear()

    def start(self) -> AwsProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stall

            def log_message(self, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                now = timestamp or time.time()
                return email.utils.formatdate(now + proxy.skew + proxy.offset(now), usegmt=True)

            def _handle(self) -> None:
                proxy._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _fault_for(self, operation: str, key: str, body: bytes = b"") -> AwsFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.except_key and fault.except_key == key:
                    continue
                if fault.contains and fault.contains.encode() not in body:
                    continue
                if fault.armed_by and not any(
                    c.operation == fault.armed_by and c.status < 300 for c in self.log
                ):
                    continue
                if fault.operation == operation and fault.times != 0:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.hits += 1
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        start = time.monotonic()
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-request (a cancelled run): nothing to answer
            h.close_connection = True
            return
        operation = operation_of(h.headers, body)
        if self.latency:
            time.sleep(self.latency)
        if self._propagating(h, operation, body):
            return
        fault = self._fault_for(operation, _access_key(h.headers), body)
        if fault is not None:
            self._answer_fault(h, fault, operation)
            return
        form = parse_qs(body.decode("utf-8", "replace")) if operation.startswith(("iam:", "sts:")) else {}
        refusal = (
            self._signature_refusal(h, body)  # AWS authenticates before anything else
            or self._checked(operation, form, h.headers)
            or lifecycle_refusal(operation, body)
        )
        if refusal is not None:
            code, status, message = refusal
            with self._lock:
                self.log.append(AwsCall(operation, status, _access_key(h.headers), start, time.monotonic()))
            if operation.startswith("ecr:"):
                self._answer_json_error(h, code, status, message)
            else:
                self._answer_error(h, code, status, message)
            return
        status, reply_headers, data = self._upstream(h, operation, form, body)
        if self.propagation and status < 300:
            with self._lock:
                self.pending.made(operation, form, data, self._lag_clock() + self.propagation)
        with self._lock:
            self.log.append(AwsCall(operation, status, _access_key(h.headers), start, time.monotonic()))
        h.send_response(status)
        for key, value in reply_headers:
            if key.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _propagating(self, h: BaseHTTPRequestHandler, operation: str, body: bytes) -> bool:
        """Whether the request was refused (and answered) because what it needs is not yet visible."""
        if not self.propagation:
            return False
        form = parse_qs(body.decode("utf-8", "replace")) if operation.startswith(("iam:", "sts:")) else {}
        key, json_protocol = _access_key(h.headers), bool(h.headers.get("X-Amz-Target"))
        with self._lock:
            refusal = self.pending.refusal(operation, form, key, json_protocol, self._lag_clock())
        if refusal is None:
            return False
        with self._lock:
            self.log.append(AwsCall(operation, refusal[1], key, propagating=True))
        answer = self._answer_json_error if json_protocol else self._answer_error
        answer(h, *refusal)
        return True

    def _upstream(
        self, h: BaseHTTPRequestHandler, operation: str, form: dict[str, list[str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """moto's answer, as IAM would give it: lagging reads, whole-second times, short pages."""
        user = form.get("UserName", [""])[0]
        keeping = bool(self.lag or self.record_views)
        if keeping and operation in USER_WRITES and user and user not in self.views:
            before = self._view(user, h.headers, 0.0)
            with self._lock:
                self.views.setdefault(user, [before])
        if operation == "iam:UntagUser" and user:
            body = self._stored_spelling(form, h.headers)
        page = 0
        if operation in self.short_pages:
            page = int(form.get("Marker", ["page-0"])[0].removeprefix("page-"))
            body = re.sub(rb"&Marker=[^&]*", b"", body)
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("connection", "content-length")}
        headers["Content-Length"] = str(len(body))
        conn.request(h.command, h.path, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        if operation == "iam:TagUser" and reply.status < 300:
            self._drop_case_twins(user, form_tags(form), h.headers)
        if user and reply.status < 300:
            if keeping and operation in USER_WRITES:
                after = self._view(user, h.headers, self._lag_clock())
                with self._lock:
                    self.views.setdefault(user, []).append(after)
            if operation in USER_WRITES:
                self.pinned = {}
            elif (self.lag or self.pinned) and operation in LAGGING_READS and user in self.views:
                data = self._lagged(operation, user, data)
        if operation == "iam:CreateAccessKey" and reply.status < 300:
            self._issued(data)
        if operation.startswith("iam:"):
            data = self._iam_times(data)
        if operation in self.short_pages and reply.status < 300:
            data = one_page(data, page)
        if operation in ECR_KEY_ANSWERS and reply.status < 300:
            data = key_arns(data, self.kms_key_arn)
        return reply.status, reply.getheaders(), data

    def _issued(self, data: bytes) -> None:
        key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
        secret = re.search(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>", data)
        if key and secret:
            with self._lock:
                self.issued[key.group(1).decode()] = secret.group(1).decode()

    def _signature_refusal(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[str, int, str] | None:
        """AWS authenticates before anything else: a key it issued must sign with its own secret, and a
        long-term key carries no session token."""
        with self._lock:
            secret = self.issued.get(_access_key(h.headers))
        if secret is None:
            return None
        json_protocol = bool(h.headers.get("X-Amz-Target"))
        if h.headers.get("X-Amz-Security-Token"):
            return sigv4.refusal(json_protocol, mismatch=False)
        if not sigv4.signature_matches(h.command, h.path, h.headers, body, secret):
            return sigv4.refusal(json_protocol, mismatch=True)
        return None

    def _refusal(
        self, operation: str, form: dict[str, list[str]], headers: Any
    ) -> tuple[str, int, str] | None:
        if not self.strict_tags:
            return None
        tags = form_tags(form)
        problem = tag_problem(tags)
        if problem:
            return "ValidationError", 400, problem
        if operation == "iam:TagUser":
            current = re.findall(
                r"<Key>(.*?)</Key>", self._call("ListUserTags", form["UserName"][0], headers)
            )
            merged = {k.lower() for k in current} | {k.lower() for k, _ in tags}
            if len(merged) > MAX_TAGS:
                return (
                    "LimitExceeded",
                    409,
                    f"The number of tags has reached the maximum limit of {MAX_TAGS}.",
                )
        elif len(tags) > MAX_TAGS:
            return "LimitExceeded", 409, f"The number of tags has reached the maximum limit of {MAX_TAGS}."
        return None

    def _stored_spelling(self, form: dict[str, list[str]], headers: Any) -> bytes:
        """An UntagUser form whose keys are spelled as the user's tags spell them (IAM matches any case)."""
        user = form["UserName"][0]
        stored = re.findall(r"<Key>(.*?)</Key>", self._call("ListUserTags", user, headers))
        spelling = {k.lower(): k for k in stored}
        fields = {k: v[0] for k, v in form.items()}
        for name, value in fields.items():
            if name.startswith("TagKeys.member."):
                fields[name] = spelling.get(value.lower(), value)
        return urlencode(fields).encode()

    def _drop_case_twins(self, user: str, tags: list[tuple[str, str]], headers: Any) -> None:
        """After TagUser: a key that differs only by case from one just written is gone (replaced)."""
        written = {k for k, _ in tags}
        stored = re.findall(r"<Key>(.*?)</Key>", self._call("ListUserTags", user, headers))
        twins = [k for k in stored if k not in written and k.lower() in {w.lower() for w in written}]
        extra = {f"TagKeys.member.{n}": k for n, k in enumerate(twins, 1)}
        if twins:
            self._call("UntagUser", user, headers, **extra)

    def _call(self, action: str, user: str, headers: Any, **extra: str) -> str:
        """Ask moto directly (no lag, not logged)."""
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        body = urlencode(
            {"Action": action, "UserName": user, "Version": "2010-05-08", "MaxItems": "1000", **extra}
        )
        conn.request(
            "POST",
            "/",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": headers.get("Authorization", ""),
            },
        )
        text = conn.getresponse().read().decode()
        conn.close()
        return text

    def _view(self, user: str, headers: Any, since: float) -> UserView:
        tags = re.search(r"<Tags>(.*?)</Tags>", self._call("ListUserTags", user, headers), re.S)
        keys = re.search(
            r"<AccessKeyMetadata>(.*?)</AccessKeyMetadata>", self._call("ListAccessKeys", user, headers), re.S
        )
        return UserView(since, tags.group(1) if tags else "", keys.group(1) if keys else "")

    def _lagged(self, operation: str, user: str, data: bytes) -> bytes:
        kind = "keys" if operation == "iam:ListAccessKeys" else "tags"
        with self._lock:
            pinned = self.pinned.pop(kind, None) if self.pin_once else self.pinned.get(kind)
            cut = self._lag_clock() - self.lag if pinned is None else pinned
            views = sorted(self.views[user], key=lambda v: v.since)
        view = views[0]
        for candidate in views:
            if candidate.since <= cut:
                view = candidate
        text = data.decode()
        if operation == "iam:ListAccessKeys":
            text = re.sub(
                r"<AccessKeyMetadata>.*?</AccessKeyMetadata>|<AccessKeyMetadata/>",
                lambda _m: f"<AccessKeyMetadata>{view.keys}</AccessKeyMetadata>",
                text,
                flags=re.S,
            )
        elif "<Tags>" in text or "<Tags/>" in text:
            text = re.sub(
                r"<Tags>.*?</Tags>|<Tags/>", lambda _m: f"<Tags>{view.tags}</Tags>", text, flags=re.S
            )
        elif operation == "iam:GetUser":
            text = text.replace("</User>", f"<Tags>{view.tags}</Tags></User>")
        return text.encode()

    def _iam_times(self, data: bytes) -> bytes:
        """IAM answers whole seconds; and with `skew`, its clock is off ours."""

        def shift(m: re.Match[bytes]) -> bytes:
            when = datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00")).astimezone(UTC)
            shifted = self.skew + self.offset(when.timestamp())
            when = (when + timedelta(seconds=shifted)).replace(microsecond=0)
            return f"<CreateDate>{when:%Y-%m-%dT%H:%M:%SZ}</CreateDate>".encode()

        return re.sub(rb"<CreateDate>([^<]+)</CreateDate>", shift, data)

    def _checked(
        self, operation: str, form: dict[str, list[str]], headers: Any
    ) -> tuple[str, int, str] | None:
        """Where moto is kinder than the service: IAM's tag rules, and ECR's check of who asks for a token."""
        if operation in IAM_TAGGING:
            return self._refusal(operation, form, headers)
        if operation == ECR_TOKEN:
            return self._ecr_token_refusal(_access_key(headers))
        if operation == WEB_IDENTITY:
            return self.web_identity_refusal(form)
        return None

    def web_identity_refusal(self, form: dict[str, list[str]]) -> tuple[str, int, str] | None:
        """STS checks the role's trust policy against the token, which moto does not: the provider must
        exist in the account, and its URL must be the token's issuer."""
        role_arn = form.get("RoleArn", [""])[0]
        claims = jwt_claims(form.get("WebIdentityToken", [""])[0])
        denied = ("AccessDenied", 403, f"Not authorized to perform {WEB_IDENTITY}")
        iam = self.admin("iam")
        try:
            role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except iam.exceptions.NoSuchEntityException:
            return denied
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        issuer = str(claims.get("iss", "")).removeprefix("https://")
        provider = f"arn:aws:iam::{account}:oidc-provider/{issuer}"
        try:
            iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider)
        except iam.exceptions.NoSuchEntityException:
            return denied
        if role["Arn"] != role_arn or not trust_allows(role["AssumeRolePolicyDocument"], provider, claims):
            return denied
        return None

    def _ecr_token_refusal(self, key: str) -> tuple[str, int, str] | None:
        """ECR evaluates who signs GetAuthorizationToken, which moto does not: a key that is not an active
        key of an IAM user is refused (UnrecognizedClientException), and so is a user whose policies -
        attached, inline, and the permissions boundary if any - do not allow ecr:GetAuthorizationToken, or
        deny it (AccessDeniedException). The tests' own "testing" credentials stand for an administrator."""
        if key in ("", "testing"):
            return None
        # Read from moto's IAM in this process, as an administrator's API calls would find it (they were
        # seven requests to moto for every token asked for).
        iam = moto_iam()
        owner = next(
            (
                (u, k.status)
                for u in list(iam.users.values())
                for k in list(u.access_keys)
                if k.access_key_id == key
            ),
            None,
        )
        if owner is None or owner[1] != "Active":
            return (
                "UnrecognizedClientException",
                400,
                "The security token included in the request is invalid.",
            )
        user = owner[0]
        documents: list[Any] = list(user.policies.values())
        documents += [_policy_document(iam, arn) for arn in list(user.managed_policies)]
        boundary = getattr(user, "permissions_boundary", None)
        allowed = allows(documents, ECR_TOKEN_ACTION)
        if boundary:
            allowed = allowed and allows(
                [_policy_document(iam, boundary["PermissionsBoundaryArn"])], ECR_TOKEN_ACTION
            )
        if allowed:
            return None
        return (
            "AccessDeniedException",
            400,
            f"User: {user.arn} is not authorized to perform: {ECR_TOKEN_ACTION} on resource: * because no "
            "identity-based policy allows the action, or one denies it",
        )

    def kms_key_arn(self, alias: str) -> str:
        """The ARN of the key an alias ARN names, as moto's KMS (the tests' region) knows it; "" if not."""
        kms = self.admin("kms")
        try:
            return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
        except kms.exceptions.NotFoundException:
            return ""

    def admin(self, service: str) -> Any:
        """A client on moto itself with the tests' administrator credentials (not logged, never lagged)."""
        with self._lock:
            if service not in self._admin:
                import boto3

                session = boto3.session.Session(
                    aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
                )
                url = f"http://{self.upstream}"
                self._admin[service] = session.client(service, endpoint_url=url)  # type: ignore[call-overload]
            return self._admin[service]

    def _answer_json_error(self, h: BaseHTTPRequestHandler, code: str, status: int, message: str) -> None:
        data = json.dumps({"__type": code, "message": message}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/x-amz-json-1.1")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer_error(self, h: BaseHTTPRequestHandler, code: str, status: int, message: str) -> None:
        data = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message.replace('&', '&amp;').replace('<', '&lt;')}</Message></Error>"
            "<RequestId>x</RequestId></ErrorResponse>"
        ).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/xml")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer_fault(self, h: BaseHTTPRequestHandler, fault: AwsFault, operation: str) -> None:
        with self._lock:
            self.log.append(AwsCall(operation, fault.status, _access_key(h.headers)))
        if fault.status == -1:
            fault.held.set()
            fault.release.wait(60)
        if fault.status in (0, -1):
            h.close_connection = True
            h.connection.close()
            return
        if h.headers.get("X-Amz-Target"):
            data = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            ctype = "application/x-amz-json-1.1"
        else:
            data = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{fault.code}</Code>"
                f"<Message>{fault.message}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            ).encode()
            ctype = "text/xml"
        h.send_response(fault.status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
