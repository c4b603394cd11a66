#!/usr/bin/env bash
# A Strands tool loop, offline: the agent's default BedrockModel talks to agentcore-local's Bedrock,
# whose scripted model asks for the word_count tool and then answers with the tool's result.
# Needs: agentcore-local started with this folder's model script
#   cargo run --release -- serve --model-provider script:examples/strands-tool-loop/model-script.json
# the AWS CLI, python3 with pip, and the PYTHON_3_11 base image (agentcore-local images build PYTHON_3_11).
set -euo pipefail
cd "$(dirname "$0")"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4599}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

# 1. The code zip: Strands and the AgentCore SDK installed flat for the runtime's Python (CPython
#    3.11 on x86_64 Linux, whatever the host runs), plus the agent as main.py.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
python3 -m pip install --quiet --disable-pip-version-check --target "$build/pkg" \
  --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  strands-agents==1.62.0 bedrock-agentcore==1.25.0
cp agent.py "$build/pkg/main.py"
(cd "$build/pkg" && python3 -m zipfile -c "$build/agent.zip" .)

# 2. Upload it and create the runtime from it.
aws s3 mb s3://strands-example 2>/dev/null || true
aws s3 cp --quiet "$build/agent.zip" s3://strands-example/agent.zip
arn=$(aws bedrock-agentcore-control create-agent-runtime --agent-runtime-name "strands_example_$RANDOM" \
  --agent-runtime-artifact '{"codeConfiguration":{"code":{"s3":{"bucket":"strands-example","prefix":"agent.zip"}},"runtime":"PYTHON_3_11","entryPoint":["main.py"]}}' \
  --role-arn arn:aws:iam::123456789012:role/AgentRole --network-configuration networkMode=PUBLIC \
  --query agentRuntimeArn --output text)
id=${arn##*/}
until [ "$(aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id "$id" --query status --output text)" != CREATING ]; do sleep 1; done
aws bedrock-agentcore-control get-agent-runtime --agent-runtime-id "$id" --query '[status,failureReason]' --output text

# 3. Ask. Strands calls the model (ConverseStream), runs word_count, calls the model again.
aws bedrock-agentcore invoke-agent-runtime --agent-runtime-arn "$arn" \
  --cli-read-timeout 300 --runtime-session-id "strands-example-$(python3 -c 'import uuid; print(uuid.uuid4())')" \
  --payload '{"prompt":"How many words are in the sentence about the fox?"}' "$build/out.json" >/dev/null
cat "$build/out.json"; echo

# 4. The two model calls, as the emulator recorded them.
curl -s "$AWS_ENDPOINT_URL/_agentcore-local/model-calls" | python3 -c '
import json, sys
for c in json.load(sys.stdin)["modelCalls"]:
    print(c["operation"], c["model_id"], c["input_tokens"], "in", c["output_tokens"], "out")'
aws bedrock-agentcore-control delete-agent-runtime --agent-runtime-id "$id" >/dev/null
