"""InvokeAgentRuntime end to end: boto3 and the real AWS CLI against the emulator, which runs the
fixture agent (fixtures/test-agent) in a Docker container per session. Covers what the agent
receives (environment, headers), what the caller receives (metadata, streamed bodies) and how
failures surface (RuntimeClientError, start-up failures, missing images, unknown targets)."""
import http.client
import json
import threading
import time
import urllib.parse

import botocore.config
import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (ACCOUNT, REGION, Cli, Emulator, boto_client, create_runtime, invoke, managed_containers,
                      new_session_id, session_containers, wait_for_status, whoami)

GENERIC_500 = "Received error (500) from runtime. Please check your CloudWatch logs for more information."
ENV = {"MY_VAR": "hello-from-runtime", "SECOND_VAR": "with spaces = and symbols"}
ALLOWLIST = ["X-Custom-App", "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo"]


class Stack:
    """One emulator (default flags) with two READY runtimes, shared by the tests of this module."""

    def __init__(self, emu):
        self.emu = emu
        self.control = boto_client(emu.url, "bedrock-agentcore-control")
        self.data = boto_client(emu.url, "bedrock-agentcore")
        self.cli = Cli(emu.url)
        self.rt = self.runtime("invoke_main", environmentVariables=ENV,
                               requestHeaderConfiguration={"requestHeaderAllowlist": ALLOWLIST})
        self.plain = self.runtime("invoke_plain")
        self.arn = self.rt["agentRuntimeArn"]

    def runtime(self, name, **kw):
        created = create_runtime(self.control, name, **kw)
        rt = wait_for_status(self.control, created["agentRuntimeId"])
        assert rt["status"] == "READY", rt
        return rt


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    emu = Emulator().start(tmp_path_factory.mktemp("invoke") / "emulator.log")
    try:
        yield Stack(emu)
    finally:
        emu.stop()
    leftovers = managed_containers([emu.proc.pid])
    assert not leftovers, f"the emulator left sandboxes behind after SIGTERM: {leftovers}"


def error_of(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"].get("Message", "")


def raw_client(url):
    """A data-plane client that does not validate parameters, so the server's validation shows."""
    return boto3.session.Session().client(
        "bedrock-agentcore", endpoint_url=url, region_name=REGION, aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))


