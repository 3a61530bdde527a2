//! Breakpoints served by the kernel's uprobes: a hit costs the program a
//! few µs and no ptrace stop (7.8 µs against an int3's 61 in
//! `benches/breakpoints.rs`), and the kernel takes the probe out when the
//! last descriptor of it closes, so a tracer killed with SIGKILL leaves no
//! `int3` behind for a program to die on.
//!
//! One uprobe event per thread and site (`perf_event_open` on the uprobe
//! PMU with the thread's tid: a per-task event samples only while its own
//! thread runs), every event of a thread writing to that thread's ring (a
//! dummy event, `PERF_EVENT_IOC_SET_OUTPUT`), each ring polled by the
//! tracer thread's epoll. Samples carry the event's id, the thread, the
//! time and the user registers ([`crate::perf::REG_NAMES`]).
//!
//! Which sites a uprobe may serve, and the switching between uprobe and
//! `int3` as engines come and go, is [`crate::breakpoint`]'s business.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tracing::debug;

use crate::perf::{self, Ring};
use crate::sys::{Errno, Tid};
use crate::tracefs::TraceProbe;

/// The most bytes of one x86 instruction: a uprobe copies (and later
/// emulates or single-steps) the instruction from the *file*, so these
/// bytes of memory must be the file's.
pub(crate) const MAX_INSN: usize = 15;

/// A code location as the kernel's uprobes know it: a file (device and
/// inode) and an offset in it. One uprobe exists per location, shared by
/// every process mapping the file; while it exists, an `int3` of ours at
/// that location in *any* process is taken for the uprobe's and erased
/// at its first hit. So no location has both: [`Keys`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    dev: u64,
    inode: u64,
    offset: u64,
}

/// Where an address is: its location, and whether a uprobe may serve it
/// (private executable mapping of a regular file) and through what path
/// (`/proc/PID/map_files/...`, so the file is found in the traced
/// process's mount namespace, whatever the tracer's).
#[derive(Debug)]
pub(crate) struct Loc {
    pub key: Key,
    path: Option<CString>,
    /// Bytes of the mapping from the address on.
    room: u64,
}

/// Why no uprobe can serve anything here (`None`: they can): the kernel
/// has no uprobe PMU, or `UTRACE_NO_UPROBES` is set.
pub fn unavailable() -> Option<&'static str> {
    if perf::uprobe_pmu().is_none() {
        return Some(
            "this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe: \
             CONFIG_UPROBE_EVENTS is off)",
        );
    }
    std::env::var_os("UTRACE_NO_UPROBES")
        .is_some()
        .then_some("uprobes are turned off here (UTRACE_NO_UPROBES is set)")
}

