"""Helpers of the protocol suites (test_protocols_*.py): the Python protocol agents' image
(fixtures/py-agents, built by fixtures/py-agents/build.sh), runtimes on it, SigV4 signing for
httpx/httpx2 clients (what a non-SDK client of AgentCore does), and sandbox lookups."""
import json
import uuid
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCOUNT, REGION, ROLE_ARN, docker, inspect_container, session_containers, wait_for_status

PY_AGENTS_IMAGE = "agentcore-local-py-agents:latest"
PY_AGENTS_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{PY_AGENTS_IMAGE}"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
AWS_HOST = f"bedrock-agentcore.{REGION}.amazonaws.com"
PROTOCOL_PORTS = {"HTTP": 8080, "MCP": 8000, "A2A": 9000, "AGUI": 8080}


@pytest.fixture(scope="session", autouse=True)
def py_agents_image():
    assert docker("image", "inspect", PY_AGENTS_IMAGE, check=False).returncode == 0, (
        f"{PY_AGENTS_IMAGE} is missing; build it with fixtures/py-agents/build.sh (scripts/test does)")


def py_runtime(control, name, agent, protocol=None, env=None, **kw):
    """A READY runtime on the protocol agents' image running agent `agent` (http|mcp|a2a|agui)."""
    args = dict(
        agentRuntimeName=name,
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": PY_AGENTS_URI}},
        roleArn=ROLE_ARN,
        networkConfiguration={"networkMode": "PUBLIC"},
        environmentVariables={"AGENT": agent, **(env or {})},
    )
    if protocol:
        args["protocolConfiguration"] = protocol if isinstance(protocol, dict) else {"serverProtocol": protocol}
    args.update(kw)
    created = control.create_agent_runtime(**args)
    rt = wait_for_status(control, created["agentRuntimeId"])
    assert rt["status"] == "READY", rt
    return rt


def encoded_arn(arn):
    return quote(arn, safe="")


def invocation_url(emulator_url, arn, qualifier="DEFAULT"):
    """The URL MCP/A2A clients are given: `<endpoint>/runtimes/<url-encoded ARN>/invocations`."""
    url = f"{emulator_url}/runtimes/{encoded_arn(arn)}/invocations"
    return f"{url}?qualifier={qualifier}" if qualifier else url


# Headers a signing client covers besides host and x-amz-date.
def _signed(name):
    name = name.lower()
    return name in ("content-type", "accept") or name.startswith(("mcp-", "x-amzn-bedrock-agentcore-", "a2a-"))


def sigv4_headers(method, url, headers, body=b"", access_key="test", secret="test", region=REGION,
                  service="bedrock-agentcore"):
    """Authorization and X-Amz-Date for a request, signed with botocore as any AWS client does."""
    host = headers.get("host") or headers.get("Host") or urlsplit(url).netloc
    to_sign = {k: v for k, v in headers.items() if _signed(k)}
    to_sign["host"] = host
    request = AWSRequest(method=method, url=url, data=body or b"", headers=to_sign)
    SigV4Auth(Credentials(access_key, secret), service, region).add_auth(request)
    return {"Authorization": request.headers["Authorization"], "X-Amz-Date": request.headers["X-Amz-Date"]}


def sigv4_auth(httpx_module, **creds):
    """An `httpx.Auth` (or `httpx2.Auth`: mcp 2.x uses the httpx2 fork) that signs every request."""

    class SigV4(httpx_module.Auth):
        requires_request_body = True

        def auth_flow(self, request):
            signed = sigv4_headers(request.method, str(request.url), dict(request.headers), request.content, **creds)
            request.headers.update(signed)
            yield request

    return SigV4()


def runtime_containers(runtime_id):
    out = docker("ps", "-q", "--no-trunc", "--filter", f"label=agentcore-local.runtime-id={runtime_id}").stdout
    return out.split()


def container_hostname(cid):
    return inspect_container(cid)["Config"]["Hostname"]


def session_hostname(session_id):
    (cid,) = session_containers(session_id, running_only=True)
    return container_hostname(cid)


def agent_address(cid, port):
    """Where the sandbox's `port` is reached from this host without the emulator, as the emulator
    reaches it: its port published on 127.0.0.1, or where Docker published none (a routable
    bridge), the container's own address. A "host:port" string."""
    settings = inspect_container(cid)["NetworkSettings"]
    bindings = [b for b in (settings["Ports"].get(f"{port}/tcp") or []) if b["HostIp"] == "127.0.0.1"]
    if bindings:
        return f"127.0.0.1:{bindings[0]['HostPort']}"
    (address,) = [n["IPAddress"] for n in settings["Networks"].values() if n["IPAddress"]]
    return f"{address}:{port}"


def sse_events(body):
    """The `data:` payloads of an SSE body, JSON-decoded, in order."""
    text = body.decode() if isinstance(body, bytes) else body
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


AGUI_EVENT_TYPES = [
    "RUN_STARTED", "STEP_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT",
    "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",
    "STATE_SNAPSHOT", "CUSTOM", "STEP_FINISHED", "RUN_FINISHED",
]


def agui_run_input(text, delay=0):
    """A RunAgentInput for the AG-UI agent (forwardedProps.delay pauses before its last event)."""
    return {
        "threadId": f"thread-{uuid.uuid4().hex[:8]}",
        "runId": f"run-{uuid.uuid4().hex[:8]}",
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": text}],
        "tools": [],
        "context": [],
        "forwardedProps": {"delay": delay},
    }
