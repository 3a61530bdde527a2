//! `-e inject=SET:error=ERRNO[:when=EXPR]` and `-e inject=SET:retval=V`:
//! strace's syscall fault injection, on a sync engine. The engine holds the
//! task at each entry of a syscall in SET; this side counts the calls (per
//! thread and syscall, as strace counts per tracee) and decides: skip the
//! call with the error or value, or let it run.

use std::collections::HashMap;

use utrace_client::{pb, Decision};

/// One `inject=` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Syscall numbers it applies to.
    pub syscalls: Vec<u64>,
    /// Their names or numbers as given (for the engine).
    pub names: Vec<String>,
    /// What the call returns instead: `-errno` or the value.
    pub ret: i64,
    /// Inject on the `first`-th call (from 1)…
    pub first: u64,
    /// …and every `step`-th after it (0: only the first-th).
    pub step: u64,
}

impl Rule {
    fn applies(&self, n: u64) -> bool {
        n == self.first || (self.step > 0 && n > self.first && (n - self.first) % self.step == 0)
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

/// `when=N`, `when=N+`, `when=N+STEP`: (first, step).
fn when(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("when={s}: expected N, N+ or N+STEP with N and STEP from 1 to 65535");
    let num = |t: &str| -> Result<u64, String> {
        t.parse::<u64>()
            .ok()
            .filter(|n| (1..=65535).contains(n))
            .ok_or_else(bad)
    };
    match s.split_once('+') {
        None => Ok((num(s)?, 0)),
        Some((n, "")) => Ok((num(n)?, 1)),
        Some((n, step)) => Ok((num(n)?, num(step)?)),
    }
}

/// Parse what follows `inject=`.
pub fn parse(spec: &str) -> Result<Rule, String> {
    let mut parts = spec.split(':');
    let set = parts.next().unwrap_or_default();
    if set.is_empty() {
        return Err("inject=: give the syscalls first, e.g. inject=openat:error=ENOENT".into());
    }
    let mut names = Vec::new();
    let mut syscalls = Vec::new();
    for name in set.split(',').map(str::trim) {
        if name.starts_with(['!', '%', '/', '?']) {
            return Err(format!(
                "inject={name}: negation, classes and regular expressions are not supported; list syscall names"
            ));
        }
        let nr = utrace_engines::syscall_number(name).map_err(|e| format!("inject: {e}"))?;
        names.push(name.to_string());
        syscalls.push(nr);
    }
    let (mut ret, mut first, mut step) = (None, 1, 1);
    for part in parts {
        match part.split_once('=') {
            Some(("error", e)) if ret.is_none() => ret = Some(-errno(e)?),
            Some(("retval", v)) if ret.is_none() => {
                ret = Some(
                    v.parse::<i64>()
                        .map_err(|_| format!("retval={v}: not an integer"))?,
                )
            }
            Some(("error" | "retval", _)) => {
                return Err("inject: give one of error= and retval=, once".into())
            }
            Some(("when", w)) => (first, step) = when(w)?,
            Some((
                k @ ("signal" | "delay_enter" | "delay_exit" | "poke_enter" | "poke_exit"),
                _,
            )) => {
                return Err(format!(
                    "inject: {k}= is not supported; use error= or retval= (with when=)"
                ))
            }
            _ => return Err(format!("inject: unknown part {part:?}")),
        }
    }
    let ret = ret.ok_or("inject: give error=ERRNO or retval=VALUE")?;
    Ok(Rule {
        syscalls,
        names,
        ret,
        first,
        step,
    })
}

/// Counts calls and decides held syscall entries.
#[derive(Default)]
pub struct Injector {
    rules: Vec<Rule>,
    /// Calls seen so far per (thread, syscall).
    calls: HashMap<(u32, u64), u64>,
    /// Threads whose current call was injected (their exit gets the mark).
    injected: HashMap<u32, u64>,
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

    /// The decision for a held report.
    pub fn decide(&mut self, ev: &pb::Event) -> pb::Decision {
        let Some(pb::event::Kind::SyscallEntry(call)) = &ev.kind else {
            return Decision::resume(ev);
        };
        let n = self.calls.entry((ev.tid, call.nr)).or_insert(0);
        *n += 1;
        let n = *n;
        match self
            .rules
            .iter()
            .find(|r| r.syscalls.contains(&call.nr) && r.applies(n))
        {
            Some(rule) => {
                self.injected.insert(ev.tid, call.nr);
                Decision::skip_syscall(ev, rule.ret)
            }
            None => {
                self.injected.remove(&ev.tid);
                Decision::resume(ev)
            }
        }
    }

    /// Whether this exit report is of an injected call (it is marked
    /// `(INJECTED)`, as strace marks it); the thread's mark is used up.
    pub fn take_injected(&mut self, ev: &pb::Event) -> bool {
        match &ev.kind {
            Some(pb::event::Kind::SyscallExit(x)) if self.injected.get(&ev.tid) == Some(&x.nr) => {
                self.injected.remove(&ev.tid);
                true
            }
            Some(pb::event::Kind::SyscallExit(_)) => false,
            Some(pb::event::Kind::Death(_)) => {
                self.injected.remove(&ev.tid);
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_syntax() {
        let r = parse("openat:error=ENOENT").unwrap();
        assert_eq!(r.ret, -2);
        assert_eq!((r.first, r.step), (1, 1));
        assert_eq!(r.names, vec!["openat"]);
        let r = parse("openat,read:retval=42:when=3").unwrap();
        assert_eq!((r.ret, r.first, r.step), (42, 3, 0));
        assert_eq!(r.syscalls.len(), 2);
        let r = parse("close:error=5:when=2+").unwrap();
        assert_eq!((r.ret, r.first, r.step), (-5, 2, 1));
        let r = parse("close:error=EBADF:when=2+3").unwrap();
        assert_eq!((r.first, r.step), (2, 3));
        assert!(r.applies(2) && r.applies(5) && r.applies(8));
        assert!(!r.applies(1) && !r.applies(3) && !r.applies(4));
        for bad in [
            "openat",
            ":error=ENOENT",
            "openat:error=ENOPE",
            "openat:error=ENOENT:retval=1",
            "openat:error=ENOENT:when=0",
            "openat:error=ENOENT:when=x+",
            "openat:signal=SIGSEGV",
            "nosuchcall:error=EIO",
            "%file:error=EIO",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn decides_per_thread_and_syscall() {
        let mut inj = Injector::new(vec![parse("openat:error=ENOENT:when=2+2").unwrap()]);
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
            .map(|i| inj.decide(&entry(7, i)).skip_syscall)
            .collect();
        assert_eq!(skips, vec![false, true, false, true]);
        // Another thread counts on its own.
        assert!(!inj.decide(&entry(8, 9)).skip_syscall);
        let exit = pb::Event {
            tid: 7,
            kind: Some(pb::event::Kind::SyscallExit(pb::SyscallExit {
                nr: 257,
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(inj.take_injected(&exit));
        assert!(!inj.take_injected(&exit));
    }
}
