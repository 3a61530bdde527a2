//! Probes: systemtap/bpftrace-style clauses run at function entries
//! (served by the kernel's uprobes wherever no engine needs a stop there:
//! the program does not stop) and syscall entries and exits, aggregating
//! into maps kept here, and events.
//!
//! [`ProbeEngine`] runs a [`Program`] on the tracer thread; its maps,
//! counters and events live in a [`Shared`] that another thread (the
//! server's stream) snapshots and drains. A probe never writes the
//! program's memory or registers and never changes its control flow: it
//! inserts breakpoints through the shared breakpoint-site table (one
//! kernel uprobe per site however many engines use it) and reads.
//!
//! Placing: on the engine's first stop (an interrupt after attach, or the
//! exec of a spawned program) each function point is resolved in the
//! process ([`resolve`]); a spawned program's library points wait for the
//! library's `mmap` (the engine watches `mmap` exits until none is left).

pub mod agg;
mod fetch;
pub mod program;
pub mod resolve;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rustc_hash::FxHashMap;
use tracing::{debug, warn};

pub use crate::perf::MAX_STACK;
use crate::sys::Tid;
use crate::{
    Action, BreakpointHit, Engine, EngineOptions, EventMask, ExecReport, ExitReport, SyscallEntry,
    SyscallExit, SyscallSet, Task,
};
pub use agg::{Cell, Frame, Map, Stack, Value};
pub use program::{
    Agg, BinOp, Builtin, Clause, Expr, Limits, MapDef, Point, ProcessEvent, Program, UnOp, Update,
};

/// Totals of one probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Hits taken, before predicates.
    pub hits: u64,
    /// Hits the kernel could not record.
    pub hits_lost: u64,
    /// Events not queued (rate or queue bound).
    pub events_dropped: u64,
    /// `str()` reads that failed.
    pub read_errors: u64,
}

/// A clause's event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEvent {
    pub clause: u32,
    pub pid: Tid,
    pub tid: Tid,
    /// CLOCK_MONOTONIC nanoseconds.
    pub nsecs: u64,
    pub values: Vec<Value>,
    /// Events dropped since the previous one queued.
    pub dropped_before: u64,
}

/// Where a function point went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedPoint {
    pub clause: u32,
    pub point: u32,
    /// 0 while pending.
    pub addr: u64,
    pub file: String,
    /// Its library is not loaded yet.
    pub pending: bool,
}

/// A map at one time.
#[derive(Clone, Debug)]
pub struct MapSnapshot {
    pub name: String,
    pub agg: Agg,
    pub entries: Vec<(Vec<Value>, Cell)>,
    pub keys_dropped: u64,
}

/// The maps and totals at one time.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub maps: Vec<MapSnapshot>,
    pub counters: Counters,
}

/// Why a probe's points could not be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceError {
    /// A file or symbol named does not exist (else the request is wrong
    /// in another way, or the process cannot be probed there).
    pub missing: bool,
    /// Each point's reason, with its field path.
    pub message: String,
}

/// Most bytes of keys one probe keeps, over all its maps.
pub const MAX_KEY_BYTES: usize = 64 << 20;

/// What the engine and its reader share.
#[derive(Debug)]
pub struct State {
    maps: Vec<Map>,
    pub counters: Counters,
    /// Events not yet taken (bounded by [`Limits::event_queue`]).
    pub events: VecDeque<ProbeEvent>,
    /// The first placement's outcome (`None` until it happened).
    pub placed: Option<Result<Vec<PlacedPoint>, PlaceError>>,
    /// Bytes of keys kept, in every map (bounded by [`MAX_KEY_BYTES`]).
    key_bytes: usize,
    /// Why the probe ended, once it has.
    pub ended: Option<String>,
}

/// What one hit costs the probed program, by how it is served, in
/// nanoseconds (`cargo bench -p utrace-tests --bench probes`, here: 1.3 µs
/// counted, 3.0 µs sampled, 55 µs an int3 with its step, ~20 µs a
/// seccomp/ptrace syscall stop).
pub mod cost {
    pub const COUNTED: u64 = 1_300;
    pub const SAMPLED: u64 = 3_000;
    pub const INT3: u64 = 55_000;
    pub const SYSCALL: u64 = 20_000;
}

/// A probe's state, shared between its engine (tracer thread) and a
/// reader; [`Shared::notify`] wakes the reader when events queue, the
/// placement is done, or the probe ends.
#[derive(Debug)]
pub struct Shared {
    /// What its hits cost the program so far, estimated in nanoseconds
    /// from each hit's kind ([`cost`]): the reader compares it with
    /// [`Limits::cpu_percent`] over time. An atomic, not in [`State`]: a
    /// hit's charge takes no lock.
    pub cost_ns: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    names: Vec<String>,
    pub notify: tokio::sync::Notify,
}

