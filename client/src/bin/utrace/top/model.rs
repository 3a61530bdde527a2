//! What `utrace top` shows, computed from two readings of `GetActivity`
//! per server: rates are count differences over the server's own clock,
//! so a slow round trip does not bend them. Pure data, no terminal.

use std::collections::HashMap;

use utrace_client::pb;

/// One server's reading.
#[derive(Clone, Debug)]
pub struct Reading {
    /// The server's name as the user gave it (its URI).
    pub node: String,
    pub activity: pb::Activity,
}

/// Which column the task table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Stops,
    Syscalls,
    Pid,
    Comm,
}

impl SortBy {
    /// The next one, for the `s` key.
    pub fn next(self) -> SortBy {
        match self {
            SortBy::Stops => SortBy::Syscalls,
            SortBy::Syscalls => SortBy::Pid,
            SortBy::Pid => SortBy::Comm,
            SortBy::Comm => SortBy::Stops,
        }
    }

    /// As `--sort` spells it, and the header shows it.
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Stops => "stops",
            SortBy::Syscalls => "syscalls",
            SortBy::Pid => "pid",
            SortBy::Comm => "comm",
        }
    }

    /// From `--sort`.
    pub fn parse(s: &str) -> Result<SortBy, String> {
        [SortBy::Stops, SortBy::Syscalls, SortBy::Pid, SortBy::Comm]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("--sort {s}: one of stops, syscalls, pid, comm"))
    }
}

/// How the tables are cut: sort order and a pid filter.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub sort: SortBy,
    /// Show only this process (its threads, its calls, its engines).
    pub pid: Option<u32>,
    /// Show which server each row is from (several servers).
    pub nodes: bool,
}

/// A traced thread.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    pub node: String,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub state: String,
    pub mode: String,
    /// Per second over the last interval; `None` at the first reading.
    pub stops: Option<f64>,
    pub syscalls: Option<f64>,
    pub engines: usize,
    /// Its holders, as `#ENGINE (pid P[, sync])`.
    pub held_by: String,
}

/// A syscall of one process.
#[derive(Clone, Debug, PartialEq)]
pub struct SyscallRow {
    pub node: String,
    pub pid: u32,
    pub name: String,
    pub rate: Option<f64>,
    pub total: u64,
}

/// An engine.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRow {
    pub node: String,
    pub id: u64,
    pub pid: u32,
    pub kind: String,
    pub client_pid: u32,
    pub client_uid: u32,
    pub reports: Option<f64>,
    pub dropped: u64,
    /// Dropped per second over the last interval.
    pub dropping: Option<f64>,
    pub batches: Option<f64>,
    /// Mean and longest batch latency since the engine began, microseconds.
    pub batch_mean_us: Option<f64>,
    pub batch_max_us: Option<f64>,
}

/// Everything on the screen, for one refresh.
#[derive(Clone, Debug, Default)]
pub struct Screen {
    pub tasks: Vec<TaskRow>,
    pub syscalls: Vec<SyscallRow>,
    pub engines: Vec<EngineRow>,
    /// Stops per second of every shown task together.
    pub total_stops: Option<f64>,
}

/// Counts per second between two readings `dt` seconds apart; a count
/// absent before began within the interval.
fn rate(now: u64, before: Option<u64>, dt: Option<f64>) -> Option<f64> {
    let dt = dt.filter(|d| *d > 0.0)?;
    Some(now.saturating_sub(before.unwrap_or(0)) as f64 / dt)
}

/// The last readings, and each server's reading before them (for the
/// rates).
#[derive(Debug, Default)]
pub struct History {
    prev: HashMap<String, pb::Activity>,
    last: Vec<Reading>,
}

impl History {
    /// `readings` (one per server that answered) become the last; the
    /// screen they make against the previous ones.
    pub fn advance(&mut self, readings: Vec<Reading>, opts: &Options) -> Screen {
        for r in std::mem::replace(&mut self.last, readings) {
            self.prev.insert(r.node, r.activity);
        }
        self.screen(opts)
    }

