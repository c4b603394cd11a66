"""MCP runtimes: the real `mcp` client (streamable HTTP, SigV4-signed httpx2) against an MCP server
deployed as a runtime, through the emulator's invocation URL, one sandbox per client session."""
import asyncio
import json

import botocore.exceptions
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import boto_client, new_session_id, session_containers
from protocol_helpers import (  # noqa: F401 (py_agents_image: autouse fixture)
    container_hostname,
    invocation_url,
    py_agents_image,
    py_runtime,
    runtime_containers,
    sigv4_auth,
    sse_events,
)

TOOLS_LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def mcp_client(url, mode="legacy", headers=None):
    """The mcp SDK's client over streamable HTTP, every request SigV4-signed."""
    http = httpx2.AsyncClient(auth=sigv4_auth(httpx2), headers=headers or {}, timeout=httpx2.Timeout(60, read=120))
    return Client(streamable_http_client(url, http_client=http), mode=mode), http


async def whoami(client):
    result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    return json.loads(result.content[0].text)


async def one_client_session(url, calls=2, mode="legacy", headers=None):
    """initialize → tools/list → tools/call (add, then whoami `calls` times); returns what it saw."""
    client, http = mcp_client(url, mode=mode, headers=headers)
    async with http, client:
        info = client.server_info
        tools = await client.list_tools()
        added = await client.call_tool("add", {"a": 2, "b": 40})
        seen = [await whoami(client) for _ in range(calls)]
        version = client.protocol_version
    return {"server": info.name if info else None, "tools": sorted(t.name for t in tools.tools), "add": added,
            "whoami": seen, "version": version}


def test_mcp_client_lists_and_calls_tools_each_client_session_in_its_own_sandbox(stack):
    emu, control, _ = stack
    rt = py_runtime(control, "mcp_agent", "mcp", protocol="MCP")
    url = invocation_url(emu.url, rt["agentRuntimeArn"])

    first = asyncio.run(one_client_session(url, calls=3))
    assert first["server"] == "py-agents-mcp"
    assert first["tools"] == ["add", "whoami"]
    assert not first["add"].is_error and first["add"].structured_content == {"result": 42}
    hosts = {w["hostname"] for w in first["whoami"]}
    assert len(hosts) == 1, f"the tool calls of one MCP client session reached several sandboxes: {first['whoami']}"
    # The stateless server issues no Mcp-Session-Id: the emulator hands out the runtime session id,
    # which the client sends back (and the agent also receives it as the runtime session header).
    w = first["whoami"][0]
    assert w["mcp_session"] and w["mcp_session"] == w["runtime_session"], w
    assert w["accept"] == "application/json, text/event-stream", "Accept must reach the server untouched"
    assert w["protocol_version"] == first["version"], "Mcp-Protocol-Version must reach the server"
    (cid,) = session_containers(w["runtime_session"], running_only=True)
    assert container_hostname(cid) == w["hostname"]

    second = asyncio.run(one_client_session(url, calls=2))
    hosts2 = {x["hostname"] for x in second["whoami"]}
    assert len(hosts2) == 1 and hosts2 != hosts, "a second MCP client session must get its own sandbox"
    assert second["whoami"][0]["runtime_session"] != w["runtime_session"]
    assert len(runtime_containers(rt["agentRuntimeId"])) == 2


