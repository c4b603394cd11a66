"""Direct code deployment end to end: a zip with the real bedrock-agentcore SDK, uploaded with
`aws s3 cp` into the emulator's S3, deployed with the CLI, invoked with boto3 and the CLI."""
import io
import json
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from conftest import staged_packages, ROLE_ARN, Cli, Emulator, boto_client, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
AGENT_SOURCE = ROOT / "fixtures" / "code-agent" / "main.py"
BASE_IMAGE = "agentcore-local-runtime:python3.11"


def zip_tree(root, dest):
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(root).as_posix())
    return dest


@pytest.fixture(scope="module")
def agent_zip(tmp_path_factory):
    """bedrock-agentcore and its dependencies installed with `pip install --target` (what the
    starter toolkit does), plus main.py, zipped flat. opentelemetry-distro brings the
    `opentelemetry-instrument` launcher that AgentCore's own examples put first in entryPoint."""
    staging = staged_packages(AGENT_SOURCE.parent / "requirements.txt", tmp_path_factory.mktemp("staging"))
    (staging / "main.py").write_text(AGENT_SOURCE.read_text())
    return zip_tree(staging, tmp_path_factory.mktemp("zip") / "agent.zip")


@pytest.fixture
def stack(tmp_path):
    subprocess.run(["docker", "image", "inspect", BASE_IMAGE], check=True, capture_output=True)
    emu = Emulator(extra_args=["--lifecycle-time-scale", "0.05", "--max-tps-per-endpoint", "0"])
    emu.start(tmp_path / "emulator.log")
    try:
        yield emu
    finally:
        emu.stop()


def deploy(cli, name, bucket, key, entry=("main.py",), runtime="PYTHON_3_11", env=None, idle=600):
    """`idle` seconds of idleRuntimeSessionTimeout, scaled by 0.05: 30 s by default, so a session
    outlives the gap between two invocations on a loaded machine (an AWS CLI start can take
    seconds); the idle-timeout test asks for 60 (3 s)."""
    artifact = {"codeConfiguration": {"code": {"s3": {"bucket": bucket, "prefix": key}},
                                      "runtime": runtime, "entryPoint": list(entry)}}
    extra = ["--environment-variables", json.dumps(env)] if env else []
    return cli.json(
        "bedrock-agentcore-control", "create-agent-runtime", "--agent-runtime-name", name,
        "--agent-runtime-artifact", json.dumps(artifact), "--role-arn", ROLE_ARN,
        "--network-configuration", "networkMode=PUBLIC",
        "--lifecycle-configuration", f"idleRuntimeSessionTimeout={idle},maxLifetime=28800", *extra,
    )


def invoke(data, arn, session, payload):
    resp = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps(payload))
    return resp, resp["response"]


