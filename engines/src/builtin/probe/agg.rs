//! The maps of a probe: keys of captured values, one aggregate per key,
//! bounded in keys (past the bound an update of a new key is dropped and
//! counted, as bpftrace's map size and systemtap's MAXMAPENTRIES).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::program::Agg;

/// A captured value: an integer, a string or bytes (as the process had
/// them), or a user stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Int(i64),
    Str(Arc<[u8]>),
    Buf(Arc<[u8]>),
    Stack(Arc<Stack>),
}

impl Value {
    /// True for a non-zero integer or a non-empty string, buffer or
    /// stack.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Int(i) => *i != 0,
            Value::Str(s) | Value::Buf(s) => !s.is_empty(),
            Value::Stack(s) => !s.addrs.is_empty(),
        }
    }

    /// The integer (anything else counts as 0).
    pub fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            Value::Str(_) | Value::Buf(_) | Value::Stack(_) => 0,
        }
    }
}

/// What the server found at an address of a user stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The function's symbol, demangled; empty if none was found.
    pub symbol: Arc<str>,
    /// The address's offset in it.
    pub offset: u64,
    /// The file mapped there; empty for anonymous memory.
    pub binary: Arc<str>,
}

/// A user stack: addresses, innermost first, and what each is (found
/// when the probe first saw the stack). Stacks are equal, ordered and
/// hashed by their addresses alone.
#[derive(Clone, Debug, Default)]
pub struct Stack {
    pub addrs: Box<[u64]>,
    pub frames: Box<[Frame]>,
}

impl PartialEq for Stack {
    fn eq(&self, other: &Self) -> bool {
        self.addrs == other.addrs
    }
}

impl Eq for Stack {}

impl std::hash::Hash for Stack {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.addrs.hash(h);
    }
}

impl PartialOrd for Stack {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stack {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.addrs.cmp(&other.addrs)
    }
}

/// One key's aggregate. `count`, `sum`, `min` and `max` are kept for every
/// aggregation (they cost a few adds); `buckets` only for histograms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub count: u64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
    pub buckets: Vec<u64>,
}

impl Cell {
    fn new(agg: Agg) -> Cell {
        Cell {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
            buckets: vec![0; buckets(agg)],
        }
    }

    /// `n` hits of a count.
    fn add_hits(&mut self, n: u64) {
        self.count += n;
    }

    fn add(&mut self, agg: Agg, v: i64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if let Some(i) = bucket(agg, v) {
            if let Some(b) = self.buckets.get_mut(i) {
                *b += 1;
            }
        }
    }

    /// The value bpftrace prints for `agg` (count, sum, min, max, or the
    /// truncated mean).
    pub fn value(&self, agg: Agg) -> i64 {
        match agg {
            Agg::Count => self.count as i64,
            Agg::Sum => self.sum,
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Avg | Agg::Stats => self.sum.checked_div(self.count as i64).unwrap_or(0),
            Agg::Hist | Agg::Lhist { .. } => self.count as i64,
        }
    }

    /// The non-empty buckets: (lowest value, highest value, count).
    pub fn nonzero_buckets(&self, agg: Agg) -> Vec<(i64, i64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                let (lo, hi) = bounds(agg, i);
                (lo, hi, *n)
            })
            .collect()
    }
}

/// Buckets of a log2 histogram: negatives, zero, then [2^k, 2^(k+1)) for
/// k = 0..63.
const LOG2_BUCKETS: usize = 2 + 63;

/// Most buckets of a linear histogram (including below and above).
pub const MAX_LHIST_BUCKETS: i64 = 1002;

fn buckets(agg: Agg) -> usize {
    match agg {
        Agg::Hist => LOG2_BUCKETS,
        Agg::Lhist { min, max, step } => lhist_inner(min, max, step) as usize + 2,
        _ => 0,
    }
}

/// Buckets between `min` and `max` of width `step` (the last may be cut).
pub fn lhist_inner(min: i64, max: i64, step: i64) -> i64 {
    if step <= 0 || max <= min {
        return 0;
    }
    let span = (max as i128) - (min as i128);
    let step = step as i128;
    ((span + step - 1) / step).min(i64::MAX as i128) as i64
}

fn bucket(agg: Agg, v: i64) -> Option<usize> {
    match agg {
        Agg::Hist => Some(if v < 0 {
            0
        } else if v == 0 {
            1
        } else {
            2 + (63 - v.leading_zeros() as usize)
        }),
        Agg::Lhist { min, max, step } => Some(if v < min {
            0
        } else if v >= max {
            lhist_inner(min, max, step) as usize + 1
        } else {
            1 + (((v as i128) - (min as i128)) / step as i128) as usize
        }),
        _ => None,
    }
}

fn bounds(agg: Agg, i: usize) -> (i64, i64) {
    match agg {
        Agg::Hist => match i {
            0 => (i64::MIN, -1),
            1 => (0, 0),
            k => {
                let lo = 1i64 << (k - 2);
                let hi = if k - 2 >= 62 { i64::MAX } else { (lo << 1) - 1 };
                (lo, hi)
            }
        },
        Agg::Lhist { min, max, step } => {
            let inner = lhist_inner(min, max, step) as usize;
            if i == 0 {
                (i64::MIN, min.saturating_sub(1))
            } else if i > inner {
                (max, i64::MAX)
            } else {
                let lo = min.saturating_add((i as i64 - 1).saturating_mul(step));
                (lo, lo.saturating_add(step - 1).min(max - 1))
            }
        }
        _ => (0, 0),
    }
}

