"""Execution-role credentials in every session, and AWS calls from inside a session reaching the
emulator: a real bedrock-agentcore code-zip agent (fixtures/aws-agent) runs boto3 with its default
credential chain in its sandbox. Also STS AssumeRole / AssumeRoleWithWebIdentity for host users,
with boto3 and the AWS CLI's profile chain."""
import base64
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import staged_packages, ACCOUNT, REGION, ROLE_ARN, Cli, Emulator, boto_client, client_env, docker, wait_for_status, AWS_CLI

ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = ROOT / "fixtures" / "aws-agent"
BASE_IMAGE = "agentcore-local-runtime:python3.11"


def zip_tree(root, dest):
    import zipfile

    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(root).as_posix())
    return dest


@pytest.fixture(scope="module")
def agent_zip(tmp_path_factory):
    staging = staged_packages(AGENT_DIR / "requirements.txt", tmp_path_factory.mktemp("aws-agent"))
    (staging / "main.py").write_text((AGENT_DIR / "main.py").read_text())
    return zip_tree(staging, tmp_path_factory.mktemp("zip") / "aws-agent.zip")


def start_emulator(tmp_path, *extra, data_dir=None):
    subprocess.run(["docker", "image", "inspect", BASE_IMAGE], check=True, capture_output=True)
    emu = Emulator(data_dir=data_dir, extra_args=["--max-tps-per-endpoint", "0", *extra])
    return emu.start(tmp_path / f"emulator-{uuid.uuid4().hex[:6]}.log")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    emu = start_emulator(tmp_path_factory.mktemp("stack"))
    yield emu
    emu.stop()


def deploy(url, agent_zip, name, role_arn=ROLE_ARN, network=None):
    cli = Cli(url)
    bucket = f"agents-{uuid.uuid4().hex[:8]}"
    cli.run("s3", "mb", f"s3://{bucket}")
    cli.run("s3", "cp", str(agent_zip), f"s3://{bucket}/agent.zip")
    control = boto_client(url, "bedrock-agentcore-control")
    created = control.create_agent_runtime(
        agentRuntimeName=name,
        agentRuntimeArtifact=artifact(bucket),
        roleArn=role_arn,
        networkConfiguration=network or {"networkMode": "PUBLIC"},
        # The longest idle timeout: sessions must outlive the waits of the expiry test (time-scaled).
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 28800, "maxLifetime": 28800},
    )
    rt = wait_for_status(control, created["agentRuntimeId"], timeout=120)
    assert rt["status"] == "READY", rt.get("failureReason")
    return created, bucket


def artifact(bucket):
    return {"codeConfiguration": {"code": {"s3": {"bucket": bucket, "prefix": "agent.zip"}},
                                  "runtime": "PYTHON_3_11", "entryPoint": ["main.py"]}}


def ask(url, arn, session, payload):
    data = boto_client(url, "bedrock-agentcore")
    resp = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps(payload))
    return json.loads(resp["response"].read())


