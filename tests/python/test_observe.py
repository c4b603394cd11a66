"""Session usage and cost, metrics, the `sessions`/`logs` commands, and the dashboard in a real
headless browser (Chromium from Debian's packages)."""
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import BINARY, Cli, Emulator, boto_client, create_runtime, wait_for_status


@pytest.fixture
def stack(tmp_path):
    emu = Emulator(extra_args=["--max-tps-per-endpoint", "0"]).start(tmp_path / "emulator.log")
    yield emu
    emu.stop()


def runtime(url, name, **kw):
    control = boto_client(url, "bedrock-agentcore-control")
    rt = create_runtime(control, name, **kw)
    assert wait_for_status(control, rt["agentRuntimeId"])["status"] == "READY"
    return rt


def invoke(url, arn, session, payload):
    data = boto_client(url, "bedrock-agentcore")
    return json.loads(data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps(payload))["response"].read())


def report(url):
    out = subprocess.run([str(BINARY), "sessions", "--json", "--endpoint", url], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def session_row(url, session):
    return next(s for s in report(url)["sessions"] if s["session_id"] == session)


def test_cpu_seconds_move_with_work_and_stay_flat_while_idle(stack):
    rt = runtime(stack.url, "metered")
    session = f"meter-{uuid.uuid4()}"
    invoke(stack.url, rt["agentRuntimeArn"], session, {"action": "burn", "ms": 1500})
    first = session_row(stack.url, session)
    assert first["state"] == "healthy" and first["invocations"] == 1
    assert first["cpu_seconds"] >= 0.5, first
    assert first["peak_memory_bytes"] > 0 and first["estimated_cost_usd"] > 0
    time.sleep(2)
    idle = session_row(stack.url, session)
    assert idle["cpu_seconds"] - first["cpu_seconds"] < 0.2, (first, idle)
    assert idle["idle_seconds"] >= 1.5
    invoke(stack.url, rt["agentRuntimeArn"], session, {"action": "burn", "ms": 1500})
    busy = session_row(stack.url, session)
    assert busy["cpu_seconds"] - idle["cpu_seconds"] >= 0.5, (idle, busy)
    totals = next(t for t in report(stack.url)["totals"] if t["runtime_id"] == rt["agentRuntimeId"])
    assert totals["invocations"] == 2 and totals["live"] == 1

    boto_client(stack.url, "bedrock-agentcore").stop_runtime_session(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=session)
    deadline = time.time() + 20
    while (row := session_row(stack.url, session))["state"] != "ended" and time.time() < deadline:
        time.sleep(0.3)
    assert row["state"] == "ended" and row["ended_reason"] == "stopped by StopRuntimeSession", row
    assert row["cpu_seconds"] >= busy["cpu_seconds"]

    table = subprocess.run([str(BINARY), "sessions", "--endpoint", stack.url], capture_output=True, text=True, check=True).stdout
    assert session in table and "stopped by StopRuntimeSession" in table


def test_a_starting_session_is_listed_and_a_failed_start_says_why(stack):
    slow = runtime(stack.url, "slow_start", environmentVariables={"AGENT_STARTUP_DELAY_MS": "3000"})
    session = f"slow-{uuid.uuid4()}"
    result = {}
    caller = threading.Thread(target=lambda: result.update(invoke(stack.url, slow["agentRuntimeArn"], session, {})))
    caller.start()
    deadline, row = time.time() + 10, None
    while time.time() < deadline and caller.is_alive():
        row = next((s for s in report(stack.url)["sessions"] if s["session_id"] == session), None)
        if row:
            break
        time.sleep(0.1)
    assert row is not None and row["state"] == "starting", row
    assert (row["runtime_id"], row["version"], row["invocations"]) == (slow["agentRuntimeId"], 1, 0)
    caller.join(30)
    assert "echo" in result, result
    assert session_row(stack.url, session)["state"] == "healthy"

    broken = runtime(stack.url, "no_start", environmentVariables={"AGENT_EXIT_ON_START": "3"})
    failed = f"fail-{uuid.uuid4()}"
    data = boto_client(stack.url, "bedrock-agentcore")
    with pytest.raises(data.exceptions.RuntimeClientError):
        data.invoke_agent_runtime(agentRuntimeArn=broken["agentRuntimeArn"], runtimeSessionId=failed, payload=b"{}")
    row = session_row(stack.url, failed)
    assert row["state"] == "ended" and row["ended_at_ms"] is not None, row
    assert row["ended_reason"] == "failed to start: the agent exited with code 3 during initialization", row
    table = subprocess.run([str(BINARY), "sessions", "--endpoint", stack.url], capture_output=True, text=True, check=True).stdout
    assert failed in table and "exited with code 3" in table


def test_prices_are_configurable(tmp_path):
    emu = Emulator(extra_args=["--price-vcpu-hour", "3600", "--price-gb-hour", "0"]).start(tmp_path / "emulator.log")
    try:
        rt = runtime(emu.url, "priced")
        session = f"price-{uuid.uuid4()}"
        invoke(emu.url, rt["agentRuntimeArn"], session, {"action": "burn", "ms": 1000})
        row = session_row(emu.url, session)
        # At $3600 per vCPU-hour a CPU-second costs a dollar; memory is free here.
        assert row["estimated_cost_usd"] == pytest.approx(row["cpu_seconds"], rel=1e-6)
        assert report(emu.url)["prices"] == {"vcpu_hour_usd": 3600.0, "gb_hour_usd": 0.0}
    finally:
        emu.stop()


def test_prometheus_metrics(stack):
    rt = runtime(stack.url, "measured")
    session = f"metric-{uuid.uuid4()}"
    invoke(stack.url, rt["agentRuntimeArn"], session, {"action": "echo"})
    data = boto_client(stack.url, "bedrock-agentcore")
    with pytest.raises(data.exceptions.RuntimeClientError):
        data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=session, payload=b'{"action":"fail","status":500}')
    text = urllib.request.urlopen(f"{stack.url}/metrics").read().decode()
    rid = rt["agentRuntimeId"]
    assert f'agentcore_local_requests_total{{operation="InvokeAgentRuntime",runtime="{rid}",outcome="success"}} 1' in text
    assert f'agentcore_local_requests_total{{operation="InvokeAgentRuntime",runtime="{rid}",outcome="error"}} 1' in text
    assert 'agentcore_local_errors_total{type="RuntimeClientError"} 1' in text
    assert "agentcore_local_cold_start_seconds_count 1" in text
    assert "agentcore_local_live_sessions 1" in text
    assert f'agentcore_local_sandbox_memory_bytes{{runtime="{rid}",session="{session}"}}' in text


