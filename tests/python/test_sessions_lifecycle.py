"""How sessions end and what limits them: StopRuntimeSession, the idle timeout (and HealthyBusy
pings that hold it off), the maximum lifetime, runtime updates and deletion, and the
invocation-rate and active-session quotas.

Lifecycle tests run an emulator with --lifecycle-time-scale 0.05: the API's minimum of 60 s for
idleRuntimeSessionTimeout / maxLifetime becomes 3 s, the 2 s ping interval 100 ms."""
import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (CONTAINER_URI, ROLE_ARN, Emulator, boto_client, create_runtime, inspect_container, invoke,
                      managed_containers, new_session_id, session_containers, wait_for_status, wait_until, whoami)

SCALE = "0.05"
SCALED_MINUTE = 3.0  # 60 s * 0.05


def error_of(excinfo_or_exc):
    exc = getattr(excinfo_or_exc, "value", excinfo_or_exc)
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


class Stack:
    def __init__(self, emu):
        self.emu = emu
        self.control = boto_client(emu.url, "bedrock-agentcore-control")
        self.data = boto_client(emu.url, "bedrock-agentcore")

    def runtime(self, name, **kw):
        created = create_runtime(self.control, name, **kw)
        rt = wait_for_status(self.control, created["agentRuntimeId"])
        assert rt["status"] == "READY", rt
        return rt


def module_emulator(tmp_path_factory, name, *args):
    emu = Emulator(extra_args=args).start(tmp_path_factory.mktemp(name) / "emulator.log")
    try:
        yield Stack(emu)
    finally:
        emu.stop()
    leftovers = managed_containers([emu.proc.pid])
    assert not leftovers, f"the emulator left sandboxes behind after SIGTERM: {leftovers}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Default flags."""
    yield from module_emulator(tmp_path_factory, "lifecycle-default")


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    """Lifecycle times scaled by 0.05, with one runtime idling out after 3 s (lifetime 30 s)."""
    for s in module_emulator(tmp_path_factory, "lifecycle-fast", "--lifecycle-time-scale", SCALE):
        s.idle_rt = s.runtime("idle_agent", lifecycleConfiguration={"idleRuntimeSessionTimeout": 60,
                                                                    "maxLifetime": 600})
        yield s


def gone(sid):
    return lambda: not session_containers(sid)


# --- StopRuntimeSession ---------------------------------------------------------------------------------


def test_stop_runtime_session_removes_the_container_and_the_id_starts_fresh(stack):
    rt = stack.runtime("stop_agent")
    arn, sid = rt["agentRuntimeArn"], new_session_id("stop")
    first = whoami(stack.data, arn, sid)
    assert whoami(stack.data, arn, sid)["counter"] == 2
    other = new_session_id("stop-other")
    whoami(stack.data, arn, other)
    assert len(session_containers(sid)) == 1
    resp = stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["runtimeSessionId"] == sid
    wait_until(gone(sid), 20, message="stopped session's container removed")
    # Only that session ended.
    assert whoami(stack.data, arn, other)["counter"] == 2
    fresh = whoami(stack.data, arn, sid)
    assert fresh["counter"] == 1
    assert fresh["hostname"] != first["hostname"]
    assert len(session_containers(sid)) == 1
    stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=other)
    wait_until(lambda: gone(sid)() and gone(other)(), 20, message="containers removed")


def test_stop_unknown_or_already_stopped_session_is_not_found(stack):
    rt = stack.runtime("stop_unknown")
    arn = rt["agentRuntimeArn"]
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException) as e:
        stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=new_session_id("never-started"))
    assert error_of(e) == ("ResourceNotFoundException", 404)
    sid = new_session_id("twice")
    whoami(stack.data, arn, sid)
    stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException):
        stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(gone(sid), 20, message="container removed")


