"""What the README offers for CI, run as users would: the repository's Dockerfile (its prebuilt stage,
on the local base image, since no registry is reachable here) run as the README says, with boto3
through the containerised emulator; the pytest fixture of examples/ci; the GitHub workflow's shell
steps; and `serve --ready-file`."""
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import (BINARY, ROLE_ARN, boto_client, containers_with, create_runtime, docker, invoke,
                      new_session_id, session_containers, wait_for_status, whoami)

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "agentcore-local-ci-test:latest"
BASE_IMAGE = "agentcore-local-runtime:python3.11"  # Debian bookworm, the host's glibc
VENV_BIN = Path(sys.executable).parent

# A code-zip agent with nothing but the standard library: /ping and an echo of the payload.
ZIP_AGENT = '''
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Agent(BaseHTTPRequestHandler):
    def reply(self, doc):
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply({"status": "Healthy"})

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.reply({"echo": payload, "from": __file__})

ThreadingHTTPServer(("0.0.0.0", 8080), Agent).serve_forever()
'''


def exited(pid):
    """Gone, or a zombie nobody reaped (orphans of the steps' shells are not ours to wait for)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_file(path, alive, log):
    """The ready file appears once the emulator listens; fail at once if the process ends first."""
    deadline = time.monotonic() + 120  # a safety net only: a hung start, not a slow one
    while not path.exists():
        assert alive(), f"the emulator exited before writing {path}:\n{log()}"
        assert time.monotonic() < deadline, f"no {path} after 120 s:\n{log()}"
        time.sleep(0.05)
    return json.loads(path.read_text())


def sandboxes_of(runtime_ids):
    return [cid for rid in runtime_ids for cid in containers_with("agentcore-local.runtime-id", rid)]


@pytest.fixture(scope="module")
def image():
    """The README's image, built from the prebuilt stage with the tested binary."""
    if shutil.which("docker") is None or docker("version", check=False).returncode != 0:
        pytest.skip("docker build is impossible here: no docker CLI or no reachable Docker daemon")
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"docker build is impossible here without a registry: {BASE_IMAGE} is missing "
                    "(agentcore-local images build PYTHON_3_11)")
    binary = BINARY.resolve()
    assert binary.is_relative_to(ROOT / "target"), f"{binary} is not in target/, the build context's one binary"
    build = subprocess.run(
        ["docker", "build", "--quiet", "--target", "prebuilt", "--build-arg", f"BASE={BASE_IMAGE}",
         "--build-arg", f"BINARY={binary.relative_to(ROOT)}", "-t", IMAGE, str(ROOT)],
        capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, f"docker build failed:\n{build.stdout}\n{build.stderr}"
    yield IMAGE
    docker("rmi", IMAGE, check=False)


def test_dockerfile_image_serves_sessions_through_host_docker(image, tmp_path):
    """`docker run` exactly as the README documents it: host network, host PID namespace, the Docker
    socket and the data dir at the same path. A container-image runtime and a code-zip runtime (whose
    unpacked code sandboxes bind-mount from the data dir) both answer boto3; `docker stop` leaves
    no sandbox behind and removes the ready file."""
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    name = f"agentcore-local-ci-{uuid.uuid4().hex[:8]}"
    ready = data / "ready.json"
    run = docker("run", "-d", "--name", name, "--network", "host", "--pid", "host",
                 "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{data}:{data}",
                 image, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
                 "--ready-file", str(ready), check=False)
    assert run.returncode == 0, run.stderr
    runtime_ids = []
    try:
        state = lambda: json.loads(docker("inspect", name).stdout)[0]["State"]  # noqa: E731
        logs = lambda: docker("logs", name, check=False).stdout + docker("logs", name, check=False).stderr  # noqa: E731
        info = wait_for_file(ready, lambda: state()["Running"], logs)
        url = f"http://127.0.0.1:{port}"
        assert info["url"] == url, info
        # --pid host: the emulator's own pid (on its sandboxes' labels and in the ready file) is the
        # host's, so emulators on the host and in containers tell each other's sandboxes apart.
        assert info["pid"] == state()["Pid"], (info, state())
        assert logs().startswith(f"agentcore-local listening on {url} "), logs()

        control = boto_client(url, "bedrock-agentcore-control")
        data_plane = boto_client(url, "bedrock-agentcore")
        s3 = boto_client(url, "s3")

        image_rt = create_runtime(control, f"ci_image_{uuid.uuid4().hex[:6]}")
        runtime_ids.append(image_rt["agentRuntimeId"])
        assert wait_for_status(control, image_rt["agentRuntimeId"], timeout=120)["status"] == "READY"
        sessions = [new_session_id("ci"), new_session_id("ci-zip")]
        me = whoami(data_plane, image_rt["agentRuntimeArn"], sessions[0])
        assert me["env"]["DOCKER_CONTAINER"] == "1", me

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", ZIP_AGENT)
        s3.create_bucket(Bucket="ci-code")
        s3.put_object(Bucket="ci-code", Key="agent.zip", Body=buf.getvalue())
        zip_rt = control.create_agent_runtime(
            agentRuntimeName=f"ci_zip_{uuid.uuid4().hex[:6]}", roleArn=ROLE_ARN,
            agentRuntimeArtifact={"codeConfiguration": {"code": {"s3": {"bucket": "ci-code", "prefix": "agent.zip"}},
                                                        "runtime": "PYTHON_3_11", "entryPoint": ["main.py"]}},
            networkConfiguration={"networkMode": "PUBLIC"})
        runtime_ids.append(zip_rt["agentRuntimeId"])
        rt = wait_for_status(control, zip_rt["agentRuntimeId"], timeout=300)
        assert rt["status"] == "READY", rt
        _, answer = invoke(data_plane, zip_rt["agentRuntimeArn"], sessions[1], {"prompt": "zipped"})
        assert answer == {"echo": {"prompt": "zipped"}, "from": "/var/task/main.py"}, answer
        assert [len(session_containers(sid, running_only=True)) for sid in sessions] == [1, 1]

        # SIGTERM stops the sessions first (each may take 15 s); give it more than Docker's 10 s.
        stop = docker("stop", "-t", "60", name, check=False)
        assert stop.returncode == 0, stop.stderr
        assert state()["ExitCode"] == 0, (state(), logs())
        assert not ready.exists(), "the ready file outlived a clean shutdown"
        assert sandboxes_of(runtime_ids) == [], logs()
    finally:
        docker("rm", "-f", name, check=False)
        leftovers = sandboxes_of(runtime_ids)
        if leftovers:
            docker("rm", "-f", *leftovers, check=False)


def test_ready_file_announces_url_and_pid_and_goes_at_shutdown(tmp_path):
    ready = tmp_path / "state" / "ready.json"
    ready.parent.mkdir()
    ready.write_text('{"url": "http://127.0.0.1:1", "pid": 1}\n')  # a stale file of an earlier run
    log = tmp_path / "emulator.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(BINARY), "serve", "--listen", "127.0.0.1:0", "--in-memory", "--sandbox", "none",
                                 "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=err)
    try:
        line = proc.stdout.readline().decode()  # the ready line comes first
        assert line.startswith("agentcore-local listening on http://127.0.0.1:"), (line, log.read_text())
        url = line.split()[3]
        info = wait_for_file(ready, lambda: proc.poll() is None, log.read_text)
        assert info == {"url": url, "pid": proc.pid}, info
        assert [p.name for p in ready.parent.iterdir()] == ["ready.json"]  # no temporary file left
        assert boto_client(info["url"], "bedrock-agentcore-control").list_agent_runtimes()["agentRuntimes"] == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert not ready.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def user_env(tmp_path):
    """A CI job's environment: the binary on PATH, no AWS settings of the developer's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "agentcore-local").symlink_to(BINARY.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCORE_LOCAL_"))}
    env.update(PATH=f"{bin_dir}:{VENV_BIN}:{os.environ['PATH']}", PYTHONDONTWRITEBYTECODE="1",
               HOME=str(tmp_path / "home"))
    return env


def test_ci_example_suite_passes_with_its_fixture(tmp_path):
    """examples/ci as a user copies it: conftest.py's fixture starts the emulator, test_example.py
    talks to it with plain boto3."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "ci", project, ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "."],
                         cwd=project, env=user_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout, run.stdout


USER_TEST = '''
import os
import boto3

def test_the_workflow_points_boto3_at_the_emulator():
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    control = boto3.client("bedrock-agentcore-control")
    assert control.list_agent_runtimes()["agentRuntimes"] == []
    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
'''


def test_github_workflow_steps_start_test_and_stop(tmp_path):
    """The workflow's own shell steps, in order, as the runner runs them (bash -eo pipefail, each step
    a new shell, $GITHUB_ENV's lines added to the next steps' environment), on a user's project."""
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "agentcore-local.yml").read_text())
    steps = {s.get("name", ""): s for s in workflow["jobs"]["integration"]["steps"]}
    wanted = ["Start agentcore-local", "Run the integration tests"]
    stop = next(n for n in steps if n.startswith("Stop agentcore-local"))
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "requirements.txt").write_text("boto3\npytest\n")
    (project / "tests" / "test_user.py").write_text(USER_TEST)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    github_env = tmp_path / "github-env"
    github_env.touch()
    env = user_env(tmp_path)
    env.update(RUNNER_TEMP=str(runner_temp), GITHUB_ENV=str(github_env),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")  # requirements already satisfied

    def step(name):
        step_env = dict(env)
        for line in github_env.read_text().splitlines():
            key, _, value = line.partition("=")
            step_env[key] = value
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", steps[name]["run"]],
                              cwd=project, env=step_env, capture_output=True, text=True, timeout=600)

    ready = runner_temp / "agentcore-local.json"
    try:
        for name in wanted:
            result = step(name)
            assert result.returncode == 0, f"step {name!r}:\n{result.stdout}\n{result.stderr}"
        assert "1 passed" in result.stdout, result.stdout
        pid = json.loads(ready.read_text())["pid"]
        result = step(stop)
        assert result.returncode == 0, f"step {stop!r}:\n{result.stdout}\n{result.stderr}"
        assert exited(pid) and not ready.exists()
        assert "agentcore-local listening on" in result.stdout, result.stdout  # the log is shown
    finally:
        if ready.exists():
            os.kill(json.loads(ready.read_text())["pid"], signal.SIGKILL)
