//! A syscall counter like `strace -c -w`: per syscall, the calls, the
//! failed calls, and the wall-clock time from each entry stop to its exit
//! stop.
//!
//! The engine moves into the tracer when it is attached, so the counts live
//! behind a shared handle ([`SharedCounts`]) that [`Counter::new`] returns
//! next to the engine:
//!
//! ```no_run
//! use utrace_engines::builtin::counter::Counter;
//! use utrace_engines::{EngineOptions, SpawnOptions, Tracer};
//!
//! let tracer = Tracer::new()?;
//! let (counter, counts) = Counter::new();
//! tracer
//!     .spawn(SpawnOptions::new(["/bin/ls"]), Box::new(counter), EngineOptions::new(Counter::EVENTS))
//!     .wait()?;
//! // ... once the program is done:
//! let snapshot = counts.lock().map(|c| c.clone()).unwrap_or_default();
//! eprint!("{}", snapshot.table());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The engine's callbacks run on the tracer thread and hold the mutex only
//! to add one call; readers should do the same (clone the [`Counts`] under
//! the lock, then format), so the traced program is never held up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{Action, Engine};
use crate::event::{EventMask, ExitReport, SyscallEntry, SyscallExit};
use crate::sys::Tid;
use crate::task::Task;

/// The counts, shared between the engine (on the tracer thread) and its
/// creator.
pub type SharedCounts = Arc<Mutex<Counts>>;

/// One syscall's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallStats {
    /// Calls that returned.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Wall-clock time between entry and exit stops, summed.
    pub time: Duration,
    /// The shortest and the longest of those times.
    pub min: Duration,
    pub max: Duration,
}

/// How the summary table's rows are ordered (strace's `-S`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Total time, most first (the default).
    #[default]
    Time,
    /// Shortest call, longest first.
    MinTime,
    /// Longest call, longest first.
    MaxTime,
    /// Time per call, most first.
    AvgTime,
    /// Calls, most first.
    Calls,
    /// Errors, most first.
    Errors,
    /// Syscall name.
    Name,
    /// No sorting: in syscall number order, as strace's table.
    Nothing,
}

impl SortBy {
    /// strace's `-S` key: any name of a column of the table (as `-U`
    /// takes them), or `nothing`.
    pub fn parse(key: &str) -> Option<SortBy> {
        if matches!(key, "nothing" | "none") {
            return Some(SortBy::Nothing);
        }
        Some(match Column::parse(key)? {
            Column::TimePercent | Column::TotalTime => SortBy::Time,
            Column::MinTime => SortBy::MinTime,
            Column::MaxTime => SortBy::MaxTime,
            Column::AvgTime => SortBy::AvgTime,
            Column::Calls => SortBy::Calls,
            Column::Errors => SortBy::Errors,
            Column::Name => SortBy::Name,
        })
    }
}

/// Per-syscall totals, keyed by syscall name (`syscall_0x1ff` for numbers
/// without one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    stats: HashMap<String, SyscallStats>,
}

impl Counts {
    /// Add one returned call.
    pub fn record(&mut self, name: &str, error: bool, time: Duration) {
        let s = match self.stats.get_mut(name) {
            Some(s) => s,
            None => self.stats.entry(name.to_string()).or_default(),
        };
        s.min = if s.calls == 0 { time } else { s.min.min(time) };
        s.max = s.max.max(time);
        s.calls += 1;
        s.errors += u64::from(error);
        s.time += time;
    }

    /// One syscall's totals.
    pub fn get(&self, name: &str) -> Option<&SyscallStats> {
        self.stats.get(name)
    }

    /// Every syscall seen, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SyscallStats)> {
        self.stats.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether no call was counted.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// The totals over every syscall.
    pub fn total(&self) -> SyscallStats {
        self.stats
            .values()
            .fold(SyscallStats::default(), |mut t, s| {
                t.min = if t.calls == 0 {
                    s.min
                } else {
                    t.min.min(s.min)
                };
                t.max = t.max.max(s.max);
                t.calls += s.calls;
                t.errors += s.errors;
                t.time += s.time;
                t
            })
    }

