//! Hardware breakpoints and watchpoints: the four debug-register slots
//! (`dr0`-`dr3`, typed and enabled by `dr7`) as a resource of each process,
//! shared between its engines the way breakpoint sites are.
//!
//! The kernel keeps debug registers per thread; a debugger's watchpoint is
//! per process. So the table ([`Watchpoints`]) is the process's: one slot
//! per distinct watchpoint (address, length, kind), reference-counted per
//! engine (two engines watching the same bytes share a slot), never taken
//! from an engine that holds it: a fifth distinct watchpoint is refused
//! with who holds the four. Each change bumps the table's generation;
//! every thread carries what it has applied ([`DebugRegs`]) and the
//! generation it matches, and the core brings a thread up to date before
//! it next runs (running threads are interrupted for it; new threads get
//! the set before their first instruction, as the kernel gives them none).
//!
//! A hit is a `SIGTRAP` (`TRAP_HWBKPT`, or `TRAP_TRACE` when it ends a
//! single step too) whose `dr6` names the slots that fired; it is reported
//! to the slot's engines only and never delivered to the program.

use rustc_hash::FxHashMap;

use crate::arch::{self, WatchKind, DEBUG_SLOTS};
use crate::engine::EngineId;
use crate::sys::{self, Errno, Tid};

/// The highest user address on x86_64 (`TASK_SIZE_MAX`: the last page
/// below the canonical hole is not mappable).
const USER_END: u64 = 0x7fff_ffff_f000;

/// A hardware breakpoint (`Execute`) or watchpoint: the bytes
/// `addr..addr + len` and what fires it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Watchpoint {
    pub addr: u64,
    pub len: u8,
    pub kind: WatchKind,
}

impl Watchpoint {
    /// A checked watchpoint: `len` is 1, 2, 4 or 8 (1 for `Execute`),
    /// `addr` is aligned to it and in user space. The error says which
    /// rule failed, for the client.
    pub fn new(addr: u64, len: u64, kind: WatchKind) -> Result<Watchpoint, &'static str> {
        let len = match (kind, len) {
            (WatchKind::Execute, 0 | 1) => 1,
            (WatchKind::Execute, _) => {
                return Err("a hardware breakpoint covers one instruction: its length is 1")
            }
            (_, 1 | 2 | 4 | 8) => len as u8,
            _ => return Err("the length is 1, 2, 4 or 8 bytes (watch a larger range in pieces)"),
        };
        if addr % len as u64 != 0 {
            return Err("the address must be aligned to the length (a multiple of it)");
        }
        if addr
            .checked_add(len as u64)
            .is_none_or(|end| end > USER_END)
        {
            return Err("the address is not in user space");
        }
        Ok(Watchpoint { addr, len, kind })
    }
}

/// Debug registers as applied to one thread: the four slot addresses and
/// `dr7`. All zero: nothing armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DebugRegs {
    pub addr: [u64; DEBUG_SLOTS],
    pub dr7: u64,
}

impl DebugRegs {
    /// Bring `tid`'s debug registers from `from` (what it has) to `self`.
    /// Slots that change are disabled first, their addresses written, then
    /// `dr7` enables the new set: no moment has a slot enabled at a
    /// half-written address. Unchanged slots stay armed throughout.
    pub fn apply(&self, tid: Tid, from: &DebugRegs) -> Result<(), Errno> {
        if self == from {
            return Ok(());
        }
        let mut changed = 0u64;
        for i in 0..DEBUG_SLOTS {
            let m = arch::dr7_slot_mask(i);
            if self.addr[i] != from.addr[i] || self.dr7 & m != from.dr7 & m {
                changed |= m;
            }
        }
        let mid = from.dr7 & !changed;
        if mid != from.dr7 {
            sys::poke_user(tid, arch::debugreg_offset(7), mid)?;
        }
        for i in 0..DEBUG_SLOTS {
            if self.addr[i] != from.addr[i] && self.dr7 & arch::dr7_slot_mask(i) != 0 {
                sys::poke_user(tid, arch::debugreg_offset(i), self.addr[i])?;
            }
        }
        if self.dr7 != mid {
            sys::poke_user(tid, arch::debugreg_offset(7), self.dr7)?;
        }
        Ok(())
    }

