//! How the emulator reaches one sandbox's agent: an HTTP client of the sandbox's own (its own
//! connection pool) whose every new connection is checked to end in that sandbox.
//!
//! Built on hyper's connection-level HTTP/1 client rather than hyper-util's pooled client, which
//! runs each connection in a task of its own: there, every answer woke the connection's task,
//! which then woke the task relaying the invocation, often on the other worker thread. Here the
//! relaying task drives the connection itself (see `AgentClient`).
//!
//! Why the check: a Docker sandbox may be reached at its bridge address, and Docker hands a
//! stopped container's address to the next container it starts, at once (with the same MAC,
//! which Docker derives from the address). Between an agent's crash and the emulator noticing
//! it, a new connection to the old address would reach another session's agent, and deliver this
//! session's request (payload, user id, workload token) to it. So after connecting, the client
//! checks that the sandbox's network namespace still holds the address (`/proc/<pid>/net/fib_trie`,
//! readable by any user): while it does, Docker gives the address to no other container on that
//! network, so the connection reached the sandbox. A sandbox that stopped, or let go of its
//! address, fails the check and its connection is refused before a byte is sent; and a request
//! that fails on the sandbox's address (refused, reset, timed out: whoever holds it now answered,
//! or nobody did) is reported as the sandbox having let go of it, when it has. (The namespace's
//! socket table would name the connection itself, but reading it walks the host's whole TCP hash
//! table: about 5 ms here, against 30 us for the address table.)

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::sandbox::SandboxHandle;

/// How long a connection to an agent may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection older than this is closed rather than used (the agent's server may have
/// given up on it; uvicorn does after 5 s, and the next request then finds out first).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per sandbox; more (after a burst of concurrent calls) are closed.
const MAX_IDLE: usize = 32;

/// One sandbox's HTTP client. Cheap to clone (clones share the connections).
///
/// It has no task of its own: a connection is driven by whoever waits on it (the request's own
/// task, then the response body as it is read), so an answer from the agent wakes the one task
/// that relays it, rather than a connection task that then wakes the relaying task, often on
/// another thread. Between requests a connection rests in the pool, driven by nobody; the next
/// request on it finds out first whether the agent closed it meanwhile.
#[derive(Clone)]
pub struct AgentClient {
    pool: Arc<Pool>,
}

struct Pool {
    /// The sandbox's address and a process of it (by host pid); `None` when it is reached through
    /// a port forwarded on the host (published, or the microVM's), which no other sandbox takes.
    owner: Option<(IpAddr, u32)>,
    /// Connections waiting for the next request, the most recently used last. A std mutex: it is
    /// held to push or pop one entry, never across an await.
    idle: Mutex<Vec<(Link, Instant)>>,
    /// The `Host` header for the agent's address, formatted once: an address is fixed for the
    /// sandbox's life, and formatting one cost more than the rest of building the request.
    host: OnceLock<(SocketAddr, http::HeaderValue)>,
}

/// The thread a connection was opened on. Its socket is registered with that thread's runtime:
/// on a serving thread (a current-thread runtime) only that thread learns that the agent answered,
/// and a request served on another thread would be woken through it, two wake-ups instead of one.
/// So a request takes a connection opened on its own thread, or opens one.
fn this_thread() -> std::thread::ThreadId {
    std::thread::current().id()
}

/// One HTTP/1 connection to the agent: the handle requests go in through, and the connection's
/// state machine, which does the reading and writing when polled.
struct Link {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended (it must not be polled again).
    connection: Option<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>,
    /// Where it was opened (`this_thread`).
    home: std::thread::ThreadId,
}

/// Why a request did not reach the agent, or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("could not connect to {address}: {source}")]
    Connect { address: SocketAddr, source: std::io::Error },
    #[error("could not connect to {address} within {CONNECT_TIMEOUT:?}")]
    ConnectTimedOut { address: SocketAddr },
    #[error(
        "{address} is no longer this session's sandbox: the sandbox does not hold that address any more (it has stopped, or Docker gave its address to another container)"
    )]
    NotTheSandbox { address: SocketAddr },
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("the request has no agent address: {0}")]
    NoAddress(http::Uri),
}

impl AgentClient {
    pub fn for_sandbox(sandbox: &SandboxHandle) -> AgentClient {
        let owner = sandbox.address.zip(sandbox.netns_pid);
        AgentClient { pool: Arc::new(Pool::new(owner)) }
    }

