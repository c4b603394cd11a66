"""Real agent frameworks, unmodified, offline (issue 12's proof): a Strands agent with the default
`BedrockModel` and a `@tool`, a LangGraph graph around langchain-aws `ChatBedrockConverse` (both
code zips, fixtures/build-zips.sh) and a CrewAI crew (a container image: its install is larger than
a code zip may be, fixtures/crewai-agent/README.md).

Two kinds of test:
- `test_*_in_a_session`: deployed with boto3 (zip uploaded to the emulator's S3, CreateAgentRuntime,
  InvokeAgentRuntime); the agent's model calls go to the emulator's local Bedrock through the
  AWS_ENDPOINT_URL and execution-role credentials that sessions are given. These NEED the emulator
  side of issue 12 (Bedrock served, credentials and endpoint handed to sessions).
- `test_*_offline`: the same zip or image started by hand in the runtime's base image with no
  network at all; startup and one invocation (against a model endpoint that refuses connections)
  must make no network attempt other than that endpoint. They check the agents themselves.
"""
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION, ROLE_ARN, Emulator, boto_client, docker, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
BASE_IMAGE = "agentcore-local-runtime:python3.11"
CREWAI_IMAGE = "agentcore-local-crewai-agent:latest"
STRANDS_SCRIPT = FIXTURES / "strands-tool-agent" / "model-script.json"


def code_zip(name):
    """The fixture's zip, built (or found up to date) by the same script scripts/test runs."""
    subprocess.run([str(FIXTURES / "build-zips.sh"), name], check=True, timeout=1800)
    path = ROOT / "target" / "fixtures" / "zips" / f"{name}.zip"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def strands_zip():
    return code_zip("strands-tool-agent")


@pytest.fixture(scope="module")
def langgraph_zip():
    return code_zip("langgraph-agent")


@pytest.fixture(scope="module")
def crewai_image():
    subprocess.run(["docker", "image", "inspect", BASE_IMAGE], check=True, capture_output=True)
    subprocess.run([str(FIXTURES / "crewai-agent" / "build.sh")], check=True, timeout=3600)
    return CREWAI_IMAGE


def data_client(url):
    """bedrock-agentcore with a read timeout above a framework's cold start plus its model calls."""
    return boto3.session.Session().client(
        "bedrock-agentcore", endpoint_url=url, region_name=REGION, aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(read_timeout=900, retries={"total_max_attempts": 1}),
    )


def start_emulator(tmp_path, *flags, startup_timeout=300):
    """The emulator, waiting long enough for a framework's cold start on a busy 2-core machine
    (crewai reads some 2,000 modules through the image's overlay file system)."""
    subprocess.run(["docker", "image", "inspect", BASE_IMAGE], check=True, capture_output=True)
    flags = ["--startup-timeout", str(startup_timeout), *flags]
    return Emulator(extra_args=flags).start(tmp_path / "emulator.log")


def deploy_zip(url, zip_path, name, entry="main.py", env=None):
    """Upload to the emulator's S3 and create a PYTHON_3_11 code runtime from it; returns its ARN."""
    s3 = boto_client(url, "s3")
    control = boto_client(url, "bedrock-agentcore-control")
    bucket = f"agents-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(zip_path), bucket, f"{name}.zip")
    created = control.create_agent_runtime(
        agentRuntimeName=name,
        agentRuntimeArtifact={"codeConfiguration": {
            "code": {"s3": {"bucket": bucket, "prefix": f"{name}.zip"}},
            "runtime": "PYTHON_3_11", "entryPoint": [entry]}},
        roleArn=ROLE_ARN,
        networkConfiguration={"networkMode": "PUBLIC"},
        **({"environmentVariables": env} if env else {}),
    )
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=300)
    assert rt["status"] == "READY", rt.get("failureReason")
    return created["agentRuntimeArn"]


def invoke(url, arn, prompt, session=None, **fields):
    session = session or f"world-{uuid.uuid4()}"
    try:
        resp = data_client(url).invoke_agent_runtime(
            agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps({"prompt": prompt, **fields}))
    except botocore.exceptions.ClientError as e:
        raise AssertionError(f"{e}\nthe agent's output:\n{agent_logs(url, arn, session)}") from e
    body = resp["response"].read()
    assert resp["statusCode"] == 200, body
    return json.loads(body)


