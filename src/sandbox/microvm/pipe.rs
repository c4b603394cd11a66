//! The way a VPC runtime's VM reaches the emulator, and nothing else. Such a VM's user networking
//! runs with `restrict=on`: QEMU drops every connection its guest opens, except to the addresses of
//! its `guestfwd` rules. The one rule (`VPC_EMULATOR` in the guest) runs a command per connection
//! with the connection on its stdin and stdout: this process (`agentcore-local vm-pipe NAME`),
//! which joins it to the VM's relay, an abstract Unix socket only this VM's rule names
//! (`relay::run_pipe` checks the peer's user). QEMU starts the command detached (GLib reaps it
//! through an intermediate child), so the relay cannot tell it by its parent; the socket's name,
//! random per VM and kept in the VM's record, is what ties the connection to the VM.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

/// The abstract socket name of a VM's relay for a random `token`.
pub fn socket_name(token: &str) -> String {
    format!("agentcore-local-vm-{token}")
}

/// The relay's end: listening on the abstract socket `name` (inside the emulator's runtime).
pub fn listen(name: &str) -> std::io::Result<tokio::net::UnixListener> {
    let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(listener)
}

/// The `vm-pipe` end: connected to the relay listening on `name`.
pub fn connect(name: &str) -> std::io::Result<UnixStream> {
    UnixStream::connect_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)
}

/// Copies stdin to the relay named `name` and the relay's answer to stdout, until both ends close.
pub fn run(name: &str) -> std::io::Result<()> {
    let stream = connect(name)?;
    let mut to_relay = stream.try_clone()?;
    let upstream = std::thread::spawn(move || {
        let copied = copy_flushing(&mut std::io::stdin().lock(), &mut to_relay);
        // The guest closed its side: tell the relay, which then finishes the answer.
        let _ = to_relay.shutdown(Shutdown::Write);
        copied
    });
    let mut from_relay = stream;
    let answered = copy_flushing(&mut from_relay, &mut std::io::stdout().lock());
    // The emulator closed its side: the guest must see it (an HTTP/1.0 client reads until the
    // end), so its connection's write side is shut down now, while the guest may still send.
    // SAFETY: shutdown(2) on this process's own stdout; it fails harmlessly if that is no socket.
    unsafe {
        libc::shutdown(libc::STDOUT_FILENO, libc::SHUT_WR);
    }
    answered?;
    upstream.join().unwrap_or(Ok(()))
}

/// `std::io::copy`, flushing after every read (stdout is buffered; HTTP answers must not wait).
fn copy_flushing(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return to.flush(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
