"""The AWS stand-in checks the SigV4 signature of every request signed with a key it issued (issue 22): a
proof signed with a wrong secret, or carrying a stray session token, is refused as AWS refuses it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.stand_ins.checks import FAST, REPO, USER, assert_target_works, held_pair, setup
from tests.stand_ins.harness import REGION, Stack

TOKEN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}
)


def via_proxy(stack: Stack, service: str, key_id: str, secret: str, token: str | None = None) -> Any:
    """A client that talks to the proxy (stack.boto talks to moto itself), with the given credentials."""
    import botocore.session

    return botocore.session.get_session().create_client(
        service,
        region_name=REGION,
        endpoint_url=stack.aws.url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def issued_key(stack: Stack) -> tuple[str, str]:
    """A user allowed to ask ECR for a token, and a key issued to it through the proxy."""
    admin = via_proxy(stack, "iam", "testing", "testing")
    admin.create_user(UserName=USER)
    admin.put_user_policy(UserName=USER, PolicyName="token", PolicyDocument=TOKEN_POLICY)
    key = admin.create_access_key(UserName=USER)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.parametrize("service", ["ecr", "iam"])
def test_the_right_secret_passes(stack: Stack, service: str) -> None:
    key_id, secret = issued_key(stack)
    client = via_proxy(stack, service, key_id, secret)
    if service == "ecr":
        assert client.get_authorization_token()["authorizationData"]
    else:
        assert client.get_user()["User"]["UserName"] == USER


# A wrong secret: IAM (query protocol) answers 403 SignatureDoesNotMatch, as STS does (aws/aws-cli#5447);
# JSON-protocol services such as ECR answer 400 InvalidSignatureException (e.g. ECS,
# teralytics/prometheus-ecs-discovery#7; aws/aws-sdk-js#168), with the same message.
@pytest.mark.parametrize(
    ("service", "code", "status"),
    [("ecr", "InvalidSignatureException", 400), ("iam", "SignatureDoesNotMatch", 403)],
)
def test_a_wrong_secret_is_refused(stack: Stack, service: str, code: str, status: int) -> None:
    key_id, secret = issued_key(stack)
    client = via_proxy(stack, service, key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    with pytest.raises(ClientError) as caught:
        client.get_authorization_token() if service == "ecr" else client.get_user()
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert "signature we calculated does not match" in error["Error"]["Message"]


# A session token with a long-term (AKIA) key: "The security token included in the request is invalid",
# InvalidClientTokenId (403) from IAM (IAM API Reference, Common Errors), UnrecognizedClientException
# (400) from JSON-protocol services such as ECR.
@pytest.mark.parametrize(
    ("service", "code", "status"),
    [("ecr", "UnrecognizedClientException", 400), ("iam", "InvalidClientTokenId", 403)],
)
def test_a_stray_session_token_is_refused(stack: Stack, service: str, code: str, status: int) -> None:
    key_id, secret = issued_key(stack)
    client = via_proxy(stack, service, key_id, secret, token="FwoGZXIvYXdzEStray")
    with pytest.raises(ClientError) as caught:
        client.get_authorization_token() if service == "ecr" else client.get_user()
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert error["Error"]["Message"] == "The security token included in the request is invalid."


def test_a_rotation_proves_the_key_with_its_secret_and_no_token(stack: Stack) -> None:
    """A rerun rotates the key, with a session token in the action's environment (as
    configure-aws-credentials leaves one): the proof is signed with the new key's own secret and carries
    no token, so the stand-in's check lets it through; the written pair works through the proxy too."""
    inputs = {"github-token": setup(stack), **FAST}
    env = {"AWS_SESSION_TOKEN": "FwoGZXIvYXdzEOwn"}
    assert stack.run(inputs, env=env).returncode == 0
    stack.advance(1.1)
    old = assert_target_works(stack, REPO)
    stack.aws.log.clear()  # the fresh run's proof (issue 22) is not this one's
    result = stack.run(inputs, env=env)
    assert result.returncode == 0, result.stdout
    key_id = assert_target_works(stack, REPO)
    proofs = [c for c in stack.aws.log if c.operation == "ecr:GetAuthorizationToken"]
    assert key_id != old and [(c.access_key, c.status) for c in proofs] == [(key_id, 200)]
    _, secret = held_pair(stack, REPO)
    assert via_proxy(stack, "iam", key_id, secret).get_user()["User"]["UserName"] == USER
    assert via_proxy(stack, "ecr", key_id, secret).get_authorization_token()["authorizationData"]
