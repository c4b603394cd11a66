//! The emulator as sandboxes reach it: one more listener, on the address the sandbox backend says
//! sandboxes reach the host at (Docker: the sandbox network's gateway), never on every interface.
//! It serves the same front door (every request still SigV4-verified) plus the metadata service,
//! and marks each request with the sandbox address it came from.
//!
//! Its port is remembered in the store: sandboxes re-adopted after a restart have the URL in their
//! environment, so the next start binds the same port again when it can.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

use crate::kernel::store::Store;
use crate::sessions::Sessions;

const PORT_KEY: &str = "sandbox_listener_port";

/// Bind the sandboxes' listener: the port used last time, else the main listener's, else any.
/// `None` (with a warning) when the backend has no address for the host: sessions then run
/// without an AWS endpoint or credentials.
pub async fn open(sessions: &Sessions, store: &Store, main_port: u16) -> Option<TcpListener> {
    let host: IpAddr = match sessions.host_address().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "sandboxes cannot reach the emulator (no AWS endpoint or credentials in sessions)");
            return None;
        }
    };
    let remembered: Option<u16> = store.read(|tx| tx.meta(PORT_KEY)).await.ok().flatten().and_then(|p| p.parse().ok());
    let mut candidates: Vec<u16> = remembered.into_iter().chain([main_port, 0]).collect();
    candidates.dedup();
    for port in candidates {
        let Ok(listener) = TcpListener::bind(SocketAddr::new(host, port)).await else { continue };
        let Ok(bound) = listener.local_addr() else { continue };
        if remembered != Some(bound.port()) {
            let port = bound.port().to_string();
            if let Err(e) = store.write(move |tx| tx.set_meta(PORT_KEY, &port)).await {
                tracing::warn!(error = %e, "could not remember the sandbox listener's port");
            }
            if remembered.is_some() {
                tracing::warn!(
                    was = ?remembered,
                    now = bound.port(),
                    "the sandbox listener's port changed; sessions re-adopted from before cannot reach the emulator"
                );
            }
        }
        tracing::info!(url = %format!("http://{bound}"), "sandboxes reach the emulator here");
        return Some(listener);
    }
    tracing::warn!(%host, "could not listen on the sandboxes' network; sessions run without AWS access");
    None
}
