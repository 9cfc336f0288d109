"""Beyond the seed (issue 4): OIDC role mode, environment and organization secrets, secret names,
variables, ECR settings, plan mode, and the permissions printed for each set of options."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.stand_ins.checks import (
    MUTATING_AWS,
    OTHER,
    POLICY,
    REPO,
    USER,
    assert_no_leak,
    assert_target_works,
    pair_works,
    setup,
    user_keys,
    widen_policy,
)
from tests.stand_ins.harness import ROOT, Stack

ACCOUNT = "123456789012"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
ROLE = "fcj-ecr-ci-cd-role"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{POLICY}"


def trust_of(stack: Stack, role: str = ROLE) -> dict[str, Any]:
    doc = stack.boto("iam").get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    return dict(json.loads(doc) if isinstance(doc, str) else doc)


def subjects_of(stack: Stack) -> list[str]:
    cond = trust_of(stack)["Statement"][0]["Condition"]
    return sorted(cond["StringLike"]["token.actions.githubusercontent.com:sub"])


def repository_uri(stack: Stack) -> str:
    return str(stack.boto("ecr").describe_repositories()["repositories"][0]["repositoryUri"])


def writes(stack: Stack) -> tuple[list[str], list[str]]:
    aws = [op for op in stack.aws.operations() if op.split(":")[1].startswith(MUTATING_AWS)]
    gh = [f"{r.method} {r.path}" for r in stack.github.log if r.method in ("PUT", "POST", "PATCH", "DELETE")]
    return aws, gh


# -- OIDC ---------------------------------------------------------------------------------------------


def test_oidc_fresh_run_trusts_only_the_targets(stack: Stack) -> None:
    token = setup(stack, REPO, OTHER)
    repo = stack.github.repos[REPO]
    result = stack.run({"github-token": token, "auth": "oidc", "repositories": f"{REPO}\n{OTHER}"})
    assert result.returncode == 0, result.stdout
    iam = stack.boto("iam")
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER)
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    trust = trust_of(stack)
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
    }
    other = stack.github.repos[OTHER]
    assert subjects_of(stack) == sorted(
        [
            f"repo:{REPO}:*",
            f"repo:octo-org@{repo.owner_id}/app@{repo.id}:*",
            f"repo:{OTHER}:*",
            f"repo:octo-org@{other.owner_id}/web@{other.id}:*",
        ]
    )
    attached = iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [POLICY_ARN]
    role_arn = iam.get_role(RoleName=ROLE)["Role"]["Arn"]
    for target in (REPO, OTHER):
        assert stack.github.decrypt(target, "AWS_ROLE_ARN") == role_arn
        assert stack.github.decrypt(target, "ECR_REPOSITORY_URI") == repository_uri(stack)
        assert "AWS_ACCESS_KEY_ID" not in stack.github.secret_names(target)
    assert iam.list_users()["Users"] == []  # no long-lived identity at all
    assert result.outputs["role-arn"] == role_arn
    assert "role-to-assume: ${{ secrets.AWS_ROLE_ARN }}" in result.summary
    assert "id-token: write" in result.summary
    assert_no_leak(result, token)


def test_oidc_rerun_reuses_and_repairs_trust_drift(stack: Stack) -> None:
    token = setup(stack)
    inputs = {"github-token": token, "auth": "oidc"}
    assert stack.run(inputs).returncode == 0
    wanted = subjects_of(stack)
    drifted = trust_of(stack)
    drifted["Statement"][0]["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"] = "repo:*"
    stack.boto("iam").update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(drifted))
    stack.aws.log.clear()
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    assert subjects_of(stack) == wanted
    assert "iam:UpdateAssumeRolePolicy" in stack.aws.operations()
    assert "iam:CreateOpenIDConnectProvider" not in stack.aws.operations()
    row = next(line for line in result.summary.splitlines() if line.startswith("| IAM role "))
    assert "updated" in row
    stack.aws.log.clear()
    assert stack.run(inputs).returncode == 0
    assert "iam:UpdateAssumeRolePolicy" not in stack.aws.operations()


def test_oidc_reuses_a_provider_made_elsewhere(stack: Stack) -> None:
    token = setup(stack)
    # One provider per account: made by hand or another tool, it is reused, never an error.
    # (moto lacks AddClientIDToOpenIDConnectProvider, so the audience-adding path is not run here.)
    stack.boto("iam").create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["a" * 40],
    )
    result = stack.run({"github-token": token, "auth": "oidc"})
    assert result.returncode == 0, result.stdout
    assert "iam:CreateOpenIDConnectProvider" not in stack.aws.operations()
    assert "| OIDC provider | `token.actions.githubusercontent.com` | reused" in result.summary


def test_oidc_without_repository_ids_trusts_the_name_form(stack: Stack) -> None:
    token = setup(stack)
    stack.github.fail("GET", f"^/repos/{REPO}$", status=404, times=-1, message="Not Found")
    result = stack.run({"github-token": token, "auth": "oidc"})
    assert result.returncode == 0, result.stdout
    assert subjects_of(stack) == [f"repo:{REPO}:*"]
    assert any(line.startswith("::warning") and "Immutable" in line for line in result.stdout.splitlines())


def test_oidc_subject_patterns(stack: Stack) -> None:
    token = setup(stack)
    repo = stack.github.repos[REPO]
    immutable = f"repo:octo-org@{repo.owner_id}/app@{repo.id}:environment:prod"
    subjects = f"branch:main, tag:v*, environment:prod, {immutable}"
    result = stack.run({"github-token": token, "auth": "oidc", "oidc-subjects": subjects})
    assert result.returncode == 0, result.stdout
    ids = f"octo-org@{repo.owner_id}/app@{repo.id}"
    assert subjects_of(stack) == sorted(
        {
            f"repo:{REPO}:ref:refs/heads/main",
            f"repo:{REPO}:ref:refs/tags/v*",
            f"repo:{REPO}:environment:prod",
            f"repo:{ids}:ref:refs/heads/main",
            f"repo:{ids}:ref:refs/tags/v*",
            immutable,
        }
    )


@pytest.mark.parametrize(
    "subjects",
    ["repo:octo-org/other:*", "repo:*/app:*", "*", "branch:main with space"],
)
def test_oidc_subjects_outside_the_targets_are_refused_before_any_change(stack: Stack, subjects: str) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, "auth": "oidc", "oidc-subjects": subjects})
    assert result.returncode == 1
    assert "oidc-subjects" in result.errors()[0]
    assert writes(stack) == ([], [])


def test_oidc_trust_policy_too_large_is_refused(stack: Stack) -> None:
    repos = [f"octo-org/r{i:02d}" for i in range(40)]
    token = setup(stack, *repos)
    result = stack.run({"github-token": token, "auth": "oidc", "repositories": ",".join(repos)})
    assert result.returncode == 1
    assert "2048" in result.errors()[0] and "oidc-subjects" in result.errors()[0]
    assert writes(stack) == ([], [])


def test_switch_from_keys_to_oidc_retires_keys_no_one_else_holds(stack: Stack) -> None:
    token = setup(stack, REPO, OTHER)
    # REPO and OTHER both hold the user's key; then only REPO moves to OIDC.
    assert stack.run({"github-token": token, "repositories": f"{REPO},{OTHER}"}).returncode == 0
    shared = assert_target_works(stack, OTHER)
    result = stack.run({"github-token": token, "auth": "oidc", "retire-user-keys": "true"})
    assert result.returncode == 0, result.stdout
    assert "AWS_ACCESS_KEY_ID" not in stack.github.secret_names(REPO)
    assert "AWS_SECRET_ACCESS_KEY" not in stack.github.secret_names(REPO)
    assert user_keys(stack) == [shared]  # OTHER still depends on it
    assert assert_target_works(stack, OTHER) == shared
    assert any("was kept" in line and OTHER in line for line in result.stdout.splitlines())
    # Then OTHER moves too: now no one holds the key and it goes.
    result = stack.run({"github-token": token, "auth": "oidc", "retire-user-keys": "true"}, repository=OTHER)
    assert result.returncode == 0, result.stdout
    assert user_keys(stack) == []
    assert "AWS_ACCESS_KEY_ID" not in stack.github.secret_names(OTHER)
    assert stack.github.decrypt(OTHER, "AWS_ROLE_ARN").endswith(f":role/{ROLE}")


def test_retire_user_keys_needs_oidc(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, "retire-user-keys": "true"})
    assert result.returncode == 1 and "retire-user-keys" in result.errors()[0]


# -- where secrets go -----------------------------------------------------------------------------------


def test_environment_secrets_created_environment(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, "environment": "production"})
    assert result.returncode == 0, result.stdout
    box = stack.github.box(REPO, "production")
    key_id = stack.github.decrypt_in(box, "AWS_ACCESS_KEY_ID")
    assert pair_works(stack, key_id, stack.github.decrypt_in(box, "AWS_SECRET_ACCESS_KEY"))
    assert stack.github.decrypt_in(box, "ECR_REPOSITORY_URI") == repository_uri(stack)
    assert stack.github.secret_names(REPO) == set()  # nothing at repository level
    assert user_keys(stack) == [key_id]
    # A rerun rotates the environment's key like a repository's.
    assert stack.run({"github-token": token, "environment": "production"}).returncode == 0
    new = stack.github.decrypt_in(box, "AWS_ACCESS_KEY_ID")
    assert new != key_id and user_keys(stack) == [new]


def test_environment_that_the_token_cannot_create_stops_before_aws_changes(stack: Stack) -> None:
    stack.github.add_repo(REPO)
    token = stack.github.add_token(admin=False)
    result = stack.run({"github-token": token, "environment": "production"})
    assert result.returncode == 1
    error = result.errors()[0]
    assert "production" in error and "Administration" in error
    assert writes(stack)[0] == []


def test_organization_secrets_selected_merge_and_cost_three_writes(stack: Stack) -> None:
    stack.github.add_org("octo-org")
    for repo in (REPO, OTHER, "octo-org/old"):
        stack.github.add_repo(repo)
    token = stack.github.add_token()
    org = stack.github.box(org="octo-org")
    old_id = stack.github.repos["octo-org/old"].id
    # An organization secret already shared with another repository: it must stay selected.
    from tests.stand_ins.github_api import Secret

    org.secrets["AWS_ACCESS_KEY_ID"] = Secret("x", org.key_id, "2026-01-01T00:00:00Z", "selected", [old_id])
    inputs = {
        "github-token": token,
        "organization": "octo-org",
        "visibility": "selected",
        "repositories": f"{REPO},{OTHER}",
    }
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    key_id = stack.github.decrypt_in(org, "AWS_ACCESS_KEY_ID")
    assert pair_works(stack, key_id, stack.github.decrypt_in(org, "AWS_SECRET_ACCESS_KEY"))
    ids = {stack.github.repos[r].id for r in (REPO, OTHER)}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ECR_REPOSITORY_URI"):
        assert org.secrets[name].visibility == "selected"
        assert set(org.secrets[name].selected) >= ids
    assert old_id in org.secrets["AWS_ACCESS_KEY_ID"].selected  # never dropped silently
    puts = [w for w in writes(stack)[1] if w.startswith("PUT")]
    assert len(puts) == 3, puts
    assert stack.github.secret_names(REPO) == set()


def test_organization_secrets_visible_to_all(stack: Stack) -> None:
    stack.github.add_org("octo-org")
    stack.github.add_repo(REPO)
    token = stack.github.add_token()
    inputs = {"github-token": token, "organization": "octo-org", "visibility": "all"}
    assert stack.run(inputs).returncode == 0
    first = stack.github.decrypt_in(stack.github.box(org="octo-org"), "AWS_ACCESS_KEY_ID")
    assert stack.github.box(org="octo-org").secrets["AWS_SECRET_ACCESS_KEY"].visibility == "all"
    assert stack.run(inputs).returncode == 0  # rotation at organization level
    second = stack.github.decrypt_in(stack.github.box(org="octo-org"), "AWS_ACCESS_KEY_ID")
    assert second != first and user_keys(stack) == [second]


def test_selected_repositories_must_belong_to_the_organization(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run(
        {"github-token": token, "organization": "other-org", "visibility": "selected", "repositories": REPO}
    )
    assert result.returncode == 1 and "'repositories'" in result.errors()[0]


def test_custom_secret_names_and_variables(stack: Stack) -> None:
    token = setup(stack)
    inputs = {
        "github-token": token,
        "secret-name-access-key-id": "ECR_PUSH_KEY_ID",
        "secret-name-secret-access-key": "ECR_PUSH_SECRET",
        "secret-name-repository-uri": "IMAGE_REPO",
        "write-variables": "true",
    }
    result = stack.run(inputs)
    assert result.returncode == 0, result.stdout
    assert stack.github.secret_names(REPO) == {"ECR_PUSH_KEY_ID", "ECR_PUSH_SECRET", "IMAGE_REPO"}
    key_id = stack.github.decrypt(REPO, "ECR_PUSH_KEY_ID")
    assert pair_works(stack, key_id, stack.github.decrypt(REPO, "ECR_PUSH_SECRET"))
    variables = stack.github.repos[REPO].variables
    assert {n: v.value for n, v in variables.items()} == {
        "IMAGE_REPO": repository_uri(stack),
        "AWS_REGION": "us-east-1",
    }
    stack.github.reset_log()
    assert stack.run(inputs).returncode == 0  # variables updated in place
    assert [r.method for r in stack.github.log if "variables" in r.path] == ["PATCH", "PATCH"]
    assert user_keys(stack) == [stack.github.decrypt(REPO, "ECR_PUSH_KEY_ID")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("secret-name-access-key-id", "GITHUB_KEY"),
        ("secret-name-access-key-id", "1KEY"),
        ("secret-name-secret-access-key", "has-dash"),
        ("secret-name-repository-uri", "AWS_ACCESS_KEY_ID"),
    ],
)
def test_bad_secret_names_are_refused(stack: Stack, name: str, value: str) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, name: value})
    assert result.returncode == 1 and "secret-name-" in result.errors()[0]
    assert writes(stack) == ([], [])


# -- ECR settings ---------------------------------------------------------------------------------------


def test_ecr_settings_on_create_and_reconciled_on_reuse(stack: Stack) -> None:
    token = setup(stack)
    inputs = {
        "github-token": token,
        "scan-on-push": "false",
        "tag-mutability": "IMMUTABLE",
        "keep-images": "20",
        "expire-untagged-days": "7",
        "tags": "team=web, cost-center=42",
    }
    assert stack.run(inputs).returncode == 0
    ecr = stack.boto("ecr")
    repo = ecr.describe_repositories()["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is False
    rules = json.loads(ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"])["lifecyclePolicyText"])
    assert [r["selection"]["tagStatus"] for r in rules["rules"]] == ["untagged", "any"]
    assert rules["rules"][1]["selection"]["countNumber"] == 20
    expected = [{"Key": "cost-center", "Value": "42"}, {"Key": "team", "Value": "web"}]
    assert sorted(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"], key=str) == expected
    iam = stack.boto("iam")
    assert sorted(iam.list_policy_tags(PolicyArn=POLICY_ARN)["Tags"], key=str) == expected
    user_tags = [
        t for t in iam.list_user_tags(UserName=USER)["Tags"] if not t["Key"].startswith("ecr-bootstrap:")
    ]
    assert sorted(user_tags, key=str) == expected

    # Drift on reuse: reconciled where AWS allows it, a warning for encryption.
    ecr.put_image_tag_mutability(repositoryName=repo["repositoryName"], imageTagMutability="MUTABLE")
    stack.aws.log.clear()
    result = stack.run({**inputs, "encryption": "KMS"})
    assert result.returncode == 0, result.stdout
    assert ecr.describe_repositories()["repositories"][0]["imageTagMutability"] == "IMMUTABLE"
    assert "ecr:PutLifecyclePolicy" not in stack.aws.operations()  # already that policy
    assert any(line.startswith("::warning") and "encryption" in line for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tag-mutability", "SOMETIMES"),
        ("keep-images", "0"),
        ("expire-untagged-days", "x"),
        ("tags", "novalue"),
        ("tags", "aws:reserved=1"),
        ("kms-key", "alias/k"),  # without encryption: KMS
        ("scan-on-push", "yes"),
        ("auth", "password"),
        ("visibility", "public"),
        ("dry-run", "maybe"),
    ],
)
def test_bad_option_values_name_their_input(stack: Stack, name: str, value: str) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, name: value})
    assert result.returncode == 1
    assert f"'{name}'" in result.errors()[0]
    assert writes(stack) == ([], [])


# -- plan mode ------------------------------------------------------------------------------------------


def test_dry_run_on_a_fresh_account_changes_nothing(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run(
        {"github-token": token, "dry-run": "true", "environment": "prod", "write-variables": "true"}
    )
    assert result.returncode == 0, result.stdout
    assert writes(stack) == ([], [])
    assert stack.github.repos[REPO].environments == {}
    for expected in (
        "| ECR repository | `fcj-workshop-app` | would create",
        "| IAM policy | `fcj-ecr-ci-cd-policy` | would create",
        "| IAM user | `fcj-ecr-ci-cd-user` | would create",
        "| GitHub environment | `octo-org/app (environment prod)` | would create",
        "| Access key | `(new key)` | would create",
    ):
        assert expected in result.summary, result.summary
    assert "AWS_SECRET_ACCESS_KEY" in result.summary and "AWS_REGION" in result.summary
    assert "Nothing was changed" in result.summary
    assert any(line.startswith("Plan: IAM policy") for line in result.stdout.splitlines())


def test_dry_run_after_drift_shows_the_difference_and_the_keys(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old = user_keys(stack)[0]
    widen_policy(stack, action="ecr:*")
    stack.aws.log.clear()
    stack.github.reset_log()
    result = stack.run({"github-token": token, "dry-run": "true", "tag-mutability": "IMMUTABLE"})
    assert result.returncode == 0, result.stdout
    assert writes(stack) == ([], [])
    row = next(line for line in result.summary.splitlines() if line.startswith("| IAM policy "))
    assert "would update" in row and "would remove ecr:*" in row
    assert f"| Access key | `{old}` | would delete" in result.summary
    repo_row = next(line for line in result.summary.splitlines() if line.startswith("| ECR repository "))
    assert "would update" in repo_row and "IMMUTABLE" in repo_row
    assert user_keys(stack) == [old]


def test_dry_run_in_oidc_mode(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, "dry-run": "true", "auth": "oidc"})
    assert result.returncode == 0, result.stdout
    assert writes(stack) == ([], [])
    assert "| OIDC provider | `token.actions.githubusercontent.com` | would create" in result.summary
    assert "| IAM role | `fcj-ecr-ci-cd-role` | would create" in result.summary
    assert "AWS_ROLE_ARN" in result.summary


# -- permissions per options ----------------------------------------------------------------------------


def printed_policy(*flags: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), "permissions", *flags],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    actions: set[str] = set()
    for statement in json.loads(out)["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


OPTION_SETS = {
    "oidc-everything": {
        "auth": "oidc",
        "retire-user-keys": "true",
        "keep-images": "5",
        "expire-untagged-days": "3",
        "tags": "team=web",
        "write-variables": "true",
    },
    "keys-everything": {"keep-images": "5", "tags": "team=web", "tag-mutability": "IMMUTABLE"},
}


@pytest.mark.parametrize("options", list(OPTION_SETS), ids=list(OPTION_SETS))
def test_printed_policy_covers_every_call_of_those_options(stack: Stack, options: str) -> None:
    token = setup(stack)
    values = OPTION_SETS[options]
    flags = [f"--{k}={v}" for k, v in values.items()]
    allowed = printed_policy(*flags)
    # First a run with keys (so that a switch has keys to retire), then twice with the options (create,
    # then reuse with drift), then a dry run.
    assert stack.run({"github-token": token}).returncode == 0
    stack.aws.log.clear()
    assert stack.run({"github-token": token, **values}).returncode == 0
    widen_policy(stack, action="*")
    stack.boto("ecr").put_image_scanning_configuration(
        repositoryName="fcj-workshop-app", imageScanningConfiguration={"scanOnPush": False}
    )
    assert stack.run({"github-token": token, **values}).returncode == 0, "rerun"
    # The action's own calls; the proof (ecr:GetAuthorizationToken) is signed by the new key.
    recorded = {c.operation for c in stack.aws.log if c.access_key == "testing"}
    assert recorded <= allowed, recorded - allowed
    stack.aws.log.clear()
    assert stack.run({"github-token": token, **values, "dry-run": "true"}).returncode == 0
    dry = set(stack.aws.operations())
    dry_allowed = printed_policy(*flags, "--dry-run=true")
    assert dry <= dry_allowed, dry - dry_allowed
    assert not any(a.split(":")[1].startswith(MUTATING_AWS) for a in dry_allowed), dry_allowed


def test_switch_to_oidc_clears_the_key_secrets_even_when_the_user_has_no_key_left(stack: Stack) -> None:
    """The key was deleted by hand: the switch still removes the dead pair from the target and its entry."""
    token = setup(stack, REPO)
    assert stack.run({"github-token": token}).returncode == 0
    iam = stack.boto("iam")
    iam.delete_access_key(UserName=USER, AccessKeyId=assert_target_works(stack, REPO))
    result = stack.run({"github-token": token, "auth": "oidc", "retire-user-keys": "true"})
    assert result.returncode == 0, result.stdout
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & stack.github.secret_names(REPO) == set()
    tags = iam.list_user_tags(UserName=USER)["Tags"]
    assert not any(t["Key"].startswith("ecr-bootstrap:holder") for t in tags), tags


# -- rotate-after ----------------------------------------------------------------------------------------

READS = ("Get", "List", "Describe")


def aws_writes(stack: Stack) -> list[str]:
    return [op for op in stack.aws.operations() if not op.split(":", 1)[1].startswith(READS)]


def test_a_scheduled_run_inside_rotate_after_writes_nothing(stack: Stack) -> None:
    token = setup(stack)
    first = stack.run({"github-token": token})
    assert first.returncode == 0, first.stdout
    key = assert_target_works(stack, REPO)
    stack.aws.log.clear()
    stack.github.reset_log()
    result = stack.run({"github-token": token, "rotate-after": "30d"})
    assert result.returncode == 0, result.stdout
    assert aws_writes(stack) == [], aws_writes(stack)
    assert [r.method for r in stack.github.log if r.method != "GET"] == []
    assert user_keys(stack) == [key] and assert_target_works(stack, REPO) == key
    assert any(line.startswith("::notice title=Key kept::") for line in result.stdout.splitlines())
    assert result.outputs["access-key-id"] == key
    assert result.outputs["key-created"] == first.outputs["key-created"]
    assert f"| Access key | `{key}` | kept |" in result.summary and "rotates after" in result.summary
    assert f"| `{key}` | {first.outputs['key-created']} |" in result.summary  # the key table: age, holder
    print(f"no-op scheduled run: {len(stack.aws.log)} AWS + {len(stack.github.log)} GitHub requests")


def test_a_run_after_rotate_after_rotates(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    old = assert_target_works(stack, REPO)
    stack.advance(3.2)
    result = stack.run({"github-token": token, "rotate-after": "3s"})
    assert result.returncode == 0, result.stdout
    new = assert_target_works(stack, REPO)
    assert new != old and user_keys(stack) == [new]
    assert result.outputs["access-key-id"] == new and result.outputs["key-created"]


def test_a_new_target_inside_rotate_after_gets_a_rotation(stack: Stack) -> None:
    token = setup(stack, REPO, OTHER)
    assert stack.run({"github-token": token}).returncode == 0
    old = assert_target_works(stack, REPO)
    both = {"github-token": token, "rotate-after": "30d", "repositories": f"{REPO},{OTHER}"}
    result = stack.run(both)
    assert result.returncode == 0, result.stdout
    new = assert_target_works(stack, OTHER)
    assert new != old and assert_target_works(stack, REPO) == new and user_keys(stack) == [new]
    # Both now hold the current key: the next run inside the duration writes nothing.
    stack.aws.log.clear()
    stack.github.reset_log()
    assert stack.run(both).returncode == 0
    assert aws_writes(stack) == [] and all(r.method == "GET" for r in stack.github.log)


def test_rotate_after_still_repairs_a_drifted_policy(stack: Stack) -> None:
    token = setup(stack)
    assert stack.run({"github-token": token}).returncode == 0
    key = assert_target_works(stack, REPO)
    widen_policy(stack, versions=1)
    stack.github.reset_log()
    result = stack.run({"github-token": token, "rotate-after": "30d"})
    assert result.returncode == 0, result.stdout
    assert "| IAM policy | `fcj-ecr-ci-cd-policy` | updated |" in result.summary
    assert user_keys(stack) == [key] and all(r.method == "GET" for r in stack.github.log)


def test_rotate_after_must_be_a_duration(stack: Stack) -> None:
    token = setup(stack)
    result = stack.run({"github-token": token, "rotate-after": "30 days"})
    assert result.returncode == 1 and "'rotate-after'" in result.errors()[0] and "30d" in result.errors()[0]
    assert stack.aws.operations() == []
