//! Serving threads: every accepted connection is served, from its first request to its close, on
//! one thread that runs a single-threaded tokio runtime of its own (thread per core).
//!
//! Why not the multi-thread runtime that runs everything else: measured on 2 cores
//! (`cargo bench --bench sessions -- relay`), a warm invocation there made the emulator's threads
//! sleep 5-6.5 times, against a minimum of 2 (one wait for the agent, one for the next request).
//! Tokio's multi-thread scheduler wakes an idle sibling worker each time it queues a task, and the
//! sibling then finds nothing to do or steals the invocation away from the thread whose cache and
//! sockets hold it. On a serving thread a request, the agent connection it opens (registered with
//! that thread's reactor), the agent's answer and the reply to the client all stay on one thread.
//!
//! What a request spawns (a session's supervisor, its log capture) runs on the same serving
//! thread, which lives until the server has stopped its sessions. Blocking work still goes to
//! `spawn_blocking`, whose pool each runtime has. The cost of the design, as in actix or
//! thread-per-core servers generally: a connection cannot move to an idle thread while its own is
//! busy, so new connections go to the thread serving the fewest.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a serving thread's runtime waits for its blocking tasks when the server stops
/// (every acknowledged write finished before its answer; what is left is background work).
const BLOCKING_GRACE: Duration = Duration::from_secs(2);

pub struct ServingThreads {
    threads: Vec<Thread>,
    /// Where the search for the least busy thread starts, turned by one each time, so that ties
    /// (an idle server) are spread instead of all going to the first thread.
    next: AtomicUsize,
    /// Cancelled by `stop` or when the pool is dropped: each thread's runtime then shuts down.
    stop: CancellationToken,
}

struct Thread {
    runtime: tokio::runtime::Handle,
    /// Connections this thread serves now.
    open: Arc<AtomicUsize>,
    /// Closed once the thread's runtime has shut down.
    ended: tokio::sync::watch::Receiver<bool>,
}

impl ServingThreads {
    /// Starts `count` threads (at least one; 0 means one per CPU).
    pub fn start(count: usize) -> std::io::Result<ServingThreads> {
        let count = match count {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        let stop = CancellationToken::new();
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (ended_tx, ended) = tokio::sync::watch::channel(false);
            let stopped = stop.clone();
            std::thread::Builder::new().name(format!("serving-{index}")).spawn(move || {
                runtime.block_on(stopped.cancelled());
                runtime.shutdown_timeout(BLOCKING_GRACE);
                let _ = ended_tx.send(true);
            })?;
            threads.push(Thread { runtime: handle, open: Arc::new(AtomicUsize::new(0)), ended });
        }
        Ok(ServingThreads { threads, next: AtomicUsize::new(0), stop })
    }

    /// Serves one connection on the thread serving the fewest: `connection` is first polled on
    /// that thread (so the sockets and timers its body creates belong to that thread's runtime)
    /// and runs there to the end. After `stop`, the connection is dropped unserved.
    pub fn serve(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.threads.len();
        let thread = (0..count)
            .map(|i| &self.threads[(start + i) % count])
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
            .expect("at least one serving thread");
        let open = thread.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenConnection(open);
        thread.runtime.spawn(async move {
            let _guard = guard;
            connection.await
        });
    }

    /// Stops every thread: their connections and the tasks spawned on them are dropped. Returns
    /// once each thread's runtime has shut down.
    pub async fn stop(&self) {
        self.stop.cancel();
        for thread in &self.threads {
            let mut ended = thread.ended.clone();
            let _ = ended.wait_for(|ended| *ended).await;
        }
    }
}

impl Drop for ServingThreads {
    fn drop(&mut self) {
        // A server dropped without `stop` (a test's runtime ending) must not leave its threads.
        self.stop.cancel();
    }
}

/// Counts a connection as open on its thread until it is dropped (served or not).
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of the thread a connection was served on.
    async fn served_on(pool: &ServingThreads, hold: Option<tokio::sync::oneshot::Receiver<()>>) -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        pool.serve(async move {
            let _ = tx.send(std::thread::current().name().unwrap_or_default().to_string());
            if let Some(hold) = hold {
                let _ = hold.await;
            }
        });
        rx.await.expect("served")
    }

    #[tokio::test]
    async fn connections_are_served_on_the_serving_threads() {
        let pool = ServingThreads::start(1).unwrap();
        assert_eq!(pool.threads.len(), 1);
        assert_eq!(served_on(&pool, None).await, "serving-0");
        pool.stop().await;
    }

    #[tokio::test]
    async fn a_new_connection_goes_to_the_thread_serving_the_fewest() {
        let pool = ServingThreads::start(2).unwrap();
        let (_keep_first, first) = tokio::sync::oneshot::channel();
        let (_keep_second, second) = tokio::sync::oneshot::channel();
        let a = served_on(&pool, Some(first)).await;
        let b = served_on(&pool, Some(second)).await;
        assert_ne!(a, b, "two open connections share a thread while the other serves none");
        // Once the first thread's connection ends, the next one goes there, whichever thread
        // the rotation would have picked.
        drop(_keep_first);
        for _ in 0..3 {
            open_connections_settle_at(&pool, 1).await;
            assert_eq!(served_on(&pool, None).await, a);
        }
        pool.stop().await;
    }

    /// Waits until the pool counts `open` connections (a served one is counted until its task
    /// has ended, just after it answered).
    async fn open_connections_settle_at(pool: &ServingThreads, open: usize) {
        for _ in 0..1000 {
            if pool.threads.iter().map(|t| t.open.load(Ordering::Relaxed)).sum::<usize>() == open {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the pool never counted {open} open connections");
    }

    #[tokio::test]
    async fn stop_ends_the_threads_and_drops_their_connections() {
        let pool = ServingThreads::start(2).unwrap();
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel::<()>();
        let (_never, hold) = tokio::sync::oneshot::channel::<()>();
        pool.serve(async move {
            let _dropped_tx = dropped_tx;
            let _ = hold.await;
        });
        pool.stop().await;
        assert!(dropped.await.is_err(), "the connection's task was dropped with its thread");
        // A connection accepted after the stop is dropped, not served, and nothing panics.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        pool.serve(async move {
            let _ = tx.send(());
        });
        assert!(rx.await.is_err());
    }

    #[tokio::test]
    async fn a_dropped_pool_ends_its_threads() {
        let pool = ServingThreads::start(1).unwrap();
        let mut ended = pool.threads[0].ended.clone();
        drop(pool);
        tokio::time::timeout(Duration::from_secs(5), ended.wait_for(|e| *e)).await.unwrap().unwrap();
    }
}
