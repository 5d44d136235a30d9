//! Access-log lines gathered in one bounded buffer and written by one thread: a request pays
//! a short lock and a copy, never a syscall or a wake-up of its own.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Bytes that may wait for the writer; lines beyond are dropped (and counted), so a stalled
/// stdout cannot grow memory.
const MAX_PENDING: usize = 4 << 20;
/// How long the writer lets lines gather after the first one arrives: one write per this
/// interval at most, at any request rate.
const GATHER: Duration = Duration::from_millis(5);
/// How long shutdown waits for buffered lines to be written to a stdout that may be stalled.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    closed: bool,
    /// The writer has written everything and stopped.
    finished: bool,
}

/// The producing side, cloned into every applied config.
#[derive(Clone)]
pub struct LineWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread once everything buffered is written, waiting at most
/// [`SHUTDOWN_WAIT`] for it.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LineWriter {
    /// A writer thread that writes gathered lines to `out`.
    pub fn spawn(out: impl Write + Send + 'static) -> std::io::Result<(LineWriter, WriterGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, out)
            })?;
        let guard = WriterGuard {
            shared: shared.clone(),
            thread: Some(thread),
        };
        Ok((LineWriter { shared }, guard))
    }

    /// Queues one complete line (dropped when the buffer is full).
    pub fn write_line(&self, line: &[u8]) {
        let mut pending = self.shared.pending.lock();
        if pending.buf.len() + line.len() > MAX_PENDING {
            drop(pending);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = pending.buf.is_empty();
        pending.buf.extend_from_slice(line);
        drop(pending);
        if first {
            self.shared.ready.notify_one();
        }
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let mut pending = self.shared.pending.lock();
        pending.closed = true;
        self.shared.ready.notify_all();
        let stalled = self
            .shared
            .ready
            .wait_while_for(&mut pending, |p| !p.finished, SHUTDOWN_WAIT)
            .timed_out();
        drop(pending);
        match self.thread.take() {
            Some(thread) if !stalled => {
                let _ = thread.join();
            }
            // A stdout that does not drain must not hold the process: the thread is left.
            _ => tracing::warn!("access-log lines still unwritten at shutdown: stdout is stalled"),
        }
    }
}

fn run(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.pending.lock();
        while pending.buf.is_empty() && !pending.closed {
            shared.ready.wait(&mut pending);
        }
        if !pending.closed {
            drop(pending);
            std::thread::sleep(GATHER);
            pending = shared.pending.lock();
        }
        std::mem::swap(&mut pending.buf, &mut batch);
        let closed = pending.closed;
        drop(pending);
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // A burst's capacity is not kept for the quiet that follows.
        batch.shrink_to(64 * 1024);
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                lines = dropped,
                "access-log lines dropped: stdout does not keep up"
            );
        }
        let mut pending = shared.pending.lock();
        if closed && pending.buf.is_empty() {
            pending.finished = true;
            shared.ready.notify_all();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// Output that blocks until the test lets it go, then records what it got.
    struct Gate {
        open: mpsc::Receiver<()>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.open.recv();
            self.got.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn gated() -> (
        LineWriter,
        WriterGuard,
        mpsc::Sender<()>,
        Arc<Mutex<Vec<u8>>>,
    ) {
        let (open, rx) = mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate {
            open: rx,
            got: got.clone(),
        };
        let (writer, guard) = LineWriter::spawn(gate).unwrap();
        (writer, guard, open, got)
    }

    #[test]
    fn every_line_is_written_by_shutdown_in_order() {
        let (writer, guard, open, got) = gated();
        for i in 0..1000 {
            writer.write_line(format!("line {i}\n").as_bytes());
        }
        drop(open);
        drop(guard);
        let got = String::from_utf8(got.lock().clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn shutdown_does_not_wait_for_a_stalled_output_forever() {
        let (writer, guard, open, _got) = gated();
        writer.write_line(b"stuck\n");
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(SHUTDOWN_WAIT * 5);
        drop(open);
        assert!(waited.is_ok(), "shutdown hung on a stalled stdout");
    }

    #[test]
    fn a_stalled_output_bounds_the_buffer_and_drops_lines() {
        let (writer, guard, open, got) = gated();
        let line = vec![b'x'; 1024];
        // The writer takes the first batch and blocks in `write`; the rest must stay bounded.
        writer.write_line(&line);
        std::thread::sleep(GATHER * 4);
        for _ in 0..(2 * MAX_PENDING / line.len()) {
            writer.write_line(&line);
        }
        assert!(writer.shared.pending.lock().buf.len() <= MAX_PENDING);
        assert!(writer.shared.dropped.load(Ordering::Relaxed) > 0);
        drop(open);
        drop(guard);
        assert!(got.lock().len() <= MAX_PENDING + line.len());
    }
}
