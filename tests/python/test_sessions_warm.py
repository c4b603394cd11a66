"""The warm pool as `serve` runs by default: once a runtime version has served a session it keeps
one ready spare, a new session is handed that spare, the agent cannot tell it from a fresh
sandbox, spares go with their version, and a memory budget holds them back.

Also the per-session start breakdown (`start_phases`) of the sessions report."""
import json
import subprocess
import urllib.request

from conftest import (
    BINARY,
    Emulator,
    boto_client,
    containers_with,
    create_runtime,
    new_session_id,
    session_log_messages,
    wait_for_status,
    wait_until,
    whoami,
)

POOL_LABEL = "agentcore-local.pool"


def report(emu):
    with urllib.request.urlopen(f"{emu.url}/_agentcore-local/sessions", timeout=10) as resp:
        return json.load(resp)


def session_report(emu, session_id):
    return next(s for s in report(emu)["sessions"] if s["session_id"] == session_id)


def spares_of(emu, runtime_id):
    return [s for s in report(emu)["spares"] if s["runtime_id"] == runtime_id]


def ready_runtime(control, name):
    created = create_runtime(control, name)
    wait_for_status(control, created["agentRuntimeId"])
    return created


def pool_containers(runtime_id):
    return [c for c in containers_with(POOL_LABEL, "true", running_only=True)
            if c in containers_with("agentcore-local.runtime-id", runtime_id, running_only=True)]


def comparable(seen):
    """What the agent sees of its sandbox, minus what differs between any two sandboxes (the
    container's own hostname, the port its requests arrive through) and per request (the session
    and request ids)."""
    env = {k: v for k, v in seen["env"].items() if k != "HOSTNAME"}
    headers = {k: v for k, v in seen["headers"].items()
               if k not in ("x-amzn-bedrock-agentcore-runtime-session-id", "x-amzn-bedrock-agentcore-runtime-request-id",
                            "host", "x-amzn-requestid", "x-amzn-trace-id", "traceparent", "content-length")}
    assert env and headers, seen
    return env, headers


def test_a_new_session_gets_a_ready_spare_the_agent_cannot_tell_from_a_fresh_sandbox(tmp_path):
    emu = Emulator(warm_pool=None).start(tmp_path / "emulator.log")  # serve's defaults
    try:
        control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
        rt = ready_runtime(control, "warm_default")
        rid, arn = rt["agentRuntimeId"], rt["agentRuntimeArn"]
        assert not spares_of(emu, rid), "no spare before the version has served a session"

        cold_id = new_session_id("cold")
        cold = whoami(data, arn, cold_id)
        spare = wait_until(lambda: [s for s in spares_of(emu, rid) if s["memory_bytes"] > 0], timeout=60,
                           message="a ready spare, its memory measured, after the first session")
        assert spare[0]["version"] == 1
        assert len(pool_containers(rid)) == 1

        warm_id = new_session_id("warm")
        warm = whoami(data, arn, warm_id)
        assert warm["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"] == warm_id
        assert cold["headers"]["x-amzn-bedrock-agentcore-runtime-session-id"] == cold_id
        assert comparable(warm) == comparable(cold), "a spare looks exactly like a fresh sandbox to its agent"

        cold_phases = session_report(emu, cold_id)["start_phases"]
        warm_phases = session_report(emu, warm_id)["start_phases"]
        assert cold_phases["warm_spare"] is False and warm_phases["warm_spare"] is True
        steps = [cold_phases[k] for k in ("sandbox_created_ms", "sandbox_started_ms", "agent_ready_ms", "first_response_ms")]
        assert all(v is not None and v > 0 for v in steps) and steps == sorted(steps), cold_phases
        assert warm_phases["sandbox_created_ms"] is None and warm_phases["first_response_ms"] >= warm_phases["agent_ready_ms"]

        # The claimed spare is replaced: the version has a ready spare again.
        wait_until(lambda: spares_of(emu, rid), timeout=60, message="the pool refilled after a claim")

        # The text report says which sessions a spare served, and lists the spares.
        env = {"AWS_ENDPOINT_URL": emu.url, "PATH": "/usr/bin:/bin"}
        text = subprocess.run([str(BINARY), "sessions"], env=env, capture_output=True, text=True, check=True).stdout
        warm_line = next(line for line in text.splitlines() if warm_id in line)
        assert warm_line.split()[-3] == "warm", warm_line
        spares = text.split("READY SPARE OF", 1)[1].split("TOTAL FOR", 1)[0]
        assert rid in spares, text
    finally:
        emu.stop()