impl Shared {
    /// State for `program`'s maps.
    pub fn new(program: &Program) -> Arc<Shared> {
        Arc::new(Shared {
            cost_ns: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(State {
                maps: program.maps.iter().map(|m| Map::new(m.agg)).collect(),
                counters: Counters::default(),
                events: VecDeque::new(),
                placed: None,
                key_bytes: 0,
                ended: None,
            }),
            names: program.maps.iter().map(|m| m.name.clone()).collect(),
            notify: tokio::sync::Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The maps now; with `clear`, they are emptied (the counts of keys
    /// dropped stay cumulative).
    pub fn snapshot(&self, clear: bool) -> Snapshot {
        let mut st = self.lock();
        let counters = st.counters;
        let maps = st
            .maps
            .iter_mut()
            .zip(&self.names)
            .map(|(m, name)| MapSnapshot {
                name: name.clone(),
                agg: m.agg,
                entries: if clear {
                    std::mem::take(&mut m.entries).into_iter().collect()
                } else {
                    m.entries
                        .iter()
                        .map(|(k, c)| (k.clone(), c.clone()))
                        .collect()
                },
                keys_dropped: m.keys_dropped,
            })
            .collect();
        if clear {
            st.key_bytes = 0;
        }
        Snapshot { maps, counters }
    }

    /// End the probe for `why` (the reader sends the final snapshot and
    /// the reason); the caller detaches its engine.
    pub fn end(&self, why: &str) {
        let mut st = self.lock();
        if st.ended.is_none() {
            st.ended = Some(why.to_string());
            if st.placed.is_none() {
                st.placed = Some(Err(PlaceError {
                    missing: false,
                    message: format!("the probe ended before it was placed: {why}"),
                }));
            }
        }
        drop(st);
        self.notify.notify_one();
    }
}

/// The engine that runs a [`Program`].
pub struct ProbeEngine {
    prog: Arc<Program>,
    shared: Arc<Shared>,
    /// The process probed first (known at the first stop).
    pid: Option<Tid>,
    /// Library points may wait for their library (a spawned program).
    allow_pending: bool,
    /// What the probe placed in each process (the first, and its
    /// descendants when it follows them).
    procs: FxHashMap<Tid, Proc>,
    /// The first placement happened.
    placed_once: bool,
    /// It follows the process's children (and theirs).
    follow: bool,
    /// Some clause takes `comm` ([`Program::uses_comm`]): threads are
    /// named while they live.
    wants_comm: bool,
    /// Processes probed and not gone yet: the probe ends when none is
    /// left.
    live: std::collections::BTreeSet<Tid>,
    /// The engine watches `mmap` exits (for pending points).
    watching: bool,
    /// Each thread's name, and when it was read: read while the thread
    /// lives (at its first stop, its clone, its exec), so that hits taken
    /// from the rings after it is gone still name it; read again when a
    /// second old (a thread may rename itself).
    comms: FxHashMap<Tid, (Value, Instant)>,
    /// `probe` of each clause's points.
    point_names: Vec<Vec<Value>>,
    /// Events a second: tokens, when last refilled, dropped since the
    /// last queued.
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC (hit times are realtime).
    realtime_offset: i64,
}

/// Clause and point indices of one site: shared, so that a hit takes
/// them with a reference count, not a copy.
type Points = Arc<[(u32, u32)]>;

/// What a probe placed in one process.
#[derive(Default)]
struct Proc {
    /// Clause and point indices by breakpoint address.
    sites: FxHashMap<u64, Points>,
    /// The same for return probes, by function address.
    ret_sites: FxHashMap<u64, Points>,
    /// Where the arguments of each USDT point are, at each of its places
    /// (a marker inlined several times has several).
    usdt_args: FxHashMap<(u32, u32, u64), Arc<[resolve::UsdtArg]>>,
    /// Function points not placed yet (their library is not mapped).
    pending: Vec<(u32, u32)>,
    /// Names stack addresses (made at the first stack).
    symbolizer: Option<resolve::Symbolizer>,
    /// Stacks seen, each symbolized once and shared by every key and
    /// event that holds it (at most [`MAX_STACKS`]; then forgotten and
    /// started again).
    stacks: FxHashMap<Box<[u64]>, Arc<Stack>>,
}

/// How long a thread's name is taken as read (see
/// [`ProbeEngine::comms`]), and how many are kept.
const COMM_FRESH: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_COMMS: usize = 1 << 16;

/// Stacks a probe remembers (see [`ProbeEngine::stacks`]).
const MAX_STACKS: usize = 4096;

impl ProbeEngine {
    /// An engine for `prog` writing to `shared`, and its options. With
    /// `allow_pending` (a spawned program), function points in libraries
    /// not loaded yet are placed when they are. With `follow`, the
    /// process's children are probed too (and theirs), from their first
    /// instruction; the probe ends when the last of them is gone.
    pub fn new(
        prog: Arc<Program>,
        shared: Arc<Shared>,
        allow_pending: bool,
        follow: bool,
    ) -> (Self, EngineOptions) {
        let (entry, exit, mut set) = prog.syscalls();
        let has_functions = prog
            .clauses
            .iter()
            .flat_map(|c| &c.points)
            .any(|p| !matches!(p, Point::Syscall { .. } | Point::Process(_)));
        let watching = allow_pending && has_functions;
        // A probe that takes `comm` names each new thread at its clone,
        // while it is there (no stop more: the tracer stops at every clone
        // to follow threads anyway).
        let wants_comm = prog.uses_comm();
        let mut events = EventMask::BREAKPOINT | EventMask::DEATH | EventMask::EXEC;
        if wants_comm || follow {
            events |= EventMask::CLONE;
        }
        if entry {
            events |= EventMask::SYSCALL_ENTRY;
        }
        if exit || watching {
            events |= EventMask::SYSCALL_EXIT;
        }
        if watching {
            set.insert(libc::SYS_mmap as u64);
        }
        for e in prog.process_events() {
            events |= match e {
                ProcessEvent::Signal(_) => EventMask::SIGNAL,
                ProcessEvent::ThreadStart => EventMask::CLONE,
                ProcessEvent::ThreadExit => EventMask::EXIT,
                ProcessEvent::Exec => EventMask::EXEC,
                ProcessEvent::Exit => EventMask::DEATH,
            };
        }
        let mut opts = EngineOptions::new(events)
            .syscalls(set)
            .breakpoint_hits(true)
            .hit_stacks(prog.uses_stacks());
        opts.follow_children = follow;
        let point_names = prog
            .clauses
            .iter()
            .map(|c| {
                c.points
                    .iter()
                    .map(|p| Value::Str(p.describe().into_bytes().into()))
                    .collect()
            })
            .collect();
        let limits = prog.limits;
        (
            ProbeEngine {
                prog,
                shared,
                pid: None,
                allow_pending,
                procs: FxHashMap::default(),
                placed_once: false,
                follow,
                wants_comm,
                live: Default::default(),
                watching,
                comms: FxHashMap::default(),
                point_names,
                tokens: f64::from(limits.events_per_second),
                refilled: Instant::now(),
                dropped: 0,
                realtime_offset: crate::sys::clock_ns(libc::CLOCK_REALTIME)
                    - crate::sys::clock_ns(libc::CLOCK_MONOTONIC),
            },
            opts,
        )
    }

    /// Every function point of the program.
    fn function_points(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (ci, c) in self.prog.clauses.iter().enumerate() {
            for (pi, p) in c.points.iter().enumerate() {
                if !matches!(p, Point::Syscall { .. } | Point::Process(_)) {
                    out.push((ci as u32, pi as u32));
                }
            }
        }
        out
    }

    /// Place `todo` in the task's process. The first placement reports
    /// its outcome through [`State::placed`]; a failed one detaches.
    fn place(&mut self, task: &mut Task<'_>, todo: Vec<(u32, u32)>) -> Action {
        let pid = task.pid();
        self.pid.get_or_insert(pid);
        self.live.insert(pid);
        if self.wants_comm {
            self.note_comms(pid);
        }
        let proc_ = self.procs.entry(pid).or_default();
        // Sites placed now, whose fetch arguments are told once all their
        // points are in.
        let mut fetch_sites: Vec<(u64, bool)> = Vec::new();
        let mut placed = Vec::new();
        let mut errors = Vec::new();
        let mut missing = false;
        for (ci, pi) in todo {
            let Some(point) = self
                .prog
                .clauses
                .get(ci as usize)
                .and_then(|c| c.points.get(pi as usize))
            else {
                continue;
            };
            let ret = matches!(point, Point::Function { ret: true, .. });
            type Places = Vec<(resolve::Placed, Option<(Vec<resolve::UsdtArg>, u64)>)>;
            let r: Result<Places, resolve::Unplaced> = match point {
                Point::Function {
                    binary,
                    symbol,
                    offset,
                    exact,
                    ..
                } => resolve::function(pid, binary, symbol.as_deref(), *offset, *exact)
                    .map(|p| vec![(p, None)]),
                Point::Address(a) => resolve::address(pid, *a).map(|p| vec![(p, None)]),
                Point::Usdt {
                    binary,
                    provider,
                    name,
                } => resolve::usdt(pid, binary, provider, name).map(|v| {
                    v.into_iter()
                        .map(|m| (m.at, Some((m.args, m.ref_ctr))))
                        .collect()
                }),
                Point::Syscall { .. } | Point::Process(_) => continue,
            };
            let counted = self
                .prog
                .clauses
                .get(ci as usize)
                .is_some_and(|c| c.counts_only(&self.prog.maps));
            match r {
                Ok(places) => {
                    for (p, args) in places {
                        let mut ref_ctr = 0;
                        if let Some((a, r)) = args {
                            proc_.usdt_args.insert((ci, pi, p.addr), a.into());
                            ref_ctr = r;
                        }
                        match if ret {
                            task.insert_return_probe(p.addr)
                        } else if ref_ctr != 0 {
                            task.insert_marker(p.addr, ref_ctr, counted)
                        } else if counted {
                            task.insert_breakpoint_counted(p.addr)
                        } else {
                            task.insert_breakpoint(p.addr)
                        } {
                            Ok(()) => {
                                let sites = if ret {
                                    &mut proc_.ret_sites
                                } else {
                                    &mut proc_.sites
                                };
                                // Made anew at placement (rare), read at every hit.
                                let at = sites.entry(p.addr).or_insert_with(|| Arc::from([]));
                                *at = at.iter().copied().chain([(ci, pi)]).collect();
                                if !fetch_sites.contains(&(p.addr, ret)) {
                                    fetch_sites.push((p.addr, ret));
                                }
                                // `probe` names the file found, as bpftrace does.
                                if let Some(name) = self
                                    .point_names
                                    .get_mut(ci as usize)
                                    .and_then(|v| v.get_mut(pi as usize))
                                {
                                    *name = Value::Str(
                                        point.describe_in(Some(&p.file)).into_bytes().into(),
                                    );
                                }
                                placed.push(PlacedPoint {
                                    clause: ci,
                                    point: pi,
                                    addr: p.addr,
                                    file: p.file,
                                    pending: false,
                                });
                            }
                            Err(_) if (ret || ref_ctr != 0) && crate::uprobes_unavailable().is_some() => {
                                errors.push(format!(
                                    "clauses[{ci}].points[{pi}]: no {} at {:#x} ({}): only a kernel \
                                     uprobe serves one, and {}",
                                    if ret { "return probe" } else { "USDT marker with a semaphore" },
                                    p.addr,
                                    p.file,
                                    crate::uprobes_unavailable().unwrap_or_default()
                                ))
                            }
                            Err(e) if ret => errors.push(format!(
                        "clauses[{ci}].points[{pi}]: no return probe at {:#x} ({}): only a \
                         kernel uprobe serves one, and here a breakpoint that stops (a \
                         debugger's) is in the way, or the code is not its file's ({e})",
                        p.addr, p.file
                    )),
                            Err(e) => errors.push(format!(
                                "clauses[{ci}].points[{pi}]: cannot probe {:#x} ({}): {e}",
                                p.addr, p.file
                            )),
                        }
                    }
                }
                Err(resolve::Unplaced::NotLoaded(why)) if self.allow_pending => {
                    debug!(clause = ci, point = pi, %why, "probe point waits for its library");
                    proc_.pending.push((ci, pi));
                    placed.push(PlacedPoint {
                        clause: ci,
                        point: pi,
                        addr: 0,
                        file: String::new(),
                        pending: true,
                    });
                }
                Err(e) => {
                    missing |= matches!(
                        e,
                        resolve::Unplaced::Missing(_) | resolve::Unplaced::NotLoaded(_)
                    );
                    errors.push(format!("clauses[{ci}].points[{pi}]: {e}"));
                }
            }
        }
        for (addr, ret) in fetch_sites {
            let args = self.fetch_args(pid, addr, ret);
            debug!(addr, ret, ?args, "fetch at the hit");
            if !args.is_empty() {
                if let Err(e) = task.fetch_at(addr, ret, args) {
                    debug!(addr, %e, "values will be read after each hit");
                }
            }
        }
        if !self.placed_once {
            self.placed_once = true;
            let mut st = self.shared.lock();
            if errors.is_empty() {
                st.placed = Some(Ok(placed));
            } else {
                st.placed = Some(Err(PlaceError {
                    missing,
                    message: errors.join("; "),
                }));
                st.ended = Some("its probe points could not be placed".into());
            }
            drop(st);
            self.shared.notify.notify_one();
            if !errors.is_empty() {
                return Action::Detach;
            }
        } else {
            for e in errors {
                warn!(pid, "probe point not placed: {e}");
            }
        }
        self.update_watch(task);
        Action::Resume
    }

    /// What the kernel should take at each hit of the site at `addr`
    /// (`ret`: its return probe) for this probe's clauses there: their
    /// `str()` and `buf()` of registers, and USDT arguments in memory.
    /// Sorted, each once.
    fn fetch_args(&self, pid: Tid, addr: u64, ret: bool) -> Vec<String> {
        let Some(p) = self.procs.get(&pid) else {
            return Vec::new();
        };
        let sites = if ret { &p.ret_sites } else { &p.sites };
        let mut out = Vec::new();
        for &(ci, pi) in sites.get(&addr).iter().flat_map(|p| p.iter()) {
            let Some(c) = self.prog.clauses.get(ci as usize) else {
                continue;
            };
            let usdt = p.usdt_args.get(&(ci, pi, addr));
            if let Some(spec) = usdt {
                out.extend(spec.iter().filter_map(fetch::usdt_mem));
            }
            let at = fetch::At {
                usdt: usdt.map(|a| &a[..]),
                ret,
            };
            for e in c.exprs() {
                fetch::collect(e, at, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Stop watching `mmap` once no point waits.
    fn update_watch(&mut self, task: &mut Task<'_>) {
        if self.watching && self.procs.values().all(|p| p.pending.is_empty()) {
            self.watching = false;
            let (entry, exit, set) = self.prog.syscalls();
            let mut ev = task.events();
            if !exit {
                ev.remove(EventMask::SYSCALL_EXIT);
            }
            if !entry {
                ev.remove(EventMask::SYSCALL_ENTRY);
            }
            task.set_events(ev);
            task.set_syscalls(set);
        }
    }

    fn comm(&mut self, pid: Tid, tid: Tid) -> Value {
        match self.comms.get(&tid) {
            Some((v, at)) if at.elapsed() < COMM_FRESH => v.clone(),
            _ => self
                .note_comm(pid, tid)
                .or_else(|| self.comms.get(&tid).map(|c| c.0.clone()))
                // A thread gone before it was ever named: its process's.
                .or_else(|| self.comms.get(&pid).map(|c| c.0.clone()))
                .unwrap_or_else(|| Value::Str(Arc::from(&b""[..]))),
        }
    }

    /// Read thread `tid`'s name now, and remember it.
    fn note_comm(&mut self, pid: Tid, tid: Tid) -> Option<Value> {
        let s = std::fs::read(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
        let v = Value::Str(s.strip_suffix(b"\n").unwrap_or(&s).into());
        if self.comms.len() >= MAX_COMMS {
            self.comms.clear();
        }
        self.comms.insert(tid, (v.clone(), Instant::now()));
        Some(v)
    }

    /// Name every thread of process `pid` now (it is stopped for us).
    fn note_comms(&mut self, pid: Tid) {
        let tids: Vec<Tid> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for tid in tids {
            self.note_comm(pid, tid);
        }
    }

    /// Run clause `ci` for a hit of its point `pi`.
    /// `n` is 1 but for hits a counting uprobe counted (a clause that
    /// [`Clause::counts_only`]: no predicate, no event, only counts).
    fn run(&mut self, ci: u32, pi: u32, hit: &mut Hit<'_, '_>, n: u64) {
        let prog = Arc::clone(&self.prog);
        let Some(clause) = prog.clauses.get(ci as usize) else {
            return;
        };
        hit.probe = match (hit.syscall, clause.points.get(pi as usize)) {
            // A class's point names the syscall that hit it.
            (Some((nr, exit)), Some(Point::Syscall { class: Some(_), .. })) => Some(Value::Str(
                Point::Syscall {
                    nr: Some(nr),
                    exit,
                    class: None,
                }
                .describe()
                .into_bytes()
                .into(),
            )),
            _ => self
                .point_names
                .get(ci as usize)
                .and_then(|v| v.get(pi as usize))
                .cloned(),
        };
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        st.counters.hits += n;
        if let Some(p) = &clause.predicate {
            if !self.eval(p, hit).truthy() {
                st.counters.read_errors += std::mem::take(&mut hit.read_errors);
                return;
            }
        }
        let mut key = Vec::new();
        for u in &clause.updates {
            key.clear();
            for k in &u.keys {
                key.push(self.eval(k, hit));
            }
            let v = u.value.as_ref().map_or(0, |e| self.eval(e, hit).int());
            let st = &mut *st;
            if let Some(m) = st.maps.get_mut(u.map) {
                if n == 1 {
                    m.update(&key, v, prog.limits.max_keys, &mut st.key_bytes);
                } else {
                    m.add_hits(&key, n, prog.limits.max_keys, &mut st.key_bytes);
                }
            }
        }
        if let Some(exprs) = &clause.event {
            let values: Vec<Value> = exprs.iter().map(|e| self.eval(e, hit)).collect();
            let now = Instant::now();
            let rate = f64::from(prog.limits.events_per_second);
            self.tokens =
                (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
            self.refilled = now;
            if self.tokens >= 1.0 && st.events.len() < prog.limits.event_queue {
                self.tokens -= 1.0;
                st.events.push_back(ProbeEvent {
                    clause: ci,
                    pid: hit.pid,
                    tid: hit.tid,
                    nsecs: hit.nsecs,
                    values,
                    dropped_before: std::mem::take(&mut self.dropped),
                });
                drop(st);
                shared.notify.notify_one();
                st = shared.lock();
            } else {
                self.dropped += 1;
                st.counters.events_dropped += 1;
            }
        }
        st.counters.read_errors += std::mem::take(&mut hit.read_errors);
    }

    fn eval(&mut self, e: &Expr, hit: &mut Hit<'_, '_>) -> Value {
        match e {
            Expr::Int(i) => Value::Int(*i),
            Expr::Str(s) => Value::Str(s.as_bytes().into()),
            Expr::Builtin(b) => match b {
                Builtin::Pid => Value::Int(i64::from(hit.pid)),
                Builtin::Tid => Value::Int(i64::from(hit.tid)),
                Builtin::Comm => self.comm(hit.pid, hit.tid),
                Builtin::Nsecs => Value::Int(hit.nsecs as i64),
                Builtin::Retval => Value::Int(hit.retval),
                Builtin::Probe => hit.probe.clone().unwrap_or(Value::Int(0)),
            },
            Expr::Arg(i) => Value::Int(hit.arg(*i as usize) as i64),
            Expr::Reg(i) => Value::Int(hit.reg(*i) as i64),
            Expr::Un(op, x) => {
                let v = self.eval(x, hit);
                Value::Int(match op {
                    UnOp::Neg => v.int().wrapping_neg(),
                    UnOp::Not => i64::from(!v.truthy()),
                    UnOp::BitNot => !v.int(),
                })
            }
            Expr::Bin(BinOp::And, a, b) => Value::Int(i64::from(
                self.eval(a, hit).truthy() && self.eval(b, hit).truthy(),
            )),
            Expr::Bin(BinOp::Or, a, b) => Value::Int(i64::from(
                self.eval(a, hit).truthy() || self.eval(b, hit).truthy(),
            )),
            Expr::Bin(op, a, b) => {
                let (a, b) = (self.eval(a, hit), self.eval(b, hit));
                match op {
                    BinOp::Eq => return Value::Int(i64::from(a == b)),
                    BinOp::Ne => return Value::Int(i64::from(a != b)),
                    _ => {}
                }
                let (x, y) = (a.int(), b.int());
                Value::Int(match op {
                    BinOp::Add => x.wrapping_add(y),
                    BinOp::Sub => x.wrapping_sub(y),
                    BinOp::Mul => x.wrapping_mul(y),
                    BinOp::Div => x.checked_div(y).unwrap_or(0),
                    BinOp::Mod => x.checked_rem(y).unwrap_or(0),
                    BinOp::BitAnd => x & y,
                    BinOp::BitOr => x | y,
                    BinOp::BitXor => x ^ y,
                    BinOp::Shl => x.wrapping_shl(y as u32),
                    BinOp::Shr => ((x as u64).wrapping_shr(y as u32)) as i64,
                    BinOp::Lt => i64::from(x < y),
                    BinOp::Le => i64::from(x <= y),
                    BinOp::Gt => i64::from(x > y),
                    BinOp::Ge => i64::from(x >= y),
                    BinOp::Eq | BinOp::Ne | BinOp::And | BinOp::Or => 0,
                })
            }
            Expr::Buf(addr, len) => {
                let n = (*len).min(self.prog.limits.string_len) as usize;
                if let Some(v) = hit.fetched(e) {
                    return match v {
                        Some(b) => Value::Buf(b[..b.len().min(n)].into()),
                        None => {
                            hit.read_errors += 1;
                            Value::Buf(Arc::from(&b""[..]))
                        }
                    };
                }
                let addr = self.eval(addr, hit).int() as u64;
                match read_bytes(hit.pid, addr, n) {
                    Some(b) => Value::Buf(b.into()),
                    None => {
                        hit.read_errors += 1;
                        Value::Buf(Arc::from(&b""[..]))
                    }
                }
            }
            Expr::Ustack(depth) => {
                let addrs = hit.stack(*depth as usize);
                Value::Stack(self.stack(hit.pid, &addrs))
            }
            Expr::StrAt(addr, len) => {
                let max = (*len).min(self.prog.limits.string_len) as usize;
                if let Some(v) = hit.fetched(e) {
                    return match v {
                        Some(b) => Value::Str(b[..b.len().min(max)].into()),
                        None => {
                            hit.read_errors += 1;
                            Value::Str(Arc::from(&b""[..]))
                        }
                    };
                }
                let addr = self.eval(addr, hit).int() as u64;
                match read_c_string(hit.pid, addr, max) {
                    Some(s) => Value::Str(s.into()),
                    None => {
                        hit.read_errors += 1;
                        Value::Str(Arc::from(&b""[..]))
                    }
                }
            }
        }
    }

    /// The stack of these addresses, symbolized when first seen.
    fn stack(&mut self, pid: Tid, addrs: &[u64]) -> Arc<Stack> {
        let p = self.procs.entry(pid).or_default();
        if let Some(s) = p.stacks.get(addrs) {
            return Arc::clone(s);
        }
        let sym = p
            .symbolizer
            .get_or_insert_with(|| resolve::Symbolizer::new(pid));
        let frames = addrs.iter().map(|a| sym.frame(*a)).collect();
        let s = Arc::new(Stack {
            addrs: addrs.into(),
            frames,
        });
        if p.stacks.len() >= MAX_STACKS {
            p.stacks.clear();
        }
        p.stacks.insert(s.addrs.clone(), Arc::clone(&s));
        s
    }

    /// Points of process event `want` (a signal's number matched).
    fn clauses_at_event(&self, want: ProcessEvent) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (ci, c) in self.prog.clauses.iter().enumerate() {
            for (pi, p) in c.points.iter().enumerate() {
                let Point::Process(e) = p else { continue };
                let hit = match (e, want) {
                    (ProcessEvent::Signal(only), ProcessEvent::Signal(Some(sig))) => {
                        only.is_none_or(|o| o == sig)
                    }
                    (a, b) => *a == b,
                };
                if hit {
                    out.push((ci as u32, pi as u32));
                }
            }
        }
        out
    }

    /// Run the clauses of process event `e` with `arg0`, at a stop of
    /// `task` (or, `None`, for a thread that is gone).
    fn process_event(
        &mut self,
        task: Option<&mut Task<'_>>,
        pid: Tid,
        tid: Tid,
        e: ProcessEvent,
        arg0: i64,
    ) {
        let points = self.clauses_at_event(e);
        if points.is_empty() {
            return;
        }
        let regs = match task {
            Some(t) => Regs::Task(t),
            None => Regs::None,
        };
        let mut h = Hit::now(pid, tid, regs);
        h.args[0] = arg0 as u64;
        for (ci, pi) in points {
            self.run(ci, pi, &mut h, 1);
        }
    }

    fn clauses_at_syscall(&self, nr: u64, exit: bool) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (ci, c) in self.prog.clauses.iter().enumerate() {
            for (pi, p) in c.points.iter().enumerate() {
                if let Point::Syscall {
                    nr: n,
                    exit: x,
                    class,
                } = p
                {
                    let hit = match (n, class) {
                        (Some(n), _) => *n == nr,
                        (None, Some(c)) => c.1.contains(nr),
                        (None, None) => true,
                    };
                    if *x == exit && hit {
                        out.push((ci as u32, pi as u32));
                    }
                }
            }
        }
        out
    }

    /// The arguments at a hit of point `pi` of clause `ci`: a USDT
    /// marker's, else the function's (System V registers).
    fn point_args(&self, ci: u32, pi: u32, addr: u64, h: &mut Hit<'_, '_>) {
        h.usdt = None;
        let Some(spec) = self
            .procs
            .get(&h.pid)
            .and_then(|p| p.usdt_args.get(&(ci, pi, addr)))
        else {
            h.function_args();
            return;
        };
        h.args = [0; 6];
        let spec = Arc::clone(spec);
        for (i, a) in spec.iter().take(6).enumerate() {
            h.args[i] = match *a {
                resolve::UsdtArg::Const(c) => c as u64,
                resolve::UsdtArg::Reg { reg, size } => sized(h.reg(reg), size),
                resolve::UsdtArg::Mem { reg, off, size } => {
                    let at = h.reg(reg).wrapping_add(off as u64);
                    let n = usize::from(size.unsigned_abs()).clamp(1, 8);
                    // Taken by the kernel at the hit if it could; else
                    // read now.
                    let got = match fetch::usdt_mem(a).and_then(|f| h.sample_fetched(&f)) {
                        Some(v) => v.map(<[u8]>::to_vec),
                        None => read_bytes(h.pid, at, n),
                    };
                    match got.filter(|b| b.len() >= n) {
                        Some(b) => {
                            let mut w = [0u8; 8];
                            w[..n].copy_from_slice(&b[..n]);
                            sized(u64::from_le_bytes(w), size)
                        }
                        None => {
                            h.read_errors += 1;
                            0
                        }
                    }
                }
            };
        }
        h.usdt = Some(spec);
    }

    /// Count `ns` of the program's time against the probe's budget.
    fn charge(&self, ns: u64) {
        self.shared
            .cost_ns
            .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
    }

    fn syscall(&mut self, task: &mut Task<'_>, call: &SyscallEntry, ret: Option<i64>) {
        let points = self.clauses_at_syscall(call.nr, ret.is_some());
        if points.is_empty() {
            return;
        }
        self.charge(cost::SYSCALL);
        let (pid, tid) = (task.pid(), task.tid());
        let mut hit = Hit::now(pid, tid, Regs::Task(task));
        hit.args = call.args;
        hit.retval = ret.unwrap_or(0);
        hit.syscall = Some((call.nr, ret.is_some()));
        for (ci, pi) in points {
            self.run(ci, pi, &mut hit, 1);
        }
    }
}

/// An exit's code as a shell says it: the code, or 128 + the signal.
fn exit_code(e: &ExitReport) -> i64 {
    match e.status {
        crate::ExitStatus::Exited(c) => i64::from(c),
        crate::ExitStatus::Signaled { signo, .. } => 128 + i64::from(signo),
    }
}

/// A USDT argument of `size` bytes (negative: signed) from a 64-bit word.
fn sized(v: u64, size: i8) -> u64 {
    match size {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        -1 => v as u8 as i8 as i64 as u64,
        -2 => v as u16 as i16 as i64 as u64,
        -4 => v as u32 as i32 as i64 as u64,
        _ => v,
    }
}

/// Exactly `n` bytes of `pid`'s memory at `addr`.
fn read_bytes(pid: Tid, addr: u64, n: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let iov = [libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: n,
    }];
    let got = crate::sys::process_vm_readv_append(pid, &mut out, n, &iov).ok()?;
    (got == n).then_some(out)
}

/// C-string read of at most `max` bytes of `pid`'s memory, a page at a
/// time (a string ending before an unmapped page is read whole). `None`
/// if nothing could be read.
fn read_c_string(pid: Tid, addr: u64, max: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(max.min(4096));
    let mut at = addr;
    while out.len() < max {
        let want = (4096 - (at % 4096) as usize).min(max - out.len());
        let iov = [libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: want,
        }];
        let start = out.len();
        let got = crate::sys::process_vm_readv_append(pid, &mut out, want, &iov).ok()?;
        if let Some(nul) = out[start..].iter().position(|b| *b == 0) {
            out.truncate(start + nul);
            return Some(out);
        }
        if got < want {
            return (!out.is_empty()).then_some(out);
        }
        at += want as u64;
    }
    Some(out)
}

/// Where a hit's registers come from.
enum Regs<'h, 't> {
    /// Nowhere: counted hits.
    None,
    /// A uprobe sample.
    Sample(&'h BreakpointHit),
    /// A stopped task.
    Task(&'h mut Task<'t>),
}

/// What a clause sees of one hit.
struct Hit<'h, 't> {
    pid: Tid,
    tid: Tid,
    nsecs: u64,
    args: [u64; 6],
    retval: i64,
    regs: Regs<'h, 't>,
    probe: Option<Value>,
    read_errors: u64,
    /// At a breakpoint (so perhaps at a function's first instruction,
    /// where the frame pointer is still the caller's).
    at_breakpoint: bool,
    /// At a return probe.
    ret: bool,
    /// At a syscall stop: the syscall and whether at its exit (a class's
    /// point names it in `probe`).
    syscall: Option<(u64, bool)>,
    /// The USDT marker's argument places, at a marker's hit.
    usdt: Option<Arc<[resolve::UsdtArg]>>,
}

/// The System V argument registers.
const ARG_REGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];

/// [`ARG_REGS`] as indices in [`BreakpointHit::REGISTERS`], found once
/// (not by name at every hit).
fn arg_registers() -> &'static [usize; 6] {
    static INDEX: std::sync::OnceLock<[usize; 6]> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        ARG_REGS.map(|name| {
            BreakpointHit::REGISTERS
                .iter()
                .position(|n| *n == name)
                .unwrap_or(usize::MAX)
        })
    })
}

impl<'h, 't> Hit<'h, 't> {
    /// A hit of thread `tid` of `pid` taken now (at a stop), with no
    /// arguments or return value yet.
    fn now(pid: Tid, tid: Tid, regs: Regs<'h, 't>) -> Self {
        Hit {
            pid,
            tid,
            nsecs: crate::sys::clock_ns(libc::CLOCK_MONOTONIC) as u64,
            args: [0; 6],
            retval: 0,
            regs,
            probe: None,
            read_errors: 0,
            at_breakpoint: false,
            ret: false,
            syscall: None,
            usdt: None,
        }
    }

    /// What the kernel fetched at this hit for `e` (a `str()` or `buf()`):
    /// `None` if it fetched nothing for it (read the memory now).
    fn fetched(&self, e: &Expr) -> Option<Option<&'h [u8]>> {
        if !matches!(self.regs, Regs::Sample(_)) {
            return None;
        }
        let at = fetch::At {
            usdt: self.usdt.as_deref(),
            ret: self.ret,
        };
        self.sample_fetched(&fetch::of(e, at)?)
    }

    /// What the kernel fetched at this hit for fetch argument `arg`.
    fn sample_fetched(&self, arg: &str) -> Option<Option<&'h [u8]>> {
        let Regs::Sample(h) = &self.regs else {
            return None;
        };
        let h: &'h BreakpointHit = h;
        h.fetched(arg)
    }

    fn arg(&mut self, i: usize) -> u64 {
        self.args.get(i).copied().unwrap_or(0)
    }

    fn reg(&mut self, i: usize) -> u64 {
        match &mut self.regs {
            Regs::None => 0,
            Regs::Sample(h) => h.register_at(i).unwrap_or(0),
            Regs::Task(t) => BreakpointHit::REGISTERS
                .get(i)
                .and_then(|n| t.register(n).ok())
                .unwrap_or(0),
        }
    }

    /// The user stack, at most `depth` frames: the kernel's walk for a
    /// uprobe hit; for a stopped thread, the same walk here (x86's
    /// `perf_callchain_user`): the pc, the return address on top of the
    /// stack at a breakpoint on a function's first instruction (`push
    /// %rbp` or `endbr64`, where `rbp` is still the caller's), then the
    /// return address of each frame the `rbp` chain links, until a read
    /// fails.
    fn stack(&mut self, depth: usize) -> std::borrow::Cow<'h, [u64]> {
        use std::borrow::Cow;
        let depth = depth.clamp(1, crate::perf::MAX_STACK);
        let pid = self.pid;
        let at_breakpoint = self.at_breakpoint;
        match &mut self.regs {
            Regs::None => Cow::Borrowed(&[]),
            Regs::Sample(h) => {
                let h: &'h BreakpointHit = h;
                let s = h.stack();
                if s.is_empty() {
                    Cow::Owned(h.register("rip").into_iter().collect())
                } else {
                    // The sample's own frames: no copy for a stack seen before.
                    Cow::Borrowed(&s[..s.len().min(depth)])
                }
            }
            Regs::Task(t) => {
                let reg = |t: &mut Task<'_>, n: &str| t.register(n).unwrap_or(0);
                let (ip, sp, mut fp) = (reg(t, "rip"), reg(t, "rsp"), reg(t, "rbp"));
                let mut out = vec![ip];
                if at_breakpoint && out.len() < depth {
                    let code = t.read_memory(ip, 4);
                    let code: &[u8] = code.data.as_ref();
                    let entry = code.first() == Some(&0x55) || code == [0xf3, 0x0f, 0x1e, 0xfa];
                    if entry {
                        if let Some(b) = read_bytes(pid, sp, 8) {
                            out.push(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                        }
                    }
                }
                while out.len() < depth {
                    let Some(b) = read_bytes(pid, fp, 16) else {
                        break;
                    };
                    let word =
                        |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
                    out.push(word(8));
                    fp = word(0);
                }
                Cow::Owned(out)
            }
        }
    }

    /// A function hit: arguments from the registers.
    fn function_args(&mut self) {
        for (i, r) in arg_registers().iter().enumerate() {
            self.args[i] = self.reg(*r);
        }
    }
}

impl Engine for ProbeEngine {
    fn report_quiesce(&mut self, task: &mut Task<'_>) -> Action {
        if self.placed_once {
            return Action::Resume;
        }
        let todo = self.function_points();
        self.place(task, todo)
    }