/// Where `addr` of process `pid` is, if in a file's mapping. `None` also
/// when the kernel has no uprobes (then no location matters) or
/// `UTRACE_NO_UPROBES` is set.
pub(crate) fn locate(pid: Tid, addr: u64) -> Option<Loc> {
    perf::uprobe_pmu()?;
    if std::env::var_os("UTRACE_NO_UPROBES").is_some() {
        return None;
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    for l in maps.lines() {
        let mut f = l.split_whitespace();
        let (Some(range), Some(perms), Some(off), Some(dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Some((start, end)) = range
            .split_once('-')
            .and_then(|(a, b)| Some((hex(a)?, hex(b)?)))
        else {
            continue;
        };
        if !(start <= addr && addr < end) {
            continue;
        }
        let inode: u64 = inode.parse().ok()?;
        if inode == 0 {
            return None;
        }
        let (major, minor) = dev.split_once(':')?;
        let path = f.next().unwrap_or("");
        let offset = hex(off)? + (addr - start);
        let probe_ok = perms.contains('x') && perms.ends_with('p') && path.starts_with('/');
        return Some(Loc {
            key: Key {
                dev: (hex(major)? << 32) | hex(minor)?,
                inode,
                offset,
            },
            path: probe_ok
                // Named without the zero padding /proc/PID/maps shows
                // (`0041f000` is `41f000` there: a non-PIE program).
                .then(|| CString::new(format!("/proc/{pid}/map_files/{start:x}-{end:x}")).ok())
                .flatten(),
            room: end - addr,
        });
    }
    None
}

impl Loc {
    /// The byte at this location in the mapped file (not in memory).
    pub fn file_byte(&self) -> Option<u8> {
        let path = self.path.as_ref()?;
        let mut b = [0u8; 1];
        let f = std::fs::File::open(std::ffi::OsStr::from_bytes(path.as_bytes())).ok()?;
        (f.read_at(&mut b, self.key.offset).ok()? == 1).then_some(b[0])
    }
}

/// Where a uprobe can serve an address: the file and the offset in it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    path: CString,
    offset: u64,
    /// A USDT marker's semaphore, as a file offset (0: none): the kernel
    /// increments it while the uprobe exists, so the marker runs.
    pub ref_ctr: u64,
}

/// Whether a uprobe can serve `loc`, whose memory is `code` (the original
/// bytes, our own breakpoints hidden; up to [`MAX_INSN`]): a private,
/// executable mapping of a regular file whose bytes there are the file's
/// (code written by the program or a debugger is not, and a uprobe would
/// run the file's instead).
pub(crate) fn target(loc: &Loc, code: &[u8]) -> Option<Target> {
    let path = loc.path.clone()?;
    let n = code.len().min(loc.room as usize);
    if n == 0 {
        return None;
    }
    let mut file = vec![0u8; n];
    let got = std::fs::File::open(std::ffi::OsStr::from_bytes(path.as_bytes()))
        .and_then(|f| f.read_at(&mut file, loc.key.offset))
        .ok()?;
    // A kernel uprobe's breakpoint (ours lingering after an exec, or
    // another tool's) is an int3 where the file has the instruction's
    // first byte: the code is the file's all the same.
    let uprobe_byte = code[0] == crate::breakpoint::INT3 && file[0] != crate::breakpoint::INT3;
    let same = if uprobe_byte {
        file[1..] == code[1..n]
    } else {
        file == code[..n]
    };
    if got != n || !same {
        debug!(
            offset = loc.key.offset,
            "code differs from its file: an int3 serves it"
        );
        return None;
    }
    Some(Target {
        path,
        offset: loc.key.offset,
        ref_ctr: 0,
    })
}

/// How each location is served by the tracers of this process (one
/// table for all: the kernel has one uprobe per location, whichever
/// tracer opened it). A uprobe is placed only where no `int3` of ours is;
/// an `int3` placed where uprobes are is a *conflict*: every tracer turns
/// its uprobes there into `int3`s, then checks its `int3`s there (one
/// hit of a lingering uprobe erases an `int3`) until the conflict
/// expires, a second after the last uprobe there closed.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    uses: FxHashMap<Key, (u32, u32)>,
    /// Conflicting locations, and since when no uprobe serves them.
    conflicts: Vec<(Key, Option<std::time::Instant>)>,
    /// Changes with every conflict news: a tracer that saw this value has
    /// nothing new to do.
    pub generation: u64,
}

static KEYS: std::sync::LazyLock<std::sync::Mutex<Keys>> =
    std::sync::LazyLock::new(Default::default);

/// [`Keys::generation`], readable without the lock, and whether some
/// conflict is open: a tracer checks these at every resume.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CONFLICTS_OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Some conflict is open: tracers look at it every few milliseconds
/// (the kernel erases an int3 when it takes a uprobe out of each process
/// mapping the file, in its own time).
pub(crate) fn conflicts_open() -> bool {
    CONFLICTS_OPEN.load(Ordering::Acquire)
}

/// Nothing about the location table changed since a tracer saw generation
/// `seen`, and no conflict is open: it has nothing to resolve.
pub(crate) fn nothing_new(seen: u64) -> bool {
    GENERATION.load(Ordering::Acquire) == seen && !CONFLICTS_OPEN.load(Ordering::Acquire)
}

/// The process's location table.
pub(crate) fn keys() -> std::sync::MutexGuard<'static, Keys> {
    KEYS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long an int3 at a location whose uprobes all closed is still
/// checked (and written again if erased).
const CONFLICT_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

impl Keys {
    /// Uprobes (first) and int3s (second) of ours at `key`.
    pub fn uses(&self, key: &Key) -> (u32, u32) {
        self.uses.get(key).copied().unwrap_or((0, 0))
    }

    /// Count one more (`+1`) or one fewer (`-1`) uprobe / int3 at `key`.
    pub fn count(&mut self, key: Key, probe: bool, delta: i32) {
        let e = self.uses.entry(key).or_insert((0, 0));
        let n = if probe { &mut e.0 } else { &mut e.1 };
        *n = n.saturating_add_signed(delta);
        let (probes, int3s) = *e;
        if (probes, int3s) == (0, 0) {
            self.uses.remove(&key);
        }
        let news = if !probe && delta > 0 && probes > 0 {
            match self.conflicts.iter_mut().find(|(k, _)| *k == key) {
                Some(c) => c.1 = None,
                None => self.conflicts.push((key, None)),
            }
            true
        } else if probe && probes == 0 {
            // The last uprobe here closed: the int3s here are checked.
            match self.conflicts.iter_mut().find(|(k, _)| *k == key) {
                Some(c) => {
                    c.1 = Some(std::time::Instant::now());
                    true
                }
                None => false,
            }
        } else {
            false
        };
        if news {
            debug!(?key, probes, int3s, "uprobe/int3 conflict news");
            self.generation += 1;
            GENERATION.store(self.generation, Ordering::Release);
            CONFLICTS_OPEN.store(!self.conflicts.is_empty(), Ordering::Release);
            crate::sys::wake_all_tracers();
        }
    }

    /// Conflicts now: (location, whether its uprobes are all closed);
    /// expired ones forgotten.
    pub fn conflicts(&mut self) -> Vec<(Key, bool)> {
        self.conflicts
            .retain(|(_, since)| since.is_none_or(|t| t.elapsed() < CONFLICT_LINGER));
        CONFLICTS_OPEN.store(!self.conflicts.is_empty(), Ordering::Release);
        self.conflicts
            .iter()
            .map(|(k, s)| (*k, s.is_some()))
            .collect()
    }

    /// Some conflict is open.
    pub fn any_conflict(&self) -> bool {
        !self.conflicts.is_empty()
    }
}

/// A breakpoint served by uprobes: one event per thread of its process
/// (the events themselves are in [`Probes`]).
#[derive(Debug)]
pub(crate) struct Site {
    target: Target,
    /// Entry event ids by thread.
    ids: FxHashMap<Tid, u64>,
    /// Return-probe event ids by thread.
    ret_ids: FxHashMap<Tid, u64>,
    /// Which events it has.
    pub shape: Shape,
    /// The tracefs uprobes its sampling events are on, when the shape
    /// fetches values (entry, return); `None` where none could be
    /// defined (no tracefs): then its events are the PMU's, and fetch
    /// nothing.
    traced: (Option<Arc<TraceProbe>>, Option<Arc<TraceProbe>>),
}

/// Values the kernel takes at a hit (tracefs fetch arguments, e.g.
/// `+0(%di):string`), in a canonical order: sorted, no repeats.
pub(crate) type Fetch = Arc<[String]>;

/// The events a uprobe site has on each thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// An entry event (for breakpoint users).
    pub entry: bool,
    /// The entry events count, with no sample per hit (every entry user
    /// only counts).
    pub counting: bool,
    /// A return-probe event (for return-probe users), sampling.
    pub ret: bool,
    /// Sampling events carry the user stack (some user wants it:
    /// [`crate::EngineOptions::hit_stacks`]).
    pub stack: bool,
    /// What the entry events fetch at each hit (empty: nothing).
    pub fetch: Fetch,
    /// What the return-probe events fetch.
    pub ret_fetch: Fetch,
}

