//! The Docker client that follows sandboxes' output: every request on a connection of its own,
//! read through a [`PacedStream`], so a chatty agent's lines wake the emulator at most once per
//! pace interval instead of once per line (see `paced`).
//!
//! bollard still builds the requests and decodes Docker's multiplexed stream; only the transport
//! is ours. A connection per request also keeps the follow streams out of the shared client's
//! pool, whose idle connections belong to whichever thread opened them.

use std::time::Duration;

use bollard::{BollardRequest, Docker};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::paced::PacedStream;

/// Where the Docker daemon listens, for the schemes a paced connection can reach.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Daemon {
    Unix(std::path::PathBuf),
    Tcp(String),
}

impl Daemon {
    /// From a `DOCKER_HOST` value; `None` for schemes bollard reaches by other means (ssh, TLS).
    pub(super) fn parse(host: &str) -> Option<Daemon> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Some(Daemon::Unix(path.into()));
        }
        let address = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://"))?;
        Some(Daemon::Tcp(address.trim_end_matches('/').to_string()))
    }

    /// A new connection to the daemon, read at most once per `pace` while data keeps coming
    /// (`PacedStream`), registered with the calling runtime's reactor.
    pub(super) async fn connect(&self, pace: Duration) -> std::io::Result<Box<dyn Duplex>> {
        Ok(match self {
            Daemon::Unix(path) => {
                let socket = tokio::net::UnixStream::connect(path).await?.into_std()?;
                Box::new(PacedStream::new(socket, pace)?)
            }
            Daemon::Tcp(address) => {
                let socket = tokio::net::TcpStream::connect(address.as_str()).await?;
                socket.set_nodelay(true)?;
                Box::new(PacedStream::new(socket.into_std()?, pace)?)
            }
        })
    }
}

/// A byte stream both ways (a socket to the daemon).
pub(super) trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Duplex for T {}

/// Seconds bollard waits for a response's head (its own default).
const RESPONSE_HEAD_TIMEOUT_SECS: u64 = 120;

/// A client whose connections read at most once per `pace` while output keeps coming; `None`
/// when `docker_host` is of a scheme it cannot reach (the caller then follows through its
/// ordinary client).
pub fn paced_client(docker_host: &str, pace: Duration) -> Option<Docker> {
    let daemon = Daemon::parse(docker_host)?;
    let transport = move |request: BollardRequest| {
        let daemon = daemon.clone();
        async move { send(&daemon, pace, request).await }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        RESPONSE_HEAD_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .ok()
}

/// One request on a new connection; the connection lives as long as its response's body.
async fn send(
    daemon: &Daemon,
    pace: Duration,
    request: BollardRequest,
) -> Result<http::Response<Incoming>, bollard::errors::Error> {
    let stream = daemon.connect(pace).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "Docker output connection ended with an error");
        }
    });
    let (mut parts, body) = request.into_parts();
    // The request line carries the path alone (origin form), with the daemon named in Host.
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path.parse().map_err(|e: http::uri::InvalidUri| bollard::errors::Error::from(e))?;
    parts.headers.insert(http::header::HOST, http::HeaderValue::from_static("docker"));
    Ok(sender.send_request(http::Request::from_parts(parts, body)).await?)
}

#[cfg(test)]
mod tests {
    use super::Daemon;

    #[test]
    fn reaches_unix_sockets_and_plain_tcp_only() {
        assert_eq!(Daemon::parse("unix:///var/run/docker.sock"), Some(Daemon::Unix("/var/run/docker.sock".into())));
        assert_eq!(Daemon::parse("tcp://127.0.0.1:2375"), Some(Daemon::Tcp("127.0.0.1:2375".into())));
        assert_eq!(Daemon::parse("http://docker:2375/"), Some(Daemon::Tcp("docker:2375".into())));
        assert_eq!(Daemon::parse("ssh://me@host"), None);
        assert_eq!(Daemon::parse("https://host:2376"), None);
    }
}