def test_mcp_client_default_mode_speaks_the_modern_protocol_through_the_emulator(stack):
    """mcp 2.x's default client mode probes server/discover and adopts the stateless 2026-07-28
    protocol, which routes by the Mcp-Method/Mcp-Name headers: they must reach the server. That
    protocol has no MCP session, so the client pins its sandbox with the runtime session header."""
    emu, control, _ = stack
    rt = py_runtime(control, "mcp_auto", "mcp", protocol="MCP")
    sid = new_session_id("mcp-auto")
    seen = asyncio.run(one_client_session(invocation_url(emu.url, rt["agentRuntimeArn"]), calls=3, mode="auto",
                                          headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": sid}))
    assert seen["version"] == "2026-07-28"
    assert seen["tools"] == ["add", "whoami"] and seen["add"].structured_content == {"result": 42}
    w = seen["whoami"][0]
    assert (w["method"], w["name"], w["protocol_version"]) == ("tools/call", "whoami", "2026-07-28")
    assert {x["runtime_session"] for x in seen["whoami"]} == {sid}
    assert len({x["hostname"] for x in seen["whoami"]}) == 1, seen["whoami"]
    assert runtime_containers(rt["agentRuntimeId"]) == session_containers(sid, running_only=True)


def test_stateful_mcp_server_keeps_its_own_session_and_sandbox(stack):
    """A stateful server issues its own Mcp-Session-Id; requests that carry only that id (no runtime
    session header) must reach the sandbox that issued it, or the server answers 'Session not found'."""
    emu, control, _ = stack
    rt = py_runtime(control, "mcp_stateful", "mcp", protocol="MCP", env={"MCP_STATEFUL": "1"})
    url = invocation_url(emu.url, rt["agentRuntimeArn"])
    first = asyncio.run(one_client_session(url, calls=3))
    assert first["tools"] == ["add", "whoami"] and first["add"].structured_content == {"result": 42}
    assert len({w["hostname"] for w in first["whoami"]}) == 1
    w = first["whoami"][0]
    assert w["mcp_session"] and w["mcp_session"] != w["runtime_session"], "the server's own session id is kept"
    second = asyncio.run(one_client_session(url, calls=1))
    assert second["whoami"][0]["hostname"] != w["hostname"]
    assert second["whoami"][0]["mcp_session"] != w["mcp_session"]


def test_client_supplied_runtime_session_header_pins_the_sandbox(stack):
    """AWS's samples send X-Amzn-Bedrock-AgentCore-Runtime-Session-Id themselves: two client
    sessions with the same runtime session id share one sandbox."""
    emu, control, _ = stack
    rt = py_runtime(control, "mcp_pinned", "mcp", protocol="MCP")
    url = invocation_url(emu.url, rt["agentRuntimeArn"])
    sid = new_session_id("mcp")

    async def run():
        hosts = []
        for _ in range(2):
            client, http = mcp_client(url, headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": sid})
            async with http, client:
                hosts.append(await whoami(client))
        return hosts

    a, b = asyncio.run(run())
    assert a["hostname"] == b["hostname"] and a["runtime_session"] == sid == b["runtime_session"]
    assert len(session_containers(sid, running_only=True)) == 1


def test_raw_invoke_agent_runtime_json_rpc_tools_list(stack):
    emu, control, data = stack
    rt = py_runtime(control, "mcp_raw", "mcp", protocol="MCP")
    sid = new_session_id("mcp-raw")
    resp = data.invoke_agent_runtime(
        agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid, qualifier="DEFAULT",
        contentType="application/json", accept="application/json, text/event-stream",
        mcpProtocolVersion="2025-06-18", mcpMethod="tools/list", payload=json.dumps(TOOLS_LIST),
    )
    body = resp["response"].read()
    assert resp["statusCode"] == 200
    assert resp["contentType"].startswith("text/event-stream"), resp["contentType"]
    assert resp["runtimeSessionId"] == sid
    assert resp.get("mcpSessionId") == sid, "a stateless server's client gets the runtime session id as Mcp-Session-Id"
    (event,) = sse_events(body)
    assert event["id"] == 7 and sorted(t["name"] for t in event["result"]["tools"]) == ["add", "whoami"]

    # tools/call through boto3 in the same session reaches the same sandbox.
    call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    resp = data.invoke_agent_runtime(
        agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid, contentType="application/json",
        accept="application/json, text/event-stream", mcpSessionId=sid, mcpProtocolVersion="2025-06-18",
        mcpMethod="tools/call", mcpName="whoami", payload=json.dumps(call),
    )
    (event,) = sse_events(resp["response"].read())
    seen = json.loads(event["result"]["content"][0]["text"])
    assert seen["runtime_session"] == sid and seen["mcp_session"] == sid
    (cid,) = session_containers(sid, running_only=True)
    assert container_hostname(cid) == seen["hostname"]


def test_accept_header_is_not_rewritten(stack):
    """MCP servers require Accept to name both JSON and SSE; a caller's narrower Accept reaches the
    server as sent (it answers 406, which the caller sees as RuntimeClientError)."""
    emu, control, data = stack
    rt = py_runtime(control, "mcp_accept", "mcp", protocol="MCP")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        data.invoke_agent_runtime(
            agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=new_session_id("acc"),
            contentType="application/json", accept="application/json", payload=json.dumps(TOOLS_LIST),
        )
    assert err.value.response["Error"]["Code"] == "RuntimeClientError"
    assert "(406)" in err.value.response["Error"]["Message"]


def test_mcp_server_on_a_custom_port_and_path(stack):
    emu, control, _ = stack
    protocol = {"serverProtocol": "MCP", "port": 9100, "path": "/custom/mcp"}
    rt = py_runtime(control, "mcp_custom", "mcp", protocol=protocol, env={"MCP_PORT": "9100", "MCP_PATH": "/custom/mcp"})
    assert rt["protocolConfiguration"] == protocol
    seen = asyncio.run(one_client_session(invocation_url(emu.url, rt["agentRuntimeArn"]), calls=1))
    assert seen["tools"] == ["add", "whoami"] and seen["add"].structured_content == {"result": 42}