def test_stop_validates_the_session_id_and_the_runtime(stack):
    import boto3
    import botocore.config
    rt, other = stack.runtime("stop_checks"), stack.runtime("stop_checks_other")
    sid = new_session_id("stop-checks")
    whoami(stack.data, rt["agentRuntimeArn"], sid)
    raw = boto3.session.Session().client(
        "bedrock-agentcore", endpoint_url=stack.emu.url, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(parameter_validation=False, retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        raw.stop_runtime_session(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId="too-short")
    assert error_of(e) == ("ValidationException", 400)
    # The session belongs to its runtime: another runtime's ARN does not stop it.
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException):
        stack.data.stop_runtime_session(agentRuntimeArn=other["agentRuntimeArn"], runtimeSessionId=sid)
    unknown = rt["agentRuntimeArn"].rsplit("/", 1)[0] + "/nosuch_agent-AbCdEf1234"
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException):
        stack.data.stop_runtime_session(agentRuntimeArn=unknown, runtimeSessionId=sid)
    assert whoami(stack.data, rt["agentRuntimeArn"], sid)["counter"] == 2
    stack.data.stop_runtime_session(agentRuntimeArn=rt["agentRuntimeArn"], runtimeSessionId=sid)
    wait_until(gone(sid), 20)


def test_stop_cuts_an_in_flight_stream_short(stack):
    rt = stack.runtime("stop_stream")
    arn, sid = rt["agentRuntimeArn"], new_session_id("stop-stream")
    resp = stack.data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=sid,
                                           payload=json.dumps({"action": "stream", "chunks": 30, "delay_ms": 200}))
    body = resp["response"]
    received = b""
    while b"\n\n" not in received:
        received += body.read(1)
    began = time.time()
    stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    try:
        for chunk in body.iter_chunks(chunk_size=1):
            received += chunk
    except Exception:  # the relay aborts the response: a broken chunked body is the expected outcome
        pass
    events = [e for e in received.split(b"\n\n") if e.strip()]
    assert len(events) < 30, "the stream went on after its session was stopped"
    assert time.time() - began < 5, "the stream was not cut short"
    wait_until(gone(sid), 20, message="container removed")


# --- idle timeout, HealthyBusy, max lifetime ---------------------------------------------------------------


def test_idle_session_is_removed_after_the_idle_timeout(fast):
    arn, sid = fast.idle_rt["agentRuntimeArn"], new_session_id("idle")
    first = whoami(fast.data, arn, sid)
    last_activity = time.time()
    time.sleep(1.0)
    assert len(session_containers(sid, running_only=True)) == 1, "removed before the idle timeout"
    wait_until(gone(sid), 15, message="idle session's container removed")
    idle_for = time.time() - last_activity
    assert idle_for >= SCALED_MINUTE - 0.5, f"removed after only {idle_for:.1f}s idle"
    again = whoami(fast.data, arn, sid)
    assert again["counter"] == 1 and again["hostname"] != first["hostname"]
    fast.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)


def test_invocations_reset_the_idle_timer(fast):
    arn, sid = fast.idle_rt["agentRuntimeArn"], new_session_id("active")
    first = whoami(fast.data, arn, sid)
    for _ in range(4):  # ~6 s of activity, twice the idle timeout
        time.sleep(1.5)
        w = whoami(fast.data, arn, sid)
        assert w["hostname"] == first["hostname"]
    assert w["counter"] == 5
    fast.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(gone(sid), 20)


def test_healthy_busy_with_timestamp_keeps_an_idle_session_alive(fast):
    arn, sid = fast.idle_rt["agentRuntimeArn"], new_session_id("busy")
    assert invoke(fast.data, arn, sid, {"action": "busy", "seconds": 10})[1] == {"busy": True}
    # The agent's host name as Docker set it (its container's id, or the id of the holder whose
    # network namespace it joined).
    hostname = inspect_container(session_containers(sid)[0])["Config"]["Hostname"]
    time.sleep(2 * SCALED_MINUTE + 0.5)  # twice the idle timeout without a request
    assert len(session_containers(sid, running_only=True)) == 1, "HealthyBusy did not keep the session alive"
    w = whoami(fast.data, arn, sid)
    assert (w["hostname"], w["counter"]) == (hostname, 2)
    fast.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(gone(sid), 20)


def test_healthy_busy_without_timestamp_does_not_keep_it_alive(fast):
    arn, sid = fast.idle_rt["agentRuntimeArn"], new_session_id("busy-nots")
    began = time.time()
    assert invoke(fast.data, arn, sid, {"action": "busy", "seconds": 10, "no_timestamp": True})[1] == {"busy": True}
    busy_since = time.time()
    wait_until(gone(sid), 15, message="session reporting HealthyBusy without time_of_last_update removed")
    # Not before the idle timeout (counted from before the invocation: a lower bound that holds
    # however long its cold start took), and well before the agent stops being busy, 10 s after it
    # answered (counted from then: a cold start of 24 s was seen on a loaded CI machine).
    gone_at = time.time()
    assert SCALED_MINUTE - 0.5 <= gone_at - began, gone_at - began
    assert gone_at - busy_since < 9, gone_at - busy_since


