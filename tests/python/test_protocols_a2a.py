"""A2A runtimes: the a2a-sdk client (card resolution, message send and stream) through the
emulator's invocation URL with SigV4-signed httpx; GetAgentCard through boto3."""
import asyncio
import json
import uuid
from urllib.parse import unquote

import botocore.exceptions
import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, TaskState

from bedrock_agentcore.runtime import build_runtime_url

from conftest import (
    boto_client,
    create_runtime,
    inspect_container,
    new_session_id,
    session_containers,
    wait_for_status,
)
from protocol_helpers import (  # noqa: F401 (py_agents_image: autouse fixture)
    SESSION_HEADER,
    container_hostname,
    invocation_url,
    py_agents_image,
    py_runtime,
    runtime_containers,
    sigv4_auth,
    sse_events,
)


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def agent_base_url(emu, arn):
    """Where an A2A client is pointed: the runtime's invocation URL (the card lives below it)."""
    return invocation_url(emu.url, arn, qualifier=None) + "/"


def user_message(text):
    return SendMessageRequest(
        message=Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    )


async def converse(base_url, session_id, card=None):
    """Resolve the card (unless given), then message/send and a streamed message through the SDK."""
    async with httpx.AsyncClient(auth=sigv4_auth(httpx), headers={SESSION_HEADER: session_id}, timeout=60) as http:
        if card is None:
            card = await A2ACardResolver(http, base_url).get_agent_card()
        plain = await create_client(card, ClientConfig(httpx_client=http, streaming=False))
        replies = [r async for r in plain.send_message(user_message("hello"))]
        streaming = await create_client(card, ClientConfig(httpx_client=http, streaming=True))
        events = [e async for e in streaming.send_message(user_message("stream abc"))]
    return card, replies, events


def test_a2a_sdk_client_resolves_the_card_sends_and_streams(stack):
    emu, control, _ = stack
    rt = py_runtime(control, "a2a_agent", "a2a", protocol="A2A")
    base = agent_base_url(emu, rt["agentRuntimeArn"])
    sid = new_session_id("a2a")
    card, replies, events = asyncio.run(converse(base, sid))

    assert card.name == "py-agents-a2a" and card.capabilities.streaming
    assert [unquote(i.url) for i in card.supported_interfaces] == [unquote(base)], "the card must send clients to the emulator"

    host = container_hostname(session_containers(sid, running_only=True)[0])
    (reply,) = replies
    assert reply.WhichOneof("payload") == "message"
    assert reply.message.parts[0].text == f"echo: hello (from {host})"

    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds == ["task", "status_update", "artifact_update", "artifact_update", "artifact_update", "status_update"], kinds
    assert events[1].status_update.status.state == TaskState.TASK_STATE_WORKING
    assert [e.artifact_update.artifact.parts[0].text for e in events[2:5]] == [
        f"part {i} of stream abc" for i in range(3)
    ]
    final = events[-1].status_update.status
    assert final.state == TaskState.TASK_STATE_COMPLETED
    assert final.message.parts[0].text == f"done: stream abc (from {host})"
    assert len({e.status_update.task_id for e in events[1:] if e.HasField("status_update")} | {events[0].task.id}) == 1
    # The card request and both messages carried the same runtime session: one sandbox.
    assert len(runtime_containers(rt["agentRuntimeId"])) == 1


def test_a2a_v03_json_rpc_through_invoke_agent_runtime(stack):
    """message/send and the streaming message/stream as raw JSON-RPC payloads of InvokeAgentRuntime."""
    emu, control, data = stack
    rt = py_runtime(control, "a2a_raw", "a2a", protocol="A2A")
    sid = new_session_id("a2a-raw")

    def rpc(rid, method, text):
        message = {"role": "user", "parts": [{"kind": "text", "text": text}], "messageId": str(uuid.uuid4())}
        payload = {"jsonrpc": "2.0", "id": rid, "method": method, "params": {"message": message}}
        return data.invoke_agent_runtime(
            agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid, contentType="application/json",
            accept="application/json, text/event-stream", payload=json.dumps(payload),
        )

    resp = rpc("req-001", "message/send", "hi")
    body = json.loads(resp["response"].read())
    assert resp["contentType"].startswith("application/json")
    host = container_hostname(session_containers(sid, running_only=True)[0])
    assert body["id"] == "req-001" and body["result"]["kind"] == "message"
    assert body["result"]["parts"][0]["text"] == f"echo: hi (from {host})"

    resp = rpc("req-002", "message/stream", "stream it")
    assert resp["contentType"].startswith("text/event-stream"), resp["contentType"]
    events = sse_events(resp["response"].read())
    assert all(e["id"] == "req-002" for e in events)
    kinds = [e["result"]["kind"] for e in events]
    assert kinds == ["task", "status-update", "artifact-update", "artifact-update", "artifact-update", "status-update"]
    assert events[-1]["result"]["final"] is True and events[-1]["result"]["status"]["state"] == "completed"
    assert events[-1]["result"]["status"]["message"]["parts"][0]["text"] == f"done: stream it (from {host})"
    assert session_containers(sid, running_only=True) == runtime_containers(rt["agentRuntimeId"])


