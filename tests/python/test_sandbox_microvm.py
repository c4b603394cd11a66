"""Sessions in QEMU microVMs (`serve --sandbox microvm`), through real boto3: the fixture agent
answers from its own VM, one VM per session (affinity, isolation of files), StopRuntimeSession
removes the VM and every file of it, and no Docker container is created. A code-zip runtime runs
from its code on a read-only disk at /var/task; a stop gives the agent SIGTERM and its last line
reaches the session's log stream; the agent runs as its image's USER; InvokeAgentRuntimeCommand
runs in the session's VM; the idle timeout and max lifetime end a VM as they end a container.
Under TCG (no usable KVM, as on these machines) a VM boots in seconds, hence the generous start-up
timeout.

Skipped when the host lacks QEMU, a guest kernel, a static busybox or mke2fs (`agentcore-local doctor`
says what to install; scripts/test installs them as root)."""
import io
import json
import os
import socket
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import boto3
import pytest

from conftest import (ACCOUNT, BINARY, REGION, ROLE_ARN, TEST_IMAGE, Emulator, create_runtime, docker,
                      managed_containers, new_session_id, session_containers, wait_for_status, wait_until)
from microvm_helpers import Stack, alive, host_ready, imds_credentials, slow_client

ROOT = Path(__file__).resolve().parents[2]
STDLIB_AGENT = ROOT / "fixtures" / "stdlib-agent" / "main.py"
CODE_BASE_IMAGE = "agentcore-local-runtime:python3.11"
USER_IMAGE = "agentcore-local-test-agent-user:latest"

