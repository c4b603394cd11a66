//! A container's CPU and memory read straight from its cgroup files, when the emulator runs on the
//! Docker host (the usual case: sandboxes publish their ports on this host's loopback).
//!
//! Why not only the Docker API: a stats call goes through the daemon, which on a loaded machine
//! takes hundreds of milliseconds, so a session that lives less than that (an agent killed for
//! memory on its second request) was never sampled and the cost meter showed nothing. Reading
//! the files takes microseconds. Where they are not visible (Docker Desktop, a remote daemon, a
//! rootless daemon's own cgroup tree) the caller falls back to the API.
//!
//! Layouts read (Docker's cgroupfs and systemd drivers, cgroup v2 and v1):
//! - v2: `<root>/docker/<id>/` or `<root>/system.slice/docker-<id>.scope/`, with `cpu.stat`
//!   (`usage_usec`), `memory.current` and `memory.peak` (Linux 5.19+; absent before).
//! - v1: the same two names under `<root>/cpuacct/` (`cpuacct.usage`, ns) and `<root>/memory/`
//!   (`memory.usage_in_bytes`, `memory.max_usage_in_bytes`).

use std::path::{Path, PathBuf};

use super::SandboxStats;

/// Where the host's cgroup hierarchy is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The container's directory under one hierarchy, for either cgroup driver.
fn container_dir(hierarchy: &Path, id: &str) -> Option<PathBuf> {
    [hierarchy.join("docker").join(id), hierarchy.join("system.slice").join(format!("docker-{id}.scope"))]
        .into_iter()
        .find(|d| d.is_dir())
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `usage_usec` from a v2 `cpu.stat`, in nanoseconds.
fn v2_cpu_ns(cpu_stat: &str) -> Option<u64> {
    let usec = cpu_stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse::<u64>().ok()?;
    Some(usec.saturating_mul(1000))
}

/// The container's usage from the cgroup files under `root`; `None` if they are not there (the
/// container is gone, or its cgroups are not visible from here).
pub fn read(root: &Path, id: &str) -> Option<SandboxStats> {
    if let Some(dir) = container_dir(root, id).filter(|d| d.join("cpu.stat").is_file()) {
        let cpu_ns = v2_cpu_ns(&std::fs::read_to_string(dir.join("cpu.stat")).ok()?)?;
        let memory_bytes = read_u64(&dir.join("memory.current"))?;
        let peak = read_u64(&dir.join("memory.peak")).unwrap_or(0);
        return Some(SandboxStats { cpu_ns, memory_bytes, memory_peak_bytes: peak.max(memory_bytes) });
    }
    let cpu_ns = read_u64(&container_dir(&root.join("cpuacct"), id)?.join("cpuacct.usage"))?;
    let memory = container_dir(&root.join("memory"), id)?;
    let memory_bytes = read_u64(&memory.join("memory.usage_in_bytes"))?;
    let peak = read_u64(&memory.join("memory.max_usage_in_bytes")).unwrap_or(0);
    Some(SandboxStats { cpu_ns, memory_bytes, memory_peak_bytes: peak.max(memory_bytes) })
}

/// `read` on this host's cgroup mount.
pub fn read_host(id: &str) -> Option<SandboxStats> {
    // A container id is hex; anything else must not become a path.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    read(Path::new(CGROUP_ROOT), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: PathBuf, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn v2_files_of_the_systemd_driver_are_read() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("system.slice/docker-abc123.scope");
        write(dir.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n");
        write(dir.join("memory.current"), "4096\n");
        write(dir.join("memory.peak"), "8192\n");
        let stats = read(root.path(), "abc123").unwrap();
        assert_eq!(stats, SandboxStats { cpu_ns: 2_500_000, memory_bytes: 4096, memory_peak_bytes: 8192 });
    }

    #[test]
    fn v1_files_of_the_cgroupfs_driver_are_read_and_a_missing_peak_is_the_current_use() {
        let root = tempfile::tempdir().unwrap();
        write(root.path().join("cpuacct/docker/abc123/cpuacct.usage"), "123456789\n");
        write(root.path().join("memory/docker/abc123/memory.usage_in_bytes"), "65536\n");
        let stats = read(root.path(), "abc123").unwrap();
        assert_eq!(stats, SandboxStats { cpu_ns: 123_456_789, memory_bytes: 65536, memory_peak_bytes: 65536 });
    }

    #[test]
    fn a_container_without_cgroup_files_here_is_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read(root.path(), "abc123"), None);
        assert_eq!(read_host("../../etc"), None);
    }
}
