"""What the microVM test files share: whether this host can run the backend, boto3 clients patient
enough for a TCG boot, and a view of the VMs the backend keeps (their records under its directory)."""
import json
import subprocess
from pathlib import Path

import boto3
import botocore.config

from conftest import BINARY, REGION


def host_ready():
    if not BINARY.exists():
        return False, "binary not built"
    proc = subprocess.run([str(BINARY), "doctor"], capture_output=True, text=True)
    return proc.returncode == 0, proc.stdout



def slow_client(url, service):
    """A VM's first request waits for its boot: a long read timeout, no retries."""
    return boto3.session.Session().client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(read_timeout=300, retries={"total_max_attempts": 1}))


class Stack:
    def __init__(self, emu, vm_root, control, data, runtime):
        self.emu, self.vm_root, self.control, self.data, self.rt = emu, vm_root, control, data, runtime
        self.arn = runtime["agentRuntimeArn"]

    def invoke(self, sid, payload):
        resp = self.data.invoke_agent_runtime(agentRuntimeArn=self.arn, runtimeSessionId=sid,
                                              payload=json.dumps(payload))
        return json.loads(resp["response"].read())

    def vms(self):
        """{vm id: record} of the VMs the backend keeps."""
        root = self.vm_root / "vms"
        out = {}
        for d in (root.iterdir() if root.exists() else []):
            record = d / "vm.json"
            if record.exists():
                out[d.name] = json.loads(record.read_text())
        return out

    def vm_of(self, sid):
        found = [(vid, r) for vid, r in self.vms().items() if r["labels"].get("agentcore-local.session-id") == sid]
        assert len(found) == 1, (sid, found)
        return found[0]


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def imds_credentials(stack, sid, endpoint=None):
    """The IMDSv2 exchange an SDK in the guest makes, made by the fixture agent in session `sid`'s
    VM: through its own way to the emulator, or through `endpoint` (another VM's)."""
    got = stack.invoke(sid, {"action": "imds", **({"endpoint": endpoint} if endpoint else {})})
    return (got["role"], got["credentials"]) if "role" in got else (None, got["error"])
