//! What `/proc/PID/task/*/schedstat` says of a process, all its threads
//! summed: shared by the tests (`common`) and the gdb bench (each uses
//! only some of it).
#![allow(dead_code)]

/// Field `n` of each thread's schedstat line, summed (0: time on a CPU,
/// ns; 2: timeslices). 0 for a process that is gone.
fn summed(pid: u32, n: usize) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(n)?.parse::<u64>().ok())
        .sum()
}

/// The times `pid`'s threads have been put on a CPU so far: how often
/// the process was woken.
pub fn timeslices(pid: u32) -> u64 {
    summed(pid, 2)
}

/// The CPU time `pid`'s threads have run so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    summed(pid, 0) as f64 / 1e9
}