READY, REPORT = host_ready()
pytestmark = pytest.mark.skipif(not READY, reason=f"microVM backend not available here:\n{REPORT}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("microvm")
    vm_root = base / "vms-root"
    env = dict(os.environ, AGENTCORE_LOCAL_MICROVM_DIR=str(vm_root))
    emu = Emulator(extra_args=["--sandbox", "microvm", "--startup-timeout", "240"], env=env)
    emu.start(base / "emulator.log")
    try:
        control = slow_client(emu.url, "bedrock-agentcore-control")
        created = create_runtime(control, "microvm_agent")
        rt = wait_for_status(control, created["agentRuntimeId"])
        assert rt["status"] == "READY", rt
        yield Stack(emu, vm_root, control, slow_client(emu.url, "bedrock-agentcore"), rt)
    finally:
        pids = [r["pid"] for r in Stack(emu, vm_root, None, None, {"agentRuntimeArn": ""}).vms().values()]
        emu.stop()
    # SIGTERM stops every session: no QEMU process and no VM directory is left.
    assert not [p for p in pids if alive(p)], "QEMU processes survived the emulator's shutdown"
    leftovers = list((vm_root / "vms").iterdir()) if (vm_root / "vms").exists() else []
    assert not leftovers, f"VM files left behind: {leftovers}"
    assert not managed_containers([emu.proc.pid]), "a microVM emulator created Docker containers"


def test_start_up_names_the_accelerator(stack):
    log = stack.emu.log()
    assert "sessions run in QEMU microVMs" in log
    assert "accel=" in log


def test_invoke_runs_the_agent_in_its_own_vm(stack):
    sid = new_session_id("mvm-invoke")
    t0 = time.time()
    who = stack.invoke(sid, {"action": "whoami"})
    cold = time.time() - t0
    print(f"microVM cold start + first invocation: {cold:.1f}s")
    vm_id, record = stack.vm_of(sid)
    assert alive(record["pid"])
    cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes().split(b"\0")
    assert b"qemu-system-x86_64" in cmdline[0] and b"microvm" in cmdline
    assert who["hostname"] and vm_id.endswith(who["hostname"]), (vm_id, who["hostname"])
    # The guest reaches the emulator through QEMU's alias for the host, on its VM's own port.
    assert who["env"]["AWS_ENDPOINT_URL"] == f"http://10.0.2.2:{record['relay']['port']}", who["env"]
    assert who["env"]["AWS_REGION"] == REGION
    # No container: the session is the VM.
    assert session_containers(sid) == []
    # The agent's output is captured from the VM's console.
    marker = f"hello-from-{sid[-8:]}"
    assert stack.invoke(sid, {"action": "log", "stdout": marker}) is not None
    console = stack.vm_root / "vms" / vm_id / "console.log"
    wait_until(lambda: marker in console.read_text(errors="replace"), 30, message="console output")
    logs = slow_client(stack.emu.url, "logs")
    group = f"/aws/bedrock-agentcore/runtimes/{stack.rt['agentRuntimeId']}-DEFAULT"

    def captured():
        events = logs.filter_log_events(logGroupName=group).get("events", [])
        return any(marker in e["message"] for e in events)
    wait_until(captured, 30, interval=0.5, message="the agent's line in CloudWatch Logs")


def test_each_vm_gets_its_own_way_to_the_metadata_service(stack):
    a, b = new_session_id("mvm-imds-a"), new_session_id("mvm-imds-b")
    wa, wb = stack.invoke(a, {"action": "whoami"}), stack.invoke(b, {"action": "whoami"})
    (_, ra), (_, rb) = stack.vm_of(a), stack.vm_of(b)
    assert ra["relay"]["port"] != rb["relay"]["port"] and ra["relay"]["source"] != rb["relay"]["source"]
    for who, record in ((wa, ra), (wb, rb)):
        port = record["relay"]["port"]
        assert who["env"]["AWS_ENDPOINT_URL"] == f"http://10.0.2.2:{port}"
        assert who["env"]["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == f"http://10.0.2.2:{port}/"
    role_a, creds_a = imds_credentials(stack, a)
    role_b, creds_b = imds_credentials(stack, b)
    assert role_a == role_b == "AgentRole", (creds_a, creds_b)
    assert creds_a["AccessKeyId"] and creds_a["AccessKeyId"] != creds_b["AccessKeyId"]
    # The credentials work against the emulator, as the role.
    sts = boto3.session.Session().client(
        "sts", endpoint_url=stack.emu.url, region_name=REGION, aws_access_key_id=creds_a["AccessKeyId"],
        aws_secret_access_key=creds_a["SecretAccessKey"], aws_session_token=creds_a["Token"])
    assert ":assumed-role/AgentRole/" in sts.get_caller_identity()["Arn"]


def test_a_vm_reaches_neither_another_vms_credentials_nor_its_agent(stack):
    """Every guest reaches the host's 127.0.0.1 at 10.0.2.2, so each VM's way to the emulator
    answers only its own QEMU's connections, agent ports are forwarded on 127.0.0.2, which no guest
    reaches, and the emulator's loopback-only pages do not take a guest for a local user."""
    a, b = new_session_id("mvm-cross-a"), new_session_id("mvm-cross-b")
    stack.invoke(a, {"action": "whoami"}), stack.invoke(b, {"action": "whoami"})
    (_, ra), (_, rb) = stack.vm_of(a), stack.vm_of(b)
    role, error = imds_credentials(stack, a, endpoint=f"http://10.0.2.2:{rb['relay']['port']}/")
    assert role is None, f"session A's VM got session B's credentials: {error}"
    assert imds_credentials(stack, a)[0] == "AgentRole", "the VM's own way still works"
    assert rb["forward_address"] == "127.0.0.2"
    agent_port_b = dict(map(tuple, rb["ports"]))[8080]
    assert stack.invoke(a, {"action": "connect", "host": "10.0.2.2", "port": agent_port_b}) == {"connected": False}
    # From the host (the emulator's side), B's agent is where the record says.
    socket.create_connection(("127.0.0.2", agent_port_b), timeout=5).close()
    # The emulator's own pages (every session's state and logs) answer local users, and a guest
    # arrives from 127.0.0.1 too: it is told apart by its QEMU process and refused.
    emu_port = int(stack.emu.url.rsplit(":", 1)[1])
    page = stack.invoke(a, {"action": "http_get", "url": f"http://10.0.2.2:{emu_port}/_agentcore-local/sessions"})
    assert page.get("status") == 403 and b not in page.get("body", ""), page
    assert urllib.request.urlopen(f"{stack.emu.url}/_agentcore-local/sessions", timeout=10).status == 200


def host_address():
    """This host's address on its way out (not loopback), as an outside service would be reached."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        return s.getsockname()[0]


def test_a_vpc_runtimes_vm_reaches_the_emulator_and_nothing_else(stack):
    """networkMode VPC on a microVM: the guest's user networking lets no connection out but its one
    way to the emulator (at 10.0.2.100:80), through which credentials and the AWS endpoint work.
    A service on the host's loopback and one on its outside address are both reached from a PUBLIC
    VM of the same image, so the check can fail."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        vpc = {"networkMode": "VPC", "networkModeConfig": {"subnets": ["subnet-0a1b2c3d4e5f"],
                                                           "securityGroups": ["sg-0a1b2c3d4e5f"]}}
        created = create_runtime(stack.control, "microvm_vpc", networkConfiguration=vpc)
        rt = wait_for_status(stack.control, created["agentRuntimeId"])
        assert rt["status"] == "READY", rt
        private, public = new_session_id("mvm-vpc"), new_session_id("mvm-public")

        def invoke(arn, sid, payload):
            resp = stack.data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=sid,
                                                   payload=json.dumps(payload))
            return json.loads(resp["response"].read())
        targets = [("10.0.2.2", port), (host_address(), port)]
        for host, p in targets:
            assert stack.invoke(public, {"action": "connect", "host": host, "port": p}) == {"connected": True}, host
        env = invoke(rt["agentRuntimeArn"], private, {"action": "whoami"})["env"]
        assert env["AWS_ENDPOINT_URL"] == "http://10.0.2.100:80", env
        assert env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == "http://10.0.2.100:80/", env
        for host, p in targets + [("10.0.2.2", int(stack.emu.url.rsplit(":", 1)[1]))]:
            got = invoke(rt["agentRuntimeArn"], private, {"action": "connect", "host": host, "port": p})
            assert got == {"connected": False}, f"a VPC VM reached {host}:{p}"
        # Its one way out works: the role's credentials from the metadata service, usable as the role.
        got = invoke(rt["agentRuntimeArn"], private, {"action": "imds"})
        assert got.get("role") == "AgentRole", got
        creds = got["credentials"]
        sts = boto3.session.Session().client(
            "sts", endpoint_url=stack.emu.url, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["Token"])
        assert ":assumed-role/AgentRole/" in sts.get_caller_identity()["Arn"]
        # Its way to the emulator is an abstract socket named in its record, not a port on 127.0.0.1.
        _, record = stack.vm_of(private)
        assert record["relay"]["pipe"] and record["relay"]["port"] == 0, record
    finally:
        listener.close()


