"""Session affinity and isolation: one container per (runtime, session id), created exactly once
however many first requests race, and sessions that cannot see each other's files, processes or
network ports. Also the hardening of the session containers, read back with `docker inspect`."""
import json
import threading

import pytest

from conftest import (ACCOUNT, HOLDER_LABEL, TEST_IMAGE, Emulator, boto_client, create_runtime, docker, holders_of,
                      inspect_container, invoke, managed_containers, network_owner, new_session_id, session_containers,
                      wait_for_spare_holder, wait_for_status, wait_until, whoami)

NETWORK = "agentcore-local-sandboxes"

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    emu = Emulator().start(tmp_path_factory.mktemp("isolation") / "emulator.log")
    try:
        control = boto_client(emu.url, "bedrock-agentcore-control")
        created = create_runtime(control, "isolation_agent")
        rt = wait_for_status(control, created["agentRuntimeId"])
        assert rt["status"] == "READY", rt
        yield emu, boto_client(emu.url, "bedrock-agentcore"), rt
    finally:
        emu.stop()
    leftovers = managed_containers([emu.proc.pid])
    assert not leftovers, f"the emulator left sandboxes behind after SIGTERM: {leftovers}"
    assert not holders_of(emu.proc.pid), "the emulator left network holders behind after SIGTERM"


def only_container(sid):
    ids = session_containers(sid)
    assert len(ids) == 1, (sid, ids)
    return ids[0]


def sandbox_network(cid):
    """The one network a sandbox is attached to, itself or through its holder: (its settings, the
    network's own inspect data)."""
    networks = inspect_container(network_owner(cid))["NetworkSettings"]["Networks"]
    assert list(networks) == [NETWORK], networks
    settings = networks[NETWORK]
    return settings, json.loads(docker("network", "inspect", settings["NetworkID"]).stdout)[0]


def holder_of_address(ip):
    """The container that now holds `ip` on the sandbox network, if any."""
    attached = json.loads(docker("network", "inspect", NETWORK).stdout)[0]["Containers"] or {}
    return next((cid for cid, c in attached.items() if c["IPv4Address"].split("/")[0] == ip), None)


def container_ip(cid):
    return sandbox_network(cid)[0]["IPAddress"]


def test_same_session_id_reaches_the_same_container(stack):
    _, data, rt = stack
    sid = new_session_id("affinity")
    first = whoami(data, rt["agentRuntimeArn"], sid)
    second = whoami(data, rt["agentRuntimeArn"], sid)
    third = whoami(data, rt["agentRuntimeArn"], sid)
    assert first["hostname"] == second["hostname"] == third["hostname"]
    assert first["pid"] == second["pid"] == third["pid"]
    assert [first["counter"], second["counter"], third["counter"]] == [1, 2, 3]
    cid = only_container(sid)
    assert network_owner(cid).startswith(first["hostname"]), "the agent's hostname is its namespace owner's id"


def test_different_session_ids_get_different_containers(stack):
    _, data, rt = stack
    a, b = new_session_id("diff-a"), new_session_id("diff-b")
    wa, wb = whoami(data, rt["agentRuntimeArn"], a), whoami(data, rt["agentRuntimeArn"], b)
    assert wa["hostname"] != wb["hostname"]
    assert wa["counter"] == wb["counter"] == 1
    assert only_container(a) != only_container(b)
    # and each keeps its own state
    assert whoami(data, rt["agentRuntimeArn"], a)["counter"] == 2
    assert whoami(data, rt["agentRuntimeArn"], b)["counter"] == 2


def test_one_session_id_on_two_runtimes_is_two_sessions(stack):
    emu, data, rt = stack
    control = boto_client(emu.url, "bedrock-agentcore-control")
    other = create_runtime(control, "isolation_other")
    assert wait_for_status(control, other["agentRuntimeId"])["status"] == "READY"
    sid = new_session_id("shared-id")
    a = whoami(data, rt["agentRuntimeArn"], sid)
    b = whoami(data, other["agentRuntimeArn"], sid)
    assert a["hostname"] != b["hostname"]
    assert a["counter"] == b["counter"] == 1
    runtimes = sorted(inspect_container(c)["Config"]["Labels"]["agentcore-local.runtime-id"]
                      for c in session_containers(sid))
    assert runtimes == sorted([rt["agentRuntimeId"], other["agentRuntimeId"]])


