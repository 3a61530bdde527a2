//! Following a fork as gdb asks (`set follow-fork-mode`, `catch fork`).
//!
//! The bridge's engine follows children. A fork holds the parent at its
//! clone report, and the child at its first instruction (its start
//! report, after the parent's); gdb then hears of the fork, with both
//! stopped, as from gdbserver (`T05fork:pCHILD.CHILD;thread:pPARENT…`).
//! gdb takes its breakpoints out of the child (none are there: the
//! server's are per process, and a fork child starts without them), and
//! detaches the side it does not follow with `D;PID`, which the link turns
//! into the monitor command [`super::link::LEAVE`]: the engine leaves that
//! process alone ([`crate::Client::leave_process`]), and when it is the
//! parent, the child becomes the debugged process. A vfork child is let go
//! at its start (vfork events are not offered: gdb would have to take its
//! breakpoints out of the parent's memory, which the child shares, until
//! the child execs). gdb's `detach-on-fork off` (both processes debugged
//! at once) is not served: the other side stays held until gdb detaches
//! it or the session ends.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use utrace_proto::v1 as pb;

use super::target::{Bridge, BridgeError, Held, StopReason};

/// Forks not settled yet.
#[derive(Default)]
pub struct Forks {
    /// By the child's pid.
    pending: BTreeMap<u32, Pending>,
    /// Shared with the link, where the count of those gdb has heard of
    /// goes (`Common::forking`: a `D;PID` then detaches one process, see
    /// [`super::link::LEAVE`]).
    pub(super) reported: Arc<super::link::Common>,
}

/// Most forks waiting for their child's start at once (a program forking
/// in many threads at once); past it the oldest is let go.
const MAX_PENDING: usize = 64;

#[derive(Clone, Copy, Debug)]
struct Pending {
    /// The forking thread, held by its clone report `parent_seq`.
    parent_tid: u32,
    parent_seq: u64,
    /// The child's start report, once it came (and gdb was told).
    child_seq: Option<u64>,
}

impl Forks {
    /// Whether `pid` is a fork child not settled yet.
    pub(super) fn has(&self, pid: u32) -> bool {
        self.pending.contains_key(&pid)
    }

    fn count(&self) {
        let n = self
            .pending
            .values()
            .filter(|p| p.child_seq.is_some())
            .count();
        self.reported.forking.store(n as u32, Ordering::SeqCst);
    }

    /// Fork child `pid` died before gdb settled it.
    pub(super) fn gone(&mut self, pid: u32) {
        if self.pending.remove(&pid).is_some() {
            self.count();
        }
    }

    pub(super) fn clear(&mut self) {
        self.pending.clear();
        self.count();
    }
}

impl Bridge {
    /// A clone report: if it is a fork's (held: the engine holds
    /// clones), the parent waits for its child's start, and `true`. A
    /// vfork or a thread: `false` (the caller lets it go).
    pub(super) fn on_fork(&mut self, ev: &pb::Event, c: &pb::Clone) -> Result<bool, BridgeError> {
        if c.kind != "fork" || !ev.held {
            return Ok(false);
        }
        if self.forks.pending.len() >= MAX_PENDING {
            if let Some((&old, _)) = self.forks.pending.iter().next() {
                self.forks.pending.remove(&old);
                self.leave_quietly(old);
            }
        }
        self.forks.pending.insert(
            c.child_pid,
            Pending {
                parent_tid: ev.tid,
                parent_seq: ev.seq,
                child_seq: None,
            },
        );
        self.hold_report(ev, None)?;
        Ok(true)
    }

    /// A followed child's start: the fork gdb hears of, if its parent is
    /// still held at it; else (a vfork child, or one whose parent gdb
    /// resumed meanwhile) the engine leaves the child.
    pub(super) fn on_child_start(
        &mut self,
        ev: &pb::Event,
    ) -> Result<Option<StopReason>, BridgeError> {
        let child = ev.pid;
        let parent_tid = self
            .forks
            .pending
            .get(&child)
            .filter(|p| {
                self.threads_held_by(p.parent_tid) == Some(p.parent_seq) && p.child_seq.is_none()
            })
            .map_or(0, |p| p.parent_tid);
        let (Some(new_tid), Some(cur_tid)) = (
            NonZeroUsize::new(child as usize),
            NonZeroUsize::new(parent_tid as usize),
        ) else {
            self.forks.pending.remove(&child);
            self.leave_quietly(child);
            return Ok(None);
        };
        if let Some(p) = self.forks.pending.get_mut(&child) {
            p.child_seq = Some(ev.seq);
        }
        self.forks.count();
        // Held until gdb detaches one side or the other.
        self.decide_hold(ev.seq)?;
        self.stop_all(false)?;
        Ok(Some(StopReason::Fork { cur_tid, new_tid }))
    }

    /// gdb detached `pid` (`D;PID`, through the link's monitor command)
    /// while a fork was unsettled: a fork child it does not follow is let
    /// go; the debugged process itself (gdb follows the child) is left,
    /// and the child is debugged from now on.
    pub(super) fn leave(&mut self, pid: u32) -> Result<(), BridgeError> {
        if self.forks.pending.remove(&pid).is_some() {
            self.forks.count();
            self.leave_process(pid)?;
            return Ok(());
        }
        if pid != self.pid {
            return Ok(());
        }
        let Some((&child, &p)) = self
            .forks
            .pending
            .iter()
            .find(|(_, p)| p.child_seq.is_some())
        else {
            return Ok(());
        };
        let Some(seq) = p.child_seq else {
            return Ok(());
        };
        self.forks.pending.remove(&child);
        self.forks.count();
        self.leave_process(pid)?;
        self.switch_to_child(child, seq);
        Ok(())
    }

    /// Take the engine off `pid` alone (it stays on the others).
    fn leave_process(&mut self, pid: u32) -> Result<(), BridgeError> {
        let mut c = self.client.clone();
        match crate::spin::block_on(&self.rt, c.leave_process(self.engine, pid)) {
            Ok(()) => Ok(()),
            // Gone already (it died, or the engine left it).
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(BridgeError::from_status(s)),
        }
    }

    /// [`Bridge::leave_process`] where a failure only costs a log line.
    fn leave_quietly(&mut self, pid: u32) {
        if let Err(e) = self.leave_process(pid) {
            super::target::tracing_debug(&format!("letting {pid} go: {e}"));
        }
    }

    /// The fork child `child`, held by its start report `seq`, is the
    /// debugged process now (its parent left).
    fn switch_to_child(&mut self, child: u32, seq: u64) {
        self.become_process(child, [(child, Held::Report { seq, signal: None })]);
    }
}
