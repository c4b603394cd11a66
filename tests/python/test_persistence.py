"""State in --data-dir survives a clean restart (SIGTERM) and a crash (SIGKILL right after the API
answered); extra --credentials give separate accounts. An --in-memory emulator's temporary files
do not outlive it, even when it is killed."""
import os
import signal
import sqlite3
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import (ACCOUNT, CONTAINER_URI, REGION, ROLE_ARN, Cli, Emulator, boto_client, crash, create_runtime,
                      wait_for_status, wait_until)

ARTIFACT = {"containerConfiguration": {"containerUri": CONTAINER_URI}}
OTHER_ACCOUNT = "210987654321"
TWO_ACCOUNTS = ["--credentials", "test:test", "--credentials", f"AKIDOTHER:othersecret:{OTHER_ACCOUNT}"]


@pytest.fixture
def launch(tmp_path):
    """Start emulators on one data directory; whatever is still running is stopped afterwards."""
    started = []

    def start(data_dir=tmp_path / "data", extra_args=()):
        emu = Emulator(data_dir=data_dir, extra_args=extra_args).start(tmp_path / f"emulator-{len(started)}.log")
        started.append(emu)
        return emu, boto_client(emu.url, "bedrock-agentcore-control")

    yield start
    for emu in started:
        emu.stop(signal.SIGKILL)


def update(control, rid, **kw):
    return control.update_agent_runtime(agentRuntimeId=rid, agentRuntimeArtifact=ARTIFACT, roleArn=ROLE_ARN,
                                        networkConfiguration={"networkMode": "PUBLIC"}, **kw)


def wait_endpoint(control, rid, name, predicate, timeout=10):
    deadline = time.time() + timeout
    while True:
        ep = control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName=name)
        if predicate(ep):
            return ep
        assert time.time() < deadline, ep
        time.sleep(0.05)


def without_metadata(d):
    return {k: v for k, v in d.items() if k != "ResponseMetadata"}


