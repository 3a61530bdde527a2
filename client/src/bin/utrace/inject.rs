//! `-e inject=SET:ACTION…[:when=EXPR]` and `-e fault=SET[:error=E][:when=…]`:
//! strace's syscall tampering, on a sync engine. The engine holds the
//! task at each entry (and, for `delay_exit=`, each exit) of a syscall in
//! SET; this side counts the calls (per thread and syscall, as strace
//! counts per tracee) and decides: skip the call with an error or a
//! value, send a signal, delay the task, or let it run.
//!
//! Actions, as strace's: `error=ERRNO` or `retval=VALUE` (one of them),
//! `signal=SIG`, `delay_enter=DELAY`, `delay_exit=DELAY` (microseconds, or
//! with a unit: `1s`, `500ms`, `20us`, `100ns`); `when=FIRST[..LAST][+[STEP]]`.
//! `poke_enter=`, `poke_exit=` and `syscall=` are refused by name.

use std::collections::HashMap;
use std::time::Duration;

use utrace_client::{pb, Decision};

/// One `inject=` (or `fault=`) expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Syscall numbers it applies to.
    pub syscalls: Vec<u64>,
    /// Their names (for the engine).
    pub names: Vec<String>,
    /// What the call returns instead of running: `-errno` or the value.
    pub ret: Option<i64>,
    /// A signal sent to the thread at the call's entry.
    pub signal: Option<i32>,
    /// How long the thread waits at the call's entry, and at its exit.
    pub delay_enter: Option<Duration>,
    pub delay_exit: Option<Duration>,
    /// Injected into the `first`-th call (from 1)…
    pub first: u64,
    /// …up to the `last`-th (inclusive; None: no end)…
    pub last: Option<u64>,
    /// …every `step`-th from the first (0: only the first-th).
    pub step: u64,
}

impl Rule {
    fn applies(&self, n: u64) -> bool {
        if n < self.first || self.last.is_some_and(|l| n > l) {
            return false;
        }
        n == self.first || (self.step > 0 && (n - self.first) % self.step == 0)
    }
}

/// An errno by name (`ENOENT`) or number (`2`).
fn errno(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        if (1..4096).contains(&n) {
            return Ok(n);
        }
        return Err(format!("error={s}: errno out of range (1-4095)"));
    }
    (1..4096)
        .find(|e| utrace_engines::sys::errno_name(*e) == s)
        .map(i64::from)
        .ok_or_else(|| format!("error={s}: unknown errno name (e.g. ENOENT, EACCES, EIO)"))
}

/// `when=N`, `N+`, `N+STEP`, `N..M`, `N..M+`, `N..M+STEP`: (first, last,
/// step); numbers from 1 to 65535, as strace takes them.
fn when(s: &str) -> Result<(u64, Option<u64>, u64), String> {
    let bad = || format!("when={s}: expected FIRST[..LAST][+[STEP]] with numbers from 1 to 65535");
    let num = |t: &str| -> Result<u64, String> {
        t.parse::<u64>()
            .ok()
            .filter(|n| (1..=65535).contains(n))
            .ok_or_else(bad)
    };
    let (range, step) = match s.split_once('+') {
        None => (s, None),
        Some((r, "")) => (r, Some(1)),
        Some((r, st)) => (r, Some(num(st)?)),
    };
    let (first, last) = match range.split_once("..") {
        None => (num(range)?, None),
        Some((f, l)) => {
            let (f, l) = (num(f)?, num(l)?);
            if l < f {
                return Err(bad());
            }
            (f, Some(l))
        }
    };
    // FIRST..LAST alone is every call of the range.
    let step = step.unwrap_or(if last.is_some() { 1 } else { 0 });
    Ok((first, last, step))
}