/// Bytes a key takes (roughly: its values and their strings).
fn key_size(key: &[Value]) -> usize {
    64 + key
        .iter()
        .map(|v| match v {
            Value::Int(_) => 16,
            Value::Str(s) | Value::Buf(s) => 32 + s.len(),
            // Shared with every key and event of the same stack; counted
            // at its addresses and a frame's symbol for each.
            Value::Stack(s) => 48 + s.addrs.len() * 64,
        })
        .sum::<usize>()
}

/// One map's keys and aggregates.
#[derive(Debug)]
pub struct Map {
    pub agg: Agg,
    pub entries: FxHashMap<Vec<Value>, Cell>,
    /// Updates of a new key refused because the map was full.
    pub keys_dropped: u64,
}

impl Map {
    pub fn new(agg: Agg) -> Map {
        Map {
            agg,
            entries: FxHashMap::default(),
            keys_dropped: 0,
        }
    }

    /// Count `n` hits under `key` (a count map; bounds as
    /// [`Map::update`]).
    pub fn add_hits(&mut self, key: &[Value], n: u64, max_keys: usize, bytes: &mut usize) {
        if let Some(c) = self.entries.get_mut(key) {
            c.add_hits(n);
            return;
        }
        let size = key_size(key);
        if self.entries.len() >= max_keys || *bytes + size > super::MAX_KEY_BYTES {
            self.keys_dropped += 1;
            return;
        }
        *bytes += size;
        let mut c = Cell::new(self.agg);
        c.add_hits(n);
        self.entries.insert(key.to_vec(), c);
    }

    /// Aggregate `v` under `key` (a new key only below `max_keys`, and
    /// while `bytes`, the probe's key bytes, stays below
    /// [`super::MAX_KEY_BYTES`]).
    pub fn update(&mut self, key: &[Value], v: i64, max_keys: usize, bytes: &mut usize) {
        if let Some(c) = self.entries.get_mut(key) {
            c.add(self.agg, v);
            return;
        }
        let size = key_size(key) + 8 * buckets(self.agg);
        if self.entries.len() >= max_keys || *bytes + size > super::MAX_KEY_BYTES {
            self.keys_dropped += 1;
            return;
        }
        *bytes += size;
        let mut c = Cell::new(self.agg);
        c.add(self.agg, v);
        self.entries.insert(key.to_vec(), c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets_are_bpftraces() {
        let mut m = Map::new(Agg::Hist);
        for v in [-5, 0, 1, 2, 3, 4, 7, 8, 1024, 2047] {
            m.update(&[], v, 10, &mut 0);
        }
        let c = &m.entries[&Vec::new()];
        assert_eq!(
            c.nonzero_buckets(Agg::Hist),
            vec![
                (i64::MIN, -1, 1),
                (0, 0, 1),
                (1, 1, 1),
                (2, 3, 2),
                (4, 7, 2),
                (8, 15, 1),
                (1024, 2047, 2)
            ]
        );
        assert_eq!(bounds(Agg::Hist, LOG2_BUCKETS - 1), (1 << 62, i64::MAX));
        let mut big = Map::new(Agg::Hist);
        big.update(&[], i64::MAX, 1, &mut 0);
        assert_eq!(
            big.entries[&Vec::new()].nonzero_buckets(Agg::Hist),
            vec![(1 << 62, i64::MAX, 1)]
        );
    }

    #[test]
    fn linear_buckets_with_both_ends() {
        let agg = Agg::Lhist {
            min: 0,
            max: 100,
            step: 10,
        };
        let mut m = Map::new(agg);
        for v in [-1, 0, 9, 10, 99, 100, 5000] {
            m.update(&[], v, 10, &mut 0);
        }
        assert_eq!(
            m.entries[&Vec::new()].nonzero_buckets(agg),
            vec![
                (i64::MIN, -1, 1),
                (0, 9, 2),
                (10, 19, 1),
                (90, 99, 1),
                (100, i64::MAX, 2)
            ]
        );
    }

    #[test]
    fn keys_are_bounded_and_counted() {
        let mut m = Map::new(Agg::Count);
        for k in 0..10 {
            m.update(&[Value::Int(k)], 0, 4, &mut 0);
        }
        m.update(&[Value::Int(0)], 0, 4, &mut 0);
        assert_eq!(m.entries.len(), 4);
        assert_eq!(m.keys_dropped, 6);
        assert_eq!(m.entries[&vec![Value::Int(0)]].value(Agg::Count), 2);
    }

    #[test]
    fn averages_truncate_like_bpftrace() {
        let mut m = Map::new(Agg::Avg);
        for v in [1, 2, 2] {
            m.update(&[], v, 1, &mut 0);
        }
        let c = &m.entries[&Vec::new()];
        assert_eq!((c.value(Agg::Avg), c.count, c.sum), (1, 3, 5));
    }
}
