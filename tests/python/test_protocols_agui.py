"""AG-UI runtimes: the agent's SSE event stream reaches the caller unchanged (bytes, order, types,
ids), through boto3 and through a raw SigV4-signed request, and it streams."""
import json
import time

import httpx
import pytest

from conftest import boto_client, new_session_id, session_containers
from protocol_helpers import (  # noqa: F401 (py_agents_image: autouse fixture)
    AGUI_EVENT_TYPES,
    SESSION_HEADER,
    agent_address,
    agui_run_input,
    invocation_url,
    py_agents_image,
    py_runtime,
    sigv4_auth,
    sse_events,
)


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def check_sequence(events, given, session_id, text):
    assert [e["type"] for e in events] == AGUI_EVENT_TYPES
    run = given["runId"]
    assert events[0] == {"type": "RUN_STARTED", "threadId": given["threadId"], "runId": run}
    assert {e.get("messageId") for e in events[2:7]} == {f"msg-{run}"}
    assert "".join(e["delta"] for e in events[3:6]) == f"Héllo ☃ {text}"
    assert {e["toolCallId"] for e in events[7:10]} == {f"call-{run}"}
    assert events[7]["toolCallName"] == "lookup" and events[7]["parentMessageId"] == f"msg-{run}"
    assert json.loads(events[8]["delta"]) == {"q": text}
    assert events[10]["snapshot"] == {"session": session_id, "counter": 1}
    assert events[-1] == {"type": "RUN_FINISHED", "threadId": given["threadId"], "runId": run, "result": {"ok": True}}


def direct_from_agent(session_id, given):
    """The same run asked of the session's agent directly (not through the emulator), for comparison."""
    (cid,) = session_containers(session_id, running_only=True)
    address = agent_address(cid, 8080)
    r = httpx.post(f"http://{address}/invocations", json=given, timeout=30,
                   headers={"Accept": "text/event-stream", SESSION_HEADER: session_id})
    assert r.status_code == 200
    return r.headers["content-type"], r.content


def test_agui_event_stream_passes_through_boto3_unchanged(stack):
    emu, control, data = stack
    rt = py_runtime(control, "agui_agent", "agui", protocol="AGUI")
    sid = new_session_id("agui")
    given = agui_run_input("what's up?")
    resp = data.invoke_agent_runtime(
        agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid, contentType="application/json",
        accept="text/event-stream", payload=json.dumps(given),
    )
    body = resp["response"].read()
    assert resp["statusCode"] == 200 and resp["runtimeSessionId"] == sid
    check_sequence(sse_events(body), given, sid, "what's up?")
    content_type, direct = direct_from_agent(sid, given)
    assert resp["contentType"] == content_type
    assert body == direct, "the SSE bytes must be exactly the agent's"


def test_agui_event_stream_through_a_raw_signed_request_streams(stack):
    """A plain HTTP client with SigV4 (what AG-UI front ends' proxies do): the first events arrive
    while the agent is still working, and the stream is the agent's byte for byte."""
    emu, control, _ = stack
    rt = py_runtime(control, "agui_raw", "agui", protocol="AGUI")
    sid = new_session_id("agui-raw")
    given = agui_run_input("stream please", delay=2.0)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", SESSION_HEADER: sid}
    url = invocation_url(emu.url, rt["agentRuntimeArn"])
    with httpx.Client(auth=sigv4_auth(httpx), timeout=60) as http:
        http.post(url, json=agui_run_input("warm-up"), headers=headers).raise_for_status()  # cold start first
        start = time.monotonic()
        with http.stream("POST", url, content=json.dumps(given).encode(), headers=headers) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
            chunks, first_at = [], None
            for chunk in r.iter_bytes():
                if first_at is None:
                    first_at = time.monotonic() - start
                chunks.append(chunk)
        total = time.monotonic() - start
    body = b"".join(chunks)
    assert total >= 2.0
    assert first_at < 1.5, f"first bytes after {first_at:.2f}s of {total:.2f}s: the response was buffered"
    check_sequence(sse_events(body), given, sid, "stream please")
    given["forwardedProps"]["delay"] = 0
    _, direct = direct_from_agent(sid, given)
    assert body == direct
