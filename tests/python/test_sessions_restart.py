"""Sessions across emulator restarts: --keep-sessions leaves sandboxes running for the next start
on the same data dir to re-adopt; a plain SIGTERM stops them all; after a kill -9 the next
emulator either re-adopts them (same data dir) or removes them as orphans (owner process gone)."""
import signal
import time

from botocore.exceptions import ClientError

from conftest import (boto_client, create_runtime, holders_of, invoke, managed_containers, network_owner,
                      new_session_id, session_containers, session_log_messages, wait_for_spare_holder,
                      wait_for_status, wait_until, whoami)


def runtime_arn(emu, name):
    control = boto_client(emu.url, "bedrock-agentcore-control")
    created = create_runtime(control, name)
    assert wait_for_status(control, created["agentRuntimeId"])["status"] == "READY"
    return created["agentRuntimeArn"]


def data(emu):
    return boto_client(emu.url, "bedrock-agentcore")


def kill_9(emu):
    emu.proc.send_signal(signal.SIGKILL)
    emu.proc.wait(timeout=10)  # reaped: its pid no longer exists
    assert emu.proc.returncode == -signal.SIGKILL
    emu.stop()


def test_keep_sessions_survive_a_restart_and_are_re_adopted(emulators, tmp_path):
    data_dir = tmp_path / "state"
    first = emulators("--keep-sessions", data_dir=data_dir)
    arn = runtime_arn(first, "kept_agent")
    sid = new_session_id("kept")
    before = whoami(data(first), arn, sid)
    whoami(data(first), arn, sid)
    assert first.stop() == 0
    running = session_containers(sid, running_only=True)
    assert len(running) == 1, "--keep-sessions must leave the sandbox running at shutdown"

    second = emulators(data_dir=data_dir)  # re-adopts; without --keep-sessions it cleans up at exit
    after = whoami(data(second), arn, sid)
    assert (after["hostname"], after["pid"], after["counter"]) == (before["hostname"], before["pid"], 3)
    assert session_containers(sid) == running, "no second sandbox for the re-adopted session"
    # A re-adopted session is a full member of the table: it can be stopped.
    other = new_session_id("kept-other")
    whoami(data(second), arn, other)
    data(second).stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    assert whoami(data(second), arn, sid)["counter"] == 1
    assert second.stop() == 0
    assert session_containers(sid) == [] and session_containers(other) == []
    assert managed_containers([first.proc.pid, second.proc.pid]) == []


def test_a_session_in_a_network_holder_is_re_adopted_with_it(emulators, tmp_path):
    data_dir = tmp_path / "state"
    first = emulators("--keep-sessions", data_dir=data_dir)
    arn = runtime_arn(first, "joined_agent")
    whoami(data(first), arn, new_session_id("first-on-network"))
    wait_for_spare_holder(first)
    sid = new_session_id("joined-kept")
    before = whoami(data(first), arn, sid)
    (cid,) = session_containers(sid)
    holder = network_owner(cid)
    assert holder != cid, "the session did not join the ready holder"
    assert first.stop() == 0
    assert holders_of(first.proc.pid) == [holder], "shutdown keeps the kept session's holder and no spare"

    second = emulators(data_dir=data_dir)
    after = whoami(data(second), arn, sid)
    assert (after["hostname"], after["pid"], after["counter"]) == (before["hostname"], before["pid"], 2)
    data(second).stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    assert second.stop() == 0
    assert holders_of(first.proc.pid) == [] and holders_of(second.proc.pid) == []


def test_sigterm_without_keep_sessions_stops_every_sandbox(emulators, tmp_path):
    emu = emulators(data_dir=tmp_path / "state")
    arn = runtime_arn(emu, "stopped_agent")
    sids = [new_session_id("term") for _ in range(3)]
    for sid in sids:
        whoami(data(emu), arn, sid)
    assert len(managed_containers([emu.proc.pid])) == 3
    assert emu.stop() == 0
    assert managed_containers([emu.proc.pid]) == []
    assert all(session_containers(s) == [] for s in sids)