def test_bedrock_agentcore_sdk_agent_from_a_zip(stack, agent_zip, tmp_path):
    cli = Cli(stack.url)
    control = boto_client(stack.url, "bedrock-agentcore-control")
    data = boto_client(stack.url, "bedrock-agentcore")
    cli.run("s3", "mb", "s3://agents")
    cli.run("s3", "cp", str(agent_zip), "s3://agents/my-agent.zip")
    head = cli.json("s3api", "head-object", "--bucket", "agents", "--key", "my-agent.zip")
    assert head["ContentLength"] == agent_zip.stat().st_size
    assert agent_zip.stat().st_size > 8 * 1024 * 1024 and "-" in head["ETag"], "large enough for a multipart upload"

    created = deploy(cli, "my_agent", "agents", "my-agent.zip")
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=120)
    assert rt["status"] == "READY", rt.get("failureReason")
    assert rt["agentRuntimeArtifact"]["codeConfiguration"]["runtime"] == "PYTHON_3_11"
    arn = created["agentRuntimeArn"]

    session = f"code-{uuid.uuid4()}"
    started = time.time()
    resp, body = invoke(data, arn, session, {"mode": "echo", "prompt": "hi"})
    first = json.loads(body.read())
    cold_start_s = time.time() - started
    assert resp["contentType"] == "application/json"
    assert first["echo"] == {"mode": "echo", "prompt": "hi"}
    assert first["session"] == session
    assert first["python"].startswith("3.11")
    assert (first["cwd"], first["pythonpath"]) == ("/var/task", "/var/task")
    assert "/var/task/bin" in first["path"].split(":") and first["unbuffered"] == "1"
    assert first["code_on_sys_path"] and not first["instrumented"]
    assert first["bytecode_cached"], "modules were not compiled once at deploy time"
    print(f"code-zip cold start to first response: {cold_start_s:.2f}s")

    # The CLI reaches the same sandbox: module state survives between invocations of a session.
    out = tmp_path / "out.json"
    meta = cli.json("bedrock-agentcore", "invoke-agent-runtime", "--agent-runtime-arn", arn,
                    "--runtime-session-id", session, "--payload", json.dumps({"mode": "echo"}), str(out))
    assert meta["runtimeSessionId"] == session and meta["statusCode"] == 200
    second = json.loads(out.read_text())
    assert (second["hostname"], second["pid"], second["invocations"]) == (first["hostname"], first["pid"], 2)

    # A generator entrypoint streams server-sent events chunk by chunk.
    resp, body = invoke(data, arn, session, {"mode": "stream", "chunks": 4, "delay": 0.4})
    assert resp["contentType"].startswith("text/event-stream")
    arrivals, events, buffer = [], [], b""
    for chunk in body.iter_chunks(chunk_size=1):
        buffer += chunk
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            events.append(json.loads(raw.decode().removeprefix("data: ")))
            arrivals.append(time.time())
    assert [e["i"] for e in events] == [0, 1, 2, 3]
    assert arrivals[-1] - arrivals[0] > 0.8, "events arrived together: the stream was buffered"

    # A different session gets its own sandbox.
    other = json.loads(invoke(data, arn, f"code-{uuid.uuid4()}", {})[1].read())
    assert other["hostname"] != first["hostname"] and other["invocations"] == 1


def test_async_task_keeps_the_session_alive_past_the_idle_timeout(stack, agent_zip):
    cli = Cli(stack.url)
    control = boto_client(stack.url, "bedrock-agentcore-control")
    data = boto_client(stack.url, "bedrock-agentcore")
    cli.run("s3", "mb", "s3://busy-agents")
    cli.run("s3", "cp", str(agent_zip), "s3://busy-agents/agent.zip")
    created = deploy(cli, "busy_agent", "busy-agents", "agent.zip", idle=60)
    assert wait_for_status(control, created["agentRuntimeId"], timeout=120)["status"] == "READY"
    arn = created["agentRuntimeArn"]
    session = f"busy-{uuid.uuid4()}"
    first = json.loads(invoke(data, arn, session, {})[1].read())
    # idleRuntimeSessionTimeout 60 s scaled by 0.05 is 3 s; the task keeps /ping HealthyBusy for 9 s.
    invoke(data, arn, session, {"mode": "busy", "seconds": 9})[1].read()
    time.sleep(6)
    during = json.loads(invoke(data, arn, session, {})[1].read())
    assert during["hostname"] == first["hostname"], "HealthyBusy kept the session past its idle timeout"
    # After the task ends the session idles out (watched without invoking, which would keep it
    # active), and the next request starts a fresh sandbox.
    deadline = time.time() + 30
    while time.time() < deadline and session_containers(session):
        time.sleep(0.5)
    assert not session_containers(session), "the session never idled out after its async task finished"
    after = json.loads(invoke(data, arn, session, {})[1].read())
    assert after["hostname"] != first["hostname"] and after["invocations"] == 1


def test_a_launcher_in_the_entry_point_wraps_the_script(stack, agent_zip):
    """entryPoint ["opentelemetry-instrument", "main.py"]: the launcher pip wrote into the zip's bin/
    (its shebang names the build machine's python) starts the script under auto-instrumentation."""
    cli = Cli(stack.url)
    control = boto_client(stack.url, "bedrock-agentcore-control")
    data = boto_client(stack.url, "bedrock-agentcore")
    cli.run("s3", "mb", "s3://otel-agents")
    cli.run("s3", "cp", str(agent_zip), "s3://otel-agents/agent.zip")
    # No collector here: exporters off, as a developer would set them locally.
    quiet = {f"OTEL_{kind}_EXPORTER": "none" for kind in ("TRACES", "METRICS", "LOGS")}
    created = deploy(cli, "otel_agent", "otel-agents", "agent.zip", entry=("opentelemetry-instrument", "main.py"), env=quiet)
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=120)
    assert rt["status"] == "READY", rt.get("failureReason")
    out = json.loads(invoke(data, created["agentRuntimeArn"], f"otel-{uuid.uuid4()}", {"mode": "echo"})[1].read())
    assert out["instrumented"], out
    assert out["echo"] == {"mode": "echo"} and out["cwd"] == "/var/task" and out["unbuffered"] == "1"
    # The launcher put its sitecustomize first; the code directory stays importable.
    assert out["pythonpath"].split(":")[-1] == "/var/task" and out["code_on_sys_path"], out


