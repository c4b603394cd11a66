//! The relay floor: what any relay between the client and the agent costs on this machine, with
//! no HTTP parsing, signature or session lookup at all. A thread of its own (a one-thread runtime,
//! as a separate process would be) accepts on loopback and copies bytes both ways between each
//! connection and a new one to the agent. The emulator's warm invoke overhead is measured against
//! the direct call and against this.

use std::net::SocketAddr;

/// Start a bare relay to `target`; returns the loopback address it accepts on. It lives as long
/// as the benchmark process.
pub fn start(target: SocketAddr) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the bare relay");
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
    });
    addr
}
