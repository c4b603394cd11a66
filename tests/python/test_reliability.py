"""Bounded resources under hostile clients (issue 17), with raw sockets: an unsigned request is
refused before its body is read, a signed one whose body stalls gets 408 after --body-read-timeout,
and connections past --max-connections get an AWS-shaped 503 at once; normal requests keep working.
Agent output of sessions whose ids make long stream names is kept (boto3 and CloudWatch Logs)."""
import json
import socket
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import REGION, boto_client, create_runtime, wait_for_status, wait_until

LIST_PATH = "/runtimes/"


def host_port(url):
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port


def raw(url, head, body=b"", timeout=10):
    """Send `head` (and `body`), keep the socket open, return it."""
    s = socket.create_connection(host_port(url), timeout=timeout)
    s.sendall(head + body)
    return s


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, head.decode(), json.loads(rest) if rest else None


def error_type(head):
    """The AWS error code of a restJson1 error (the x-amzn-ErrorType header)."""
    return next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                 if line.lower().startswith("x-amzn-errortype:")), "")


def signed_head(url, body_length):
    """Headers of a signed CreateAgentRuntime whose body (declared by length) is sent later."""
    host = "%s:%d" % host_port(url)
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=f"{url}{LIST_PATH}", data=b"x" * body_length,
        headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("test", "test"), "bedrock-agentcore", REGION).add_auth(request)
    lines = [f"POST {LIST_PATH} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in request.headers.items()]
    lines.append(f"Content-Length: {body_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_unsigned_request_is_refused_before_its_body(emulators):
    emu = emulators("--sandbox", "none")
    host = "%s:%d" % host_port(emu.url)
    # Headers promising a megabyte that never comes: the answer must not wait for it.
    s = raw(emu.url, f"POST {LIST_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 1000000\r\n\r\n".encode())
    started = time.time()
    status, head, body = read_response(s)
    assert status == 403 and error_type(head).startswith("MissingAuthenticationToken"), (head, body)
    assert time.time() - started < 5
    s.close()


def test_stalled_body_gets_408_after_the_timeout(emulators):
    emu = emulators("--sandbox", "none", "--body-read-timeout", "2")
    s = raw(emu.url, signed_head(emu.url, 200), b'{"agentRuntimeName"')
    started = time.time()
    status, head, body = read_response(s)
    waited = time.time() - started
    assert status == 408 and error_type(head) == "RequestTimeoutException", (head, body)
    assert "--body-read-timeout" in body["message"]
    assert 1.5 < waited < 15, waited
    s.close()
    # The server goes on answering.
    boto_client(emu.url, "bedrock-agentcore-control").list_agent_runtimes()


def test_connections_past_the_cap_get_503_and_the_server_recovers(emulators):
    emu = emulators("--sandbox", "none", "--max-connections", "4")
    host = "%s:%d" % host_port(emu.url)
    # Four clients that sent half a request line and went quiet hold every permit.
    held = [raw(emu.url, f"GET {LIST_PATH} HTTP/1.1\r\nHost: {host}\r\n".encode()) for _ in range(4)]
    time.sleep(0.5)
    s = raw(emu.url, f"GET {LIST_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    status, head, body = read_response(s)
    assert status == 503 and body["__type"] == "ServiceUnavailableException", body
    assert "--max-connections" in body["message"] and "x-amzn-errortype: serviceunavailableexception" in head.lower()
    s.close()
    for h in held:
        h.close()
    # Permits come back as those connections close.
    control = boto_client(emu.url, "bedrock-agentcore-control")
    wait_until(lambda: _lists(control), 10, message="requests served again")


def _lists(control):
    try:
        control.list_agent_runtimes()
        return True
    except Exception:
        return False


@pytest.mark.parametrize("session_id", [
    "a" * 256,
    "-".join(["x"] * 128) + "-" * 1,
    "s" + "-" * 255,
    "session-" + "ü" * 40 + "-" + "0" * 20,
], ids=["256-alnum", "dashes", "255-dashes", "non-ascii"])
def test_agent_output_of_long_session_ids_is_kept(emulator, control, data, session_id):
    """Stream names embed the session id; ids up to 256 characters of any allowed character must
    not lose the agent's output (it used to fail with 'File name too long')."""
    rt = wait_for_status(control, create_runtime(control, "longids")["agentRuntimeId"])
    logs = boto_client(emulator.url, "logs")
    data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=session_id,
                              payload=json.dumps({"action": "log", "stdout": f"line of {len(session_id)}"}))["response"].read()
    group = f"/aws/bedrock-agentcore/runtimes/{rt['agentRuntimeId']}-DEFAULT"

    def stored():
        try:
            streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return None  # the capture has not stored the first line yet
        names = [s["logStreamName"] for s in streams if s["logStreamName"].endswith(session_id)]
        if not names:
            return None
        events = logs.get_log_events(logGroupName=group, logStreamName=names[0], startFromHead=True)["events"]
        return names[0] if any(e["message"] == f"line of {len(session_id)}" for e in events) else None

    name = wait_until(stored, 15, message="the session's stream with its line")
    assert name.endswith("[runtime-logs]" + session_id), name
    control.delete_agent_runtime(agentRuntimeId=rt["agentRuntimeId"])


def test_two_authorization_headers_are_refused(emulators):
    emu = emulators("--sandbox", "none")
    head = signed_head(emu.url, 2).decode()
    auth = next(line for line in head.split("\r\n") if line.lower().startswith("authorization:"))
    doubled = head.replace(auth + "\r\n", auth + "\r\n" + auth.replace("Credential=test", "Credential=other") + "\r\n")
    s = raw(emu.url, doubled.encode(), b"{}")
    status, head_out, body = read_response(s)
    assert status == 403 and error_type(head_out) == "IncompleteSignatureException", (head_out, body)
    assert "more than one Authorization header" in body["message"]
    s.close()
    # The same request (POST /runtimes/ is ListAgentRuntimes) with one header is answered.
    s = raw(emu.url, signed_head(emu.url, 2), b"xx")
    status, _, body = read_response(s)
    assert status == 200 and body == {"agentRuntimes": []}, body
    s.close()


def test_a_body_declared_over_the_limit_is_refused_before_100_continue(emulators):
    """`Expect: 100-continue` asks whether to send the body: an over-limit one is refused at once
    (413 in the AWS error shape, no `100 Continue`); an acceptable one is invited."""
    emu = emulators("--sandbox", "none")
    over = 10 * 1024 * 1024 + 1  # the control plane's limit is 10 MiB
    head = signed_head(emu.url, over).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    s = raw(emu.url, head)
    status, head_text, body = read_response(s)
    assert status == 413, head_text
    assert error_type(head_text).startswith("ValidationException") and "exceeds the limit" in body["message"], body
    s.close()

    small = b"{}"
    head = signed_head(emu.url, len(small)).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    s = raw(emu.url, head)
    interim = s.recv(64)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    s.sendall(small)
    status, head_text, body = read_response(s)
    assert status != 413, head_text
    s.close()