def test_everything_survives_a_clean_restart(launch, tmp_path):
    emu, control = launch()
    token = str(uuid.uuid4())
    created = create_runtime(control, "durable", clientToken=token, description="v1",
                             environmentVariables={"STAGE": "one"}, tags={"team": "x"},
                             lifecycleConfiguration={"idleRuntimeSessionTimeout": 120, "maxLifetime": 600})
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    wait_for_status(control, rid)
    control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="prod", agentRuntimeVersion="1",
                                          description="pinned", tags={"tier": "gold"})
    wait_endpoint(control, rid, "prod", lambda e: e["status"] == "READY")
    update(control, rid, environmentVariables={"STAGE": "two"}, description="v2")
    wait_for_status(control, rid)
    wait_endpoint(control, rid, "DEFAULT", lambda e: e.get("liveVersion") == "2")
    control.tag_resource(resourceArn=arn, tags={"added": "later"})
    other = create_runtime(control, "second_one")["agentRuntimeId"]
    wait_for_status(control, other)

    before = {
        "latest": without_metadata(control.get_agent_runtime(agentRuntimeId=rid)),
        "v1": without_metadata(control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")),
        "versions": control.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"],
        "runtimes": control.list_agent_runtimes()["agentRuntimes"],
        "endpoints": control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"],
        "prod": without_metadata(control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="prod")),
        "tags": control.list_tags_for_resource(resourceArn=arn)["tags"],
        "prod_tags": control.list_tags_for_resource(resourceArn=f"{arn}/runtime-endpoint/prod")["tags"],
    }
    assert emu.stop(signal.SIGTERM) == 0, emu.log()

    emu2, control2 = launch()
    after = {
        "latest": without_metadata(control2.get_agent_runtime(agentRuntimeId=rid)),
        "v1": without_metadata(control2.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")),
        "versions": control2.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"],
        "runtimes": control2.list_agent_runtimes()["agentRuntimes"],
        "endpoints": control2.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"],
        "prod": without_metadata(control2.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="prod")),
        "tags": control2.list_tags_for_resource(resourceArn=arn)["tags"],
        "prod_tags": control2.list_tags_for_resource(resourceArn=f"{arn}/runtime-endpoint/prod")["tags"],
    }
    for key in before:
        assert after[key] == before[key], key
    assert after["latest"]["agentRuntimeVersion"] == "2" and after["latest"]["environmentVariables"] == {"STAGE": "two"}
    assert after["v1"]["environmentVariables"] == {"STAGE": "one"}
    assert after["v1"]["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 120, "maxLifetime": 600}
    assert after["tags"] == {"team": "x", "added": "later"}
    assert after["prod_tags"] == {"tier": "gold"}
    assert (after["prod"]["liveVersion"], after["prod"]["targetVersion"]) == ("1", "1")

    # Names are still taken, client tokens still remembered, and new versions continue the sequence.
    with pytest.raises(control2.exceptions.ConflictException):
        create_runtime(control2, "durable")
    replay = create_runtime(control2, "durable", clientToken=token, description="v1",
                            environmentVariables={"STAGE": "one"}, tags={"team": "x"},
                            lifecycleConfiguration={"idleRuntimeSessionTimeout": 120, "maxLifetime": 600})
    assert replay["agentRuntimeId"] == rid
    assert update(control2, rid)["agentRuntimeVersion"] == "3"
    # And the emulator is fully usable: a new runtime reaches READY.
    new = create_runtime(control2, "after_restart")["agentRuntimeId"]
    assert wait_for_status(control2, new)["status"] == "READY"


def test_create_survives_kill_9_right_after_the_response(launch):
    emu, control = launch()
    token = str(uuid.uuid4())
    created = create_runtime(control, "crashy", clientToken=token, tags={"k": "v"}, environmentVariables={"A": "1"})
    crash(emu)

    emu2, control2 = launch()
    rt = wait_for_status(control2, created["agentRuntimeId"])
    assert rt["status"] == "READY", "the reconciler must resume work a crash interrupted"
    assert rt["agentRuntimeArn"] == created["agentRuntimeArn"]
    assert rt["createdAt"] == created["createdAt"]
    assert rt["environmentVariables"] == {"A": "1"}
    assert control2.list_tags_for_resource(resourceArn=created["agentRuntimeArn"])["tags"] == {"k": "v"}
    default = wait_endpoint(control2, created["agentRuntimeId"], "DEFAULT", lambda e: e["status"] == "READY")
    assert default["liveVersion"] == "1"
    # The client did not see the answer (say) and retries with the same token: same runtime.
    retry = create_runtime(control2, "crashy", clientToken=token, tags={"k": "v"}, environmentVariables={"A": "1"})
    assert retry["agentRuntimeId"] == created["agentRuntimeId"]
    assert [r["agentRuntimeId"] for r in control2.list_agent_runtimes()["agentRuntimes"]] == [created["agentRuntimeId"]]


def test_update_endpoint_and_tags_survive_kill_9(launch):
    emu, control = launch()
    created = create_runtime(control, "crashy_update")
    rid, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    wait_for_status(control, rid)
    upd = update(control, rid, environmentVariables={"V": "2"})
    ep = control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="pinned", agentRuntimeVersion="1")
    control.tag_resource(resourceArn=ep["agentRuntimeEndpointArn"], tags={"e": "1"})
    control.tag_resource(resourceArn=arn, tags={"r": "1"})
    control.untag_resource(resourceArn=arn, tagKeys=["r"])
    control.tag_resource(resourceArn=arn, tags={"r": "2"})
    crash(emu)

    emu2, control2 = launch()
    rt = wait_for_status(control2, rid)
    assert (rt["status"], rt["agentRuntimeVersion"]) == ("READY", upd["agentRuntimeVersion"])
    assert rt["environmentVariables"] == {"V": "2"}
    versions = control2.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert [v["agentRuntimeVersion"] for v in versions] == ["2", "1"]
    pinned = wait_endpoint(control2, rid, "pinned", lambda e: e["status"] == "READY")
    assert (pinned["liveVersion"], pinned["targetVersion"]) == ("1", "1")
    default = wait_endpoint(control2, rid, "DEFAULT", lambda e: e.get("liveVersion") == "2" and e["status"] == "READY")
    assert default["targetVersion"] == "2"
    assert control2.list_tags_for_resource(resourceArn=ep["agentRuntimeEndpointArn"])["tags"] == {"e": "1"}
    assert control2.list_tags_for_resource(resourceArn=arn)["tags"] == {"r": "2"}


