"""The private ECR repository: find it, or create it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AwsError
from . import AwsClients, call, is_code

PERMISSIONS = {"ecr:DescribeRepositories": "repository", "ecr:CreateRepository": "repository"}


@dataclass(frozen=True)
class Repository:
    name: str
    arn: str
    uri: str
    account: str

    @property
    def registry(self) -> str:
        return self.uri.split("/", 1)[0]

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]


def _from_api(data: dict[str, str]) -> Repository:
    return Repository(
        name=data["repositoryName"],
        arn=data["repositoryArn"],
        uri=data["repositoryUri"],
        account=data["registryId"],
    )


def find_repository(aws: AwsClients, name: str) -> Repository | None:
    try:
        reply = call(
            f"Looking up ECR repository '{name}'",
            "ecr:DescribeRepositories",
            aws.ecr.describe_repositories,
            repositoryNames=[name],
        )
    except AwsError as exc:
        if is_code(exc, "RepositoryNotFoundException"):
            return None
        raise
    return _from_api(reply["repositories"][0])


def create_repository(aws: AwsClients, name: str) -> Repository:
    try:
        reply = call(
            f"Creating ECR repository '{name}'",
            "ecr:CreateRepository",
            aws.ecr.create_repository,
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
        )
    except AwsError as exc:
        # Another run created it between our look-up and now: that one is ours to reuse.
        if is_code(exc, "RepositoryAlreadyExistsException"):
            found = find_repository(aws, name)
            if found:
                return found
        raise
    return _from_api(reply["repository"])