def agent_logs(url, arn, session):
    """The session's stdout and stderr as the emulator kept them (the last lines), to explain a failure."""
    query = urllib.parse.urlencode({"runtime": arn.rsplit("/", 1)[1], "session": session})
    lines, deadline = [], time.time() + 5  # the capture follows the sandbox's output a moment behind
    while not lines and time.time() < deadline:
        try:
            lines = urllib.request.urlopen(f"{url}/_agentcore-local/logs?{query}", timeout=10).read().decode().splitlines()
        except OSError as e:
            return f"(no logs: {e})"
        time.sleep(0.3)
    return "\n".join(json.loads(line).get("message", line)[:2000] for line in lines[-40:])


def model_calls(url):
    return json.loads(urllib.request.urlopen(f"{url}/_agentcore-local/model-calls").read())["modelCalls"]


# --- through the emulator (needs issue 12's emulator side) ----------------------------------------

def test_strands_tool_loop_in_a_session(tmp_path, strands_zip):
    """The scripted model asks for word_count, Strands runs the tool in the sandbox, and the model's
    final answer quotes the tool's result, which can only have come from the real tool."""
    rules = json.loads(STRANDS_SCRIPT.read_text())["rules"]
    sentence = next(r["reply"]["tool_use"]["input"]["text"] for r in rules if "tool_use" in r["reply"])
    words = str(len(sentence.split()))  # what word_count must return for the script's tool input
    emu = start_emulator(tmp_path, "--model-provider", f"script:{STRANDS_SCRIPT}")
    try:
        arn = deploy_zip(emu.url, strands_zip, "strands_tool_agent")
        session = f"world-{uuid.uuid4()}"
        out = invoke(emu.url, arn, "How many words are in the sentence about the fox?", session)
        assert out["tool_results"] == [words], out
        assert out["tool_calls"] == {"word_count": 1}, out
        assert out["answer"] == f"word_count says the sentence has {words} words.", out
        assert out["stop_reason"] == "end_turn"
        # Both model turns went through the emulator, streamed, with Strands' default model id.
        calls = [c for c in model_calls(emu.url) if c["model_id"] == out["model_id"]]
        assert [c["operation"] for c in calls] == ["ConverseStream", "ConverseStream"], calls
        assert all(c["provider"] == "script" and not c["error"] for c in calls), calls
        # The calls are known to come from this session (by its sandbox), and its log says so.
        runtime_id = arn.rsplit("/", 1)[1]
        assert all(c["session"] == {"runtime_id": runtime_id, "session_id": session} for c in calls), calls
        deadline = time.time() + 10
        while "model call ConverseStream" not in agent_logs(emu.url, arn, session) and time.time() < deadline:
            time.sleep(0.5)
        assert "model call ConverseStream" in agent_logs(emu.url, arn, session)
    finally:
        emu.stop()


def test_strands_memory_in_a_session(tmp_path, strands_zip):
    """Strands' AgentCoreMemorySessionManager inside deployed sessions (issue 13): the first runtime
    session tells the agent a fact; a second runtime session of the same actor is given it back from
    long-term memory; the first session, invoked again, restores its conversation. The agent reaches
    Memory and Bedrock with its session's credentials only."""
    emu = start_emulator(tmp_path)  # echo: the model's input is what the test reads back
    try:
        control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
        memory = control.create_memory(name="agent_memory", eventExpiryDuration=30, memoryStrategies=[
            {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["/facts/{actorId}/"]}}])["memory"]
        deadline = time.time() + 15
        while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE":
            assert time.time() < deadline, "memory never ACTIVE"
            time.sleep(0.1)
        arn = deploy_zip(emu.url, strands_zip, "strands_memory_agent", entry="memory_agent.py",
                         env={"MEMORY_ID": memory["id"]})
        first_session = f"world-{uuid.uuid4()}"
        first = invoke(emu.url, arn, "My favourite mountain is Aconcagua.", first_session, actor="zed")
        # Echo answers the user's message as the model got it (locally, extraction may already
        # have made the fact and retrieval put it into that message's context).
        assert first["answer"].endswith("My favourite mountain is Aconcagua."), first

        # The agent's events were written from inside the sandbox; extraction makes the fact.
        deadline = time.time() + 30
        while not data.list_memory_records(memoryId=memory["id"], namespace="/facts/zed/")["memoryRecordSummaries"]:
            assert time.time() < deadline, "the fact was never extracted"
            time.sleep(0.2)

        second = invoke(emu.url, arn, "Which mountain do I like best?", actor="zed")
        sent = json.dumps(second["messages"])
        assert "<user_context>" in sent and "Aconcagua" in sent, second
        sessions = data.list_sessions(memoryId=memory["id"], actorId="zed")["sessionSummaries"]
        assert len(sessions) == 2 and first_session in {s["sessionId"] for s in sessions}, sessions

        again = invoke(emu.url, arn, "What did I tell you?", first_session, actor="zed")
        texts = [" ".join(b.get("text", "") for b in m["content"]) for m in again["messages"]]
        # The first turn restored from the session's events, then this turn.
        assert len(texts) == 4 and "Aconcagua" in texts[0] and "What did I tell you?" in texts[2], again
    finally:
        emu.stop()