def test_delete_survives_kill_9(launch):
    emu, control = launch()
    keep = create_runtime(control, "keeper")["agentRuntimeId"]
    doomed = create_runtime(control, "doomed")
    wait_for_status(control, doomed["agentRuntimeId"])
    assert control.delete_agent_runtime(agentRuntimeId=doomed["agentRuntimeId"])["status"] == "DELETING"
    crash(emu)

    emu2, control2 = launch()
    deadline = time.time() + 10
    while True:
        try:
            rt = control2.get_agent_runtime(agentRuntimeId=doomed["agentRuntimeId"])
        except control2.exceptions.ResourceNotFoundException:
            break
        assert rt["status"] == "DELETING", "an acknowledged delete must not be forgotten"
        assert time.time() < deadline, rt
        time.sleep(0.05)
    assert [r["agentRuntimeId"] for r in control2.list_agent_runtimes()["agentRuntimes"]] == [keep]
    with pytest.raises(control2.exceptions.ResourceNotFoundException):
        control2.list_tags_for_resource(resourceArn=doomed["agentRuntimeArn"])
    assert wait_for_status(control2, create_runtime(control2, "doomed")["agentRuntimeId"])["status"] == "READY"


def test_data_dir_holds_a_sqlite_database(launch, tmp_path):
    emu, control = launch()
    create_runtime(control, "on_disk")
    crash(emu)
    files = list((tmp_path / "data").iterdir())
    dbs = [f for f in files if f.suffix in (".sqlite3", ".sqlite", ".db")]
    assert dbs, files
    conn = sqlite3.connect(f"file:{dbs[0]}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_in_memory_state_does_not_survive(tmp_path):
    emu = Emulator().start(tmp_path / "mem.log")
    try:
        create_runtime(boto_client(emu.url, "bedrock-agentcore-control"), "ephemeral")
    finally:
        emu.stop()
    emu = Emulator().start(tmp_path / "mem2.log")
    try:
        assert boto_client(emu.url, "bedrock-agentcore-control").list_agent_runtimes()["agentRuntimes"] == []
    finally:
        emu.stop()


def test_second_account_is_separate_and_persistent(launch):
    emu, mine = launch(extra_args=TWO_ACCOUNTS)
    theirs = boto_client(emu.url, "bedrock-agentcore-control", access_key="AKIDOTHER", secret="othersecret")

    a = create_runtime(mine, "shared_name", tags={"owner": "me"})
    b = create_runtime(theirs, "shared_name", tags={"owner": "them"})  # same name, other account: no conflict
    assert a["agentRuntimeArn"] == f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{a['agentRuntimeId']}"
    assert b["agentRuntimeArn"] == f"arn:aws:bedrock-agentcore:{REGION}:{OTHER_ACCOUNT}:runtime/{b['agentRuntimeId']}"
    assert f":{OTHER_ACCOUNT}:" in b["workloadIdentityDetails"]["workloadIdentityArn"]
    wait_for_status(theirs, b["agentRuntimeId"])
    ep = theirs.create_agent_runtime_endpoint(agentRuntimeId=b["agentRuntimeId"], name="prod")
    assert ep["agentRuntimeEndpointArn"].startswith(f"arn:aws:bedrock-agentcore:{REGION}:{OTHER_ACCOUNT}:runtime/")

    def check_isolation(mine, theirs):
        assert [r["agentRuntimeId"] for r in mine.list_agent_runtimes()["agentRuntimes"]] == [a["agentRuntimeId"]]
        assert [r["agentRuntimeId"] for r in theirs.list_agent_runtimes()["agentRuntimes"]] == [b["agentRuntimeId"]]
        for client, foreign in ((mine, b), (theirs, a)):
            for call in (
                lambda: client.get_agent_runtime(agentRuntimeId=foreign["agentRuntimeId"]),
                lambda: client.list_tags_for_resource(resourceArn=foreign["agentRuntimeArn"]),
                lambda: client.tag_resource(resourceArn=foreign["agentRuntimeArn"], tags={"x": "y"}),
                lambda: client.list_agent_runtime_endpoints(agentRuntimeId=foreign["agentRuntimeId"]),
                lambda: update(client, foreign["agentRuntimeId"]),
                lambda: client.delete_agent_runtime(agentRuntimeId=foreign["agentRuntimeId"]),
            ):
                with pytest.raises(ClientError) as exc:
                    call()
                assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert mine.list_tags_for_resource(resourceArn=a["agentRuntimeArn"])["tags"] == {"owner": "me"}
        assert theirs.list_tags_for_resource(resourceArn=b["agentRuntimeArn"])["tags"] == {"owner": "them"}
        got = theirs.get_agent_runtime(agentRuntimeId=b["agentRuntimeId"])
        assert got["agentRuntimeArn"] == b["agentRuntimeArn"]

    check_isolation(mine, theirs)
    # The CLI with the second account's keys sees the second account.
    listed = Cli(emu.url, access_key="AKIDOTHER", secret="othersecret").json(
        "bedrock-agentcore-control", "list-agent-runtimes")["agentRuntimes"]
    assert [r["agentRuntimeArn"] for r in listed] == [b["agentRuntimeArn"]]

    assert emu.stop(signal.SIGTERM) == 0
    emu2, mine2 = launch(extra_args=TWO_ACCOUNTS)
    theirs2 = boto_client(emu2.url, "bedrock-agentcore-control", access_key="AKIDOTHER", secret="othersecret")
    check_isolation(mine2, theirs2)
    names = [e["name"] for e in theirs2.list_agent_runtime_endpoints(agentRuntimeId=b["agentRuntimeId"])["runtimeEndpoints"]]
    assert sorted(names) == ["DEFAULT", "prod"]


def test_unconfigured_keys_are_refused_when_credentials_are_given(launch):
    emu, _ = launch(extra_args=["--credentials", f"AKIDONLY:onlysecret:{OTHER_ACCOUNT}"])
    only = boto_client(emu.url, "bedrock-agentcore-control", access_key="AKIDONLY", secret="onlysecret")
    arn = create_runtime(only, "solo")["agentRuntimeArn"]
    assert f":{OTHER_ACCOUNT}:" in arn
    default = boto_client(emu.url, "bedrock-agentcore-control")  # test/test is only the default when none are given
    with pytest.raises(ClientError) as exc:
        default.list_agent_runtimes()
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_killed_in_memory_emulators_files_are_removed_by_the_next_one(emulators, tmp_path):
    """--in-memory keeps object files in a temporary directory of its own. A clean stop removes
    it; one left by kill -9 is removed by the next emulator that starts (its lock is free), while
    a running emulator's directory is never touched."""
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    env = {**os.environ, "TMPDIR": str(temp_root)}
    ours = lambda: sorted(p for p in temp_root.iterdir() if p.name.startswith("agentcore-local-") and p.is_dir())

    killed = emulators(env=env)
    s3 = boto_client(killed.url, "s3")
    s3.create_bucket(Bucket="left-behind")
    s3.put_object(Bucket="left-behind", Key="big", Body=b"x" * 1024 * 1024)
    (left,) = ours()
    assert any(f.stat().st_size == 1024 * 1024 for f in left.rglob("*") if f.is_file())
    crash(killed)
    assert ours() == [left], "kill -9 leaves the directory (nothing could remove it)"

    running = emulators(env=env)
    # Removed in the background, a second after start-up.
    wait_until(lambda: left not in ours(), timeout=15, message="the killed emulator's directory removed")
    (own,) = ours()
    assert own != left
    s3 = boto_client(running.url, "s3")
    s3.create_bucket(Bucket="kept")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["kept"]

    # A third emulator starting beside a running one leaves the running one's directory alone.
    third = emulators(env=env)
    time.sleep(2)
    assert own in ours()
    s3.put_object(Bucket="kept", Key="k", Body=b"still here")
    assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"still here"

    assert running.stop() == 0 and third.stop() == 0
    assert ours() == [], "a clean stop removes the emulator's own directory"