def test_kill_9_leftovers_are_removed_by_the_next_emulator(emulators, tmp_path):
    # An in-memory emulator can never come back for its sandboxes: once its process is gone they are
    # orphans. (Sandboxes of an emulator with a data dir wait for that emulator's next start.)
    crashed = emulators()
    arn = runtime_arn(crashed, "orphaned_agent")
    sid = new_session_id("orphan")
    whoami(data(crashed), arn, sid)
    wait_for_spare_holder(crashed)
    joined = new_session_id("orphan-joined")
    whoami(data(crashed), arn, joined)
    kill_9(crashed)
    assert len(session_containers(sid, running_only=True)) == 1, "kill -9 cannot stop sandboxes"
    assert holders_of(crashed.proc.pid), "kill -9 cannot remove network holders"
    # Any emulator removes such orphans at start-up, with their network holders, spare or not.
    emulators()
    assert session_containers(sid) == [] and session_containers(joined) == []
    assert managed_containers([crashed.proc.pid]) == []
    assert holders_of(crashed.proc.pid) == []


def test_kill_9_then_restart_on_the_same_data_dir_re_adopts(emulators, tmp_path):
    data_dir = tmp_path / "state"
    crashed = emulators(data_dir=data_dir)
    arn = runtime_arn(crashed, "crash_agent")
    sid = new_session_id("crash")
    before = whoami(data(crashed), arn, sid)
    kill_9(crashed)
    restarted = emulators(data_dir=data_dir)
    assert len(session_containers(sid, running_only=True)) == 1, "the healthy sandbox must be re-adopted"
    after = whoami(data(restarted), arn, sid)
    assert (after["hostname"], after["counter"]) == (before["hostname"], 2)
    assert restarted.stop() == 0
    assert session_containers(sid) == []


def test_a_re_adopted_session_logs_on_after_a_kill_9_without_losing_or_repeating_a_line(emulators, tmp_path):
    data_dir = tmp_path / "state"
    crashed = emulators(data_dir=data_dir)
    arn = runtime_arn(crashed, "crash_logger")
    runtime_id = arn.rsplit("/", 1)[1]
    sid = new_session_id("crash-logs")
    invoke(data(crashed), arn, sid, {"action": "log", "stdout": "stored before the kill"})
    wait_until(lambda: "stored before the kill" in session_log_messages(crashed.url, runtime_id, sid), timeout=10,
               message="the first line stored")
    # Killed at once: this line is printed but (captured every 100 ms) most likely not yet stored.
    invoke(data(crashed), arn, sid, {"action": "log", "stdout": "printed as the emulator was killed"})
    kill_9(crashed)
    restarted = emulators(data_dir=data_dir)
    invoke(data(restarted), arn, sid, {"action": "log", "stdout": "after the restart"})
    messages = wait_until(lambda: (m := session_log_messages(restarted.url, runtime_id, sid)) and "after the restart" in m and m,
                          timeout=10, message="the re-adopted session's line stored")
    wanted = ["test-agent starting", "stored before the kill", "printed as the emulator was killed", "after the restart"]
    found = [m for m in messages if any(m.startswith(w) for w in wanted)]
    assert [next(w for w in wanted if m.startswith(w)) for m in found] == wanted, messages
    assert len(messages) == len(set(messages)), f"a line stored twice: {messages}"
    assert restarted.stop() == 0


def test_other_live_emulators_sandboxes_are_left_alone(emulators):
    one, two = emulators(), emulators()
    arn = runtime_arn(one, "neighbour")
    sid = new_session_id("neighbour")
    before = whoami(data(one), arn, sid)
    three = emulators()  # starts while `one` is alive: must not touch its sandbox
    assert len(session_containers(sid, running_only=True)) == 1
    assert whoami(data(one), arn, sid)["counter"] == before["counter"] + 1
    three.stop()
    two.stop()
    assert len(session_containers(sid, running_only=True)) == 1, "stopping another emulator stopped our sandbox"
    one.stop()
    assert session_containers(sid) == []


def test_re_adopted_sandboxes_are_not_taken_for_orphans_by_other_emulators(emulators, tmp_path):
    """After a restart the re-adopting emulator owns the sandbox: a third emulator starting while
    it runs must leave the sandbox alone, although the process that created it is gone."""
    data_dir = tmp_path / "state"
    crashed = emulators(data_dir=data_dir)
    arn = runtime_arn(crashed, "adopted_agent")
    sid = new_session_id("adopted")
    before = whoami(data(crashed), arn, sid)
    kill_9(crashed)
    owner = emulators(data_dir=data_dir)
    assert whoami(data(owner), arn, sid)["counter"] == 2
    emulators()  # an unrelated emulator (another instance) starts
    assert len(session_containers(sid, running_only=True)) == 1, \
        "a live emulator's re-adopted sandbox was removed as an orphan by another emulator's start-up"
    after = whoami(data(owner), arn, sid)
    assert (after["hostname"], after["counter"]) == (before["hostname"], 3)


