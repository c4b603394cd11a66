"""The walkthroughs in examples/ run as written, with the real AWS CLI, against a fresh emulator."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Emulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator(tmp_path):
    emu = Emulator().start(tmp_path / "emulator.log")
    yield emu
    emu.stop()


@pytest.mark.parametrize("example, prompt", [("code-zip", "the zip flow"), ("container", "the container flow")])
def test_example_script_deploys_and_invokes(emulator, example, prompt):
    # The venv's python3 (with pip) and aws come first on PATH, as on a developer's machine.
    env = dict(os.environ, AWS_ENDPOINT_URL=emulator.url, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = subprocess.run(["bash", str(ROOT / "examples" / example / "run.sh")], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "READY\tNone" in lines, run.stdout
    assert f'"reply": "you said: hello from {prompt}"' in run.stdout, run.stdout


def test_strands_tool_loop_example(tmp_path):
    """examples/strands-tool-loop as its README says: the emulator started with the example's model
    script, then run.sh. The answer's count can only come from the tool running in the session."""
    script = ROOT / "examples" / "strands-tool-loop" / "model-script.json"
    emu = Emulator(extra_args=["--model-provider", f"script:{script}"]).start(tmp_path / "emulator.log")
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=emu.url, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        run = subprocess.run(["bash", str(ROOT / "examples" / "strands-tool-loop" / "run.sh")], env=env,
                             capture_output=True, text=True, timeout=1800)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert "READY\tNone" in lines, run.stdout
        assert '{"answer": "The sentence has 9 words.", "tool_calls": {"word_count": 1}}' in lines, run.stdout
        assert len([line for line in lines if line.startswith("ConverseStream ")]) == 2, run.stdout
    finally:
        emu.stop()
