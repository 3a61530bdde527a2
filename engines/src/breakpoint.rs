//! Breakpoint sites, per process: one table owns every breakpoint of a
//! process, whichever mechanism serves it, because the kernel lets only
//! one serve an address (a uprobe and a ptrace `int3` at one address do
//! not coexist: each erases the other's hits).
//!
//! A site is reference-counted per engine, so engines share it. It is
//! served by
//! - an in-kernel **uprobe** ([`crate::uprobe`]) when every engine using it
//!   takes hits without a stop ([`crate::EngineOptions::breakpoint_hits`])
//!   and the code there is a file's, unchanged: no ptrace stop, and the
//!   kernel removes it when the tracer's process ends, however it ends;
//! - an **`int3`** written by the tracer otherwise: the task stops, engines
//!   see it stopped. The original byte is restored when the last user
//!   goes, detaches, or the tracer shuts down (and by the keeper if the
//!   tracer is killed, [`crate::journal`]).
//!
//! The table switches a site between the two as engines come and go.
//! Reads through the tracer show the original bytes, never an `int3`.
//!
//! An `int3` site can be *disarmed* for a while: its original byte back in
//! memory because a thread sits stopped at it and no other thread of the
//! process runs. Were the tracer killed then, the kernel would run that
//! thread on from the breakpoint's address, and it would meet the original
//! instruction, not an `int3` with no tracer (which kills it). Every
//! disarmed site is armed again before any thread of the process resumes
//! ([`Breakpoints::rearm`]); the thread stepping over it takes it as it is.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, warn};

use crate::engine::EngineId;
use crate::sys::{Errno, Tid};
use crate::task::MemFile;
use crate::uprobe::{self, Probes, Shape, Site};

/// The x86 breakpoint instruction.
pub const INT3: u8 = 0xcc;

/// `int3` sites placed, across every tracer of this process (the tracer
/// loops then look at a SIGTRAP stop before taking it).
static INT3_SITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether any tracer of this process has an `int3` in some program.
pub fn int3s_placed() -> bool {
    INT3_SITES.load(std::sync::atomic::Ordering::Relaxed) != 0
}

/// How a site is served.
#[derive(Debug, Default)]
pub(crate) enum Mech {
    /// Not yet (a site being made).
    #[default]
    Unplaced,
    /// Our `int3` is in memory.
    Int3,
    /// The kernel's uprobes.
    Probe(Site),
}

#[derive(Clone, Copy)]
enum Now {
    Unplaced,
    Int3,
    Probe,
}

/// One breakpoint site.
#[derive(Debug)]
pub(crate) struct Bp {
    /// The byte at the address before any breakpoint.
    pub orig: u8,
    /// Insertions per engine.
    pub users: BTreeMap<EngineId, u32>,
    /// Users whose hits need the task stopped.
    pub stoppers: BTreeSet<EngineId>,
    /// Users that only count hits (no registers): when every user does, a
    /// uprobe site is served by counting events, no sample per hit.
    pub counters: BTreeSet<EngineId>,
    /// Engines whose uprobe hits carry the user stack
    /// ([`crate::EngineOptions::hit_stacks`]); those no longer using the
    /// site do not count.
    pub stackers: BTreeSet<EngineId>,
    /// What each engine wants fetched at an entry hit, and at a return
    /// hit ([`crate::Task::fetch_at`]); only users' wishes count.
    pub fetch: BTreeMap<EngineId, Vec<String>>,
    pub ret_fetch: BTreeMap<EngineId, Vec<String>>,
    /// Return probes of the function starting here, per engine: only a
    /// uprobe serves them (the kernel's return probe); while an int3
    /// serves the site, they see nothing.
    pub ret_users: BTreeMap<EngineId, u32>,
    pub mech: Mech,
    /// An `int3` site whose original byte is in memory for now (see the
    /// module's doc). Any change of mechanism ends it.
    disarmed: bool,
    /// A uprobe cannot serve it (not a file's unchanged code, an int3 of
    /// ours at its location elsewhere, or the kernel refused one).
    pub no_probe: bool,
    /// Its location in a mapped file, if it is in one.
    pub loc: Option<uprobe::Loc>,
    /// A USDT marker's semaphore (file offset; 0: none), incremented by
    /// the kernel while a uprobe serves the site.
    pub ref_ctr: u64,
}

