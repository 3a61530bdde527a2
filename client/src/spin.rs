//! Waiting without sleeping, for a while: a thread looks again for what
//! it waits for for up to [`SPIN`], giving its CPU away between looks,
//! before it sleeps.
//!
//! A debugger, a tracer and their servers talk in short exchanges: a
//! packet or a stop, its answer, the next one a few microseconds later. A
//! thread that sleeps between them is woken for each, and on a small VM
//! that is most of the time: gdb's `x/4096gx` through `utrace gdb` took
//! 80 µs a packet, of which the bridge's own work was under 10, and 16 µs
//! a packet with gdb, the bridge and the program pinned to one CPU. With
//! the looks it took 29-36 µs a packet (unpinned, 119-147 ms). The look
//! yields the CPU each time round (`sched_yield`), so a debugger, a
//! tracee or a server on the same CPU may run meanwhile; and it is bounded:
//! a wait that outlasts it sleeps as before. Only an exchange in full flow
//! looks (the last wait was at most [`HOT`]): a debugger at its prompt, or
//! a program running to its next stop, costs one look at most.
//!
//! Used by the gdb bridge's thread (its waits for the debugger, and
//! [`block_on`] for its calls) and by the `utrace` command's runtime
//! ([`before_park`] and [`after_unpark`], the worker that carries the
//! calls between the command and the server it embeds).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a wait looks before it sleeps, by default.
pub const SPIN: Duration = Duration::from_micros(60);

/// How long a wait looks before it sleeps: [`SPIN`], or `UTRACE_LOOK_US`
/// from the environment (microseconds, at most 1000; 0: never look), as
/// the tracer thread reads it too.
pub fn spin() -> Duration {
    static LOOK: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *LOOK.get_or_init(|| spin_from_env(std::env::var("UTRACE_LOOK_US").ok().as_deref()))
}

/// The look's length for an `UTRACE_LOOK_US` value; [`SPIN`] without one
/// or with one that is not a number.
fn spin_from_env(v: Option<&str>) -> Duration {
    match v.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(us)) => Duration::from_micros(us.min(1000)),
        _ => SPIN,
    }
}

/// A wait looks only if the last one took at most this long.
pub const HOT: Duration = Duration::from_micros(300);

thread_local! {
    /// When this runtime worker went to park (after its look).
    static PARKED_AT: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// How long its last park lasted.
    static LAST_IDLE: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::MAX) };
}

/// Whether [`before_park`] looks at all: only where tasks are woken from
/// this process's other threads (a server embedded here, its tracer
/// thread). Tasks woken by a socket's readiness are not in the queue it
/// looks at, and would only wait out the look.
static PARK_LOOKS: AtomicBool = AtomicBool::new(false);

/// Let [`before_park`] look (see [`PARK_LOOKS`]).
pub fn park_looks(on: bool) {
    PARK_LOOKS.store(on, Ordering::Relaxed);
}

/// For a runtime's `on_thread_park`: a worker whose last park was short
/// looks for [`SPIN`] (yielding) for a task woken from another thread (in
/// the runtime's global queue, where such wake-ups go) before it parks;
/// the task is then found as it goes to park, with no sleep and no
/// wake-up. Only once [`park_looks`] said so.
pub fn before_park() {
    if PARK_LOOKS.load(Ordering::Relaxed) && LAST_IDLE.get() <= HOT {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let metrics = rt.metrics();
            look(|| metrics.global_queue_depth() > 0);
        }
    }
    PARKED_AT.set(Some(Instant::now()));
}

/// For a runtime's `on_thread_unpark`: how long the park lasted.
pub fn after_unpark() {
    if let Some(t) = PARKED_AT.take() {
        LAST_IDLE.set(t.elapsed());
    }
}

/// Looks for `ready` until it says yes or [`SPIN`] has passed, yielding
/// the CPU between looks: whether it said yes.
pub fn look(mut ready: impl FnMut() -> bool) -> bool {
    let budget = spin();
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= budget {
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
/// for a while before the thread sleeps. For a thread that may block (the
/// bridge's own, or the runtime's blocking pool), never a runtime worker.
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
    fn the_look_is_spin_unless_the_environment_says_otherwise() {
        assert_eq!(super::spin_from_env(None), super::SPIN);
        assert_eq!(super::spin_from_env(Some("0")), Duration::ZERO);
        assert_eq!(
            super::spin_from_env(Some("2000")),
            Duration::from_micros(1000)
        );
        assert_eq!(super::spin_from_env(Some("x")), super::SPIN);
    }

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