def test_langgraph_graph_in_a_session(tmp_path, langgraph_zip):
    emu = start_emulator(tmp_path)  # the default provider: echo
    try:
        arn = deploy_zip(emu.url, langgraph_zip, "langgraph_agent")
        prompt = f"hello from a LangGraph graph {uuid.uuid4()}"
        out = invoke(emu.url, arn, prompt)
        assert out["answer"] == prompt, out
        assert out["messages"] == 2 and out["usage"]["output_tokens"] > 0, out
        calls = [c for c in model_calls(emu.url) if c["model_id"] == "anthropic.claude-3-haiku-20240307-v1:0"]
        assert [c["operation"] for c in calls] == ["Converse"] and calls[0]["provider"] == "echo", calls
    finally:
        emu.stop()


def test_crewai_crew_in_a_session(tmp_path, crewai_image):
    emu = start_emulator(tmp_path, startup_timeout=600)
    try:
        control = boto_client(emu.url, "bedrock-agentcore-control")
        created = control.create_agent_runtime(
            agentRuntimeName="crewai_agent",
            agentRuntimeArtifact={"containerConfiguration": {
                "containerUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{crewai_image}"}},
            roleArn=ROLE_ARN,
            networkConfiguration={"networkMode": "PUBLIC"},
        )
        assert wait_for_status(control, created["agentRuntimeId"], timeout=120)["status"] == "READY"
        prompt = f"hello from a crew {uuid.uuid4()}"
        out = invoke(emu.url, created["agentRuntimeArn"], prompt)
        # Echo answers with the last user text, which is the task prompt crewai composed around ours;
        # crewai takes a reply without tool calls as the final answer.
        assert f"Current Task: {prompt}" in out["answer"], out
        assert out["provider"] == "BedrockCompletion", "crewai did not use its native Bedrock provider"
        assert out["usage"]["successful_requests"] == 1, out
        calls = [c for c in model_calls(emu.url) if c["model_id"] == out["model_id"]]
        assert "Converse" in [c["operation"] for c in calls], calls
    finally:
        emu.stop()


# --- the agents themselves, with no network at all ------------------------------------------------

# Loaded first by the interpreter (sitecustomize on PYTHONPATH): reports every Python-level attempt
# to resolve or connect to anything but loopback, with the stack that made it.
NETWORK_PROBE = '''
import socket, sys, traceback
LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
def report(what):
    sys.stderr.write("NETWORK ATTEMPT: " + what + "\\n" + "".join(traceback.format_stack(limit=8)))
    sys.stderr.flush()
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    if host not in LOOPBACK:
        report(f"getaddrinfo({host!r})")
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
        report(f"connect({address!r})")
    return _connect(self, address)
socket.socket.connect = connect
'''

# Python in the container: wait for /ping, then invoke once and print the status and body.
PING_THEN_INVOKE = '''
import json, sys, time, urllib.error, urllib.request
started = time.time()
while True:
    try:
        ping = json.loads(urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=2).read())
        break
    except (OSError, ValueError):
        if time.time() - started > 600:
            raise
        time.sleep(0.1)
ready_s = time.time() - started
req = urllib.request.Request("http://127.0.0.1:8080/invocations", data=json.dumps({"prompt": sys.argv[1]}).encode(),
                             headers={"Content-Type": "application/json"})
try:
    status, body = 200, urllib.request.urlopen(req, timeout=300).read().decode()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read().decode()
# Background exporters send in batches (OpenTelemetry's default delay is 5 s): give them the time.
time.sleep(7)
print(json.dumps({"ping": ping, "ready_s": ready_s, "status": status, "body": body}))
'''

