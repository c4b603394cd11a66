"""The release link's hot-text order (tools/hot-text/cc, ARCHITECTURE.md "Release builds"): rustc
links a small program through the wrapper, as cargo does the emulator, and the listed functions
come first in .text, in the list's order, a generic function's listed instance apart from its other
instances; a link that is not a release build of the emulator, or with the order turned off, keeps
the compiler's order; and every one of those programs runs."""
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "tools" / "hot-text" / "cc"

PROGRAM = """
#[inline(never)]
pub fn first_in_file() -> u64 {
    std::hint::black_box(1)
}
#[inline(never)]
pub fn generic<T: Default + Into<u64>>() -> u64 {
    std::hint::black_box(T::default().into()) + std::mem::size_of::<T>() as u64
}
#[inline(never)]
pub fn last_in_file() -> u64 {
    std::hint::black_box(3)
}
fn main() {
    println!("{}", first_in_file() + generic::<u8>() + generic::<u32>() + last_in_file());
}
"""
# The wrapper's keys: demangled v0 names without crate hashes.
LISTED = ["hot::last_in_file", "hot::generic::<u32>"]
OURS = {"hot::first_in_file", "hot::generic::<u8>", "hot::generic::<u32>", "hot::last_in_file", "hot::main"}

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="the wrapper is the linker on x86_64 Linux only (.cargo/config.toml)")


def link(tmp_path, output, **env):
    """Build PROGRAM with rustc linking through the wrapper and run it; the program's own functions
    in address order, and the first two functions of .text (hash-free names)."""
    source = tmp_path / "hot.rs"
    source.write_text(PROGRAM)
    listed = tmp_path / "functions.txt"
    listed.write_text("".join(name + "\n" for name in LISTED))
    output.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["rustc", "--edition", "2021", "-C", "opt-level=2", "-C", "symbol-mangling-version=v0",
         "-C", f"linker={WRAPPER}", "--crate-name", "hot", "-o", str(output), str(source)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("AGENTCORE_LOCAL_HOT_TEXT")},
             "AGENTCORE_LOCAL_HOT_TEXT_LIST": str(listed), **env},
        check=True, timeout=300)
    assert subprocess.run([str(output)], capture_output=True, text=True, check=True).stdout == "9\n"
    symbols = subprocess.run(["nm", "-n", "--defined-only", str(output)], capture_output=True, text=True,
                             check=True).stdout
    text = [line.split(maxsplit=2)[2] for line in symbols.splitlines() if line.split()[1] in ("t", "T")]
    demangled = subprocess.run(["c++filt"], input="\n".join(text), capture_output=True, text=True,
                               check=True).stdout.splitlines()
    names = [re.sub(r"\[[0-9a-f]{6,}\]", "", n) for n in demangled]
    return [n for n in names if n in OURS], names[:2]


@pytest.fixture(autouse=True)
def tools():
    for tool in ("rustc", "nm", "c++filt"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: the release link needs it (binutils, the Rust toolchain)")


def test_listed_functions_come_first_in_a_release_link(tmp_path):
    ours, first = link(tmp_path, tmp_path / "target" / "release" / "deps" / "agentcore_local-0123456789abcdef")
    assert first == LISTED
    assert ours[:2] == LISTED and set(ours[2:]) == OURS - set(LISTED)


def test_other_links_and_a_turned_off_order_keep_the_compilers_order(tmp_path):
    ordered, _ = link(tmp_path, tmp_path / "target" / "release" / "deps" / "agentcore_local-0123456789abcdef")
    plain, first = link(tmp_path, tmp_path / "target" / "debug" / "deps" / "agentcore_local-0123456789abcdef")
    # rustc puts the two instances side by side, the listed one second.
    assert plain != ordered and first != LISTED, plain
    assert plain.index("hot::generic::<u8>") < plain.index("hot::generic::<u32>"), plain
    off, first = link(tmp_path, tmp_path / "target" / "release" / "deps" / "agentcore_local-0123456789abcdef",
                      AGENTCORE_LOCAL_HOT_TEXT="off")
    assert off == plain and first != LISTED
