#!/usr/bin/env bash
# Container deployment against agentcore-local: build an image locally, reference it by an ECR URI,
# create a runtime, invoke it. The emulator finds 123456789012.dkr.ecr.us-east-1.amazonaws.com/X:T
# locally as X:T. Needs: agentcore-local running, Docker, the AWS CLI, python3 with pip, and the
# PYTHON_3_11 base image (agentcore-local images build PYTHON_3_11).
set -euo pipefail
cd "$(dirname "$0")"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4599}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
python3 -m pip install --quiet --target "$ctx/pkg" bedrock-agentcore
cp agent.py Dockerfile "$ctx/"
docker build --quiet -t example-agent:latest "$ctx" >/dev/null

name="container_example_$RANDOM"
arn=$(aws bedrock-agentcore-control create-agent-runtime --agent-runtime-name "$name" \
  --agent-runtime-artifact '{"containerConfiguration":{"containerUri":"123456789012.dkr.ecr.us-east-1.amazonaws.com/example-agent:latest"}}' \
  --role-arn arn:aws:iam::123456789012:role/AgentRole --network-configuration networkMode=PUBLIC \
  --query agentRuntimeArn --output text)
id=${arn##*/}
until [ "$(aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id "$id" --query status --output text)" != CREATING ]; do sleep 1; done
aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id "$id" --query '[status,failureReason]' --output text

aws bedrock-agentcore invoke-agent-runtime --agent-runtime-arn "$arn" \
  --runtime-session-id "example-session-$(python3 -c 'import uuid; print(uuid.uuid4())')" \
  --payload '{"prompt":"hello from the container flow"}' "$ctx/out.json"
cat "$ctx/out.json"; echo
aws bedrock-agentcore-control delete-agent-runtime --agent-runtime-id "$id" >/dev/null
