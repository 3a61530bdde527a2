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
//!
//! `utrace gdb` looks longer ([`DEBUGGER_SPIN`], 300 µs, and the tracer
//! thread of the server it embeds as long): a debugger's exchange (gdb's
//! next packet after a stop reply, the next stop after a resume) takes a
//! few hundred microseconds, so a 60 µs look mostly ended just before it
//! and every thread slept and was woken. Measured with 1,000 breakpoint
//! hits and 1,000 `stepi` (gdbserver alongside, two runs each): a hit
//! 573-637 µs -> 297-351 µs (gdbserver 627-681), a step 359-382 ->
//! 191-221 µs (404-484), and the `utrace gdb` process's CPU time for the
//! session 650-683 -> 490-608 ms: it sleeps and wakes less.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a wait looks before it sleeps, by default.
pub const SPIN: Duration = Duration::from_micros(60);

/// How long a wait looks before it sleeps in a debugger's session
/// ([`set_default`] by `utrace gdb`): gdb's next packet, the server's
/// answer and the tracee's next stop come a few hundred microseconds
/// apart there, and a look of [`SPIN`] ends just before most of them.
pub const DEBUGGER_SPIN: Duration = Duration::from_micros(300);

/// How long a wait looks before it sleeps: `UTRACE_LOOK_US` from the
/// environment (microseconds, at most 1000; 0: never look), as the tracer
/// thread reads it too, or else this process's default ([`SPIN`] unless
/// [`set_default`] changed it).
pub fn spin() -> Duration {
    static FROM_ENV: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    FROM_ENV
        .get_or_init(|| spin_from_env(std::env::var("UTRACE_LOOK_US").ok().as_deref()))
        .unwrap_or_else(|| Duration::from_micros(DEFAULT_US.load(Ordering::Relaxed)))
}

/// The look's length when the environment does not say, in microseconds.
static DEFAULT_US: AtomicU64 = AtomicU64::new(SPIN.as_micros() as u64);

/// Make `look` (at most 1 ms) this process's look when `UTRACE_LOOK_US`
/// does not say otherwise (see [`DEBUGGER_SPIN`]).
pub fn set_default(look: Duration) {
    DEFAULT_US.store(look.as_micros().min(1000) as u64, Ordering::Relaxed);
}

/// The look's length for an `UTRACE_LOOK_US` value; `None` (the default)
/// without one or with one that is not a number.
fn spin_from_env(v: Option<&str>) -> Option<Duration> {
    match v.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(us)) => Some(Duration::from_micros(us.min(1000))),
        _ => None,
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
    fn the_environment_gives_the_look_or_leaves_the_default() {
        assert_eq!(super::spin_from_env(None), None);
        assert_eq!(super::spin_from_env(Some("0")), Some(Duration::ZERO));
        assert_eq!(
            super::spin_from_env(Some("2000")),
            Some(Duration::from_micros(1000))
        );
        assert_eq!(super::spin_from_env(Some("x")), None);
    }

    #[test]
    fn the_program_sets_the_default_look() {
        if std::env::var_os("UTRACE_LOOK_US").is_none() {
            assert_eq!(super::spin(), super::SPIN);
            super::set_default(super::DEBUGGER_SPIN);
            assert_eq!(super::spin(), super::DEBUGGER_SPIN);
            super::set_default(super::SPIN);
        }
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