def signed_post(url, path, body, headers, params=None):
    """POST a SigV4-signed request with exactly the given headers (no SDK defaults added)."""
    req = AWSRequest(method="POST", url=url + path, data=body, headers=headers, params=params or {})
    SigV4Auth(Credentials("test", "test"), "bedrock-agentcore", REGION).add_auth(req)
    prepared = req.prepare()
    split = urllib.parse.urlsplit(prepared.url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        conn.request("POST", split.path + (f"?{split.query}" if split.query else ""), body=prepared.body,
                     headers=dict(prepared.headers.items()))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- the happy path through both clients -----------------------------------------------------------


def test_boto3_invoke_returns_the_agents_body_and_session_metadata(stack):
    sid = new_session_id("boto3")
    payload = {"action": "echo", "prompt": "hi", "nested": [1, {"x": "y"}]}
    resp, body = invoke(stack.data, stack.arn, sid, payload)
    assert body == {"echo": payload}
    assert resp["statusCode"] == 200
    assert resp["contentType"] == "application/json"
    assert resp["runtimeSessionId"] == sid
    assert resp["traceId"].startswith("Root=1-")
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
    assert len(session_containers(sid, running_only=True)) == 1


def test_cli_invoke_prints_metadata_and_writes_body_to_outfile(stack, tmp_path):
    sid = new_session_id("cli")
    out = tmp_path / "out.json"
    meta = stack.cli.json("bedrock-agentcore", "invoke-agent-runtime", "--agent-runtime-arn", stack.arn,
                          "--runtime-session-id", sid, "--payload", json.dumps({"action": "whoami"}), str(out))
    assert meta["runtimeSessionId"] == sid
    assert meta["statusCode"] == 200
    assert meta["contentType"] == "application/json"
    assert meta["traceId"].startswith("Root=1-")
    first = json.loads(out.read_text())
    assert first["counter"] == 1
    assert first["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
    # boto3 with the same id lands in the same container.
    again = whoami(stack.data, stack.arn, sid)
    assert (again["hostname"], again["counter"]) == (first["hostname"], 2)


def test_cli_invoke_echo_payload_round_trips(stack, tmp_path):
    out = tmp_path / "echo.json"
    payload = {"action": "echo", "text": "héllo wörld", "n": 42}
    stack.cli.run("bedrock-agentcore", "invoke-agent-runtime", "--agent-runtime-arn", stack.arn,
                  "--runtime-session-id", new_session_id("cli-echo"), "--payload", json.dumps(payload), str(out))
    assert json.loads(out.read_text(encoding="utf-8")) == {"echo": payload}


# --- session ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 32, 257])
def test_session_id_of_bad_length_is_a_validation_exception(stack, length):
    client = raw_client(stack.emu.url)
    sid = ("v" * length)
    with pytest.raises(ClientError) as e:
        client.invoke_agent_runtime(agentRuntimeArn=stack.arn, runtimeSessionId=sid,
                                    payload=json.dumps({"action": "echo"}))
    code, status, _ = error_of(e)
    assert (code, status) == ("ValidationException", 400)
    assert session_containers(sid) == []


@pytest.mark.parametrize("length", [33, 256])
def test_session_id_length_boundaries_are_accepted(stack, length):
    client = raw_client(stack.emu.url)
    sid = new_session_id("b")[:length].ljust(length, "b")
    resp = client.invoke_agent_runtime(agentRuntimeArn=stack.arn, runtimeSessionId=sid,
                                       payload=json.dumps({"action": "whoami"}))
    body = json.loads(resp["response"].read())
    assert body["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
    assert resp["runtimeSessionId"] == sid


def test_server_generates_a_session_id_when_the_caller_sends_none(stack):
    path = "/runtimes/" + urllib.parse.quote(stack.arn, safe="") + "/invocations"
    status, headers, body = signed_post(stack.emu.url, path, json.dumps({"action": "whoami"}).encode(),
                                        {"Content-Type": "application/json"}, params={"qualifier": "DEFAULT"})
    assert status == 200, body
    sid = headers.get("x-amzn-bedrock-agentcore-runtime-session-id")
    assert sid and len(sid) == 36, headers
    seen = json.loads(body)
    assert seen["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
    assert len(session_containers(sid, running_only=True)) == 1
    # The generated id is a real session: using it again reaches the same container.
    again = whoami(stack.data, stack.arn, sid)
    assert (again["hostname"], again["counter"]) == (seen["hostname"], 2)


# --- what the agent sees -----------------------------------------------------------------------------


def test_unusual_session_ids_are_carried_verbatim(stack):
    sid = 'odd id / with spaces & "quotes" = ..\\ ' + new_session_id()
    resp, seen = invoke(stack.data, stack.arn, sid, {"action": "whoami"})
    assert resp["runtimeSessionId"] == sid
    assert seen["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
    assert len(session_containers(sid)) == 1
    assert whoami(stack.data, stack.arn, sid)["counter"] == 2


def test_large_payload_round_trips_unchanged(stack):
    payload = {"action": "echo", "blob": "0123456789abcdef" * (5 * 1024 * 1024 // 16)}  # 5 MiB
    _, body = invoke(stack.data, stack.arn, new_session_id("big"), payload)
    assert body == {"echo": payload}


def test_agent_environment(stack):
    env = whoami(stack.data, stack.arn, new_session_id("env"))["env"]
    for k, v in ENV.items():
        assert env.get(k) == v, (k, env)
    assert env["AWS_REGION"] == REGION
    assert env["AWS_DEFAULT_REGION"] == REGION
    assert env["DOCKER_CONTAINER"] == "1"
    url = env["AGENTCORE_RUNTIME_URL"]
    prefix, suffix = stack.emu.url + "/runtimes/", "/invocations/"
    assert url.startswith(prefix) and url.endswith(suffix), url
    encoded = url[len(prefix):-len(suffix)]
    assert "/" not in encoded and ":" not in encoded, f"the ARN must be percent-encoded: {url}"
    assert urllib.parse.unquote(encoded) == stack.arn
    attrs = dict(kv.split("=", 1) for kv in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attrs["cloud.resource_id"] == stack.arn
    # The plain runtime has none of the other runtime's variables.
    plain = whoami(stack.data, stack.plain["agentRuntimeArn"], new_session_id("env-plain"))["env"]
    assert "MY_VAR" not in plain and plain["DOCKER_CONTAINER"] == "1"


def test_agent_receives_protocol_and_trace_headers_but_not_the_signature(stack):
    sid = new_session_id("hdr")
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    resp, seen = invoke(stack.data, stack.arn, sid, {"action": "whoami"}, contentType="application/json",
                        accept="application/json, text/event-stream", traceParent=traceparent,
                        traceState="vendor=abc", baggage="userId=alice,k=v")
    h = seen["headers"]
    assert h["x-amzn-bedrock-agentcore-runtime-session-id"] == sid
    request_id = h["x-amzn-bedrock-agentcore-runtime-request-id"]
    assert request_id and request_id == resp["ResponseMetadata"]["RequestId"]
    assert h["content-type"] == "application/json"
    assert h["accept"] == "application/json, text/event-stream"
    assert h["traceparent"] == traceparent
    assert h["tracestate"] == "vendor=abc"
    assert h["baggage"] == "userId=alice,k=v"
    for secret in ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"):
        assert secret not in h, (secret, h)
    # Trace headers are echoed to the caller.
    assert resp["traceParent"] == traceparent
    assert resp["baggage"] == "userId=alice,k=v"
    # Each request has its own request id.
    _, second = invoke(stack.data, stack.arn, sid, {"action": "whoami"})
    assert second["headers"]["x-amzn-bedrock-agentcore-runtime-request-id"] != request_id
    assert "traceparent" not in second["headers"], "trace headers only when the caller sends them"


def add_headers(client, extra):
    def hook(request, **_):
        for k, v in extra.items():
            request.headers[k] = v
    client.meta.events.register("before-sign.bedrock-agentcore.InvokeAgentRuntime", hook)


def test_custom_headers_reach_the_agent_only_when_allowlisted(stack):
    client = boto_client(stack.emu.url, "bedrock-agentcore")
    add_headers(client, {"X-Custom-App": "app-value", "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo": "bar",
                         "X-Not-Listed": "nope"})
    allowed = whoami(client, stack.arn, new_session_id("allow"))["headers"]
    assert allowed.get("x-custom-app") == "app-value", allowed
    assert allowed.get("x-amzn-bedrock-agentcore-runtime-custom-foo") == "bar", allowed
    assert "x-not-listed" not in allowed
    assert "authorization" not in allowed
    plain = whoami(client, stack.plain["agentRuntimeArn"], new_session_id("noallow"))["headers"]
    for name in ("x-custom-app", "x-amzn-bedrock-agentcore-runtime-custom-foo", "x-not-listed", "authorization"):
        assert name not in plain, (name, plain)


def allowlisted_runtime_or_rejection(stack, name, allowlist):
    """Create a runtime allow-listing `allowlist`; None if the control plane refuses it (also fine)."""
    try:
        return stack.runtime(name, requestHeaderConfiguration={"requestHeaderAllowlist": allowlist})
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ValidationException", e.response
        return None


def test_x_amzn_headers_cannot_be_allowlisted(stack):
    # runtime-contract.md section 6: any header may be allow-listed except the restricted list, x-amz-*
    # and x-amzn-* other than the X-Amzn-Bedrock-AgentCore-Runtime-Custom- prefix. The user id header
    # in particular is the caller's identity (the service mints the workload token from it).
    rt = allowlisted_runtime_or_rejection(stack, "amzn_allowlist",
                                          ["X-Amzn-Bedrock-AgentCore-Runtime-User-Id", "X-Amzn-Other-Thing"])
    if rt is None:
        return
    client = boto_client(stack.emu.url, "bedrock-agentcore")
    add_headers(client, {"X-Amzn-Other-Thing": "spoofed"})
    seen = whoami(client, rt["agentRuntimeArn"], new_session_id("amzn"), runtimeUserId="user-1")["headers"]
    assert "x-amzn-other-thing" not in seen, seen
    assert "x-amzn-bedrock-agentcore-runtime-user-id" not in seen, seen


def test_restricted_headers_cannot_be_allowlisted(stack):
    # runtime-contract.md section 6: the restricted list (Cookie, User-Agent, X-Forwarded-*, Accept-*, ...)
    # is never forwarded, allow-listed or not.
    rt = allowlisted_runtime_or_rejection(stack, "restricted_allowlist",
                                          ["Cookie", "User-Agent", "X-Forwarded-For", "Accept-Language"])
    if rt is None:
        return
    client = boto_client(stack.emu.url, "bedrock-agentcore")
    add_headers(client, {"Cookie": "session=abc", "X-Forwarded-For": "10.9.8.7", "Accept-Language": "en"})
    seen = whoami(client, rt["agentRuntimeArn"], new_session_id("restricted"))["headers"]
    for name in ("cookie", "user-agent", "x-forwarded-for", "accept-language"):
        assert name not in seen, (name, seen)


def test_invoke_by_bare_runtime_id_and_account(stack):
    sid = new_session_id("bare")
    _, body = invoke(stack.data, stack.rt["agentRuntimeId"], sid, {"action": "echo"}, accountId=ACCOUNT)
    assert body == {"echo": {"action": "echo"}}
    # Same runtime, same session: the full ARN reaches the same container.
    assert whoami(stack.data, stack.arn, sid)["counter"] == 2


# --- streaming -----------------------------------------------------------------------------------------


def read_events(body):
    """Read an SSE body byte by byte, stamping each event with its arrival time (ms since epoch)."""
    events, buf = [], b""
    for byte in body.iter_chunks(chunk_size=1):
        buf += byte
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            text = raw.decode()
            assert text.startswith("data: "), text
            events.append((time.time() * 1000, json.loads(text[len("data: "):])))
    assert buf.strip() == b"", buf
    return events


def test_stream_is_relayed_incrementally_and_in_order(stack):
    started = time.time() * 1000
    resp = stack.data.invoke_agent_runtime(agentRuntimeArn=stack.arn, runtimeSessionId=new_session_id("stream"),
                                           payload=json.dumps({"action": "stream", "chunks": 5, "delay_ms": 400}))
    assert resp["contentType"].startswith("text/event-stream")
    assert resp["statusCode"] == 200
    events = read_events(resp["response"])
    assert [e["i"] for _, e in events] == [0, 1, 2, 3, 4]
    (first_arrival, first), (last_arrival, last) = events[0], events[-1]
    # The agent really spaced its events (~1600 ms from first to last).
    assert last["sent_ms"] - first["sent_ms"] >= 1400, events
    # The first event reached us long before the agent even produced the last one.
    assert first_arrival < last["sent_ms"] - 800, (first_arrival, last["sent_ms"], events)
    assert last_arrival - first_arrival >= 1000, events
    # The response headers (and first event) came early, not after the whole stream.
    assert first_arrival - started < last["sent_ms"] - started - 800
    # Every event arrives after it was sent and in the order sent.
    arrivals = [a for a, _ in events]
    assert arrivals == sorted(arrivals)
    for arrival, e in events:
        assert arrival >= e["sent_ms"] - 50, (arrival, e)


def test_stream_through_the_cli(stack, tmp_path):
    out = tmp_path / "stream.txt"
    meta = stack.cli.json("bedrock-agentcore", "invoke-agent-runtime", "--agent-runtime-arn", stack.arn,
                          "--runtime-session-id", new_session_id("cli-stream"), "--payload",
                          json.dumps({"action": "stream", "chunks": 4, "delay_ms": 50}), str(out))
    assert meta["contentType"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in out.read_text().split("\n\n") if line.strip()]
    assert [e["i"] for e in events] == [0, 1, 2, 3]


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 400, 404, 302])
def test_agent_error_status_becomes_runtime_client_error(stack, status):
    sid = new_session_id(f"fail{status}")
    first = whoami(stack.data, stack.arn, sid)
    with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
        invoke(stack.data, stack.arn, sid, {"action": "fail", "status": status, "body": "secret agent detail"})
    code, http_status, message = error_of(e)
    assert (code, http_status) == ("RuntimeClientError", 424)
    assert message == (f"Received error ({status}) from runtime. "
                       "Please check your CloudWatch logs for more information.")
    assert "secret agent detail" not in message
    # An error answer does not end the session.
    after = whoami(stack.data, stack.arn, sid)
    assert (after["hostname"], after["counter"]) == (first["hostname"], 3)


@pytest.mark.parametrize("status", [201, 202])
def test_agent_success_statuses_other_than_200_are_passed_through(stack, status):
    resp = stack.data.invoke_agent_runtime(agentRuntimeArn=stack.arn, runtimeSessionId=new_session_id("2xx"),
                                           payload=json.dumps({"action": "fail", "status": status, "body": "fine"}))
    assert resp["statusCode"] == status
    assert json.loads(resp["response"].read()) == {"error": "fine"}


def test_agent_error_through_the_cli_exits_255(stack, tmp_path):
    proc = stack.cli.run("bedrock-agentcore", "invoke-agent-runtime", "--agent-runtime-arn", stack.arn,
                         "--runtime-session-id", new_session_id("cli-fail"), "--payload",
                         json.dumps({"action": "fail", "status": 500}), str(tmp_path / "out"), check=False)
    assert proc.returncode == 255, (proc.returncode, proc.stdout, proc.stderr)
    assert "RuntimeClientError" in proc.stderr
    assert GENERIC_500 in proc.stderr


def test_debug_errors_adds_the_agents_body(emulators, ready_runtime):
    emu = emulators("--debug-errors")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    arn = ready_runtime(control, "debug_errors")["agentRuntimeArn"]
    with pytest.raises(data.exceptions.RuntimeClientError) as e:
        invoke(data, arn, new_session_id("dbg"), {"action": "fail", "status": 500, "body": "kaboom-detail-42"})
    code, status, message = error_of(e)
    assert (code, status) == ("RuntimeClientError", 424)
    assert message.startswith(GENERIC_500)
    assert "kaboom-detail-42" in message


def test_agent_exiting_at_start_up_fails_the_invocation_with_its_output(stack):
    rt = stack.runtime("exits_on_start", environmentVariables={"AGENT_EXIT_ON_START": "3"})
    # The agent exits within milliseconds of its start: a few attempts, so that the report does not
    # depend on whether it is already gone when the emulator first looks at the new container.
    for attempt in range(6):
        sid = new_session_id(f"exit{attempt}")
        began = time.time()
        with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
            invoke(stack.data, rt["agentRuntimeArn"], sid, {"action": "echo"})
        # The budget is 60 s; the sandbox's creation alone took up to 24 s on a loaded CI machine.
        assert time.time() - began < 45, "a crashed start-up must not wait for the whole start-up budget"
        code, status, message = error_of(e)
        assert (code, status) == ("RuntimeClientError", 424)
        assert message.startswith("Runtime initialization time exceeded"), (attempt, message)
        assert "exited with code 3" in message, (attempt, message)
        assert "ImportError: test-agent was told to fail at start-up" in message, (attempt, message)
        assert session_containers(sid) == [], "the failed sandbox must be removed"
    assert "ImportError: test-agent was told to fail at start-up" in stack.emu.log()


def in_parallel(calls):
    """Run the callables at once (one thread each); returns their results or exceptions, in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as e:  # returned to the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return results


def start_up_report(result):
    """(error code, exit code reported?, agent's stderr included?) of a failed invocation."""
    assert isinstance(result, ClientError), result
    message = result.response["Error"]["Message"]
    return (result.response["Error"]["Code"], message.startswith("Runtime initialization time exceeded"),
            "exited with code 4" in message, "ImportError: test-agent was told to fail at start-up" in message)


def test_concurrent_failing_starts_all_report_the_agents_exit(stack):
    rt = stack.runtime("exits_concurrently", environmentVariables={"AGENT_EXIT_ON_START": "4"})
    arn = rt["agentRuntimeArn"]
    expected = ("RuntimeClientError", True, True, True)
    # Four callers of one new session share its single (failing) start.
    sid = new_session_id("exit-race")
    clients = [boto_client(stack.emu.url, "bedrock-agentcore") for _ in range(6)]
    shared = in_parallel([lambda c=c: invoke(c, arn, sid, {"action": "echo"}) for c in clients[:4]])
    assert [start_up_report(r) for r in shared] == [expected] * 4, shared
    assert session_containers(sid) == []
    # A failed start is not cached: the next call starts again and fails the same way.
    with pytest.raises(ClientError) as e:
        invoke(stack.data, arn, sid, {"action": "echo"})
    assert start_up_report(e.value) == expected, e.value
    # Several sessions starting at once (the agents exit while Docker is busy) are reported the same way.
    for _ in range(2):
        sids = [new_session_id("exit-many") for _ in clients]
        many = in_parallel([lambda c=c, s=s: invoke(c, arn, s, {"action": "echo"}) for c, s in zip(clients, sids)])
        assert [start_up_report(r) for r in many] == [expected] * len(clients), \
            [r.response["Error"]["Message"].splitlines()[0] for r in many]
        assert all(session_containers(s) == [] for s in sids)


def test_agent_that_never_becomes_healthy_times_out(emulators, ready_runtime):
    emu = emulators("--startup-timeout", "3")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    arn = ready_runtime(control, "never_healthy", environmentVariables={"AGENT_PING_STATUS": "503"})["agentRuntimeArn"]
    sid = new_session_id("unhealthy")
    began = time.time()
    with pytest.raises(data.exceptions.RuntimeClientError) as e:
        invoke(data, arn, sid, {"action": "echo"})
    elapsed = time.time() - began
    # The 3 s limit, not the 60 s default; the rest is the sandbox's creation, which took up to 24 s
    # on a loaded CI machine.
    assert 2.5 <= elapsed <= 45, elapsed
    code, status, message = error_of(e)
    assert (code, status) == ("RuntimeClientError", 424)
    assert message.startswith("Runtime initialization time exceeded"), message
    assert session_containers(sid) == []


def test_missing_image_fails_the_version_and_invocations(stack):
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/does-not-exist:v1"
    created = create_runtime(stack.control, "missing_image",
                             agentRuntimeArtifact={"containerConfiguration": {"containerUri": uri}})
    rt = wait_for_status(stack.control, created["agentRuntimeId"], wanted=("CREATE_FAILED",), timeout=150)
    assert rt["status"] == "CREATE_FAILED", rt
    reason = rt["failureReason"]
    assert uri in reason
    assert "docker build -t does-not-exist:v1" in reason
    assert "docker tag" in reason
    sid = new_session_id("missing")
    began = time.time()
    with pytest.raises(ClientError) as e:
        invoke(stack.data, created["agentRuntimeArn"], sid, {"action": "echo"})
    assert time.time() - began < 10
    _, status, _ = error_of(e)
    assert 400 <= status < 500, e.value.response
    assert session_containers(sid) == []


def test_unknown_runtime_and_unknown_qualifier_are_not_found(stack):
    unknown = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/nosuch_agent-AbCdEf1234"
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException) as e:
        invoke(stack.data, unknown, new_session_id("nf"), {"action": "echo"})
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)
    sid = new_session_id("nfq")
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException) as e:
        invoke(stack.data, stack.arn, sid, {"action": "echo"}, qualifier="no_such_endpoint")
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)
    assert session_containers(sid) == []
    # The explicit DEFAULT qualifier works.
    _, body = invoke(stack.data, stack.arn, sid, {"action": "echo"}, qualifier="DEFAULT")
    assert body == {"echo": {"action": "echo"}}


def test_control_plane_only_emulator_refuses_invocations(emulators, ready_runtime):
    emu = emulators("--sandbox", "none")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    arn = ready_runtime(control, "no_sandbox")["agentRuntimeArn"]
    sid = new_session_id("none")
    with pytest.raises(data.exceptions.RuntimeClientError) as e:
        invoke(data, arn, sid, {"action": "echo"})
    code, status, message = error_of(e)
    assert (code, status) == ("RuntimeClientError", 424)
    assert "--sandbox docker" in message
    assert session_containers(sid) == []
