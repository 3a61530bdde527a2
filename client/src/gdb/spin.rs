//! Waiting without sleeping, for a while: the bridge's thread looks again
//! for what it waits for (the debugger's next packet, a server's answer)
//! for up to [`SPIN`], giving its CPU away between looks, before it
//! sleeps.
//!
//! gdb talks to a server in short exchanges: a packet, its answer, gdb's
//! next packet a few microseconds later. A thread that sleeps between them
//! is woken for each, and on a small VM a wake-up on the other CPU costs
//! tens of microseconds (an interrupt to a halted virtual CPU): gdb's
//! `x/4096gx` through the bridge took 80 µs a packet, of which the
//! bridge's own work was under 10. Looking again first, the packet is
//! usually there before the look ends. The look yields the CPU each time
//! round (`sched_yield`), so a debugger or server on the same CPU runs
//! meanwhile, and it is bounded: a wait that outlasts it sleeps as before.
//! Only a conversation in full flow looks (the last wait was short): a
//! debugger at its prompt, or a program running to its next stop, costs
//! one look at most.
//!
//! The runtime that carries the bridge's calls (and, in `utrace gdb`, the
//! server it embeds) looks too, through [`before_park`]: its worker thread
//! passes each stop report and each decision between the bridge and the
//! tracer thread, and a worker asleep is one more wake-up each way. It
//! cannot see what it waits for, so it looks only while the bridge was
//! busy within [`HOT`], and for [`SPIN`] at most.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a wait looks before it sleeps.
pub const SPIN: Duration = Duration::from_micros(60);

/// A wait looks only if the last one took at most this long.
pub const HOT: Duration = Duration::from_micros(300);

/// This process's clock for [`LAST_BUSY`].
fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let ns = START.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// When a bridge last took an input or an answer ([`now_ns`]).
static LAST_BUSY: AtomicU64 = AtomicU64::new(0);

/// A bridge took an input or an answer now.
pub fn busy() {
    LAST_BUSY.store(now_ns(), Ordering::Relaxed);
}

/// For the runtime's `on_thread_park`: while a bridge was busy within
/// [`HOT`], its worker looks for [`SPIN`] (yielding) before it sleeps. A
/// task woken meanwhile is found when the worker goes to park, with no
/// sleep and no wake-up.
pub fn before_park() {
    let last = LAST_BUSY.load(Ordering::Relaxed);
    if last != 0 && now_ns().saturating_sub(last) <= HOT.as_nanos() as u64 {
        look(|| false);
    }
}

/// Looks for `ready` until it says yes or [`SPIN`] has passed, yielding
/// the CPU between looks: whether it said yes.
pub fn look(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= SPIN {
            return false;
        }
        std::thread::yield_now();
    }
}

/// The waiting thread's flag, set by the future's waker.
struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        // Cheap while the thread is looking (nothing to unpark).
        self.thread.unpark();
    }
}

/// `fut` run to its end on this thread, inside `rt`'s context (as
/// [`tokio::runtime::Handle::block_on`]): each time it waits, looked for
/// for a while before the thread sleeps.
pub fn block_on<F: Future>(rt: &tokio::runtime::Handle, fut: F) -> F::Output {
    let _inside = rt.enter();
    let mut fut = std::pin::pin!(fut);
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            busy();
            return out;
        }
        let woken = || signal.woken.swap(false, Ordering::Acquire);
        if !look(woken) {
            // Parks until unparked (a wake-up that came after the last
            // look left the token, so this returns at once); a spurious
            // return looks at the flag again.
            while !woken() {
                std::thread::park();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_future_woken_from_another_thread_finishes_whether_or_not_it_was_looked_for() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("runtime");
        for delay in [0, 10, 200, 5_000] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(delay));
                let _ = tx.send(delay);
            });
            assert_eq!(super::block_on(rt.handle(), rx), Ok(delay));
            sender.join().expect("sender");
        }
        // A timer of the runtime, as the bridge's ordered batches use.
        let slept = super::block_on(rt.handle(), async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            7
        });
        assert_eq!(slept, 7);
    }
}
