//! The host's way to ask a guest to stop: a virtio-serial port named `agentcore.control`, backed on
//! the host by two FIFOs in the VM's directory (`control.in`, `control.out`). The guest's init
//! waits for a line on that port and then sends SIGTERM to the agent, as `docker stop` does to a
//! container's process; the agent's last words reach the console like any output, the init powers
//! the VM off when the agent exits, and QEMU (`-no-reboot`) exits with it.
//!
//! Why FIFOs and not a UNIX socket: a socket's path is limited to 108 bytes and VM directories live
//! under whatever root the user chose; QEMU's `pipe` character device opens both FIFOs read-write,
//! so neither QEMU nor the host ever blocks on the other, and an emulator that re-adopts a VM after
//! a restart finds the same files.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The port's name as the guest sees it (`/sys/class/virtio-ports/*/name`).
pub const PORT_NAME: &str = "agentcore.control";
/// What the host writes to ask for a graceful stop.
const STOP: &[u8] = b"stop\n";

fn base(dir: &Path) -> PathBuf {
    dir.join("control")
}

/// Creates the FIFOs QEMU attaches the port to.
pub fn create(dir: &Path) -> Result<(), String> {
    for suffix in ["in", "out"] {
        let path = base(dir).with_extension(suffix);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
        // SAFETY: mkfifo(3) with a NUL-terminated path that outlives the call.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!("cannot create {}: {}", path.display(), std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// QEMU's arguments for the port.
pub fn qemu_args(dir: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("pipe,id=control,path={}", base(dir).display()),
        "-device".into(),
        // Port 0 is reserved for a console; ours is port 1.
        "virtio-serial-device,max_ports=2".into(),
        "-device".into(),
        format!("virtserialport,chardev=control,name={PORT_NAME}"),
    ]
}

/// Asks the guest to stop its agent; `false` when the request could not be delivered (QEMU is
/// gone, or the VM predates the control port).
pub fn request_stop(dir: &Path) -> bool {
    // Non-blocking: opening a FIFO for writing fails at once (ENXIO) when no QEMU holds it open.
    let opened =
        std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(base(dir).with_extension("in"));
    opened.and_then(|mut f| f.write_all(STOP)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_request_needs_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!request_stop(dir.path()), "no FIFO yet");
        create(dir.path()).unwrap();
        assert!(!request_stop(dir.path()), "no QEMU holds the FIFO open");
        // QEMU opens the FIFO read-write; so does this stand-in.
        let mut reader =
            std::fs::OpenOptions::new().read(true).write(true).open(dir.path().join("control.in")).unwrap();
        assert!(request_stop(dir.path()));
        let mut got = [0u8; 5];
        std::io::Read::read_exact(&mut reader, &mut got).unwrap();
        assert_eq!(&got, STOP);
        let args = qemu_args(dir.path()).join(" ");
        assert!(args.contains("pipe,id=control,path=") && args.contains("name=agentcore.control"), "{args}");
    }
}