    fn report_signal(
        &mut self,
        task: &mut Task<'_>,
        signal: &crate::SignalReport,
    ) -> crate::SignalAction {
        let (pid, tid) = (task.pid(), task.tid());
        self.process_event(
            Some(task),
            pid,
            tid,
            ProcessEvent::Signal(Some(signal.signo)),
            i64::from(signal.signo),
        );
        crate::SignalAction::default()
    }

    fn report_clone(&mut self, task: &mut Task<'_>, clone: &crate::CloneReport) -> Action {
        let (pid, tid) = (task.pid(), task.tid());
        // Named now, while it is sure to be there (else as its parent).
        if self.wants_comm && self.note_comm(clone.child_pid, clone.child_tid).is_none() {
            if let Some(v) = self.comms.get(&tid).cloned() {
                self.comms.insert(clone.child_tid, v);
            }
        }
        if self.follow && clone.kind != crate::CloneKind::Thread {
            // Probed from its first stop (report_child_start); alive now.
            self.live.insert(clone.child_pid);
        }
        self.process_event(
            Some(task),
            pid,
            tid,
            ProcessEvent::ThreadStart,
            i64::from(clone.child_tid),
        );
        Action::Resume
    }

    fn report_exit(&mut self, task: &mut Task<'_>, exit: &ExitReport) -> Action {
        let (pid, tid) = (task.pid(), task.tid());
        self.process_event(
            Some(task),
            pid,
            tid,
            ProcessEvent::ThreadExit,
            exit_code(exit),
        );
        Action::Resume
    }