def test_logs_command_prints_and_follows(stack):
    rt = runtime(stack.url, "tailed")
    session = f"tail-{uuid.uuid4()}"
    invoke(stack.url, rt["agentRuntimeArn"], session, {"action": "log", "stdout": "first line", "stderr": "an error"})
    time.sleep(0.5)
    out = subprocess.run([str(BINARY), "logs", rt["agentRuntimeId"], "--endpoint", stack.url], capture_output=True, text=True, check=True).stdout
    assert "first line" in out and "[stderr] an error" in out
    follower = subprocess.Popen([str(BINARY), "logs", rt["agentRuntimeId"], "--session", session, "--follow", "--endpoint", stack.url],
                                stdout=subprocess.PIPE, text=True)
    try:
        invoke(stack.url, rt["agentRuntimeArn"], session, {"action": "log", "stdout": "while following"})
        deadline = time.time() + 10
        seen = []
        while time.time() < deadline:
            line = follower.stdout.readline()
            seen.append(line)
            if "while following" in line:
                break
        assert any("while following" in l for l in seen), seen
    finally:
        follower.kill()
        follower.wait()


def test_local_endpoints_need_loopback_or_a_signature(tmp_path):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("192.0.2.1", 9))  # no packet is sent; this picks the outgoing interface's address
    ip = probe.getsockname()[0]
    probe.close()
    assert not ip.startswith("127."), "the test needs a non-loopback address on this machine"
    emu = Emulator(extra_args=["--listen", "0.0.0.0:0", "--sandbox", "none"]).start(tmp_path / "emulator.log")
    try:
        port = emu.url.rsplit(":", 1)[1]
        url = f"http://{ip}:{port}/_agentcore-local/sessions"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url)
        assert e.value.code == 403 and e.value.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(Credentials("test", "test"), "bedrock-agentcore", "us-east-1").add_auth(req)
        signed = urllib.request.Request(url, headers=dict(req.headers.items()))
        assert json.loads(urllib.request.urlopen(signed).read())["sessions"] == []
    finally:
        emu.stop()


def chromium_dom(url):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is required (apt-get install chromium); .ci/run installs it"
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=2000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_dashboard_in_a_headless_browser(stack, tmp_path):
    cli = Cli(stack.url)
    created = cli.json(
        "bedrock-agentcore-control", "create-agent-runtime", "--agent-runtime-name", "dashboard_agent",
        "--agent-runtime-artifact", json.dumps({"containerConfiguration": {"containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agentcore-local-test-agent:latest"}}),
        "--role-arn", "arn:aws:iam::123456789012:role/AgentRole", "--network-configuration", "networkMode=PUBLIC",
    )
    control = boto_client(stack.url, "bedrock-agentcore-control")
    assert wait_for_status(control, created["agentRuntimeId"])["status"] == "READY"
    session = f"dash-{uuid.uuid4()}"
    invoke(stack.url, created["agentRuntimeArn"], session, {"action": "log", "stdout": "shown in the browser"})
    dom = chromium_dom(f"{stack.url}/_agentcore-local/")
    assert "dashboard_agent" in dom and created["agentRuntimeId"] in dom
    assert session in dom, "the session appears after an invoke"
    assert "InvokeAgentRuntime" in dom and "DEFAULT → 1" in dom
    page = chromium_dom(f"{stack.url}/_agentcore-local/session?runtime={created['agentRuntimeId']}&session={session}")
    assert "shown in the browser" in page