def test_a_spare_that_printed_much_before_its_claim_hands_its_session_every_line(tmp_path):
    # 12 000 lines of 100 bytes at start-up: more than the emulator holds for a spare's output
    # before anyone claims it (1 MiB), so the claim reads that output back from Docker's log.
    startup_lines = 12_000
    log_file = tmp_path / "emulator.log"
    emu = Emulator(warm_pool=None).start(log_file)
    try:
        control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
        rt = create_runtime(control, "warm_chatty", environmentVariables={"AGENT_STARTUP_LINES": str(startup_lines)})
        wait_for_status(control, rt["agentRuntimeId"])
        rid, arn = rt["agentRuntimeId"], rt["agentRuntimeArn"]
        expected = [f"startup line {i:>8} {'x' * 78}" for i in range(startup_lines)]

        cold_id = new_session_id("cold")
        whoami(data, arn, cold_id)
        wait_until(lambda: spares_of(emu, rid), timeout=60, message="a ready spare after the first session")
        warm_id = new_session_id("warm")
        whoami(data, arn, warm_id)
        assert session_report(emu, warm_id)["start_phases"]["warm_spare"] is True

        for session_id in (cold_id, warm_id):
            messages = wait_until(
                lambda: (m := session_log_messages(emu.url, rid, session_id)) and any(x.startswith("invocation 1 ") for x in m) and m,
                timeout=30, message=f"{session_id}'s invocation in its log")
            assert messages[0].startswith("test-agent starting"), messages[:3]
            assert [m for m in messages if m.startswith("startup line")] == expected, session_id
            assert messages.index("test-agent ready") == startup_lines + 1
        assert "reading it from Docker's log" in log_file.read_text(), "the spare's output was let go and read back"
    finally:
        emu.stop()


def test_spares_are_retired_with_their_version(tmp_path):
    emu = Emulator(warm_pool=None).start(tmp_path / "emulator.log")
    try:
        control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
        rt = ready_runtime(control, "warm_retired")
        rid = rt["agentRuntimeId"]
        whoami(data, rt["agentRuntimeArn"], new_session_id())
        wait_until(lambda: spares_of(emu, rid) and pool_containers(rid), timeout=60, message="a spare")

        control.delete_agent_runtime(agentRuntimeId=rid)
        wait_until(lambda: not pool_containers(rid), timeout=60, message="the spare stopped with its runtime")
        assert not spares_of(emu, rid)
    finally:
        emu.stop()


def test_the_memory_budget_holds_spares_back(tmp_path):
    emu = Emulator(extra_args=["--warm-pool-memory-mib", "0"], warm_pool=None).start(tmp_path / "emulator.log")
    try:
        control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
        rt = ready_runtime(control, "warm_budget")
        rid = rt["agentRuntimeId"]
        whoami(data, rt["agentRuntimeArn"], new_session_id())
        wait_until(lambda: "warm pool's spares already hold its memory budget" in emu.log(), timeout=30,
                   message="the budget named in the log")
        second = new_session_id()
        whoami(data, rt["agentRuntimeArn"], second)
        assert session_report(emu, second)["start_phases"]["warm_spare"] is False
        assert not spares_of(emu, rid) and not pool_containers(rid)
    finally:
        emu.stop()