def test_same_session_same_vm(stack):
    sid = new_session_id("mvm-affinity")
    seen = [stack.invoke(sid, {"action": "whoami"}) for _ in range(3)]
    assert len({w["hostname"] for w in seen}) == 1
    assert len({w["pid"] for w in seen}) == 1
    assert [w["counter"] for w in seen] == [1, 2, 3]
    stack.vm_of(sid)


def test_two_sessions_two_vms_files_isolated(stack):
    a, b = new_session_id("mvm-a"), new_session_id("mvm-b")
    path = "/tmp/only-in-a.txt"
    assert stack.invoke(a, {"action": "write_file", "path": path, "content": "A only"}) == {"written": True}
    assert stack.invoke(b, {"action": "read_file", "path": path}) == {"content": None}
    assert stack.invoke(a, {"action": "read_file", "path": path}) == {"content": "A only"}
    (va, ra), (vb, rb) = stack.vm_of(a), stack.vm_of(b)
    assert va != vb and ra["pid"] != rb["pid"]
    assert stack.invoke(a, {"action": "whoami"})["hostname"] != stack.invoke(b, {"action": "whoami"})["hostname"]


def test_stop_runtime_session_removes_the_vm_and_its_files(stack):
    sid = new_session_id("mvm-stop")
    assert stack.invoke(sid, {"action": "whoami"})["counter"] == 1
    vm_id, record = stack.vm_of(sid)
    vm_dir = stack.vm_root / "vms" / vm_id
    assert vm_dir.exists()
    stack.data.stop_runtime_session(agentRuntimeArn=stack.arn, runtimeSessionId=sid)
    wait_until(lambda: not alive(record["pid"]) and not vm_dir.exists(), 30, message="the VM gone")
    # Nothing of the session survives: no process, no directory, no file naming it.
    leftovers = [p for p in stack.vm_root.rglob("*") if vm_id in str(p)]
    assert leftovers == []
    # The same id starts afresh in a new VM.
    assert stack.invoke(sid, {"action": "whoami"})["counter"] == 1
    new_id, _ = stack.vm_of(sid)
    assert new_id != vm_id


