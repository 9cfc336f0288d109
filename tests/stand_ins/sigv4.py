"""AWS's check of a request's Signature Version 4 (IAM User Guide, "AWS Signature Version 4 for API
requests"): the service recomputes the signature from the request it received and the secret of the key it
names; botocore's own signer recomputes it here. moto checks no signature, so the AWS stand-in asks this
of every request signed with a key it issued."""

from __future__ import annotations

import hmac
import re
from typing import Any

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]+)"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
BAD_TOKEN = "The security token included in the request is invalid."


def signature_matches(method: str, path: str, headers: Any, body: bytes, secret: str) -> bool:
    """Whether the request's signature is the one its key's `secret` makes of the headers it signed, its
    method, path, query and body, at its X-Amz-Date in its credential scope's region and service."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    m = AUTHORIZATION.fullmatch(headers.get("Authorization", "").strip())
    if m is None or not headers.get("X-Amz-Date"):
        return False
    signed = {name: headers.get(name, "") for name in m["signed"].split(";")}
    request = AWSRequest(method=method, url=f"http://{headers.get('Host', '')}{path}", data=body)
    for name, value in signed.items():
        request.headers[name] = value
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(Credentials(m["key"], secret), m["service"], m["region"])
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    return hmac.compare_digest(expected, m["signature"])


def refusal(json_protocol: bool, mismatch: bool) -> tuple[str, int, str]:
    """AWS's answer to a signature that does not match (`mismatch`) or to a session token sent with a
    long-term key: the query protocol (IAM, STS) answers 403 SignatureDoesNotMatch or InvalidClientTokenId
    (IAM API Reference, Common Errors; aws/aws-cli#5447); JSON-protocol services such as ECR answer 400
    InvalidSignatureException or UnrecognizedClientException, with the same messages."""
    if mismatch:
        return (
            ("InvalidSignatureException", 400, MISMATCH)
            if json_protocol
            else ("SignatureDoesNotMatch", 403, MISMATCH)
        )
    return (
        ("UnrecognizedClientException", 400, BAD_TOKEN)
        if json_protocol
        else ("InvalidClientTokenId", 403, BAD_TOKEN)
    )