impl Bp {
    pub fn new(orig: u8, loc: Option<uprobe::Loc>) -> Bp {
        Bp {
            orig,
            users: BTreeMap::new(),
            stoppers: BTreeSet::new(),
            counters: BTreeSet::new(),
            stackers: BTreeSet::new(),
            fetch: BTreeMap::new(),
            ret_fetch: BTreeMap::new(),
            ret_users: BTreeMap::new(),
            mech: Mech::Unplaced,
            disarmed: false,
            no_probe: false,
            loc,
            ref_ctr: 0,
        }
    }

    pub fn is_int3(&self) -> bool {
        matches!(self.mech, Mech::Int3)
    }

    /// The uprobe events its users call for.
    fn shape(&self) -> Shape {
        Shape {
            entry: !self.users.is_empty(),
            counting: !self.users.is_empty()
                && self.users.keys().all(|u| self.counters.contains(u)),
            ret: !self.ret_users.is_empty(),
            stack: self
                .users
                .keys()
                .chain(self.ret_users.keys())
                .any(|u| self.stackers.contains(u)),
            fetch: union(&self.fetch, &self.users),
            ret_fetch: union(&self.ret_fetch, &self.ret_users),
        }
    }

    /// Its uprobe events carry stacks now (some user wants them).
    pub fn shape_has_stack(&self) -> bool {
        self.shape().stack
    }

    /// No user of any kind is left.
    pub fn unused(&self) -> bool {
        self.users.is_empty() && self.ret_users.is_empty()
    }
}

/// The fetch arguments `users` want, sorted, each once.
fn union(
    wants: &BTreeMap<EngineId, Vec<String>>,
    users: &BTreeMap<EngineId, u32>,
) -> uprobe::Fetch {
    let all: BTreeSet<&String> = wants
        .iter()
        .filter(|(e, _)| users.contains_key(e))
        .flat_map(|(_, v)| v)
        .collect();
    all.into_iter().cloned().collect()
}

/// What the table needs of its process to place a site: its threads and
/// its memory. The caller holds the process gate's `changing()` guard.
pub(crate) struct Io<'a> {
    pub pid: Tid,
    pub threads: &'a [Tid],
    pub mem: &'a mut MemFile,
}

impl Io<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        self.mem.read(self.pid, addr, buf).unwrap_or(0)
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        match self.mem.write(self.pid, addr, data) {
            Ok(n) if n == data.len() => Ok(()),
            Ok(_) => Err(Errno::EFAULT),
            Err(e) => Err(e),
        }
    }
}

/// A process's breakpoint sites by address.
#[derive(Debug)]
pub(crate) struct Breakpoints {
    pub map: BTreeMap<u64, Bp>,
    /// Addresses of removed breakpoints (at most [`MAX_REMOVED`], oldest
    /// forgotten first): a thread may have hit the int3 just before it went,
    /// and its SIGTRAP arrives after. Such a late hit is swallowed, not
    /// delivered (gdb's "moribund locations").
    removed: std::collections::VecDeque<u64>,
    /// The uprobe side: rings per thread, events by id.
    pub probes: Probes,
    /// How many sites are disarmed (so that resuming a thread costs no
    /// walk of the table when none is).
    disarmed: usize,
    /// Vforked children running on this process's memory now (see
    /// [`Breakpoints::hold_for_vfork`]): while any does, nothing is armed
    /// again.
    vforks: u32,
}

/// Removed breakpoint addresses remembered per process.
const MAX_REMOVED: usize = 1024;

impl Breakpoints {
    pub fn new(probes: Probes) -> Self {
        Breakpoints {
            map: BTreeMap::new(),
            removed: Default::default(),
            probes,
            disarmed: 0,
            vforks: 0,
        }
    }