def test_a_stream_is_relayed_from_the_vm_in_order_as_it_is_produced(stack):
    resp = stack.data.invoke_agent_runtime(agentRuntimeArn=stack.arn, runtimeSessionId=new_session_id("mvm-stream"),
                                           payload=json.dumps({"action": "stream", "chunks": 4, "delay_ms": 700}))
    assert resp["contentType"].startswith("text/event-stream") and resp["statusCode"] == 200
    events, buf = [], b""
    for chunk in resp["response"].iter_chunks(chunk_size=1):  # as it arrives, not 1 KiB at a time
        buf += chunk
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            events.append((time.time(), json.loads(raw.decode()[len("data: "):])))
    assert [e["i"] for _, e in events] == [0, 1, 2, 3]
    # Incremental, not buffered until the agent finished: the first event arrived well before
    # the last (the agent spaced them 2.1 s apart in all).
    assert events[-1][0] - events[0][0] >= 1.0, events


def test_an_agent_error_status_is_a_runtime_client_error(stack):
    sid = new_session_id("mvm-fail")
    with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
        stack.invoke(sid, {"action": "fail", "status": 500, "body": "agent detail"})
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["Error"]["Message"] == ("Received error (500) from runtime. "
                                       "Please check your CloudWatch logs for more information.")
    # The session lives on in its VM.
    assert stack.invoke(sid, {"action": "whoami"})["counter"] == 2


def test_the_cost_meter_reads_the_vms_cpu_time_and_memory(stack):
    sid = new_session_id("mvm-meter")
    stack.invoke(sid, {"action": "burn", "ms": 1500})

    def row():
        out = subprocess.run([str(BINARY), "sessions", "--json", "--endpoint", stack.emu.url],
                             capture_output=True, text=True, check=True)
        return next(s for s in json.loads(out.stdout)["sessions"] if s["session_id"] == sid)

    # The VM's QEMU process burnt at least the agent's 1.5 s of CPU (more under TCG), and its
    # guest memory is counted; the report samples every few seconds.
    wait_until(lambda: row()["cpu_seconds"] >= 1.0, 30, message="the burn in the cost meter")
    metered = row()
    assert metered["peak_memory_bytes"] > 16 * 1024 * 1024 and metered["estimated_cost_usd"] > 0, metered


def test_an_agent_that_exits_at_start_is_reported_with_its_last_lines(stack):
    created = create_runtime(stack.control, "microvm_exits",
                             environmentVariables={"AGENT_EXIT_ON_START": "3"})
    rt = wait_for_status(stack.control, created["agentRuntimeId"])
    sid = new_session_id("mvm-exit")
    began = time.time()
    with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
        stack.data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                        payload=json.dumps({"action": "echo"}))
    assert time.time() - began < 120, "a crashed start must not wait for the whole start-up budget"
    message = e.value.response["Error"]["Message"]
    assert "exited with code 3" in message, message
    assert "ImportError: test-agent was told to fail at start-up" in message, message
    # The VM is gone with its files.
    wait_until(lambda: not [r for r in stack.vms().values()
                            if r["labels"].get("agentcore-local.session-id") == sid], 30, message="the VM removed")


def group_of(runtime):
    return f"/aws/bedrock-agentcore/runtimes/{runtime['agentRuntimeId']}-DEFAULT"


