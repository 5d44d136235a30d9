//! Runs a connection beside the signals that can end it early, polling those signals only when
//! one of them woke the task: each poll of a drain or close token takes that port-wide token's
//! locks, which every worker shares, and a busy connection is polled several times a request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Which of the two finished first.
pub enum Finished<C, S> {
    Connection(C),
    Signal(S),
}

/// Polls `connection` on every wake-up and `signals` on the first poll and after their own
/// waker fired.
pub struct Watched<C, S> {
    connection: C,
    signals: S,
    wake: Arc<SignalWake>,
    signals_waker: Waker,
}

/// The waker handed to the signals: it marks them due and wakes the task.
struct SignalWake {
    due: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SignalWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<C, S> Watched<C, S> {
    pub fn new(connection: C, signals: S) -> Self {
        let wake = Arc::new(SignalWake {
            due: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Watched {
            connection,
            signals,
            signals_waker: Waker::from(wake.clone()),
            wake,
        }
    }
}

impl<C: Future + Unpin, S: Future + Unpin> Future for Watched<C, S> {
    type Output = Finished<C::Output, S::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Registered before `due` is read, so a signal firing in between wakes this task again.
        this.wake.task.register(cx.waker());
        if let Poll::Ready(out) = Pin::new(&mut this.connection).poll(cx) {
            return Poll::Ready(Finished::Connection(out));
        }
        if this.wake.due.swap(false, Ordering::AcqRel) {
            let mut signals_cx = Context::from_waker(&this.signals_waker);
            if let Poll::Ready(out) = Pin::new(&mut this.signals).poll(&mut signals_cx) {
                return Poll::Ready(Finished::Signal(out));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls and resolves once `open` is set.
    struct Probe {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waker: Arc<parking_lot::Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            *self.waker.lock() = Some(cx.waker().clone());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    type Handles = (
        Arc<AtomicUsize>,
        Arc<AtomicBool>,
        Arc<parking_lot::Mutex<Option<Waker>>>,
    );

    fn probe() -> (Probe, Handles) {
        let (polls, open, waker): Handles = Default::default();
        let p = Probe {
            polls: Arc::clone(&polls),
            open: Arc::clone(&open),
            waker: Arc::clone(&waker),
        };
        (p, (polls, open, waker))
    }

    /// A task waker that counts its wake-ups.
    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_connection_waking_does_not_poll_the_signals_and_a_signal_is_not_missed() {
        let (connection, (connection_polls, _, connection_waker)) = probe();
        let (signals, (signal_polls, signal_open, signal_waker)) = probe();
        let mut watched = Watched::new(connection, signals);
        let task = Arc::new(Counted(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        assert!(Pin::new(&mut watched).poll(&mut cx).is_pending());
        assert_eq!(signal_polls.load(Ordering::SeqCst), 1, "polled once to arm");
        for _ in 0..5 {
            connection_waker.lock().take().unwrap().wake();
            assert!(Pin::new(&mut watched).poll(&mut cx).is_pending());
        }
        assert_eq!(connection_polls.load(Ordering::SeqCst), 6);
        assert_eq!(
            signal_polls.load(Ordering::SeqCst),
            1,
            "the signals were not due"
        );
        signal_open.store(true, Ordering::SeqCst);
        let wakes = task.0.load(Ordering::SeqCst);
        signal_waker.lock().take().unwrap().wake();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            wakes + 1,
            "the signal woke the task"
        );
        match Pin::new(&mut watched).poll(&mut cx) {
            Poll::Ready(Finished::Signal(())) => {}
            _ => panic!("the signal that woke the task ends it"),
        }
    }

    #[test]
    fn a_finished_connection_wins() {
        let (connection, (_, connection_open, _)) = probe();
        let (signals, _) = probe();
        connection_open.store(true, Ordering::SeqCst);
        let mut watched = Watched::new(connection, signals);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(&mut watched).poll(&mut cx),
            Poll::Ready(Finished::Connection(()))
        ));
    }
}
