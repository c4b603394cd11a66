"""The same user flows through the real `aws bedrock-agentcore-control` CLI (awscli v1)."""
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import ACCOUNT, CONTAINER_URI, REGION, ROLE_ARN, create_runtime, wait_for_status

ARTIFACT_JSON = json.dumps({"containerConfiguration": {"containerUri": CONTAINER_URI}})
SERVICE = "bedrock-agentcore-control"


def ac(cli, *args, **kw):
    """Run `aws bedrock-agentcore-control ...` and parse its JSON output."""
    return cli.json(SERVICE, *args, **kw)


def ac_fails(cli, *args, code, operation, **kw):
    """Run a command that must fail with a service error; returns the error message."""
    proc = cli.run(SERVICE, *args, check=False, **kw)
    assert proc.returncode == 255, f"exit {proc.returncode}\nstdout={proc.stdout}\nstderr={proc.stderr}"
    assert proc.stdout.strip() == ""
    match = re.search(r"An error occurred \((\w+)\) when calling the (\w+) operation: (.+)", proc.stderr, re.S)
    assert match, proc.stderr
    assert (match.group(1), match.group(2)) == (code, operation), proc.stderr
    return match.group(3).strip()


def parallel(*thunks):
    """Run independent CLI invocations two at a time (each one is a ~0.6 s Python start-up)."""
    with ThreadPoolExecutor(2) as pool:
        return [f.result() for f in [pool.submit(t) for t in thunks]]


def until(predicate, timeout=10):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        time.sleep(0.05)


def gone(call):
    try:
        call()
    except Exception as e:  # botocore ClientError
        assert e.response["Error"]["Code"] == "ResourceNotFoundException", e
        return True
    return False


def cli_create(cli, name, *extra, **kw):
    return ac(cli, "create-agent-runtime", "--agent-runtime-name", name, "--agent-runtime-artifact", ARTIFACT_JSON,
              "--role-arn", ROLE_ARN, "--network-configuration", "networkMode=PUBLIC", *extra, **kw)


def cli_update(cli, runtime_id, *extra):
    return ac(cli, "update-agent-runtime", "--agent-runtime-id", runtime_id, "--agent-runtime-artifact", ARTIFACT_JSON,
              "--role-arn", ROLE_ARN, "--network-configuration", "networkMode=PUBLIC", *extra)


def test_cli_create_get_and_tags(cli, control):
    out = cli_create(cli, "cli_agent", "--protocol-configuration", "serverProtocol=HTTP",
                     "--environment-variables", "FOO=bar", "--tags", "team=x")
    rid = out["agentRuntimeId"]
    assert re.fullmatch(r"cli_agent-[A-Za-z0-9]{10}", rid)
    assert out["agentRuntimeArn"] == f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{rid}"
    assert out["agentRuntimeVersion"] == "1"
    assert out["status"] == "CREATING"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", out["createdAt"]), out["createdAt"]

    wait_for_status(control, rid)
    got = ac(cli, "get-agent-runtime", "--agent-runtime-id", rid)
    assert got["status"] == "READY"
    assert got["agentRuntimeName"] == "cli_agent"
    assert got["protocolConfiguration"] == {"serverProtocol": "HTTP"}
    assert got["environmentVariables"] == {"FOO": "bar"}
    assert got["networkConfiguration"] == {"networkMode": "PUBLIC"}
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800}
    assert got["roleArn"] == ROLE_ARN
    v1 = ac(cli, "get-agent-runtime", "--agent-runtime-id", rid, "--agent-runtime-version", "1")
    assert v1["agentRuntimeVersion"] == "1"
    assert v1["environmentVariables"] == {"FOO": "bar"}

    arn = out["agentRuntimeArn"]
    assert ac(cli, "list-tags-for-resource", "--resource-arn", arn) == {"tags": {"team": "x"}}
    assert ac(cli, "tag-resource", "--resource-arn", arn, "--tags", "env=dev,owner=me") is None
    assert ac(cli, "untag-resource", "--resource-arn", arn, "--tag-keys", "team", "owner") is None
    assert ac(cli, "list-tags-for-resource", "--resource-arn", arn) == {"tags": {"env": "dev"}}


def test_cli_update_creates_versions(cli, control):
    rid = cli_create(cli, "cli_versions", "--environment-variables", "FOO=bar")["agentRuntimeId"]
    wait_for_status(control, rid)
    upd = cli_update(cli, rid, "--environment-variables", "FOO=baz", "--description", "second")
    assert upd["agentRuntimeVersion"] == "2"
    assert upd["status"] == "UPDATING"
    assert upd["agentRuntimeId"] == rid
    wait_for_status(control, rid)
    latest = ac(cli, "get-agent-runtime", "--agent-runtime-id", rid)
    assert (latest["agentRuntimeVersion"], latest["environmentVariables"], latest["description"]) == ("2", {"FOO": "baz"}, "second")
    old = ac(cli, "get-agent-runtime", "--agent-runtime-id", rid, "--agent-runtime-version", "1")
    assert (old["agentRuntimeVersion"], old["environmentVariables"]) == ("1", {"FOO": "bar"})
    assert "description" not in old
    versions = ac(cli, "list-agent-runtime-versions", "--agent-runtime-id", rid)["agentRuntimes"]
    assert [v["agentRuntimeVersion"] for v in versions] == ["2", "1"]


