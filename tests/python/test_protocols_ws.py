"""WebSocket `/runtimes/{arn}/ws`: SigV4 by headers or by a presigned URL, as bedrock_agentcore's
AgentCoreRuntimeClient generates them, bridged frame by frame to the agent's `/ws`.

The SDK only builds URLs for the AWS hostname; these tests connect to the emulator's address and
send that URL's path and query with the Host the SDK signed, as a client behind a local endpoint
override (or an /etc/hosts entry) would."""
import json
import os
import socket
import time
from urllib.parse import urlsplit

import boto3
import pytest
import websockets.exceptions
from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from websockets.sync.client import connect

from conftest import REGION, boto_client, create_runtime, new_session_id, session_containers, wait_for_status
from protocol_helpers import (  # noqa: F401 (py_agents_image: autouse fixture)
    AGUI_EVENT_TYPES,
    AWS_HOST,
    SESSION_HEADER,
    agui_run_input,
    encoded_arn,
    py_agents_image,
    py_runtime,
    runtime_containers,
    session_hostname,
    sigv4_headers,
)

# Headers the WebSocket library writes itself during the handshake.
HANDSHAKE_HEADERS = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "user-agent"}


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def sdk_client(secret="test"):
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key=secret, region_name=REGION)
    return AgentCoreRuntimeClient(region=REGION, session=session)


def ws_connect(emu, url, headers=None, open_timeout=30):
    """Open `url` (as the SDK made it: wss://<AWS host>/runtimes/...) on the emulator's socket."""
    parts = urlsplit(url)
    uri = f"ws://{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    host, port = urlsplit(emu.url).hostname, urlsplit(emu.url).port
    sock = socket.create_connection((host, port), timeout=open_timeout)
    headers = headers or {}
    extra = {k: v for k, v in headers.items() if k.lower() not in HANDSHAKE_HEADERS}
    return connect(uri, sock=sock, additional_headers=extra, open_timeout=open_timeout, proxy=None,
                   user_agent_header=headers.get("User-Agent", "agentcore-local-tests"))


def whoami(ws):
    ws.send("whoami")
    return json.loads(ws.recv(timeout=10))


def echo_checks(ws):
    ws.send("hello ☃")
    assert ws.recv(timeout=10) == "echo:hello ☃"
    ws.send(b"\x00\x01binary\xff")
    assert ws.recv(timeout=10) == b"echo:\x00\x01binary\xff"
    big = os.urandom(30_000)
    ws.send(big)
    assert ws.recv(timeout=10) == b"echo:" + big
    for i in range(40):
        ws.send(f"m{i}")
    assert [ws.recv(timeout=10) for _ in range(40)] == [f"echo:m{i}" for i in range(40)]


def no_credentials(seen):
    names = {k.lower() for k in seen["headers"]}
    assert "authorization" not in names and "x-amz-date" not in names, f"credentials reached the agent: {seen}"


def test_sdk_sigv4_headers_text_and_binary_echo(stack):
    emu, control, _ = stack
    rt = py_runtime(control, "ws_agent", "http")
    sid = new_session_id("ws")
    url, headers = sdk_client().generate_ws_connection(rt["agentRuntimeArn"], session_id=sid, endpoint_name="DEFAULT")
    assert urlsplit(url).netloc == AWS_HOST and headers["Host"] == AWS_HOST
    with ws_connect(emu, url, headers) as ws:
        seen = whoami(ws)
        assert seen["session"] == sid and seen["path"] == "/ws"
        no_credentials(seen)
        echo_checks(ws)
    assert seen["hostname"] == session_hostname(sid)


def test_sdk_presigned_url(stack):
    emu, control, _ = stack
    rt = py_runtime(control, "ws_presigned", "http")
    sid = new_session_id("ws-pre")
    url = sdk_client().generate_presigned_url(rt["agentRuntimeArn"], session_id=sid, endpoint_name="DEFAULT")
    assert "X-Amz-Signature=" in url and f"{SESSION_HEADER}={sid}" in url
    with ws_connect(emu, url) as ws:
        seen = whoami(ws)
        assert seen["session"] == sid, "the session id of the presigned query must reach the agent"
        no_credentials(seen)
        assert "X-Amz-Signature" not in seen["query"], "the presigned signature must not reach the agent"
        echo_checks(ws)
    assert seen["hostname"] == session_hostname(sid)


def test_sigv4_signed_for_the_emulators_own_address(stack):
    """A client that signs for the endpoint it was given (http://127.0.0.1:PORT) also gets in."""
    emu, control, _ = stack
    rt = py_runtime(control, "ws_local", "http")
    sid = new_session_id("ws-local")
    url = f"{emu.url}/runtimes/{encoded_arn(rt['agentRuntimeArn'])}/ws"
    headers = {SESSION_HEADER: sid, "host": urlsplit(emu.url).netloc}
    headers.update(sigv4_headers("GET", url, headers))
    del headers["host"]
    with ws_connect(emu, url, headers) as ws:
        assert whoami(ws)["session"] == sid
        ws.send("ok?")
        assert ws.recv(timeout=10) == "echo:ok?"


def test_close_codes_propagate_both_ways(stack):
    emu, control, data = stack
    rt = py_runtime(control, "ws_close", "http")
    arn, sid = rt["agentRuntimeArn"], new_session_id("ws-close")
    client = sdk_client()

    with ws_connect(emu, *client.generate_ws_connection(arn, session_id=sid)) as ws:
        ws.send("close 4001 bye now")
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None, "the agent's close frame must reach the client"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye now")

    with ws_connect(emu, *client.generate_ws_connection(arn, session_id=sid)) as ws:
        whoami(ws)
        ws.close(code=4002, reason="client-bye")

    def agent_saw():
        resp = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=sid,
                                         payload=json.dumps({"action": "ws_closes"}))
        return json.loads(resp["response"].read())["closes"]

    deadline = time.time() + 10
    while {"code": 4002, "reason": "client-bye"} not in agent_saw():
        assert time.time() < deadline, f"the client's close frame never reached the agent: {agent_saw()}"
        time.sleep(0.2)


