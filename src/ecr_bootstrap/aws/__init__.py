"""AWS access: clients built once per run, one wrapper that turns SDK errors into AwsError, and who the
action runs as (STS). Each module under aws/, this one too, lists the IAM actions its calls need in
PERMISSIONS, from which permissions.py generates the action's own policy."""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

from ..errors import AwsError

# caller_account's; GetCallerIdentity needs no permission (it cannot be denied): listed for completeness.
PERMISSIONS = {"sts:GetCallerIdentity": ("*", "read")}
Tags = tuple[tuple[str, str], ...]  # (key, value) pairs, as the tags input gives them
ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
# IAM's HTTP 409 when another request changes the same entity at that moment (IAM API Reference, e.g.
# TagUser and UntagUser, "Errors"); botocore's standard retry mode does not retry it: call() does, a few
# times after short jittered waits.
CONCURRENT = "ConcurrentModification"
CONCURRENT_TRIES = 4
# What this run created moments ago may not be visible to IAM yet (IAM User Guide, "Troubleshoot IAM":
# changes are not always immediately visible; commonly a few seconds, up to about 15): NoSuchEntity about it
# is retried for up to UNSEEN_SECONDS, the waits doubling from 0.5 s to at most UNSEEN_LONGEST.
UNSEEN_SECONDS = 30.0
UNSEEN_LONGEST = 4.0
NO_CREDENTIALS_FIX = (
    "Give this step AWS credentials: run aws-actions/configure-aws-credentials before it (OIDC role "
    "recommended), or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment."
)


def sdk_config(connect_timeout: float = 5, read_timeout: float = 20, attempts: int = 6) -> Any:
    from botocore.config import Config

    # Standard mode retries throttling and transient errors with backoff and a bounded number of tries.
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


class AwsClients:
    """One botocore session per run; each client is made when first used (a rerun never needs STS). No
    boto3: its import (s3transfer among it) costs a tenth of a second of every run's start-up."""

    def __init__(self, region: str, session: Any = None, config: Any = None) -> None:
        self.region = region
        self._session = session
        self._config = config
        # IAM's Date header: (its epoch seconds, our wall clock then). The key record's times are IAM's.
        self.iam_date: tuple[float, float] | None = None
        self.created: set[str] = set()  # names and ARNs of what this run created (iam.py adds them)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # the look-ups run in threads; botocore's client creation is not safe
        # Set when the first request is about to go out: work that would compete for the interpreter
        # (PyGithub's import) waits for it, so the first request is not delayed (start-up time).
        self.sending = threading.Event()

    def bounded(self, seconds: float) -> AwsClients:
        """Clients for a rollback: one try per request, each at most `seconds` to connect and to read."""
        clients = AwsClients(self.region, self._botocore(), sdk_config(seconds, seconds, attempts=1))
        clients.iam_date, clients.created = self.iam_date, self.created
        return clients

    def iam_now(self) -> datetime:
        """IAM's clock as this run sees it (from its last Date header); the runner's before any answer."""
        now = time.time()
        if self.iam_date is not None:
            date, then = self.iam_date
            now += date - then
        return datetime.fromtimestamp(now, UTC)

    def _on_reply(self, http_response: Any = None, **_: Any) -> None:
        from email.utils import parsedate_to_datetime

        try:
            date = parsedate_to_datetime(http_response.headers["Date"]).timestamp()
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            return
        self.iam_date = (date, time.time())

    def client(self, service: str, **credentials: str) -> Any:
        with self._lock:
            if service in self._clients and not credentials:
                return self._clients[service]
            client = self._botocore().create_client(
                service, region_name=self.region, config=self._config or sdk_config(), **credentials
            )
            if credentials:  # a client for other credentials (the new key): not cached
                return client
            # The handler returns None (Event.set does): botocore sends the request itself.
            client.meta.events.register("before-send", lambda **_: self.sending.set())
            if service == "iam":
                client.meta.events.register("after-call.iam", self._on_reply)
            self._clients[service] = client
            return client

    def _botocore(self) -> Any:
        if self._session is None:
            import botocore.session  # imported here: a run that fails input validation never pays for it

            self._session = botocore.session.get_session()
        return self._session

    @property
    def iam(self) -> Any:
        return self.client("iam")


