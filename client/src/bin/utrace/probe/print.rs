//! bpftrace's output, from the server's snapshots and events: the text
//! format of bpftrace 0.17 (`src/output.cpp`: maps sorted by value,
//! power-of-two and linear histograms with their 52-column bars, `stats`
//! lines, the blank lines between maps) and its `-f json` lines.
//!
//! `printf` is bpftrace's too: the format is cut after each conversion
//! and each piece goes through C's `printf` with its one value (so `%d`
//! prints the low 32 bits, `%%` is `%` before the last conversion and
//! stays `%%` after it, as in bpftrace).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use utrace_client::pb;
use utrace_client::pb::probe_value::Value;
use utrace_client::pb::ProbeAggregation as Agg;

use super::parse::MapDecl;

/// How `utrace probe` prints: bpftrace's text, or its JSON lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// bpftrace's text output.
    Text,
    /// One JSON object per line, as `bpftrace -f json`.
    Json,
}

/// What a printf argument is, for checking a format against its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// An integer.
    Int,
    /// A string.
    Str,
    /// A buffer (buf()).
    Buf,
    /// A user stack (ustack).
    Stack,
}

/// Width of a histogram's bar, as bpftrace.
const BAR_WIDTH: usize = 52;

/// Prints bpftrace's messages in one format; knows the program's maps
/// (their aggregation, keys and `lhist` bounds).
pub struct Printer<'a> {
    /// Text or JSON.
    pub format: OutputFormat,
    /// The program's maps.
    pub maps: &'a BTreeMap<String, MapDecl>,
}

impl Printer<'_> {
    /// bpftrace's first line: `Attaching N probes...`.
    pub fn attached(&self, probes: usize) -> String {
        match self.format {
            OutputFormat::Text if probes == 1 => "Attaching 1 probe...\n".to_string(),
            OutputFormat::Text => format!("Attaching {probes} probes...\n"),
            OutputFormat::Json => {
                format!("{{\"type\": \"attached_probes\", \"data\": {{\"probes\": {probes}}}}}\n")
            }
        }
    }

    /// A printf's output (already formatted).
    pub fn printf(&self, text: &str) -> String {
        self.message("printf", text)
    }

    /// A time()'s output (already formatted).
    pub fn time(&self, text: &str) -> String {
        self.message("time", text)
    }

    fn message(&self, kind: &str, text: &str) -> String {
        match self.format {
            OutputFormat::Text => text.to_string(),
            OutputFormat::Json => {
                format!(
                    "{{\"type\": \"{kind}\", \"data\": \"{}\"}}\n",
                    json_escape(text)
                )
            }
        }
    }

    /// Events the server could not send.
    pub fn lost(&self, n: u64) -> String {
        match self.format {
            OutputFormat::Text => format!("Lost {n} events\n"),
            OutputFormat::Json => {
                format!("{{\"type\": \"lost_events\", \"data\": {{\"events\": {n}}}}}\n")
            }
        }
    }

    /// What bpftrace prints at exit: two empty lines, then every map of
    /// the program in name order (a map that `cleared` names, or that the
    /// snapshot does not have, prints as an empty one).
    pub fn all_maps(&self, snap: Option<&pb::ProbeSnapshot>, cleared: &BTreeSet<String>) -> String {
        let mut names: BTreeSet<&str> = self.maps.keys().map(String::as_str).collect();
        if let Some(s) = snap {
            names.extend(s.maps.iter().map(|m| m.name.as_str()));
        }
        let mut out = String::from("\n\n");
        for name in names {
            let m = if cleared.contains(name) {
                None
            } else {
                find_map(snap, name)
            };
            out.push_str(&self.map(name, m, 0, 0));
        }
        out
    }

    /// `print(@name, top, div)`: the map as the snapshot has it (None: no
    /// key). `top` keeps the largest entries only (0: all); `div` divides
    /// the values (0: 1).
    pub fn map(&self, name: &str, map: Option<&pb::ProbeMap>, top: u32, div: u32) -> String {
        let decl = self.maps.get(name);
        let agg = match (decl, map) {
            (Some(d), _) => d.agg,
            (None, Some(m)) => m.agg(),
            (None, None) => Agg::Count,
        };
        let keyed = match decl {
            Some(d) => d.keys > 0,
            None => map.is_some_and(|m| m.entries.iter().any(|e| !e.key.is_empty())),
        };
        let entries: &[pb::ProbeEntry] = map.map_or(&[], |m| &m.entries);
        let view = MapView {
            name,
            keyed,
            top: top as usize,
            div: div.max(1),
        };
        match agg {
            Agg::Avg | Agg::Stats => self.stats_map(&view, agg, entries),
            Agg::Hist => self.hist_map(&view, entries, None),
            Agg::Lhist => match decl.and_then(|d| d.lhist) {
                Some(l) => self.hist_map(&view, entries, Some(l)),
                None => self.hist_map(&view, entries, None),
            },
            _ => self.scalar_map(&view, agg, entries),
        }
    }

    /// count, sum, min, max: sorted by value.
    fn scalar_map(&self, v: &MapView, agg: Agg, entries: &[pb::ProbeEntry]) -> String {
        let mut rows: Vec<(&[pb::ProbeValue], i64)> =
            entries.iter().map(|e| (&e.key[..], e.value)).collect();
        if rows.is_empty() && !v.keyed && agg == Agg::Count {
            // bpftrace keeps a count() without a key in an array: it is
            // always there, and clear() zeroes it.
            rows.push((&[], 0));
        }
        rows.sort_by(|a, b| cmp_keys(a.0, b.0));
        rows.sort_by_key(|r| r.1);
        let rows = v.last(&rows);
        let div = i64::from(v.div);
        match self.format {
            OutputFormat::Text => {
                let elems: Vec<String> = rows
                    .iter()
                    .map(|(k, val)| format!("{}{}: {}", v.name, text_key(k), val / div))
                    .collect();
                elems.join("\n") + "\n"
            }
            OutputFormat::Json => {
                let vals: Vec<String> = rows
                    .iter()
                    .map(|(k, val)| json_keyval(k, &(val / div).to_string()))
                    .collect();
                v.json_line("map", &vals)
            }
        }
    }

    /// avg and stats: sorted by the average.
    fn stats_map(&self, v: &MapView, agg: Agg, entries: &[pb::ProbeEntry]) -> String {
        // (key, count, total, average)
        let mut rows: Vec<(&[pb::ProbeValue], i64, i64, i64)> = entries
            .iter()
            .map(|e| {
                let count = e.count as i64;
                let avg = if count != 0 {
                    e.sum.wrapping_div(count)
                } else {
                    0
                };
                (&e.key[..], count, e.sum, avg)
            })
            .collect();
        rows.sort_by(|a, b| cmp_keys(a.0, b.0));
        rows.sort_by_key(|r| r.3);
        // bpftrace applies print()'s top to avg maps only.
        let rows = if agg == Agg::Avg {
            v.last(&rows)
        } else {
            &rows
        };
        let div = i64::from(v.div);
        match self.format {
            OutputFormat::Text => {
                let elems: Vec<String> = rows
                    .iter()
                    .map(|&(k, count, total, avg)| {
                        let val = if agg == Agg::Stats {
                            format!("count {count}, average {avg}, total {total}")
                        } else {
                            (avg / div).to_string()
                        };
                        format!("{}{}: {val}", v.name, text_key(k))
                    })
                    .collect();
                elems.join("\n") + "\n\n"
            }
            OutputFormat::Json => {
                let vals: Vec<String> = rows
                    .iter()
                    .map(|&(k, count, total, avg)| {
                        let val = if agg == Agg::Stats {
                            format!(
                                "{{\"count\": {count}, \"average\": {avg}, \"total\": {total}}}"
                            )
                        } else {
                            (avg / div).to_string()
                        };
                        json_keyval(k, &val)
                    })
                    .collect();
                v.json_line("stats", &vals)
            }
        }
    }

    /// hist and lhist (`lhist` given): sorted by their total count.
    fn hist_map(&self, v: &MapView, entries: &[pb::ProbeEntry], lhist: Option<Lhist>) -> String {
        let mut rows: Vec<(&[pb::ProbeValue], Vec<u64>, u64)> = entries
            .iter()
            .map(|e| {
                let slots = match lhist {
                    Some(l) => lhist_slots(&e.buckets, l),
                    None => hist_slots(&e.buckets),
                };
                let total = slots.iter().fold(0u64, |a, &c| a.saturating_add(c));
                (&e.key[..], slots, total)
            })
            .collect();
        rows.sort_by(|a, b| cmp_keys(a.0, b.0));
        rows.sort_by_key(|r| r.2);
        let rows = v.last(&rows);
        match self.format {
            OutputFormat::Text => {
                let elems: Vec<String> = rows
                    .iter()
                    .map(|(k, slots, _)| {
                        let body = match lhist {
                            Some(l) => lhist_text(slots, l),
                            None => hist_text(slots, v.div),
                        };
                        format!("{}{}: \n{body}", v.name, text_key(k))
                    })
                    .collect();
                elems.join("\n") + "\n"
            }
            OutputFormat::Json => {
                let vals: Vec<String> = rows
                    .iter()
                    .map(|(k, slots, _)| {
                        let body = match lhist {
                            Some(l) => lhist_json(slots, l),
                            None => hist_json(slots, v.div),
                        };
                        json_keyval(k, &body)
                    })
                    .collect();
                v.json_line("hist", &vals)
            }
        }
    }
}

