#!/usr/bin/env bash
# Direct code deployment against agentcore-local, exactly as against AWS:
# zip the code with its dependencies, upload it to S3, create a runtime from it, invoke it.
# Needs: agentcore-local running (cargo run --release -- serve), the AWS CLI, python3 with pip, and
# the PYTHON_3_11 base image (agentcore-local images build PYTHON_3_11).
set -euo pipefail
cd "$(dirname "$0")"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4599}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
python3 -m pip install --quiet --target "$build/pkg" bedrock-agentcore   # dependencies, flat, like the starter toolkit
cp agent.py "$build/pkg/main.py"
(cd "$build/pkg" && python3 -m zipfile -c "$build/agent.zip" .)

aws s3 mb s3://example-agents 2>/dev/null || true
aws s3 cp "$build/agent.zip" s3://example-agents/agent.zip

name="zip_example_$RANDOM"
arn=$(aws bedrock-agentcore-control create-agent-runtime --agent-runtime-name "$name" \
  --agent-runtime-artifact '{"codeConfiguration":{"code":{"s3":{"bucket":"example-agents","prefix":"agent.zip"}},"runtime":"PYTHON_3_11","entryPoint":["main.py"]}}' \
  --role-arn arn:aws:iam::123456789012:role/AgentRole --network-configuration networkMode=PUBLIC \
  --query agentRuntimeArn --output text)
id=${arn##*/}
until [ "$(aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id "$id" --query status --output text)" != CREATING ]; do sleep 1; done
aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id "$id" --query '[status,failureReason]' --output text

aws bedrock-agentcore invoke-agent-runtime --agent-runtime-arn "$arn" \
  --runtime-session-id "example-session-$(python3 -c 'import uuid; print(uuid.uuid4())')" \
  --payload '{"prompt":"hello from the zip flow"}' "$build/out.json"
cat "$build/out.json"; echo
aws bedrock-agentcore-control delete-agent-runtime --agent-runtime-id "$id" >/dev/null