def test_keep_sessions_sandbox_that_died_meanwhile_is_removed_not_adopted(emulators, tmp_path):
    from conftest import docker
    data_dir = tmp_path / "state"
    first = emulators("--keep-sessions", data_dir=data_dir)
    arn = runtime_arn(first, "died_agent")
    sid = new_session_id("died")
    before = whoami(data(first), arn, sid)
    first.stop()
    (cid,) = session_containers(sid, running_only=True)
    docker("kill", cid)  # the agent dies while no emulator runs
    second = emulators(data_dir=data_dir)
    assert session_containers(sid) == [], "a dead sandbox must be removed at start-up"
    fresh = whoami(data(second), arn, sid)
    assert fresh["counter"] == 1 and fresh["hostname"] != before["hostname"]


def test_max_lifetime_counts_from_the_original_start_across_a_restart(emulators, tmp_path):
    # Scale 0.1: max lifetime 12 s, idle timeout 10 s, so a second emulator that is slow to start
    # on a loaded machine still re-adopts the session before it goes idle.
    data_dir, flags = tmp_path / "state", ("--lifecycle-time-scale", "0.1")
    first = emulators("--keep-sessions", *flags, data_dir=data_dir)
    control = boto_client(first.url, "bedrock-agentcore-control")
    created = create_runtime(control, "lifetime_agent",
                             lifecycleConfiguration={"idleRuntimeSessionTimeout": 100, "maxLifetime": 120})
    assert wait_for_status(control, created["agentRuntimeId"])["status"] == "READY"
    arn, sid = created["agentRuntimeArn"], new_session_id("lifetime")
    # The sandbox is created somewhere between these two instants (a cold start on a loaded
    # machine can take seconds), so its max lifetime ends between asked_at + 12 s and born + 12 s.
    asked_at = time.time()
    before = whoami(data(first), arn, sid)
    born = time.time()
    first.stop()
    time.sleep(max(0.0, born + 3.5 - time.time()))
    second = emulators(*flags, data_dir=data_dir)
    client = data(second)
    assert whoami(client, arn, sid)["hostname"] == before["hostname"], "not re-adopted"
    replaced_at = None
    while time.time() - born < 25:
        time.sleep(0.3)
        try:
            w = whoami(client, arn, sid)
        except ClientError:
            continue
        if w["hostname"] != before["hostname"]:
            replaced_at = time.time() - born
            break
    assert replaced_at, "the re-adopted session never reached its max lifetime"
    # maxLifetime (120 s * 0.1 = 12 s) runs from the sandbox's creation, not from its re-adoption
    # (>= 3.5 s after born: counted from there it would end after born + 15.5 s). The lower bound
    # counts from before the first invoke, which created the sandbox.
    since_asked = replaced_at + (born - asked_at)
    assert since_asked >= 11.3, (since_asked, replaced_at)
    assert replaced_at <= 14.5, replaced_at


def test_sandboxes_of_an_emulator_in_another_pid_namespace_are_left_alone(emulators):
    """An emulator in a container sees none of the host's processes (and the reverse): a sandbox
    whose owner pid is not visible is an orphan only if the owner ran in this PID namespace."""
    import os
    import subprocess
    from conftest import TEST_IMAGE, docker

    def sandbox_of_a_gone_emulator(namespace):
        labels = {"agentcore-local.managed": "true", "agentcore-local.persistent": "false",
                  "agentcore-local.instance": "gone", "agentcore-local.owner-pid": "999999999",
                  "agentcore-local.owner-pid-namespace": namespace}
        args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
        return docker("run", "-d", *args, TEST_IMAGE).stdout.strip()

    elsewhere = sandbox_of_a_gone_emulator("pid:[1]")
    here = sandbox_of_a_gone_emulator(os.readlink("/proc/self/ns/pid"))
    try:
        emulators()
        running = docker("ps", "-q", "--no-trunc").stdout.split()
        assert elsewhere in running, "a sandbox whose owner lives in another PID namespace was removed"
        assert here not in docker("ps", "-aq", "--no-trunc").stdout.split(), "a real orphan was kept"
    finally:
        subprocess.run(["docker", "rm", "-f", elsewhere, here], capture_output=True)