def error_code(exc: Any) -> str:  # of a botocore ClientError
    return str(exc.response.get("Error", {}).get("Code", ""))


def call(
    what: str, permission: str, client: Any, *, none_on: str = "", unseen: bool = False, **kwargs: Any
) -> Any:
    """Run the operation `permission` names (iam:GetUser: client.get_user), so what is declared is what is
    called; None if AWS answers the error code `none_on` (the thing looked up is not there, say). IAM's
    ConcurrentModification is tried again a few times; with `unseen` (it names what this run has just
    created), so is NoSuchEntity. On failure raise AwsError saying what was being attempted and what to do."""
    from botocore import xform_name
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    operation = getattr(client, xform_name(permission.split(":", 1)[1]))
    try:
        return _tried(operation, permission, unseen, kwargs)
    except ClientError as exc:
        code = error_code(exc)
        if none_on and code == none_on:
            return None
        message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
        fix = ""
        if code in ACCESS_DENIED:
            fix = (
                f"Allow {permission} to the AWS identity this step runs as (the README's "
                "'AWS permissions' section has the whole least-privilege policy)."
            )
        elif _rule(code, unseen, permission):
            tried = f"{CONCURRENT_TRIES} times" if code == CONCURRENT else f"for {UNSEEN_SECONDS:g} s"
            fix = f"IAM answered {code} {tried}; rerun the workflow in a few minutes."
        raise AwsError(f"{what} failed: {code}: {message}", code=code, fix=fix) from exc
    except NoCredentialsError as exc:
        raise AwsError(f"{what} failed: no AWS credentials found.", fix=NO_CREDENTIALS_FIX) from exc
    except BotoCoreError as exc:
        raise AwsError(f"{what} failed: {exc}", fix="Check the network and AWS_ENDPOINT_URL.") from exc


def _rule(code: str, unseen: bool, permission: str) -> tuple[float, float, float, float] | None:
    """How an IAM error is tried again: (first wait, longest wait, tries, seconds), or None: it is not."""
    if not permission.startswith("iam:"):
        return None
    if code == CONCURRENT:
        return 0.1, 0.4, CONCURRENT_TRIES, math.inf
    if unseen and code == "NoSuchEntity":
        return 0.5, UNSEEN_LONGEST, math.inf, UNSEEN_SECONDS
    return None


def _tried(operation: Any, permission: str, unseen: bool, kwargs: dict[str, Any]) -> Any:
    """The operation, tried again after a jittered, doubling wait while IAM answers an error _rule retries,
    as long as the next try stays within the rule's tries and seconds."""
    from botocore.exceptions import ClientError

    started = time.monotonic()
    tried = {CONCURRENT: 0, "NoSuchEntity": 0}
    while True:
        try:
            return operation(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            rule = _rule(code, unseen, permission)
            if rule is None:
                raise
            first, longest, tries, seconds = rule
            tried[code] += 1
            wait = min(first * 2 ** (tried[code] - 1), longest) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            if tried[code] >= tries or time.monotonic() - started + wait > seconds:
                raise
            time.sleep(wait)


def pages(what: str, permission: str, client: Any, key: str, **kwargs: Any) -> list[Any]:
    """Every item of an IAM list: IAM may answer fewer than MaxItems with IsTruncated set, even when more
    are left (IAM API Reference, "IsTruncated"), so the list is read on from each answer's Marker."""
    items: list[Any] = []
    marker: dict[str, Any] = {}
    while True:
        reply = call(what, permission, client, **kwargs, **marker)
        items += reply.get(key, [])
        if not reply.get("IsTruncated") or not reply.get("Marker"):
            return items
        marker = {"Marker": str(reply["Marker"])}


def aws_tags(tags: Tags) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags]


def if_set(**params: Any) -> dict[str, Any]:
    """The optional parameters of a request that have a value; the others are left out of it."""
    return {name: value for name, value in params.items() if value}


def is_code(exc: BaseException, *codes: str) -> bool:
    return isinstance(exc, AwsError) and exc.code in codes


def caller_account(aws: AwsClients) -> tuple[str, str]:
    """(account, partition) of the credentials this step runs with."""
    reply = call("Asking STS who this step runs as", "sts:GetCallerIdentity", aws.client("sts"))
    return str(reply["Account"]), str(reply["Arn"]).split(":")[1]
