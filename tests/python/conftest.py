"""Shared fixtures: start the real agentcore-local binary and point real AWS clients at it."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
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
CONTAINER_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/myagent:latest"


class Emulator:
    """One agentcore-local process. `start()` waits for its "listening on" line."""

    def __init__(self, data_dir=None, extra_args=(), env=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.url = None
        self.log_path = None

    def start(self, log_path):
        assert BINARY.exists(), f"{BINARY} not built; run `cargo build` first"
        args = [str(BINARY), "serve", "--listen", "127.0.0.1:0"]
        args += ["--data-dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        args += self.extra_args
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=self.env)
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
    """Runs the real `aws` CLI (awscli from PyPI) against the emulator."""

    def __init__(self, url, **creds):
        self.env = client_env(url, **creds)

    def run(self, *args, check=True, region=None):
        env = dict(self.env)
        if region:
            env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = region
        proc = subprocess.run([str(AWS_CLI), *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def json(self, *args, **kw):
        out = self.run(*args, **kw).stdout
        return json.loads(out) if out.strip() else None


def boto_client(url, service, access_key="test", secret="test", region=REGION, retries=0):
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": retries + 1, "mode": "standard"}),
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