    /// Send `request` (its URI `http://<agent address><path>`) and wait for the answer's head;
    /// the body streams as it is read.
    pub async fn request(
        &self,
        mut request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<AgentBody>, AgentError> {
        let address = to_origin_form(&mut request)?;
        self.request_at(address, request).await
    }

    /// Send `request`, whose URI is the path alone (origin form), to the agent at `address`, and
    /// wait for the answer's head. `Host` is the address unless the request names one.
    pub async fn request_at(
        &self,
        address: SocketAddr,
        mut request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<AgentBody>, AgentError> {
        if !request.headers().contains_key(http::header::HOST) {
            request.headers_mut().insert(http::header::HOST, self.pool.host_value(address));
        }
        loop {
            let (mut link, reused) = match self.pool.take() {
                Some(link) => (link, true),
                None => (self.pool.connect(address).await.map_err(|e| self.pool.explain(address, e))?, false),
            };
            match link.exchange(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let mut body = AgentBody { body, link: Some(link), pool: Arc::downgrade(&self.pool) };
                    if body.body.is_end_stream() {
                        body.release();
                    }
                    return Ok(http::Response::from_parts(parts, body));
                }
                // A pooled connection the agent had closed meanwhile: the request never left, so
                // it goes out on another connection.
                Err(NotAnswered { unsent: Some(unsent), .. }) if reused => request = unsent,
                Err(NotAnswered { error, .. }) => return Err(self.pool.explain(address, error.into())),
            }
        }
    }

    /// Close the connections resting in the pool. Called before the sandbox is stopped: a
    /// connection closed after its container is gone sends its FIN to an address nobody holds,
    /// again and again, and each try leaves the host's neighbour entry for that address unresolved.
    /// Docker soon gives the address to a new container, whose first connection then waits up to
    /// a second for the entry to resolve (seen: cold starts of 1 s instead of 0.35 s).
    pub fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()));
        drop(idle);
    }
}

impl Pool {
    fn new(owner: Option<(IpAddr, u32)>) -> Pool {
        Pool { owner, idle: Mutex::new(Vec::new()), host: OnceLock::new() }
    }

    fn host_value(&self, address: SocketAddr) -> http::HeaderValue {
        match self.host.get() {
            Some((cached, value)) if *cached == address => value.clone(),
            _ => {
                let value =
                    http::HeaderValue::from_str(&address.to_string()).expect("an address is a valid header value");
                let _ = self.host.set((address, value.clone()));
                value
            }
        }
    }

    /// The most recently used idle connection opened on this thread; connections past their idle
    /// time or closed are dropped on the way.
    fn take(&self) -> Option<Link> {
        let here = this_thread();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(link, since)| since.elapsed() < IDLE_TIMEOUT && !link.sender.is_closed());
        let at = idle.iter().rposition(|(link, _)| link.home == here)?;
        Some(idle.remove(at).0)
    }

    fn put(&self, link: Link) {
        if link.connection.is_none() || link.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((link, Instant::now()));
        }
    }

    /// Why a request to `address` failed: when the sandbox no longer holds its own address, that,
    /// rather than how the failure looked from here. After the sandbox lets go of its address, a
    /// connection to it is refused or reset by whichever container took the address next (or by
    /// nobody, and times out): messages that send the caller looking at the agent, which did
    /// nothing wrong. Checked on failures only, so it costs the warm path nothing.
    fn explain(&self, address: SocketAddr, error: AgentError) -> AgentError {
        if !matches!(error, AgentError::NotTheSandbox { .. }) && self.let_go_of(address) {
            AgentError::NotTheSandbox { address }
        } else {
            error
        }
    }

    /// Is `address` the sandbox's own, and does the sandbox no longer hold it? (A port forwarded
    /// on the host is never let go of.)
    fn let_go_of(&self, address: SocketAddr) -> bool {
        self.owner.is_some_and(|(ip, pid)| address.ip() == ip && !namespace_holds(pid, ip))
    }

    /// A new connection to `address`; to the sandbox's own address, refused unless the sandbox
    /// still holds that address.
    async fn connect(&self, address: SocketAddr) -> Result<Link, AgentError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            // A sandbox's own address answers a connect at once, or refuses it, while the sandbox
            // runs; after it stopped, nobody answers there and a connect would wait out the
            // kernel's retries (a minute and more) before the caller learns the session is gone.
            .map_err(|_| AgentError::ConnectTimedOut { address })?
            .map_err(|source| AgentError::Connect { address, source })?;
        // Checked after the connection is made: had the address changed hands before, the
        // sandbox would not hold it now.
        if self.let_go_of(address) {
            return Err(AgentError::NotTheSandbox { address });
        }
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Link { sender, connection: Some(connection), home: this_thread() })
    }
}