def test_max_lifetime_ends_a_session_that_is_invoked_continually(fast):
    rt = fast.runtime("short_lived", lifecycleConfiguration={"idleRuntimeSessionTimeout": 60, "maxLifetime": 60})
    arn, sid = rt["agentRuntimeArn"], new_session_id("lifetime")
    # The lifetime counts from the session's start, which the first invocation makes (its cold
    # start, taking a second or more on a loaded machine, is part of it).
    began = time.time()
    first = whoami(fast.data, arn, sid)
    first_container = session_containers(sid)[0]
    failures, replaced = [], None
    while time.time() - began < 20:
        time.sleep(0.3)
        try:
            w = whoami(fast.data, arn, sid)
        except ClientError as e:  # an invocation racing the end of the session may fail once
            failures.append(e.response["Error"])
            continue
        if w["hostname"] != first["hostname"]:
            replaced = (time.time() - began, w)
            break
    assert replaced, "the session was never ended by its max lifetime"
    after, fresh = replaced
    assert after >= SCALED_MINUTE - 0.1, f"replaced after {after:.1f}s, before maxLifetime"
    assert fresh["counter"] == 1
    assert len(failures) <= 1, failures
    wait_until(lambda: first_container not in session_containers(sid), 20, message="old container removed")
    fast.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(gone(sid), 20)


def test_an_invocation_cut_short_by_the_max_lifetime_says_so(fast):
    """The emulator ends the session at its lifetime even mid-invocation; the caller is told the
    lifetime ended it, not the exit code 143 that the agent's SIGTERM left behind."""
    rt = fast.runtime("cut_short", lifecycleConfiguration={"idleRuntimeSessionTimeout": 60, "maxLifetime": 120})
    arn, sid = rt["agentRuntimeArn"], new_session_id("cut-short")
    whoami(fast.data, arn, sid)
    with pytest.raises(ClientError) as excinfo:
        invoke(fast.data, arn, sid, {"action": "sleep", "ms": 30000})
    error = excinfo.value.response["Error"]
    assert error["Code"] == "RuntimeClientError", error
    assert "ended during the invocation: max lifetime reached" in error["Message"], error
    wait_until(gone(sid), 20)


def test_a_long_request_or_stream_is_activity_not_idleness(fast):
    arn, sid = fast.idle_rt["agentRuntimeArn"], new_session_id("long")
    first = whoami(fast.data, arn, sid)
    began = time.time()
    assert invoke(fast.data, arn, sid, {"action": "sleep", "ms": 5000})[1] == {"slept": True}
    assert time.time() - began >= 4.5
    resp = fast.data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=sid,
                                          payload=json.dumps({"action": "stream", "chunks": 5, "delay_ms": 1000}))
    events = [e for e in resp["response"].read().split(b"\n\n") if e.strip()]
    assert len(events) == 5, events
    after = whoami(fast.data, arn, sid)
    assert (after["hostname"], after["counter"]) == (first["hostname"], 4)
    fast.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(gone(sid), 20)


def test_agent_crash_ends_the_session_and_removes_its_container(stack):
    rt = stack.runtime("crashing")
    arn, sid = rt["agentRuntimeArn"], new_session_id("crash")
    first = whoami(stack.data, arn, sid)
    (cid,) = session_containers(sid)
    with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
        invoke(stack.data, arn, sid, {"action": "exit", "code": 7})
    assert error_of(e) == ("RuntimeClientError", 424)
    wait_until(lambda: cid not in session_containers(sid), 20, message="crashed sandbox removed")
    assert "exiting with code 7 on request" in stack.emu.log(), "the agent's last output is logged"
    fresh = whoami(stack.data, arn, sid)
    assert fresh["counter"] == 1 and fresh["hostname"] != first["hostname"]
    stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(gone(sid), 20)


# --- versions and deletion --------------------------------------------------------------------------------


def wait_default_endpoint(control, rid, version, timeout=30):
    return wait_until(lambda: control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
                      .get("liveVersion") == version, timeout, message=f"DEFAULT serving version {version}")


