//! Gates: what a thread other than the tracer may know of a traced task, so
//! that it can read the task's memory itself while the task is stopped,
//! without a trip to the tracer thread and back.
//!
//! `process_vm_readv` needs ptrace *access* to the target (same credentials
//! or `CAP_SYS_PTRACE`), not to be its tracer: any thread of the tracer's
//! process may call it. What only the tracer thread knows is whether the
//! task is stopped, which engines are attached to it, and where breakpoint
//! `int3`s sit. The tracer publishes those here, under two sequence counts
//! used as seqlocks:
//!
//! - [`TaskGate::seq`]: even while the task sits in a ptrace stop, odd
//!   while it runs (bumped *before* it is resumed) and for good once it is
//!   gone from the tracer;
//! - [`ProcGate::gen`]: odd while the tracer changes the process's memory,
//!   its breakpoints or its engines.
//!
//! A reader loads both, reads, unpatches breakpoints from the published
//! list, and loads both again: if neither moved, the task was stopped and
//! its memory unchanged by the tracer for the whole read, so the bytes are
//! exactly what the tracer thread would have read at that moment. If either
//! moved, or anything at all fails, the reader gives up and the caller asks
//! the tracer thread instead, which gives the same answer (or the error)
//! the ordinary way. The other threads of the process may run meanwhile, as
//! they may during a read on the tracer thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustc_hash::FxHashMap;

use crate::breakpoint::Breakpoints;
use crate::engine::EngineId;
use crate::journal::{start_time, Journal};
use crate::sys::Tid;
use crate::task::ScatterRead;

/// What readers may know of one traced process.
#[derive(Debug)]
pub(crate) struct ProcGate {
    pid: Tid,
    /// Odd while the tracer changes the process's memory, breakpoints or
    /// engines.
    gen: AtomicU64,
    view: RwLock<ProcView>,
    /// The breakpoint journal (its keeper restores bytes if the tracer
    /// dies), and the process's start time, which names it there.
    journal: Option<(Arc<Journal>, u64)>,
    /// Some thread may have debug registers armed (as told the keeper).
    debug_armed: AtomicBool,
}

#[derive(Debug, Default)]
struct ProcView {
    /// Engines attached to the process.
    engines: Vec<EngineId>,
    /// Breakpoint sites: (address, original byte), by address.
    bps: Vec<(u64, u8)>,
    /// Of those, the `int3`s (what the keeper knows of).
    int3s: Vec<(u64, u8)>,
}

impl ProcGate {
    pub fn new(pid: Tid, engines: &[EngineId], journal: Option<&Arc<Journal>>) -> Arc<ProcGate> {
        let journal = journal.and_then(|j| Some((Arc::clone(j), start_time(pid)?)));
        Arc::new(ProcGate {
            pid,
            gen: AtomicU64::new(0),
            view: RwLock::new(ProcView {
                engines: engines.to_vec(),
                bps: Vec::new(),
                int3s: Vec::new(),
            }),
            journal,
            debug_armed: Default::default(),
        })
    }

    /// Whether the process has hardware breakpoints or watchpoints now:
    /// the keeper clears the debug registers of its threads if the tracer
    /// dies while it has.
    pub fn set_debug_armed(&self, armed: bool) {
        if self.debug_armed.swap(armed, SeqCst) != armed {
            if let Some((j, start)) = &self.journal {
                j.record_debug_regs(self.pid, *start, armed);
            }
        }
    }

    /// Readers retry until the returned guard is dropped. Nested guards
    /// are fine (only the outermost one counts); only the tracer thread
    /// takes them.
    pub fn changing(&self) -> Changing<'_> {
        let g = self.gen.load(SeqCst);
        if g & 1 == 1 {
            return Changing(None);
        }
        self.gen.store(g + 1, SeqCst);
        Changing(Some(self))
    }

    /// The engines attached to the process are now `engines`.
    pub fn set_engines(&self, engines: &[EngineId]) {
        let _c = self.changing();
        let mut v = self.view.write().unwrap_or_else(PoisonError::into_inner);
        v.engines.clear();
        v.engines.extend_from_slice(engines);
    }

    /// The process's breakpoints are now `bps`. Call it while the memory
    /// holds what `bps` says (inside the [`ProcGate::changing`] of the
    /// write that made it so).
    pub fn set_breakpoints(&self, bps: &Breakpoints) {
        let _c = self.changing();
        let mut v = self.view.write().unwrap_or_else(PoisonError::into_inner);
        v.bps.clear();
        v.bps.extend(bps.originals());
        // The keeper restores int3s only: the kernel takes uprobes out.
        let was_empty = v.int3s.is_empty();
        v.int3s.clear();
        v.int3s.extend(bps.int3s());
        if let Some((j, start)) = &self.journal {
            if !(was_empty && v.int3s.is_empty()) {
                j.record(self.pid, *start, &v.int3s);
            }
        }
    }
}

impl Drop for ProcGate {
    fn drop(&mut self) {
        // The process is gone from the tracer: the keeper forgets it.
        if let Some((j, start)) = &self.journal {
            let v = self.view.get_mut().unwrap_or_else(PoisonError::into_inner);
            if !v.int3s.is_empty() {
                j.record(self.pid, *start, &[]);
            }
            if *self.debug_armed.get_mut() {
                j.record_debug_regs(self.pid, *start, false);
            }
        }
    }
}

/// While alive, readers of the process's memory retry (see
/// [`ProcGate::changing`]).
pub(crate) struct Changing<'a>(Option<&'a ProcGate>);

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            p.gen.fetch_add(1, SeqCst);
        }
    }
}