/// A request that got no answer, with the request itself when it never left.
struct NotAnswered {
    error: hyper::Error,
    unsent: Option<http::Request<Full<Bytes>>>,
}

impl Link {
    /// Send one request and drive the connection until the answer's head has arrived.
    async fn exchange(&mut self, request: http::Request<Full<Bytes>>) -> Result<http::Response<Incoming>, NotAnswered> {
        // Until the connection takes a request (at once, unless it has closed meanwhile).
        let ready = std::future::poll_fn(|cx| {
            if let Poll::Ready(Err(e)) = self.drive(cx) {
                return Poll::Ready(Err(e));
            }
            self.sender.poll_ready(cx)
        })
        .await;
        if let Err(error) = ready {
            return Err(NotAnswered { error, unsent: Some(request) });
        }
        let mut answer = pin!(self.sender.try_send_request(request));
        let answered = std::future::poll_fn(|cx| {
            // The connection first: it writes the request and reads the answer that `answer`
            // waits for. Once it has ended, `answer` holds why.
            let _ = drive(&mut self.connection, cx);
            answer.as_mut().poll(cx)
        })
        .await;
        answered.map_err(|mut e| NotAnswered { unsent: e.take_message(), error: e.into_error() })
    }

    /// Poll the connection; `Ready` once it has ended (then it is dropped).
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        drive(&mut self.connection, cx)
    }
}

fn drive(
    connection: &mut Option<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>,
    cx: &mut Context<'_>,
) -> Poll<hyper::Result<()>> {
    let Some(c) = connection.as_mut() else { return Poll::Ready(Ok(())) };
    let ended = std::task::ready!(Pin::new(c).poll(cx));
    *connection = None;
    Poll::Ready(ended)
}

