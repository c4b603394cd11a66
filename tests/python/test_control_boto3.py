"""bedrock-agentcore-control through boto3: every runtime, version, endpoint and tag operation,
their error classes, pagination, idempotency and per-account/Region scoping."""
import datetime
import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, CONTAINER_URI, REGION, ROLE_ARN, boto_client, create_runtime, wait_for_status

ARTIFACT = {"containerConfiguration": {"containerUri": CONTAINER_URI}}
ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


# ---------------------------------------------------------------- helpers


def unvalidated(url, region=REGION):
    """boto3 without client-side parameter validation, so bad input reaches the server."""
    return boto3.session.Session().client(
        "bedrock-agentcore-control",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


def error(excinfo):
    """(code, http status, full response) of a ClientError."""
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], resp


def assert_client_error(excinfo, code, status):
    got_code, got_status, resp = error(excinfo)
    assert (got_code, got_status) == (code, status), resp
    assert resp["Error"]["Message"], "AWS errors always carry a message"
    assert resp["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype") == code
    assert resp["ResponseMetadata"].get("RequestId"), "x-amzn-RequestId header missing"
    return resp


def update_runtime(control, runtime_id, **kw):
    args = dict(agentRuntimeId=runtime_id, agentRuntimeArtifact=ARTIFACT, roleArn=ROLE_ARN,
                networkConfiguration={"networkMode": "PUBLIC"})
    args.update(kw)
    return control.update_agent_runtime(**args)


def ready_runtime(control, name, **kw):
    created = create_runtime(control, name, **kw)
    rt = wait_for_status(control, created["agentRuntimeId"])
    assert rt["status"] == "READY", rt
    return created


def wait_endpoint(control, runtime_id, name, predicate=lambda e: e["status"] == "READY", timeout=10):
    deadline = time.time() + timeout
    while True:
        ep = control.get_agent_runtime_endpoint(agentRuntimeId=runtime_id, endpointName=name)
        if predicate(ep):
            return ep
        if time.time() > deadline:
            raise AssertionError(f"endpoint {name} of {runtime_id} never satisfied the condition: {ep}")
        time.sleep(0.05)


def wait_gone(call, timeout=10):
    """Poll `call` until it raises ResourceNotFoundException (resources go DELETING -> gone)."""
    deadline = time.time() + timeout
    while True:
        try:
            result = call()
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException", e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            return e
        if time.time() > deadline:
            raise AssertionError(f"still there after {timeout}s: {result}")
        time.sleep(0.05)


def all_pages(call, key, **kw):
    pages = []
    token = None
    while True:
        args = dict(kw)
        if token:
            args["nextToken"] = token
        page = call(**args)
        pages.append(page[key])
        token = page.get("nextToken")
        if not token:
            return pages
        assert len(pages) < 50, "pagination does not terminate"


def raw_bodies(client):
    """Capture the raw JSON text of every response the client receives."""
    bodies = []

    def grab(http_response, **_):
        bodies.append(http_response.text)

    client.meta.events.register("after-call.*", grab)
    return bodies


# ---------------------------------------------------------------- create / get


def test_create_answers_202_creating_then_becomes_ready(control):
    before = datetime.datetime.now(datetime.timezone.utc)
    created = create_runtime(control, "first_agent")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["status"] == "CREATING"
    assert created["agentRuntimeVersion"] == "1"
    rid = created["agentRuntimeId"]
    assert re.fullmatch(r"first_agent-[A-Za-z0-9]{10}", rid), rid
    assert created["agentRuntimeArn"] == f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{rid}"
    assert created["workloadIdentityDetails"]["workloadIdentityArn"] == (
        f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:workload-identity-directory/default/workload-identity/{rid}"
    )
    assert abs((created["createdAt"] - before).total_seconds()) < 60

    rt = wait_for_status(control, rid)
    assert rt["status"] == "READY"
    assert rt["agentRuntimeId"] == rid
    assert rt["agentRuntimeName"] == "first_agent"
    assert rt["agentRuntimeArn"] == created["agentRuntimeArn"]
    assert rt["agentRuntimeVersion"] == "1"
    assert rt["createdAt"] == created["createdAt"]
    assert rt["lastUpdatedAt"] >= rt["createdAt"]
    assert rt["roleArn"] == ROLE_ARN
    assert rt["agentRuntimeArtifact"] == ARTIFACT
    assert rt["networkConfiguration"] == {"networkMode": "PUBLIC"}
    assert "tags" not in rt, "GetAgentRuntime has no tags member (ListTagsForResource has them)"


def test_two_runtimes_get_distinct_ids(control):
    a = create_runtime(control, "agent_a")["agentRuntimeId"]
    b = create_runtime(control, "agent_b")["agentRuntimeId"]
    assert a != b
    assert a.rsplit("-", 1)[0] == "agent_a" and b.rsplit("-", 1)[0] == "agent_b"


def test_timestamps_are_iso8601_strings_on_the_wire(control):
    bodies = raw_bodies(control)
    rid = create_runtime(control, "ts_agent")["agentRuntimeId"]
    wait_for_status(control, rid)
    control.list_agent_runtimes()
    control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    stamps = []
    for text in bodies:
        doc = json.loads(text)
        items = [doc] + doc.get("agentRuntimes", []) + doc.get("runtimeEndpoints", [])
        for item in items:
            stamps += [item[k] for k in ("createdAt", "lastUpdatedAt") if k in item]
    assert len(stamps) >= 6, bodies
    for s in stamps:
        assert isinstance(s, str) and ISO_8601.match(s), f"not an ISO-8601 string: {s!r}"


