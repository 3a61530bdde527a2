//! strace's sets, as `-e trace=`, `-e inject=`, `-e fault=`, `-e signal=`
//! and `-e status=` take them: `[!]VALUE[,VALUE…]`.
//!
//! A syscall set's values are names (`openat`), numbers, classes
//! (`%file`, `%net`, `%%stat`, and the old bare `file`, `process`…),
//! POSIX extended regular expressions (`/^open`, matched anywhere in the
//! name, as `regexec` does), `all`, `none`, and any of them after `?`
//! (no error when nothing matches). A leading `!` takes the complement of
//! the whole set, as strace does.

use std::collections::BTreeSet;

use utrace_engines::{syscall_class, syscall_name, syscall_number, MAX_SYSCALL};

/// Every syscall number this architecture names.
fn every_syscall() -> impl Iterator<Item = u64> {
    (0..MAX_SYSCALL as u64).filter(|n| syscall_name(*n).is_some())
}

/// The classes strace still takes without their `%` (deprecated there).
const BARE_CLASSES: [&str; 7] = [
    "file", "process", "network", "signal", "ipc", "desc", "memory",
];

/// A syscall set: `None` for all of them (`all`, or `!none`), else the
/// numbers.
pub fn syscalls(spec: &str) -> Result<Option<BTreeSet<u64>>, String> {
    let (negate, body) = match spec.trim().strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, spec.trim()),
    };
    let mut set = BTreeSet::new();
    let mut all = false;
    for value in body.split(',').map(str::trim) {
        let (quiet, v) = match value.strip_prefix('?') {
            Some(v) => (true, v),
            None => (false, value),
        };
        let found: Vec<u64> = match v {
            "" => return Err(format!("{spec:?}: an empty value in the set")),
            "all" => {
                all = true;
                continue;
            }
            "none" => continue,
            _ if v.starts_with('/') => {
                let re = regex::Regex::new(&v[1..])
                    .map_err(|e| format!("{v}: not a regular expression: {e}"))?;
                every_syscall()
                    .filter(|n| syscall_name(*n).is_some_and(|name| re.is_match(name)))
                    .collect()
            }
            _ if v.starts_with('%') || BARE_CLASSES.contains(&v) => {
                let class = syscall_class(v).ok_or_else(|| {
                    format!(
                        "{v}: not a syscall class; the classes are {}",
                        utrace_engines::syscall_class_names().join(", ")
                    )
                })?;
                every_syscall().filter(|n| class.contains(*n)).collect()
            }
            _ => match syscall_number(v) {
                Ok(n) => vec![n],
                Err(_) if quiet => Vec::new(),
                Err(_) => return Err(format!("invalid system call '{v}'")),
            },
        };
        if found.is_empty() && !quiet && !v.starts_with('%') {
            return Err(format!(
                "{v}: no syscall matches it (a leading ? allows that)"
            ));
        }
        set.extend(found);
    }
    let chosen: BTreeSet<u64> = if all { every_syscall().collect() } else { set };
    let result: BTreeSet<u64> = if negate {
        every_syscall().filter(|n| !chosen.contains(n)).collect()
    } else {
        chosen
    };
    // Every syscall is "all" (the server's empty set), whatever the spelling.
    Ok(if every_syscall().all(|n| result.contains(&n)) {
        None
    } else {
        Some(result)
    })
}

/// The names of a set (what the server's `EngineSpec.syscalls` takes).
pub fn names(set: &BTreeSet<u64>) -> Vec<String> {
    set.iter()
        .map(|n| syscall_name(*n).map_or_else(|| n.to_string(), str::to_string))
        .collect()
}