def test_cli_list_pagination(cli, control):
    created = {create_runtime(control, f"cli_page_{i}")["agentRuntimeId"] for i in range(5)}

    # Explicit --max-results: one page and a nextToken to continue by hand.
    first = ac(cli, "list-agent-runtimes", "--max-results", "2")
    assert len(first["agentRuntimes"]) == 2
    assert first.get("nextToken")
    second = ac(cli, "list-agent-runtimes", "--max-results", "2", "--next-token", first["nextToken"])
    third = ac(cli, "list-agent-runtimes", "--max-results", "2", "--next-token", second["nextToken"])
    assert len(third["agentRuntimes"]) == 1 and "nextToken" not in third
    by_hand = [r["agentRuntimeId"] for p in (first, second, third) for r in p["agentRuntimes"]]
    assert sorted(by_hand) == sorted(created)

    # Auto pagination: the CLI follows nextToken itself, two per request.
    proc = cli.run(SERVICE, "list-agent-runtimes", "--page-size", "2", "--debug")
    everything = json.loads(proc.stdout)
    assert sorted(r["agentRuntimeId"] for r in everything["agentRuntimes"]) == sorted(created)
    assert "nextToken" not in everything and "NextToken" not in everything
    requests = re.findall(r"Making request for OperationModel\(name=ListAgentRuntimes\)", proc.stderr)
    assert len(requests) == 3, f"expected 3 page requests, saw {len(requests)}"

    # --max-items: the CLI's own resumable token.
    part1 = ac(cli, "list-agent-runtimes", "--max-items", "3", "--page-size", "2")
    assert len(part1["agentRuntimes"]) == 3 and part1.get("NextToken")
    part2 = ac(cli, "list-agent-runtimes", "--max-items", "3", "--page-size", "2", "--starting-token", part1["NextToken"])
    assert len(part2["agentRuntimes"]) == 2 and "NextToken" not in part2
    resumed = [r["agentRuntimeId"] for p in (part1, part2) for r in p["agentRuntimes"]]
    assert len(set(resumed)) == 5 and set(resumed) == created


def test_cli_endpoints(cli, control):
    rid = cli_create(cli, "cli_endpoints")["agentRuntimeId"]
    wait_for_status(control, rid)
    cli_update(cli, rid)
    wait_for_status(control, rid)

    created = ac(cli, "create-agent-runtime-endpoint", "--agent-runtime-id", rid, "--name", "prod",
                 "--agent-runtime-version", "1", "--description", "production", "--tags", "tier=gold")
    assert created["targetVersion"] == "1"
    assert created["status"] == "CREATING"
    assert created["endpointName"] == "prod"
    assert created["agentRuntimeEndpointArn"].endswith(f"runtime/{rid}/runtime-endpoint/prod")

    got = ac(cli, "get-agent-runtime-endpoint", "--agent-runtime-id", rid, "--endpoint-name", "prod")
    assert (got["name"], got["targetVersion"], got["description"]) == ("prod", "1", "production")
    assert ac(cli, "list-tags-for-resource", "--resource-arn", created["agentRuntimeEndpointArn"]) == {"tags": {"tier": "gold"}}

    listed = ac(cli, "list-agent-runtime-endpoints", "--agent-runtime-id", rid)["runtimeEndpoints"]
    by_name = {e["name"]: e for e in listed}
    assert set(by_name) == {"DEFAULT", "prod"}
    assert by_name["DEFAULT"]["targetVersion"] == "2"

    moved = ac(cli, "update-agent-runtime-endpoint", "--agent-runtime-id", rid, "--endpoint-name", "prod",
               "--agent-runtime-version", "2")
    assert moved["targetVersion"] == "2"
    assert moved["status"] == "UPDATING"

    msg, _ = parallel(
        lambda: ac_fails(cli, "update-agent-runtime-endpoint", "--agent-runtime-id", rid, "--endpoint-name", "DEFAULT",
                         "--agent-runtime-version", "1", code="ValidationException",
                         operation="UpdateAgentRuntimeEndpoint"),
        lambda: ac_fails(cli, "delete-agent-runtime-endpoint", "--agent-runtime-id", rid, "--endpoint-name", "DEFAULT",
                         code="ConflictException", operation="DeleteAgentRuntimeEndpoint"),
    )
    assert "DEFAULT" in msg

    deleted = ac(cli, "delete-agent-runtime-endpoint", "--agent-runtime-id", rid, "--endpoint-name", "prod")
    assert deleted == {"status": "DELETING", "agentRuntimeId": rid, "endpointName": "prod"}
    until(lambda: gone(lambda: control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="prod")))
    ac_fails(cli, "get-agent-runtime-endpoint", "--agent-runtime-id", rid, "--endpoint-name", "prod",
             code="ResourceNotFoundException", operation="GetAgentRuntimeEndpoint")