    fn report_exec(&mut self, task: &mut Task<'_>, _exec: &ExecReport) -> Action {
        // A new image: the old sites went with it.
        self.procs.insert(task.pid(), Proc::default());
        // Its threads are named after the new program (place() reads them).
        self.allow_pending = true;
        if !self.watching && !self.function_points().is_empty() {
            self.watching = true;
            let mut ev = task.events();
            ev |= EventMask::SYSCALL_EXIT;
            task.set_events(ev);
            let mut set: SyscallSet = task.syscalls().clone();
            set.insert(libc::SYS_mmap as u64);
            task.set_syscalls(set);
        }
        let (pid, tid) = (task.pid(), task.tid());
        self.process_event(Some(task), pid, tid, ProcessEvent::Exec, 0);
        let todo = self.function_points();
        self.place(task, todo)
    }

    fn report_syscall_entry(&mut self, task: &mut Task<'_>, call: &SyscallEntry) -> Action {
        self.syscall(task, call, None);
        Action::Resume
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        if self.watching
            && call.entry.nr == libc::SYS_mmap as u64
            && !call.is_error
            && call.entry.args[2] & libc::PROT_EXEC as u64 != 0
        {
            let todo = self
                .procs
                .get_mut(&task.pid())
                .map(|p| std::mem::take(&mut p.pending))
                .unwrap_or_default();
            if !todo.is_empty() {
                self.place(task, todo);
            }
        }
        self.syscall(task, &call.entry, Some(call.ret));
        Action::Resume
    }

