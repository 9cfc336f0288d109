"""IAM's propagation, per entity (IAM User Guide, "Troubleshoot IAM": "Changes that I make are not always
immediately visible"; a new access key is commonly refused by other services for a few seconds, up to about
15, issue 22). For `seconds` after it is made:
- a user (CreateUser): every other IAM request naming it answers NoSuchEntity, "The user with name U cannot
  be found." (IAM API Reference, Errors of AttachUserPolicy, CreateAccessKey, TagUser, GetUser, ...);
- a policy (CreatePolicy): requests naming its ARN answer NoSuchEntity (AttachUserPolicy: "Policy ... does
  not exist or is not attachable.");
- an attachment (AttachUserPolicy): ECR requests signed with the user's keys are denied, the policy not yet
  in effect (AccessDeniedException, as ECR answers a user no policy allows);
- an access key (CreateAccessKey): requests signed with it answer as for a key AWS does not know (ECR:
  UnrecognizedClientException; IAM and STS: InvalidClientTokenId; "The security token included in the
  request is invalid.").
Times are on the proxy's lag clock, so `advance()` counts; a refusal is decided before any injected fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import sigv4

Refusal = tuple[str, int, str]


@dataclass
class Pending:
    """What is not yet visible: (kind, name) -> the lag-clock time it becomes visible."""

    until: dict[tuple[str, str], float] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # access key id -> its user
    accounts: dict[str, str] = field(default_factory=dict)  # user -> its account (from the policy ARN)

    def made(self, operation: str, form: dict[str, list[str]], data: bytes, visible: float) -> None:
        """After a request AWS served: what it made becomes visible at `visible`."""
        user = form.get("UserName", [""])[0]
        if operation == "iam:CreateUser":
            self.until["user", user] = visible
        elif operation == "iam:CreatePolicy":
            arn = re.search(rb"<Arn>([^<]+)</Arn>", data)
            if arn:
                self.until["policy", arn.group(1).decode()] = visible
        elif operation == "iam:AttachUserPolicy":
            self.until["attached", user] = visible
            parts = form.get("PolicyArn", [""])[0].split(":")
            self.accounts[user] = parts[4] if len(parts) > 4 else ""
        elif operation == "iam:CreateAccessKey":
            key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
            if key:
                self.until["key", key.group(1).decode()] = visible
                self.owners[key.group(1).decode()] = user

    def refusal(
        self, operation: str, form: dict[str, list[str]], key: str, json_protocol: bool, now: float
    ) -> Refusal | None:
        """AWS's answer while what this request needs is not yet visible; None when it all is."""
        if self._pending("key", key, now):
            return sigv4.refusal(json_protocol, mismatch=False)
        user = self.owners.get(key, "")
        if operation.startswith("ecr:") and self._pending("attached", user, now):
            arn = f"arn:aws:iam::{self.accounts.get(user, '')}:user/{user}"
            return (
                "AccessDeniedException",
                400,
                f"User: {arn} is not authorized to perform: {operation} on resource: * because no "
                "identity-based policy allows the action",
            )
        named = form.get("UserName", [""])[0]
        if operation != "iam:CreateUser" and self._pending("user", named, now):
            return "NoSuchEntity", 404, f"The user with name {named} cannot be found."
        policy = form.get("PolicyArn", [""])[0]
        if operation != "iam:CreatePolicy" and self._pending("policy", policy, now):
            said = "does not exist or is not attachable" if "Attach" in operation else "was not found"
            return "NoSuchEntity", 404, f"Policy {policy} {said}."
        return None

    def _pending(self, kind: str, name: str, now: float) -> bool:
        return bool(name) and self.until.get((kind, name), 0.0) > now

    def clear(self) -> None:
        self.until.clear()
        self.owners.clear()
        self.accounts.clear()
