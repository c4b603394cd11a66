//! A socket whose reader is woken at most once per pace interval while data keeps arriving.
//!
//! Why: an agent that logs a line per request made Docker send each line on the output stream
//! on its own, and every arrival woke the thread whose reactor held the socket, even while the
//! log capture was batching lines for 100 ms and read none of them. Those wake-ups landed on the
//! serving threads, between the reads and writes of invocations (1.4 extra sleeps per warm
//! invoke, measured). A `PacedStream` leaves the reactor after each read that returned data,
//! until the pace's next tick (`next_tick`: half a pace to one and a half, on ticks all streams
//! share), so output that arrives meanwhile waits in the kernel's socket buffer and is read in one
//! go when the rest ends; an idle socket is watched as usual, so the first byte after a quiet
//! spell is read at once.
//!
//! Back-pressure is unchanged: the writer blocks only when the socket buffer is full, as it did
//! when the reader was merely slow.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::time::Sleep;

/// The stream sockets a `PacedStream` can hold: std sockets, non-blocking, each owning its
/// file descriptor for as long as it lives (which registering with the reactor relies on).
pub trait Socket: AsRawFd + Send + Sync + Unpin + 'static {
    fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    fn write_some(&self, buf: &[u8]) -> std::io::Result<usize>;
    fn shutdown_write(&self) -> std::io::Result<()>;
}

/// The std stream sockets: both read and write through a shared reference.
macro_rules! std_socket {
    ($($socket:ty),*) => {$(
        impl Socket for $socket {
            fn read_some(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&mut &*self).read(buf)
            }
            fn write_some(&self, buf: &[u8]) -> std::io::Result<usize> {
                (&mut &*self).write(buf)
            }
            fn shutdown_write(&self) -> std::io::Result<()> {
                self.shutdown(std::net::Shutdown::Write)
            }
        }
    )*};
}

std_socket!(std::os::unix::net::UnixStream, std::net::TcpStream);

enum State<S: Socket> {
    /// Registered with the reactor: the first byte to arrive wakes the reader.
    Watching(AsyncFd<S>),
    /// Out of the reactor until `until`: arriving bytes wake no one. Once `until` has passed,
    /// reads go straight to the socket until it has nothing left, and then it is watched again.
    Resting { socket: S, until: Pin<Box<Sleep>> },
    /// Only while moving between the two (registering can fail, and then the stream is broken).
    Broken,
}

pub struct PacedStream<S: Socket> {
    state: State<S>,
    pace: Duration,
}

impl<S: Socket> PacedStream<S> {
    /// `socket` must be non-blocking. Must be called within a Tokio runtime.
    pub fn new(socket: S, pace: Duration) -> std::io::Result<PacedStream<S>> {
        Ok(PacedStream { state: State::Watching(watch(socket)?), pace })
    }

    /// Leave the reactor until the pace's next tick.
    fn rest(&mut self) {
        if let State::Watching(fd) = std::mem::replace(&mut self.state, State::Broken) {
            let until = Box::pin(tokio::time::sleep_until(next_tick(tokio::time::Instant::now(), self.pace)));
            self.state = State::Resting { socket: fd.into_inner(), until };
        }
    }

    /// Back into the reactor.
    fn watch(&mut self) -> std::io::Result<()> {
        match std::mem::replace(&mut self.state, State::Broken) {
            State::Resting { socket, .. } => self.state = State::Watching(watch(socket)?),
            other => self.state = other,
        }
        Ok(())
    }
}

/// The end of a rest that begins at `now`: the first multiple of `pace` (counted from one instant
/// for the whole process) at least half a pace away, so a rest lasts half a pace to one and a half.
/// Streams of one pace that rest at about the same time then wake at the same tick, and their
/// thread wakes once for all of them: 50 streams, each resting a whole pace from its own read,
/// woke it about once per line when their lines came a few ms apart.
fn next_tick(now: tokio::time::Instant, pace: Duration) -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    let pace_ns = pace.as_nanos().max(1);
    let earliest = (now + pace / 2).saturating_duration_since(epoch).as_nanos();
    let ticks = earliest.div_ceil(pace_ns);
    epoch + Duration::from_nanos(u64::try_from(ticks * pace_ns).unwrap_or(u64::MAX))
}

fn watch<S: Socket>(socket: S) -> std::io::Result<AsyncFd<S>> {
    // SAFETY: a `Socket` is a std socket that owns its descriptor and never replaces or closes
    // it while it lives, and the `AsyncFd` owns the socket until `into_inner` hands it back.
    let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE | Interest::WRITABLE) };
    registered.map_err(std::io::Error::from)
}

