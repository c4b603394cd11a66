"""Shared fixtures: start the real agentcore-local binary and point real AWS clients at it."""
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import botocore.config
import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("AGENTCORE_LOCAL_BIN", ROOT / "target" / "debug" / "agentcore-local"))
AWS_CLI = Path(sys.executable).parent / "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/AgentRole"
# The fixture agent (fixtures/test-agent, built by fixtures/build-images.sh), addressed as an ECR URI:
# the emulator finds it locally under its short name `agentcore-local-test-agent:latest`.
TEST_IMAGE = "agentcore-local-test-agent:latest"
CONTAINER_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{TEST_IMAGE}"


STARTED_PIDS = []
# Emulator pid (as a string, as Docker's owner-pid label has it) -> its log file, so a leftover
# sandbox names the test that left it (the log lives under that test's tmp_path).
STARTED_LOGS = {}

PIP_TARGETS = ROOT / "target" / "fixtures" / "pip-target"


def pip_target(requirements):
    """The packages of `requirements` as `pip install --target` lays them out (what a developer zips
    for a code deployment), installed once and kept under target/fixtures/pip-target/<hash of the
    file and this Python>: later runs reuse them, so a warm run of the suite installs nothing.
    Built in a directory of its own and renamed into place, so parallel workers never see half of it."""
    key = hashlib.sha256(Path(requirements).read_bytes() + sys.version.encode()).hexdigest()[:16]
    done = PIP_TARGETS / key
    if not done.is_dir():
        partial = PIP_TARGETS / f".{key}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(partial),
                        "-r", str(requirements)], check=True, timeout=900)
        try:
            partial.rename(done)
        except OSError:  # another worker finished the same install first
            shutil.rmtree(partial, ignore_errors=True)
    return done


def staged_packages(requirements, staging):
    """A copy of `pip_target(requirements)` in `staging`, for a test to add its agent's files to."""
    shutil.copytree(pip_target(requirements), staging, dirs_exist_ok=True, symlinks=True)
    return staging


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


HOLDER_LABEL = "agentcore-local.netns-holder"


def holders_of(pid):
    """The network holders an emulator made (in use or spare): containers holding a network
    namespace made ahead of time, which a new session joins instead of attaching its own."""
    return docker("ps", "-aq", "--no-trunc", "--filter", f"label={HOLDER_LABEL}=true",
                  "--filter", f"label=agentcore-local.owner-pid={pid}").stdout.split()


def joined_namespace(network_mode):
    """The container whose namespace a `HostConfig.NetworkMode` joins (`container:<id>`), if any."""
    return network_mode.split(":", 1)[1] if network_mode.startswith("container:") else None


def network_owner(cid):
    """The container whose network namespace a sandbox runs in: a holder it joined, or itself."""
    return joined_namespace(inspect_container(cid)["HostConfig"]["NetworkMode"]) or cid


# The spare holders an emulator keeps per network once a session has started there (`SPARES` in
# src/sandbox/holders.rs).
SPARE_HOLDERS = 2


def holder_states(pid):
    """Each network holder of an emulator: (its id, Docker's status of it or "gone", the sandboxes
    that joined it as "<container>/<session id>"; none for a spare). Two `docker inspect` calls in
    all, not one per container: on a loaded machine a poll of a dozen containers one by one took
    seconds."""
    joined = {}
    sandboxes = managed_containers([pid])
    if sandboxes:
        fmt = '{{.Id}}|{{.HostConfig.NetworkMode}}|{{index .Config.Labels "agentcore-local.session-id"}}'
        for line in docker("inspect", "--format", fmt, *sandboxes, check=False).stdout.splitlines():
            cid, mode, session = (line.split("|") + ["", ""])[:3]
            if holder := joined_namespace(mode):
                joined.setdefault(holder, []).append(f"{cid[:12]}/{session}")
    holders = holders_of(pid)
    status = {}
    if holders:
        listed = docker("inspect", "--format", "{{.Id}}|{{.State.Status}}", *holders, check=False).stdout
        for line in listed.splitlines():
            hid, state = (line.split("|") + [""])[:2]
            status[hid] = state
    return [(h, status.get(h, "gone"), joined.get(h, [])) for h in holders]


