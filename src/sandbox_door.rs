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
use crate::sandbox::Egress;
use crate::sandbox::SandboxError;

/// Where sandboxes of each `Egress::ALL` kind reach the host, as the backend answered (start-up
/// asks while the database opens, before `open` binds).
pub type HostAddresses = Vec<Result<IpAddr, SandboxError>>;

const PORT_KEY: &str = "sandbox_listener_port";

/// Bind one listener per kind of sandbox network (`Egress`) the backend offers, all on one port:
/// the port used last time, else the main listener's, else any. A kind the backend cannot serve
/// gets none (with a message): its sessions then run without an AWS endpoint or credentials, or,
/// where the backend refuses them (a VM limited to the emulator), do not start.
pub async fn open(hosts: HostAddresses, store: &Store, main_port: u16) -> Vec<(Egress, TcpListener)> {
    let remembered: Option<u16> = store.read(|tx| tx.meta(PORT_KEY)).await.ok().flatten().and_then(|p| p.parse().ok());
    let mut listeners = Vec::new();
    let mut chosen = remembered;
    for (egress, host) in Egress::ALL.into_iter().zip(hosts) {
        let host: IpAddr = match host {
            Ok(a) => a,
            Err(e) if egress == Egress::Internet => {
                tracing::warn!(error = %e, "sandboxes cannot reach the emulator (no AWS endpoint or credentials in sessions)");
                continue;
            }
            Err(e) => {
                tracing::info!(error = %e, "sessions of VPC runtimes are not available");
                continue;
            }
        };
        let mut candidates: Vec<u16> = chosen.into_iter().chain([main_port, 0]).collect();
        candidates.dedup();
        let mut bound = None;
        for port in candidates {
            let Ok(listener) = TcpListener::bind(SocketAddr::new(host, port)).await else { continue };
            if let Ok(address) = listener.local_addr() {
                bound = Some((address, listener));
                break;
            }
        }
        let Some((address, listener)) = bound else {
            tracing::warn!(%host, "could not listen on the sandboxes' network; its sessions run without AWS access");
            continue;
        };
        chosen.get_or_insert(address.port());
        tracing::info!(url = %format!("http://{address}"), ?egress, "sandboxes reach the emulator here");
        listeners.push((egress, listener));
    }
    let Some(port) = listeners.first().and_then(|(_, l)| l.local_addr().ok()).map(|a| a.port()) else {
        return listeners;
    };
    if remembered != Some(port) {
        let text = port.to_string();
        if let Err(e) = store.write(move |tx| tx.set_meta(PORT_KEY, &text)).await {
            tracing::warn!(error = %e, "could not remember the sandbox listener's port");
        }
        if remembered.is_some() {
            tracing::warn!(
                was = ?remembered,
                now = port,
                "the sandbox listener's port changed; sessions re-adopted from before cannot reach the emulator"
            );
        }
    }
    listeners
}