# Where the agent is told its model lives: loopback, where nothing listens, so model calls fail fast.
OFFLINE_ENV = {
    "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "ASIAOFFLINE",
    "AWS_SECRET_ACCESS_KEY": "offline", "AWS_SESSION_TOKEN": "offline", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_MAX_ATTEMPTS": "1", "DOCKER_CONTAINER": "1",
}


def run_offline(tmp_path, image, pythonpath, mounts=(), workdir=None, command=(), env=None):
    """Start the agent with `--network none`, ping it, invoke it once; returns (report, stderr)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(NETWORK_PROBE)
    name = f"agentcore-local-offline-{uuid.uuid4().hex[:12]}"
    args = ["run", "-d", "--name", name, "--network", "none", "-v", f"{probe}:/probe:ro"]
    for host, container in mounts:
        args += ["-v", f"{host}:{container}:ro"]
    env = dict(OFFLINE_ENV, PYTHONPATH=f"/probe:{pythonpath}", PYTHONUNBUFFERED="1", **(env or {}))
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    if workdir:
        args += ["-w", workdir]
    docker(*args, image, *command)
    try:
        run = subprocess.run(["docker", "exec", name, "python3", "-c", PING_THEN_INVOKE, "How many words are here?"],
                             capture_output=True, text=True, timeout=1000)
        logs = docker("logs", name).stderr
        assert run.returncode == 0, run.stderr + logs
        return json.loads(run.stdout), logs
    finally:
        docker("rm", "-f", name, check=False)


def unpack(zip_path, dest):
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def attempts(logs):
    """The network attempts the probe saw, less those to the model endpoint the agent was given."""
    lines = [l for l in logs.splitlines() if l.startswith("NETWORK ATTEMPT:")]
    return [l for l in lines if "127.0.0.1" not in l]


@pytest.mark.parametrize("fixture", ["strands_zip", "langgraph_zip"])
def test_code_zip_starts_and_answers_offline(tmp_path, request, fixture):
    """As a session runs it (code read-only at /var/task, `python main.py`), without any network."""
    zip_path = request.getfixturevalue(fixture)
    code = unpack(zip_path, tmp_path / "code")
    # Bytecode compiled once beforehand, as the emulator does when it prepares a code version.
    docker("run", "--rm", "--network", "none", "-v", f"{code}:/var/task", BASE_IMAGE,
           "python", "-m", "compileall", "-q", "-j", "0", "/var/task")
    report, logs = run_offline(tmp_path, BASE_IMAGE, "/var/task", mounts=[(code, "/var/task")], workdir="/var/task",
                               command=["python", "main.py"])
    print(f"{fixture}: /ping answered {report['ready_s']:.1f}s after start")
    assert report["ping"]["status"] == "Healthy"
    assert attempts(logs) == [], logs
    # The invocation got as far as the model call, made to the endpoint the environment names.
    assert report["status"] == 500 and "http://127.0.0.1:9/model/" in logs, (report, logs)
    assert zip_path.stat().st_size < 250_000_000


def test_crewai_image_starts_and_answers_offline(tmp_path, crewai_image):
    """crewai's usage telemetry (telemetry.crewai.com) stays off: main.py opts out before import."""
    report, logs = run_offline(tmp_path, crewai_image, "/opt/crewai-agent/site")
    print(f"crewai: /ping answered {report['ready_s']:.1f}s after start")
    assert report["ping"]["status"] == "Healthy"
    assert attempts(logs) == [], logs
    assert report["status"] == 500 and "http://127.0.0.1:9/model/" in logs, (report, logs)


def test_the_probe_sees_crewai_telemetry_when_it_is_turned_back_on(tmp_path, crewai_image):
    """The control for the test above: the runtime's environment overrides main.py's opt-out, and the
    probe catches the trap it guards against."""
    _, logs = run_offline(tmp_path, crewai_image, "/opt/crewai-agent/site", env={"CREWAI_DISABLE_TELEMETRY": "false"})
    assert "NETWORK ATTEMPT: getaddrinfo('telemetry.crewai.com')" in attempts(logs), logs
