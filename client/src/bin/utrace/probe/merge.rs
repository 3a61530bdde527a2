//! One probe's maps from several servers, as one: the same program ran on
//! each, so each map has the same aggregation everywhere, and a key's
//! aggregates combine exactly: counts and sums add, minimums and maximums
//! take the extreme, means are recomputed from the added sums and counts
//! (truncated, as bpftrace), and histograms add bucket by bucket.

use std::collections::BTreeMap;

use prost::Message;
use utrace_client::pb;
use utrace_client::pb::ProbeAggregation as Agg;

/// `snaps` as one snapshot: maps in name order, counters added, the
/// latest time.
pub fn snapshots(snaps: &[&pb::ProbeSnapshot]) -> pb::ProbeSnapshot {
    let mut maps: BTreeMap<&str, pb::ProbeMap> = BTreeMap::new();
    let mut counters = pb::ProbeCounters::default();
    let mut time_ns = 0;
    for s in snaps {
        time_ns = time_ns.max(s.time_ns);
        if let Some(c) = &s.counters {
            counters.hits += c.hits;
            counters.hits_lost += c.hits_lost;
            counters.events_dropped += c.events_dropped;
            counters.read_errors += c.read_errors;
        }
        for m in &s.maps {
            match maps.get_mut(m.name.as_str()) {
                Some(into) => map(into, m),
                None => {
                    maps.insert(&m.name, m.clone());
                }
            }
        }
    }
    pb::ProbeSnapshot {
        time_ns,
        maps: maps.into_values().collect(),
        counters: Some(counters),
        r#final: snaps.iter().all(|s| s.r#final),
    }
}

/// Add `from`'s entries into `into` (the same map of another server).
fn map(into: &mut pb::ProbeMap, from: &pb::ProbeMap) {
    into.keys_dropped += from.keys_dropped;
    let agg = into.agg();
    // Keys compare as their encoding (the same value encodes the same).
    let key = |e: &pb::ProbeEntry| -> Vec<u8> {
        e.key
            .iter()
            .flat_map(|v| v.encode_length_delimited_to_vec())
            .collect()
    };
    let mut at: std::collections::HashMap<Vec<u8>, usize> = into
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (key(e), i))
        .collect();
    for e in &from.entries {
        match at.get(&key(e)) {
            Some(&i) => entry(agg, &mut into.entries[i], e),
            None => {
                at.insert(key(e), into.entries.len());
                into.entries.push(e.clone());
            }
        }
    }
}

/// Combine one key's aggregates.
fn entry(agg: Agg, into: &mut pb::ProbeEntry, from: &pb::ProbeEntry) {
    into.count += from.count;
    into.sum = into.sum.wrapping_add(from.sum);
    match agg {
        Agg::Count | Agg::Sum => into.value = into.value.wrapping_add(from.value),
        Agg::Min => into.value = into.value.min(from.value),
        Agg::Max => into.value = into.value.max(from.value),
        Agg::Avg | Agg::Stats => {
            into.value = if into.count == 0 {
                0
            } else {
                into.sum / into.count as i64
            };
        }
        Agg::Hist | Agg::Lhist => {
            let mut buckets: BTreeMap<(i64, i64), u64> = BTreeMap::new();
            for b in into.buckets.iter().chain(&from.buckets) {
                *buckets.entry((b.low, b.high)).or_default() += b.count;
            }
            into.buckets = buckets
                .into_iter()
                .map(|((low, high), count)| pb::HistBucket { low, high, count })
                .collect();
        }
        Agg::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> pb::ProbeValue {
        pb::ProbeValue {
            value: Some(pb::probe_value::Value::Int(i)),
        }
    }

    fn snap(maps: Vec<pb::ProbeMap>, hits: u64) -> pb::ProbeSnapshot {
        pb::ProbeSnapshot {
            time_ns: hits,
            maps,
            counters: Some(pb::ProbeCounters {
                hits,
                ..Default::default()
            }),
            r#final: true,
        }
    }

    fn one(name: &str, agg: Agg, k: i64, value: i64, count: u64, sum: i64) -> pb::ProbeMap {
        pb::ProbeMap {
            name: name.into(),
            agg: agg as i32,
            entries: vec![pb::ProbeEntry {
                key: vec![int(k)],
                value,
                count,
                sum,
                buckets: Vec::new(),
            }],
            keys_dropped: 0,
        }
    }

    #[test]
    fn aggregates_combine_exactly() {
        let a = snap(
            vec![
                one("@c", Agg::Count, 1, 5, 5, 0),
                one("@min", Agg::Min, 1, 3, 2, 7),
                one("@avg", Agg::Avg, 1, 2, 2, 4),
            ],
            10,
        );
        let b = snap(
            vec![
                one("@c", Agg::Count, 1, 7, 7, 0),
                one("@c", Agg::Count, 2, 1, 1, 0).clone(),
                one("@min", Agg::Min, 1, -4, 1, -4),
                one("@avg", Agg::Avg, 1, 10, 1, 10),
            ],
            20,
        );
        let m = snapshots(&[&a, &b]);
        assert_eq!(m.counters.as_ref().map(|c| c.hits), Some(30));
        let names: Vec<&str> = m.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["@avg", "@c", "@min"], "name order");
        let c = &m.maps[1];
        assert_eq!(c.entries.len(), 2);
        assert_eq!((c.entries[0].value, c.entries[0].count), (12, 12));
        assert_eq!(m.maps[2].entries[0].value, -4);
        // (4 + 10) / 3, truncated.
        assert_eq!(m.maps[0].entries[0].value, 4);
    }

    #[test]
    fn histograms_add_bucket_by_bucket() {
        let h = |buckets: &[(i64, i64, u64)]| pb::ProbeMap {
            name: "@h".into(),
            agg: Agg::Hist as i32,
            entries: vec![pb::ProbeEntry {
                key: Vec::new(),
                count: buckets.iter().map(|b| b.2).sum(),
                buckets: buckets
                    .iter()
                    .map(|&(low, high, count)| pb::HistBucket { low, high, count })
                    .collect(),
                ..Default::default()
            }],
            keys_dropped: 1,
        };
        let a = snap(vec![h(&[(0, 0, 2), (4, 7, 1)])], 3);
        let b = snap(vec![h(&[(1, 1, 5), (4, 7, 2)])], 7);
        let m = snapshots(&[&a, &b]);
        let e = &m.maps[0].entries[0];
        let got: Vec<(i64, i64, u64)> =
            e.buckets.iter().map(|b| (b.low, b.high, b.count)).collect();
        assert_eq!(got, [(0, 0, 2), (1, 1, 5), (4, 7, 3)]);
        assert_eq!(e.count, 10);
        assert_eq!(m.maps[0].keys_dropped, 2);
    }
}