def session_containers(session):
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=agentcore-local.session-id={session}"], capture_output=True, text=True
    ).stdout
    return out.split()


def make_zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "case, body, expect",
    [
        ("corrupt", b"this is not a zip", "not a valid zip"),
        ("traversal", make_zip({"../escape.py": "x", "main.py": "x"}), "path traversal"),
        ("bomb", make_zip({"main.py": "x", "zeros.bin": b"\0" * (30 << 20)}), "zip bomb"),
        ("no-entry-point", make_zip({"app.py": "print(1)"}), "entryPoint 'main.py' is not a file"),
    ],
)
def test_bad_code_fails_the_version_with_a_reason(stack, case, body, expect):
    s3 = boto_client(stack.url, "s3")
    control = boto_client(stack.url, "bedrock-agentcore-control")
    s3.create_bucket(Bucket="bad-code")
    s3.put_object(Bucket="bad-code", Key=f"{case}.zip", Body=body)
    created = deploy(Cli(stack.url), f"bad_{case.replace('-', '_')}", "bad-code", f"{case}.zip")
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=60)
    assert rt["status"] == "CREATE_FAILED"
    assert expect in rt["failureReason"], rt["failureReason"]


def test_missing_object_and_missing_base_image_are_explained(stack):
    s3 = boto_client(stack.url, "s3")
    control = boto_client(stack.url, "bedrock-agentcore-control")
    cli = Cli(stack.url)
    s3.create_bucket(Bucket="code")
    created = deploy(cli, "no_object", "code", "missing.zip")
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=60)
    assert rt["status"] == "CREATE_FAILED" and "s3://code/missing.zip" in rt["failureReason"], rt["failureReason"]

    s3.put_object(Bucket="code", Key="ok.zip", Body=make_zip({"main.py": "print(1)"}))
    missing_runtime = "PYTHON_3_12"
    present = subprocess.run(["docker", "image", "inspect", "agentcore-local-runtime:python3.12"], capture_output=True)
    if present.returncode == 0:
        missing_runtime = "PYTHON_3_14"  # 3.12 was built on this machine; 3.14 cannot be built offline
    created = deploy(cli, "no_base", "code", "ok.zip", runtime=missing_runtime)
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=60)
    assert rt["status"] == "CREATE_FAILED"
    assert f"agentcore-local images build {missing_runtime}" in rt["failureReason"], rt["failureReason"]


@pytest.fixture(scope="module")
def strands_zip(tmp_path_factory):
    staging = staged_packages(ROOT / "fixtures" / "strands-agent" / "requirements.txt", tmp_path_factory.mktemp("strands"))
    (staging / "main.py").write_text((ROOT / "fixtures" / "strands-agent" / "main.py").read_text())
    return zip_tree(staging, tmp_path_factory.mktemp("zip") / "strands.zip")


def test_a_strands_agent_runs_its_tool_loop_in_the_sandbox(stack, strands_zip):
    cli = Cli(stack.url)
    control = boto_client(stack.url, "bedrock-agentcore-control")
    data = boto_client(stack.url, "bedrock-agentcore")
    cli.run("s3", "mb", "s3://strands")
    cli.run("s3", "cp", str(strands_zip), "s3://strands/agent.zip")
    created = deploy(cli, "strands_agent", "strands", "agent.zip")
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=180)
    assert rt["status"] == "READY", rt.get("failureReason")
    resp, body = invoke(data, created["agentRuntimeArn"], f"strands-{uuid.uuid4()}", {"prompt": "What is 2 + 3?"})
    answer = json.loads(body.read())
    assert answer == {"answer": "The tool says 2 + 3 = 5.", "tool_calls": 1}