    fn report_breakpoint_hit(&mut self, hit: &BreakpointHit) {
        let Some(p) = self.procs.get(&hit.pid) else {
            return;
        };
        let sites = if hit.returned { &p.ret_sites } else { &p.sites };
        let Some(points) = sites.get(&hit.addr).cloned() else {
            debug!(addr = hit.addr, "a hit at no site of this probe");
            return;
        };
        self.charge(cost::SAMPLED);
        let mut h = Hit {
            pid: hit.pid,
            tid: hit.tid,
            nsecs: (hit.time_ns as i64 - self.realtime_offset).max(0) as u64,
            args: [0; 6],
            // At a return, the function's return value.
            retval: if hit.returned {
                hit.register("rax").unwrap_or(0) as i64
            } else {
                0
            },
            regs: Regs::Sample(hit),
            probe: None,
            read_errors: 0,
            at_breakpoint: true,
            ret: hit.returned,
            syscall: None,
            usdt: None,
        };
        for &(ci, pi) in points.iter() {
            if !hit.returned {
                self.point_args(ci, pi, hit.addr, &mut h);
            }
            self.run(ci, pi, &mut h, 1);
        }
    }

    fn report_breakpoint(&mut self, task: &mut Task<'_>, addr: u64) -> Action {
        // An int3 serves the site (another engine stops there).
        let Some(points) = self
            .procs
            .get(&task.pid())
            .and_then(|p| p.sites.get(&addr))
            .cloned()
        else {
            debug!(addr, "an int3 hit at no site of this probe");
            return Action::Resume;
        };
        self.charge(cost::INT3);
        let (pid, tid) = (task.pid(), task.tid());
        let mut h = Hit::now(pid, tid, Regs::Task(task));
        h.at_breakpoint = true;
        for &(ci, pi) in points.iter() {
            self.point_args(ci, pi, addr, &mut h);
            self.run(ci, pi, &mut h, 1);
        }
        Action::Resume
    }

