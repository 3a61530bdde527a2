//! What a probe does, as the engine runs it: points, predicates, map
//! updates and events, already checked (the server builds a [`Program`]
//! from a `ProbeRequest`; nothing here parses text).

use std::sync::Arc;

/// Where a clause fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Point {
    /// A code location in a file the process maps: `binary` as the
    /// process names it (a path, a library's short name such as `libc`,
    /// or empty for the main executable), then a symbol and bytes past it
    /// (or a file offset without a symbol).
    Function {
        binary: String,
        symbol: Option<String>,
        offset: u64,
        /// Probe exactly there (no stepping over a leading `endbr64`).
        exact: bool,
        /// A return probe of the function starting there (bpftrace's
        /// uretprobe): hits at its return, `retval` its return value.
        ret: bool,
    },
    /// An absolute address in an executable mapping of the process.
    Address(u64),
    /// A USDT (SystemTap SDT) marker of a file the process maps: `arg0`…
    /// are the marker's arguments.
    Usdt {
        binary: String,
        /// Empty: any provider.
        provider: String,
        name: String,
    },
    /// A syscall's entry or exit (`nr` `None`: every syscall, or those
    /// of `class`).
    Syscall {
        nr: Option<u64>,
        exit: bool,
        /// A class of syscalls (strace's `%file`...): its name and its
        /// syscalls.
        class: Option<Arc<(String, crate::SyscallSet)>>,
    },
    /// An event of the process's life.
    Process(ProcessEvent),
}

/// Events of a process's life (see [`Point::Process`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    /// A signal about to be delivered (`Some`: only this one).
    Signal(Option<i32>),
    ThreadStart,
    ThreadExit,
    Exec,
    Exit,
}

impl Point {
    /// The point as bpftrace's `probe` builtin names it (a function's file
    /// as written; [`Point::describe_in`] once it is found).
    pub fn describe(&self) -> String {
        self.describe_in(None)
    }

    /// [`Point::describe`], with the file the point was found in.
    pub fn describe_in(&self, file: Option<&str>) -> String {
        match self {
            Point::Function {
                binary,
                symbol,
                offset,
                ret,
                ..
            } => {
                let kind = if *ret { "uretprobe" } else { "uprobe" };
                let binary = file.unwrap_or(binary);
                match (symbol, *offset) {
                    (Some(s), 0) => format!("{kind}:{binary}:{s}"),
                    (Some(s), o) => format!("{kind}:{binary}:{s}+{o}"),
                    (None, o) => format!("{kind}:{binary}:{o:#x}"),
                }
            }
            Point::Address(a) => format!("uprobe:{a:#x}"),
            Point::Usdt {
                binary,
                provider,
                name,
            } => {
                let binary = file.unwrap_or(binary);
                if provider.is_empty() {
                    format!("usdt:{binary}:{name}")
                } else {
                    format!("usdt:{binary}:{provider}:{name}")
                }
            }
            Point::Process(e) => match e {
                ProcessEvent::Signal(_) => "tracepoint:signal:signal_deliver".into(),
                ProcessEvent::ThreadStart => "tracepoint:sched:sched_process_fork".into(),
                ProcessEvent::ThreadExit => "tracepoint:sched:sched_process_exit".into(),
                ProcessEvent::Exec => "tracepoint:sched:sched_process_exec".into(),
                ProcessEvent::Exit => "process:exit".into(),
            },
            Point::Syscall { nr, exit, class } => {
                let dir = if *exit { "exit" } else { "enter" };
                match (nr, class) {
                    (Some(n), _) => format!(
                        "tracepoint:syscalls:sys_{dir}_{}",
                        crate::syscall_name(*n).map_or_else(|| n.to_string(), str::to_string)
                    ),
                    (None, Some(c)) => {
                        format!("syscall:{}:{}", c.0, if *exit { "exit" } else { "entry" })
                    }
                    (None, None) => format!("tracepoint:raw_syscalls:sys_{dir}"),
                }
            }
        }
    }
}

/// Values known at every hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Pid,
    Tid,
    Comm,
    Nsecs,
    Retval,
    Probe,
}

/// Binary operators (C's, with `&&`/`||` short-circuiting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    BitNot,
}

/// An expression over a hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Int(i64),
    Str(Arc<str>),
    Builtin(Builtin),
    /// Argument 0 to 5.
    Arg(u8),
    /// A register, by its index in [`crate::BreakpointHit::REGISTERS`].
    Reg(usize),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Un(UnOp, Box<Expr>),
    /// The C string at an address, at most this many bytes.
    StrAt(Box<Expr>, u32),
    /// This many bytes at an address.
    Buf(Box<Expr>, u32),
    /// The user stack, at most this many frames (1 to
    /// [`crate::perf::MAX_STACK`]).
    Ustack(u32),
}

/// What a map keeps per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Stats,
    Hist,
    Lhist { min: i64, max: i64, step: i64 },
}

impl Agg {
    /// Needs a value to aggregate.
    pub fn takes_value(self) -> bool {
        self != Agg::Count
    }
}

/// A map: its name and aggregation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub agg: Agg,
}

