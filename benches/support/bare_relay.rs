//! The relay floor: what any relay between the client and the agent costs on this machine, with
//! no HTTP parsing, signature or session lookup at all. Threads of their own (each a one-thread
//! runtime, as in a separate process) accept on loopback and copy bytes both ways between each
//! connection and a new one to the agent. The emulator's warm invoke overhead is measured against
//! the direct call and against this.

use std::net::SocketAddr;

/// Start a bare relay to `target`; returns the loopback address it accepts on. It lives as long
/// as the benchmark process.
pub fn start(target: SocketAddr) -> SocketAddr {
    start_many(&[target], 1)[0]
}

/// Bare relays to each of `targets`, served by `threads` threads (as the emulator serves its
/// connections on one thread per CPU); returns the address of each, in order.
pub fn start_many(targets: &[SocketAddr], threads: usize) -> Vec<SocketAddr> {
    let mut per_thread: Vec<Vec<(std::net::TcpListener, SocketAddr)>> = (0..threads).map(|_| Vec::new()).collect();
    let mut addresses = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the bare relay");
        addresses.push(listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        per_thread[i % threads].push((listener, *target));
    }
    for listeners in per_thread {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let accepting: Vec<_> = listeners
                    .into_iter()
                    .map(|(listener, target)| tokio::spawn(relay_each(listener, target)))
                    .collect();
                for a in accepting {
                    let _ = a.await;
                }
            });
        });
    }
    addresses
}

async fn relay_each(listener: std::net::TcpListener, target: SocketAddr) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}