@pytest.fixture(scope="module")
def code_runtime(stack):
    """A code-zip runtime (PYTHON_3_11) whose main.py uses the standard library only, uploaded to
    the emulator's S3 with boto3."""
    if docker("image", "inspect", CODE_BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"{CODE_BASE_IMAGE} is not built (agentcore-local images build PYTHON_3_11)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.py", STDLIB_AGENT.read_text())
        zf.writestr("data/greeting.txt", "hello from the zip\n")
    s3 = slow_client(stack.emu.url, "s3")
    s3.create_bucket(Bucket="microvm-code")
    s3.put_object(Bucket="microvm-code", Key="agent.zip", Body=buf.getvalue())
    created = stack.control.create_agent_runtime(
        agentRuntimeName="microvm_code",
        agentRuntimeArtifact={"codeConfiguration": {
            "code": {"s3": {"bucket": "microvm-code", "prefix": "agent.zip"}},
            "runtime": "PYTHON_3_11", "entryPoint": ["main.py"]}},
        roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"})
    rt = wait_for_status(stack.control, created["agentRuntimeId"], timeout=300)
    assert rt["status"] == "READY", rt.get("failureReason")
    return rt


def test_a_code_zip_runtime_runs_its_code_from_a_read_only_disk(stack, code_runtime):
    sid = new_session_id("mvm-code")
    t0 = time.time()
    resp = stack.data.invoke_agent_runtime(agentRuntimeArn=code_runtime["agentRuntimeArn"], runtimeSessionId=sid,
                                           payload=json.dumps({"action": "whoami"}))
    out = json.loads(resp["response"].read())
    print(f"microVM code-zip cold start + first invocation: {time.time() - t0:.1f}s")
    assert out["python"].startswith("3.11") and out["cwd"] == "/var/task", out
    assert out["main_py"] == STDLIB_AGENT.read_text()
    assert out["files"] == ["__pycache__", "data", "main.py"], out["files"]
    # The version's bytecode job ran in a VM too, on a writable disk copied back into the directory.
    assert out["bytecode"] == ["main.cpython-311.pyc"], out["bytecode"]
    # Read-only as Docker's bind mount is: the agent cannot change the deployed code.
    assert out["write_code_dir"] == "Read-only file system" and out["write_tmp"] == "written", out
    ((where, fstype, options),) = out["mounts"]
    assert (where, fstype) == ("/var/task", "ext4") and options.split(",")[0] == "ro", out["mounts"]
    # The session is a VM (no container), and its disk is the version's image, opened read-only.
    vm_id, record = stack.vm_of(sid)
    assert session_containers(sid) == []
    cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes().decode().split("\0")
    drives = [a for a in cmdline if a.startswith("file=")]
    assert len(drives) == 1 and "readonly=on" in drives[0] and str(stack.vm_root / "disks") in drives[0], drives


def test_stop_asks_the_agent_to_exit_and_its_last_line_is_logged(stack, code_runtime):
    """StopRuntimeSession: the guest's init gives the agent SIGTERM (as `docker stop` does); the
    line the agent writes then is in the session's log stream, and the VM is gone afterwards."""
    sid = new_session_id("mvm-graceful")
    arn = code_runtime["agentRuntimeArn"]
    stack.data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=sid, payload=json.dumps({}))["response"].read()
    vm_id, record = stack.vm_of(sid)
    stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(lambda: not alive(record["pid"]) and not (stack.vm_root / "vms" / vm_id).exists(), 60,
               message="the VM gone")
    logs = slow_client(stack.emu.url, "logs")
    group = group_of(code_runtime)
    last_words = f"stdlib-agent: SIGTERM received in session {sid}, shutting down"

    def messages():
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        (stream,) = [s["logStreamName"] for s in streams if s["logStreamName"].endswith(f"[runtime-logs]{sid}")]
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        return [e["message"] for e in events]
    wait_until(lambda: last_words in messages(), 30, interval=0.5, message="the agent's SIGTERM line in its log stream")
    said = messages()
    assert said.index(f"stdlib-agent: invocation whoami in session {sid}") < said.index(last_words), said


@pytest.fixture(scope="module")
def user_image(tmp_path_factory):
    """The fixture agent with a passwd entry and `USER agent`, built locally from the scratch image."""
    if docker("image", "inspect", TEST_IMAGE, check=False).returncode != 0:
        pytest.skip(f"{TEST_IMAGE} is not built (fixtures/build-images.sh)")
    ctx = tmp_path_factory.mktemp("user-image")
    (ctx / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nagent:x:4321:4322:agent:/home/agent:/bin/sh\n")
    (ctx / "group").write_text("root:x:0:\nagent:x:4322:\nstaff:x:50:agent\ntools:x:60:bob,agent\nother:x:70:bob\n")
    (ctx / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\nCOPY passwd group /etc/\nUSER agent\n")
    docker("build", "--quiet", "--tag", USER_IMAGE, str(ctx))
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{USER_IMAGE}"


def test_the_agent_runs_as_its_images_user(stack, user_image):
    created = create_runtime(stack.control, "microvm_user",
                             agentRuntimeArtifact={"containerConfiguration": {"containerUri": user_image}})
    rt = wait_for_status(stack.control, created["agentRuntimeId"])
    assert rt["status"] == "READY", rt
    sid = new_session_id("mvm-user")

    def invoke(payload):
        resp = stack.data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid,
                                               payload=json.dumps(payload))
        return json.loads(resp["response"].read())
    status = invoke({"action": "read_file", "path": "/proc/self/status"})["content"]
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()
           if line.startswith(("Uid:", "Gid:", "Groups:"))}
    # Supplementary groups as Docker gives them: every group of /etc/group that lists the user
    # (busybox's initgroups also lists the primary group, which changes no access check).
    groups = set(ids.pop("Groups"))
    assert ids == {"Uid": ["4321"] * 4, "Gid": ["4322"] * 4}, ids
    assert groups - {"4322"} == {"50", "60"}, groups
    # HOME comes from the user's passwd entry, as Docker sets it.
    assert invoke({"action": "whoami"})["env"]["HOME"] == "/home/agent"
    # Root's files stay root's: the agent cannot write where only root may.
    assert invoke({"action": "write_file", "path": "/etc/owned-by-root", "content": "x"}) == {"written": False}


