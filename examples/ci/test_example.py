"""Example integration tests against agentcore-local, using the `agentcore_local` fixture of
conftest.py: the unmodified boto3 clients, as your code creates them."""
import json
import uuid

import boto3


def test_created_runtime_is_listed(agentcore_local):
    control = boto3.client("bedrock-agentcore-control")
    created = control.create_agent_runtime(
        agentRuntimeName=f"ci_example_{uuid.uuid4().hex[:8]}",
        agentRuntimeArtifact={"containerConfiguration": {
            "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-agent:latest"}},
        roleArn="arn:aws:iam::123456789012:role/AgentRole",
        networkConfiguration={"networkMode": "PUBLIC"},
    )
    listed = control.list_agent_runtimes()["agentRuntimes"]
    assert created["agentRuntimeId"] in [r["agentRuntimeId"] for r in listed]


def test_s3_object_round_trip(agentcore_local):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ci-example")
    s3.put_object(Bucket="ci-example", Key="config.json", Body=json.dumps({"model": "echo"}))
    body = s3.get_object(Bucket="ci-example", Key="config.json")["Body"].read()
    assert json.loads(body) == {"model": "echo"}


def test_model_answers_offline(agentcore_local):
    bedrock = boto3.client("bedrock-runtime")
    answer = bedrock.converse(modelId="us.anthropic.claude-sonnet-4-20250514-v1:0",
                              messages=[{"role": "user", "content": [{"text": "ping"}]}])
    assert answer["output"]["message"]["content"][0]["text"] == "ping"  # the default echo model