def describe_holders(states):
    """`holder_states` as lines for a failure message."""
    return [f"{h[:12]} {status} " + (f"joined by {', '.join(by)}" if by else "spare") for h, status, by in states]


def wait_for_spare_holder(emu, count=SPARE_HOLDERS, timeout=30):
    """Spare holders are made in the background once a session has started on the network: wait
    until `count` running ones no sandbox has joined are there, and no other unjoined one (one
    still being made: created, not yet running). Then the emulator's fill is done: a caller that
    removes the spares returned knows that no fresh one turns up behind its back."""
    deadline = time.monotonic() + timeout
    while True:
        states = holder_states(emu.proc.pid)
        spares = [(h, status) for h, status, joined in states if not joined]
        if len(spares) >= count and all(status == "running" for _, status in spares):
            return [h for h, _ in spares]
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    said = [line for line in emu.log().splitlines() if "holder" in line][-20:]
    pytest.fail(f"no {count} running spare network holders within {timeout} s; the emulator's holders:\n  "
                + "\n  ".join(describe_holders(states))
                + "\nits log lines about holders (last 20):\n  " + "\n  ".join(said))


def managed_containers(owner_pids=None):
    """Containers agentcore-local started (by label), optionally only those of some emulator pids."""
    out = docker("ps", "-a", "--filter", "label=agentcore-local.managed=true",
                 "--format", '{{.ID}} {{.Label "agentcore-local.owner-pid"}}').stdout.split()
    pairs = list(zip(out[::2], out[1::2]))
    return [cid for cid, pid in pairs if owner_pids is None or pid in {str(p) for p in owner_pids}]


@pytest.fixture(scope="session", autouse=True)
def no_orphan_sandboxes():
    """Every test must leave no sandbox behind: checked once all emulators of the run have stopped."""
    assert docker("image", "inspect", TEST_IMAGE, check=False).returncode == 0, (
        f"{TEST_IMAGE} is missing; build it with fixtures/build-images.sh (scripts/test does)")
    yield
    leftovers = managed_containers(STARTED_PIDS)
    if leftovers:
        described = describe_containers(leftovers)
        docker("rm", "-f", *leftovers, check=False)
        assert not leftovers, f"sandboxes left behind by the tests: {described}"


def describe_containers(ids):
    """Enough of each container to tell which test left it: its runtime, session, owner emulator
    (and that emulator's log file, from STARTED_LOGS), state and creation time."""
    fmt = ('{{.Id}} {{index .Config.Labels "agentcore-local.runtime-id"}} '
           '{{index .Config.Labels "agentcore-local.session-id"}} '
           '{{index .Config.Labels "agentcore-local.owner-pid"}} {{.State.Status}} {{.Created}}')
    out = []
    for line in docker("inspect", "--format", fmt, *ids, check=False).stdout.splitlines():
        cid, runtime, session, pid, status, created = (line.split() + [""] * 6)[:6]
        out.append(f"{cid[:12]} runtime={runtime} session={session} state={status} created={created} "
                   f"emulator pid={pid} log={STARTED_LOGS.get(pid, '?')}")
    return out or ids


class Emulator:
    """One agentcore-local process. `start()` waits for its "listening on" line.

    The warm pool (on by default in `serve`) is turned off unless a test asks for it
    (`warm_pool=None` keeps the binary's default, a number sets it): a spare per runtime would
    double the containers every test starts and make per-runtime container counts depend on
    timing. tests/python/test_sessions_warm.py tests the default itself."""

    def __init__(self, data_dir=None, extra_args=(), env=None, warm_pool=0):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        if warm_pool is not None and "--warm-pool" not in self.extra_args:
            self.extra_args += ["--warm-pool", str(warm_pool)]
        self.env = env
        self.proc = None
        self.url = None
        self.log_path = None

    def start(self, log_path):
        assert BINARY.exists(), f"{BINARY} not built; run `cargo build` first"
        args = [str(BINARY), "serve"]
        if "--listen" not in self.extra_args:
            args += ["--listen", "127.0.0.1:0"]
        args += ["--data-dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        args += self.extra_args
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=self.env)
        STARTED_PIDS.append(self.proc.pid)
        STARTED_LOGS[str(self.proc.pid)] = str(log_path)
        line = self.proc.stdout.readline().decode()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}\n{Path(log_path).read_text()}")
        self.url = match.group(1)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self._log.close()
        return self.proc.returncode if self.proc else None

    def log(self):
        return Path(self.log_path).read_text(errors="replace") if self.log_path else ""