impl Site {
    pub fn has_thread(&self, tid: Tid) -> bool {
        self.ids.contains_key(&tid) || self.ret_ids.contains_key(&tid)
    }

    /// Where it probes.
    pub fn target(&self) -> Target {
        self.target.clone()
    }
}

/// A hit of a breakpoint served by a uprobe: the program did not stop;
/// the registers are as they were at the breakpoint (`rip` is its
/// address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakpointHit {
    pub pid: Tid,
    pub tid: Tid,
    /// The breakpoint's address.
    pub addr: u64,
    /// When, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// A return probe's hit: the registers are those at the function's
    /// return (`rax` its return value, `rip` where it returns to).
    pub returned: bool,
    regs: [u64; perf::REG_NAMES.len()],
    /// The user stack at the hit, innermost first (the hit's pc, then
    /// return addresses), when a user of the site asked for stacks
    /// ([`crate::EngineOptions::hit_stacks`]); empty otherwise.
    stack: Vec<u64>,
    /// What the kernel fetched at the hit: the site's fetch arguments and
    /// each one's value (`None`: it could not be read).
    fetched: Option<Box<Fetched>>,
}

/// A hit's fetch arguments and what the kernel read for each.
type Fetched = (Fetch, Vec<Option<Vec<u8>>>);

