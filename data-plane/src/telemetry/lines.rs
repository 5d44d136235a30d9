//! Access-log lines gathered in one bounded buffer and written by one thread: a request pays
//! a short lock and a copy. The writer keeps its own time while lines keep coming and parks
//! only after an interval without any, so under traffic no request wakes it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Bytes that may wait for the writer; lines beyond are dropped (and counted), so a stalled
/// stdout cannot grow memory.
const MAX_PENDING: usize = 4 << 20;
/// How long the writer lets lines gather between writes: one write per this interval at most,
/// at any request rate.
const GATHER: Duration = Duration::from_millis(5);
/// How long shutdown waits for buffered lines to be written to a stdout that may be stalled.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
    dropped: AtomicU64,
    /// How often a line had to wake the parked writer.
    #[cfg(test)]
    wakes: AtomicU64,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// The writer waits for a line; the next one wakes it.
    parked: bool,
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
            #[cfg(test)]
            wakes: AtomicU64::new(0),
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
        pending.buf.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.parked);
        drop(pending);
        if wake {
            #[cfg(test)]
            self.shared.wakes.fetch_add(1, Ordering::Relaxed);
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
    let mut closed = false;
    loop {
        if !closed {
            std::thread::sleep(GATHER);
        }
        let mut pending = shared.pending.lock();
        if pending.buf.is_empty() && !pending.closed {
            // A whole interval brought no line: wait for one, then let more gather.
            pending.parked = true;
            while pending.parked && !pending.closed {
                shared.ready.wait(&mut pending);
            }
            continue;
        }
        std::mem::swap(&mut pending.buf, &mut batch);
        closed = pending.closed;
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

    /// Output that records what it got at once.
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
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
    fn steady_lines_do_not_wake_the_writer() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let (writer, guard) = LineWriter::spawn(Sink(got.clone())).unwrap();
        // Lines well inside the gather interval of each other: the writer finds each
        // interval's lines itself, where waking it per batch would take one wake-up each.
        // Only a pause of the writing thread (a loaded machine) may let it park.
        let lines = 2000;
        let mut pauses = 0;
        #[expect(
            clippy::disallowed_methods,
            reason = "measures this thread's own pauses"
        )]
        let mut last = std::time::Instant::now();
        for i in 0..lines {
            writer.write_line(format!("line {i}\n").as_bytes());
            std::thread::sleep(GATHER * 40 / lines);
            #[expect(
                clippy::disallowed_methods,
                reason = "measures this thread's own pauses"
            )]
            let now = std::time::Instant::now();
            pauses += u64::from(now - last >= GATHER);
            last = now;
        }
        let wakes = writer.shared.wakes.load(Ordering::Relaxed);
        drop(guard);
        assert_eq!(got.lock().iter().filter(|&&b| b == b'\n').count(), 2000);
        assert!(
            wakes <= 1 + pauses,
            "the writer was woken {wakes} times ({pauses} pauses of the writing thread)"
        );
    }

    #[test]
    fn a_line_after_a_quiet_spell_wakes_the_writer() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let (writer, _guard) = LineWriter::spawn(Sink(got.clone())).unwrap();
        while !writer.shared.pending.lock().parked {
            std::thread::sleep(GATHER);
        }
        writer.write_line(b"late\n");
        for _ in 0..200 {
            if !got.lock().is_empty() {
                break;
            }
            std::thread::sleep(GATHER);
        }
        assert_eq!(got.lock().as_slice(), b"late\n");
        assert_eq!(writer.shared.wakes.load(Ordering::Relaxed), 1);
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