/// `@map[keys] = agg(value)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// Index in [`Program::maps`].
    pub map: usize,
    pub keys: Vec<Expr>,
    /// `None` for a count.
    pub value: Option<Expr>,
}

/// Points and what happens at their hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    pub points: Vec<Point>,
    pub predicate: Option<Expr>,
    pub updates: Vec<Update>,
    /// An event with these values at each hit (bpftrace's `printf`).
    pub event: Option<Vec<Expr>>,
}

impl Expr {
    /// Known without the hit's registers or memory (the thread and
    /// process are enough).
    fn needs_no_sample(&self) -> bool {
        match self {
            Expr::Int(_) | Expr::Str(_) => true,
            Expr::Builtin(b) => matches!(
                b,
                Builtin::Pid | Builtin::Tid | Builtin::Comm | Builtin::Probe
            ),
            Expr::Bin(_, a, b) => a.needs_no_sample() && b.needs_no_sample(),
            Expr::Un(_, a) => a.needs_no_sample(),
            Expr::Arg(_) | Expr::Reg(_) | Expr::StrAt(..) | Expr::Buf(..) | Expr::Ustack(_) => {
                false
            }
        }
    }

    /// It takes the user stack somewhere.
    /// It, or an expression in it, is one `f` says yes to.
    fn contains(&self, f: &impl Fn(&Expr) -> bool) -> bool {
        f(self)
            || match self {
                Expr::Bin(_, a, b) => a.contains(f) || b.contains(f),
                Expr::Un(_, a) | Expr::StrAt(a, _) | Expr::Buf(a, _) => a.contains(f),
                Expr::Int(_)
                | Expr::Str(_)
                | Expr::Builtin(_)
                | Expr::Arg(_)
                | Expr::Reg(_)
                | Expr::Ustack(_) => false,
            }
    }
}

impl Clause {
    /// Every expression it evaluates at a hit: the predicate, the event's
    /// values, the updates' keys and values.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.predicate
            .iter()
            .chain(self.event.iter().flatten())
            .chain(
                self.updates
                    .iter()
                    .flat_map(|u| u.keys.iter().chain(&u.value)),
            )
    }

    /// Its hits need only counting: no predicate, no event, only
    /// `count()` updates keyed by what the thread and process give. A
    /// uprobe then needs no sample per hit.
    pub fn counts_only(&self, maps: &[MapDef]) -> bool {
        self.predicate.is_none()
            && self.event.is_none()
            && self.updates.iter().all(|u| {
                maps.get(u.map).is_some_and(|m| m.agg == Agg::Count)
                    && u.keys.iter().all(Expr::needs_no_sample)
            })
    }
}

/// Bounds of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Keys per map.
    pub max_keys: usize,
    /// Bytes of a `str()` capture.
    pub string_len: u32,
    /// Events a second.
    pub events_per_second: u32,
    /// Events waiting for the client.
    pub event_queue: usize,
    /// Percent of one CPU the probe may take from the program (see
    /// [`super::Shared::cost_ns`]).
    pub cpu_percent: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_keys: 4096,
            string_len: 64,
            events_per_second: 10_000,
            event_queue: 4096,
            cpu_percent: 50,
        }
    }
}

/// A whole probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub clauses: Vec<Clause>,
    pub maps: Vec<MapDef>,
    pub limits: Limits,
}

impl Program {
    /// Some clause takes user stacks (`ustack`): its uprobe hits must
    /// carry them ([`crate::EngineOptions::hit_stacks`]).
    pub fn uses_stacks(&self) -> bool {
        self.uses(|e| matches!(e, Expr::Ustack(_)))
    }

    /// Some clause takes a thread's name (`comm`).
    pub fn uses_comm(&self) -> bool {
        self.uses(|e| matches!(e, Expr::Builtin(Builtin::Comm)))
    }

    /// Some expression of some clause is one `f` says yes to.
    fn uses(&self, f: impl Fn(&Expr) -> bool) -> bool {
        self.clauses
            .iter()
            .flat_map(Clause::exprs)
            .any(|e| e.contains(&f))
    }

    /// The process events its points want.
    pub fn process_events(&self) -> Vec<ProcessEvent> {
        self.clauses
            .iter()
            .flat_map(|c| &c.points)
            .filter_map(|p| match p {
                Point::Process(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    /// Which event kinds and syscalls the probe needs.
    pub fn syscalls(&self) -> (bool, bool, crate::SyscallSet) {
        let mut entry = false;
        let mut exit = false;
        let mut all = false;
        let mut nrs = Vec::new();
        for p in self.clauses.iter().flat_map(|c| &c.points) {
            if let Point::Syscall { nr, exit: x, class } = p {
                if *x {
                    exit = true;
                } else {
                    entry = true;
                }
                match (nr, class) {
                    (Some(n), _) => nrs.push(*n),
                    (None, Some(c)) => {
                        nrs.extend((0..crate::MAX_SYSCALL as u64).filter(|n| c.1.contains(*n)))
                    }
                    (None, None) => all = true,
                }
            }
        }
        let set = if all {
            crate::SyscallSet::all()
        } else {
            let mut s = crate::SyscallSet::empty();
            for n in nrs {
                s.insert(n);
            }
            s
        };
        (entry, exit, set)
    }
}
