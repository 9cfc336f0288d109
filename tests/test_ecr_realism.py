"""ECR as it answers where moto is kinder (issue 22): a KMS alias given at creation comes back as the key's
ARN, and a lifecycle policy whose "any" rule is not the last is refused. The action is held to both."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecr_bootstrap.aws.ecr import Repository, differences
from ecr_bootstrap.inputs import EcrSettings
from ecr_bootstrap.policy import lifecycle_policy
from tests.stand_ins.checks import setup
from tests.stand_ins.harness import REGION, Stack

NOT_CHANGED = "ECR setting not changed"  # the title of the warning a setting fixed at creation gives
ANY_LAST = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}
UNTAGGED = {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}


def via_proxy(stack: Stack, service: str) -> Any:
    """A client through the stand-in's proxy (stack.boto talks to moto itself)."""
    import botocore.session

    return botocore.session.get_session().create_client(
        service,
        region_name=REGION,
        endpoint_url=stack.aws.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def alias_of_a_new_key(stack: Stack, name: str = "ecr") -> tuple[str, str]:
    """(the alias ARN, the key ARN) of a new KMS key in moto."""
    kms = stack.boto("kms")
    key = str(kms.create_key(Description=name)["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=key)
    return key.split(":key/", 1)[0] + f":alias/{name}", key


def rules(*selections: dict[str, Any]) -> str:
    return json.dumps(
        {
            "rules": [
                {"rulePriority": n, "selection": s, "action": {"type": "expire"}}
                for n, s in enumerate(selections, 1)
            ]
        }
    )


# -- the stand-in ----------------------------------------------------------------------------------------


def test_stand_in_answers_an_alias_as_its_key_arn(stack: Stack) -> None:
    alias, key = alias_of_a_new_key(stack)
    ecr = via_proxy(stack, "ecr")
    wanted = {"encryptionType": "KMS", "kmsKey": key}
    made = ecr.create_repository(
        repositoryName="app", encryptionConfiguration={"encryptionType": "KMS", "kmsKey": alias}
    )
    assert made["repository"]["encryptionConfiguration"] == wanted
    [found] = ecr.describe_repositories(repositoryNames=["app"])["repositories"]
    assert found["encryptionConfiguration"] == wanted


def test_stand_in_refuses_an_any_rule_that_is_not_last(stack: Stack) -> None:
    ecr = via_proxy(stack, "ecr")
    ecr.create_repository(repositoryName="app")
    with pytest.raises(ClientError) as refused:
        ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=rules(ANY_LAST, UNTAGGED))
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "rulePriority" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError):  # nothing was stored
        ecr.get_lifecycle_policy(repositoryName="app")
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=rules(UNTAGGED, ANY_LAST))


# -- the action ------------------------------------------------------------------------------------------


def test_a_rerun_with_an_alias_does_not_warn_of_a_mismatch(stack: Stack) -> None:
    alias, key = alias_of_a_new_key(stack)
    inputs = {"github-token": setup(stack), "encryption": "KMS", "kms-key": alias}
    first = stack.run(inputs)
    assert first.returncode == 0, first.stdout
    [repository] = via_proxy(stack, "ecr").describe_repositories()["repositories"]
    assert repository["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}
    again = stack.run(inputs)
    assert again.returncode == 0, again.stdout
    assert NOT_CHANGED not in again.stdout, again.stdout


def test_a_rerun_with_another_key_still_warns(stack: Stack) -> None:
    _alias, key = alias_of_a_new_key(stack)
    inputs = {"github-token": setup(stack), "encryption": "KMS", "kms-key": key}
    assert stack.run(inputs).returncode == 0
    _other_alias, other = alias_of_a_new_key(stack, "other")
    again = stack.run({**inputs, "kms-key": other})
    assert again.returncode == 0, again.stdout
    assert NOT_CHANGED in again.stdout and other in again.stdout, again.stdout


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("given", "matches"),
    [
        (KEY, True),
        ("arn:aws:kms:us-east-1:123456789012:alias/ecr", True),  # ECR answers the key an alias names
        ("arn:aws:kms:eu-west-1:123456789012:alias/ecr", False),  # another region's key
        ("arn:aws:kms:us-east-1:210987654321:alias/ecr", False),  # another account's key
        ("arn:aws:kms:us-east-1:123456789012:key/other", False),
        ("", True),  # the AWS-managed key: any key of the account
    ],
)
def test_which_kms_key_matches_the_repository(given: str, matches: bool) -> None:
    repository = Repository("app", "arn", "uri", "123456789012", encryption="KMS", kms_key=KEY)
    settings = EcrSettings(True, "MUTABLE", "KMS", given, None, None)
    assert (differences(repository, settings)[1] == []) is matches


def test_the_lifecycle_document_of_both_inputs_is_accepted_by_ecr(stack: Stack) -> None:
    inputs = {"github-token": setup(stack), "keep-images": "5", "expire-untagged-days": "7"}
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    ecr = via_proxy(stack, "ecr")
    [repository] = ecr.describe_repositories()["repositories"]
    text = ecr.get_lifecycle_policy(repositoryName=repository["repositoryName"])["lifecyclePolicyText"]
    stored = json.loads(text)["rules"]
    last = max(stored, key=lambda r: r["rulePriority"])
    assert last["selection"]["tagStatus"] == "any" and last["selection"]["countNumber"] == 5


@pytest.mark.parametrize(("keep", "days"), [(5, None), (None, 7), (5, 7)])
def test_the_any_rule_has_the_highest_priority(keep: int | None, days: int | None) -> None:
    document = lifecycle_policy(keep, days)
    assert document is not None
    ordered = sorted(document["rules"], key=lambda r: r["rulePriority"])
    assert [r["selection"]["tagStatus"] == "any" for r in ordered][:-1] == [False] * (len(ordered) - 1)
    assert len({r["rulePriority"] for r in ordered}) == len(ordered)
