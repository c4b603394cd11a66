"""protocolConfiguration: the service's default ports and paths per protocol, the custom `port` and
`path` (8000-12000, not 8443), and AWS-shaped errors for bad values."""
import json
import urllib.request

from urllib.parse import urlsplit

import botocore.exceptions
import httpx
import pytest

from conftest import ROLE_ARN, boto_client, inspect_container, new_session_id, session_containers
from protocol_helpers import (  # noqa: F401 (py_agents_image: autouse fixture)
    PY_AGENTS_URI,
    agui_run_input,
    sigv4_headers,
    py_agents_image,
    py_runtime,
)


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def agent_port(emu, session_id, cid):
    """The port the emulator reaches the session's agent on (its session report), checked to be
    the container's: its own address, or a port Docker published for it on 127.0.0.1."""
    with urllib.request.urlopen(f"{emu.url}/_agentcore-local/sessions", timeout=10) as resp:
        (report,) = [s for s in json.load(resp)["sessions"] if s["session_id"] == session_id]
    host, port = report["agent_address"].rsplit(":", 1)
    settings = inspect_container(cid)["NetworkSettings"]
    if host == "127.0.0.1":
        (container_port,) = [p for p, bs in settings["Ports"].items() if any(b["HostPort"] == port for b in bs or [])]
        return container_port
    assert host in [n["IPAddress"] for n in settings["Networks"].values()], (host, settings["Networks"])
    return f"{port}/tcp"


def raw_create(emu, body):
    """CreateAgentRuntime as a signed raw request: the emulator's own validation, not botocore's
    (which refuses unknown members and out-of-range values before sending)."""
    url = f"{emu.url}/runtimes/"
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "host": urlsplit(emu.url).netloc}
    headers.update(sigv4_headers("PUT", url, headers, content, service="bedrock-agentcore"))
    del headers["host"]
    return httpx.put(url, content=content, headers=headers, timeout=30)


def create_args(name, protocol):
    return dict(
        agentRuntimeName=name,
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": PY_AGENTS_URI}},
        roleArn=ROLE_ARN,
        networkConfiguration={"networkMode": "PUBLIC"},
        protocolConfiguration=protocol,
    )


@pytest.mark.parametrize("protocol, port", [("HTTP", 8080), ("MCP", 8000), ("A2A", 9000), ("AGUI", 8080)])
def test_default_agent_port_per_protocol(stack, protocol, port):
    """The sandbox exposes (and the emulator talks to) the service's port for the protocol."""
    emu, control, data = stack
    agent = {"HTTP": "http", "MCP": "mcp", "A2A": "a2a", "AGUI": "agui"}[protocol]
    rt = py_runtime(control, f"default_{agent}", agent, protocol=protocol)
    assert rt["protocolConfiguration"] == {"serverProtocol": protocol}
    sid = new_session_id(agent)
    if protocol == "A2A":
        data.get_agent_card(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid)
    elif protocol == "MCP":
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                  accept="application/json, text/event-stream", contentType="application/json",
                                  payload=json.dumps(body))["response"].read()
    elif protocol == "AGUI":
        data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                  payload=json.dumps(agui_run_input("hi")))["response"].read()
    else:
        data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                  payload=json.dumps({"action": "whoami"}))["response"].read()
    (cid,) = session_containers(sid, running_only=True)
    assert agent_port(emu, sid, cid) == f"{port}/tcp"


def test_custom_port_for_an_http_agent(stack):
    emu, control, data = stack
    protocol = {"serverProtocol": "HTTP", "port": 9200, "path": "/invocations"}
    rt = py_runtime(control, "http_custom_port", "http", protocol=protocol, env={"HTTP_PORT": "9200"})
    assert rt["protocolConfiguration"] == protocol
    sid = new_session_id("port")
    resp = data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                     payload=json.dumps({"action": "whoami"}))
    assert json.loads(resp["response"].read())["session"] == sid
    (cid,) = session_containers(sid, running_only=True)
    assert agent_port(emu, sid, cid) == "9200/tcp"


@pytest.mark.parametrize("protocol", [
    {"serverProtocol": "HTTP", "port": 8443},
    {"serverProtocol": "MCP", "port": 7999},
    {"serverProtocol": "A2A", "port": 12001},
    {"serverProtocol": "HTTP", "path": "invocations"},
    {"serverProtocol": "GRPC"},
    {"port": 9000},
    {"serverProtocol": "HTTP", "port": "nine thousand"},
])
def test_bad_protocol_configuration_is_a_validation_error(stack, protocol):
    emu, control, _ = stack
    r = raw_create(emu, create_args("bad_protocol", protocol))
    assert r.status_code == 400, r.text
    assert r.headers["x-amzn-errortype"].startswith("ValidationException"), r.headers
    assert json.loads(r.content)["message"]
    assert control.list_agent_runtimes()["agentRuntimes"] == []


def test_unknown_protocol_field_is_refused_or_ignored(stack):
    """An unknown member of protocolConfiguration is either refused (ValidationException) or
    ignored, as the emulator's validator documents; it never becomes part of the runtime."""
    emu, control, _ = stack
    r = raw_create(emu, create_args("unknown_field", {"serverProtocol": "MCP", "transport": "stdio"}))
    if r.status_code == 400:
        assert r.headers["x-amzn-errortype"].startswith("ValidationException")
        return
    assert r.status_code == 202, r.text
    # Raw GetAgentRuntime: botocore would drop an unmodelled member from the output itself.
    url = f"{emu.url}/runtimes/{r.json()['agentRuntimeId']}/"
    headers = {"host": urlsplit(emu.url).netloc}
    headers.update(sigv4_headers("GET", url, headers))
    del headers["host"]
    got = httpx.get(url, headers=headers, timeout=30).json()
    assert got["protocolConfiguration"] == {"serverProtocol": "MCP"}, "an ignored member must not be stored or echoed"


def test_valid_raw_request_is_accepted(stack):
    """The raw request of the test above, with a valid protocolConfiguration, creates a runtime
    (so the 400s there are about the configuration, not the request)."""
    emu, control, _ = stack
    r = raw_create(emu, create_args("good_protocol", {"serverProtocol": "MCP", "port": 9100, "path": "/x"}))
    assert r.status_code == 202, r.text
    got = control.get_agent_runtime(agentRuntimeId=r.json()["agentRuntimeId"])
    assert got["protocolConfiguration"] == {"serverProtocol": "MCP", "port": 9100, "path": "/x"}


def test_update_to_the_reserved_port_is_refused_and_keeps_the_version(stack):
    emu, control, _ = stack
    rt = py_runtime(control, "upd_port", "http")
    args = create_args("upd_port", {"serverProtocol": "HTTP", "port": 8443})
    del args["agentRuntimeName"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        control.update_agent_runtime(agentRuntimeId=rt["agentRuntimeId"], **args)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert control.get_agent_runtime(agentRuntimeId=rt["agentRuntimeId"])["agentRuntimeVersion"] == "1"