fn broken() -> std::io::Error {
    std::io::Error::other("the paced stream could not be registered with the reactor")
}

impl<S: Socket> AsyncRead for PacedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Watching(fd) => {
                    let mut guard = ready!(fd.poll_read_ready(cx))?;
                    match guard.try_io(|fd| fd.get_ref().read_some(buf.initialize_unfilled())) {
                        Ok(Ok(n)) => {
                            buf.advance(n);
                            if n > 0 {
                                this.rest();
                            }
                            return Poll::Ready(Ok(()));
                        }
                        Ok(Err(e)) => return Poll::Ready(Err(e)),
                        // Readiness was stale: the guard cleared it; wait again.
                        Err(_would_block) => continue,
                    }
                }
                State::Resting { socket, until } => {
                    ready!(until.as_mut().poll(cx));
                    match socket.read_some(buf.initialize_unfilled()) {
                        Ok(n) => {
                            buf.advance(n);
                            return Poll::Ready(Ok(()));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => this.watch()?,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                State::Broken => return Poll::Ready(Err(broken())),
            }
        }
    }
}

impl<S: Socket> AsyncWrite for PacedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        // Writes (a request, before its response streams) are rare: they wait in the reactor.
        this.watch()?;
        let State::Watching(fd) = &mut this.state else { return Poll::Ready(Err(broken())) };
        loop {
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().write_some(data)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = match &self.state {
            State::Watching(fd) => fd.get_ref().shutdown_write(),
            State::Resting { socket, .. } => socket.shutdown_write(),
            State::Broken => Ok(()),
        };
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair(pace: Duration) -> (PacedStream<UnixStream>, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (PacedStream::new(ours, pace).unwrap(), theirs)
    }

    #[tokio::test]
    async fn bytes_after_a_quiet_spell_are_read_at_once() {
        let (mut paced, mut theirs) = pair(Duration::from_secs(30));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            theirs.write_all(b"first").unwrap();
            theirs
        });
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), paced.read(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"first");
        drop(writer.join());
    }

    #[tokio::test]
    async fn what_arrives_while_resting_waits_for_the_interval_and_is_read_in_one_go() {
        let pace = Duration::from_millis(300);
        let (mut paced, mut theirs) = pair(pace);
        theirs.write_all(b"one").unwrap();
        let mut buf = [0u8; 64];
        let n = paced.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one");
        let rested_from = std::time::Instant::now();
        theirs.write_all(b"two").unwrap();
        theirs.write_all(b"three").unwrap();
        // The bytes are there at once, but the read returns only when the interval (begun by
        // the first read, just before `rested_from`) ends: the bytes themselves woke no one.
        let n = paced.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"twothree");
        assert!(rested_from.elapsed() >= pace / 2, "the read waited out the interval");
    }

    #[tokio::test]
    async fn a_reader_resting_then_idle_is_woken_by_the_next_byte() {
        let pace = Duration::from_millis(20);
        let (mut paced, theirs) = pair(pace);
        let mut theirs = theirs;
        theirs.write_all(b"a").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(paced.read(&mut buf).await.unwrap(), 1);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            theirs.write_all(b"b").unwrap();
            theirs
        });
        // The interval ends with nothing to read: the socket is watched again, and the byte
        // written well after it wakes the reader (a stream left resting would never see it).
        let n = tokio::time::timeout(Duration::from_secs(5), paced.read(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"b");
        drop(writer.join());
    }

    #[test]
    fn rests_end_on_shared_ticks_between_half_a_pace_and_one_and_a_half() {
        let pace = Duration::from_millis(100);
        let start = tokio::time::Instant::now();
        let ends: Vec<_> = (0..40u64)
            .map(|i| {
                let now = start + Duration::from_millis(i * 7);
                let end = next_tick(now, pace);
                assert!(end - now >= pace / 2 && end - now <= pace * 3 / 2, "rest of {:?}", end - now);
                end
            })
            .collect();
        // 40 rests begun 7 ms apart, over 280 ms, end on four ticks or fewer.
        let mut ticks = ends;
        ticks.dedup();
        assert!(ticks.len() <= 4, "{} distinct ends", ticks.len());
    }

    #[tokio::test]
    async fn writes_and_end_of_stream_pass_through() {
        let (mut paced, mut theirs) = pair(Duration::from_millis(10));
        paced.write_all(b"request").await.unwrap();
        paced.shutdown().await.unwrap();
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"request");
        theirs.write_all(b"answer").unwrap();
        drop(theirs);
        let mut answer = Vec::new();
        paced.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
    }
}
