//! A VM's own way to the emulator (credentials, the AWS endpoint). QEMU's user networking makes
//! every connection a guest opens to the host come from 127.0.0.1, so the emulator could not tell
//! VMs apart: each VM gets a port on 127.0.0.1 (its guest reaches it at 10.0.2.2:PORT) that is
//! relayed to the emulator's sandbox listener from a loopback address of the VM's own, by which the
//! emulator knows the session (and its role credentials).
//!
//! Every guest reaches every port on the host's 127.0.0.1 through 10.0.2.2, so another VM could
//! open this port too and be taken for this one. A connection is therefore relayed only when its
//! other end is a socket of this VM's QEMU process (the process that carries its guest's
//! connections): looked up in /proc, by the connection's two addresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// Relays every connection this VM's guest opens to `listener` to the emulator's listener `door`,
/// from the VM's own address `source`; connections from anything else are closed unanswered.
pub async fn run(listener: tokio::net::TcpListener, qemu_pid: u32, source: Ipv4Addr, door: SocketAddr) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(local) = inbound.local_addr() else { continue };
        tokio::spawn(async move {
            let owned = tokio::task::spawn_blocking(move || opened_by(qemu_pid, peer, local)).await.unwrap_or(false);
            if !owned {
                tracing::warn!(%source, %peer, "refused a connection to a VM's way to the emulator: it does not come from that VM");
                return;
            }
            relay_one(inbound, source, door).await;
        });
    }
}

/// Relays every connection to a VPC VM's pipe socket (`pipe`) to the emulator's listener `door`,
/// from the VM's own address `source`. The socket is abstract (no file to protect), so a
/// connection from another user is refused; this user's processes can read the VM's record anyway.
pub async fn run_pipe(listener: tokio::net::UnixListener, source: Ipv4Addr, door: SocketAddr) {
    // SAFETY: geteuid has no side effects.
    let own_uid = unsafe { libc::geteuid() };
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if inbound.peer_cred().ok().map(|c| c.uid()) != Some(own_uid) {
            tracing::warn!(%source, "refused a connection to a VM's way to the emulator: another user opened it");
            continue;
        }
        tokio::spawn(relay_one(inbound, source, door));
    }
}

/// One accepted connection, relayed both ways to `door` from `source` until either side ends.
async fn relay_one(mut inbound: impl AsyncRead + AsyncWrite + Unpin, source: Ipv4Addr, door: SocketAddr) {
    let connect = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        socket.connect(door).await
    };
    match connect.await {
        Ok(mut outbound) => {
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
        Err(e) => tracing::debug!(%source, error = %e, "cannot relay a VM's connection to the emulator"),
    }
}

/// Whether the connection accepted at `local` from `peer` was opened by process `pid`: the
/// socket whose own address is `peer` and whose remote address is `local` (both IPv4, on this
/// host's network namespace, which QEMU shares) is one of the process's open files.
pub fn opened_by(pid: u32, peer: SocketAddr, local: SocketAddr) -> bool {
    opened_by_any(&[pid], peer, local)
}

/// Like `opened_by`, for any of `pids` (the table is read once).
pub fn opened_by_any(pids: &[u32], peer: SocketAddr, local: SocketAddr) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else { return false };
    let Some(inode) = socket_inode(&table, peer, local) else { return false };
    let wanted = format!("socket:[{inode}]");
    pids.iter().any(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
        fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str()))
    })
}

/// The inode of the socket with local address `own` and remote address `remote` in a
/// /proc/net/tcp table (addresses there are the raw network-order words printed as hex).
fn socket_inode(table: &str, own: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let (SocketAddr::V4(own), SocketAddr::V4(remote)) = (own, remote) else { return None };
    let hex = |a: std::net::SocketAddrV4| format!("{:08X}:{:04X}", u32::from_ne_bytes(a.ip().octets()), a.port());
    let (own, remote) = (hex(own), hex(remote));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&own.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_found_by_its_two_addresses() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 20 4 30 10 -1\n";
        let own: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(socket_inode(table, own, remote), Some(4242));
        assert_eq!(socket_inode(table, remote, own), None);
    }

    #[tokio::test]
    async fn a_pipe_is_relayed_from_the_vms_own_address() {
        use super::super::pipe;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let door = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let name = pipe::socket_name(&format!("test-{}", std::process::id()));
        let source = Ipv4Addr::new(127, 0, 0, 5);
        let relay = tokio::spawn(run_pipe(pipe::listen(&name).unwrap(), source, door.local_addr().unwrap()));
        let mut guest = tokio::net::UnixStream::from_std({
            let s = pipe::connect(&name).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .unwrap();
        guest.write_all(b"ping").await.unwrap();
        let (mut emulator, from) = door.accept().await.unwrap();
        assert_eq!(from.ip(), source, "the emulator sees the VM's own address");
        let mut got = [0u8; 4];
        emulator.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        emulator.write_all(b"pong").await.unwrap();
        guest.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        relay.abort();
    }

    #[tokio::test]
    async fn only_the_process_that_opened_a_connection_owns_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(opened_by(std::process::id(), peer, local), "this process opened it");
        // pid 1 (the init, or the container's first process) did not.
        assert!(!opened_by(1, peer, local));
        // No such connection at all.
        let elsewhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!opened_by(std::process::id(), elsewhere, local));
    }
}