def test_get_returns_every_field_given_at_create(control):
    config = dict(
        description="An agent with every field set",
        environmentVariables={"FOO": "bar", "EMPTY": "", "MODEL": "anthropic.claude"},
        protocolConfiguration={"serverProtocol": "MCP", "port": 8000, "path": "/mcp"},
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 120, "maxLifetime": 3600},
        authorizerConfiguration={
            "customJWTAuthorizer": {
                "discoveryUrl": "https://idp.example.com/.well-known/openid-configuration",
                "allowedClients": ["client-a", "client-b"],
                "allowedAudience": ["my-api"],
            }
        },
        requestHeaderConfiguration={"requestHeaderAllowlist": ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo", "Authorization"]},
        allowedPorts=[{"port": 9000}, {"portRange": {"from": 9100, "to": 9200}}],
        resourceConfigurations=[{"minimumMemoryInMiB": 2048}],
        filesystemConfigurations=[{"sessionStorage": {"mountPath": "/mnt/data"}}],
    )
    created = create_runtime(control, "full_agent", **config)
    rt = wait_for_status(control, created["agentRuntimeId"])
    for key, value in config.items():
        assert rt.get(key) == value, f"{key}: sent {value!r}, got {rt.get(key)!r}"
    v1 = control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"], agentRuntimeVersion="1")
    for key, value in config.items():
        assert v1.get(key) == value, key


def test_code_configuration_artifact_round_trips(control):
    artifact = {
        "codeConfiguration": {
            "code": {"s3": {"bucket": "my-bucket", "prefix": "agents/myagent.zip", "versionId": "v123"}},
            "runtime": "PYTHON_3_12",
            "entryPoint": ["main.py"],
        }
    }
    rid = create_runtime(control, "code_agent", agentRuntimeArtifact=artifact)["agentRuntimeId"]
    assert wait_for_status(control, rid)["agentRuntimeArtifact"] == artifact


@pytest.mark.parametrize(
    "given, expected",
    [
        (None, {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800}),
        ({"idleRuntimeSessionTimeout": 300}, {"idleRuntimeSessionTimeout": 300, "maxLifetime": 28800}),
        ({"maxLifetime": 3000}, {"idleRuntimeSessionTimeout": 900, "maxLifetime": 3000}),
        ({"maxLifetime": 300}, {"idleRuntimeSessionTimeout": 300, "maxLifetime": 300}),
    ],
    ids=["defaults", "idle-only", "max-only-long", "max-only-short"],
)
def test_lifecycle_configuration_defaults_are_filled_in(control, given, expected):
    kw = {"lifecycleConfiguration": given} if given else {}
    rid = create_runtime(control, "lc_agent", **kw)["agentRuntimeId"]
    assert control.get_agent_runtime(agentRuntimeId=rid)["lifecycleConfiguration"] == expected


def test_get_unknown_runtime_and_unknown_version_are_not_found(control):
    with pytest.raises(control.exceptions.ResourceNotFoundException) as exc:
        control.get_agent_runtime(agentRuntimeId="ghost-AbCdEf1234")
    assert "ghost-AbCdEf1234" in assert_client_error(exc, "ResourceNotFoundException", 404)["Error"]["Message"]

    rid = create_runtime(control, "one_version")["agentRuntimeId"]
    with pytest.raises(control.exceptions.ResourceNotFoundException) as exc:
        control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="7")
    assert_client_error(exc, "ResourceNotFoundException", 404)


# ---------------------------------------------------------------- validation