    /// The summary table in `strace -c`'s layout: rows by time, most first
    /// (then by calls, then by name), and a `total` row.
    ///
    /// ```text
    /// % time     seconds  usecs/call     calls    errors syscall
    /// ------ ----------- ----------- --------- --------- ----------------
    ///  60.00    0.000006           3         2         1 openat
    ///  40.00    0.000004           4         1           read
    /// ------ ----------- ----------- --------- --------- ----------------
    /// 100.00    0.000010           3         3         1 total
    /// ```
    pub fn table(&self) -> String {
        self.table_by(SortBy::Time)
    }

    /// [`Counts::table`] with its rows in the order `sort` says (ties by
    /// calls, then by name, except for [`SortBy::Nothing`]).
    pub fn table_by(&self, sort: SortBy) -> String {
        self.table_with(sort, &Column::DEFAULT)
    }

    /// The table in `sort`'s order with `columns` (strace's `-U`; the
    /// name is added last if `columns` lack it).
    pub fn table_with(&self, sort: SortBy, columns: &[Column]) -> String {
        let mut rows: Vec<(&str, &SyscallStats)> = self.iter().collect();
        let avg = |s: &SyscallStats| s.time.checked_div(s.calls as u32).unwrap_or_default();
        if !matches!(sort, SortBy::Nothing | SortBy::Name) {
            rows.sort_by(|a, b| {
                let (x, y) = (a.1, b.1);
                match sort {
                    SortBy::Time => y.time.cmp(&x.time),
                    SortBy::MinTime => y.min.cmp(&x.min),
                    SortBy::MaxTime => y.max.cmp(&x.max),
                    SortBy::AvgTime => avg(y).cmp(&avg(x)),
                    SortBy::Calls => y.calls.cmp(&x.calls),
                    SortBy::Errors => y.errors.cmp(&x.errors),
                    SortBy::Name | SortBy::Nothing => std::cmp::Ordering::Equal,
                }
                .then(y.calls.cmp(&x.calls).then(a.0.cmp(b.0)))
            });
        }
        match sort {
            SortBy::Name => rows.sort_by(|a, b| a.0.cmp(b.0)),
            SortBy::Nothing => rows.sort_by_key(|(name, _)| {
                (
                    crate::event::syscall_number(name).map_or(u64::MAX, |n| n),
                    *name,
                )
            }),
            _ => {}
        }
        let mut columns = columns.to_vec();
        if !columns.contains(&Column::Name) {
            columns.push(Column::Name);
        }
        let total = self.total();
        let total_us = total.time.as_micros();
        let line = |cells: Vec<String>| {
            let mut l = String::new();
            for (i, (c, cell)) in columns.iter().zip(cells).enumerate() {
                if i > 0 {
                    l.push(' ');
                }
                let last = i + 1 == columns.len();
                match c {
                    Column::Name if last => l.push_str(&cell),
                    Column::Name => l.push_str(&format!("{cell:<16}")),
                    c => l.push_str(&format!("{cell:>w$}", w = c.width())),
                }
            }
            l.push('\n');
            l
        };
        let dashes = line(columns.iter().map(|c| "-".repeat(c.width())).collect());
        let mut out = line(columns.iter().map(|c| c.header().to_string()).collect());
        out.push_str(&dashes);
        for (name, s) in rows {
            let share = if total_us == 0 {
                0.0
            } else {
                100.0 * s.time.as_micros() as f64 / total_us as f64
            };
            out.push_str(&line(
                columns.iter().map(|c| c.cell(share, s, name)).collect(),
            ));
        }
        out.push_str(&dashes);
        let share = if total_us == 0 { 0.0 } else { 100.0 };
        out.push_str(&line(
            columns
                .iter()
                .map(|c| c.cell(share, &total, "total"))
                .collect(),
        ));
        out
    }
}