def test_get_agent_card_with_boto3(stack):
    emu, control, data = stack
    rt = py_runtime(control, "a2a_card", "a2a", protocol="A2A")
    base = agent_base_url(emu, rt["agentRuntimeArn"])
    resp = data.get_agent_card(agentRuntimeArn=rt["agentRuntimeArn"], qualifier="DEFAULT")
    assert resp["statusCode"] == 200
    card = resp["agentCard"]
    assert card["name"] == "py-agents-a2a" and card["capabilities"]["streaming"] is True
    assert [unquote(i["url"]) for i in card["supportedInterfaces"]] == [unquote(base)]
    if "url" in card:
        assert unquote(card["url"]) == unquote(base)
    assert resp["runtimeSessionId"]


def test_runtime_url_encodes_the_arn_as_aws_does(stack):
    """AGENTCORE_RUNTIME_URL (which A2A agents advertise) and the card's URL encode the ARN as the
    service and bedrock_agentcore.runtime.build_runtime_url do: `:` and `/` escaped, unreserved
    characters such as `-` and `_` left alone."""
    emu, control, data = stack
    rt = py_runtime(control, "a2a_url_enc", "a2a", protocol="A2A")
    arn = rt["agentRuntimeArn"]
    aws_form = build_runtime_url(arn)
    expected = emu.url + aws_form[aws_form.index("/runtimes/"):] + "/"
    sid = new_session_id("a2a-url")
    card = data.get_agent_card(agentRuntimeArn=arn, runtimeSessionId=sid)["agentCard"]
    (cid,) = session_containers(sid, running_only=True)
    env = dict(e.split("=", 1) for e in inspect_container(cid)["Config"]["Env"])
    assert env["AGENTCORE_RUNTIME_URL"] == expected
    assert [i["url"] for i in card["supportedInterfaces"]] == [expected]


def test_get_agent_card_rewrites_the_url_the_agent_advertises(stack):
    """An agent whose card names its own address (http://localhost:9000/) is reachable through the
    card GetAgentCard returns: every JSON-RPC URL in it points at the emulator."""
    emu, control, data = stack
    rt = py_runtime(control, "a2a_selfurl", "a2a", protocol="A2A", env={"A2A_CARD_URL": "http://localhost:9000/"})
    base = agent_base_url(emu, rt["agentRuntimeArn"])
    card = data.get_agent_card(agentRuntimeArn=rt["agentRuntimeArn"])["agentCard"]
    urls = [i["url"] for i in card.get("supportedInterfaces", [])] + ([card["url"]] if "url" in card else [])
    assert urls and all(unquote(u) == unquote(base) for u in urls), f"card still advertises the agent's own address: {card}"

    _, replies, events = asyncio.run(converse(base, new_session_id("a2a-self")))
    assert replies[0].message.parts[0].text.startswith("echo: hello")
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


def test_get_agent_card_on_a_non_a2a_runtime_is_a_validation_error(stack):
    emu, control, data = stack
    created = create_runtime(control, "http_agent")
    rt = wait_for_status(control, created["agentRuntimeId"])
    with pytest.raises(botocore.exceptions.ClientError) as err:
        data.get_agent_card(agentRuntimeArn=rt["agentRuntimeArn"])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert runtime_containers(rt["agentRuntimeId"]) == [], "a refused card request must not start a sandbox"