VALIDATION_CASES = {
    "name-with-hyphen": ({"agentRuntimeName": "bad-name"}, "agentRuntimeName"),
    "name-starts-with-digit": ({"agentRuntimeName": "1agent"}, "agentRuntimeName"),
    "idle-below-60": ({"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 30}}, "lifecycleConfiguration.idleRuntimeSessionTimeout"),
    "max-lifetime-below-60": ({"lifecycleConfiguration": {"maxLifetime": 59}}, "lifecycleConfiguration.maxLifetime"),
    "idle-above-max-lifetime": (
        {"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 600, "maxLifetime": 300}},
        "lifecycleConfiguration.idleRuntimeSessionTimeout",
    ),
    "idle-above-default-max-lifetime": (
        {"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 30000}},
        "lifecycleConfiguration.idleRuntimeSessionTimeout",
    ),
    "bad-network-mode": ({"networkConfiguration": {"networkMode": "BOGUS"}}, "networkConfiguration.networkMode"),
    "bad-server-protocol": ({"protocolConfiguration": {"serverProtocol": "FTP"}}, "protocolConfiguration.serverProtocol"),
    "port-out-of-range": ({"protocolConfiguration": {"serverProtocol": "HTTP", "port": 80}}, "protocolConfiguration.port"),
    "reserved-port-8443": ({"protocolConfiguration": {"serverProtocol": "HTTP", "port": 8443}}, "protocolConfiguration.port"),
    "port-range-reversed": ({"allowedPorts": [{"portRange": {"from": 9200, "to": 9100}}]}, "allowedPorts"),
    "allowed-ports-overlapping": ({"allowedPorts": [{"port": 9000}, {"portRange": {"from": 8990, "to": 9010}}]}, "allowedPorts"),
    "discovery-url-not-well-known": (
        {"authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "https://idp.example.com/keys", "allowedClients": ["a"]}}},
        "authorizerConfiguration.customJWTAuthorizer.discoveryUrl",
    ),
    "session-storage-outside-mnt": ({"filesystemConfigurations": [{"sessionStorage": {"mountPath": "/data"}}]}, "filesystemConfigurations"),
    "artifact-union-with-two-members": (
        {"agentRuntimeArtifact": {**ARTIFACT, "codeConfiguration": {"code": {"s3": {"bucket": "my-bucket", "prefix": "a.zip"}}, "runtime": "PYTHON_3_12", "entryPoint": ["main.py"]}}},
        "agentRuntimeArtifact",
    ),
    "container-uri-not-ecr": ({"agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "docker.io/library/python:3.12"}}}, "agentRuntimeArtifact.containerConfiguration.containerUri"),
    "role-arn-not-iam": ({"roleArn": "arn:aws:s3:::bucket"}, "roleArn"),
    "missing-role-arn": ({"roleArn": None}, "roleArn"),
    "bad-code-runtime-enum": (
        {"agentRuntimeArtifact": {"codeConfiguration": {"code": {"s3": {"bucket": "my-bucket", "prefix": "a.zip"}}, "runtime": "PYTHON_2_7", "entryPoint": ["main.py"]}}},
        "agentRuntimeArtifact.codeConfiguration.runtime",
    ),
}


@pytest.mark.parametrize("case", list(VALIDATION_CASES), ids=list(VALIDATION_CASES))
def test_invalid_create_is_rejected_by_the_server(emulator, control, case):
    overrides, field = VALIDATION_CASES[case]
    args = dict(agentRuntimeName="valid_name", agentRuntimeArtifact=ARTIFACT, roleArn=ROLE_ARN,
                networkConfiguration={"networkMode": "PUBLIC"})
    args.update(overrides)
    args = {k: v for k, v in args.items() if v is not None}
    nv = unvalidated(emulator.url)
    with pytest.raises(ClientError) as exc:
        nv.create_agent_runtime(**args)
    resp = assert_client_error(exc, "ValidationException", 400)
    assert resp["reason"] == "FieldValidationFailed", resp
    names = [f["name"] for f in resp.get("fieldList", [])]
    assert any(n == field or n.startswith(field + ".") or n.startswith(field + "[") for n in names), (
        f"fieldList {resp.get('fieldList')} does not name {field}"
    )
    assert control.list_agent_runtimes()["agentRuntimes"] == [], "a rejected create must not create anything"


def test_validation_errors_use_the_aws_message_format(emulator):
    nv = unvalidated(emulator.url)
    with pytest.raises(ClientError) as exc:
        create_runtime(nv, "bad-name", lifecycleConfiguration={"idleRuntimeSessionTimeout": 30})
    resp = assert_client_error(exc, "ValidationException", 400)
    message = resp["Error"]["Message"]
    assert message.startswith("2 validation errors detected: "), message
    assert "Value 'bad-name' at 'agentRuntimeName' failed to satisfy constraint" in message
    assert "at 'lifecycleConfiguration.idleRuntimeSessionTimeout' failed to satisfy constraint" in message
    assert sorted(f["name"] for f in resp["fieldList"]) == ["agentRuntimeName", "lifecycleConfiguration.idleRuntimeSessionTimeout"]


def test_unparsable_value_is_cannot_parse(emulator):
    nv = unvalidated(emulator.url)
    with pytest.raises(ClientError) as exc:
        create_runtime(nv, "typed_agent", lifecycleConfiguration={"idleRuntimeSessionTimeout": "soon"})
    resp = assert_client_error(exc, "ValidationException", 400)
    assert resp["reason"] == "CannotParse", resp


def test_invalid_update_is_rejected_and_creates_no_version(emulator, control):
    rid = ready_runtime(control, "upd_validation")["agentRuntimeId"]
    nv = unvalidated(emulator.url)
    with pytest.raises(ClientError) as exc:
        update_runtime(nv, rid, lifecycleConfiguration={"idleRuntimeSessionTimeout": 7200, "maxLifetime": 3600})
    resp = assert_client_error(exc, "ValidationException", 400)
    assert resp["fieldList"][0]["name"] == "lifecycleConfiguration.idleRuntimeSessionTimeout"
    versions = control.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert [v["agentRuntimeVersion"] for v in versions] == ["1"]


def test_invalid_max_results_is_rejected(emulator):
    nv = unvalidated(emulator.url)
    for bad in (0, 101):
        with pytest.raises(ClientError) as exc:
            nv.list_agent_runtimes(maxResults=bad)
        resp = assert_client_error(exc, "ValidationException", 400)
        assert resp["fieldList"][0]["name"] == "maxResults"


def test_invalid_identifiers_are_validation_errors(emulator, control):
    rid = create_runtime(control, "ids_agent")["agentRuntimeId"]
    arn = control.get_agent_runtime(agentRuntimeId=rid)["agentRuntimeArn"]
    nv = unvalidated(emulator.url)
    cases = [
        (lambda: nv.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="0"), "agentRuntimeVersion"),
        (lambda: nv.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="latest"), "agentRuntimeVersion"),
        (lambda: nv.get_agent_runtime(agentRuntimeId="no spaces allowed"), "agentRuntimeId"),
        (lambda: nv.get_agent_runtime(agentRuntimeId=arn), "agentRuntimeId"),
        (lambda: nv.create_agent_runtime_endpoint(agentRuntimeId=rid, name="bad-name"), "name"),
        (lambda: nv.create_agent_runtime_endpoint(agentRuntimeId=rid, name="ok", description="x" * 300), "description"),
        (lambda: nv.tag_resource(resourceArn=arn, tags={"bad#key": "v"}), "tags"),
        (lambda: create_runtime(nv, "many_env", environmentVariables={f"K{i}": "v" for i in range(51)}), "environmentVariables"),
    ]
    for call, field in cases:
        with pytest.raises(ClientError) as exc:
            call()
        resp = assert_client_error(exc, "ValidationException", 400)
        assert any(f["name"].split(".")[0].split("[")[0] == field for f in resp["fieldList"]), resp["fieldList"]
    assert [e["name"] for e in control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]] == ["DEFAULT"]
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {}


# ---------------------------------------------------------------- names and idempotency


def test_duplicate_name_is_conflict(control):
    first = create_runtime(control, "dup_agent")
    with pytest.raises(control.exceptions.ConflictException) as exc:
        create_runtime(control, "dup_agent")
    resp = assert_client_error(exc, "ConflictException", 409)
    assert "dup_agent" in resp["Error"]["Message"]
    listed = control.list_agent_runtimes()["agentRuntimes"]
    assert [r["agentRuntimeId"] for r in listed] == [first["agentRuntimeId"]]


def test_client_token_makes_create_idempotent(control):
    token = str(uuid.uuid4())
    first = create_runtime(control, "idem_agent", clientToken=token, description="same")
    again = create_runtime(control, "idem_agent", clientToken=token, description="same")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 202
    for key in ("agentRuntimeId", "agentRuntimeArn", "agentRuntimeVersion", "createdAt"):
        assert again[key] == first[key], key
    assert len(control.list_agent_runtimes()["agentRuntimes"]) == 1

    with pytest.raises(control.exceptions.ValidationException) as exc:
        create_runtime(control, "idem_agent", clientToken=token, description="different")
    resp = assert_client_error(exc, "ValidationException", 400)
    assert resp["reason"] == "IdempotentParameterMismatchException", resp

    # A new token with the same name is a new request, and the name is taken.
    with pytest.raises(control.exceptions.ConflictException):
        create_runtime(control, "idem_agent", clientToken=str(uuid.uuid4()), description="same")


def test_client_token_makes_update_idempotent(control):
    rid = ready_runtime(control, "idem_update")["agentRuntimeId"]
    token = str(uuid.uuid4())
    first = update_runtime(control, rid, clientToken=token, environmentVariables={"V": "2"})
    assert first["agentRuntimeVersion"] == "2"
    wait_for_status(control, rid)
    again = update_runtime(control, rid, clientToken=token, environmentVariables={"V": "2"})
    assert again["agentRuntimeVersion"] == "2"
    versions = control.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert [v["agentRuntimeVersion"] for v in versions] == ["2", "1"]
    with pytest.raises(control.exceptions.ValidationException) as exc:
        update_runtime(control, rid, clientToken=token, environmentVariables={"V": "3"})
    assert error(exc)[2]["reason"] == "IdempotentParameterMismatchException"


def test_client_token_makes_endpoint_create_idempotent(control):
    rid = ready_runtime(control, "idem_endpoint")["agentRuntimeId"]
    token = str(uuid.uuid4())
    first = control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod", clientToken=token)
    again = control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod", clientToken=token)
    assert again["agentRuntimeEndpointArn"] == first["agentRuntimeEndpointArn"]
    assert again["createdAt"] == first["createdAt"]
    names = [e["name"] for e in control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]]
    assert sorted(names) == ["DEFAULT", "prod"]
    with pytest.raises(control.exceptions.ConflictException):
        control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod")


def test_client_token_shorter_than_33_characters_is_rejected(emulator, control):
    nv = unvalidated(emulator.url)
    with pytest.raises(ClientError) as exc:
        create_runtime(nv, "short_token", clientToken="abc")
    resp = assert_client_error(exc, "ValidationException", 400)
    assert resp["fieldList"][0]["name"] == "clientToken"
    assert control.list_agent_runtimes()["agentRuntimes"] == []


def test_name_is_free_again_after_delete(control):
    old = ready_runtime(control, "reused_name")["agentRuntimeId"]
    control.delete_agent_runtime(agentRuntimeId=old)
    wait_gone(lambda: control.get_agent_runtime(agentRuntimeId=old))
    new = create_runtime(control, "reused_name")["agentRuntimeId"]
    assert new != old
    assert wait_for_status(control, new)["status"] == "READY"


# ---------------------------------------------------------------- update / versions


def test_update_creates_an_immutable_new_version(control):
    created = create_runtime(control, "versioned", environmentVariables={"STAGE": "one"}, description="first")
    rid = created["agentRuntimeId"]
    wait_for_status(control, rid)
    upd = update_runtime(control, rid, environmentVariables={"STAGE": "two"}, description="second",
                         protocolConfiguration={"serverProtocol": "A2A"})
    assert upd["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert upd["agentRuntimeVersion"] == "2"
    assert upd["status"] == "UPDATING"
    assert upd["agentRuntimeId"] == rid
    assert upd["agentRuntimeArn"] == created["agentRuntimeArn"]
    assert upd["createdAt"] == created["createdAt"]
    assert upd["lastUpdatedAt"] >= created["createdAt"]

    latest = wait_for_status(control, rid)
    assert latest["status"] == "READY"
    assert latest["agentRuntimeVersion"] == "2"
    assert latest["environmentVariables"] == {"STAGE": "two"}
    assert latest["description"] == "second"
    assert latest["protocolConfiguration"] == {"serverProtocol": "A2A"}

    v1 = control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert v1["agentRuntimeVersion"] == "1"
    assert v1["environmentVariables"] == {"STAGE": "one"}
    assert v1["description"] == "first"
    assert "protocolConfiguration" not in v1
    assert v1["status"] == "READY"

    listed = control.list_agent_runtimes()["agentRuntimes"]
    assert [(r["agentRuntimeId"], r["agentRuntimeVersion"]) for r in listed] == [(rid, "2")]


def test_update_replaces_the_whole_configuration(control):
    rid = ready_runtime(control, "replaced", environmentVariables={"A": "1", "B": "2"})["agentRuntimeId"]
    update_runtime(control, rid, environmentVariables={"C": "3"})
    rt = wait_for_status(control, rid)
    assert rt["environmentVariables"] == {"C": "3"}
    update_runtime(control, rid)
    rt = wait_for_status(control, rid)
    assert rt["agentRuntimeVersion"] == "3"
    assert "environmentVariables" not in rt or rt["environmentVariables"] == {}


def test_metadata_configuration_is_accepted_on_update(control):
    rid = ready_runtime(control, "with_metadata")["agentRuntimeId"]
    update_runtime(control, rid, metadataConfiguration={"requireMMDSV2": True})
    rt = wait_for_status(control, rid)
    assert rt["agentRuntimeVersion"] == "2"
    assert rt["metadataConfiguration"] == {"requireMMDSV2": True}
    assert "metadataConfiguration" not in control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")


def test_update_while_in_progress_is_conflict(emulator, control):
    """Updates racing the reconciler: while a version is CREATING/UPDATING, another update must be
    refused with ConflictException; every update that is accepted gets the next version number."""
    clients = [boto_client(emulator.url, "bedrock-agentcore-control") for _ in range(8)]
    outcomes = []
    for attempt in range(6):
        rid = create_runtime(control, f"racing_{attempt}")["agentRuntimeId"]
        barrier = threading.Barrier(len(clients))

        def update(client, rid=rid, barrier=barrier):
            barrier.wait()
            try:
                return update_runtime(client, rid)["agentRuntimeVersion"]
            except client.exceptions.ConflictException as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409
                assert rid in e.response["Error"]["Message"]
                return "conflict"

        with ThreadPoolExecutor(len(clients)) as pool:
            results = list(pool.map(update, clients))
        accepted = sorted(int(v) for v in results if v != "conflict")
        assert accepted == list(range(2, 2 + len(accepted))), f"versions must be consecutive: {results}"
        wait_for_status(control, rid)
        versions = control.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
        assert len(versions) == 1 + len(accepted), (results, versions)
        outcomes += results
        if "conflict" in outcomes:
            break
    assert "conflict" in outcomes, f"no update was ever refused while another was in progress: {outcomes}"


def test_update_unknown_runtime_is_not_found(control):
    with pytest.raises(control.exceptions.ResourceNotFoundException) as exc:
        update_runtime(control, "ghost-AbCdEf1234")
    assert_client_error(exc, "ResourceNotFoundException", 404)


def test_list_versions_newest_first_with_pagination(control):
    rid = ready_runtime(control, "many_versions")["agentRuntimeId"]
    for n in range(2, 6):
        assert update_runtime(control, rid, environmentVariables={"N": str(n)})["agentRuntimeVersion"] == str(n)
        wait_for_status(control, rid)
    pages = all_pages(control.list_agent_runtime_versions, "agentRuntimes", agentRuntimeId=rid, maxResults=2)
    assert [[v["agentRuntimeVersion"] for v in p] for p in pages] == [["5", "4"], ["3", "2"], ["1"]]
    for page in pages:
        for v in page:
            assert v["agentRuntimeId"] == rid and v["agentRuntimeName"] == "many_versions"
            assert v["status"] == "READY"
    paginated = control.get_paginator("list_agent_runtime_versions").paginate(
        agentRuntimeId=rid, PaginationConfig={"PageSize": 3})
    assert [v["agentRuntimeVersion"] for p in paginated for v in p["agentRuntimes"]] == ["5", "4", "3", "2", "1"]

    with pytest.raises(control.exceptions.ValidationException) as exc:
        control.list_agent_runtime_versions(agentRuntimeId=rid, nextToken="not-a-token")
    assert_client_error(exc, "ValidationException", 400)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_agent_runtime_versions(agentRuntimeId="ghost-AbCdEf1234")


# ---------------------------------------------------------------- list runtimes


def test_list_runtimes_pages_without_duplicates_or_losses(control):
    created = {create_runtime(control, f"paged_{i}")["agentRuntimeId"] for i in range(5)}
    pages = all_pages(control.list_agent_runtimes, "agentRuntimes", maxResults=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [r["agentRuntimeId"] for p in pages for r in p]
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created
    for r in (r for p in pages for r in p):
        assert r["agentRuntimeArn"].endswith("/" + r["agentRuntimeId"])
        assert r["agentRuntimeName"] == r["agentRuntimeId"].rsplit("-", 1)[0]
        assert r["agentRuntimeVersion"] == "1"
        assert r["status"] in ("CREATING", "READY")

    last = control.list_agent_runtimes(maxResults=5)
    assert len(last["agentRuntimes"]) == 5 and "nextToken" not in last

    paginator = control.get_paginator("list_agent_runtimes")
    via_paginator = [r["agentRuntimeId"] for p in paginator.paginate(PaginationConfig={"PageSize": 2}) for r in p["agentRuntimes"]]
    assert sorted(via_paginator) == sorted(created)


def test_list_runtimes_rejects_invalid_and_foreign_next_tokens(control):
    rid = create_runtime(control, "tok_a")["agentRuntimeId"]
    create_runtime(control, "tok_b")
    for bad in ("garbage", "djF8cnVudGltZXN8eA"):  # the second is base64 of "v1|runtimes|x"
        with pytest.raises(control.exceptions.ValidationException) as exc:
            control.list_agent_runtimes(nextToken=bad)
        assert_client_error(exc, "ValidationException", 400)
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="e1")
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="e2")
    endpoint_token = control.list_agent_runtime_endpoints(agentRuntimeId=rid, maxResults=1)["nextToken"]
    with pytest.raises(control.exceptions.ValidationException):
        control.list_agent_runtimes(nextToken=endpoint_token)


def test_list_runtimes_sees_new_runtimes_and_drops_deleted_ones(control):
    a = create_runtime(control, "list_a")["agentRuntimeId"]
    b = create_runtime(control, "list_b", description="bee")["agentRuntimeId"]
    items = {r["agentRuntimeId"]: r for r in control.list_agent_runtimes()["agentRuntimes"]}
    assert set(items) == {a, b}
    assert items[b]["description"] == "bee"
    control.delete_agent_runtime(agentRuntimeId=a)
    wait_gone(lambda: control.get_agent_runtime(agentRuntimeId=a))
    assert [r["agentRuntimeId"] for r in control.list_agent_runtimes()["agentRuntimes"]] == [b]


# ---------------------------------------------------------------- delete


def test_delete_runtime_goes_deleting_then_not_found(control):
    created = ready_runtime(control, "doomed", tags={"k": "v"})
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod")
    out = control.delete_agent_runtime(agentRuntimeId=rid)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["status"] == "DELETING"
    assert out["agentRuntimeId"] == rid
    assert "agentRuntimeVersion" not in out
    err = wait_gone(lambda: control.get_agent_runtime(agentRuntimeId=rid))
    assert isinstance(err, control.exceptions.ResourceNotFoundException)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_agent_runtime_versions(agentRuntimeId=rid)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_tags_for_resource(resourceArn=arn)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.delete_agent_runtime(agentRuntimeId=rid)
    assert control.list_agent_runtimes()["agentRuntimes"] == []


def test_delete_unknown_runtime_or_version_is_not_found(control):
    with pytest.raises(control.exceptions.ResourceNotFoundException) as exc:
        control.delete_agent_runtime(agentRuntimeId="ghost-AbCdEf1234")
    assert_client_error(exc, "ResourceNotFoundException", 404)
    rid = ready_runtime(control, "has_one")["agentRuntimeId"]
    update_runtime(control, rid)
    wait_for_status(control, rid)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="9")


def test_delete_one_version_keeps_the_runtime(control):
    rid = ready_runtime(control, "prune", environmentVariables={"V": "1"})["agentRuntimeId"]
    update_runtime(control, rid, environmentVariables={"V": "2"})
    wait_for_status(control, rid)
    wait_endpoint(control, rid, "DEFAULT", lambda e: e.get("liveVersion") == "2" and e["status"] == "READY")
    out = control.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["status"] == "DELETING"
    assert out["agentRuntimeVersion"] == "1"
    wait_gone(lambda: control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1"))
    rt = control.get_agent_runtime(agentRuntimeId=rid)
    assert rt["status"] == "READY" and rt["agentRuntimeVersion"] == "2"
    assert rt["environmentVariables"] == {"V": "2"}
    versions = control.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert [v["agentRuntimeVersion"] for v in versions] == ["2"]
    # The next update still gets a fresh number, never a reused one.
    assert update_runtime(control, rid)["agentRuntimeVersion"] == "3"


def test_delete_version_in_use_or_only_version_is_conflict(control):
    rid = ready_runtime(control, "guarded")["agentRuntimeId"]
    with pytest.raises(control.exceptions.ConflictException) as exc:
        control.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert_client_error(exc, "ConflictException", 409)

    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="pinned", agentRuntimeVersion="1")
    wait_endpoint(control, rid, "pinned")
    update_runtime(control, rid)
    wait_for_status(control, rid)
    wait_endpoint(control, rid, "DEFAULT", lambda e: e.get("liveVersion") == "2")
    with pytest.raises(control.exceptions.ConflictException) as exc:
        control.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert "pinned" in assert_client_error(exc, "ConflictException", 409)["Error"]["Message"]
    with pytest.raises(control.exceptions.ConflictException) as exc:
        control.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="2")
    assert "DEFAULT" in exc.value.response["Error"]["Message"]

    control.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="pinned", agentRuntimeVersion="2")
    wait_endpoint(control, rid, "pinned", lambda e: e.get("liveVersion") == "2" and e["status"] == "READY")
    control.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    wait_gone(lambda: control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1"))


# ---------------------------------------------------------------- endpoints


def test_default_endpoint_exists_and_follows_the_latest_version(control):
    created = ready_runtime(control, "follows")
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    ep = wait_endpoint(control, rid, "DEFAULT")
    assert ep["name"] == "DEFAULT"
    assert re.fullmatch(r"DEFAULT-[A-Za-z0-9]{10}", ep["id"]), ep["id"]
    assert ep["agentRuntimeEndpointArn"] == f"{arn}/runtime-endpoint/DEFAULT"
    assert ep["agentRuntimeArn"] == arn
    assert (ep["liveVersion"], ep["targetVersion"]) == ("1", "1")

    update_runtime(control, rid)
    ep = control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    assert ep["targetVersion"] == "2"
    ep = wait_endpoint(control, rid, "DEFAULT", lambda e: e.get("liveVersion") == "2" and e["status"] == "READY")
    assert ep["targetVersion"] == "2"

    listed = control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]
    assert [e["name"] for e in listed] == ["DEFAULT"]
    assert listed[0]["id"] == ep["id"]