def test_concurrent_first_requests_share_one_new_sandbox(stack):
    emu, _, rt = stack
    sid = new_session_id("race")
    clients = [boto_client(emu.url, "bedrock-agentcore") for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    results, errors = [None] * len(clients), []

    def run(i):
        try:
            barrier.wait()
            results[i] = whoami(clients[i], rt["agentRuntimeArn"], sid)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len({r["hostname"] for r in results}) == 1, [r["hostname"] for r in results]
    assert sorted(r["counter"] for r in results) == list(range(1, 9))
    assert len(session_containers(sid)) == 1, session_containers(sid)


def check_file_isolation(data, arn, path, tag):
    """A writes `path`; A reads it back, B (another session of the same runtime) does not see it."""
    a, b = new_session_id(f"{tag}-a"), new_session_id(f"{tag}-b")
    assert invoke(data, arn, a, {"action": "write_file", "path": path, "content": "A only"})[1] == {"written": True}
    assert invoke(data, arn, a, {"action": "read_file", "path": path})[1] == {"content": "A only"}
    assert invoke(data, arn, b, {"action": "read_file", "path": path})[1] == {"content": None}
    # B can write the same path without touching A's copy.
    assert invoke(data, arn, b, {"action": "write_file", "path": path, "content": "B"})[1] == {"written": True}
    assert invoke(data, arn, a, {"action": "read_file", "path": path})[1] == {"content": "A only"}
    return a, b


def test_sessions_cannot_see_each_others_files(stack):
    # The fixture image is FROM scratch and has no /tmp; its writable root layer is per container too.
    # (/tmp itself is checked with --read-only-root below, where every sandbox gets its own tmpfs /tmp.)
    _, data, rt = stack
    check_file_isolation(data, rt["agentRuntimeArn"], "/secret-of-a", "files")


def test_sessions_cannot_see_each_others_processes(stack):
    _, data, rt = stack
    arn = rt["agentRuntimeArn"]
    a, b = new_session_id("pids-a"), new_session_id("pids-b")
    wa, wb = whoami(data, arn, a), whoami(data, arn, b)
    host_pids_of_a = {int(p) for p in docker("top", only_container(a), "-o", "pid").stdout.split()[1:]}
    assert host_pids_of_a, "docker top listed no processes for A"
    # Each session sees only its own init and agent, numbered from 1 in its own pid namespace.
    assert 1 in wb["pids"] and wb["pid"] in wb["pids"]
    assert len(wb["pids"]) <= 3, wb["pids"]
    assert not host_pids_of_a & set(wb["pids"]), (host_pids_of_a, wb["pids"])
    assert wa["pid"] not in host_pids_of_a, "A's agent pid is namespaced, not a host pid"
    assert inspect_container(only_container(b))["HostConfig"]["PidMode"] in ("", "private")


def test_sessions_cannot_reach_each_other_over_the_network(stack):
    _, data, rt = stack
    arn = rt["agentRuntimeArn"]
    a, b = new_session_id("net-a"), new_session_id("net-b")
    whoami(data, arn, a)
    whoami(data, arn, b)
    ip_a, ip_b = container_ip(only_container(a)), container_ip(only_container(b))
    assert ip_a and ip_b and ip_a != ip_b
    # Control: the connect action works (B reaches its own agent on its own address).
    assert invoke(data, arn, b, {"action": "connect", "host": ip_b, "port": 8080})[1] == {"connected": True}
    # B cannot open a connection to A's agent, nor A to B's.
    assert invoke(data, arn, b, {"action": "connect", "host": ip_a, "port": 8080, "timeout_ms": 1500})[1] == \
        {"connected": False}
    assert invoke(data, arn, a, {"action": "connect", "host": ip_b, "port": 8080, "timeout_ms": 1500})[1] == \
        {"connected": False}
    for sid in (a, b):
        _, network = sandbox_network(only_container(sid))
        assert network["Name"] == NETWORK and network["Driver"] == "bridge"
        assert network["Options"].get("com.docker.network.bridge.enable_icc") == "false", network["Options"]


def test_a_request_never_reaches_the_container_that_took_a_sessions_address(stack):
    """Docker gives a container's address to the next container as soon as it lets go of it. Here
    the session's container leaves the network (so it lets go of its address but keeps running,
    and the session stays live), and another container takes the address: the session's next
    requests must fail, not be answered by the newcomer."""
    _, data, rt = stack
    arn = rt["agentRuntimeArn"]
    sid = new_session_id("moved")
    first = whoami(data, arn, sid)
    cid = only_container(sid)
    assert network_owner(cid).startswith(first["hostname"])
    ip = container_ip(cid)
    docker("network", "disconnect", NETWORK, network_owner(cid))
    newcomers = []
    try:
        # Each new container takes the lowest free address: a few at most until one has ip. Other
        # emulators of the suite start containers (sandboxes, network holders) on this network
        # too, so one of theirs may be the one that takes it.
        for _ in range(30):
            newcomers.append(docker("run", "-d", "--network", NETWORK, TEST_IMAGE).stdout.strip())
            taker = holder_of_address(ip)
            if taker:
                break
        else:
            pytest.fail(f"no new container was given {ip}")
        newcomer_host = inspect_container(taker)["Config"]["Hostname"]
        messages = []
        for _ in range(3):
            try:
                answer = whoami(data, arn, sid)
            except data.exceptions.RuntimeClientError as e:
                messages.append(e.response["Error"]["Message"])
                continue
            assert answer.get("hostname") != newcomer_host, f"the newcomer answered {sid}'s request: {answer}"
        assert any("is no longer this session's sandbox" in m for m in messages), messages
    finally:
        for newcomer in newcomers:
            docker("rm", "-f", newcomer, check=False)


def test_session_output_goes_to_a_log_driver_docker_can_read_back_with_a_size_cap(stack):
    """Whatever the daemon's default log driver, a sandbox logs to Docker's `local` driver: one
    Docker can read back (the emulator's log capture does, live and after a restart) and which
    keeps at most 100 MB per container, where `json-file` keeps all an agent prints."""
    emu, data, rt = stack
    sid = new_session_id("logdriver")
    whoami(data, rt["agentRuntimeArn"], sid)
    container = only_container(sid)
    assert inspect_container(container)["HostConfig"]["LogConfig"]["Type"] == "local"
    assert "test-agent ready" in docker("logs", container).stdout


def test_session_container_is_hardened(stack):
    emu, data, rt = stack
    sid = new_session_id("harden")
    whoami(data, rt["agentRuntimeArn"], sid)
    info = inspect_container(only_container(sid))
    host = info["HostConfig"]
    assert "ALL" in (host["CapDrop"] or [])
    assert not host.get("CapAdd")
    assert "no-new-privileges" in (host["SecurityOpt"] or [])
    assert host["Privileged"] is False
    assert host["PidsLimit"] == 1024
    assert host["Memory"] == 8 * 1024 ** 3
    assert host["NanoCpus"] == 2_000_000_000
    assert host["Init"] is True
    settings, network = sandbox_network(only_container(sid))
    owner = network_owner(only_container(sid))
    owner_mode = inspect_container(owner)["HostConfig"]["NetworkMode"]
    assert owner_mode in (NETWORK, network["Id"]), owner_mode
    assert network["Options"].get("com.docker.network.bridge.enable_icc") == "false"
    # Nothing is published (no Docker userland proxy per session): this host owns the sandbox
    # network's gateway, so the emulator reached the agent (whoami above) at the container's own
    # bridge address (or its holder's), which only this host routes to.
    assert not host["PortBindings"], host["PortBindings"]
    published = info["NetworkSettings"]["Ports"]
    if owner == only_container(sid):
        assert list(published) == ["8080/tcp"] and not published["8080/tcp"], published
    else:
        assert not published and info["Config"]["Labels"]["agentcore-local.joined-ports"] == "8080", published
    mounts = [m.get("Source", "") for m in info["Mounts"]] + list(host.get("Binds") or [])
    assert not any("docker.sock" in m for m in mounts), mounts
    labels = info["Config"]["Labels"]
    assert labels["agentcore-local.managed"] == "true"
    assert labels["agentcore-local.instance"]
    assert labels["agentcore-local.runtime-id"] == rt["agentRuntimeId"]
    assert labels["agentcore-local.version"] == "1"
    assert labels["agentcore-local.session-id"] == sid
    assert labels["agentcore-local.owner-pid"] == str(emu.proc.pid)
    assert labels["agentcore-local.account"] == ACCOUNT


def session_in_a_holder(emu, data, arn, name):
    """A new session started once a spare holder is ready, which it must have joined: its id, the
    agent's `whoami` answer, its container and the holder."""
    whoami(data, arn, new_session_id(f"before-{name}"))
    wait_for_spare_holder(emu)
    sid = new_session_id(name)
    answer = whoami(data, arn, sid)
    cid = only_container(sid)
    holder = network_owner(cid)
    assert holder != cid, "the session attached its own network although a holder was ready"
    return sid, answer, cid, holder


def test_a_new_session_joins_a_network_namespace_made_ahead_which_ends_with_it(stack):
    emu, data, rt = stack
    arn = rt["agentRuntimeArn"]
    sid, answer, cid, holder = session_in_a_holder(emu, data, arn, "joined")
    assert holder.startswith(answer["hostname"]), "the agent runs in the holder's namespace"
    info = inspect_container(holder)
    assert list(info["NetworkSettings"]["Networks"]) == [NETWORK]
    assert info["Config"]["Labels"][HOLDER_LABEL] == "true"
    # Hardened like a sandbox, and far smaller.
    host = info["HostConfig"]
    assert "ALL" in (host["CapDrop"] or []) and "no-new-privileges" in (host["SecurityOpt"] or [])
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert 0 < host["PidsLimit"] <= 4 and 0 < host["Memory"] <= 8 * 1024 ** 2
    assert not host["PortBindings"]
    # A namespace serves one session: the next session gets another (or its own network).
    other = new_session_id("joined-other")
    whoami(data, arn, other)
    assert network_owner(only_container(other)) != holder
    # The holder goes with its session.
    data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=sid)
    wait_until(lambda: holder not in holders_of(emu.proc.pid), timeout=30, message="the stopped session's holder gone")