def test_update_leaves_live_sessions_on_their_version(stack):
    rt = stack.runtime("versioned", environmentVariables={"VERSION_MARK": "v1"})
    rid, arn = rt["agentRuntimeId"], rt["agentRuntimeArn"]
    old = new_session_id("old")
    before = whoami(stack.data, arn, old)
    assert before["env"]["VERSION_MARK"] == "v1"
    updated = stack.control.update_agent_runtime(
        agentRuntimeId=rid, agentRuntimeArtifact={"containerConfiguration": {"containerUri": CONTAINER_URI}},
        roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
        environmentVariables={"VERSION_MARK": "v2"})
    assert updated["agentRuntimeVersion"] == "2"
    assert wait_for_status(stack.control, rid)["status"] == "READY"
    wait_default_endpoint(stack.control, rid, "2")
    still = whoami(stack.data, arn, old)
    assert (still["hostname"], still["counter"], still["env"]["VERSION_MARK"]) == (before["hostname"], 2, "v1")
    new = new_session_id("new")
    assert whoami(stack.data, arn, new)["env"]["VERSION_MARK"] == "v2"
    labels = {sid: inspect_container(session_containers(sid)[0])["Config"]["Labels"] for sid in (old, new)}
    assert labels[old]["agentcore-local.version"] == "1"
    assert labels[new]["agentcore-local.version"] == "2"
    # An endpoint pinned to version 1 still starts new sessions on version 1.
    stack.control.create_agent_runtime_endpoint(agentRuntimeId=rid, name="pinned", agentRuntimeVersion="1")
    wait_until(lambda: stack.control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="pinned")
               ["status"] == "READY", 30, message="pinned endpoint READY")
    pinned = new_session_id("pinned")
    assert whoami(stack.data, arn, pinned, qualifier="pinned")["env"]["VERSION_MARK"] == "v1"
    for sid in (old, new, pinned):
        stack.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)


def test_delete_runtime_removes_its_sessions(stack):
    rt = stack.runtime("doomed")
    keep = stack.runtime("survivor")
    rid, arn = rt["agentRuntimeId"], rt["agentRuntimeArn"]
    sids = [new_session_id("doomed") for _ in range(2)]
    for sid in sids:
        whoami(stack.data, arn, sid)
    survivor = new_session_id("survivor")
    whoami(stack.data, keep["agentRuntimeArn"], survivor)
    stack.control.delete_agent_runtime(agentRuntimeId=rid)
    wait_until(lambda: all(gone(s)() for s in sids), 20, message="deleted runtime's containers removed")
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException):
        whoami(stack.data, arn, sids[0])
    assert all(gone(s)() for s in sids), "an invocation of the deleted runtime started a sandbox"
    assert whoami(stack.data, keep["agentRuntimeArn"], survivor)["counter"] == 2, "other runtimes unaffected"
    stack.data.stop_runtime_session(agentRuntimeArn=keep["agentRuntimeArn"], runtimeSessionId=survivor)


# --- quotas ------------------------------------------------------------------------------------------------