def test_named_endpoint_pins_its_version(control):
    created = ready_runtime(control, "pinning")
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    out = control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod", agentRuntimeVersion="1",
                                                description="production")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["status"] == "CREATING"
    assert out["targetVersion"] == "1"
    assert out["agentRuntimeEndpointArn"] == f"{arn}/runtime-endpoint/prod"
    assert out["agentRuntimeArn"] == arn
    assert out["agentRuntimeId"] == rid
    assert out["endpointName"] == "prod"

    ep = wait_endpoint(control, rid, "prod")
    assert (ep["liveVersion"], ep["targetVersion"]) == ("1", "1")
    assert ep["description"] == "production"
    assert re.fullmatch(r"prod-[A-Za-z0-9]{10}", ep["id"]), ep["id"]

    update_runtime(control, rid)
    wait_for_status(control, rid)
    wait_endpoint(control, rid, "DEFAULT", lambda e: e.get("liveVersion") == "2")
    ep = control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="prod")
    assert (ep["liveVersion"], ep["targetVersion"]) == ("1", "1"), "a named endpoint must not follow updates"

    upd = control.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="prod", agentRuntimeVersion="2",
                                                description="moved")
    assert upd["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert upd["targetVersion"] == "2"
    assert upd["status"] == "UPDATING"
    assert upd["agentRuntimeEndpointArn"] == f"{arn}/runtime-endpoint/prod"
    ep = wait_endpoint(control, rid, "prod", lambda e: e.get("liveVersion") == "2" and e["status"] == "READY")
    assert ep["description"] == "moved"

    listed = {e["name"]: e for e in control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]}
    assert set(listed) == {"DEFAULT", "prod"}
    assert listed["prod"]["liveVersion"] == "2"
    assert listed["prod"]["description"] == "moved"