/// What readers may know of one traced thread.
#[derive(Debug)]
pub(crate) struct TaskGate {
    /// Even while the thread sits in a ptrace stop; odd otherwise.
    seq: AtomicU64,
    /// The tracer forgot the thread (detached, dead, or its tid moved).
    closed: AtomicBool,
    proc: Arc<ProcGate>,
}

impl TaskGate {
    /// A gate for a running thread of the process behind `proc`.
    pub fn new(proc: Arc<ProcGate>) -> Arc<TaskGate> {
        Arc::new(TaskGate {
            seq: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            proc,
        })
    }

    /// The thread is now stopped (`true`) or about to run (`false`: call it
    /// before resuming the thread).
    pub fn set_stopped(&self, stopped: bool) {
        if self.closed.load(SeqCst) {
            return;
        }
        let s = self.seq.load(SeqCst);
        if (s & 1 == 0) != stopped {
            self.seq.store(s + 1, SeqCst);
        }
    }

    /// The thread's tid changed (a non-leader exec took the leader's): close
    /// this gate, which readers found under the old tid, and give the
    /// thread a new one over the same process, reading as running until
    /// the next [`TaskGate::set_stopped`].
    pub fn renew(&self) -> Arc<TaskGate> {
        self.close();
        TaskGate::new(Arc::clone(&self.proc))
    }

    /// The tracer forgot the thread: no reader may use this gate again.
    pub fn close(&self) {
        self.set_stopped(false);
        self.closed.store(true, SeqCst);
    }

    /// Read `ranges` as `engine` while the thread stays stopped (see the
    /// module docs); `None` if that cannot be done from here, now.
    fn read(&self, engine: EngineId, ranges: &[(u64, usize)]) -> Option<ScatterRead> {
        let s1 = self.seq.load(SeqCst);
        let g1 = self.proc.gen.load(SeqCst);
        if s1 & 1 == 1 || g1 & 1 == 1 {
            return None;
        }
        {
            let v = self
                .proc
                .view
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if !v.engines.contains(&engine) {
                return None;
            }
        }
        let mut buf = crate::task::read_whole(self.proc.pid, ranges)?;
        {
            let v = self
                .proc
                .view
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if !v.bps.is_empty() {
                let mut off = 0;
                for &(addr, len) in ranges {
                    unpatch(&v.bps, addr, &mut buf[off..off + len]);
                    off += len;
                }
            }
        }
        if self.proc.gen.load(SeqCst) != g1 || self.seq.load(SeqCst) != s1 {
            return None;
        }
        Some(ScatterRead { buf, got: None })
    }
}

/// Show the original bytes of `bps` (sorted by address) in `data`, read at
/// `addr`.
fn unpatch(bps: &[(u64, u8)], addr: u64, data: &mut [u8]) {
    let end = addr.saturating_add(data.len() as u64);
    let first = bps.partition_point(|&(a, _)| a < addr);
    for &(a, orig) in bps[first..].iter().take_while(|&&(a, _)| a < end) {
        data[(a - addr) as usize] = orig;
    }
}

/// Gates of the threads read lately, by tid: shared by every handle of one
/// tracer. Filled by reads through the tracer thread, so the first read of
/// a thread takes that path and later ones need not.
#[derive(Debug, Default)]
pub(crate) struct Gates {
    map: Mutex<FxHashMap<Tid, Arc<TaskGate>>>,
    /// Reads answered from the calling thread.
    pub direct: AtomicU64,
    /// Reads that had to go to the tracer thread.
    pub routed: AtomicU64,
}

/// Closed gates are swept out of [`Gates`] when it grows past this.
const GATES_SWEEP: usize = 4096;

impl Gates {
    /// Remember `gate` for thread `tid`.
    pub fn remember(&self, tid: Tid, gate: Arc<TaskGate>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= GATES_SWEEP {
            map.retain(|_, g| !g.closed.load(SeqCst));
        }
        map.insert(tid, gate);
    }

    /// Read `ranges` of thread `tid` as `engine` from the calling thread, if
    /// its gate allows it now; `None`: ask the tracer thread.
    pub fn read(&self, engine: EngineId, tid: Tid, ranges: &[(u64, usize)]) -> Option<ScatterRead> {
        let gate = {
            let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(&tid).cloned()
        };
        let r = gate.and_then(|g| g.read(engine, ranges));
        match &r {
            Some(_) => self.direct.fetch_add(1, SeqCst),
            None => self.routed.fetch_add(1, SeqCst),
        };

        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpatch_replaces_only_bytes_in_range() {
        let bps = [(10, 0xaa), (12, 0xbb), (20, 0xcc)];
        let mut d = [0u8; 4];
        unpatch(&bps, 11, &mut d);
        assert_eq!(d, [0, 0xbb, 0, 0]);
        let mut d = [0u8; 11];
        unpatch(&bps, 10, &mut d);
        assert_eq!(d, [0xaa, 0, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0xcc]);
        let mut d = [0u8; 0];
        unpatch(&bps, 10, &mut d);
    }

    #[test]
    fn changing_nests_and_leaves_gen_even() {
        let p = ProcGate::new(1, &[], None);
        {
            let _a = p.changing();
            assert_eq!(p.gen.load(SeqCst) & 1, 1);
            {
                let _b = p.changing();
            }
            assert_eq!(p.gen.load(SeqCst) & 1, 1, "inner guard leaves it odd");
        }
        assert_eq!(p.gen.load(SeqCst), 2);
    }

    #[test]
    fn a_closed_gate_stays_shut() {
        let t = TaskGate::new(ProcGate::new(1, &[EngineId(1)], None));
        t.set_stopped(true);
        assert_eq!(t.seq.load(SeqCst) & 1, 0);
        t.close();
        t.set_stopped(true);
        assert_eq!(t.seq.load(SeqCst) & 1, 1);
        assert!(t.read(EngineId(1), &[(0, 1)]).is_none());
    }
}
