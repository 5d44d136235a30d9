//! Connection workers, as Envoy has them: each accepted connection is served start to end on
//! one thread with a runtime of its own, and its upstream calls use that thread's connection
//! pool. A request then never wakes another thread; on the multi-threaded runtime both
//! threads woke about five times per request at 1,000 QPS (docs/perf/README.md).
//!
//! Without [`start`] (in-process tests, `--workers 0`) connections are served on the runtime
//! that accepted them, with one pool, as before.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

struct Worker {
    handle: Handle,
    /// Connections this worker serves now (see [`place`]).
    connections: AtomicUsize,
}

static WORKERS: OnceLock<Vec<Worker>> = OnceLock::new();

thread_local! {
    /// 1 + this thread's worker index; 0 on every other thread.
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Starts `count` worker threads, once per process; 0 starts none.
pub fn start(count: usize) -> io::Result<()> {
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        workers.push(Worker {
            handle: runtime.handle().clone(),
            connections: AtomicUsize::new(0),
        });
        std::thread::Builder::new()
            .name(format!("tollgate-worker-{index}"))
            .spawn(move || {
                SLOT.set(index + 1);
                runtime.block_on(std::future::pending::<()>());
            })?;
    }
    WORKERS
        .set(workers)
        .map_err(|_| io::Error::other("connection workers already started"))
}

/// How many connection pools a client keeps: one per worker and one for the other threads.
pub fn pools() -> usize {
    WORKERS.get().map_or(0, Vec::len) + 1
}

/// The pool of the calling thread, below [`pools`].
pub fn pool_index() -> usize {
    SLOT.get()
}

/// Serves `stream` (from `peer`) with `handler` on the worker [`place`] picks (or here,
/// without workers), tracked by `tracker` for drain.
pub fn serve<F, Fut>(tracker: &TaskTracker, stream: tokio::net::TcpStream, peer: IpAddr, handler: F)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(worker) = WORKERS.get().and_then(|w| place(w, peer)) else {
        tracker.spawn(handler(stream));
        return;
    };
    // The socket moves to the worker's own event loop: readiness then wakes only that thread.
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hand an accepted connection to a worker");
            return;
        }
    };
    worker.connections.fetch_add(1, Ordering::Relaxed);
    let served = async move {
        let _open = Open(&worker.connections);
        match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => handler(stream).await,
            Err(e) => tracing::warn!(error = %e, "cannot register a connection on its worker"),
        }
    };
    tracker.spawn_on(served, &worker.handle);
}

/// How many more connections than the least busy worker a client's own worker may hold.
const AFFINITY_SLACK: usize = 2;

/// The worker for a connection from `peer`: the one its address hashes to, unless that holds
/// more than [`AFFINITY_SLACK`] connections over the least busy one. A client's connections
/// (an MCP client's event stream and its calls, an HTTP/1 client's pool) then share a thread
/// and what lives on it, while one busy address (a load balancer) still spreads.
fn place(workers: &[Worker], peer: IpAddr) -> Option<&Worker> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let load = |w: &Worker| w.connections.load(Ordering::Relaxed);
    let least = workers.iter().min_by_key(|w| load(w))?;
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(peer);
    let own = &workers[(hash % workers.len() as u64) as usize];
    Some(if load(own) <= load(least) + AFFINITY_SLACK {
        own
    } else {
        least
    })
}

/// One of a worker's open connections, until dropped.
struct Open(&'static AtomicUsize);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