def test_endpoint_without_version_targets_the_latest(control):
    rid = ready_runtime(control, "latest_ep")["agentRuntimeId"]
    update_runtime(control, rid)
    wait_for_status(control, rid)
    out = control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="canary")
    assert out["targetVersion"] == "2"


def test_endpoint_errors(control):
    rid = ready_runtime(control, "ep_errors")["agentRuntimeId"]
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod")
    with pytest.raises(control.exceptions.ConflictException) as exc:
        control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod")
    assert_client_error(exc, "ConflictException", 409)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="future", agentRuntimeVersion="9")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="nope")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="nope", agentRuntimeVersion="1")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="nope")
    wait_endpoint(control, rid, "prod")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="prod", agentRuntimeVersion="9")
    for call in (
        lambda: control.create_agent_runtime_endpoint(agentRuntimeId="ghost-AbCdEf1234", name="prod"),
        lambda: control.get_agent_runtime_endpoint(agentRuntimeId="ghost-AbCdEf1234", endpointName="DEFAULT"),
        lambda: control.list_agent_runtime_endpoints(agentRuntimeId="ghost-AbCdEf1234"),
    ):
        with pytest.raises(control.exceptions.ResourceNotFoundException) as exc:
            call()
        assert_client_error(exc, "ResourceNotFoundException", 404)
    names = sorted(e["name"] for e in control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"])
    assert names == ["DEFAULT", "prod"]


def test_default_endpoint_cannot_be_updated_or_deleted(control):
    rid = ready_runtime(control, "protected")["agentRuntimeId"]
    with pytest.raises(control.exceptions.ValidationException) as exc:
        control.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT", agentRuntimeVersion="1")
    assert_client_error(exc, "ValidationException", 400)
    with pytest.raises(control.exceptions.ConflictException) as exc:
        control.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    assert_client_error(exc, "ConflictException", 409)
    ep = control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    assert ep["status"] == "READY" and ep["liveVersion"] == "1"


def test_delete_named_endpoint(control):
    created = ready_runtime(control, "ep_delete")
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="temp", tags={"owner": "me"})
    wait_endpoint(control, rid, "temp")
    ep_arn = f"{arn}/runtime-endpoint/temp"
    assert control.list_tags_for_resource(resourceArn=ep_arn)["tags"] == {"owner": "me"}
    out = control.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="temp")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["status"] == "DELETING"
    assert out["agentRuntimeId"] == rid and out["endpointName"] == "temp"
    wait_gone(lambda: control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="temp"))
    names = [e["name"] for e in control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]]
    assert names == ["DEFAULT"]
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_tags_for_resource(resourceArn=ep_arn)
    # A new endpoint with the same name is a new resource: new id, no old tags.
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="temp")
    assert control.list_tags_for_resource(resourceArn=ep_arn)["tags"] == {}
    assert wait_endpoint(control, rid, "temp")["status"] == "READY"