    /// Put the site at `addr` in `mech` (the old one already taken out),
    /// keeping the process-wide count of each location's mechanisms (an
    /// int3 where uprobes serve the location elsewhere is a conflict every
    /// tracer resolves: [`uprobe::Keys`]).
    fn set_mech(&mut self, addr: u64, mech: Mech) -> Mech {
        let Some(bp) = self.map.get_mut(&addr) else {
            return Mech::Unplaced;
        };
        let old = std::mem::replace(&mut bp.mech, mech);
        use std::sync::atomic::Ordering::Relaxed;
        match (&old, &bp.mech) {
            (Mech::Int3, Mech::Int3) => {}
            (Mech::Int3, _) => {
                INT3_SITES.fetch_sub(1, Relaxed);
            }
            (_, Mech::Int3) => {
                INT3_SITES.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        if std::mem::take(&mut bp.disarmed) {
            self.disarmed -= 1;
        }
        if let Some(key) = bp.loc.as_ref().map(|l| l.key) {
            let mut keys = uprobe::keys();
            for (m, delta) in [(&old, -1), (&bp.mech, 1)] {
                match m {
                    Mech::Int3 => keys.count(key, false, delta),
                    Mech::Probe(_) => keys.count(key, true, delta),
                    Mech::Unplaced => {}
                }
            }
        }
        old
    }

    /// Take the site's mechanism out of the books (its uprobe to close, or
    /// its int3 left to the caller) and leave it unplaced.
    fn unplace(&mut self, addr: u64) -> Mech {
        self.set_mech(addr, Mech::Unplaced)
    }

    /// Serve the site at `addr` with an int3 from now on (its code changes,
    /// a uprobe failed, or a stop is wanted at its location elsewhere).
    pub fn force_int3(&mut self, addr: u64, io: &mut Io<'_>) -> Result<(), Errno> {
        if let Some(bp) = self.map.get_mut(&addr) {
            bp.no_probe = true;
        }
        self.settle(addr, io)
    }

    /// Sites at location `key` served by uprobes.
    pub fn probes_at(&self, key: &uprobe::Key) -> Vec<u64> {
        self.map
            .iter()
            .filter(|(_, b)| {
                matches!(b.mech, Mech::Probe(_)) && b.loc.as_ref().is_some_and(|l| l.key == *key)
            })
            .map(|(a, _)| *a)
            .collect()
    }

    /// Sites at location `key` served by our int3s.
    pub fn int3s_at(&self, key: &uprobe::Key) -> Vec<u64> {
        self.map
            .iter()
            .filter(|(_, b)| b.is_int3() && b.loc.as_ref().is_some_and(|l| l.key == *key))
            .map(|(a, _)| *a)
            .collect()
    }

    /// The process exec'd: every uprobe closes (its recorded hits and
    /// losses stay to be delivered, while the sites still name their
    /// owners); [`Self::new_image`] then forgets the sites.
    pub fn close_probes(&mut self) {
        let addrs: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, b)| matches!(b.mech, Mech::Probe(_)))
            .map(|(a, _)| *a)
            .collect();
        for a in addrs {
            self.unplace(a);
        }
        self.probes.close_all();
    }

    /// The process has new memory: no site of the old one remains.
    pub fn new_image(&mut self) {
        self.close_probes();
        let addrs: Vec<u64> = self.map.keys().copied().collect();
        for a in addrs {
            self.unplace(a);
        }
        self.map.clear();
        self.removed.clear();
    }