/// A delay: microseconds, or a number with a unit (`s`, `ms`, `us`, `ns`),
/// as strace's time specifications.
fn delay(key: &str, s: &str) -> Result<Duration, String> {
    let bad = || format!("{key}={s}: expected a delay such as 1000 (µs), 5ms, 1s or 200ns");
    let at = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(at);
    let v: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "us" => 1e-6,
        "s" => 1.0,
        "ms" => 1e-3,
        "ns" => 1e-9,
        _ => return Err(bad()),
    };
    let secs = v * scale;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{key}={s}: at most an hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse what follows `inject=`; with `fault`, what follows `fault=`
/// (an `error=` that defaults to ENOSYS).
pub fn parse(spec: &str, fault: bool) -> Result<Rule, String> {
    let what = if fault { "fault" } else { "inject" };
    let mut parts = spec.split(':');
    let set = parts.next().unwrap_or_default();
    if set.is_empty() {
        return Err(format!(
            "{what}=: give the syscalls first, e.g. {what}=openat:error=ENOENT"
        ));
    }
    let syscalls: Vec<u64> =
        match crate::sysset::syscalls(set).map_err(|e| format!("{what}: {e}"))? {
            None => (0..utrace_engines::MAX_SYSCALL as u64)
                .filter(|n| utrace_engines::syscall_name(*n).is_some())
                .collect(),
            Some(s) if s.is_empty() => return Err(format!("{what}={set}: no syscall in the set")),
            Some(s) => s.into_iter().collect(),
        };
    let names = crate::sysset::names(&syscalls.iter().copied().collect());
    let mut rule = Rule {
        syscalls,
        names,
        ret: None,
        signal: None,
        delay_enter: None,
        delay_exit: None,
        first: 1,
        last: None,
        step: 1,
    };
    for part in parts {
        match part.split_once('=') {
            Some(("error", e)) if rule.ret.is_none() => rule.ret = Some(-errno(e)?),
            Some(("retval", v)) if rule.ret.is_none() && !fault => {
                rule.ret = Some(
                    v.parse::<i64>()
                        .map_err(|_| format!("retval={v}: not an integer"))?,
                )
            }
            Some(("error" | "retval", _)) => {
                return Err(format!("{what}: give one of error= and retval=, once"))
            }
            Some(("signal", sig)) if !fault => {
                rule.signal =
                    Some(crate::sysset::signal_number(sig).map_err(|e| format!("signal={e}"))?)
            }
            Some(("delay_enter", d)) if !fault => rule.delay_enter = Some(delay("delay_enter", d)?),
            Some(("delay_exit", d)) if !fault => rule.delay_exit = Some(delay("delay_exit", d)?),
            Some(("when", w)) => (rule.first, rule.last, rule.step) = when(w)?,
            Some((k @ ("poke_enter" | "poke_exit" | "syscall"), _)) => {
                return Err(format!(
                    "{what}: {k}= is not supported; use error=, retval=, signal=, delay_enter= \
                     or delay_exit= (with when=)"
                ))
            }
            _ => return Err(format!("{what}: unknown part {part:?}")),
        }
    }
    if fault && rule.ret.is_none() {
        rule.ret = Some(-i64::from(libc::ENOSYS));
    }
    if rule.ret.is_none()
        && rule.signal.is_none()
        && rule.delay_enter.is_none()
        && rule.delay_exit.is_none()
    {
        return Err(format!(
            "{what}: give an action: error=ERRNO, retval=VALUE, signal=SIG, delay_enter= or \
             delay_exit="
        ));
    }
    Ok(rule)
}

/// What to do with a held report: the decision, sent after `delay`.
pub struct Plan {
    pub decision: pb::Decision,
    pub delay: Option<Duration>,
}

/// What was done to a thread's current call (its exit is marked, and
/// perhaps delayed).
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    nr: u64,
    injected: bool,
    delayed: bool,
    delay_exit: Option<Duration>,
}