/// A map being printed.
struct MapView<'a> {
    name: &'a str,
    keyed: bool,
    top: usize,
    div: u32,
}

impl MapView<'_> {
    /// The last `top` rows (all with 0), as print(@m, top).
    fn last<'r, T>(&self, rows: &'r [T]) -> &'r [T] {
        if self.top > 0 && rows.len() > self.top {
            &rows[rows.len() - self.top..]
        } else {
            rows
        }
    }

    /// `{"type": TYPE, "data": {"@name": …}}`, or nothing for an empty map.
    fn json_line(&self, kind: &str, vals: &[String]) -> String {
        if vals.is_empty() {
            return String::new();
        }
        let body = if self.keyed {
            format!("{{{}}}", vals.join(", "))
        } else {
            vals.join(", ")
        };
        format!(
            "{{\"type\": \"{kind}\", \"data\": {{\"{}\": {body}}}}}\n",
            json_escape(self.name)
        )
    }
}

/// A linear histogram's bounds, as lhist(value, min, max, step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lhist {
    /// The first bucket's start.
    pub min: i64,
    /// The last bucket's end.
    pub max: i64,
    /// The buckets' width (> 0).
    pub step: i64,
}

impl Lhist {
    /// Buckets between min and max, as bpftrace counts them.
    fn inner(self) -> usize {
        usize::try_from((self.max - self.min) / self.step.max(1)).unwrap_or(0)
    }
}

fn find_map<'s>(snap: Option<&'s pb::ProbeSnapshot>, name: &str) -> Option<&'s pb::ProbeMap> {
    snap?.maps.iter().find(|m| m.name == name)
}

/// The map named `name` in `snap`, for print().
pub fn snapshot_map<'s>(
    snap: Option<&'s pb::ProbeSnapshot>,
    name: &str,
) -> Option<&'s pb::ProbeMap> {
    find_map(snap, name)
}

/// The log2 histogram's 65 slots, as bpftrace keeps them: negative
/// values, 0, 1, then [2^k, 2^(k+1)) for k = 1..63.
fn hist_slots(buckets: &[pb::HistBucket]) -> Vec<u64> {
    let mut slots = vec![0u64; 65];
    for b in buckets {
        let i = if b.low < 0 {
            0
        } else if b.low == 0 {
            1
        } else {
            2 + (63 - b.low.leading_zeros() as usize)
        };
        slots[i.min(64)] = slots[i.min(64)].saturating_add(b.count);
    }
    slots
}

/// A linear histogram's slots: below min, the buckets, max and above.
fn lhist_slots(buckets: &[pb::HistBucket], l: Lhist) -> Vec<u64> {
    let n = l.inner();
    let mut slots = vec![0u64; n + 2];
    for b in buckets {
        let i = if b.high < l.min {
            0
        } else if b.low >= l.max {
            n + 1
        } else {
            let i = (b.low.max(l.min) - l.min) / l.step.max(1);
            (1 + usize::try_from(i).unwrap_or(0)).min(n + 1)
        };
        slots[i] = slots[i].saturating_add(b.count);
    }
    slots
}

