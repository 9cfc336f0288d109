"""Who the action runs as."""

from __future__ import annotations

from . import AwsClients, call

# GetCallerIdentity needs no permission (it cannot be denied); listed for completeness.
PERMISSIONS = {"sts:GetCallerIdentity": ("*", "read")}


def caller_account(aws: AwsClients) -> tuple[str, str]:
    """(account, partition) of the credentials this step runs with."""
    reply = call("Asking STS who this step runs as", "sts:GetCallerIdentity", aws.sts)
    return str(reply["Account"]), str(reply["Arn"]).split(":")[1]