def crash(emu):
    """kill -9: no shutdown handler, no checkpoint."""
    emu.proc.send_signal(signal.SIGKILL)
    emu.proc.wait(timeout=10)
    assert emu.proc.returncode == -signal.SIGKILL
    emu.stop()


def client_env(url, access_key="test", secret="test"):
    """Environment for the AWS CLI: only variables, no config files of the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
    )
    return env


class Cli:
    """Runs the real `aws` CLI (awscli v1 from PyPI, unmodified) against the emulator.

    The CLI's own driver runs in this process, under the environment a separate `aws` process
    would get: a new process spends about 0.6 s of CPU importing awscli and botocore before it
    sends anything, and on a loaded two-core CI machine those start-ups made CLI tests 18 times
    slower than alone. Parsing, validation, signing, the request and the output are the CLI's;
    only the process boundary is gone. `--debug` runs in a process of its own, because the CLI's
    debug logging installs handlers on global loggers that would outlive the call."""

    def __init__(self, url, **creds):
        self.env = client_env(url, **creds)

    def run(self, *args, check=True, region=None):
        env = dict(self.env)
        if region:
            env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = region
        argv = [*args, "--output", "json"]
        if "--debug" in args:
            proc = subprocess.run([str(AWS_CLI), *argv], env=env, capture_output=True, text=True, timeout=120)
        else:
            proc = run_cli_in_process(argv, env)
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def json(self, *args, **kw):
        out = self.run(*args, **kw).stdout
        return json.loads(out) if out.strip() else None


# The CLI reads its configuration from os.environ and writes to sys.stdout/sys.stderr, which are
# process-wide: one CLI run at a time per process (a test's threads may each run one).
_CLI_LOCK = threading.Lock()


def run_cli_in_process(argv, env):
    """`aws *argv` with `env` as its whole environment, as the `aws` script runs it (the CLI
    driver's `main`); returns what subprocess.run would (exit code, stdout, stderr as text)."""
    import awscli.clidriver

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")  # `.buffer` for binary output
    err = io.StringIO()
    with _CLI_LOCK:
        # Read under the lock: another thread's run empties os.environ for a moment below.
        saved = dict(os.environ)
        # What the `aws` process sets for itself when it imports awscli (where the CLI's data is).
        env = dict(env, AWS_DATA_PATH=saved["AWS_DATA_PATH"])
        os.environ.clear()
        os.environ.update(env)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = awscli.clidriver.create_clidriver().main(argv)
                except SystemExit as e:  # argparse's usage errors exit as the `aws` process would
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    out.flush()
    stdout = out.buffer.getvalue().decode("utf-8", errors="replace").replace("\r\n", "\n")
    return subprocess.CompletedProcess(["aws", *argv], code, stdout, err.getvalue())


def boto_client(url, service, access_key="test", secret="test", region=REGION, retries=0):
    """A client making at most 1 + `retries` attempts per call (botocore's own `max_attempts` counts
    retries only, so `total_max_attempts` is what bounds the attempts)."""
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"total_max_attempts": retries + 1, "mode": "standard"}),
    )


