//! How the emulator reaches one sandbox's agent: an HTTP client of the sandbox's own (its own
//! connection pool) whose every new connection is checked to end at that sandbox.
//!
//! Why the check: a Docker sandbox may be reached at its bridge address, and Docker hands a
//! stopped container's address to the next container it starts, at once. Between an agent's
//! crash and the emulator noticing it, a new connection to the old address would reach another
//! session's agent, and deliver this session's request (payload, user id, workload token) to it.
//! Each such sandbox has a MAC address of its own (`SandboxHandle::mac`); after connecting, the
//! host's neighbour table says which interface answered. A connection that reached another is
//! refused before a byte is sent.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::kernel::response::BoxError;
use crate::sandbox::{MacAddress, SandboxHandle};

/// How long a connection to an agent may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One sandbox's HTTP client. Cheap to clone (the pool is shared between clones).
#[derive(Clone)]
pub struct AgentClient {
    http: Client<CheckedConnector, Full<Bytes>>,
}

impl AgentClient {
    pub fn for_sandbox(sandbox: &SandboxHandle) -> AgentClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // A sandbox's own address answers a connect at once, or refuses it, while the sandbox
        // runs; after it stopped, nobody answers there and a connect would wait out the
        // kernel's retries (a minute and more) before the caller learns the session is gone.
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let checked = CheckedConnector { http: connector, owner: sandbox.address.zip(sandbox.mac) };
        // A pool timer, so that idle connections are reaped by time and not only when the same
        // host is asked for again (a quiet session's never would be).
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(checked);
        AgentClient { http }
    }

    pub fn request(&self, request: http::Request<Full<Bytes>>) -> ResponseFuture {
        self.http.request(request)
    }
}

/// Connects as hyper's `HttpConnector` does; then, to the sandbox's own address, refuses a
/// connection whose other end is not the sandbox's interface.
#[derive(Clone)]
struct CheckedConnector {
    http: HttpConnector,
    /// The sandbox's address and its interface's MAC; `None` when it is reached through a port
    /// forwarded on the host (published or the microVM's), which no other sandbox can take over.
    owner: Option<(IpAddr, MacAddress)>,
}

/// A connection that reached another interface than the sandbox's.
#[derive(Debug, thiserror::Error)]
#[error(
    "{address} is no longer this session's sandbox (the interface answering there is {found}, the sandbox's was {expected}): the sandbox has stopped"
)]
struct NotTheSandbox {
    address: SocketAddr,
    found: String,
    expected: MacAddress,
}

impl tower_service::Service<http::Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let owner = self.owner;
        Box::pin(async move {
            let stream = connecting.await?;
            if let Some((ip, expected)) = owner {
                let peer = stream.inner().peer_addr()?;
                if peer.ip() == ip {
                    // The connect just resolved the address, so the table holds who answered.
                    let found = neighbour_mac(ip, &std::fs::read_to_string("/proc/net/arp").unwrap_or_default());
                    if found != Some(expected) {
                        let found = found.map_or_else(|| "unknown".to_string(), |m| m.to_string());
                        return Err(Box::new(NotTheSandbox { address: peer, found, expected }) as BoxError);
                    }
                }
            }
            Ok(stream)
        })
    }
}

/// The MAC address the host's neighbour table (`/proc/net/arp`'s text) holds for `ip`, if the
/// entry is complete.
fn neighbour_mac(ip: IpAddr, arp_table: &str) -> Option<MacAddress> {
    const COMPLETE: u32 = 0x2;
    arp_table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [address, _hw_type, flags, mac, ..] = fields[..] else { return None };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        (address.parse::<IpAddr>().ok()? == ip && flags & COMPLETE != 0).then(|| mac.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "IP address       HW type     Flags       HW address            Mask     Device
172.19.0.2       0x1         0x2         02:5a:11:22:33:44     *        br-9c6406ad9f1b
172.19.0.3       0x1         0x0         00:00:00:00:00:00     *        br-9c6406ad9f1b
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
";

    #[test]
    fn the_neighbour_table_says_which_interface_holds_an_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(neighbour_mac(ip("172.19.0.2"), TABLE), Some("02:5a:11:22:33:44".parse().unwrap()));
        assert_eq!(neighbour_mac(ip("192.0.2.1"), TABLE), Some("02:fc:00:00:00:05".parse().unwrap()));
        // An incomplete entry (nobody answered) and an unknown address name nobody.
        assert_eq!(neighbour_mac(ip("172.19.0.3"), TABLE), None);
        assert_eq!(neighbour_mac(ip("172.19.0.9"), TABLE), None);
        assert_eq!(neighbour_mac(ip("172.19.0.2"), ""), None);
    }

    #[tokio::test]
    async fn a_connection_that_reached_another_interface_than_the_sandboxs_is_refused() {
        use tower_service::Service;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let uri: http::Uri = format!("http://{addr}/ping").parse().unwrap();
        // Loopback has no neighbour entry: whatever answers there is not the sandbox's interface.
        let expected = MacAddress([0x02, 0x5a, 0x11, 0x22, 0x33, 0x44]);
        let mut checked = CheckedConnector { http: HttpConnector::new(), owner: Some((addr.ip(), expected)) };
        let refused = checked.call(uri.clone()).await.expect_err("refused");
        assert!(refused.to_string().contains("is no longer this session's sandbox"), "{refused}");
        assert!(refused.to_string().contains("02:5a:11:22:33:44"), "{refused}");
        // A port forwarded on the host (no MAC to check), and another address than the sandbox's.
        let mut forwarded = CheckedConnector { http: HttpConnector::new(), owner: None };
        assert!(forwarded.call(uri.clone()).await.is_ok());
        let elsewhere: IpAddr = "10.255.255.1".parse().unwrap();
        let mut other = CheckedConnector { http: HttpConnector::new(), owner: Some((elsewhere, expected)) };
        assert!(other.call(uri).await.is_ok());
    }
}