def test_a_session_whose_sandbox_is_removed_by_hand_ends_and_its_holder_goes(stack):
    emu, data, rt = stack
    _, _, cid, holder = session_in_a_holder(emu, data, rt["agentRuntimeArn"], "sandbox-removed")
    docker("rm", "-f", cid)
    # The session's supervisor finds its sandbox gone and ends it. Its holder goes too: kept, it
    # would outlive the emulator (see the fixture's check after SIGTERM).
    wait_until(lambda: holder not in holders_of(emu.proc.pid), timeout=30,
               message="the holder of the session whose sandbox was removed gone")


def test_a_spare_holder_removed_by_hand_does_not_fail_the_next_session(stack):
    emu, data, rt = stack
    arn = rt["agentRuntimeArn"]
    whoami(data, arn, new_session_id("before-removal"))
    for spare in wait_for_spare_holder(emu):
        docker("rm", "-f", spare)
    sid = new_session_id("after-removal")
    assert whoami(data, arn, sid)["counter"] == 1
    cid = only_container(sid)
    assert network_owner(cid) == cid, "the session should have attached its own network"
    assert list(inspect_container(cid)["NetworkSettings"]["Networks"]) == [NETWORK]
    # The spares removed by hand no longer count as ready: new ones are made in their place.
    wait_for_spare_holder(emu)