def host_client(url, service, creds):
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
        aws_session_token=creds["token"],
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def test_an_agent_calls_aws_as_its_execution_role(stack, agent_zip):
    created, bucket = deploy(stack.url, agent_zip, "aws_agent")
    arn = created["agentRuntimeArn"]
    session = f"creds-{uuid.uuid4()}"

    env = ask(stack.url, arn, session, {"action": "env"})
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env, env
    endpoint = env["AWS_ENDPOINT_URL"]
    assert endpoint == env["AWS_EC2_METADATA_SERVICE_ENDPOINT"].rstrip("/"), env
    assert "127.0.0.1" not in endpoint and "0.0.0.0" not in endpoint, "the sandbox reaches the emulator on its network"
    assert env["AWS_REGION"] == REGION and env["AWS_DEFAULT_REGION"] == REGION

    who = ask(stack.url, arn, session, {"action": "whoami"})
    assert who["method"] == "iam-role", "boto3's default chain found the metadata service"
    assert who["access_key"].startswith("ASIA")
    assert who["identity"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/AgentRole/{session}"
    assert who["identity"]["Account"] == ACCOUNT
    assert who["identity"]["UserId"].startswith("AROA") and who["identity"]["UserId"].endswith(f":{session}")

    # An object the agent writes is there for the host.
    ask(stack.url, arn, session, {"action": "put", "bucket": bucket, "key": "from-agent.txt", "body": "hello host"})
    s3 = boto_client(stack.url, "s3")
    assert s3.get_object(Bucket=bucket, Key="from-agent.txt")["Body"].read() == b"hello host"

    # A service the emulator does not serve answers at once, in the protocol's error shape.
    for service, operation in (("sqs", "ListQueues"), ("sns", "ListTopics")):
        out = ask(stack.url, arn, session, {"action": "call", "service": service})
        assert out["error"]["Code"] == "UnknownOperationException", out
        assert service in out["error"]["Message"].lower() and operation in out["error"]["Message"], out
        assert out["seconds"] < 5, out
    log = stack.log()
    assert session in log and "ListQueues" in log, "the refusal is logged with the session id"


def test_require_mmdsv2_refuses_token_less_requests(stack, agent_zip):
    created, bucket = deploy(stack.url, agent_zip, "mmds_agent")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    control = boto_client(stack.url, "bedrock-agentcore-control")

    default = ask(stack.url, arn, f"mmds-{uuid.uuid4()}", {"action": "imds"})
    assert (default["v2_credentials_status"], default["v1_role_status"]) == (200, 200), default

    def update(require):
        control.update_agent_runtime(
            agentRuntimeId=runtime_id, agentRuntimeArtifact=artifact(bucket), roleArn=ROLE_ARN,
            networkConfiguration={"networkMode": "PUBLIC"}, metadataConfiguration={"requireMMDSV2": require},
            lifecycleConfiguration={"idleRuntimeSessionTimeout": 28800, "maxLifetime": 28800},
        )
        rt = wait_for_status(control, runtime_id, timeout=120)
        assert rt["status"] == "READY" and rt["metadataConfiguration"] == {"requireMMDSV2": require}, rt

    update(True)
    strict_session = f"mmds-{uuid.uuid4()}"
    strict = ask(stack.url, arn, strict_session, {"action": "imds"})
    assert strict["token_status"] == 200 and strict["role"] == "AgentRole"
    assert strict["v2_credentials_status"] == 200 and strict["v1_role_status"] == 401, strict
    who = ask(stack.url, arn, strict_session, {"action": "whoami"})
    assert who["identity"]["Arn"].endswith(f"/AgentRole/{strict_session}"), "boto3 uses v2 and still finds credentials"

    update(False)
    relaxed = ask(stack.url, arn, f"mmds-{uuid.uuid4()}", {"action": "imds"})
    assert relaxed["v1_role_status"] == 200, relaxed


def test_a_session_sees_only_its_own_credentials(stack, agent_zip):
    created, _ = deploy(stack.url, agent_zip, "two_sessions")
    arn = created["agentRuntimeArn"]
    first, second = f"one-{uuid.uuid4()}", f"two-{uuid.uuid4()}"
    a = ask(stack.url, arn, first, {"action": "imds"})
    a_address = ask(stack.url, arn, first, {"action": "env"})["address"]
    b = ask(stack.url, arn, second, {"action": "imds", "foreign_token": a["token"]})
    assert a["v2_access_key"] != b["v2_access_key"]
    assert b["foreign_token_status"] == 401, "another sandbox's metadata token is refused"
    who = ask(stack.url, arn, second, {"action": "whoami"})
    assert who["identity"]["Arn"].endswith(f"/{second}") and who["access_key"] == b["v2_access_key"]
    assert not ask(stack.url, arn, second, {"action": "reach", "host": a_address, "port": 8080})["connected"]


@pytest.fixture
def outside_host():
    """A TCP service beyond the host, as the internet is to a sandbox: in a network namespace of its
    own behind a veth pair, so a sandbox's connection to it is routed out through the host."""
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        pytest.skip("creating a network namespace needs root (CI and scripts/test run as root)")
    name = f"acl{uuid.uuid4().hex[:6]}"  # interface names below stay within 15 characters
    block = 4 * int(uuid.uuid4().int % 16000)  # a /30 of 10.220.0.0/16 per test run
    host_ip, outside_ip = f"10.220.{block // 256}.{block % 256 + 1}", f"10.220.{block // 256}.{block % 256 + 2}"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", f"{name}h", "type", "veth", "peer", "name", f"{name}o"],
        ["ip", "link", "set", f"{name}o", "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", f"{name}h"],
        ["ip", "link", "set", f"{name}h", "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{outside_ip}/30", "dev", f"{name}o"],
        ["ip", "netns", "exec", name, "ip", "link", "set", f"{name}o", "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    server = None
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "http.server", "8099",
                                   "--bind", outside_ip], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c",
                              f"import socket; socket.create_connection(('{outside_ip}', 8099), 1)"],
                             capture_output=True).returncode != 0:
            assert time.time() < deadline, "the outside server did not start"
            time.sleep(0.1)
        yield outside_ip, 8099
    finally:
        if server:
            server.kill()
        subprocess.run(["ip", "link", "del", f"{name}h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_a_vpc_session_reaches_the_emulator_and_nothing_else(stack, agent_zip, outside_host):
    """networkMode VPC (issue 17): the session's AWS calls and credentials work as in PUBLIC, but it
    has no route out of the host and cannot reach another session; a PUBLIC session of the same
    agent reaches the same outside service, so the check can fail."""
    vpc = {"networkMode": "VPC", "networkModeConfig": {"subnets": ["subnet-0a1b2c3d4e5f"],
                                                       "securityGroups": ["sg-0a1b2c3d4e5f"]}}
    private, bucket = deploy(stack.url, agent_zip, "vpc_agent", network=vpc)
    public, _ = deploy(stack.url, agent_zip, "public_agent")
    outside_ip, port = outside_host
    reach_outside = {"action": "reach", "host": outside_ip, "port": port}

    assert ask(stack.url, public["agentRuntimeArn"], f"pub-{uuid.uuid4()}", reach_outside)["connected"]

    first, second = f"vpc-{uuid.uuid4()}", f"vpc-{uuid.uuid4()}"
    arn = private["agentRuntimeArn"]
    who = ask(stack.url, arn, first, {"action": "whoami"})
    assert who["method"] == "iam-role" and who["identity"]["Arn"].endswith(f"/AgentRole/{first}"), who
    ask(stack.url, arn, first, {"action": "put", "bucket": bucket, "key": "from-vpc.txt", "body": "inside"})
    assert boto_client(stack.url, "s3").get_object(Bucket=bucket, Key="from-vpc.txt")["Body"].read() == b"inside"

    blocked = ask(stack.url, arn, first, reach_outside)
    assert not blocked["connected"], f"a VPC session reached a host outside: {blocked}"
    first_address = ask(stack.url, arn, first, {"action": "env"})["address"]
    assert not ask(stack.url, arn, second, {"action": "reach", "host": first_address, "port": 8080})["connected"]

    control = boto_client(stack.url, "bedrock-agentcore-control")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        control.create_agent_runtime(agentRuntimeName="vpc_without_subnets", agentRuntimeArtifact=artifact(bucket),
                                     roleArn=ROLE_ARN, networkConfiguration={"networkMode": "VPC"})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "networkModeConfig" in refused.value.response["Error"]["Message"]


PRIVATE_NETWORK = "agentcore-local-sandboxes-private"


def private_networks():
    """Ids of the Docker networks named as the VPC sessions' network, oldest first."""
    listed = docker("network", "ls", "--no-trunc", "--filter", f"name={PRIVATE_NETWORK}",
                    "--format", "{{.Name}} {{.ID}}").stdout.split("\n")
    ids = [line.split()[1] for line in listed if line.split()[:1] == [PRIVATE_NETWORK]]
    created = {i: docker("network", "inspect", "--format", "{{.Created.UnixNano}}", i).stdout.strip() for i in ids}
    return sorted(ids, key=lambda i: int(created[i]))


def test_a_duplicate_sandbox_network_left_by_a_race_is_removed(tmp_path, agent_zip):
    """Two emulators creating the VPC sessions' network at once can leave two networks of that name,
    and Docker then starts nothing on either ("is ambiguous"). An emulator keeps the oldest and
    removes the others, so VPC sessions start again."""
    create = ["network", "create", "--internal", "--opt", "com.docker.network.bridge.enable_icc=false",
              "--label", "agentcore-local.managed=true", PRIVATE_NETWORK]
    # Emulators look for the networks under a host-wide lock file (and remove duplicates there):
    # holding it, the test makes its duplicate without another worker's emulator removing it
    # before this test's emulator starts.
    lock_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "agentcore-local-docker-networks.lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not private_networks():
            docker(*create)
        oldest = private_networks()[0]
        # What the race leaves: the CLI asks Docker to refuse a duplicate name, racing creators get
        # past that check; the Engine API without the check makes one directly.
        duplicate = json.dumps({"Name": PRIVATE_NETWORK, "CheckDuplicate": False, "Internal": True,
                                "Labels": {"agentcore-local.managed": "true"}})
        with socket.socket(socket.AF_UNIX) as engine:
            engine.connect("/var/run/docker.sock")
            engine.sendall(f"POST /networks/create HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(duplicate)}\r\n\r\n{duplicate}".encode())
            answer = b"".join(iter(lambda: engine.recv(65536), b"")).decode(errors="replace")
        if answer.split()[1:2] != ["201"]:
            pytest.skip(f"this Docker refuses duplicate network names outright, so the race cannot happen: {answer}")
        assert len(private_networks()) == 2
    emu = start_emulator(tmp_path)
    try:
        vpc = {"networkMode": "VPC", "networkModeConfig": {"subnets": ["subnet-0a1b2c3d4e5f"],
                                                           "securityGroups": ["sg-0a1b2c3d4e5f"]}}
        private, _ = deploy(emu.url, agent_zip, "vpc_after_race", network=vpc)
        who = ask(emu.url, private["agentRuntimeArn"], f"vpc-{uuid.uuid4()}", {"action": "whoami"})
        assert who["method"] == "iam-role", who
        assert private_networks() == [oldest]
    finally:
        emu.stop()


def test_credentials_rotate_before_they_expire_and_then_stop_working(tmp_path, agent_zip):
    # Time scale 0.02: session credentials live 72 s; a new one is handed out after 36 s.
    emu = start_emulator(tmp_path, "--lifecycle-time-scale", "0.02")
    try:
        created, bucket = deploy(emu.url, agent_zip, "rotating")
        arn, session = created["agentRuntimeArn"], f"rot-{uuid.uuid4()}"
        first = ask(emu.url, arn, session, {"action": "creds"})
        issued = time.time()
        sts = host_client(emu.url, "sts", first)
        assert sts.get_caller_identity()["Arn"].endswith(f"/AgentRole/{session}")
        assert ask(emu.url, arn, session, {"action": "creds"})["access_key"] == first["access_key"]

        time.sleep(max(0, issued + 38 - time.time()))
        second = ask(emu.url, arn, session, {"action": "creds"})
        assert second["access_key"] != first["access_key"], "no new credentials at half-life"
        assert sts.get_caller_identity()["Arn"].endswith(f"/{session}"), "the old ones still work until they expire"

        time.sleep(max(0, issued + 74 - time.time()))
        for service, call, code in (
            ("sts", lambda c: c.get_caller_identity(), "ExpiredToken"),
            ("s3", lambda c: c.list_objects_v2(Bucket=bucket), "ExpiredToken"),
            ("bedrock-agentcore-control", lambda c: c.list_agent_runtimes(), "ExpiredTokenException"),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as err:
                call(host_client(emu.url, service, first))
            assert err.value.response["Error"]["Code"] == code, (service, err.value.response)
        assert host_client(emu.url, "sts", second).get_caller_identity()["Arn"].endswith(f"/{session}")
        # The agent's own calls keep working across the rotation.
        assert ask(emu.url, arn, session, {"action": "whoami"})["identity"]["Arn"].endswith(f"/{session}")
    finally:
        emu.stop()


def test_credentials_and_sessions_survive_a_restart(tmp_path, agent_zip):
    data_dir = tmp_path / "data"
    emu = start_emulator(tmp_path, "--keep-sessions", "--listen", "127.0.0.1:0", data_dir=data_dir)
    try:
        created, _ = deploy(emu.url, agent_zip, "restarted")
        arn, session = created["agentRuntimeArn"], f"keep-{uuid.uuid4()}"
        before = ask(emu.url, arn, session, {"action": "creds"})
        assumed = boto_client(emu.url, "sts").assume_role(RoleArn=ROLE_ARN, RoleSessionName="survivor")["Credentials"]
    finally:
        emu.stop()
    db = (data_dir / "agentcore-local.sqlite3").read_bytes()
    for secret in (before["secret_key"], assumed["SecretAccessKey"], before["token"], assumed["SessionToken"]):
        assert secret.encode() not in db, "secrets are derived, never stored"

    emu = start_emulator(tmp_path, "--listen", "127.0.0.1:0", data_dir=data_dir)
    try:
        after = ask(emu.url, arn, session, {"action": "creds"})
        assert after["access_key"] == before["access_key"], "the re-adopted session keeps its credentials"
        assert ask(emu.url, arn, session, {"action": "whoami"})["identity"]["Arn"].endswith(f"/{session}")
        creds = {"access_key": assumed["AccessKeyId"], "secret_key": assumed["SecretAccessKey"], "token": assumed["SessionToken"]}
        assert host_client(emu.url, "sts", creds).get_caller_identity()["Arn"].endswith("/AgentRole/survivor")
    finally:
        emu.stop()


@pytest.fixture
def host(tmp_path):
    emu = Emulator().start(tmp_path / "emulator.log")
    yield emu
    emu.stop()


def test_assume_role_with_boto3(host):
    sts = boto_client(host.url, "sts")
    resp = sts.assume_role(RoleArn="arn:aws:iam::111122223333:role/team/Deployer", RoleSessionName="dev@example.com",
                           DurationSeconds=900, SourceIdentity="dev")
    creds = resp["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    assert 850 < (creds["Expiration"].timestamp() - time.time()) <= 900
    assert resp["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111122223333:assumed-role/Deployer/dev@example.com"
    assert resp["AssumedRoleUser"]["AssumedRoleId"].endswith(":dev@example.com") and resp["SourceIdentity"] == "dev"
    as_role = {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"], "token": creds["SessionToken"]}
    who = host_client(host.url, "sts", as_role).get_caller_identity()
    assert who["Account"] == "111122223333" and who["Arn"].endswith("/Deployer/dev@example.com")
    # The role's account is where its requests act.
    control = host_client(host.url, "bedrock-agentcore-control", as_role)
    assert control.list_agent_runtimes()["agentRuntimes"] == []

    # A wrong session token, model validation, and role chaining's one-hour limit.
    forged = dict(as_role, token=base64.b64encode(b"x" * 64).decode())
    with pytest.raises(botocore.exceptions.ClientError) as err:
        host_client(host.url, "sts", forged).get_caller_identity()
    assert err.value.response["Error"]["Code"] == "InvalidClientTokenId"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        host_client(host.url, "bedrock-agentcore-control", dict(as_role, token=None)).list_agent_runtimes()
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/R", RoleSessionName="bad name!")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "'roleSessionName' failed to satisfy constraint" in err.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        host_client(host.url, "sts", as_role).assume_role(RoleArn=ROLE_ARN, RoleSessionName="chain", DurationSeconds=7200)
    assert "role chaining" in err.value.response["Error"]["Message"]


def jwt(claims):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc(claims)}.{enc('signature')}"


def test_cli_profiles_that_assume_roles(host, tmp_path):
    token_file = tmp_path / "token.jwt"
    token_file.write_text(jwt({"sub": "ci-job-42", "aud": "sts.amazonaws.com", "iss": "https://idp.example",
                               "exp": int(time.time()) + 3600}))
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\naws_access_key_id = test\naws_secret_access_key = test\n\n"
        f"[profile deployer]\nrole_arn = {ROLE_ARN}\nsource_profile = base\nrole_session_name = cli-user\n\n"
        f"[profile ci]\nrole_arn = {ROLE_ARN}\nweb_identity_token_file = {token_file}\nrole_session_name = ci\n"
    )
    env = client_env(host.url)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key)
    env["AWS_CONFIG_FILE"] = str(config)
    # The CLI caches assumed-role credentials under ~/.aws/cli/cache for their lifetime; a run
    # within the hour would otherwise send an earlier emulator's credentials to this one.
    env["HOME"] = str(tmp_path)

    def aws(*args):
        proc = subprocess.run([str(AWS_CLI), *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    who = aws("sts", "get-caller-identity", "--profile", "deployer")
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/AgentRole/cli-user", who
    assert aws("bedrock-agentcore-control", "list-agent-runtimes", "--profile", "deployer")["agentRuntimes"] == []
    who = aws("sts", "get-caller-identity", "--profile", "ci")
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/AgentRole/ci", who

    # boto3's own call, unsigned as on AWS, with the claims read back.
    sts = boto3.session.Session().client("sts", endpoint_url=host.url, region_name=REGION,
                                         config=botocore.config.Config(signature_version=botocore.UNSIGNED))
    resp = sts.assume_role_with_web_identity(RoleArn=ROLE_ARN, RoleSessionName="web", WebIdentityToken=token_file.read_text())
    assert (resp["SubjectFromWebIdentityToken"], resp["Audience"], resp["Provider"]) == ("ci-job-42", "sts.amazonaws.com", "idp.example")
    expired = jwt({"sub": "x", "aud": "a", "iss": "https://idp.example", "exp": int(time.time()) - 10})
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sts.assume_role_with_web_identity(RoleArn=ROLE_ARN, RoleSessionName="web", WebIdentityToken=expired)
    assert err.value.response["Error"]["Code"] == "ExpiredTokenException"
