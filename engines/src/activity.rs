//! What the traced tasks have done: counters the tracer thread keeps as it
//! handles stops, read by [`crate::Tracer::activity`] (for `utrace top`:
//! a rate is the difference of two readings).
//!
//! Each stop costs one add on its task; a syscall-entry stop one more in its
//! process's table. The table is bounded: a program may call any number it
//! likes (`syscall(0xdeadbeef)`), and past [`MAX_DISTINCT`] distinct calls
//! the rest are counted together as one "other" row.

use rustc_hash::FxHashMap;

use crate::core::TaskInfo;
use crate::sys::Tid;

/// Distinct (architecture, number) pairs a process's table keeps apart.
pub const MAX_DISTINCT: usize = 1024;

/// A process's syscall-entry stops by call.
#[derive(Debug, Default)]
pub(crate) struct SyscallCounts {
    by_call: FxHashMap<(u32, u64), u64>,
    /// Calls past [`MAX_DISTINCT`] distinct ones.
    other: u64,
}

impl SyscallCounts {
    /// One entry stop of call `nr` made with audit architecture `arch`.
    pub fn count(&mut self, arch: u32, nr: u64) {
        let full = self.by_call.len() >= MAX_DISTINCT;
        match self.by_call.get_mut(&(arch, nr)) {
            Some(n) => *n += 1,
            None if full => self.other += 1,
            None => {
                self.by_call.insert((arch, nr), 1);
            }
        }
    }

    /// The table's rows as they are (copied on the tracer thread; sorted
    /// and named by [`ProcActivity::keep_busiest`], off it).
    pub fn rows(&self) -> Vec<SyscallCount> {
        let mut rows: Vec<SyscallCount> = self
            .by_call
            .iter()
            .map(|(&(arch, nr), &count)| SyscallCount {
                arch,
                nr,
                name: None,
                count,
                other: false,
            })
            .collect();
        if self.other > 0 {
            rows.push(SyscallCount {
                arch: 0,
                nr: 0,
                name: None,
                count: self.other,
                other: true,
            });
        }
        rows
    }
}

/// One row of a process's syscall table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallCount {
    /// The audit architecture the calls were made with.
    pub arch: u32,
    pub nr: u64,
    /// Its name, for the tracer's own architecture's calls it knows.
    pub name: Option<&'static str>,
    /// Entry stops of it since the process was traced.
    pub count: u64,
    /// This row counts every call past the table's bound, whatever its
    /// number.
    pub other: bool,
}

/// A traced process's syscall table.
#[derive(Clone, Debug)]
pub struct ProcActivity {
    pub pid: Tid,
    /// Its calls, as [`crate::Tracer::activity`] read them (in no order,
    /// unnamed); after [`ProcActivity::keep_busiest`], the busiest first.
    pub syscalls: Vec<SyscallCount>,
}

impl ProcActivity {
    /// Keep the `top` busiest calls (0: all), most frequent first (ties by
    /// number), each with its name where the tracer's architecture knows it.
    pub fn keep_busiest(&mut self, top: usize) {
        let rows = &mut self.syscalls;
        rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.nr.cmp(&b.nr)));
        if top > 0 {
            rows.truncate(top);
        }
        for r in rows
            .iter_mut()
            .filter(|r| !r.other && r.arch == crate::arch::AUDIT_ARCH)
        {
            r.name = crate::event::syscall_name(r.nr);
        }
    }
}

/// The traced tasks with their counters, and each process's busiest calls.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    /// When the counters were read (CLOCK_MONOTONIC, nanoseconds).
    pub monotonic_ns: u64,
    pub tasks: Vec<TaskInfo>,
    pub procs: Vec<ProcActivity>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_bounded_and_sorted() {
        let mut c = SyscallCounts::default();
        for nr in 0..(MAX_DISTINCT as u64 + 10) {
            c.count(crate::arch::AUDIT_ARCH, nr);
        }
        for _ in 0..15 {
            c.count(crate::arch::AUDIT_ARCH, 1);
        }
        let busiest = |n| {
            let mut p = ProcActivity {
                pid: 1,
                syscalls: c.rows(),
            };
            p.keep_busiest(n);
            p.syscalls
        };
        let top = busiest(3);
        assert_eq!(top.len(), 3);
        assert_eq!(
            (top[0].nr, top[0].count, top[0].name),
            (1, 16, Some("write"))
        );
        // The ten calls past the bound are one row.
        assert!(top[1].other && top[1].count == 10, "{top:?}");
        assert_eq!(busiest(0).len(), MAX_DISTINCT + 1);
    }
}