    /// The screen of the last readings, cut by `opts` (after a key
    /// changed them: the rates stay those of the last interval).
    pub fn screen(&self, opts: &Options) -> Screen {
        let mut screen = Screen::default();
        for r in &self.last {
            add_node(&mut screen, r, self.prev.get(&r.node), opts);
        }
        finish(&mut screen, opts);
        screen
    }
}

fn add_node(screen: &mut Screen, r: &Reading, prev: Option<&pb::Activity>, opts: &Options) {
    let a = &r.activity;
    let dt = prev.map(|p| a.monotonic_ns.saturating_sub(p.monotonic_ns) as f64 / 1e9);
    let wanted = |pid: u32| opts.pid.is_none_or(|p| p == pid);
    let prev_tasks: HashMap<u32, &pb::TaskInfo> = prev
        .map(|p| p.tasks.iter().map(|t| (t.tid, t)).collect())
        .unwrap_or_default();
    let mut shown_engines = std::collections::HashSet::new();
    for t in a.tasks.iter().filter(|t| wanted(t.pid)) {
        // A tid reused by another process starts afresh.
        let before = prev_tasks.get(&t.tid).filter(|p| p.pid == t.pid);
        shown_engines.extend(t.engines.iter().copied());
        screen.tasks.push(TaskRow {
            node: r.node.clone(),
            pid: t.pid,
            tid: t.tid,
            comm: t.comm.clone(),
            state: t.state.clone(),
            mode: t.syscall_mode.clone(),
            stops: rate(t.stops, before.map(|p| p.stops), dt),
            syscalls: rate(t.syscall_stops, before.map(|p| p.syscall_stops), dt),
            engines: t.engines.len(),
            held_by: t
                .holders
                .iter()
                .map(|h| {
                    let sync = if h.sync { ", sync" } else { "" };
                    match h.client_pid {
                        0 => format!("#{} (uid {}{sync})", h.engine_id, h.client_uid),
                        pid => format!("#{} (pid {pid}{sync})", h.engine_id),
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    let key = |c: &pb::SyscallCount| (c.arch, c.nr, c.other);
    let prev_calls: HashMap<(u32, (u32, u64, bool)), u64> = prev
        .map(|p| {
            p.processes
                .iter()
                .flat_map(|pa| pa.syscalls.iter().map(|c| ((pa.pid, key(c)), c.count)))
                .collect()
        })
        .unwrap_or_default();
    for pa in a.processes.iter().filter(|p| wanted(p.pid)) {
        for c in &pa.syscalls {
            let name = if c.other {
                "(other)".to_string()
            } else if c.name.is_empty() {
                format!("syscall_{:#x}", c.nr)
            } else {
                c.name.clone()
            };
            screen.syscalls.push(SyscallRow {
                node: r.node.clone(),
                pid: pa.pid,
                name,
                rate: rate(c.count, prev_calls.get(&(pa.pid, key(c))).copied(), dt),
                total: c.count,
            });
        }
    }
    let prev_engines: HashMap<u64, &pb::EngineActivity> = prev
        .map(|p| p.engines.iter().map(|e| (e.engine_id, e)).collect())
        .unwrap_or_default();
    for e in a
        .engines
        .iter()
        .filter(|e| opts.pid.is_none() || shown_engines.contains(&e.engine_id))
    {
        let before = prev_engines.get(&e.engine_id);
        screen.engines.push(EngineRow {
            node: r.node.clone(),
            id: e.engine_id,
            pid: e.pid,
            kind: e.kind.clone(),
            client_pid: e.client_pid,
            client_uid: e.client_uid,
            reports: rate(e.reports_sent, before.map(|b| b.reports_sent), dt),
            dropped: e.reports_dropped,
            dropping: rate(e.reports_dropped, before.map(|b| b.reports_dropped), dt),
            batches: rate(e.batches, before.map(|b| b.batches), dt),
            batch_mean_us: (e.batches > 0).then(|| e.batch_ns as f64 / e.batches as f64 / 1e3),
            batch_max_us: (e.batches > 0).then(|| e.batch_max_ns as f64 / 1e3),
        });
    }
}

/// Sort the tables and sum the total.
fn finish(screen: &mut Screen, opts: &Options) {
    let desc = |a: Option<f64>, b: Option<f64>| {
        b.unwrap_or(-1.0)
            .partial_cmp(&a.unwrap_or(-1.0))
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let by_id = |a: &TaskRow, b: &TaskRow| (&a.node, a.pid, a.tid).cmp(&(&b.node, b.pid, b.tid));
    screen.tasks.sort_by(|a, b| match opts.sort {
        SortBy::Stops => desc(a.stops, b.stops).then_with(|| by_id(a, b)),
        SortBy::Syscalls => desc(a.syscalls, b.syscalls).then_with(|| by_id(a, b)),
        SortBy::Pid => by_id(a, b),
        SortBy::Comm => a.comm.cmp(&b.comm).then_with(|| by_id(a, b)),
    });
    screen.syscalls.sort_by(|a, b| {
        desc(a.rate, b.rate)
            .then(b.total.cmp(&a.total))
            .then_with(|| (&a.node, a.pid, &a.name).cmp(&(&b.node, b.pid, &b.name)))
    });
    screen
        .engines
        .sort_by(|a, b| (&a.node, a.id).cmp(&(&b.node, b.id)));
    screen.total_stops = screen
        .tasks
        .iter()
        .map(|t| t.stops)
        .try_fold(0.0, |sum, r| r.map(|r| sum + r));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pid: u32, tid: u32, stops: u64) -> pb::TaskInfo {
        pb::TaskInfo {
            pid,
            tid,
            stops,
            syscall_stops: stops / 2,
            comm: format!("t{tid}"),
            engines: vec![7],
            ..Default::default()
        }
    }

    fn reading(ns: u64, tasks: Vec<pb::TaskInfo>, calls: u64) -> Reading {
        Reading {
            node: "a".into(),
            activity: pb::Activity {
                monotonic_ns: ns,
                tasks,
                processes: vec![pb::ProcessActivity {
                    pid: 10,
                    syscalls: vec![pb::SyscallCount {
                        nr: 1,
                        name: "write".into(),
                        count: calls,
                        ..Default::default()
                    }],
                }],
                engines: vec![pb::EngineActivity {
                    engine_id: 7,
                    pid: 10,
                    reports_sent: calls,
                    batches: 2,
                    batch_ns: 3000,
                    batch_max_ns: 2500,
                    ..Default::default()
                }],
            },
        }
    }

    #[test]
    fn rates_come_from_the_servers_clock() {
        let mut h = History::default();
        let opts = Options::default();
        let first = h.advance(
            vec![reading(1_000_000_000, vec![task(10, 10, 100)], 50)],
            &opts,
        );
        assert_eq!(first.tasks[0].stops, None, "no rate at the first reading");
        assert_eq!(first.total_stops, None);
        // Half a second later by the server's clock: 100 more stops is 200/s.
        let second = h.advance(
            vec![reading(
                1_500_000_000,
                vec![task(10, 10, 200), task(10, 11, 10)],
                150,
            )],
            &opts,
        );
        assert_eq!(second.tasks[0].tid, 10, "busiest first");
        assert_eq!(second.tasks[0].stops, Some(200.0));
        assert_eq!(second.tasks[0].syscalls, Some(100.0));
        // A thread that was not there before: its count is this interval's.
        assert_eq!(second.tasks[1].stops, Some(20.0));
        assert_eq!(second.total_stops, Some(220.0));
        assert_eq!(second.syscalls[0].rate, Some(200.0));
        assert_eq!(second.engines[0].reports, Some(200.0));
        assert_eq!(second.engines[0].batch_mean_us, Some(1.5));
    }

    #[test]
    fn a_pid_filter_keeps_that_process_and_its_engines() {
        let mut h = History::default();
        let opts = Options {
            pid: Some(99),
            ..Default::default()
        };
        let s = h.advance(vec![reading(1, vec![task(10, 10, 1)], 1)], &opts);
        assert!(s.tasks.is_empty() && s.syscalls.is_empty() && s.engines.is_empty());
    }

    #[test]
    fn sort_keys_round_trip() {
        let mut k = SortBy::default();
        for _ in 0..4 {
            assert_eq!(SortBy::parse(k.name()), Ok(k));
            k = k.next();
        }
        assert_eq!(k, SortBy::Stops);
        assert!(SortBy::parse("cpu").is_err());
    }
}