impl BreakpointHit {
    /// Registers the hit carries: `rax`…`r15`, `rip`, `eflags`, `cs`,
    /// `ss` (not `orig_rax`, `fs_base`, `gs_base`, nor the FPU's).
    pub const REGISTERS: &'static [&'static str] = &perf::REG_NAMES;

    /// The register [`BreakpointHit::REGISTERS`] names at index `i`.
    pub fn register_at(&self, i: usize) -> Option<u64> {
        self.regs.get(i).copied()
    }

    /// The user stack at the hit, innermost first: empty unless an
    /// engine using the site takes stacks
    /// ([`crate::EngineOptions::hit_stacks`]).
    pub fn stack(&self) -> &[u64] {
        &self.stack
    }

    /// The value the kernel fetched at the hit for `arg` (a tracefs
    /// fetch argument an engine asked for with [`crate::Task::fetch_at`]):
    /// `None` if the site did not fetch it (no tracefs, or an int3 serves
    /// it), `Some(None)` if the kernel could not read it. A string comes
    /// without its NUL.
    pub fn fetched(&self, arg: &str) -> Option<Option<&[u8]>> {
        let (args, values) = self.fetched.as_deref()?;
        let i = args.iter().position(|a| a == arg)?;
        Some(values.get(i)?.as_deref())
    }

    /// A register by name, as [`crate::Task::register`] names them.
    pub fn register(&self, name: &str) -> Option<u64> {
        perf::REG_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.regs[i])
    }
}

/// What draining the rings found.
#[derive(Debug)]
// Hits are most records, and live briefly in a Vec drained at each poll:
// boxing them would cost an allocation per hit for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Record {
    Hit(BreakpointHit),
    /// Hits of the breakpoint at `addr` the kernel could not record (its
    /// thread's ring was full).
    Lost {
        addr: u64,
        n: u64,
        /// Of its return probe.
        returned: bool,
    },
    /// Hits of the breakpoint at `addr` by thread `tid` that a counting
    /// event counted (no sample: its users only count).
    Count {
        tid: Tid,
        addr: u64,
        n: u64,
    },
}

impl Record {
    /// The breakpoint's address.
    pub fn addr(&self) -> u64 {
        match self {
            Record::Hit(h) => h.addr,
            Record::Lost { addr, .. } | Record::Count { addr, .. } => *addr,
        }
    }

    /// Of a return probe.
    pub fn returned(&self) -> bool {
        match self {
            Record::Hit(h) => h.returned,
            Record::Lost { returned, .. } => *returned,
            Record::Count { .. } => false,
        }
    }
}

