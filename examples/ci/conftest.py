"""A pytest fixture that runs agentcore-local for your test session. Copy this file into your tests.

    def test_my_agent(agentcore_local):          # agentcore_local is the emulator's URL
        control = boto3.client("bedrock-agentcore-control")   # endpoint, keys and Region set for you

The emulator starts once per session (`serve --in-memory`: fresh state, nothing written to disk) on a
free port; the fixture waits for the ready file it writes, points the AWS SDKs at it through the
environment (AWS_ENDPOINT_URL, test/test keys, us-east-1) for the rest of the session, and stops it
at the end (SIGTERM: it stops its session sandboxes before exiting). Finds the binary on PATH, or at
$AGENTCORE_LOCAL_BIN. Create your clients inside tests or fixtures, not at import time, so they see
the environment.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

STARTUP_TIMEOUT = 60  # seconds; only a safety net for a binary that hangs before listening


@pytest.fixture(scope="session")
def agentcore_local(tmp_path_factory):
    binary = os.environ.get("AGENTCORE_LOCAL_BIN") or shutil.which("agentcore-local")
    if not binary:
        pytest.fail("agentcore-local is not on PATH (cargo install --git <its repository>, or set AGENTCORE_LOCAL_BIN)")
    workdir = tmp_path_factory.mktemp("agentcore-local")
    ready, log_path = workdir / "ready.json", workdir / "agentcore-local.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--in-memory", "--ready-file", str(ready)],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        # The file appears, complete, once the emulator accepts requests.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"agentcore-local did not start (exit {proc.poll()}):\n{log_path.read_text()}")
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        with pytest.MonkeyPatch.context() as env:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                env.delenv(name, raising=False)
            env.setenv("AWS_ENDPOINT_URL", url)
            env.setenv("AWS_ACCESS_KEY_ID", "test")
            env.setenv("AWS_SECRET_ACCESS_KEY", "test")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.setenv("AWS_REGION", "us-east-1")
            # Your own ~/.aws files must not redirect or re-sign the test clients.
            env.setenv("AWS_CONFIG_FILE", os.devnull)
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
            yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