def test_sandbox_limit_flags_and_read_only_root(emulators, ready_runtime):
    emu = emulators("--sandbox-memory-mib", "512", "--sandbox-cpus", "0.5", "--sandbox-pids", "64",
                    "--read-only-root")
    control, data = boto_client(emu.url, "bedrock-agentcore-control"), boto_client(emu.url, "bedrock-agentcore")
    arn = ready_runtime(control, "limited_agent")["agentRuntimeArn"]
    sid = new_session_id("limits")
    whoami(data, arn, sid)
    host = inspect_container(only_container(sid))["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (512 * 1024 ** 2, 500_000_000, 64)
    assert host["ReadonlyRootfs"] is True
    assert invoke(data, arn, sid, {"action": "write_file", "path": "/not-writable", "content": "x"})[1] == \
        {"written": False}
    assert invoke(data, arn, sid, {"action": "write_file", "path": "/tmp/ok", "content": "x"})[1] == \
        {"written": True}
    # /tmp is a tmpfs of this sandbox only: another session does not see A's file there.
    a, b = check_file_isolation(data, arn, "/tmp/secret-of-a", "tmpfs")
    assert "secret-of-a" in whoami(data, arn, a)["tmp"]
    assert whoami(data, arn, b)["tmp"] == ["secret-of-a"], "B sees only its own file of that name"
    assert "ok" not in whoami(data, arn, a)["tmp"]
