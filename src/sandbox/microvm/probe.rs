//! The probe guest: the smallest guest that proves an accelerator runs a stock kernel here. It is
//! the kernel the backend boots plus an initramfs of a static busybox and an `/init` that prints a
//! marker and reboots (with `-no-reboot`, a reboot ends QEMU). `/dev/kvm` opening proves little:
//! nested hosts (this project's own CI machines, `kvm_pvm`) open it, and a stock guest kernel then
//! aborts (`failed to set MSR 0x10a`) or dies with `emulation failure`. So KVM counts only once a
//! probe guest has booted with it.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::host::Accel;

/// What the probe's init prints once userspace runs.
const MARKER: &str = "agentcore-local-probe-booted";
/// A KVM guest reaches userspace in well under a second; a host where it takes this long is not
/// one to run sessions on.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Boots `kernel` with `accel` and the probe initramfs (built under `work`); `Ok` with the time to
/// the marker, or why the guest did not boot, with its last console lines.
pub fn boots(
    qemu: &Path,
    kernel: &Path,
    busybox: &Path,
    accel: Accel,
    work: &Path,
    timeout: Duration,
) -> Result<Duration, String> {
    let root = work.join("probe-root");
    let initrd = work.join("probe.cpio");
    let console = work.join("probe-console.log");
    build_initrd(&root, busybox, &initrd).map_err(|e| format!("cannot build the probe guest's initramfs: {e}"))?;
    let accel_args: &[&str] = match accel {
        Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
        Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
    };
    let mut cmdline = "console=ttyS0 quiet reboot=t panic=-1 rdinit=/init".to_string();
    if accel == Accel::Tcg {
        // As for sessions: an emulated guest that calibrates its own clock stalls for seconds.
        if let Some(khz) = super::host::tsc_khz() {
            cmdline += &format!(" tsc_early_khz={khz} lpj={}", khz * 4);
        }
    }
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-M", "microvm"])
        .args(accel_args)
        .args(["-m", "128", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(&cmdline)
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let took = started.elapsed();
    let printed = std::fs::read_to_string(&console).unwrap_or_default();
    if printed.contains(MARKER) {
        return Ok(took);
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let tail: Vec<&str> = printed.lines().chain(stderr.lines()).filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
    let how = match status {
        None => format!("did not reach userspace within {} s", timeout.as_secs()),
        Some(s) => format!("stopped ({s}) before reaching userspace"),
    };
    Err(if tail.is_empty() { format!("a probe guest {how}") } else { format!("a probe guest {how}: {tail}") })
}

fn build_initrd(root: &Path, busybox: &Path, out: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    let init = root.join("init");
    // The initramfs has no /dev/console, so the init starts without output: it writes to the
    // serial console through devtmpfs.
    let script = format!(
        "#!/bin/busybox sh\n/bin/busybox mkdir -p /dev\n/bin/busybox mount -t devtmpfs devtmpfs /dev\n\
         /bin/busybox echo {MARKER} > /dev/ttyS0\n/bin/busybox reboot -f\n"
    );
    std::fs::write(&init, script)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    super::rootfs::write_cpio(root, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::microvm::host::Host;

    /// The host's QEMU, kernel and busybox, or `None` (printed) when the host lacks them
    /// (scripts/test installs them as root).
    fn tools() -> Option<(std::path::PathBuf, crate::sandbox::microvm::host::Kernel, std::path::PathBuf)> {
        let host = Host::detect();
        let missing = host.missing_message();
        match (host.qemu, host.kernel, host.busybox) {
            (Some(q), Some(k), Some(b)) => Some((q, k, b)),
            _ => {
                eprintln!("skipped: the microVM tools are missing ({missing})");
                None
            }
        }
    }

    #[test]
    fn the_probe_guest_boots_with_the_emulator_here() {
        let Some((qemu, kernel, busybox)) = tools() else { return };
        let work = tempfile::tempdir().unwrap();
        // The uncompressed kernel, as sessions boot it (decompressing under TCG costs seconds).
        let kernel = super::super::kernel::bootable(&kernel, work.path());
        let took = boots(&qemu, &kernel, &busybox, Accel::Tcg, work.path(), Duration::from_secs(120)).unwrap();
        assert!(took < Duration::from_secs(120));
    }

    #[test]
    fn a_guest_that_cannot_boot_is_told_with_qemus_reason() {
        let Some((qemu, _, busybox)) = tools() else { return };
        let work = tempfile::tempdir().unwrap();
        let kernel = work.path().join("not-a-kernel");
        std::fs::write(&kernel, b"nothing bootable").unwrap();
        let err = boots(&qemu, &kernel, &busybox, Accel::Tcg, work.path(), Duration::from_secs(30)).unwrap_err();
        assert!(err.starts_with("a probe guest stopped"), "{err}");
        assert!(err.contains("not-a-kernel") || err.to_lowercase().contains("kernel"), "{err}");
    }
}