    /// The slots enabled here among those `dr6` says fired.
    pub fn fired(&self, dr6: u64) -> impl Iterator<Item = usize> + '_ {
        (0..DEBUG_SLOTS)
            .filter(move |i| dr6 & (1 << i) != 0 && self.dr7 & arch::dr7_slot_mask(*i) != 0)
    }
}

/// Read `dr6` of `tid` (which slots fired at its last debug trap).
pub(crate) fn dr6(tid: Tid) -> Result<u64, Errno> {
    sys::peek_user(tid, arch::debugreg_offset(6))
}

struct Slot {
    watch: Watchpoint,
    /// Insertions per engine.
    users: FxHashMap<EngineId, u32>,
}

/// Why a watchpoint could not be inserted: the four slots are taken, by
/// these engines (per slot, its watchpoint and users).
#[derive(Debug)]
pub(crate) struct Full(pub Vec<(Watchpoint, Vec<EngineId>)>);

/// A process's debug-register slots. See the module's text.
#[derive(Default)]
pub(crate) struct Watchpoints {
    slots: [Option<Slot>; DEBUG_SLOTS],
    /// Bumped at every change of `regs`.
    gen: u64,
    regs: DebugRegs,
}

impl Watchpoints {
    /// Changes so far; a thread whose applied generation differs is
    /// brought up to date before it runs.
    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// The registers every thread of the process should have.
    pub fn regs(&self) -> &DebugRegs {
        &self.regs
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Engine `id` inserts `w`: into the slot that has it already, else a
    /// free one. Whether the registers changed.
    pub fn insert(&mut self, id: EngineId, w: Watchpoint) -> Result<bool, Full> {
        if let Some(s) = self.slots.iter_mut().flatten().find(|s| s.watch == w) {
            *s.users.entry(id).or_default() += 1;
            return Ok(false);
        }
        let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) else {
            return Err(Full(
                self.slots
                    .iter()
                    .flatten()
                    .map(|s| {
                        let mut users: Vec<EngineId> = s.users.keys().copied().collect();
                        users.sort();
                        (s.watch, users)
                    })
                    .collect(),
            ));
        };
        let mut users = FxHashMap::default();
        users.insert(id, 1);
        *free = Some(Slot { watch: w, users });
        self.recompute();
        Ok(true)
    }

