//! OpenMetrics for the people who run the daemon (`--metrics-listen`,
//! `GET /metrics`), with the `prometheus-client` crate.
//!
//! Two sources. Counters the server's paths bump as things happen (reports
//! queued and dropped, batches and their ops and latency, decisions and
//! defaulted decisions): each path holds its counter's handle, taken once,
//! so an event costs one relaxed atomic add and never a label lookup. And
//! values read at each scrape ([`Scrape`]): the tracer's stop counts, the
//! traced tasks by syscall mode and how many are held, each uid's
//! connections and engines (from the budgets), and the tracer thread's CPU
//! time.
//!
//! Labels are bounded: engine kind (`sync`, `async`), stop kind, task
//! mode, and uid (only uids that hold a connection or an engine now). No
//! pid, tid or engine id is ever a label.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// One label, as the families here use them.
type Label = [(&'static str, &'static str); 1];

/// The server's counters; see the module's text.
pub struct Metrics {
    registry: Registry,
    reports: Family<Label, Counter>,
    dropped: Family<Label, Counter>,
    batches: Counter,
    batch_ops: Counter,
    batch_seconds: Histogram,
    decisions: Counter,
    defaulted: Counter,
    hold_seconds: Histogram,
    /// What the current scrape read (set for the length of one render).
    scrape: Arc<Mutex<Option<Scrape>>>,
}

/// The report counters of one engine: its kind's (for the metrics) and
/// its own (for `GetActivity`).
#[derive(Clone, Debug, Default)]
pub struct EngineCounters {
    /// Reports a client's queue took.
    sent: Counter,
    /// Reports lost to a full queue or the uid's queued-bytes budget (and
    /// uprobe hits the kernel could not record).
    dropped: Counter,
    /// This engine's alone.
    pub own: Arc<EngineTally>,
}

