//! The relay floor: what any relay between the client and the agent costs on this machine, with
//! no HTTP parsing, signature or session lookup at all. A process of its own (the benchmark's own
//! executable, re-run with `bare-relay`) accepts on loopback and copies bytes both ways between
//! each connection and a new one to the agent, on threads that are each a one-thread runtime. The
//! emulator's warm invoke overhead is measured against the direct call and against this. The same
//! process serves the verifying relays too (`Kind::Verifying`, `super::verifying_relay`): the floor
//! for anything that must parse HTTP and verify SigV4, as the emulator must.
//!
//! Why a separate process: every real relay, the emulator included, is one, so its CPU time can
//! be read from /proc beside the emulator's, and the client's switches to it change address
//! space as they do for the emulator. (Measured here, threads inside the benchmark gave the same
//! latency and 35-40 us of CPU per invoke too: the switch is not what a relay costs.)

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The argument that makes the benchmark's executable serve bare relays instead.
const SERVE_ARG: &str = "bare-relay";

/// What a relay does with each connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Copies bytes both ways, parsing nothing: the floor for any relay.
    Bare,
    /// Parses HTTP and verifies SigV4, then forwards (`super::verifying_relay`): the floor for
    /// any emulator.
    Verifying,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Bare, Kind::Verifying];

    fn arg(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Verifying => "verifying",
        }
    }

    fn from_arg(arg: &str) -> Kind {
        Kind::ALL.into_iter().find(|k| k.arg() == arg).expect("bare-relay KIND: bare or verifying")
    }
}

/// Bare relays in a process of their own; it ends when this is dropped (or the benchmark exits).
pub struct BareRelays {
    child: Child,
    /// The loopback address of each relay, in the order of the targets.
    pub addresses: Vec<SocketAddr>,
}

impl BareRelays {
    /// The relay process's CPU time so far (all threads): the CPU baseline for the emulator's,
    /// since both pay the same socket and wake-up costs.
    pub fn cpu_time(&self) -> Duration {
        super::cpu_time(self.child.id())
    }

    /// The relay process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BareRelays {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay of `kind` to `target`, on one thread.
pub fn start(target: SocketAddr, kind: Kind) -> BareRelays {
    start_many(&[target], 1, kind)
}

/// Relays of `kind` to each of `targets`, served by `threads` threads (as the emulator serves its
/// connections on one thread per CPU).
pub fn start_many(targets: &[SocketAddr], threads: usize, kind: Kind) -> BareRelays {
    let exe = std::env::current_exe().expect("the benchmark's own executable");
    let mut child = Command::new(exe)
        .arg(SERVE_ARG)
        .arg(kind.arg())
        .arg(threads.to_string())
        .args(targets.iter().map(SocketAddr::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bare relay process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addresses = targets
        .iter()
        .map(|_| lines.next().and_then(Result::ok).and_then(|l| l.parse().ok()).expect("a bare relay's address"))
        .collect();
    BareRelays { child, addresses }
}

/// In the relay process: when the executable was run with `bare-relay KIND THREADS TARGET...`, serve
/// the relays, print their addresses one per line, and exit when the benchmark closes stdin
/// (which it does by exiting, however it exits). Returns otherwise.
pub fn serve_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(SERVE_ARG) {
        return;
    }
    let kind = Kind::from_arg(&args[2]);
    let threads: usize = args[3].parse().expect("bare-relay KIND THREADS TARGET...");
    let targets: Vec<SocketAddr> = args[4..].iter().map(|t| t.parse().expect("a target address")).collect();
    let mut per_thread: Vec<Vec<(std::net::TcpListener, SocketAddr)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, target) in targets.iter().enumerate() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the bare relay");
        println!("{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        per_thread[i % threads].push((listener, *target));
    }
    for listeners in per_thread {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let accepting: Vec<_> = listeners
                    .into_iter()
                    .map(|(listener, target)| match kind {
                        Kind::Bare => tokio::spawn(relay_each(listener, target)),
                        Kind::Verifying => tokio::spawn(super::verifying_relay::relay_each(listener, target)),
                    })
                    .collect();
                for a in accepting {
                    let _ = a.await;
                }
            });
        });
    }
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0);
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