/// A column of the summary table (strace's `-U`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// `% time`: the share of the total time.
    TimePercent,
    /// `seconds`: the time, in all.
    TotalTime,
    /// `shortest` and `longest` call.
    MinTime,
    MaxTime,
    /// `usecs/call`.
    AvgTime,
    Calls,
    Errors,
    /// `syscall`.
    Name,
}

impl Column {
    /// strace's default columns.
    pub const DEFAULT: [Column; 6] = [
        Column::TimePercent,
        Column::TotalTime,
        Column::AvgTime,
        Column::Calls,
        Column::Errors,
        Column::Name,
    ];

    /// A column by any name strace's `-U` takes for it (`-` or `_`).
    pub fn parse(name: &str) -> Option<Column> {
        Some(match name.replace('_', "-").as_str() {
            "time-percent" | "time" => Column::TimePercent,
            "total-time" | "time-total" => Column::TotalTime,
            "min-time" | "shortest" | "time-min" => Column::MinTime,
            "max-time" | "longest" | "time-max" => Column::MaxTime,
            "avg-time" | "time-avg" => Column::AvgTime,
            "calls" | "count" => Column::Calls,
            "errors" | "error" => Column::Errors,
            "name" | "syscall" | "syscall-name" => Column::Name,
            _ => return None,
        })
    }

    fn header(self) -> &'static str {
        match self {
            Column::TimePercent => "% time",
            Column::TotalTime => "seconds",
            Column::MinTime => "shortest",
            Column::MaxTime => "longest",
            Column::AvgTime => "usecs/call",
            Column::Calls => "calls",
            Column::Errors => "errors",
            Column::Name => "syscall",
        }
    }

    fn width(self) -> usize {
        match self {
            Column::TimePercent => 6,
            Column::TotalTime | Column::AvgTime => 11,
            Column::MinTime | Column::MaxTime => 8,
            Column::Calls | Column::Errors => 9,
            Column::Name => 16,
        }
    }

    /// This column's cell of a row (strace's formats: `%6.2f`,
    /// `%4ld.%06ld`, `%1ld.%06ld`, `%11lu`, `%9u`, `%9.u`, `%s`).
    fn cell(self, share: f64, s: &SyscallStats, name: &str) -> String {
        let secs = |d: Duration, w: usize| {
            let us = d.as_micros();
            format!("{:>w$}.{:06}", us / 1_000_000, us % 1_000_000)
        };
        match self {
            Column::TimePercent => format!("{share:6.2}"),
            Column::TotalTime => secs(s.time, 4),
            Column::MinTime => secs(s.min, 1),
            Column::MaxTime => secs(s.max, 1),
            Column::AvgTime => s
                .time
                .as_micros()
                .checked_div(u128::from(s.calls))
                .unwrap_or(0)
                .to_string(),
            Column::Calls => s.calls.to_string(),
            Column::Errors if s.errors == 0 => String::new(),
            Column::Errors => s.errors.to_string(),
            Column::Name => name.to_string(),
        }
    }
}

/// The counting engine. Attach it with [`Counter::EVENTS`].
pub struct Counter {
    shared: SharedCounts,
    /// Per task: when its current syscall entered.
    entered: HashMap<Tid, Instant>,
}

impl Counter {
    /// The events a counter must be attached with (`DEATH` forgets the
    /// pending entries of tasks that die inside a syscall).
    pub const EVENTS: EventMask = EventMask::SYSCALL_ENTRY
        .union(EventMask::SYSCALL_EXIT)
        .union(EventMask::DEATH);

    /// A counter, and the handle through which its counts stay readable
    /// after the engine has moved into the tracer.
    pub fn new() -> (Counter, SharedCounts) {
        let shared = SharedCounts::default();
        (
            Counter {
                shared: Arc::clone(&shared),
                entered: HashMap::new(),
            },
            shared,
        )
    }

