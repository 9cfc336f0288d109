"""Who the action runs as, and proof that a new access key works."""

from __future__ import annotations

import time

from ..errors import AwsError
from . import AwsClients, call, error_code

# GetCallerIdentity needs no permission (it cannot be denied); listed for completeness.
PERMISSIONS = {"sts:GetCallerIdentity": ("*", "read")}
# What STS answers while a new key has not yet reached every IAM endpoint.
NOT_YET = {"InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure", "UnrecognizedClientException"}


def caller_account(aws: AwsClients) -> tuple[str, str]:
    """(account, partition) of the credentials this step runs with."""
    reply = call("Asking STS who this step runs as", "sts:GetCallerIdentity", aws.sts.get_caller_identity)
    return str(reply["Account"]), str(reply["Arn"]).split(":")[1]


def wait_until_usable(
    aws: AwsClients,
    key_id: str,
    secret: str,
    user_arn: str,
    timeout: float,
) -> int:
    """Call STS with the new key until it answers as `user_arn`; returns the number of tries.

    IAM is eventually consistent: a new key typically works after 5-15 s. Retired keys must not be
    deleted, nor targets pointed at the new one, before it is proven to work.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    client = aws.client("sts", aws_access_key_id=key_id, aws_secret_access_key=secret)
    clock, sleep = time.monotonic, time.sleep
    deadline = clock() + timeout
    delay = 1.0
    tries = 0
    while True:
        tries += 1
        try:
            arn = client.get_caller_identity()["Arn"]
        except BotoCoreError as exc:
            raise AwsError(f"Checking the new access key {key_id} with STS failed: {exc}") from exc
        except ClientError as exc:
            code = error_code(exc)
            if code not in NOT_YET:
                raise AwsError(
                    f"Checking the new access key {key_id} with STS failed: {code}", code=code
                ) from exc
            if clock() + delay > deadline:
                raise AwsError(
                    f"The new access key {key_id} was still not accepted by STS after "
                    f"{timeout:g} s ({code}).",
                    code=code,
                    fix="IAM may be slow to propagate keys right now: rerun, or raise key-wait-seconds.",
                ) from exc
            sleep(delay)
            delay = min(delay * 1.5, 5.0)
            continue
        if arn != user_arn:
            raise AwsError(f"The new access key {key_id} authenticates as {arn}, not as {user_arn}.")
        return tries