def test_at_most_ten_endpoints_including_default(control):
    rid = ready_runtime(control, "crowded")["agentRuntimeId"]
    for i in range(9):
        control.create_agent_runtime_endpoint(agentRuntimeId=rid, name=f"ep{i}")
    with pytest.raises(control.exceptions.ServiceQuotaExceededException) as exc:
        control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="one_too_many")
    assert_client_error(exc, "ServiceQuotaExceededException", 402)
    assert len(control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]) == 10

    wait_endpoint(control, rid, "ep0")
    control.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="ep0")
    wait_gone(lambda: control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="ep0"))
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="one_too_many")
    assert len(control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]) == 10


def test_list_endpoints_pagination(control):
    rid = ready_runtime(control, "ep_pages")["agentRuntimeId"]
    for name in ("alpha", "beta", "gamma", "delta"):
        control.create_agent_runtime_endpoint(agentRuntimeId=rid, name=name)
    pages = all_pages(control.list_agent_runtime_endpoints, "runtimeEndpoints", agentRuntimeId=rid, maxResults=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    names = [e["name"] for p in pages for e in p]
    assert sorted(names) == sorted(["DEFAULT", "alpha", "beta", "gamma", "delta"])
    with pytest.raises(control.exceptions.ValidationException):
        control.list_agent_runtime_endpoints(agentRuntimeId=rid, nextToken="bogus")
    other = create_runtime(control, "ep_pages_2")["agentRuntimeId"]
    token = control.list_agent_runtime_endpoints(agentRuntimeId=rid, maxResults=1)["nextToken"]
    with pytest.raises(control.exceptions.ValidationException):
        control.list_agent_runtime_endpoints(agentRuntimeId=other, nextToken=token)


# ---------------------------------------------------------------- tags


def test_tags_on_a_runtime(control):
    created = create_runtime(control, "tagged", tags={"team": "x", "env": "dev"})
    arn = created["agentRuntimeArn"]
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "x", "env": "dev"}
    out = control.tag_resource(resourceArn=arn, tags={"env": "prod", "k 2": "spaced value", "cost:center": "42"})
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {
        "team": "x", "env": "prod", "k 2": "spaced value", "cost:center": "42"}
    out = control.untag_resource(resourceArn=arn, tagKeys=["team", "k 2", "not-there"])
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "prod", "cost:center": "42"}
    # Updating the runtime does not touch its tags.
    wait_for_status(control, created["agentRuntimeId"])
    update_runtime(control, created["agentRuntimeId"])
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "prod", "cost:center": "42"}