    /// No breakpoint is inserted now and none was removed: no SIGTRAP of
    /// this process can be ours.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.removed.is_empty()
    }

    /// Some breakpoint is inserted now (writes may need patching).
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

    /// Our `int3` sits at `addr` (resuming there needs a step-over).
    pub fn has_int3(&self, addr: u64) -> bool {
        self.map.get(&addr).is_some_and(Bp::is_int3)
    }

    /// Engines with a return probe at `addr`.
    pub fn ret_owners(&self, addr: u64) -> Vec<EngineId> {
        self.map
            .get(&addr)
            .map(|b| b.ret_users.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Engines at `addr` that only count its hits.
    pub fn counters(&self, addr: u64) -> Vec<EngineId> {
        self.map
            .get(&addr)
            .map(|b| b.counters.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Engines that inserted a breakpoint at `addr`.
    pub fn owners(&self, addr: u64) -> Vec<EngineId> {
        self.map
            .get(&addr)
            .map(|b| b.users.keys().copied().collect())
            .unwrap_or_default()
    }

    /// (address, original byte) of every site, for readers to hide them.
    pub fn originals(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.map.iter().map(|(a, b)| (*a, b.orig))
    }

    /// (address, original byte) of every `int3` of ours in memory: what
    /// the keeper must restore if the tracer dies (uprobes go by
    /// themselves).
    pub fn int3s(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.map
            .iter()
            .filter(|(_, b)| b.is_int3())
            .map(|(a, b)| (*a, b.orig))
    }

    /// Show original bytes in `data` (read at `addr`) where sites are.
    pub fn unpatch(&self, addr: u64, data: &mut [u8]) {
        if self.map.is_empty() || data.is_empty() {
            return;
        }
        let end = addr.saturating_add(data.len() as u64);
        for (a, bp) in self.map.range(addr..end) {
            data[(a - addr) as usize] = bp.orig;
        }
    }

    /// Sites served by uprobes whose instruction `len` bytes written at
    /// `addr` would change (a uprobe runs its file's copy of the
    /// instruction, so such a site must become an `int3` first).
    pub fn probes_under(&self, addr: u64, len: usize) -> Vec<u64> {
        let from = addr.saturating_sub(uprobe::MAX_INSN as u64 - 1);
        let end = addr.saturating_add(len as u64);
        self.map
            .range(from..end)
            .filter(|(_, b)| matches!(b.mech, Mech::Probe(_)))
            .map(|(a, _)| *a)
            .collect()
    }

    /// Before writing `data` at `addr`: record the new bytes as the
    /// originals under breakpoints, and keep the `int3`s in what is written.
    /// Whether any breakpoint lies under `data` (its original changed).
    /// (Sites served by uprobes are made `int3`s first: [`Self::probes_under`].)
    pub fn patch_write(&mut self, addr: u64, data: &mut [u8]) -> bool {
        if self.map.is_empty() || data.is_empty() {
            return false;
        }
        let end = addr.saturating_add(data.len() as u64);
        let mut any = false;
        for (a, bp) in self.map.range_mut(addr..end) {
            let i = (a - addr) as usize;
            bp.orig = data[i];
            if !bp.disarmed {
                data[i] = INT3;
            }
            any = true;
        }
        any
    }

    /// A thread stopped at the `int3` at `addr`, and no other thread of the
    /// process runs: put the original byte back until one does (see the
    /// module's doc). Whether the site is disarmed now.
    pub fn disarm(&mut self, addr: u64, io: &mut Io<'_>) -> bool {
        let Some(bp) = self.map.get_mut(&addr) else {
            return false;
        };
        if !bp.is_int3() || bp.disarmed {
            return bp.disarmed;
        }
        if io.write(addr, &[bp.orig]).is_err() {
            return false;
        }
        bp.disarmed = true;
        self.disarmed += 1;
        true
    }

    /// The site at `addr` is disarmed: a thread about to step over it
    /// takes it so (its original byte is already in memory); the step's
    /// end arms it again. Whether it was.
    pub fn take_disarmed(&mut self, addr: u64) -> bool {
        match self.map.get_mut(&addr) {
            Some(bp) if bp.disarmed => {
                bp.disarmed = false;
                self.disarmed -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether any site is disarmed and may be armed again now (not while
    /// a vfork child runs on this memory).
    pub fn any_disarmed(&self) -> bool {
        self.disarmed != 0 && self.vforks == 0
    }

    /// A vforked child runs on this process's memory until it execs or
    /// exits, and no tracer of ours may be following it (and none is
    /// anyway once it is let go): every `int3` comes out (disarmed), so
    /// that the child never meets one (with no tracer it would die of the
    /// SIGTRAP), until the last such child is done
    /// ([`Breakpoints::vfork_done`]). The vforking thread waits meanwhile;
    /// other threads of the process that run miss the breakpoints, as
    /// under gdb.
    pub fn hold_for_vfork(&mut self, io: &mut Io<'_>) {
        self.vforks += 1;
        for (addr, bp) in self.map.iter_mut() {
            if bp.is_int3() && !bp.disarmed && io.write(*addr, &[bp.orig]).is_ok() {
                bp.disarmed = true;
                self.disarmed += 1;
            }
        }
        debug!(
            pid = io.pid,
            disarmed = self.disarmed,
            "a vfork child runs: int3s out"
        );
    }

    /// [`Breakpoints::hold_for_vfork`] with no site placed: only counted.
    /// (A site placed while a vfork child runs goes in at once: the child
    /// can meet it. Debuggers place theirs while the process is stopped.)
    pub fn vfork_started(&mut self) {
        self.vforks += 1;
    }

    /// A vforked child exec'd or exited ([`Breakpoints::hold_for_vfork`]):
    /// when it was the last, the sites are armed again as the next thread
    /// resumes.
    pub fn vfork_done(&mut self) {
        self.vforks = self.vforks.saturating_sub(1);
    }

    /// Whether the site at `addr` is disarmed.
    pub fn is_disarmed(&self, addr: u64) -> bool {
        self.map.get(&addr).is_some_and(|b| b.disarmed)
    }

    /// A thread of the process is about to run: every disarmed site gets
    /// its `int3` back.
    pub fn rearm(&mut self, io: &mut Io<'_>) {
        for (addr, bp) in self.map.iter_mut().filter(|(_, b)| b.disarmed) {
            if let Err(e) = io.write(*addr, &[INT3]) {
                warn!(pid = io.pid, addr, %e, "a breakpoint's int3 could not be written back");
            }
            bp.disarmed = false;
        }
        self.disarmed = 0;
    }

    /// Put the site at `addr` in the mechanism its users call for: a
    /// uprobe when none of them needs a stop and one can serve it, else an
    /// `int3`. An error is a failed write of the `int3` (the site is then
    /// unplaced: nothing of ours is in memory).
    pub fn settle(&mut self, addr: u64, io: &mut Io<'_>) -> Result<(), Errno> {
        let Some(bp) = self.map.get(&addr) else {
            return Ok(());
        };
        let want_probe = bp.stoppers.is_empty() && !bp.unused() && !bp.no_probe;
        if !want_probe && bp.users.is_empty() {
            // Only return probes, which no int3 can serve: nothing of ours
            // goes in memory.
            if let Mech::Probe(site) = self.unplace(addr) {
                self.probes.close_site(site);
            }
            return Err(Errno::EOPNOTSUPP);
        }
        let now = match bp.mech {
            Mech::Unplaced => Now::Unplaced,
            Mech::Int3 => Now::Int3,
            Mech::Probe(_) => Now::Probe,
        };
        match (now, want_probe) {
            (Now::Probe, true) => {
                let want = bp.shape();
                if let Mech::Probe(site) = &bp.mech {
                    if site.shape != want {
                        self.reshape(addr, io, want);
                    }
                }
                return Ok(());
            }
            (Now::Int3, false) => return Ok(()),
            (Now::Unplaced, false) => {}
            (Now::Probe, false) => {
                // The kernel puts the original instruction back as the
                // events close; then our int3 goes in.
                let orig = bp.orig;
                if let Mech::Probe(site) = self.unplace(addr) {
                    self.probes.close_site_now(site);
                }
                wait_restored(io, addr, orig);
                debug!(pid = io.pid, addr, "breakpoint: uprobe -> int3");
            }
            (Now::Int3 | Now::Unplaced, true) => {
                if self.place_probe(addr, io) {
                    return Ok(());
                }
                if self.map.get(&addr).is_some_and(Bp::is_int3) {
                    return Ok(());
                }
            }
        }
        io.write(addr, &[INT3])?;
        self.set_mech(addr, Mech::Int3);
        Ok(())
    }

    /// A uprobe site's users call for other events (all its users now
    /// count, or no longer all do; return probes came or went): the new
    /// events open before the old ones close, so the kernel's uprobe stays
    /// in place (a hit between the two is seen by both); what the old ones
    /// recorded is delivered. If the new ones cannot open, the old stay.
    fn reshape(&mut self, addr: u64, io: &mut Io<'_>, shape: Shape) {
        let Some(Bp {
            mech: Mech::Probe(old),
            ..
        }) = self.map.get(&addr)
        else {
            return;
        };
        let target = old.target();
        match self.probes.open_site(target, addr, io.threads, shape) {
            Ok(site) => {
                debug!(pid = io.pid, addr, shape = ?site.shape, "uprobe site: events changed");
                if let Mech::Probe(old) = self.set_mech(addr, Mech::Probe(site)) {
                    self.probes.close_site(old);
                }
            }
            Err(e) => {
                debug!(pid = io.pid, addr, %e, "uprobe site: events kept (new ones failed)");
            }
        }
    }

    /// Serve `addr` with uprobes if one can; `false` (and `no_probe` set)
    /// if not, the site as it was.
    fn place_probe(&mut self, addr: u64, io: &mut Io<'_>) -> bool {
        let mut code = [0u8; uprobe::MAX_INSN];
        let n = io.read(addr, &mut code);
        self.unpatch(addr, &mut code[..n]);
        let Some(bp) = self.map.get(&addr) else {
            return false;
        };
        let shape = bp.shape();
        // Not where an int3 of ours serves the same location elsewhere
        // (the uprobe would erase it).
        let own = u32::from(bp.is_int3());
        let target = bp.loc.as_ref().and_then(|loc| {
            (uprobe::keys().uses(&loc.key).1 <= own)
                .then(|| uprobe::target(loc, &code[..n]))
                .flatten()
        });
        let Some(mut target) = target else {
            if let Some(bp) = self.map.get_mut(&addr) {
                bp.no_probe = true;
            }
            return false;
        };
        target.ref_ctr = bp.ref_ctr;
        if bp.is_int3() {
            // Our int3 out first: the kernel's probe must find the
            // original instruction.
            if io.write(addr, &[bp.orig]).is_err() {
                if let Some(bp) = self.map.get_mut(&addr) {
                    bp.no_probe = true;
                }
                return false;
            }
            self.unplace(addr);
        }
        match self.probes.open_site(target, addr, io.threads, shape) {
            Ok(site) => {
                debug!(pid = io.pid, addr, "breakpoint: served by a uprobe");
                self.set_mech(addr, Mech::Probe(site));
                true
            }
            Err(e) => {
                // EOPNOTSUPP: an instruction the kernel's uprobes refuse
                // (on x86, EVEX-encoded AVX-512 ones among others). The
                // int3 works as well, but stops the program at each hit
                // and is left in its memory if the server is killed.
                let why = if e == Errno::EOPNOTSUPP {
                    "the kernel's uprobes do not take the instruction there"
                } else {
                    "the kernel refused a uprobe there"
                };
                warn!(
                    pid = io.pid,
                    addr,
                    %e,
                    code = %code[..n].iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    "{why}: an int3 serves the breakpoint (a stop at each hit)"
                );
                if let Some(bp) = self.map.get_mut(&addr) {
                    bp.no_probe = true;
                }
                false
            }
        }
    }

    /// The site at `addr` has no users left: take it out (the original
    /// byte back, or the uprobe closed) and remember it was here.
    pub fn drop_site(&mut self, addr: u64, io: &mut Io<'_>) -> Result<(), Errno> {
        let mech = self.unplace(addr);
        let Some(bp) = self.map.remove(&addr) else {
            return Ok(());
        };
        self.forget(addr);
        match mech {
            Mech::Int3 => io.write(addr, &[bp.orig]),
            Mech::Probe(site) => {
                self.probes.close_site_now(site);
                // A new breakpoint here must find the original byte.
                wait_restored(io, addr, bp.orig);
                Ok(())
            }
            Mech::Unplaced => Ok(()),
        }
    }

    /// Engine `engine` no longer uses any site: sites it was the last user
    /// of go, and the others settle (a stop-needing user gone may let a
    /// uprobe serve). Errors are logged: the engine is gone either way.
    pub fn remove_engine(&mut self, engine: EngineId, io: &mut Io<'_>) {
        let touched: Vec<u64> = self
            .map
            .iter_mut()
            .filter_map(|(addr, bp)| {
                bp.stoppers.remove(&engine);
                bp.counters.remove(&engine);
                bp.stackers.remove(&engine);
                bp.fetch.remove(&engine);
                bp.ret_fetch.remove(&engine);
                let entry = bp.users.remove(&engine).is_some();
                let ret = bp.ret_users.remove(&engine).is_some();
                (entry || ret).then_some(*addr)
            })
            .collect();
        for addr in touched {
            let r = if self.map.get(&addr).is_some_and(Bp::unused) {
                self.drop_site(addr, io)
            } else {
                self.settle(addr, io)
            };
            match r {
                Ok(()) => {}
                // The memory is gone (the process is dying, as after a
                // debugger's kill, or unmapped that page): nothing to
                // restore.
                Err(e @ (Errno::EFAULT | Errno::ESRCH | Errno::EIO)) => {
                    debug!(pid = io.pid, addr, %e, "a breakpoint's memory is gone")
                }
                Err(e) => warn!(pid = io.pid, addr, %e, "restoring a breakpoint's byte failed"),
            }
        }
    }

    /// A new thread `tid` of the process: the uprobes get it too (a site
    /// that cannot becomes an `int3`, which every thread sees).
    pub fn thread_added(&mut self, tid: Tid, io: &mut Io<'_>) {
        let addrs: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, b)| matches!(&b.mech, Mech::Probe(s) if !s.has_thread(tid)))
            .map(|(a, _)| *a)
            .collect();
        for addr in addrs {
            let Some(Bp {
                mech: Mech::Probe(site),
                ..
            }) = self.map.get_mut(&addr)
            else {
                continue;
            };
            if let Err(e) = self.probes.add_thread(site, addr, tid) {
                warn!(pid = io.pid, tid, addr, %e, "a new thread's uprobe failed; an int3 serves the breakpoint");
                if let Err(e) = self.force_int3(addr, io) {
                    warn!(pid = io.pid, addr, %e, "the breakpoint's int3 could not be written");
                }
            }
        }
    }

    /// Thread `tid` is gone: its events and ring close.
    pub fn thread_gone(&mut self, tid: Tid) {
        let sites = self.map.values_mut().filter_map(|b| match &mut b.mech {
            Mech::Probe(s) => Some(s),
            _ => None,
        });
        self.probes.thread_gone(tid, sites);
    }
}

/// The kernel takes a closed uprobe out of memory a little after its last
/// descriptor closes, not during the close (seen on 6.18: an int3 written
/// at once was erased a moment later, without a trace): wait until the
/// original byte is back at `addr` (bounded; a process that exits or a
/// page that goes away ends the wait too).
fn wait_restored(io: &mut Io<'_>, addr: u64, orig: u8) {
    let start = std::time::Instant::now();
    let mut polls = 0u32;
    loop {
        let mut b = [0u8; 1];
        if io.read(addr, &mut b) != 1 || b[0] == orig {
            break;
        }
        if start.elapsed() > RESTORE_WAIT {
            warn!(
                pid = io.pid,
                addr, "a closed uprobe is still in memory after {RESTORE_WAIT:?}"
            );
            return;
        }
        polls += 1;
        if polls < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    debug!(pid = io.pid, addr, waited = ?start.elapsed(), polls, "uprobe out of memory");
}

/// How long [`wait_restored`] waits. The kernel takes a uprobe out only
/// after RCU grace periods (64 ms here when idle; much more on a loaded
/// machine), and an int3 written before that is erased with it.
const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Breakpoints {
    /// The process is gone from the tracer: its sites leave the
    /// tracer-wide books (its uprobes close with [`Probes`]).
    fn drop(&mut self) {
        let addrs: Vec<u64> = self.map.keys().copied().collect();
        for a in addrs {
            self.unplace(a);
        }
    }
}