/// A power of two's label: 1 << power with K, M, G, T suffixes.
fn hist_index_label(power: usize) -> String {
    let (power, suffix) = match power {
        p if p >= 40 => (p - 40, "T"),
        p if p >= 30 => (p - 30, "G"),
        p if p >= 20 => (p - 20, "M"),
        p if p >= 10 => (p - 10, "K"),
        p => (p, ""),
    };
    format!("{}{suffix}", 1u64 << power)
}

/// A linear bucket's bound: with K or M when a multiple of 1024 or 1M.
fn lhist_index_label(n: i64) -> String {
    if n == 0 {
        "0".to_string()
    } else if n % 1_048_576 == 0 {
        format!("{}M", n / 1_048_576)
    } else if n % 1024 == 0 {
        format!("{}K", n / 1024)
    } else {
        n.to_string()
    }
}

/// One histogram row: label, count, bar.
fn hist_row(out: &mut String, header: &str, count: u64, shown: u64, max: u64) {
    let width = if max == 0 {
        0
    } else {
        (count as f32 / max as f32 * BAR_WIDTH as f32) as usize
    };
    let bar = "@".repeat(width.min(BAR_WIDTH));
    let _ = writeln!(out, "{header:<16}{shown:>8} |{bar:<BAR_WIDTH$}|");
}

/// The first and last non-empty slots and the largest count.
fn span(slots: &[u64]) -> Option<(usize, usize, u64)> {
    let first = slots.iter().position(|&c| c > 0)?;
    let last = slots.iter().rposition(|&c| c > 0)?;
    let max = slots.iter().copied().max().unwrap_or(0);
    Some((first, last, max))
}

fn hist_text(slots: &[u64], div: u32) -> String {
    let Some((first, last, max)) = span(slots) else {
        return String::new();
    };
    let mut out = String::new();
    for (i, &count) in slots.iter().enumerate().take(last + 1).skip(first) {
        let header = match i {
            0 => "(..., 0)".to_string(),
            1 => "[0]".to_string(),
            2 => "[1]".to_string(),
            _ => format!("[{}, {})", hist_index_label(i - 2), hist_index_label(i - 1)),
        };
        hist_row(&mut out, &header, count, count / u64::from(div), max);
    }
    out
}

fn lhist_text(slots: &[u64], l: Lhist) -> String {
    let Some((first, last, max)) = span(slots) else {
        return String::new();
    };
    let n = slots.len() - 2;
    let mut out = String::new();
    for (i, &count) in slots.iter().enumerate().take(last + 1).skip(first) {
        let header = if i == 0 {
            format!("(..., {})", lhist_index_label(l.min))
        } else if i == n + 1 {
            format!("[{}, ...)", lhist_index_label(l.max))
        } else {
            let lo = (i as i64 - 1) * l.step + l.min;
            format!(
                "[{}, {})",
                lhist_index_label(lo),
                lhist_index_label(lo + l.step)
            )
        };
        hist_row(&mut out, &header, count, count, max);
    }
    out
}