    fn report_breakpoint_count(&mut self, pid: Tid, tid: Tid, addr: u64, hits: u64) {
        let Some(points) = self
            .procs
            .get(&pid)
            .and_then(|p| p.sites.get(&addr))
            .cloned()
        else {
            debug!(addr, "counted hits at no site of this probe");
            return;
        };
        self.charge(cost::COUNTED.saturating_mul(hits));
        let mut h = Hit::now(pid, tid, Regs::None);
        for &(ci, pi) in points.iter() {
            self.run(ci, pi, &mut h, hits);
        }
    }

    fn report_breakpoint_hits_lost(&mut self, _pid: Tid, _addr: u64, lost: u64) {
        // The program paid for them all the same.
        self.charge(cost::SAMPLED.saturating_mul(lost));
        self.shared.lock().counters.hits_lost += lost;
    }

    fn report_child_start(&mut self, task: &mut Task<'_>) -> Action {
        // A copy of its parent: the same points, placed in it.
        self.procs.remove(&task.pid());
        let todo = self.function_points();
        self.place(task, todo)
    }

    fn report_death(&mut self, death: &ExitReport) {
        if !death.process_gone || !self.live.contains(&death.pid) {
            return;
        }
        self.process_event(
            None,
            death.pid,
            death.tid,
            ProcessEvent::Exit,
            exit_code(death),
        );
        self.live.remove(&death.pid);
        self.procs.remove(&death.pid);
        if self.live.is_empty() {
            self.shared.end(if self.follow {
                "every process of the tree exited"
            } else {
                "the process exited"
            });
        }
    }

    fn report_revoked(&mut self, pid: Tid, why: &crate::Denied) {
        if !self.live.remove(&pid) {
            return;
        }
        self.procs.remove(&pid);
        if self.live.is_empty() {
            self.shared.end(&format!(
                "the process exec'd a program you may not trace: {why}"
            ));
        } else {
            warn!(pid, %why, "a process of the probed tree left it");
        }
    }

    fn report_detached(&mut self) {
        self.shared.end("detached");
    }
}
