//! `exec` in a VM (InvokeAgentRuntimeCommand): the client of the guest's command server
//! (`exec.sh`, run by the init under `nc -ll`), reached through a QEMU port forward on the host's
//! loopback (127.0.0.2, out of the guests' reach). One command takes two connections, its stdout and its stderr (busybox cannot frame
//! two streams on one), plus one to collect the exit code and one to kill it.
//!
//! The forwarded port is on the host's loopback, where other local users can reach it: every
//! request starts with the VM's token, a random value only
//! the backend (vm.json, in a directory only its user may read) and the guest (fw_cfg) know.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::sandbox::{Exec, ExecHandle, ExecOutput, SandboxError};

/// The guest port the command server listens on (unlikely to be an agent's: below 1024).
pub const GUEST_PORT: u16 = 1;
/// How long `wait` waits for an exit code once the output has ended.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Where a VM's command server is and the token it wants.
#[derive(Debug, Clone)]
pub struct Server {
    pub address: Ipv4Addr,
    pub port: u16,
    pub token: String,
}

/// A fresh token for a new VM.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

impl Server {
    async fn request(&self, verb: &str, id: &str, extra: &str) -> std::io::Result<tokio::net::TcpStream> {
        let mut stream = tokio::net::TcpStream::connect(SocketAddr::from((self.address, self.port))).await?;
        stream.set_nodelay(true)?;
        stream.write_all(format!("{}\n{verb} {id}\n{extra}", self.token).as_bytes()).await?;
        Ok(stream)
    }

    /// Starts `argv` in the guest; its output arrives on the returned streams.
    pub async fn start(&self, argv: &[String]) -> Result<Exec, SandboxError> {
        let failed = |e: std::io::Error| SandboxError::Failed(format!("cannot run a command in the session's VM: {e}"));
        let id = hex::encode(rand::random::<[u8; 8]>());
        let stdout = self.request("run", &id, &format!("{}\n", argv_line(argv))).await.map_err(failed)?;
        let stderr = self.request("err", &id, "").await.map_err(failed)?;
        let out = ReaderStream::new(stdout).map(|chunk| chunk.map(ExecOutput::Stdout));
        let err = ReaderStream::new(stderr).map(|chunk| chunk.map(ExecOutput::Stderr));
        let output = futures_util::stream::select(out, err)
            .map(|item| item.map_err(|e| SandboxError::Failed(format!("the command's output broke off: {e}"))));
        Ok(Exec { output: Box::pin(output), handle: Box::new(Command { server: self.clone(), id }) })
    }
}

/// argv as one line of sh words: single-quoted, and a newline (which would end the line) spelled
/// as `"$NL"`, which the guest's script defines as one.
fn argv_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''").replace('\n', "'\"$NL\"'")))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Command {
    server: Server,
    id: String,
}

impl ExecHandle for Command {
    fn wait(&self) -> BoxFuture<'_, Option<i64>> {
        Box::pin(async move {
            let ask = async {
                let mut stream = self.server.request("wait", &self.id, "").await.ok()?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.ok()?;
                answer.trim().parse().ok()
            };
            tokio::time::timeout(WAIT_LIMIT, ask).await.ok().flatten()
        })
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Ok(mut stream) = self.server.request("kill", &self.id, "").await {
                let mut done = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut done)).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_survives_quotes_and_newlines() {
        let line = argv_line(&["/bin/sh".into(), "-c".into(), "echo 'a'\necho b".into()]);
        assert!(!line.contains('\n'));
        // What the guest's sh makes of it (NL defined as the script does).
        let script = format!("NL='\n'\neval \"set -- {}\"\nprintf '%s|' \"$@\"", line.replace('"', "\\\""));
        let out = std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/bin/sh|-c|echo 'a'\necho b|");
    }
}