/// A signal by name (`SIGINT`, `INT`, any case) or number (1 to 64).
pub fn signal_number(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(format!("{s}: no such signal (1 to 64)"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    (1..=64)
        .find(|n| utrace_engines::sys::signal_name(*n) == name)
        .ok_or_else(|| format!("{s}: no such signal"))
}

/// A set of `universe`'s members as strace reads one: `[!]VALUE,…` with
/// `all` and `none`, each other value read by `member`. `None` when it
/// holds every member.
fn set_of<T: Ord + Copy>(
    spec: &str,
    universe: &[T],
    member: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<BTreeSet<T>>, String> {
    let (negate, body) = match spec.trim().strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, spec.trim()),
    };
    let mut set = BTreeSet::new();
    for v in body.split(',').map(str::trim) {
        match v {
            "all" => set.extend(universe.iter().copied()),
            "none" => {}
            _ => {
                set.insert(member(v)?);
            }
        }
    }
    if negate {
        set = universe
            .iter()
            .copied()
            .filter(|m| !set.contains(m))
            .collect();
    }
    Ok((set.len() < universe.len()).then_some(set))
}

/// A signal set (`-e signal=`): `None` for all of them.
pub fn signals(spec: &str) -> Result<Option<BTreeSet<i32>>, String> {
    let every: Vec<i32> = (1..=64).collect();
    set_of(spec, &every, signal_number)
}

/// A call's outcome, for `-e status=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// It returned without an error.
    Successful,
    /// It returned an error.
    Failed,
    /// It never returned (its task exited, or exec'd from another thread).
    Unfinished,
    /// It returned, with no return value to be had.
    Unavailable,
    /// The trace ended before it returned.
    Detached,
}

/// A status set (`-e status=`): `None` for all of them.
pub fn statuses(spec: &str) -> Result<Option<BTreeSet<Status>>, String> {
    const ALL: [Status; 5] = [
        Status::Successful,
        Status::Failed,
        Status::Unfinished,
        Status::Unavailable,
        Status::Detached,
    ];
    set_of(spec, &ALL, |v| match v {
        "successful" => Ok(Status::Successful),
        "failed" => Ok(Status::Failed),
        "unfinished" => Ok(Status::Unfinished),
        "unavailable" => Ok(Status::Unavailable),
        "detached" => Ok(Status::Detached),
        _ => Err(format!(
            "status={v}: expected successful, failed, unfinished, unavailable, detached, all \
             or none"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nr(n: &str) -> u64 {
        syscall_number(n).expect("a syscall")
    }

    #[test]
    fn syscall_sets_as_strace_reads_them() {
        assert_eq!(syscalls("all").unwrap(), None);
        assert_eq!(syscalls("!none").unwrap(), None);
        assert_eq!(syscalls("none").unwrap(), Some(BTreeSet::new()));
        assert_eq!(
            syscalls("openat,read").unwrap(),
            Some([nr("openat"), nr("read")].into())
        );
        let file = syscalls("%file").unwrap().expect("a set");
        assert!(file.contains(&nr("openat")) && !file.contains(&nr("read")));
        assert_eq!(
            syscalls("file").unwrap(),
            Some(file.clone()),
            "the old bare name"
        );
        let not_file = syscalls("!%file").unwrap().expect("a set");
        assert!(!not_file.contains(&nr("openat")) && not_file.contains(&nr("read")));
        let re = syscalls("/^open").unwrap().expect("a set");
        assert!(re.contains(&nr("open")) && re.contains(&nr("openat")));
        assert!(!re.contains(&nr("read")));
        let anywhere = syscalls("/stat").unwrap().expect("a set");
        assert!(anywhere.contains(&nr("newfstatat")) && anywhere.contains(&nr("fstat")));
        let at_end = syscalls("/stat$").unwrap().expect("a set");
        assert!(!at_end.contains(&nr("newfstatat")) && at_end.contains(&nr("fstat")));
        assert_eq!(
            syscalls("?nosuchcall,read").unwrap(),
            Some([nr("read")].into())
        );
        assert_eq!(syscalls("%net").unwrap(), syscalls("%network").unwrap());
        assert_eq!(syscalls("2").unwrap(), Some([2].into()));
        for bad in ["nosuchcall", "%nothing", "/(", "/^zzz", "read,,write", ""] {
            assert!(syscalls(bad).is_err(), "{bad:?} refused");
        }
        assert_eq!(
            syscalls("nosuchcall").unwrap_err(),
            "invalid system call 'nosuchcall'"
        );
    }

    #[test]
    fn signal_and_status_sets() {
        assert_eq!(signals("all").unwrap(), None);
        assert_eq!(signals("SIGINT,usr1,15").unwrap(), Some([2, 10, 15].into()));
        let not_io = signals("!SIGIO").unwrap().expect("a set");
        assert!(!not_io.contains(&29) && not_io.contains(&2));
        assert!(signals("SIGNOPE").is_err());
        assert_eq!(statuses("all").unwrap(), None);
        assert_eq!(statuses("failed").unwrap(), Some([Status::Failed].into()));
        let not_failed = statuses("!failed").unwrap().expect("a set");
        assert!(not_failed.contains(&Status::Successful) && !not_failed.contains(&Status::Failed));
        assert!(statuses("succeeded").is_err());
    }
}