def test_a_user_the_image_does_not_have_fails_the_start_with_dockers_reason(stack, user_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {USER_IMAGE}\nUSER ghost\n")
    docker("build", "--quiet", "--tag", "agentcore-local-test-agent-ghost:latest", str(tmp_path))
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/agentcore-local-test-agent-ghost:latest"
    created = create_runtime(stack.control, "microvm_ghost",
                             agentRuntimeArtifact={"containerConfiguration": {"containerUri": uri}})
    rt = wait_for_status(stack.control, created["agentRuntimeId"])
    sid = new_session_id("mvm-ghost")
    with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
        stack.data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid, payload=b"{}")
    message = e.value.response["Error"]["Message"]
    assert "unable to find user ghost: no matching entries in the image's /etc/passwd" in message, message
    assert not [r for r in stack.vms().values() if r["labels"].get("agentcore-local.session-id") == sid]


def run_command(stack, arn, sid, command, timeout=None):
    """InvokeAgentRuntimeCommand: (stdout, stderr, contentStop) of its event stream."""
    body = {"command": command, **({"timeout": timeout} if timeout else {})}
    resp = stack.data.invoke_agent_runtime_command(agentRuntimeArn=arn, runtimeSessionId=sid, body=body)
    chunks = [event["chunk"] for event in resp["stream"]]
    assert chunks[0] == {"contentStart": {}} and list(chunks[-1]) == ["contentStop"], chunks
    deltas = [c["contentDelta"] for c in chunks[1:-1]]
    return ("".join(d.get("stdout", "") for d in deltas), "".join(d.get("stderr", "") for d in deltas),
            chunks[-1]["contentStop"])


def test_a_command_runs_in_the_sessions_vm(stack, code_runtime):
    """What `docker exec` gives a container session: the agent's files, working directory, user
    and environment, stdout and stderr apart, the exit code, a timeout that kills what it started."""
    arn = code_runtime["agentRuntimeArn"]
    sid = new_session_id("mvm-cmd")
    stack.data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=sid, payload=json.dumps({}))["response"].read()
    vm_id, record = stack.vm_of(sid)
    out, err, stop = run_command(stack, arn, sid, "cat /tmp/scribble.txt; echo; id -u; pwd; echo \"$PYTHONPATH\"\n"
                                                  "echo 'hé ☃' >&2; exit 3")
    assert out == "x\n0\n/var/task\n/var/task\n" and err == "hé ☃\n", (out, err)
    assert stop == {"exitCode": 3, "status": "COMPLETED"}
    out, err, stop = run_command(stack, arn, sid, "seq 1 20000")
    assert out == "".join(f"{i}\n" for i in range(1, 20001)) and err == "" and stop["exitCode"] == 0
    # A TCG guest on a loaded machine can take over a second to start a shell: the timeout leaves room.
    out, _, stop = run_command(stack, arn, sid, "echo started; sleep 987; echo never", timeout=4)
    assert stop == {"exitCode": 124, "status": "TIMED_OUT"} and out == "started\n", (out, stop)
    time.sleep(0.5)
    out, _, _ = run_command(stack, arn, sid, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; "
                                             "done | grep -c '^sleep 987' || true")
    assert out.strip() == "0", "the timed-out command is still running in the VM"
    # All of it in the session's own VM: the same QEMU, no container.
    assert stack.vm_of(sid) == (vm_id, record) and session_containers(sid) == []