def test_same_session_id_same_sandbox(stack):
    emu, control, data = stack
    rt = py_runtime(control, "ws_affinity", "http")
    arn, client = rt["agentRuntimeArn"], sdk_client()
    a, b = new_session_id("ws-a"), new_session_id("ws-b")
    with ws_connect(emu, *client.generate_ws_connection(arn, session_id=a)) as ws1, \
            ws_connect(emu, client.generate_presigned_url(arn, session_id=a)) as ws2:
        h1, h2 = whoami(ws1)["hostname"], whoami(ws2)["hostname"]
    with ws_connect(emu, *client.generate_ws_connection(arn, session_id=a)) as ws3:
        h3 = whoami(ws3)["hostname"]
    resp = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=a, payload=json.dumps({"action": "whoami"}))
    h_http = json.loads(resp["response"].read())["hostname"]
    assert h1 == h2 == h3 == h_http, "one runtime session, one sandbox, whatever the transport"
    with ws_connect(emu, *client.generate_ws_connection(arn, session_id=b)) as ws:
        assert whoami(ws)["hostname"] != h1
    assert len(runtime_containers(rt["agentRuntimeId"])) == 2


def test_stop_runtime_session_closes_its_websockets(stack):
    emu, control, data = stack
    rt = py_runtime(control, "ws_stop", "http")
    sid = new_session_id("ws-stop")
    with ws_connect(emu, *sdk_client().generate_ws_connection(rt["agentRuntimeArn"], session_id=sid)) as ws:
        whoami(ws)
        data.stop_runtime_session(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid)
        start = time.monotonic()
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            while True:
                ws.recv(timeout=15)
        assert time.monotonic() - start < 15
    deadline = time.time() + 30
    while session_containers(sid):
        assert time.time() < deadline, "the stopped session's sandbox was not removed"
        time.sleep(0.2)


def test_websocket_to_an_agent_without_ws_is_refused(stack):
    """The FROM-scratch fixture agent serves HTTP only: the upgrade is refused with an AWS-shaped
    error, promptly, and the emulator carries on."""
    emu, control, data = stack
    rt = wait_for_status(control, create_runtime(control, "http_only")["agentRuntimeId"])
    sid = new_session_id("ws-none")
    start = time.monotonic()
    with pytest.raises(websockets.exceptions.InvalidStatus) as err:
        ws_connect(emu, *sdk_client().generate_ws_connection(rt["agentRuntimeArn"], session_id=sid))
    # Includes the session's cold start (up to 24 s on a loaded CI machine); a refusal that waited
    # for the 60 s start-up budget would not fit.
    assert time.monotonic() - start < 45
    response = err.value.response
    assert response.status_code == 424, (response.status_code, response.body)
    assert response.headers.get("x-amzn-ErrorType", "").startswith("RuntimeClientError"), dict(response.headers)
    assert json.loads(response.body)["message"]
    resp = data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                     payload=json.dumps({"action": "whoami"}))
    assert resp["statusCode"] == 200


def test_bad_signature_is_refused_before_any_sandbox_starts(stack):
    emu, control, _ = stack
    rt = py_runtime(control, "ws_auth", "http")
    sid = new_session_id("ws-auth")
    for url, headers in [
        sdk_client(secret="wrong").generate_ws_connection(rt["agentRuntimeArn"], session_id=sid),
        (sdk_client(secret="wrong").generate_presigned_url(rt["agentRuntimeArn"], session_id=sid), None),
    ]:
        with pytest.raises(websockets.exceptions.InvalidStatus) as err:
            ws_connect(emu, url, headers)
        assert err.value.response.status_code == 403
        assert err.value.response.headers.get("x-amzn-ErrorType", "").startswith(
            ("SignatureDoesNotMatch", "InvalidSignatureException", "AccessDenied", "UnrecognizedClient"))
    assert session_containers(sid) == [] and runtime_containers(rt["agentRuntimeId"]) == []


def test_unknown_runtime_is_not_found(stack):
    emu, _, _ = stack
    arn = f"arn:aws:bedrock-agentcore:{REGION}:123456789012:runtime/missing-AbCdEf1234"
    with pytest.raises(websockets.exceptions.InvalidStatus) as err:
        ws_connect(emu, *sdk_client().generate_ws_connection(arn, session_id=new_session_id("ws-404")))
    assert err.value.response.status_code == 404
    assert err.value.response.headers.get("x-amzn-ErrorType", "").startswith("ResourceNotFoundException")


def test_agui_events_over_websocket(stack):
    """AG-UI's WebSocket transport: RunAgentInput in, the AG-UI events as text frames, then close."""
    emu, control, _ = stack
    rt = py_runtime(control, "agui_ws", "agui", protocol="AGUI")
    sid = new_session_id("agui-ws")
    given = agui_run_input("over ws")
    events = []
    with ws_connect(emu, *sdk_client().generate_ws_connection(rt["agentRuntimeArn"], session_id=sid)) as ws:
        ws.send(json.dumps(given))
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            while True:
                frame = ws.recv(timeout=10)
                assert frame.startswith("data: ")
                events.append(json.loads(frame[len("data: "):]))
    assert [e["type"] for e in events] == AGUI_EVENT_TYPES
    assert events[0]["runId"] == given["runId"] and events[10]["snapshot"]["session"] == sid