impl EngineCounters {
    /// A subscriber's queue took a report.
    pub fn sent(&self) {
        self.sent.inc();
        self.own.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` reports were lost.
    pub fn dropped(&self, n: u64) {
        self.dropped.inc_by(n);
        self.own.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// A batch of `ops` ops answered in `took`, for the engine whose counters
/// are `tally` (if it still exists) and for the metrics.
pub fn batch_done(tally: Option<&EngineTally>, ops: usize, took: Duration) {
    get().batch(ops, took);
    if let Some(t) = tally {
        t.batch(ops, took);
    }
}

/// One engine's counters since it was created (relaxed atomics: each is
/// exact, a reading of several need not be of one instant).
#[derive(Debug, Default)]
pub struct EngineTally {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub batches: AtomicU64,
    pub batch_ops: AtomicU64,
    pub batch_ns: AtomicU64,
    pub batch_max_ns: AtomicU64,
}

impl EngineTally {
    /// A batch of `ops` ops answered in `took`.
    pub fn batch(&self, ops: usize, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_ops.fetch_add(ops as u64, Ordering::Relaxed);
        self.batch_ns.fetch_add(ns, Ordering::Relaxed);
        self.batch_max_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

/// Values read when a scrape comes.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// ptrace stops the tracer handled, and of those syscall stops.
    pub stops: u64,
    pub syscall_stops: u64,
    /// Engine callbacks made.
    pub callbacks: u64,
    /// Traced tasks whose syscalls a seccomp filter sorts in the kernel,
    /// and those that stop at every syscall (or at none).
    pub tasks_seccomp: u64,
    pub tasks_ptrace: u64,
    /// Tasks some engine holds stopped.
    pub tasks_held: u64,
    /// Per uid: open connections, engines.
    pub uids: Vec<(u32, usize, usize)>,
    /// CPU time of the tracer thread.
    pub tracer_cpu: Duration,
    /// Uprobe events and rings open.
    pub uprobe_events: u64,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The label of an engine kind: `sync` for a Session engine whose reports
/// wait for decisions, else `async`.
fn kind(sync: bool) -> Label {
    [("engine", if sync { "sync" } else { "async" })]
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("utrace");
        let reports = Family::<Label, Counter>::default();
        registry.register(
            "reports",
            "Reports queued for clients' streams, by engine kind",
            reports.clone(),
        );
        let dropped = Family::<Label, Counter>::default();
        registry.register(
            "reports_dropped",
            "Reports lost to a full queue or a uid's queued-bytes budget, by engine kind",
            dropped.clone(),
        );
        let batches = Counter::default();
        registry.register(
            "batches",
            "Batches run (Batch calls and Session batches)",
            batches.clone(),
        );
        let batch_ops = Counter::default();
        registry.register("batch_ops", "Ops in the batches run", batch_ops.clone());
        // 50 µs to ~3 s: a read of a stopped task to a batch that waited
        // for a running one to stop.
        let batch_seconds = Histogram::new([
            50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
            1.0, 3.0,
        ]);
        registry.register_with_unit(
            "batch_duration",
            "Time from a batch's arrival to its results",
            Unit::Seconds,
            batch_seconds.clone(),
        );
        let decisions = Counter::default();
        registry.register(
            "decisions",
            "Decisions clients sent for held reports",
            decisions.clone(),
        );
        let defaulted = Counter::default();
        registry.register(
            "decisions_defaulted",
            "Held reports whose deadline passed before a decision: their default action applied",
            defaulted.clone(),
        );
        // 100 µs (a client deciding at once) to a minute (a person at a
        // debugger).
        let hold_seconds = Histogram::new([
            100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1.0, 10.0, 60.0,
        ]);
        registry.register_with_unit(
            "hold_duration",
            "How long a sync engine held a task at a report: from the report to its \
             decision, or to its default action at the deadline (HOLD decisions \
             extend it)",
            Unit::Seconds,
            hold_seconds.clone(),
        );
        let scrape = std::sync::Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(ScrapeCollector(std::sync::Arc::clone(&scrape))));
        Metrics {
            registry,
            reports,
            dropped,
            batches,
            batch_ops,
            batch_seconds,
            decisions,
            defaulted,
            hold_seconds,
            scrape,
        }
    }

    /// The counters for an engine's hub.
    pub fn engine(&self, sync: bool) -> EngineCounters {
        let k = kind(sync);
        EngineCounters {
            sent: self.reports.get_or_create(&k).clone(),
            dropped: self.dropped.get_or_create(&k).clone(),
            own: Arc::default(),
        }
    }

    /// A batch of `ops` ops answered in `took`.
    pub fn batch(&self, ops: usize, took: Duration) {
        self.batches.inc();
        self.batch_ops.inc_by(ops as u64);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    /// A client decided a held report.
    pub fn decision(&self) {
        self.decisions.inc();
    }

    /// A held report was let go (decided, or defaulted) after `held`.
    pub fn released(&self, held: Duration) {
        self.hold_seconds.observe(held.as_secs_f64());
    }

    /// `n` held reports reached their deadline.
    pub fn defaulted(&self, n: usize) {
        self.defaulted.inc_by(n as u64);
    }

    /// The exposition (OpenMetrics text), with `now`'s values.
    pub fn render(&self, now: Scrape) -> String {
        let mut slot = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(now);
        drop(slot);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        self.scrape.lock().unwrap_or_else(|p| p.into_inner()).take();
        out
    }
}

/// The scrape-time values, as metric families.
#[derive(Debug)]
struct ScrapeCollector(Arc<Mutex<Option<Scrape>>>);

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Ok(());
        };
        let counter = ConstCounter::new(0u64);
        let gauge = ConstGauge::new(0i64);
        {
            let mut e = encoder.encode_descriptor(
                "stops",
                "ptrace stops the tracer handled, by kind.",
                None,
                counter.metric_type(),
            )?;
            for (k, v) in [
                ("syscall", s.syscall_stops),
                ("other", s.stops.saturating_sub(s.syscall_stops)),
            ] {
                ConstCounter::new(v).encode(e.encode_family(&[("kind", k)])?)?;
            }
        }
        let e = encoder.encode_descriptor(
            "engine_callbacks",
            "Engine callbacks the tracer made (reports to engines).",
            None,
            counter.metric_type(),
        )?;
        ConstCounter::new(s.callbacks).encode(e)?;
        {
            let mut e = encoder.encode_descriptor(
                "traced_tasks",
                "Traced threads, by how their syscalls reach the tracer: seccomp (a kernel-side filter stops only the wanted ones) or ptrace.",
                None,
                gauge.metric_type(),
            )?;
            for (m, v) in [("seccomp", s.tasks_seccomp), ("ptrace", s.tasks_ptrace)] {
                ConstGauge::new(v as i64).encode(e.encode_family(&[("mode", m)])?)?;
            }
        }
        let e = encoder.encode_descriptor(
            "held_tasks",
            "Traced threads some engine holds stopped.",
            None,
            gauge.metric_type(),
        )?;
        ConstGauge::new(s.tasks_held as i64).encode(e)?;
        for (name, help, pick) in [
            (
                "connections",
                "Open client connections, by the client's uid.",
                0usize,
            ),
            ("engines", "Engines, by their owner's uid.", 1),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for (uid, conns, engines) in &s.uids {
                let v = if pick == 0 { *conns } else { *engines };
                let uid = uid.to_string();
                ConstGauge::new(v as i64).encode(e.encode_family(&[("uid", uid.as_str())])?)?;
            }
        }
        let e = encoder.encode_descriptor(
            "tracer_cpu",
            "CPU time of the tracer thread (every ptrace stop is handled there).",
            Some(&Unit::Seconds),
            counter.metric_type(),
        )?;
        ConstCounter::new(s.tracer_cpu.as_secs_f64()).encode(e)?;
        let e = encoder.encode_descriptor(
            "uprobe_events",
            "Kernel uprobe events open (one per breakpoint site and thread).",
            None,
            gauge.metric_type(),
        )?;
        ConstGauge::new(s.uprobe_events as i64).encode(e)?;
        Ok(())
    }
}

/// CPU time of thread `tid` of this process (its schedstat's first field).
pub fn thread_cpu(tid: i32) -> Duration {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}