/// One uprobe event: a site on a thread.
struct Event {
    /// `None` only while it is dropped.
    fd: Option<OwnedFd>,
    tid: Tid,
    addr: u64,
    /// Losses already reported (a sampling event), or hits (a counting
    /// one).
    lost: u64,
    /// A counting event: no samples, `lost` counts its hits.
    counting: bool,
    /// A return probe's event.
    ret: bool,
    /// Its samples carry a callchain.
    stack: bool,
    /// A tracefs uprobe's event: its samples carry the fetched values, as
    /// the probe's format lays them out (the probe is deleted once its
    /// last event is closed).
    traced: Option<(Arc<TraceProbe>, Fetch)>,
}

impl Drop for Event {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            close_later(fd, self.traced.take().map(|t| t.0));
        }
    }
}

/// Close a uprobe event off the tracer thread. The kernel's unregistering
/// of a uprobe waits for RCU grace periods (a close took 87 ms here):
/// on the tracer thread that would stall every traced task, and leave a
/// uprobe being switched to an int3 without either for that long. The
/// kernel takes the probe out of memory before those waits (callers that
/// need the original byte back poll memory for it). Closers: a few
/// threads, so that grace periods overlap; if they are behind by a
/// thousand, the caller closes it itself.
/// A tracefs uprobe given with the descriptor is deleted after it is
/// closed (if it was the probe's last).
fn close_later(fd: OwnedFd, probe: Option<Arc<TraceProbe>>) {
    use std::sync::mpsc::{sync_channel, SyncSender};
    type Closing = (OwnedFd, Option<Arc<TraceProbe>>);
    static CLOSER: std::sync::OnceLock<Option<SyncSender<Closing>>> = std::sync::OnceLock::new();
    let tx = CLOSER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Closing>(1024);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut started = 0;
        for i in 0..4 {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("uprobe-close-{i}"))
                .spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match next {
                        // The descriptor first: the kernel keeps a
                        // tracefs probe busy while an event is open.
                        Ok((fd, probe)) => {
                            drop(fd);
                            drop(probe);
                        }
                        Err(_) => return,
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(tx)
    });
    match tx {
        Some(tx) => {
            // Full or closed: the fd comes back in the error, and is
            // closed here when the error drops (the tuple's order: the
            // descriptor before the probe).
            let _ = tx.try_send((fd, probe));
        }
        None => {
            drop(fd);
            drop(probe);
        }
    }
}

impl Event {
    /// Record in `out` what this event lost since last asked (a sampling
    /// event), or what it counted (a counting one).
    fn count_lost(&mut self, out: &mut Vec<Record>) {
        let Some(fd) = &self.fd else { return };
        if self.counting {
            if let Ok(total) = perf::count(fd) {
                if total > self.lost {
                    out.push(Record::Count {
                        tid: self.tid,
                        addr: self.addr,
                        n: total - self.lost,
                    });
                    self.lost = total;
                }
            }
            return;
        }
        if let Ok(total) = perf::lost(fd) {
            if total > self.lost {
                out.push(Record::Lost {
                    addr: self.addr,
                    n: total - self.lost,
                    returned: self.ret,
                });
                self.lost = total;
            }
        }
    }
}

/// A process's uprobe state: each thread's ring, every event by id, and
/// records taken out of the rings (or losses counted at an event's close)
/// not yet delivered.
pub(crate) struct Probes {
    /// The process (hits name it).
    pid: Tid,
    /// The tracer thread's epoll: a ring's samples wake it.
    epoll: Option<Arc<OwnedFd>>,
    /// Rings open in all the tracer's processes (the tracer thread polls
    /// rings only while there are some).
    open_rings: Arc<AtomicUsize>,
    rings: FxHashMap<Tid, Ring>,
    events: FxHashMap<u64, Event>,
    pending: Vec<Record>,
    /// Drained bytes, reused.
    buf: Vec<u8>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("rings", &self.rings.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.open_rings
            .fetch_sub(self.rings.len(), Ordering::Relaxed);
    }
}

