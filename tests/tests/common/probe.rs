//! A breakpoint engine for tests and benches (the fault and breakpoint
//! benches include this file by path): it puts one breakpoint at the
//! program's first `getppid` and counts the hits, with and without stops.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use utrace_engines::{
    Action, BreakpointHit, Engine, EngineOptions, EventMask, ExitReport, SyscallEntry, SyscallSet,
    Task,
};

#[derive(Default)]
pub struct Counts {
    /// Hits without a stop (uprobe).
    pub hits: AtomicU64,
    /// Hits the kernel could not record.
    pub lost: AtomicU64,
    /// Hits at a stop (int3).
    pub stops: AtomicU64,
    /// Threads seen hitting.
    pub tids: std::sync::Mutex<std::collections::BTreeSet<i32>>,
    /// Where the breakpoint went (0: not yet).
    pub addr: AtomicU64,
    /// `rip` in the last hit's registers.
    pub last_rip: AtomicU64,
    pub gone: AtomicBool,
}

impl Counts {
    pub fn all_hits(&self) -> u64 {
        self.hits.load(SeqCst) + self.lost.load(SeqCst) + self.stops.load(SeqCst)
    }
}

/// Where a [`Prober`] puts its breakpoint, at the program's first
/// `getppid` (made through libc's `syscall()`, a leaf function): where the
/// syscall returns to in libc, or where `syscall()` returns to in the
/// program. Both run once per call. Tests that put an int3 somewhere use
/// a location no other test of this file uses: uprobes are per location,
/// not per process, and an int3 where another test's uprobe is turns that
/// one into an int3 too (by design: see `uprobe::Keys`).
#[derive(Clone, Copy)]
pub enum Where {
    InLibc,
    InProgram,
}

/// Inserts a breakpoint (see [`Where`]), then wants no more syscalls;
/// counts the hits.
pub struct Prober(pub Arc<Counts>, pub Where);

impl Engine for Prober {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, _call: &SyscallEntry) -> Action {
        if self.0.addr.load(SeqCst) == 0 {
            let addr = match self.1 {
                Where::InLibc => task.register("rip").expect("rip"),
                Where::InProgram => {
                    let rsp = task.register("rsp").expect("rsp");
                    let r = task.read_memory(rsp, 8);
                    u64::from_ne_bytes(r.data[..8].try_into().expect("8 bytes"))
                }
            };
            task.insert_breakpoint(addr).expect("insert");
            self.0.addr.store(addr, SeqCst);
            task.set_events(EventMask::BREAKPOINT | EventMask::DEATH);
        }
        Action::Resume
    }

    fn report_breakpoint_hit(&mut self, hit: &BreakpointHit) {
        self.0.hits.fetch_add(1, SeqCst);
        self.0
            .last_rip
            .store(hit.register("rip").unwrap_or(0), SeqCst);
        self.0.tids.lock().unwrap().insert(hit.tid);
    }

    fn report_breakpoint_hits_lost(&mut self, _pid: i32, _addr: u64, lost: u64) {
        self.0.lost.fetch_add(lost, SeqCst);
    }

    fn report_breakpoint(&mut self, task: &mut Task<'_>, _addr: u64) -> Action {
        self.0.stops.fetch_add(1, SeqCst);
        self.0.tids.lock().unwrap().insert(task.tid());
        Action::Resume
    }

    fn report_death(&mut self, death: &ExitReport) {
        if death.process_gone {
            self.0.gone.store(true, SeqCst);
        }
    }
}

pub fn prober_opts(hits: bool) -> EngineOptions {
    EngineOptions::new(EventMask::SYSCALL_ENTRY | EventMask::BREAKPOINT | EventMask::DEATH)
        .syscalls(SyscallSet::from_names(["getppid"]).unwrap())
        .breakpoint_hits(hits)
}