@pytest.fixture
def emulator(tmp_path):
    """A fresh in-memory emulator for one test."""
    emu = Emulator().start(tmp_path / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture
def cli(emulator):
    return Cli(emulator.url)


@pytest.fixture
def control(emulator):
    return boto_client(emulator.url, "bedrock-agentcore-control")


@pytest.fixture
def data(emulator):
    return boto_client(emulator.url, "bedrock-agentcore")


def wait_for_status(control, runtime_id, wanted=("READY",), timeout=30, version=None):
    """Poll GetAgentRuntime the way real clients do until the status is final."""
    deadline = time.time() + timeout
    while True:
        kw = {"agentRuntimeId": runtime_id}
        if version:
            kw["agentRuntimeVersion"] = version
        rt = control.get_agent_runtime(**kw)
        if rt["status"] in wanted or not rt["status"].endswith("ING"):
            return rt
        if time.time() > deadline:
            raise AssertionError(f"{runtime_id} still {rt['status']} after {timeout}s")
        time.sleep(0.1)


def create_runtime(control, name, **kw):
    args = dict(
        agentRuntimeName=name,
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": CONTAINER_URI}},
        roleArn=ROLE_ARN,
        networkConfiguration={"networkMode": "PUBLIC"},
    )
    args.update(kw)
    return control.create_agent_runtime(**args)


# ---------------------------------------------------------------------------------------------
# Session (data plane) helpers: several emulators per test, invocations, sandbox containers.

SESSION_LABEL = "agentcore-local.session-id"


def new_session_id(prefix="sess"):
    """A fresh runtime session id (33-256 chars, as the service requires)."""
    import uuid
    return f"{prefix}-{uuid.uuid4()}"


def containers_with(label, value, running_only=False):
    """Container ids carrying label=value (all states unless running_only)."""
    args = ["ps", "--no-trunc", "-q", "--filter", f"label={label}={value}"]
    if not running_only:
        args.insert(1, "-a")
    return docker(*args).stdout.split()


def session_containers(session_id, running_only=False):
    return containers_with(SESSION_LABEL, session_id, running_only)


def inspect_container(cid):
    return json.loads(docker("inspect", cid).stdout)[0]


def wait_until(predicate, timeout, interval=0.1, message="condition"):
    """Poll `predicate` until it returns something truthy; returns that value."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        time.sleep(interval)


def session_log_messages(url, runtime_id, session_id):
    """Every message of a session's log stream (default endpoint), oldest first, all pages; []
    before the stream exists."""
    logs = boto_client(url, "logs")
    group = f"/aws/bedrock-agentcore/runtimes/{runtime_id}-DEFAULT"
    try:
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    stream = next((s["logStreamName"] for s in streams if s["logStreamName"].endswith(session_id)), None)
    if stream is None:
        return []
    messages, token = [], None
    while True:
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True,
                                   **({"nextToken": token} if token else {}))
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return messages
        token = page["nextForwardToken"]


def invoke(data, arn, session_id, payload, **kw):
    """InvokeAgentRuntime through boto3; returns (response without body, decoded JSON body)."""
    resp = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session_id,
                                     payload=json.dumps(payload), **kw)
    body = resp["response"].read()
    return resp, json.loads(body)


def whoami(data, arn, session_id, **kw):
    return invoke(data, arn, session_id, {"action": "whoami"}, **kw)[1]


@pytest.fixture
def emulators(tmp_path):
    """Factory: start emulators with any flags; at the end every one still running is stopped
    (SIGTERM) and the test fails if any of them left a sandbox container behind."""
    started = []

    def start(*extra_args, data_dir=None, env=None):
        emu = Emulator(data_dir=data_dir, extra_args=extra_args, env=env)
        emu.start(tmp_path / f"emulator-{len(started)}.log")
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
    leftovers = managed_containers([e.proc.pid for e in started])
    if leftovers:
        docker("rm", "-f", *leftovers, check=False)
    assert not leftovers, f"sandboxes left behind: {leftovers}"


@pytest.fixture
def ready_runtime():
    """Factory: create a runtime on the fixture image and wait until it is READY."""

    def make(control, name, **kw):
        created = create_runtime(control, name, **kw)
        rt = wait_for_status(control, created["agentRuntimeId"])
        assert rt["status"] == "READY", rt
        return rt

    return make
