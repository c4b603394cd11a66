"""The README runs as written: its ```sh blocks (and its ```python blocks), top to bottom, in one bash
shell, with the real AWS CLI, against a fresh emulator.

A block is left out only when the line just before its fence says why:
`<!-- readme-test: skip (reason) -->`. The shell is the reader's: the binary on PATH as
`agentcore-local`, the venv's `aws`, `pip` and `python3`, no AWS variables or config of the developer's
(HOME is a fresh directory), working directory a scratch copy of the repository's `examples/` (the
README's relative paths resolve, and the files it writes land there)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Emulator

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("AGENTCORE_LOCAL_BIN", ROOT / "target" / "debug" / "agentcore-local"))
README_URL = "http://127.0.0.1:4599"
SKIP = re.compile(r"^<!-- readme-test: skip \((.+)\) -->$")
MARK = "::readme-block::"


def readme_blocks(text):
    """(line number, language, code, skip reason or None) of every ```sh and ```python block."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w+)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(1)
        end = lines.index("```", start + 1)
        skip = SKIP.match(lines[start - 1]) if start else None
        if lang in ("sh", "python"):
            blocks.append((start + 1, lang, "\n".join(lines[start + 1:end]), skip.group(1) if skip else None))
        i = end + 1
    return blocks


def script_of(blocks, url):
    """One bash script: each block announced by a marker line, python blocks fed to python3, and
    the failing command named (ERR trap)."""
    parts = ['trap \'echo "readme-test: failed (exit $?): $BASH_COMMAND" >&2\' ERR']
    for n, (line, lang, code, _) in enumerate(blocks):
        code = code.replace(README_URL, url)
        parts.append(f"echo '{MARK}{n}'")
        if lang == "python":
            parts.append(f"python3 - <<'README_PYTHON'\n{code}\nREADME_PYTHON")
        else:
            parts.append(code)
    return "\n".join(parts) + "\n"


def reader_env(home, bin_dir):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "AGENTCORE_LOCAL_", "PYTHON", "VIRTUAL_ENV"))}
    # pip's downloads stay shared with the developer's cache (so the zip section also runs offline
    # once they are cached); nothing else of the developer's home is visible.
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.update(HOME=str(home), PATH=f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    return env


def section(output, n):
    """Block n's output (stdout and stderr): from its marker to the next block's."""
    after = output.split(f"{MARK}{n}\n")[1:]
    return re.split(rf"{MARK}{n + 1}$", f"{MARK}{n}\n".join(after), flags=re.M)[0] if after else output


def test_readme_blocks_run_in_order(tmp_path):
    blocks = readme_blocks((ROOT / "README.md").read_text())
    runnable = [b for b in blocks if b[3] is None]
    assert runnable and any(README_URL in code for _, _, code, _ in runnable), \
        "the README's first runnable block should export AWS_ENDPOINT_URL=" + README_URL

    bin_dir, home, work = tmp_path / "bin", tmp_path / "home", tmp_path / "work"
    bin_dir.mkdir()
    home.mkdir()
    (bin_dir / "agentcore-local").symlink_to(BINARY.resolve())
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))

    emu = Emulator(data_dir=tmp_path / "data").start(tmp_path / "emulator.log")
    try:
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script_of(runnable, emu.url)],
                             cwd=work, env=reader_env(home, bin_dir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=1800)
    finally:
        emu.stop()
    output = run.stdout
    if run.returncode != 0:
        reached = [int(m) for m in re.findall(rf"{MARK}(\d+)$", output, re.M)]  # a block's last line may lack its newline
        n = reached[-1] if reached else 0
        line, lang, code, _ = runnable[n]
        raise AssertionError(
            f"README block at line {line} ({lang}) failed with exit {run.returncode}:\n{code}\n"
            f"--- its output (stdout and stderr) ---\n{section(output, n)}\n"
            f"--- emulator log (tail) ---\n{emu.log()[-4000:]}")

    # What the blocks show a reader actually happened: the image, zip and OAuth agents answered,
    # the memory fact was extracted and found, the echo model answered.
    assert output.count('"reply": "you said: hi"') >= 3, output
    assert "you said: hello from the container flow" in output, output
    assert "Lisbon" in section(output, next(
        i for i, b in enumerate(runnable) if "retrieve-memory-records" in b[2])), output
    assert '"text": "Hello"' in output, output
    assert "dependency resolver" not in output, output  # pip's alarming (and here harmless) ERROR