    /// Another handle to the counts.
    pub fn counts(&self) -> SharedCounts {
        Arc::clone(&self.shared)
    }

    /// The summary table of the counts so far (see [`Counts::table`]). The
    /// lock is held only to copy the counts.
    pub fn table(&self) -> String {
        snapshot(&self.shared).table()
    }
}

/// A copy of the counts, taken under the lock (a poisoned lock still holds
/// valid counts: each update is a few additions).
pub fn snapshot(shared: &SharedCounts) -> Counts {
    match shared.lock() {
        Ok(c) => c.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

impl Engine for Counter {
    fn report_syscall_entry(&mut self, task: &mut Task<'_>, _call: &SyscallEntry) -> Action {
        self.entered.insert(task.tid(), Instant::now());
        Action::Resume
    }

    fn report_syscall_exit(&mut self, task: &mut Task<'_>, call: &SyscallExit) -> Action {
        let now = Instant::now();
        let time = self
            .entered
            .remove(&task.tid())
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let owned;
        let name = match call.entry.name() {
            Some(n) => n,
            None => {
                owned = format!("syscall_{:#x}", call.entry.nr);
                &owned
            }
        };
        let mut counts = match self.shared.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        counts.record(name, call.is_error, time);
        Action::Resume
    }

    fn report_death(&mut self, death: &ExitReport) {
        self.entered.remove(&death.tid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_are_straces_column_names() {
        // strace 6.1's -S takes every -U name (checked by hand against it).
        for (key, by) in [
            ("time", SortBy::Time),
            ("time-percent", SortBy::Time),
            ("total_time", SortBy::Time),
            ("min_time", SortBy::MinTime),
            ("longest", SortBy::MaxTime),
            ("syscall-name", SortBy::Name),
            ("count", SortBy::Calls),
            ("none", SortBy::Nothing),
        ] {
            assert_eq!(SortBy::parse(key), Some(by), "{key}");
        }
        assert_eq!(SortBy::parse("cpu"), None);
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn table_layout_matches_strace() {
        let mut c = Counts::default();
        for _ in 0..30 {
            c.record("mmap", false, us(6));
        }
        c.record("mmap", false, us(19));
        c.stats.get_mut("mmap").unwrap().calls -= 1;
        for i in 0..34 {
            c.record("openat", i < 13, us(4));
        }
        c.record("execve", false, us(138));
        let expected = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 42.07    0.000199           6        30           mmap
 29.18    0.000138         138         1           execve
 28.75    0.000136           4        34        13 openat
------ ----------- ----------- --------- --------- ----------------
100.00    0.000473           7        65        13 total
";
        assert_eq!(c.table(), expected);
    }

    #[test]
    fn seconds_column_and_empty_table() {
        let mut c = Counts::default();
        c.record("wait4", false, Duration::from_millis(12_345_678));
        let table = c.table();
        assert!(table
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("100.00 12345.678000 12345678000         1           wait4"));

        let empty = Counts::default().table();
        assert_eq!(
            empty.lines().last().unwrap(),
            "  0.00    0.000000           0         0           total"
        );
        assert_eq!(empty.lines().count(), 4);
    }

    #[test]
    fn ties_sort_by_calls_then_name() {
        let mut c = Counts::default();
        c.record("b", false, us(5));
        c.record("a", false, us(5));
        c.record("c", false, us(2));
        c.record("c", false, us(3));
        let names: Vec<String> = c
            .table()
            .lines()
            .skip(2)
            .take(3)
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn shared_handle_sees_engine_updates() {
        let (counter, shared) = Counter::new();
        shared.lock().unwrap().record("read", true, us(1));
        assert_eq!(
            snapshot(&counter.counts()).get("read"),
            Some(&SyscallStats {
                calls: 1,
                errors: 1,
                time: us(1),
                min: us(1),
                max: us(1),
            })
        );
        assert!(counter.table().contains(" read\n"));
    }
}
