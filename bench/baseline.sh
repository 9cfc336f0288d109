#!/usr/bin/env bash
# The baseline: the same job as a script of aws CLI and gh calls, the way a user would write it by hand
# from the seed procedure (create-or-reuse each resource, a new key, three secrets). It has none of the
# action's safety (no record of which repository holds which key, no proof that the key works, no
# rollback, no retirement of the old key), so it is a lower bound on what that work costs with the CLIs.
# Reads the same INPUT_* variables the action does; bench/bench.py runs it against the same stand-ins.
set -euo pipefail
input() { printenv "INPUT_$1" || true; }
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-${AWS_REGION:-}}  # aws CLI v1 reads only this one
repo=$(input ECR-REPOSITORY); policy=$(input IAM-POLICY); user=$(input IAM-USER)
target=$(input REPOSITORIES); target=${target%%,*}

if ! out=$(aws ecr describe-repositories --repository-names "$repo" \
      --query 'repositories[0].[repositoryUri,repositoryArn]' --output text 2>/dev/null); then
  out=$(aws ecr create-repository --repository-name "$repo" --image-scanning-configuration scanOnPush=true \
      --query 'repository.[repositoryUri,repositoryArn]' --output text)
fi
read -r uri arn <<<"$out"
account=$(aws sts get-caller-identity --query Account --output text)
policy_arn="arn:aws:iam::$account:policy/$policy"
document=$(cat <<JSON
{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["ecr:CompleteLayerUpload","ecr:InitiateLayerUpload","ecr:PutImage",
  "ecr:UploadLayerPart","ecr:BatchCheckLayerAvailability","ecr:BatchGetImage","ecr:DescribeImages",
  "ecr:GetDownloadUrlForLayer"],"Resource":"$arn"},
 {"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}
JSON
)
aws iam get-policy --policy-arn "$policy_arn" >/dev/null 2>&1 \
  || aws iam create-policy --policy-name "$policy" --policy-document "$document" >/dev/null
aws iam get-user --user-name "$user" >/dev/null 2>&1 || aws iam create-user --user-name "$user" >/dev/null
aws iam attach-user-policy --user-name "$user" --policy-arn "$policy_arn"
read -r key_id secret < <(aws iam create-access-key --user-name "$user" \
  --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
echo "::add-mask::$secret"
gh secret set ECR_REPOSITORY_URI --repo "$target" --body "$uri"
gh secret set AWS_ACCESS_KEY_ID --repo "$target" --body "$key_id"
printf '%s' "$secret" | gh secret set AWS_SECRET_ACCESS_KEY --repo "$target"