/// Counts calls and decides held syscall entries and exits.
#[derive(Default)]
pub struct Injector {
    rules: Vec<Rule>,
    /// Calls seen so far per (thread, syscall).
    calls: HashMap<(u32, u64), u64>,
    /// Threads whose current call was tampered with.
    done: HashMap<u32, Done>,
}

impl Injector {
    pub fn new(rules: Vec<Rule>) -> Self {
        Injector {
            rules,
            ..Default::default()
        }
    }

    /// Every syscall some rule names.
    pub fn syscalls(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rules.iter().flat_map(|r| r.names.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Some rule delays exits: the engine holds them too.
    pub fn holds_exits(&self) -> bool {
        self.rules.iter().any(|r| r.delay_exit.is_some())
    }

    /// What to do with a held report.
    pub fn decide(&mut self, ev: &pb::Event) -> Plan {
        let plan = |decision| Plan {
            decision,
            delay: None,
        };
        match &ev.kind {
            Some(pb::event::Kind::SyscallEntry(call)) => {
                let n = self.calls.entry((ev.tid, call.nr)).or_insert(0);
                *n += 1;
                let n = *n;
                let Some(rule) = self
                    .rules
                    .iter()
                    .find(|r| r.syscalls.contains(&call.nr) && r.applies(n))
                else {
                    self.done.remove(&ev.tid);
                    return plan(Decision::resume(ev));
                };
                let mut d = match rule.ret {
                    Some(ret) => Decision::skip_syscall(ev, ret),
                    None => Decision::resume(ev),
                };
                if let Some(signo) = rule.signal {
                    d.batch = Some(pb::BatchRequest {
                        ops: vec![pb::Op {
                            op: Some(pb::op::Op::SendSignal(pb::SendSignal { signo })),
                        }],
                        ..Default::default()
                    });
                }
                self.done.insert(
                    ev.tid,
                    Done {
                        nr: call.nr,
                        injected: rule.ret.is_some(),
                        delayed: rule.delay_enter.is_some() || rule.delay_exit.is_some(),
                        delay_exit: rule.delay_exit,
                    },
                );
                Plan {
                    decision: d,
                    delay: rule.delay_enter,
                }
            }
            Some(pb::event::Kind::SyscallExit(x)) => Plan {
                decision: Decision::resume(ev),
                delay: self
                    .done
                    .get(&ev.tid)
                    .filter(|d| d.nr == x.nr)
                    .and_then(|d| d.delay_exit),
            },
            _ => plan(Decision::resume(ev)),
        }
    }

    /// strace's marks for this exit report (` (INJECTED)`, ` (DELAYED)`),
    /// if its call was tampered with; the thread's mark is used up.
    pub fn take_mark(&mut self, ev: &pb::Event) -> Option<&'static str> {
        match &ev.kind {
            Some(pb::event::Kind::SyscallExit(x)) => {
                let d = self.done.get(&ev.tid).filter(|d| d.nr == x.nr).copied()?;
                self.done.remove(&ev.tid);
                match (d.injected, d.delayed) {
                    (true, true) => Some(" (INJECTED) (DELAYED)"),
                    (true, false) => Some(" (INJECTED)"),
                    (false, true) => Some(" (DELAYED)"),
                    (false, false) => None,
                }
            }
            Some(pb::event::Kind::Death(_)) => {
                self.done.remove(&ev.tid);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_syntax() {
        let r = parse("openat:error=ENOENT", false).unwrap();
        assert_eq!(r.ret, Some(-2));
        assert_eq!((r.first, r.last, r.step), (1, None, 1));
        assert_eq!(r.names, vec!["openat"]);
        let r = parse("openat,read:retval=42:when=3", false).unwrap();
        assert_eq!((r.ret, r.first, r.step), (Some(42), 3, 0));
        assert_eq!(r.syscalls.len(), 2);
        let r = parse("close:error=5:when=2+", false).unwrap();
        assert_eq!((r.ret, r.first, r.step), (Some(-5), 2, 1));
        let r = parse("close:error=EBADF:when=2+3", false).unwrap();
        assert_eq!((r.first, r.step), (2, 3));
        assert!(r.applies(2) && r.applies(5) && r.applies(8));
        assert!(!r.applies(1) && !r.applies(3) && !r.applies(4));
        let r = parse("close:error=EBADF:when=2..4", false).unwrap();
        assert!(!r.applies(1) && r.applies(2) && r.applies(3) && r.applies(4) && !r.applies(5));
        let r = parse("close:error=EBADF:when=2..7+2", false).unwrap();
        let hit: Vec<u64> = (1..10).filter(|n| r.applies(*n)).collect();
        assert_eq!(hit, vec![2, 4, 6]);
        let r = parse("%file:signal=SIGUSR1:delay_enter=5ms:delay_exit=2", false).unwrap();
        assert!(r
            .syscalls
            .contains(&utrace_engines::syscall_number("openat").unwrap()));
        assert_eq!(r.signal, Some(10));
        assert_eq!(r.delay_enter, Some(Duration::from_millis(5)));
        assert_eq!(r.delay_exit, Some(Duration::from_micros(2)));
        assert_eq!(r.ret, None);
        let f = parse("openat:when=2", true).unwrap();
        assert_eq!(
            f.ret,
            Some(-i64::from(libc::ENOSYS)),
            "fault= defaults to ENOSYS"
        );
        assert_eq!(parse("openat:error=EACCES", true).unwrap().ret, Some(-13));
        for (bad, fault) in [
            ("openat", false),
            (":error=ENOENT", false),
            ("openat:error=ENOPE", false),
            ("openat:error=ENOENT:retval=1", false),
            ("openat:error=ENOENT:when=0", false),
            ("openat:error=ENOENT:when=x+", false),
            ("openat:error=ENOENT:when=5..2", false),
            ("openat:signal=SIGNOPE", false),
            ("openat:delay_enter=5parsecs", false),
            ("openat:poke_enter=@arg1=00", false),
            ("nosuchcall:error=EIO", false),
            ("openat:retval=1", true),
        ] {
            assert!(parse(bad, fault).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn decides_per_thread_and_syscall() {
        let mut inj = Injector::new(vec![parse("openat:error=ENOENT:when=2+2", false).unwrap()]);
        let entry = |tid, seq| pb::Event {
            seq,
            tid,
            kind: Some(pb::event::Kind::SyscallEntry(pb::SyscallEntry {
                nr: 257,
                name: "openat".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let skips: Vec<bool> = (1..=4)
            .map(|i| inj.decide(&entry(7, i)).decision.skip_syscall)
            .collect();
        assert_eq!(skips, vec![false, true, false, true]);
        // Another thread counts on its own.
        assert!(!inj.decide(&entry(8, 9)).decision.skip_syscall);
        let exit = pb::Event {
            tid: 7,
            kind: Some(pb::event::Kind::SyscallExit(pb::SyscallExit {
                nr: 257,
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(inj.take_mark(&exit), Some(" (INJECTED)"));
        assert_eq!(inj.take_mark(&exit), None);
        // A signal goes in the decision's batch; delays come with the plan.
        let mut inj = Injector::new(vec![parse(
            "openat:signal=SIGUSR1:delay_enter=1ms:delay_exit=2ms",
            false,
        )
        .unwrap()]);
        let p = inj.decide(&entry(7, 1));
        assert!(!p.decision.skip_syscall);
        assert_eq!(p.delay, Some(Duration::from_millis(1)));
        assert!(matches!(
            p.decision.batch.as_ref().and_then(|b| b.ops[0].op.as_ref()),
            Some(pb::op::Op::SendSignal(pb::SendSignal { signo: 10 }))
        ));
        assert_eq!(inj.decide(&exit).delay, Some(Duration::from_millis(2)));
        assert_eq!(inj.take_mark(&exit), Some(" (DELAYED)"));
        assert!(inj.holds_exits());
    }
}