fn hist_json(slots: &[u64], div: u32) -> String {
    let Some((first, last, _)) = span(slots) else {
        return "[]".to_string();
    };
    let items: Vec<String> = (first..=last)
        .map(|i| {
            let bounds = match i {
                0 => "\"max\": -1, ".to_string(),
                1 => "\"min\": 0, \"max\": 0, ".to_string(),
                2 => "\"min\": 1, \"max\": 1, ".to_string(),
                _ => {
                    let low = 1i128 << (i - 2);
                    format!("\"min\": {low}, \"max\": {}, ", (low << 1) - 1)
                }
            };
            format!("{{{bounds}\"count\": {}}}", slots[i] / u64::from(div))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn lhist_json(slots: &[u64], l: Lhist) -> String {
    let Some((first, last, _)) = span(slots) else {
        return "[]".to_string();
    };
    let n = slots.len() - 2;
    let items: Vec<String> = (first..=last)
        .map(|i| {
            let bounds = if i == 0 {
                format!("\"max\": {}, ", l.min - 1)
            } else if i == n + 1 {
                format!("\"min\": {}, ", l.max)
            } else {
                let low = (i as i64 - 1) * l.step + l.min;
                format!("\"min\": {low}, \"max\": {}, ", low + l.step - 1)
            };
            format!("{{{bounds}\"count\": {}}}", slots[i])
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Keys in a stable order (ties of the sort by value keep it).
fn cmp_keys(a: &[pb::ProbeValue], b: &[pb::ProbeValue]) -> std::cmp::Ordering {
    fn rank(v: &pb::ProbeValue) -> (u8, i64, &[u8], Vec<u64>) {
        match &v.value {
            Some(Value::Int(i)) => (0, *i, b"", Vec::new()),
            Some(Value::Str(s)) => (1, 0, s.as_bytes(), Vec::new()),
            Some(Value::Buf(b)) => (2, 0, b, Vec::new()),
            Some(Value::Stack(s)) => (3, 0, b"", s.frames.iter().map(|f| f.address).collect()),
            None => (4, 0, b"", Vec::new()),
        }
    }
    a.iter().map(rank).cmp(b.iter().map(rank))
}

/// A value as bpftrace prints it in a map's key (a stack's frames on
/// lines of their own, indented by four).
fn value_text(v: &pb::ProbeValue) -> String {
    match &v.value {
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Buf(b)) => buf_text(b, BufStyle::Escaped),
        Some(Value::Stack(s)) => stack_text(s, 4),
        None => String::new(),
    }
}

/// How bpftrace prints a buffer: `%r` (printable bytes as they are,
/// others `\xNN`), `%rx` (every byte `\xNN`), `%rh` (hex bytes with
/// spaces between).
#[derive(Clone, Copy)]
enum BufStyle {
    Escaped,
    Hex,
    Spaced,
}

fn buf_text(b: &[u8], style: BufStyle) -> String {
    let mut out = String::with_capacity(b.len() * 2);
    for (i, &c) in b.iter().enumerate() {
        match style {
            BufStyle::Escaped if (0x20..0x7f).contains(&c) => out.push(char::from(c)),
            BufStyle::Escaped | BufStyle::Hex => {
                let _ = write!(out, "\\x{c:02x}");
            }
            BufStyle::Spaced => {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{c:02x}");
            }
        }
    }
    out
}

/// A user stack as bpftrace prints one: a newline, then each frame
/// (`symbol+offset`, or the address in hex where no symbol is known)
/// indented by `indent` spaces on a line of its own.
pub fn stack_text(s: &pb::ProbeStackValue, indent: usize) -> String {
    let mut out = String::from("\n");
    for f in &s.frames {
        let _ = if f.symbol.is_empty() {
            writeln!(out, "{:indent$}0x{:x}", "", f.address)
        } else {
            writeln!(out, "{:indent$}{}+{}", "", f.symbol, f.offset)
        };
    }
    out
}

/// `[k1, k2]` (strings unquoted), or nothing without a key.
fn text_key(key: &[pb::ProbeValue]) -> String {
    if key.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = key.iter().map(value_text).collect();
    format!("[{}]", parts.join(", "))
}

/// `"k1,k2": value`, or the value alone without a key.
fn json_keyval(key: &[pb::ProbeValue], val: &str) -> String {
    if key.is_empty() {
        return val.to_string();
    }
    let parts: Vec<String> = key.iter().map(value_text).collect();
    format!("\"{}\": {val}", json_escape(&parts.join(",")))
}

/// bpftrace's JSON string escapes.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The conversions bpftrace's printf accepts (after `%`, an optional `-`,
/// a width and a precision): what they take.
fn conversion(s: &[u8]) -> Option<(usize, Option<ArgKind>)> {
    match s.first()? {
        b's' => return Some((1, Some(ArgKind::Str))),
        b'r' => {
            let n = if matches!(s.get(1), Some(b'x' | b'h')) {
                2
            } else {
                1
            };
            return Some((n, None));
        }
        b'c' => return Some((1, Some(ArgKind::Int))),
        _ => {}
    }
    let len = if s.starts_with(b"hh") || s.starts_with(b"ll") {
        2
    } else if matches!(s[0], b'h' | b'l' | b'j' | b'z' | b't') {
        1
    } else {
        0
    };
    match s.get(len)? {
        b'd' | b'u' | b'o' | b'x' | b'X' | b'p' => Some((len + 1, Some(ArgKind::Int))),
        _ => None,
    }
}

/// One conversion of a format: where it ends, its text past the width
/// and precision (e.g. `lu`), and what it takes (None: a buffer, `%r`).
struct Spec<'a> {
    end: usize,
    token: &'a str,
    kind: Option<ArgKind>,
}

/// The conversions, as bpftrace's regular expression
/// `%-?[0-9]*(\.[0-9]+)?(TYPE)` finds them, left to right.
fn specs(fmt: &str) -> Vec<Spec<'_>> {
    let b = fmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if b.get(j) == Some(&b'-') {
            j += 1;
        }
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
            j += 1;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        match conversion(&b[j..]) {
            Some((n, kind)) => {
                out.push(Spec {
                    end: j + n,
                    token: &fmt[j..j + n],
                    kind,
                });
                i = j + n;
            }
            None => i += 1,
        }
    }
    out
}

/// Check printf's arguments against its format, with bpftrace's messages.
pub fn check_format(fmt: &str, args: &[ArgKind]) -> Result<(), String> {
    let specs = specs(fmt);
    if args.len() < specs.len() {
        return Err(format!(
            "printf: Not enough arguments for format string ({} supplied, {} expected)",
            args.len(),
            specs.len()
        ));
    }
    if args.len() > specs.len() {
        return Err(format!(
            "printf: Too many arguments for format string ({} supplied, {} expected)",
            args.len(),
            specs.len()
        ));
    }
    let name = |k: ArgKind| match k {
        ArgKind::Int => "integer",
        ArgKind::Str => "string",
        ArgKind::Buf => "buffer",
        ArgKind::Stack => "ustack",
    };
    for (s, &a) in specs.iter().zip(args) {
        match s.kind {
            None if a != ArgKind::Buf => {
                return Err(format!(
                    "printf: %{} specifier expects a value of type buffer ({} supplied)",
                    s.token,
                    name(a)
                ))
            }
            None => {}
            // A stack prints with %s, as bpftrace's.
            Some(ArgKind::Str) if a == ArgKind::Stack => {}
            Some(k) if k != a => {
                return Err(format!(
                    "printf: %{} specifier expects a value of type {} ({} supplied)",
                    s.token,
                    name(k),
                    name(a)
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// bpftrace's printf: the format cut after each conversion, each piece
/// through C's printf with its value; what follows the last conversion
/// is copied as it is.
pub fn sprintf(fmt: &str, args: &[pb::ProbeValue]) -> String {
    let mut out = String::new();
    let mut last = 0;
    for (spec, arg) in specs(fmt).iter().zip(args) {
        c_printf(&mut out, &fmt[last..spec.end], arg);
        last = spec.end;
    }
    out.push_str(&fmt[last..]);
    out
}

/// C's printf of `piece` with one argument (the first conversion takes
/// it; `%%` is `%`).
fn c_printf(out: &mut String, piece: &str, arg: &pb::ProbeValue) {
    let b = piece.as_bytes();
    let mut used = false;
    let mut i = 0;
    let mut text_from = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&piece[text_from..i]);
        let start = i;
        i += 1;
        if b.get(i) == Some(&b'%') {
            out.push('%');
            i += 1;
            text_from = i;
            continue;
        }
        let mut spec = CSpec::default();
        while let Some(&f) = b.get(i) {
            match f {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            spec.width = spec
                .width
                .saturating_mul(10)
                .saturating_add(usize::from(d - b'0'));
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let mut p = 0usize;
            while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                p = p.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                i += 1;
            }
            spec.precision = Some(p);
        }
        let len_start = i;
        while matches!(
            b.get(i),
            Some(b'h' | b'l' | b'j' | b'z' | b't' | b'L' | b'q')
        ) {
            i += 1;
        }
        spec.bits = match &piece[len_start..i] {
            "" => 32,
            "hh" => 8,
            "h" => 16,
            _ => 64,
        };
        let Some(&conv) = b.get(i) else {
            out.push_str(&piece[start..]);
            text_from = b.len();
            break;
        };
        i += 1;
        if conv == b'r' {
            // bpftrace's buffer conversions: %r, %rx, %rh.
            let style = match b.get(i) {
                Some(b'x') => {
                    i += 1;
                    BufStyle::Hex
                }
                Some(b'h') => {
                    i += 1;
                    BufStyle::Spaced
                }
                _ => BufStyle::Escaped,
            };
            text_from = i;
            if !used {
                used = true;
                if let Some(Value::Buf(buf)) = &arg.value {
                    out.push_str(&buf_text(buf, style));
                }
            }
            continue;
        }
        text_from = i;
        if !b"diuoxXcsp".contains(&conv) {
            out.push_str(&piece[start..i]);
            continue;
        }
        if used {
            continue;
        }
        used = true;
        spec.conv = conv;
        spec.render(out, arg);
    }
    out.push_str(&piece[text_from.min(b.len())..]);
}

/// A C conversion specification.
#[derive(Default)]
struct CSpec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    /// The length modifier's size: 8, 16, 32 (none) or 64.
    bits: u32,
    conv: u8,
}

impl CSpec {
    fn render(&self, out: &mut String, arg: &pb::ProbeValue) {
        let int = match &arg.value {
            Some(Value::Int(i)) => *i,
            _ => 0,
        };
        match self.conv {
            b's' => {
                let s = match &arg.value {
                    Some(Value::Str(s)) => s.clone(),
                    Some(Value::Int(i)) => i.to_string(),
                    Some(Value::Buf(b)) => buf_text(b, BufStyle::Escaped),
                    // printf's stacks are indented by eight.
                    Some(Value::Stack(s)) => stack_text(s, 8),
                    None => String::new(),
                };
                let s = match self.precision {
                    Some(p) if p < s.len() => {
                        let mut end = p;
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s[..end].to_string()
                    }
                    _ => s,
                };
                self.pad(out, "", &s, false);
            }
            b'c' => {
                let c = char::from(int as u8);
                self.pad(out, "", &c.to_string(), false);
            }
            b'p' => {
                if int == 0 {
                    self.pad(out, "", "(nil)", false);
                } else {
                    self.pad(out, "0x", &format!("{:x}", int as u64), true);
                }
            }
            b'd' | b'i' => {
                let v: i64 = match self.bits {
                    8 => i64::from(int as i8),
                    16 => i64::from(int as i16),
                    32 => i64::from(int as i32),
                    _ => int,
                };
                let sign = if v < 0 {
                    "-"
                } else if self.plus {
                    "+"
                } else if self.space {
                    " "
                } else {
                    ""
                };
                let digits = self.digits(v.unsigned_abs().to_string(), v == 0);
                self.pad(out, sign, &digits, true);
            }
            conv => {
                let v: u64 = match self.bits {
                    8 => u64::from(int as u8),
                    16 => u64::from(int as u16),
                    32 => u64::from(int as u32),
                    _ => int as u64,
                };
                let (prefix, digits) = match conv {
                    b'o' => {
                        let mut d = self.digits(format!("{v:o}"), v == 0);
                        if self.alt && !d.starts_with('0') {
                            d.insert(0, '0');
                        }
                        ("", d)
                    }
                    b'x' => {
                        let p = if self.alt && v != 0 { "0x" } else { "" };
                        (p, self.digits(format!("{v:x}"), v == 0))
                    }
                    b'X' => {
                        let p = if self.alt && v != 0 { "0X" } else { "" };
                        (p, self.digits(format!("{v:X}"), v == 0))
                    }
                    _ => ("", self.digits(v.to_string(), v == 0)),
                };
                self.pad(out, prefix, &digits, true);
            }
        }
    }

    /// An integer's digits with the precision's minimum (`%.0d` of 0 is
    /// nothing).
    fn digits(&self, d: String, zero: bool) -> String {
        match self.precision {
            Some(0) if zero => String::new(),
            Some(p) if p > d.len() => "0".repeat(p - d.len()) + &d,
            _ => d,
        }
    }

    /// Pad to the width: spaces, or zeros after the sign for a number
    /// with `0` and no precision or `-`.
    fn pad(&self, out: &mut String, prefix: &str, body: &str, numeric: bool) {
        let len = prefix.len() + body.len();
        let fill = self.width.saturating_sub(len);
        if self.left {
            out.push_str(prefix);
            out.push_str(body);
            out.extend(std::iter::repeat_n(' ', fill));
        } else if self.zero && numeric && self.precision.is_none() {
            out.push_str(prefix);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(body);
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(prefix);
            out.push_str(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> pb::ProbeValue {
        pb::ProbeValue {
            value: Some(Value::Int(i)),
        }
    }

    fn s(v: &str) -> pb::ProbeValue {
        pb::ProbeValue {
            value: Some(Value::Str(v.into())),
        }
    }

    fn bucket(low: i64, high: i64, count: u64) -> pb::HistBucket {
        pb::HistBucket { low, high, count }
    }

    fn decl(agg: Agg, keys: usize, lhist: Option<Lhist>) -> MapDecl {
        MapDecl {
            agg,
            keys,
            lhist,
            key_kinds: Vec::new(),
        }
    }

    fn entry(key: Vec<pb::ProbeValue>, value: i64) -> pb::ProbeEntry {
        pb::ProbeEntry {
            key,
            value,
            count: value as u64,
            ..Default::default()
        }
    }

    fn map(name: &str, agg: Agg, entries: Vec<pb::ProbeEntry>) -> pb::ProbeMap {
        pb::ProbeMap {
            name: name.into(),
            agg: agg as i32,
            entries,
            keys_dropped: 0,
        }
    }

    // Expected strings below are bpftrace v0.17.0's output of the same
    // values (`bpftrace -e 'BEGIN { @h = hist(…); … exit(); }'`).

    #[test]
    fn hist_like_bpftrace() {
        let maps = BTreeMap::from([("@h".to_string(), decl(Agg::Hist, 0, None))]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        // hist(-3), hist(0), hist(1), hist(1000), hist(3000000)
        let h = pb::ProbeMap {
            name: "@h".into(),
            agg: Agg::Hist as i32,
            entries: vec![pb::ProbeEntry {
                buckets: vec![
                    bucket(i64::MIN, -1, 1),
                    bucket(0, 0, 1),
                    bucket(1, 1, 1),
                    bucket(512, 1023, 1),
                    bucket(2097152, 4194303, 1),
                ],
                count: 5,
                ..Default::default()
            }],
            keys_dropped: 0,
        };
        let bar = "@".repeat(52);
        let empty = " ".repeat(52);
        let mut want = String::from("@h: \n");
        want += &format!("(..., 0)               1 |{bar}|\n");
        want += &format!("[0]                    1 |{bar}|\n");
        want += &format!("[1]                    1 |{bar}|\n");
        for l in [
            "[2, 4)",
            "[4, 8)",
            "[8, 16)",
            "[16, 32)",
            "[32, 64)",
            "[64, 128)",
            "[128, 256)",
            "[256, 512)",
        ] {
            want += &format!("{l:<16}       0 |{empty}|\n");
        }
        want += &format!("[512, 1K)              1 |{bar}|\n");
        for l in [
            "[1K, 2K)",
            "[2K, 4K)",
            "[4K, 8K)",
            "[8K, 16K)",
            "[16K, 32K)",
            "[32K, 64K)",
            "[64K, 128K)",
            "[128K, 256K)",
            "[256K, 512K)",
            "[512K, 1M)",
            "[1M, 2M)",
        ] {
            want += &format!("{l:<16}       0 |{empty}|\n");
        }
        want += &format!("[2M, 4M)               1 |{bar}|\n");
        want += "\n";
        assert_eq!(p.map("@h", Some(&h), 0, 0), want);
    }

    #[test]
    fn hist_bars_scale_to_the_largest_bucket() {
        // From `uprobe:libc:malloc { @sz = hist(arg0); }` on ls.
        let maps = BTreeMap::from([("@sz".to_string(), decl(Agg::Hist, 0, None))]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        let h = map(
            "@sz",
            Agg::Hist,
            vec![pb::ProbeEntry {
                buckets: vec![
                    bucket(2, 3, 2),
                    bucket(4, 7, 58),
                    bucket(8, 15, 18),
                    bucket(32, 63, 92),
                    bucket(16384, 32767, 1),
                ],
                ..Default::default()
            }],
        );
        let got = p.map("@sz", Some(&h), 0, 0);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "@sz: ");
        assert_eq!(
            lines[1],
            "[2, 4)                 2 |@                                                   |"
        );
        assert_eq!(
            lines[2],
            "[4, 8)                58 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                    |"
        );
        assert_eq!(
            lines[3],
            "[8, 16)               18 |@@@@@@@@@@                                          |"
        );
        assert_eq!(
            lines[4],
            "[16, 32)               0 |                                                    |"
        );
        assert_eq!(
            lines[5],
            "[32, 64)              92 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "[16K, 32K)             1 |                                                    |"
        );
        assert_eq!(lines.last().copied(), Some(""));
        assert!(got.ends_with("|\n\n"));
    }

    #[test]
    fn lhist_like_bpftrace() {
        let l = Lhist {
            min: 0,
            max: 100,
            step: 10,
        };
        let maps = BTreeMap::from([("@l".to_string(), decl(Agg::Lhist, 0, Some(l)))]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        // lhist(-5, 0, 100, 10), lhist(150, …), lhist(15, …)
        let m = map(
            "@l",
            Agg::Lhist,
            vec![pb::ProbeEntry {
                buckets: vec![
                    bucket(i64::MIN, -1, 1),
                    bucket(10, 19, 1),
                    bucket(100, i64::MAX, 1),
                ],
                ..Default::default()
            }],
        );
        let bar = "@".repeat(52);
        let empty = " ".repeat(52);
        let mut want = String::from("@l: \n");
        want += &format!("(..., 0)               1 |{bar}|\n");
        want += &format!("[0, 10)                0 |{empty}|\n");
        want += &format!("[10, 20)               1 |{bar}|\n");
        for lo in (20..100).step_by(10) {
            want += &format!("{:<16}       0 |{empty}|\n", format!("[{lo}, {})", lo + 10));
        }
        want += &format!("[100, ...)             1 |{bar}|\n\n");
        assert_eq!(p.map("@l", Some(&m), 0, 0), want);

        let one = map(
            "@l",
            Agg::Lhist,
            vec![pb::ProbeEntry {
                buckets: vec![bucket(10, 19, 1)],
                ..Default::default()
            }],
        );
        assert_eq!(
            p.map("@l", Some(&one), 0, 0),
            format!("@l: \n[10, 20)               1 |{bar}|\n\n")
        );
        let k = Lhist {
            min: 0,
            max: 4096,
            step: 1024,
        };
        assert_eq!(
            lhist_text(&lhist_slots(&[bucket(1024, 2047, 3)], k), k),
            format!("[1K, 2K)               3 |{bar}|\n")
        );
    }

    #[test]
    fn counts_sorted_by_value() {
        let maps = BTreeMap::from([
            ("@".to_string(), decl(Agg::Count, 1, None)),
            ("@c".to_string(), decl(Agg::Count, 0, None)),
            ("@t".to_string(), decl(Agg::Sum, 2, None)),
        ]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        let at = map(
            "@",
            Agg::Count,
            vec![entry(vec![s("ls")], 238), entry(vec![s("bpftrace")], 4)],
        );
        assert_eq!(p.map("@", Some(&at), 0, 0), "@[bpftrace]: 4\n@[ls]: 238\n");
        assert_eq!(p.map("@", Some(&at), 1, 0), "@[ls]: 238\n");
        assert_eq!(p.map("@", Some(&at), 0, 10), "@[bpftrace]: 0\n@[ls]: 23\n");
        let c = map("@c", Agg::Count, vec![entry(vec![], 3000)]);
        assert_eq!(p.map("@c", Some(&c), 0, 0), "@c: 3000\n");
        // An empty count() without a key is 0; with keys, an empty line.
        assert_eq!(p.map("@c", None, 0, 0), "@c: 0\n");
        assert_eq!(p.map("@", None, 0, 0), "\n");
        let t = map(
            "@t",
            Agg::Sum,
            vec![
                entry(vec![s("ls"), int(21589)], 77230),
                entry(vec![s("bpftrace"), int(21587)], 44),
            ],
        );
        assert_eq!(
            p.map("@t", Some(&t), 0, 0),
            "@t[bpftrace, 21587]: 44\n@t[ls, 21589]: 77230\n"
        );
    }

    #[test]
    fn stats_and_avg_like_bpftrace() {
        let maps = BTreeMap::from([
            ("@s".to_string(), decl(Agg::Stats, 0, None)),
            ("@sk".to_string(), decl(Agg::Stats, 1, None)),
            ("@a".to_string(), decl(Agg::Avg, 0, None)),
        ]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        let st = |key, count, sum| pb::ProbeEntry {
            key,
            count,
            sum,
            ..Default::default()
        };
        let s1 = map("@s", Agg::Stats, vec![st(vec![], 2, 13)]);
        assert_eq!(
            p.map("@s", Some(&s1), 0, 0),
            "@s: count 2, average 6, total 13\n\n"
        );
        let sk = map(
            "@sk",
            Agg::Stats,
            vec![st(vec![s("a")], 1, 3), st(vec![s("b")], 1, 1)],
        );
        assert_eq!(
            p.map("@sk", Some(&sk), 0, 0),
            "@sk[b]: count 1, average 1, total 1\n@sk[a]: count 1, average 3, total 3\n\n"
        );
        let a = map("@a", Agg::Avg, vec![st(vec![], 3, 22)]);
        assert_eq!(p.map("@a", Some(&a), 0, 0), "@a: 7\n\n");
        assert_eq!(p.map("@s", None, 0, 0), "\n\n");
    }

    #[test]
    fn exit_prints_every_map_in_name_order() {
        let maps = BTreeMap::from([
            ("@".to_string(), decl(Agg::Count, 1, None)),
            ("@o".to_string(), decl(Agg::Count, 1, None)),
            ("@sz".to_string(), decl(Agg::Hist, 0, None)),
            ("@t".to_string(), decl(Agg::Sum, 2, None)),
        ]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        let snap = pb::ProbeSnapshot {
            maps: vec![
                map("@", Agg::Count, vec![entry(vec![s("ls")], 238)]),
                map(
                    "@sz",
                    Agg::Hist,
                    vec![pb::ProbeEntry {
                        buckets: vec![bucket(2, 3, 1)],
                        ..Default::default()
                    }],
                ),
                map("@t", Agg::Sum, vec![entry(vec![s("ls"), int(7)], 77)]),
            ],
            r#final: true,
            ..Default::default()
        };
        let cleared = BTreeSet::from(["@sz".to_string()]);
        // As bpftrace: END cleared @sz, @o was never updated.
        assert_eq!(
            p.all_maps(Some(&snap), &cleared),
            "\n\n@[ls]: 238\n\n\n@t[ls, 7]: 77\n"
        );
    }

    #[test]
    fn json_like_bpftrace() {
        let l = Lhist {
            min: 0,
            max: 100,
            step: 10,
        };
        let maps = BTreeMap::from([
            ("@".to_string(), decl(Agg::Count, 2, None)),
            ("@c".to_string(), decl(Agg::Count, 0, None)),
            ("@h".to_string(), decl(Agg::Hist, 0, None)),
            ("@hk".to_string(), decl(Agg::Hist, 1, None)),
            ("@k".to_string(), decl(Agg::Count, 1, None)),
            ("@l".to_string(), decl(Agg::Lhist, 0, Some(l))),
            ("@s".to_string(), decl(Agg::Stats, 0, None)),
            ("@sk".to_string(), decl(Agg::Stats, 1, None)),
            ("@a".to_string(), decl(Agg::Avg, 0, None)),
        ]);
        let p = Printer {
            format: OutputFormat::Json,
            maps: &maps,
        };
        assert_eq!(
            p.attached(1),
            "{\"type\": \"attached_probes\", \"data\": {\"probes\": 1}}\n"
        );
        assert_eq!(
            p.printf("hi    42|ab    |ff\n"),
            "{\"type\": \"printf\", \"data\": \"hi    42|ab    |ff\\n\"}\n"
        );
        let m = map("@", Agg::Count, vec![entry(vec![int(1), s("x")], 1)]);
        assert_eq!(
            p.map("@", Some(&m), 0, 0),
            "{\"type\": \"map\", \"data\": {\"@\": {\"1,x\": 1}}}\n"
        );
        let c = map("@c", Agg::Count, vec![entry(vec![], 1)]);
        assert_eq!(
            p.map("@c", Some(&c), 0, 0),
            "{\"type\": \"map\", \"data\": {\"@c\": 1}}\n"
        );
        let k = map(
            "@k",
            Agg::Count,
            vec![entry(vec![s("b")], 2), entry(vec![s("a")], 1)],
        );
        assert_eq!(
            p.map("@k", Some(&k), 0, 0),
            "{\"type\": \"map\", \"data\": {\"@k\": {\"a\": 1, \"b\": 2}}}\n"
        );
        let h = map(
            "@h",
            Agg::Hist,
            vec![pb::ProbeEntry {
                buckets: vec![bucket(i64::MIN, -1, 1), bucket(0, 0, 1), bucket(4, 7, 2)],
                ..Default::default()
            }],
        );
        assert_eq!(
            p.map("@h", Some(&h), 0, 0),
            "{\"type\": \"hist\", \"data\": {\"@h\": [{\"max\": -1, \"count\": 1}, \
             {\"min\": 0, \"max\": 0, \"count\": 1}, {\"min\": 1, \"max\": 1, \"count\": 0}, \
             {\"min\": 2, \"max\": 3, \"count\": 0}, {\"min\": 4, \"max\": 7, \"count\": 2}]}}\n"
        );
        let hk = map(
            "@hk",
            Agg::Hist,
            vec![
                pb::ProbeEntry {
                    key: vec![int(2)],
                    buckets: vec![bucket(8, 15, 1)],
                    ..Default::default()
                },
                pb::ProbeEntry {
                    key: vec![int(1)],
                    buckets: vec![bucket(4, 7, 1)],
                    ..Default::default()
                },
            ],
        );
        assert_eq!(
            p.map("@hk", Some(&hk), 0, 0),
            "{\"type\": \"hist\", \"data\": {\"@hk\": {\"1\": [{\"min\": 4, \"max\": 7, \"count\": 1}], \
             \"2\": [{\"min\": 8, \"max\": 15, \"count\": 1}]}}}\n"
        );
        let lm = map(
            "@l",
            Agg::Lhist,
            vec![pb::ProbeEntry {
                buckets: vec![
                    bucket(i64::MIN, -1, 1),
                    bucket(10, 19, 1),
                    bucket(100, i64::MAX, 1),
                ],
                ..Default::default()
            }],
        );
        let got = p.map("@l", Some(&lm), 0, 0);
        assert!(got.starts_with(
            "{\"type\": \"hist\", \"data\": {\"@l\": [{\"max\": -1, \"count\": 1}, \
             {\"min\": 0, \"max\": 9, \"count\": 0}, {\"min\": 10, \"max\": 19, \"count\": 1}, "
        ));
        assert!(got.ends_with(
            "{\"min\": 90, \"max\": 99, \"count\": 0}, {\"min\": 100, \"count\": 1}]}}\n"
        ));
        let st = |key, count, sum| pb::ProbeEntry {
            key,
            count,
            sum,
            ..Default::default()
        };
        let sm = map("@s", Agg::Stats, vec![st(vec![], 2, 13)]);
        assert_eq!(
            p.map("@s", Some(&sm), 0, 0),
            "{\"type\": \"stats\", \"data\": {\"@s\": {\"count\": 2, \"average\": 6, \"total\": 13}}}\n"
        );
        let sk = map("@sk", Agg::Stats, vec![st(vec![s("a")], 1, 3)]);
        assert_eq!(
            p.map("@sk", Some(&sk), 0, 0),
            "{\"type\": \"stats\", \"data\": {\"@sk\": {\"a\": {\"count\": 1, \"average\": 3, \"total\": 3}}}}\n"
        );
        let a = map("@a", Agg::Avg, vec![st(vec![], 1, 7)]);
        assert_eq!(
            p.map("@a", Some(&a), 0, 0),
            "{\"type\": \"stats\", \"data\": {\"@a\": 7}}\n"
        );
        // Empty maps print nothing in JSON, but for a count() without key.
        assert_eq!(p.map("@k", None, 0, 0), "");
        assert_eq!(p.map("@h", None, 0, 0), "");
        assert_eq!(
            p.map("@c", None, 0, 0),
            "{\"type\": \"map\", \"data\": {\"@c\": 0}}\n"
        );
        assert_eq!(
            p.lost(3),
            "{\"type\": \"lost_events\", \"data\": {\"events\": 3}}\n"
        );
        assert_eq!(json_escape("a\"b\\\u{1}"), "a\\\"b\\\\\\u0001");
    }

    #[test]
    fn printf_like_bpftrace() {
        // bpftrace 0.17: printf("[%d] [%x] [%lx] [%c] [%5s] [%-5d] [%05d] [%.2s] [%u]
        // [%ld] [%p] [%X] [%o] [%hhd]\n", 5000000000, -1, -1, 65, "ab", 3, 42,
        // "abcdef", -1, -1, 4096, 255, 8, 300)
        let fmt =
            "[%d] [%x] [%lx] [%c] [%5s] [%-5d] [%05d] [%.2s] [%u] [%ld] [%p] [%X] [%o] [%hhd]\n";
        let args = [
            int(5000000000),
            int(-1),
            int(-1),
            int(65),
            s("ab"),
            int(3),
            int(42),
            s("abcdef"),
            int(-1),
            int(-1),
            int(4096),
            int(255),
            int(8),
            int(300),
        ];
        assert_eq!(
            sprintf(fmt, &args),
            "[705032704] [ffffffff] [ffffffffffffffff] [A] [   ab] [3    ] [00042] [ab] \
             [4294967295] [-1] [0x1000] [FF] [10] [44]\n"
        );
        assert_eq!(
            sprintf("hi %5d|%-6s|%x\n", &[int(42), s("ab"), int(255)]),
            "hi    42|ab    |ff\n"
        );
        // `%%` is C's before the last conversion, and copied after it.
        assert_eq!(sprintf("a%%b\n", &[]), "a%%b\n");
        assert_eq!(sprintf("%d%%\n", &[int(5)]), "5%%\n");
        assert_eq!(sprintf("%% %d|\n", &[int(5)]), "% 5|\n");
        assert_eq!(
            sprintf("%-10s|%lu|%llu", &[s("x"), int(7), int(-1)]),
            "x         |7|18446744073709551615"
        );
        assert_eq!(sprintf("%5.3d|%p", &[int(7), int(0)]), "  007|(nil)");
    }

    #[test]
    fn printf_checks_like_bpftrace() {
        use ArgKind::*;
        assert_eq!(check_format("%d %s\n", &[Int, Str]), Ok(()));
        assert_eq!(
            check_format("%-10s %5lu %llx %c %%\n", &[Str, Int, Int, Int]),
            Ok(())
        );
        assert_eq!(
            check_format("%d\n", &[]),
            Err("printf: Not enough arguments for format string (0 supplied, 1 expected)".into())
        );
        assert_eq!(
            check_format("x\n", &[Int]),
            Err("printf: Too many arguments for format string (1 supplied, 0 expected)".into())
        );
        assert_eq!(
            check_format("%s\n", &[Int]),
            Err("printf: %s specifier expects a value of type string (integer supplied)".into())
        );
        assert_eq!(
            check_format("%-5lu\n", &[Str]),
            Err("printf: %lu specifier expects a value of type integer (string supplied)".into())
        );
        assert_eq!(
            check_format("%s %r %rx %rh\n", &[Stack, Buf, Buf, Buf]),
            Ok(())
        );
        assert_eq!(
            check_format("%r\n", &[Str]),
            Err("printf: %r specifier expects a value of type buffer (string supplied)".into())
        );
    }

    #[test]
    fn stacks_and_buffers_like_bpftrace() {
        // bpftrace 0.17 on probe_target: printf("%s|%r|%rx|%rh\n", ustack(2),
        // buf(arg1, 6), buf(arg1, 2), buf(arg1, 2)), and @[ustack(2), buf(arg1, 6)].
        let frame = |address, symbol: &str, offset| pb::ProbeFrame {
            address,
            symbol: symbol.into(),
            offset,
            binary: String::new(),
        };
        let stack = pb::ProbeValue {
            value: Some(Value::Stack(pb::ProbeStackValue {
                frames: vec![frame(0x1000, "probed_fn", 0), frame(0x2a2a, "", 0)],
            })),
        };
        let buf = |b: &[u8]| pb::ProbeValue {
            value: Some(Value::Buf(b.to_vec().into())),
        };
        assert_eq!(
            sprintf(
                "%s|%r|%rx|%rh\n",
                &[stack.clone(), buf(b"alpha\0"), buf(b"al"), buf(b"al")]
            ),
            "\n        probed_fn+0\n        0x2a2a\n|alpha\\x00|\\x61\\x6c|61 6c\n"
        );
        let maps = BTreeMap::from([("@".to_string(), decl(Agg::Count, 2, None))]);
        let p = Printer {
            format: OutputFormat::Text,
            maps: &maps,
        };
        let m = map("@", Agg::Count, vec![entry(vec![stack, buf(b"a\x01")], 3)]);
        assert_eq!(
            p.map("@", Some(&m), 0, 0),
            "@[\n    probed_fn+0\n    0x2a2a\n, a\\x01]: 3\n"
        );
    }
}
