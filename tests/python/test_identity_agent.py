"""A deployed agent gets its secrets through AgentCore Identity: the bedrock-agentcore SDK's
@requires_api_key and @requires_access_token (M2M), inside a code-zip sandbox, with the workload
access token the runtime hands it and the session credentials the emulator gives the sandbox
(AWS_ENDPOINT_URL pointing back at the emulator)."""
import base64
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import staged_packages, ROLE_ARN, Cli, Emulator, boto_client, new_session_id, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "fixtures" / "identity-agent"
BASE_IMAGE = "agentcore-local-runtime:python3.11"


@pytest.fixture(scope="module")
def agent_zip(tmp_path_factory):
    staging = staged_packages(AGENT / "requirements.txt", tmp_path_factory.mktemp("identity-agent"))
    (staging / "main.py").write_text((AGENT / "main.py").read_text())
    dest = tmp_path_factory.mktemp("zip") / "identity-agent.zip"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(staging.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(staging).as_posix())
    return dest


@pytest.fixture
def emu(tmp_path):
    subprocess.run(["docker", "image", "inspect", BASE_IMAGE], check=True, capture_output=True)
    emulator = Emulator(extra_args=["--max-tps-per-endpoint", "0"]).start(tmp_path / "emulator.log")
    try:
        yield emulator
    finally:
        emulator.stop()


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_sdk_decorators_get_the_api_key_and_an_m2m_token(emu, agent_zip):
    control, data, cli = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore"), Cli(emu.url)
    control.create_api_key_credential_provider(name="search", apiKey="sk-search-from-the-vault")
    control.create_oauth2_credential_provider(
        name="inventory", credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={"customOauth2ProviderConfig": {
            "oauthDiscovery": {"discoveryUrl": f"{emu.url}/_agentcore-local/issuer/.well-known/openid-configuration"},
            "clientId": "agentcore-local-client", "clientSecret": "agentcore-local-secret"}})
    cli.run("s3", "mb", "s3://identity-agents")
    cli.run("s3", "cp", str(agent_zip), "s3://identity-agents/agent.zip")
    created = control.create_agent_runtime(
        agentRuntimeName="identity_agent", roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
        agentRuntimeArtifact={"codeConfiguration": {"code": {"s3": {"bucket": "identity-agents", "prefix": "agent.zip"}},
                                                    "runtime": "PYTHON_3_11", "entryPoint": ["main.py"]}},
        environmentVariables={"API_KEY_PROVIDER": "search", "OAUTH2_PROVIDER": "inventory"})
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=180)
    assert rt["status"] == "READY", rt
    # A SigV4 caller names the end user; the runtime then passes a workload access token for them.
    resp = data.invoke_agent_runtime(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=new_session_id(),
                                     runtimeUserId="alice", payload=b"{}")
    got = json.loads(resp["response"].read())
    assert got["api_key"] == "sk-search-from-the-vault"
    token = claims(got["access_token"])
    assert token["client_id"] == "agentcore-local-client" and token["scope"] == "inventory.read"