def test_invocation_rate_limit_per_endpoint(emulators, ready_runtime):
    emu = emulators("--max-tps-per-endpoint", "2")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    arn = ready_runtime(control, "throttled")["agentRuntimeArn"]
    other = ready_runtime(control, "not_throttled")["agentRuntimeArn"]
    sid = new_session_id("tps")
    whoami(data, arn, sid)
    whoami(data, other, sid)
    time.sleep(1.2)  # buckets full again
    clients = [boto_client(emu.url, "bedrock-agentcore") for _ in range(10)]
    barrier, outcomes = threading.Barrier(len(clients)), []

    def burst(client):
        barrier.wait()
        try:
            invoke(client, arn, sid, {"action": "echo"})
            outcomes.append("ok")
        except ClientError as e:
            outcomes.append(error_of(e))

    threads = [threading.Thread(target=burst, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    throttled = [o for o in outcomes if o != "ok"]
    assert len(outcomes) == 10
    assert set(throttled) == {("ThrottlingException", 429)}, outcomes
    assert 1 <= outcomes.count("ok") <= 5, outcomes
    # A throttled request never reaches the session table: no sandbox for a new id. (The bucket
    # refills a token every 0.5 s, which a slow machine can take between two requests: each try
    # that gets through spends that token, so the next one meets an empty bucket.)
    for _ in range(10):
        fresh = new_session_id("tps-throttled")
        try:
            invoke(data, arn, fresh, {"action": "echo"})
        except data.exceptions.ThrottlingException:
            break
    else:
        pytest.fail("no request was throttled in 10 tries at 2 per second")
    assert session_containers(fresh) == []
    # The quota is per endpoint: another runtime is not throttled.
    invoke(data, other, sid, {"action": "echo"})
    time.sleep(1.2)
    assert invoke(data, arn, sid, {"action": "echo"})[1] == {"echo": {"action": "echo"}}


def test_active_session_quota(emulators, ready_runtime):
    emu = emulators("--max-sessions", "2")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    arn = ready_runtime(control, "quota_agent")["agentRuntimeArn"]
    a, b, c = (new_session_id(p) for p in ("quota-a", "quota-b", "quota-c"))
    whoami(data, arn, a)
    whoami(data, arn, b)
    with pytest.raises(data.exceptions.ServiceQuotaExceededException) as e:
        whoami(data, arn, c)
    assert error_of(e) == ("ServiceQuotaExceededException", 402)
    assert session_containers(c) == []
    # Existing sessions keep working.
    assert whoami(data, arn, a)["counter"] == 2
    data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=a)
    assert whoami(data, arn, c)["counter"] == 1
    with pytest.raises(data.exceptions.ServiceQuotaExceededException):
        whoami(data, arn, a)


def test_failed_or_ended_sessions_do_not_hold_the_quota(emulators, ready_runtime):
    emu = emulators("--max-sessions", "1")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    good = ready_runtime(control, "quota_good")["agentRuntimeArn"]
    bad = ready_runtime(control, "quota_bad", environmentVariables={"AGENT_EXIT_ON_START": "1"})["agentRuntimeArn"]
    for _ in range(2):
        with pytest.raises(data.exceptions.RuntimeClientError):
            whoami(data, bad, new_session_id("quota-bad"))
    a = new_session_id("quota-one")
    assert whoami(data, good, a)["counter"] == 1, "a failed start must not count as an active session"
    with pytest.raises(data.exceptions.ServiceQuotaExceededException):
        whoami(data, good, new_session_id("quota-two"))
    data.stop_runtime_session(agentRuntimeArn=good, runtimeSessionId=a)
    assert whoami(data, good, new_session_id("quota-three"))["counter"] == 1


def test_concurrent_new_sessions_never_exceed_the_quota(emulators, ready_runtime):
    emu = emulators("--max-sessions", "2")
    control = boto_client(emu.url, "bedrock-agentcore-control")
    arn = ready_runtime(control, "quota_race")["agentRuntimeArn"]
    sids = [new_session_id("race") for _ in range(6)]
    results = {}

    def run(sid):
        try:
            whoami(boto_client(emu.url, "bedrock-agentcore"), arn, sid)
            results[sid] = "ok"
        except ClientError as e:
            results[sid] = error_of(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in sids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert list(results.values()).count("ok") == 2, results
    assert all(v in ("ok", ("ServiceQuotaExceededException", 402)) for v in results.values()), results
    assert sum(len(session_containers(s)) for s in sids) == 2


def test_an_agent_out_of_memory_is_told_as_such(tmp_path):
    """A session that passes --sandbox-memory-mib is killed (no swap past the limit) and the
    caller is told it ran out of memory, not just an exit code."""
    emu = Emulator(extra_args=["--sandbox-memory-mib", "48"]).start(tmp_path / "emulator.log")
    try:
        stack = Stack(emu)
        rt = stack.runtime("hungry")
        arn, sid = rt["agentRuntimeArn"], new_session_id("oom")
        assert invoke(stack.data, arn, sid, {"action": "hog", "mib": 8})[1] == {"held_mib": 8}
        with pytest.raises(stack.data.exceptions.RuntimeClientError) as e:
            invoke(stack.data, arn, sid, {"action": "hog", "mib": 400})
        message = e.value.response["Error"]["Message"]
        assert "ran out of memory" in message and "--sandbox-memory-mib" in message, message
        assert "ran out of memory" in emu.log()
        # The cost meter keeps what it last sampled of the session (its sandbox is gone) and says
        # why it ended.
        import urllib.request
        with urllib.request.urlopen(f"{emu.url}/_agentcore-local/sessions", timeout=10) as resp:
            row = next(r for r in json.load(resp)["sessions"] if r["session_id"] == sid)
        assert "ran out of memory" in row["ended_reason"], row
        assert row["cpu_seconds"] > 0 and row["peak_memory_bytes"] > 0 and row["estimated_cost_usd"] > 0, row
    finally:
        emu.stop()
