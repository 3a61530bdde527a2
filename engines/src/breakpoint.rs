//! Software breakpoints, per process: an `int3` byte at each address,
//! reference-counted per engine so two engines can share one. The original
//! byte is restored when the last user removes it, detaches, or the tracer
//! shuts down; reads through the tracer show the original bytes, never the
//! `int3`. (A breakpoint left in an untraced process kills it with SIGTRAP.)

use std::collections::BTreeMap;

use crate::engine::EngineId;

/// The x86 breakpoint instruction.
pub const INT3: u8 = 0xcc;

/// One inserted breakpoint.
#[derive(Clone, Debug)]
pub(crate) struct Bp {
    /// The byte the `int3` replaced.
    pub orig: u8,
    /// Insertions per engine.
    pub users: BTreeMap<EngineId, u32>,
}

/// A process's breakpoints by address.
#[derive(Default, Debug)]
pub(crate) struct Breakpoints {
    pub map: BTreeMap<u64, Bp>,
    /// Addresses of removed breakpoints (at most [`MAX_REMOVED`], oldest
    /// forgotten first): a thread may have hit the int3 just before it went,
    /// and its SIGTRAP arrives after. Such a late hit is swallowed, not
    /// delivered (gdb's "moribund locations").
    removed: std::collections::VecDeque<u64>,
}

/// Removed breakpoint addresses remembered per process.
const MAX_REMOVED: usize = 1024;

impl Breakpoints {
    /// No breakpoint is inserted now and none was removed: no SIGTRAP of
    /// this process can be ours.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.removed.is_empty()
    }

    /// Some breakpoint is inserted now (resuming may need a step-over,
    /// writes may need patching).
    pub fn active(&self) -> bool {
        !self.map.is_empty()
    }

    /// Remember that the breakpoint at `addr` went away.
    pub fn forget(&mut self, addr: u64) {
        self.map.remove(&addr);
        if !self.removed.contains(&addr) {
            if self.removed.len() == MAX_REMOVED {
                self.removed.pop_front();
            }
            self.removed.push_back(addr);
        }
    }

    /// A breakpoint was removed from `addr`.
    pub fn was_removed(&self, addr: u64) -> bool {
        self.removed.contains(&addr)
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.map.contains_key(&addr)
    }

    /// Engines that inserted a breakpoint at `addr`.
    pub fn owners(&self, addr: u64) -> Vec<EngineId> {
        self.map
            .get(&addr)
            .map(|b| b.users.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Show original bytes in `data` (read at `addr`) where `int3`s sit.
    pub fn unpatch(&self, addr: u64, data: &mut [u8]) {
        if self.map.is_empty() || data.is_empty() {
            return;
        }
        let end = addr.saturating_add(data.len() as u64);
        for (a, bp) in self.map.range(addr..end) {
            data[(a - addr) as usize] = bp.orig;
        }
    }

    /// Before writing `data` at `addr`: record the new bytes as the
    /// originals under breakpoints, and keep the `int3`s in what is written.
    /// Whether any breakpoint lies under `data` (its original changed).
    pub fn patch_write(&mut self, addr: u64, data: &mut [u8]) -> bool {
        if self.map.is_empty() || data.is_empty() {
            return false;
        }
        let end = addr.saturating_add(data.len() as u64);
        let mut any = false;
        for (a, bp) in self.map.range_mut(addr..end) {
            let i = (a - addr) as usize;
            bp.orig = data[i];
            data[i] = INT3;
            any = true;
        }
        any
    }

    /// Remove every breakpoint of `engine`; returns the (address, original
    /// byte) pairs whose last user it was, to be written back.
    pub fn remove_engine(&mut self, engine: EngineId) -> Vec<(u64, u8)> {
        let mut restore = Vec::new();
        for (addr, bp) in self.map.iter_mut() {
            bp.users.remove(&engine);
            if bp.users.is_empty() {
                restore.push((*addr, bp.orig));
            }
        }
        for (addr, _) in &restore {
            self.forget(*addr);
        }
        restore
    }
}
