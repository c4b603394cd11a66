"""The microVM backend's lifecycle across time and restarts, through real boto3: the idle timeout
and max lifetime end a VM as they end a container, and --keep-sessions VMs are re-adopted by the
next emulator. Each test runs its own emulator and waits minutes of (scaled) session time, so
they live apart from test_sandbox_microvm.py and run beside it on another pytest worker.

Skipped when the host lacks QEMU, a guest kernel, a static busybox or mke2fs (`agentcore-local doctor`
says what to install; scripts/test installs them as root)."""
import os
import time

import botocore.exceptions
import pytest

from conftest import Emulator, create_runtime, new_session_id, wait_for_status, wait_until
from microvm_helpers import Stack, alive, host_ready, imds_credentials, slow_client

READY, REPORT = host_ready()
pytestmark = pytest.mark.skipif(not READY, reason=f"microVM backend not available here:\n{REPORT}")


def test_kept_vms_survive_a_restart_and_are_re_adopted(tmp_path):
    """--keep-sessions leaves the VM running (QEMU is daemonized); the next emulator on the same
    data dir finds it by its record, re-adopts it (same VM, same agent process) and gives it back
    its way to the emulator; that emulator's plain shutdown then removes it."""
    vm_root = tmp_path / "vms-root"
    env = dict(os.environ, AGENTCORE_LOCAL_MICROVM_DIR=str(vm_root))
    args = ["--sandbox", "microvm", "--startup-timeout", "240"]
    first = Emulator(data_dir=tmp_path / "state", extra_args=args + ["--keep-sessions"], env=env)
    first.start(tmp_path / "first.log")
    second = None
    try:
        control = slow_client(first.url, "bedrock-agentcore-control")
        created = create_runtime(control, "microvm_kept")
        rt = wait_for_status(control, created["agentRuntimeId"])
        stack = Stack(first, vm_root, control, slow_client(first.url, "bedrock-agentcore"), rt)
        sid = new_session_id("mvm-kept")
        before = stack.invoke(sid, {"action": "whoami"})
        vm_id, record = stack.vm_of(sid)
        assert first.stop() == 0
        assert alive(record["pid"]), "--keep-sessions must leave the VM running"
        second = Emulator(data_dir=tmp_path / "state", extra_args=args, env=env).start(tmp_path / "second.log")
        stack = Stack(second, vm_root, None, slow_client(second.url, "bedrock-agentcore"), rt)
        after = stack.invoke(sid, {"action": "whoami"})
        assert (after["hostname"], after["pid"], after["counter"]) == (before["hostname"], before["pid"], 2)
        assert stack.vm_of(sid)[0] == vm_id
        assert imds_credentials(stack, sid)[0] == "AgentRole", "the VM's relay did not come back"
    finally:
        first.stop()
        if second:
            second.stop()
    assert not alive(record["pid"])
    assert not (vm_root / "vms" / vm_id).exists()


def test_idle_timeout_and_max_lifetime_end_a_vm_and_remove_its_files(tmp_path):
    """The lifecycle applies to a VM as to a container (times scaled by 0.1: idle 60 s -> 6 s,
    maxLifetime 1200 s -> 120 s, which counts from the session's start and so must exceed a TCG
    cold start on a loaded machine: 25 s here, and over 60 s in one CI run, whose first invocation
    then failed because the lifetime ended the session): a session left alone is ended after its idle
    timeout, one invoked continually is replaced after its lifetime, and each ended VM leaves no
    process and no file."""
    vm_root = tmp_path / "vms-root"
    env = dict(os.environ, AGENTCORE_LOCAL_MICROVM_DIR=str(vm_root))
    emu = Emulator(extra_args=["--sandbox", "microvm", "--startup-timeout", "240", "--lifecycle-time-scale", "0.1"],
                   env=env).start(tmp_path / "emulator.log")
    try:
        control = slow_client(emu.url, "bedrock-agentcore-control")
        created = create_runtime(control, "microvm_lifecycle",
                                 lifecycleConfiguration={"idleRuntimeSessionTimeout": 60, "maxLifetime": 1200})
        rt = wait_for_status(control, created["agentRuntimeId"])
        stack = Stack(emu, vm_root, control, slow_client(emu.url, "bedrock-agentcore"), rt)
        idle_sid, busy_sid = new_session_id("mvm-idle"), new_session_id("mvm-life")

        def gone(vm_id, record):
            return lambda: not alive(record["pid"]) and not [p for p in vm_root.rglob("*") if vm_id in str(p)]
        # The idle session first: the other's cold start (seconds under TCG) is idleness for it,
        # whereas the continually invoked one must never wait that long between invocations.
        stack.invoke(idle_sid, {"action": "whoami"})
        idle_since = time.time()
        idle_vm = stack.vm_of(idle_sid)
        # The lifetime counts from the start of the session, which its first invocation makes.
        began = time.time()
        first = stack.invoke(busy_sid, {"action": "whoami"})
        busy_vm = stack.vm_of(busy_sid)
        idle_ended, replaced = None, None
        while time.time() - began < 300 and not replaced:
            time.sleep(0.5)
            if idle_ended is None and gone(*idle_vm)():
                idle_ended = time.time() - idle_since
            try:
                who = stack.invoke(busy_sid, {"action": "whoami"})
            # An invocation racing the end may fail (an error, or its response cut short).
            except (stack.data.exceptions.ClientError, botocore.exceptions.ConnectionClosedError):
                continue
            if who["hostname"] != first["hostname"]:
                replaced = (time.time() - began, who)
        wait_until(gone(*idle_vm), 30, message="the idle VM and its files gone")
        idle_ended = idle_ended or time.time() - idle_since
        assert idle_ended >= 6 - 0.5, f"the idle VM ended after only {idle_ended:.1f}s"
        assert replaced, "the continually invoked session was never ended by its max lifetime"
        after, fresh = replaced
        assert after >= 120 - 0.1, f"replaced after {after:.1f}s, before maxLifetime"
        assert fresh["counter"] == 1
        wait_until(gone(*busy_vm), 30, message="the first VM of the long-lived session and its files gone")
        assert stack.vm_of(busy_sid)[0] != busy_vm[0]
    finally:
        emu.stop()