def test_tags_on_an_endpoint_are_separate_from_the_runtime(control):
    created = ready_runtime(control, "ep_tagged", tags={"level": "runtime"})
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    out = control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod", tags={"level": "endpoint"})
    ep_arn = out["agentRuntimeEndpointArn"]
    assert control.list_tags_for_resource(resourceArn=ep_arn)["tags"] == {"level": "endpoint"}
    control.tag_resource(resourceArn=ep_arn, tags={"extra": "1"})
    control.untag_resource(resourceArn=ep_arn, tagKeys=["level"])
    assert control.list_tags_for_resource(resourceArn=ep_arn)["tags"] == {"extra": "1"}
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"level": "runtime"}
    default_arn = f"{arn}/runtime-endpoint/DEFAULT"
    assert control.list_tags_for_resource(resourceArn=default_arn)["tags"] == {}
    control.tag_resource(resourceArn=default_arn, tags={"d": "1"})
    assert control.list_tags_for_resource(resourceArn=default_arn)["tags"] == {"d": "1"}


def test_tag_operations_on_unknown_arns_are_not_found(control):
    created = create_runtime(control, "real_one")
    arn, rid = created["agentRuntimeArn"], created["agentRuntimeId"]
    unknown = [
        f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/ghost-AbCdEf1234",
        f"{arn}/runtime-endpoint/nope",
        arn.replace(REGION, "eu-west-1"),
        arn.replace(ACCOUNT, "999999999999"),
        f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:gateway/{rid.lower()}",
    ]
    for bad in unknown:
        for call in (
            lambda: control.list_tags_for_resource(resourceArn=bad),
            lambda: control.tag_resource(resourceArn=bad, tags={"a": "b"}),
            lambda: control.untag_resource(resourceArn=bad, tagKeys=["a"]),
        ):
            with pytest.raises(control.exceptions.ResourceNotFoundException) as exc:
                call()
            assert_client_error(exc, "ResourceNotFoundException", 404)
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {}