def test_cli_delete_runtime(cli, control):
    rid = cli_create(cli, "cli_delete")["agentRuntimeId"]
    wait_for_status(control, rid)
    out = ac(cli, "delete-agent-runtime", "--agent-runtime-id", rid)
    assert out == {"status": "DELETING", "agentRuntimeId": rid}
    until(lambda: gone(lambda: control.get_agent_runtime(agentRuntimeId=rid)))
    msg = ac_fails(cli, "get-agent-runtime", "--agent-runtime-id", rid,
                   code="ResourceNotFoundException", operation="GetAgentRuntime")
    assert rid in msg
    assert ac(cli, "list-agent-runtimes") == {"agentRuntimes": []}


def test_cli_service_errors_exit_255(cli):
    create_args = ["--agent-runtime-artifact", ARTIFACT_JSON, "--role-arn", ROLE_ARN,
                   "--network-configuration", "networkMode=PUBLIC"]
    cli_create(cli, "cli_dup")
    ghost_arn = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/ghost-AbCdEf1234"
    messages = parallel(
        lambda: ac_fails(cli, "get-agent-runtime", "--agent-runtime-id", "ghost-AbCdEf1234",
                         code="ResourceNotFoundException", operation="GetAgentRuntime"),
        lambda: ac_fails(cli, "create-agent-runtime", "--agent-runtime-name", "cli_dup", *create_args,
                         code="ConflictException", operation="CreateAgentRuntime"),
        lambda: ac_fails(cli, "create-agent-runtime", "--agent-runtime-name", "bad-name", *create_args,
                         code="ValidationException", operation="CreateAgentRuntime"),
        lambda: ac_fails(cli, "create-agent-runtime", "--agent-runtime-name", "lifecycle", *create_args,
                         "--lifecycle-configuration", "idleRuntimeSessionTimeout=600,maxLifetime=300",
                         code="ValidationException", operation="CreateAgentRuntime"),
        lambda: ac_fails(cli, "list-agent-runtimes", "--max-results", "5", "--next-token", "not-a-token",
                         code="ValidationException", operation="ListAgentRuntimes"),
        lambda: ac_fails(cli, "untag-resource", "--resource-arn", ghost_arn, "--tag-keys", "k",
                         code="ResourceNotFoundException", operation="UntagResource"),
        lambda: ac_fails(cli, "list-gateways", code="UnknownOperationException", operation="ListGateways"),
    )
    assert "ghost-AbCdEf1234" in messages[0]
    assert "cli_dup" in messages[1]
    assert "agentRuntimeName" in messages[2]
    assert "idleRuntimeSessionTimeout" in messages[3]
    assert "nextToken" in messages[4]
    assert "ListGateways" in messages[6]
    assert [r["agentRuntimeName"] for r in ac(cli, "list-agent-runtimes")["agentRuntimes"]] == ["cli_dup"]


def test_cli_client_side_validation_never_reaches_the_server(cli):
    proc = cli.run(SERVICE, "create-agent-runtime", "--agent-runtime-name", "low_idle", "--agent-runtime-artifact",
                   ARTIFACT_JSON, "--role-arn", ROLE_ARN, "--network-configuration", "networkMode=PUBLIC",
                   "--lifecycle-configuration", "idleRuntimeSessionTimeout=30", check=False)
    assert proc.returncode == 255
    assert "Parameter validation failed" in proc.stderr
    assert ac(cli, "list-agent-runtimes") == {"agentRuntimes": []}


def test_cli_client_token_idempotency(cli):
    token = str(uuid.uuid4())
    first = cli_create(cli, "cli_idem", "--client-token", token)
    again = cli_create(cli, "cli_idem", "--client-token", token)
    assert again["agentRuntimeId"] == first["agentRuntimeId"]
    assert again["createdAt"] == first["createdAt"]
    proc = cli.run(SERVICE, "create-agent-runtime", "--agent-runtime-name", "cli_idem", "--agent-runtime-artifact",
                   ARTIFACT_JSON, "--role-arn", ROLE_ARN, "--network-configuration", "networkMode=PUBLIC",
                   "--description", "changed", "--client-token", token, check=False)
    assert proc.returncode == 255
    assert "(ValidationException)" in proc.stderr
    assert len(ac(cli, "list-agent-runtimes")["agentRuntimes"]) == 1


def test_cli_region_scoping(cli):
    rid = cli_create(cli, "cli_regional")["agentRuntimeId"]
    assert ac(cli, "list-agent-runtimes", region="ap-southeast-2") == {"agentRuntimes": []}
    ac_fails(cli, "get-agent-runtime", "--agent-runtime-id", rid, region="ap-southeast-2",
             code="ResourceNotFoundException", operation="GetAgentRuntime")
    other = cli_create(cli, "cli_regional", region="ap-southeast-2")
    assert other["agentRuntimeArn"].startswith(f"arn:aws:bedrock-agentcore:ap-southeast-2:{ACCOUNT}:runtime/cli_regional-")
    assert [r["agentRuntimeId"] for r in ac(cli, "list-agent-runtimes")["agentRuntimes"]] == [rid]
