"""Bearer tokens on a JWT-authorized runtime's other routes: the WebSocket bridge (Authorization
header, or the SDK's browser form `base64UrlBearerAuthorization.<token>` subprotocol) and
GetAgentCard, with the protocol agents of fixtures/py-agents; SigV4 is refused on both."""
import base64
import json
import socket
from urllib.parse import quote, urlsplit

import botocore.exceptions
import httpx
import pytest
import websockets.exceptions
from websockets.sync.client import connect

from conftest import boto_client, new_session_id
from oidc_issuer import LocalIssuer
from protocol_helpers import SESSION_HEADER, py_agents_image, py_runtime, sigv4_headers  # noqa: F401 (autouse fixture)

CLAIMS = dict(client_id="web-app", scope="agents.invoke")


@pytest.fixture
def issuer():
    with LocalIssuer() as iss:
        yield iss


@pytest.fixture
def stack(emulators):
    emu = emulators("--max-tps-per-endpoint", "0")
    return emu, boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")


def authorizer(issuer):
    return {"customJWTAuthorizer": {"discoveryUrl": issuer.discovery_url, "allowedClients": ["web-app"]}}


def ws(emu, arn, headers=None, subprotocols=None):
    parts = urlsplit(emu.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    return connect(f"ws://{parts.netloc}/runtimes/{quote(arn, safe='')}/ws", sock=sock, additional_headers=headers or {},
                   subprotocols=subprotocols, open_timeout=60, proxy=None)


def test_websocket_takes_bearer_tokens_and_refuses_sigv4(stack, issuer):
    emu, control, _ = stack
    rt = py_runtime(control, "jwt_ws", "http", authorizerConfiguration=authorizer(issuer))
    arn = rt["agentRuntimeArn"]
    session = new_session_id()
    with ws(emu, arn, {"Authorization": f"Bearer {issuer.mint(**CLAIMS)}", SESSION_HEADER: session}) as conn:
        conn.send("whoami")
        seen = json.loads(conn.recv(timeout=30))
        assert seen["session"] == session
        assert "authorization" not in {k.lower() for k in seen["headers"]}, "the token is the caller's credential"
        conn.send("hi")
        assert conn.recv(timeout=30) == "echo:hi"

    encoded = base64.urlsafe_b64encode(issuer.mint(**CLAIMS).encode()).decode().rstrip("=")
    protocols = [f"base64UrlBearerAuthorization.{encoded}", "base64UrlBearerAuthorization"]
    with ws(emu, arn, {SESSION_HEADER: session}, subprotocols=protocols) as conn:
        assert conn.subprotocol == "base64UrlBearerAuthorization"
        conn.send("hi")
        assert conn.recv(timeout=30) == "echo:hi"

    with pytest.raises(websockets.exceptions.InvalidStatus) as e:
        ws(emu, arn, {})
    assert e.value.response.status_code == 401
    assert "resource_metadata" in e.value.response.headers["www-authenticate"]
    with pytest.raises(websockets.exceptions.InvalidStatus) as e:
        ws(emu, arn, {"Authorization": f"Bearer {issuer.mint(client_id='other-app')}"})
    assert e.value.response.status_code == 401

    # SigV4 on the JWT runtime: refused as a method mismatch.
    signed = sigv4_headers("GET", f"{emu.url}/runtimes/{quote(arn, safe='')}/ws", {SESSION_HEADER: session})
    with pytest.raises(websockets.exceptions.InvalidStatus) as e:
        ws(emu, arn, {**signed, SESSION_HEADER: session})
    assert e.value.response.status_code == 403


def test_agent_card_takes_bearer_tokens_and_refuses_sigv4(stack, issuer):
    emu, control, data = stack
    rt = py_runtime(control, "jwt_a2a", "a2a", protocol="A2A", authorizerConfiguration=authorizer(issuer))
    arn = rt["agentRuntimeArn"]
    url = f"{emu.url}/runtimes/{quote(arn, safe='')}/invocations/.well-known/agent-card.json?qualifier=DEFAULT"
    card = httpx.get(url, headers={"Authorization": f"Bearer {issuer.mint(**CLAIMS)}"}, timeout=120)
    assert card.status_code == 200, card.text
    assert quote(arn, safe="") in json.dumps(card.json()), "the card points at the emulator's invocation URL"
    assert httpx.get(url, timeout=60).status_code == 401
    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.get_agent_card(agentRuntimeArn=arn)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