/// Rewrite an absolute `http://address/path` request to the form sent on a connection (the path
/// alone); returns the address.
fn to_origin_form(request: &mut http::Request<Full<Bytes>>) -> Result<SocketAddr, AgentError> {
    let uri = request.uri().clone();
    let address: SocketAddr =
        uri.authority().and_then(|a| a.as_str().parse().ok()).ok_or_else(|| AgentError::NoAddress(uri.clone()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|_| AgentError::NoAddress(uri.clone()))?;
    Ok(address)
}

/// An agent's response body. Reading it drives its connection, which goes back to the sandbox's
/// pool once the body has been read to its end (a body dropped before then closes it).
pub struct AgentBody {
    body: Incoming,
    link: Option<Link>,
    pool: Weak<Pool>,
}

impl AgentBody {
    fn release(&mut self) {
        if let (Some(link), Some(pool)) = (self.link.take(), self.pool.upgrade()) {
            pool.put(link);
        }
    }
}

impl Body for AgentBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(link) = this.link.as_mut() {
            // Ended (the agent closed it after this answer, or it broke): the body says how it ends.
            if link.drive(cx).is_ready() {
                this.link = None;
            }
        }
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        // The whole answer is in: the connection may take the next request. Not only at the
        // `None` after the last frame: hyper's server stops reading a body whose announced
        // length it has written, and drops it without asking for that `None`.
        if frame.is_none() || (matches!(frame, Some(Ok(_))) && this.body.is_end_stream()) {
            this.release();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let connect = |owner: Option<(IpAddr, u32)>| async move { Pool::new(owner).connect(addr).await.map(|_| ()) };
        // This process's namespace holds 127.0.0.1; a process that is gone holds nothing.
        assert!(connect(Some((addr.ip(), std::process::id()))).await.is_ok());
        let refused = connect(Some((addr.ip(), u32::MAX))).await.expect_err("refused");
        assert!(refused.to_string().contains("is no longer this session's sandbox"), "{refused}");
        // A port forwarded on the host is not checked.
        assert!(connect(None).await.is_ok());
    }

    #[tokio::test]
    async fn a_failed_request_to_an_address_the_sandbox_let_go_of_says_so() {
        // A port nobody listens on: connecting is refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let send = |owner: Option<(IpAddr, u32)>| async move {
            let client = AgentClient { pool: Arc::new(Pool::new(owner)) };
            let request = http::Request::post("/invocations").body(Full::new(Bytes::new())).unwrap();
            client.request_at(addr, request).await.map(|_| ()).expect_err("nobody listens")
        };
        // The sandbox still holds the address (this process's namespace holds 127.0.0.1): the
        // refusal is the agent's, and said as such.
        let refused = send(Some((addr.ip(), std::process::id()))).await;
        assert!(matches!(refused, AgentError::Connect { .. }), "{refused}");
        // The sandbox let go of it (a process that is gone holds nothing): whoever refused is not
        // the sandbox.
        let moved = send(Some((addr.ip(), u32::MAX))).await;
        assert!(matches!(moved, AgentError::NotTheSandbox { .. }), "{moved}");
        // A port forwarded on the host is not checked.
        assert!(matches!(send(None).await, AgentError::Connect { .. }));
    }

    /// A plain HTTP/1.1 server on loopback answering `hello` to every request; after
    /// `answers_per_connection` answers it closes the connection (without saying so first).
    /// Returns its address and a count of the connections it accepted.
    async fn hello_server(answers_per_connection: usize) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..answers_per_connection {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 1024];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&chunk[..n]),
                            }
                        }
                        seen.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn client() -> AgentClient {
        AgentClient { pool: Arc::new(Pool::new(None)) }
    }

    async fn get_hello(client: &AgentClient, addr: SocketAddr) -> Bytes {
        use http_body_util::BodyExt;
        let request = http::Request::get(format!("http://{addr}/ping")).body(Full::new(Bytes::new())).unwrap();
        let response = client.request(request).await.unwrap();
        let body = tokio::time::timeout(Duration::from_secs(2), response.into_body().collect());
        body.await.expect("the body ends without another request driving its connection").unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_hands_its_connection_to_the_next_request() {
        let (addr, accepted) = hello_server(usize::MAX).await;
        let client = client();
        for _ in 0..3 {
            assert_eq!(get_hello(&client, addr).await, "hello");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "one connection for all three");
    }

    #[tokio::test]
    async fn a_body_hands_its_connection_back_with_its_last_announced_byte() {
        use http_body_util::BodyExt;
        let (addr, accepted) = hello_server(usize::MAX).await;
        let client = client();
        for _ in 0..2 {
            let request = http::Request::get(format!("http://{addr}/")).body(Full::new(Bytes::new())).unwrap();
            let mut body = client.request(request).await.unwrap().into_body();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "hello");
            // As hyper's server does once it has written the announced length: stop and drop.
            assert!(body.is_end_stream());
            drop(body);
            assert_eq!(client.pool.idle.lock().unwrap().len(), 1, "the connection is back in the pool");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_request_on_a_pooled_connection_the_agent_closed_goes_out_on_a_new_one() {
        let (addr, accepted) = hello_server(1).await;
        let client = client();
        assert_eq!(get_hello(&client, addr).await, "hello");
        // Let the server's close arrive, as it does between two requests of a quiet session.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get_hello(&client, addr).await, "hello");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_request_takes_a_connection_opened_on_its_own_thread() {
        let (addr, accepted) = hello_server(usize::MAX).await;
        let client = client();
        // A serving thread (a current-thread runtime) makes three requests, then keeps its runtime
        // running (so its connection stays usable) until told to stop.
        let serving_thread = |client: AgentClient| {
            let (served_tx, served) = tokio::sync::oneshot::channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    for _ in 0..3 {
                        assert_eq!(get_hello(&client, addr).await, "hello");
                    }
                    let _ = served_tx.send(());
                    let _ = stopped.await;
                });
            });
            (served, stop, thread)
        };
        let (first_served, stop_first, first) = serving_thread(client.clone());
        first_served.await.expect("the first thread's requests were answered");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "one connection for its three requests");
        let (second_served, stop_second, second) = serving_thread(client.clone());
        second_served.await.expect("the second thread's requests were answered");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the second thread opened its own connection instead of the first thread's idle one"
        );
        for (stop, thread) in [(stop_first, first), (stop_second, second)] {
            let _ = stop.send(());
            tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
        }
    }
}