def test_more_than_fifty_tags_is_a_quota_error(emulator, control):
    arn = create_runtime(control, "tag_quota", tags={f"old{i}": "v" for i in range(30)})["agentRuntimeArn"]
    with pytest.raises(control.exceptions.ServiceQuotaExceededException) as exc:
        control.tag_resource(resourceArn=arn, tags={f"new{i}": "v" for i in range(25)})
    assert_client_error(exc, "ServiceQuotaExceededException", 402)
    assert len(control.list_tags_for_resource(resourceArn=arn)["tags"]) == 30, "a refused TagResource changes nothing"

    control.tag_resource(resourceArn=arn, tags={f"new{i}": "v" for i in range(20)})
    assert len(control.list_tags_for_resource(resourceArn=arn)["tags"]) == 50
    control.tag_resource(resourceArn=arn, tags={"old0": "overwritten"})  # still 50 keys
    tags = control.list_tags_for_resource(resourceArn=arn)["tags"]
    assert len(tags) == 50 and tags["old0"] == "overwritten"
    with pytest.raises(control.exceptions.ServiceQuotaExceededException):
        control.tag_resource(resourceArn=arn, tags={"fifty_first": "v"})

    nv = unvalidated(emulator.url)
    fresh = create_runtime(control, "tag_quota_2")["agentRuntimeArn"]
    with pytest.raises(ClientError) as exc:
        nv.tag_resource(resourceArn=fresh, tags={f"k{i}": "v" for i in range(51)})
    assert_client_error(exc, "ValidationException", 400)
    assert control.list_tags_for_resource(resourceArn=fresh)["tags"] == {}


def test_reserved_aws_tag_prefix_is_rejected(control):
    arn = create_runtime(control, "reserved_tags")["agentRuntimeArn"]
    with pytest.raises(control.exceptions.ValidationException) as exc:
        control.tag_resource(resourceArn=arn, tags={"aws:createdBy": "me"})
    assert_client_error(exc, "ValidationException", 400)
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {}


# ---------------------------------------------------------------- scoping


def test_resources_are_scoped_to_the_signing_region(emulator, control):
    east = create_runtime(control, "regional")
    west_client = boto_client(emulator.url, "bedrock-agentcore-control", region="us-west-2")
    with pytest.raises(west_client.exceptions.ResourceNotFoundException):
        west_client.get_agent_runtime(agentRuntimeId=east["agentRuntimeId"])
    with pytest.raises(west_client.exceptions.ResourceNotFoundException):
        west_client.list_tags_for_resource(resourceArn=east["agentRuntimeArn"])
    with pytest.raises(west_client.exceptions.ResourceNotFoundException):
        west_client.delete_agent_runtime(agentRuntimeId=east["agentRuntimeId"])
    assert west_client.list_agent_runtimes()["agentRuntimes"] == []

    west = create_runtime(west_client, "regional")  # same name, other Region: no conflict
    assert west["agentRuntimeArn"] == f"arn:aws:bedrock-agentcore:us-west-2:{ACCOUNT}:runtime/{west['agentRuntimeId']}"
    assert ":us-west-2:" in west["workloadIdentityDetails"]["workloadIdentityArn"]
    assert [r["agentRuntimeId"] for r in west_client.list_agent_runtimes()["agentRuntimes"]] == [west["agentRuntimeId"]]
    assert [r["agentRuntimeId"] for r in control.list_agent_runtimes()["agentRuntimes"]] == [east["agentRuntimeId"]]
    assert control.get_agent_runtime(agentRuntimeId=east["agentRuntimeId"])["agentRuntimeArn"].split(":")[3] == REGION


def test_client_tokens_are_scoped_to_the_region(emulator, control):
    token = str(uuid.uuid4())
    east = create_runtime(control, "token_scope", clientToken=token)
    west_client = boto_client(emulator.url, "bedrock-agentcore-control", region="eu-central-1")
    west = create_runtime(west_client, "token_scope", clientToken=token)
    assert west["agentRuntimeId"] != east["agentRuntimeId"]
    assert ":eu-central-1:" in west["agentRuntimeArn"]


# ---------------------------------------------------------------- unknown operations


def test_modelled_but_unimplemented_operation_is_unknown_operation(control):
    with pytest.raises(ClientError) as exc:
        control.list_gateways()
    code, status, resp = error(exc)
    assert (code, status) == ("UnknownOperationException", 404)
    assert "ListGateways" in resp["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        control.list_payment_credential_providers()
    assert error(exc)[0] == "UnknownOperationException"
    assert "ListPaymentCredentialProviders" in exc.value.response["Error"]["Message"]
