//! How the emulator reaches one sandbox's agent: an HTTP client of the sandbox's own (its own
//! connection pool) whose every new connection is checked to end in that sandbox.
//!
//! Why the check: a Docker sandbox may be reached at its bridge address, and Docker hands a
//! stopped container's address to the next container it starts, at once (with the same MAC,
//! which Docker derives from the address). Between an agent's crash and the emulator noticing
//! it, a new connection to the old address would reach another session's agent, and deliver this
//! session's request (payload, user id, workload token) to it. So after connecting, the client
//! looks for the connection in the socket table of the sandbox's network namespace
//! (`/proc/<pid>/net/tcp`, readable by any user), and refuses one found elsewhere before a byte
//! is sent. A sandbox that stopped has no such table left: its connections are refused too.

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
use crate::sandbox::SandboxHandle;

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
        let checked = CheckedConnector { http: connector, owner: sandbox.address.zip(sandbox.netns_pid) };
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
/// connection that is not one of the sandbox's.
#[derive(Clone)]
struct CheckedConnector {
    http: HttpConnector,
    /// The sandbox's address and a process of it (by host pid); `None` when it is reached through
    /// a port forwarded on the host (published, or the microVM's), which no other sandbox takes.
    owner: Option<(IpAddr, u32)>,
}

/// A connection that ended in another network namespace than the sandbox's.
#[derive(Debug, thiserror::Error)]
#[error(
    "{address} is no longer this session's sandbox: the connection from {local} is not one of the sandbox's (it has stopped, and Docker gave its address to another container)"
)]
struct NotTheSandbox {
    address: SocketAddr,
    local: SocketAddr,
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
            if let Some((ip, pid)) = owner {
                let (peer, local) = (stream.inner().peer_addr()?, stream.inner().local_addr()?);
                if peer.ip() == ip && !in_namespace_of(pid, peer, local) {
                    // Once more, a moment later: the agent's side may still be taking the
                    // handshake's last packet (the table lists both states; this is insurance).
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    if !in_namespace_of(pid, peer, local) {
                        return Err(Box::new(NotTheSandbox { address: peer, local }) as BoxError);
                    }
                }
            }
            Ok(stream)
        })
    }
}

/// Is the connection `remote` -> `agent` (as the agent's side sees it: local `agent`, remote
/// `remote`) in the socket table of `pid`'s network namespace? An agent listening on `::` holds
/// IPv4 connections in the IPv6 table, as IPv4-mapped addresses.
fn in_namespace_of(pid: u32, agent: SocketAddr, remote: SocketAddr) -> bool {
    ["tcp", "tcp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
            .is_ok_and(|text| holds_connection(&text, agent, remote))
    })
}

/// Does a `/proc/net/tcp` or `tcp6` table hold a socket with local address `local` and remote
/// address `remote` (IPv4)? Addresses there are hexadecimal 32-bit words as the kernel holds
/// them (network byte order read natively) and ports hexadecimal numbers.
fn holds_connection(table: &str, local: SocketAddr, remote: SocketAddr) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(l), Some(r)) = (fields.next(), fields.next()) else { return false };
        parse_address(l) == Some(local) && parse_address(r) == Some(remote)
    })
}

/// `0300A8C0:1F90` (tcp) or `0000000000000000FFFF00000300A8C0:1F90` (tcp6, IPv4-mapped) as an
/// IPv4 socket address; `None` for anything else.
fn parse_address(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| address.get(i * 8..i * 8 + 8).and_then(|w| u32::from_str_radix(w, 16).ok());
    let v4 = match address.len() {
        8 => word(0)?,
        32 if word(0)? == 0 && word(1)? == 0 && word(2)? == u32::from_ne_bytes([0, 0, 0xff, 0xff]) => word(3)?,
        _ => return None,
    };
    Some(SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::from(v4.to_ne_bytes())), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read off a container on a Docker bridge (x86-64) with a connection from the host open.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 577329 1 0 100 0 0 10 0
   2: 020013AC:1F90 010013AC:D38E 01 00000000:00000000 00:00000000 00000000     0        0 577330 1 0 20 0 0 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue
   0: 0000000000000000FFFF0000020013AC:1F90 0000000000000000FFFF0000010013AC:D38E 01 00000000:00000000
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_namespaces_socket_table_says_which_connections_are_its_own() {
        let (agent, host) = (addr("172.19.0.2:8080"), addr("172.19.0.1:54158"));
        assert!(holds_connection(TCP, agent, host));
        assert!(holds_connection(TCP6, agent, host), "IPv4-mapped, of an agent listening on ::");
        assert!(!holds_connection(TCP, agent, addr("172.19.0.1:54159")), "another connection");
        assert!(!holds_connection(TCP, addr("172.19.0.3:8080"), host), "another address");
        assert!(!holds_connection("", agent, host));
        assert_eq!(parse_address("0100007F:0050"), Some(addr("127.0.0.1:80")));
        assert_eq!(parse_address("00000000000000000000000001000000:0050"), None, "IPv6 proper");
        assert_eq!(parse_address("zz:0050"), None);
    }

    #[tokio::test]
    async fn a_connection_that_is_not_one_of_the_sandboxs_is_refused() {
        use tower_service::Service;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let uri: http::Uri = format!("http://{addr}/ping").parse().unwrap();
        // This process's namespace holds the connection; a process that is gone holds none.
        let ours = std::process::id();
        let mut checked = CheckedConnector { http: HttpConnector::new(), owner: Some((addr.ip(), ours)) };
        assert!(checked.call(uri.clone()).await.is_ok());
        let gone = u32::MAX;
        let mut stopped = CheckedConnector { http: HttpConnector::new(), owner: Some((addr.ip(), gone)) };
        let refused = stopped.call(uri.clone()).await.expect_err("refused");
        assert!(refused.to_string().contains("is no longer this session's sandbox"), "{refused}");
        // A port forwarded on the host is not checked.
        let mut forwarded = CheckedConnector { http: HttpConnector::new(), owner: None };
        assert!(forwarded.call(uri).await.is_ok());
    }
}