impl Probes {
    pub fn new(pid: Tid, epoll: Option<Arc<OwnedFd>>, open_rings: Arc<AtomicUsize>) -> Self {
        Probes {
            pid,
            epoll,
            open_rings,
            rings: FxHashMap::default(),
            events: FxHashMap::default(),
            pending: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Uprobe events and rings open now.
    pub fn open(&self) -> (usize, usize) {
        (self.events.len(), self.rings.len())
    }

    /// Nothing to drain or deliver (counting events are read when asked:
    /// [`Probes::read_counts`]).
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty() && self.pending.is_empty()
    }

    /// A uprobe at `addr` (served as `target` says) on each of `threads`.
    /// All or nothing: on an error no event stays open.
    pub fn open_site(
        &mut self,
        target: Target,
        addr: u64,
        threads: &[Tid],
        shape: Shape,
    ) -> Result<Site, Errno> {
        let define = |ret: bool, fetch: &Fetch| {
            if fetch.is_empty() {
                return None;
            }
            match TraceProbe::create(&target.path, target.offset, target.ref_ctr, ret, fetch) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    debug!(addr, %e, "no tracefs uprobe: values are read after the hit");
                    None
                }
            }
        };
        let traced = (
            define(false, &shape.fetch).filter(|_| shape.entry && !shape.counting),
            define(true, &shape.ret_fetch).filter(|_| shape.ret),
        );
        let mut site = Site {
            target,
            ids: FxHashMap::default(),
            ret_ids: FxHashMap::default(),
            shape,
            traced,
        };
        for &tid in threads {
            if let Err(e) = self.add_thread(&mut site, addr, tid) {
                self.close_site(site);
                return Err(e);
            }
        }
        Ok(site)
    }

    /// The site's uprobe on one more thread (a new one).
    pub fn add_thread(&mut self, site: &mut Site, addr: u64, tid: Tid) -> Result<(), Errno> {
        let pmu = perf::uprobe_pmu().ok_or(Errno::ENOENT)?;
        if site.shape.entry && !site.ids.contains_key(&tid) {
            let id = if site.shape.counting {
                let (fd, id) = perf::open_uprobe_counting(
                    pmu,
                    &site.target.path,
                    site.target.offset,
                    tid,
                    site.target.ref_ctr,
                )?;
                self.events.insert(
                    id,
                    Event {
                        fd: Some(fd),
                        tid,
                        addr,
                        lost: 0,
                        counting: true,
                        ret: false,
                        stack: false,
                        traced: None,
                    },
                );
                id
            } else {
                self.add_sampling(site, addr, tid, false)?
            };
            site.ids.insert(tid, id);
        }
        if site.shape.ret && !site.ret_ids.contains_key(&tid) {
            let id = self.add_sampling(site, addr, tid, true)?;
            site.ret_ids.insert(tid, id);
        }
        Ok(())
    }

    /// A sampling event of `site` on thread `tid` (its ring opened if
    /// needed): an entry probe, or with `ret` a return probe.
    fn add_sampling(&mut self, site: &Site, addr: u64, tid: Tid, ret: bool) -> Result<u64, Errno> {
        let pmu = perf::uprobe_pmu().ok_or(Errno::ENOENT)?;
        let ring = match self.rings.entry(tid) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let ring = Ring::open(tid)?;
                if let Some(ep) = &self.epoll {
                    crate::sys::epoll_add(ep, ring.raw_fd())?;
                }
                self.open_rings.fetch_add(1, Ordering::Relaxed);
                v.insert(ring)
            }
        };
        let probe = if ret { &site.traced.1 } else { &site.traced.0 };
        let (fd, id) = match probe {
            Some(p) => perf::open_trace_uprobe(p.id, tid, site.shape.stack)?,
            None => perf::open_uprobe(
                pmu,
                &site.target.path,
                site.target.offset,
                tid,
                ret,
                site.target.ref_ctr,
                site.shape.stack,
            )?,
        };
        let traced = probe.as_ref().map(|p| {
            let fetch = if ret {
                &site.shape.ret_fetch
            } else {
                &site.shape.fetch
            };
            (Arc::clone(p), Arc::clone(fetch))
        });
        perf::set_output(&fd, ring)?;
        self.events.insert(
            id,
            Event {
                fd: Some(fd),
                tid,
                addr,
                lost: 0,
                counting: false,
                ret,
                stack: site.shape.stack,
                traced,
            },
        );
        Ok(id)
    }

    /// Move what every counting event counted since last asked into the
    /// records to deliver.
    pub fn read_counts(&mut self) {
        for ev in self.events.values_mut().filter(|e| e.counting) {
            ev.count_lost(&mut self.pending);
        }
    }

    /// Take the site's uprobes out (the kernel puts the original
    /// instruction back in every process). Hits already recorded stay to
    /// be delivered; so do the losses counted. The descriptors close on
    /// the closer threads ([`close_later`]).
    pub fn close_site(&mut self, site: Site) {
        self.close_site_as(site, false);
    }

    /// [`Probes::close_site`], the descriptors closed here, now: for a
    /// site about to become an int3. (Measured: with the closes left to
    /// the closer threads, the int3 written once the original byte was
    /// back was erased in about one run of three, by what of the
    /// unregistering remained; closed here, never in 30 runs.)
    pub fn close_site_now(&mut self, site: Site) {
        self.close_site_as(site, true);
    }

    fn close_site_as(&mut self, site: Site, now: bool) {
        for (tid, id) in site.ids.into_iter().chain(site.ret_ids) {
            self.take_ring(tid);
            match self.events.remove(&id) {
                Some(mut ev) if now => {
                    ev.count_lost(&mut self.pending);
                    // Closed here, not by the closer threads (and its
                    // tracefs probe, if it was the last event on it).
                    drop(ev.fd.take());
                    drop(ev.traced.take());
                }
                Some(mut ev) => ev.count_lost(&mut self.pending),
                None => {}
            }
            // A ring no event writes to any more goes too (the tracer then
            // stops looking at this process's rings when none is left).
            if !self.events.values().any(|e| e.tid == tid) {
                self.drop_ring(tid);
            }
        }
    }

    fn drop_ring(&mut self, tid: Tid) {
        if let Some(ring) = self.rings.remove(&tid) {
            if let Some(ep) = &self.epoll {
                crate::sys::epoll_del(ep, ring.raw_fd());
            }
            self.open_rings.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn close_event(&mut self, id: u64) {
        if let Some(mut ev) = self.events.remove(&id) {
            ev.count_lost(&mut self.pending);
        }
    }

    /// Thread `tid` is gone: its records are kept, its events (also named
    /// in `sites`) and its ring close.
    pub fn thread_gone<'a>(&mut self, tid: Tid, sites: impl Iterator<Item = &'a mut Site>) {
        self.take_ring(tid);
        for s in sites {
            for id in [s.ids.remove(&tid), s.ret_ids.remove(&tid)]
                .into_iter()
                .flatten()
            {
                self.close_event(id);
            }
        }
        self.drop_ring(tid);
    }

    /// Every site is going (a new image): rings drained, losses counted,
    /// events and rings closed. What was recorded stays to be delivered.
    pub fn close_all(&mut self) {
        let tids: Vec<Tid> = self.rings.keys().copied().collect();
        for t in tids {
            self.take_ring(t);
        }
        let ids: Vec<u64> = self.events.keys().copied().collect();
        for id in ids {
            self.close_event(id);
        }
        let tids: Vec<Tid> = self.rings.keys().copied().collect();
        for t in tids {
            self.drop_ring(t);
        }
    }

    /// Move the records in `tid`'s ring to `pending`; if the kernel lost
    /// some, count each of the thread's events' losses.
    fn take_ring(&mut self, tid: Tid) {
        let Some(ring) = self.rings.get_mut(&tid) else {
            return;
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        ring.drain(&mut buf);
        let lost = self.parse(&buf);
        self.buf = buf;
        if lost {
            for ev in self.events.values_mut().filter(|e| e.tid == tid) {
                ev.count_lost(&mut self.pending);
            }
        }
    }

    /// Records of `tid` (or of every thread), oldest first per thread,
    /// with whatever was pending; hit times made wall-clock.
    pub fn drain(&mut self, tid: Option<Tid>) -> Vec<Record> {
        match tid {
            Some(t) => self.take_ring(t),
            None => {
                let tids: Vec<Tid> = self.rings.keys().copied().collect();
                for t in tids {
                    self.take_ring(t);
                }
            }
        }
        let mut out = std::mem::take(&mut self.pending);
        if out.is_empty() {
            return out;
        }
        let offset_ns = clock_offset_ns();
        for r in &mut out {
            if let Record::Hit(h) = r {
                h.time_ns = (h.time_ns as i64).saturating_add(offset_ns) as u64;
            }
        }
        out
    }

    /// Parse `data` (whole records) into `pending`; whether any said the
    /// kernel lost samples.
    fn parse(&mut self, mut data: &[u8]) -> bool {
        fn u64_at(d: &[u8], at: usize) -> Option<u64> {
            Some(u64::from_ne_bytes(d.get(at..at + 8)?.try_into().ok()?))
        }
        let mut lost = false;
        while data.len() >= 8 {
            let kind = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
            let size = u16::from_ne_bytes([data[6], data[7]]) as usize;
            if size < 8 || size > data.len() {
                break;
            }
            let rec = &data[8..size];
            data = &data[size..];
            match kind {
                perf::RECORD_SAMPLE => {
                    let (Some(id), Some(pt), Some(time)) =
                        (u64_at(rec, 0), u64_at(rec, 8), u64_at(rec, 16))
                    else {
                        continue;
                    };
                    let Some(ev) = self.events.get(&id) else {
                        // An event closed since (its hits are no one's).
                        continue;
                    };
                    let (addr, returned, has_stack) = (ev.addr, ev.ret, ev.stack);
                    // The callchain (if sampled) comes before the registers.
                    let mut at = 24;
                    let mut stack = Vec::new();
                    if has_stack {
                        let Some(nr) = u64_at(rec, at) else { continue };
                        let nr = (nr as usize).min(rec.len() / 8);
                        stack =
                            perf::user_frames((0..nr).filter_map(|i| u64_at(rec, at + 8 + 8 * i)));
                        at += 8 + 8 * nr;
                    }
                    // The raw data (a tracefs uprobe's): a u32 size, then
                    // the entry, padded so that what follows is aligned.
                    let mut fetched = None;
                    if let Some((probe, fetch)) = &ev.traced {
                        let Some(size) = rec
                            .get(at..at + 4)
                            .and_then(|b| b.try_into().ok())
                            .map(u32::from_ne_bytes)
                        else {
                            continue;
                        };
                        let raw = rec.get(at + 4..at + 4 + size as usize).unwrap_or(&[]);
                        fetched = Some(Box::new((Arc::clone(fetch), probe.values(raw))));
                        at += 4 + size as usize;
                    }
                    let Some(abi) = u64_at(rec, at) else { continue };
                    let mut regs = [0u64; perf::REG_NAMES.len()];
                    if abi != 0 {
                        for (i, r) in regs.iter_mut().enumerate() {
                            *r = u64_at(rec, at + 8 + 8 * i).unwrap_or(0);
                        }
                    }
                    self.pending.push(Record::Hit(BreakpointHit {
                        pid: self.pid,
                        tid: (pt >> 32) as Tid,
                        addr,
                        // Monotonic here; made wall-clock on delivery.
                        time_ns: time,
                        returned,
                        regs,
                        stack,
                        fetched,
                    }));
                }
                perf::RECORD_LOST => lost = true,
                _ => {}
            }
        }
        lost
    }
}

/// Realtime minus monotonic, now, in nanoseconds: sample times are
/// monotonic; reports carry wall-clock times.
fn clock_offset_ns() -> i64 {
    crate::sys::clock_ns(libc::CLOCK_REALTIME) - crate::sys::clock_ns(libc::CLOCK_MONOTONIC)
}