    /// Engine `id` removes one insertion of `w`. `None`: it had none;
    /// else whether the registers changed (the slot's last user went).
    pub fn remove(&mut self, id: EngineId, w: Watchpoint) -> Option<bool> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|s| s.watch == w))?;
        let s = slot.as_mut()?;
        let n = s.users.get_mut(&id)?;
        *n -= 1;
        if *n > 0 {
            return Some(false);
        }
        s.users.remove(&id);
        if !s.users.is_empty() {
            return Some(false);
        }
        *slot = None;
        self.recompute();
        Some(true)
    }

    /// Engine `id` leaves: its insertions go. Whether the registers changed.
    pub fn remove_engine(&mut self, id: EngineId) -> bool {
        let mut changed = false;
        for slot in &mut self.slots {
            if let Some(s) = slot {
                s.users.remove(&id);
                if s.users.is_empty() {
                    *slot = None;
                    changed = true;
                }
            }
        }
        if changed {
            self.recompute();
        }
        changed
    }

    /// A new program: the kernel cleared the registers of the exec'ing
    /// thread (the others are gone), and the addresses meant the old one.
    pub fn clear(&mut self) {
        if !self.is_empty() {
            self.slots = Default::default();
            self.recompute();
        }
    }

    /// Slot `i`'s watchpoint and the engines that inserted it.
    pub fn slot(&self, i: usize) -> Option<(Watchpoint, Vec<EngineId>)> {
        let s = self.slots.get(i)?.as_ref()?;
        Some((s.watch, s.users.keys().copied().collect()))
    }

    fn recompute(&mut self) {
        let mut regs = DebugRegs::default();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(s) = s {
                regs.addr[i] = s.watch.addr;
                regs.dr7 |= arch::dr7_bits(i, s.watch.kind, s.watch.len);
            }
        }
        self.regs = regs;
        self.gen += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(addr: u64, len: u64, kind: WatchKind) -> Watchpoint {
        Watchpoint::new(addr, len, kind).expect("valid")
    }

    #[test]
    fn checks_length_alignment_and_range() {
        assert!(Watchpoint::new(0x1000, 3, WatchKind::Write).is_err());
        assert!(Watchpoint::new(0x1004, 8, WatchKind::Write).is_err());
        assert!(Watchpoint::new(0x1001, 2, WatchKind::ReadWrite).is_err());
        assert!(Watchpoint::new(0x1000, 4, WatchKind::Execute).is_err());
        assert!(Watchpoint::new(0xffff_ffff_ffff_fff8, 8, WatchKind::Write).is_err());
        assert!(Watchpoint::new(USER_END - 8, 8, WatchKind::Write).is_ok());
        assert_eq!(w(0x1003, 0, WatchKind::Execute).len, 1);
    }

    #[test]
    fn slots_are_shared_counted_and_never_taken() {
        let (a, b, c) = (EngineId(1), EngineId(2), EngineId(3));
        let mut t = Watchpoints::default();
        let x = w(0x1000, 8, WatchKind::Write);
        assert!(t.insert(a, x).unwrap());
        let g = t.gen();
        // The same bytes for another engine: the same slot, no change.
        assert!(!t.insert(b, x).unwrap());
        assert_eq!(t.gen(), g);
        for i in 1..4 {
            t.insert(b, w(0x2000 + 8 * i, 8, WatchKind::ReadWrite))
                .unwrap();
        }
        let full = t.insert(c, w(0x3000, 1, WatchKind::Execute)).unwrap_err();
        assert_eq!(full.0.len(), 4);
        assert_eq!(full.0[0].1, vec![a, b]);
        // a's removal leaves b's use of the slot.
        assert_eq!(t.remove(a, x), Some(false));
        assert_eq!(t.remove(a, x), None);
        assert!(t.insert(c, w(0x3000, 1, WatchKind::Execute)).is_err());
        assert!(t.remove_engine(b));
        assert!(t.is_empty());
        assert_eq!(t.regs(), &DebugRegs::default());
        assert!(t.insert(c, w(0x3000, 1, WatchKind::Execute)).unwrap());
    }

    #[test]
    fn dr7_encodes_kind_and_length() {
        let mut t = Watchpoints::default();
        t.insert(EngineId(1), w(0x1000, 8, WatchKind::Write))
            .unwrap();
        t.insert(EngineId(1), w(0x2000, 1, WatchKind::Execute))
            .unwrap();
        t.insert(EngineId(1), w(0x3000, 4, WatchKind::ReadWrite))
            .unwrap();
        // Slot 0: L0, RW=01, LEN=10 (8). Slot 1: L1, RW=00, LEN=00.
        // Slot 2: L2, RW=11, LEN=11 (4).
        assert_eq!(
            t.regs().dr7,
            0b01 | 0b0100 | 0b01_0000 | (0b1001 << 16) | (0b1111 << 24)
        );
        assert_eq!(t.regs().addr, [0x1000, 0x2000, 0x3000, 0]);
        let fired: Vec<usize> = t.regs().fired(0b0110 | 0x4000).collect();
        assert_eq!(fired, vec![1, 2]);
    }
}
