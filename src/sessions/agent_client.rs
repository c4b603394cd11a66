//! How the emulator reaches one sandbox's agent: an HTTP client of the sandbox's own (its own
//! connection pool) whose every new connection is checked to end in that sandbox.
//!
//! Why the check: a Docker sandbox may be reached at its bridge address, and Docker hands a
//! stopped container's address to the next container it starts, at once (with the same MAC,
//! which Docker derives from the address). Between an agent's crash and the emulator noticing
//! it, a new connection to the old address would reach another session's agent, and deliver this
//! session's request (payload, user id, workload token) to it. So after connecting, the client
//! checks that the sandbox's network namespace still holds the address (`/proc/<pid>/net/fib_trie`,
//! readable by any user): while it does, Docker gives the address to no other container on that
//! network, so the connection reached the sandbox. A sandbox that stopped, or let go of its
//! address, fails the check and its connection is refused before a byte is sent. (The namespace's
//! socket table would name the connection itself, but reading it walks the host's whole TCP hash
//! table: about 5 ms here, against 30 us for the address table.)

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

/// A connection to an address the sandbox no longer holds.
#[derive(Debug, thiserror::Error)]
#[error(
    "{address} is no longer this session's sandbox: the sandbox does not hold that address any more (it has stopped, or Docker gave its address to another container)"
)]
struct NotTheSandbox {
    address: SocketAddr,
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
                let peer = stream.inner().peer_addr()?;
                // Checked after the connection is made: had the address changed hands before, the
                // sandbox would not hold it now.
                if peer.ip() == ip && !namespace_holds(pid, ip) {
                    return Err(Box::new(NotTheSandbox { address: peer }) as BoxError);
                }
            }
            Ok(stream)
        })
    }
}

/// Does `pid`'s network namespace hold `ip` as one of its own addresses? False once the process
/// is gone.
fn namespace_holds(pid: u32, ip: IpAddr) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).is_ok_and(|trie| holds_local(&trie, ip))
}

/// Does a `/proc/net/fib_trie` text list `ip` as a local host address (a leaf `|-- ip` with a
/// `/32 host LOCAL` entry)?
fn holds_local(trie: &str, ip: IpAddr) -> bool {
    let mut leaf: Option<IpAddr> = None;
    trie.lines().map(str::trim).any(|line| {
        if let Some(address) = line.strip_prefix("|-- ") {
            leaf = address.parse().ok();
            return false;
        }
        leaf == Some(ip) && line.starts_with("/32 host LOCAL")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read off a container on a Docker bridge (its Main table; Local lists the same leaves).
    const TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.19.0.0/16 2 0 2
        +-- 172.19.0.0/30 2 0 2
           |-- 172.19.0.0
              /16 link UNICAST
           |-- 172.19.0.2
              /32 host LOCAL
        |-- 172.19.255.255
           /32 link BROADCAST
";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_namespaces_address_table_says_which_addresses_are_its_own() {
        assert!(holds_local(TRIE, ip("172.19.0.2")));
        assert!(holds_local(TRIE, ip("127.0.0.1")));
        assert!(!holds_local(TRIE, ip("172.19.0.3")), "another container's");
        assert!(!holds_local(TRIE, ip("172.19.0.0")), "the network, not a host address");
        assert!(!holds_local(TRIE, ip("172.19.255.255")), "the broadcast address");
        assert!(!holds_local("", ip("172.19.0.2")));
    }

    #[tokio::test]
    async fn a_connection_to_an_address_the_sandbox_no_longer_holds_is_refused() {
        use tower_service::Service;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let connect = |owner: Option<(IpAddr, u32)>| {
            let uri: http::Uri = format!("http://{addr}/ping").parse().unwrap();
            CheckedConnector { http: HttpConnector::new(), owner }.call(uri)
        };
        // This process's namespace holds 127.0.0.1; a process that is gone holds nothing.
        assert!(connect(Some((addr.ip(), std::process::id()))).await.is_ok());
        let refused = connect(Some((addr.ip(), u32::MAX))).await.expect_err("refused");
        assert!(refused.to_string().contains("is no longer this session's sandbox"), "{refused}");
        // A port forwarded on the host is not checked.
        assert!(connect(None).await.is_ok());
    }
}
