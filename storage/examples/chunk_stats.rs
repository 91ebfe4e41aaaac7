//! Bytes per sample of a data directory's chunks, by value encoding: where the disk goes.
//!
//! ```text
//! cargo run --release -p basin-storage --example chunk_stats -- DATA_DIR [--by-metric]
//! ```
//!
//! Opens the database read-only (stop the node, or point it at a copy), decodes every chunk
//! and prints, per value mode (integer, XOR, decimal with `k` digits), the chunks, samples,
//! encoded bytes per sample, and how many of those bytes the timestamps take (the chunk
//! re-encoded with every value 0). With `--by-metric`, rows are metric names instead.

use basin_proto::storage::Sample;
use basin_storage::codec;
use std::collections::BTreeMap;

#[derive(Default)]
struct Totals {
    chunks: usize,
    samples: usize,
    bytes: usize,
    timestamp_bytes: usize,
}

/// Reads a length-prefixed string (one-byte length: names and short values) at `*pos`.
fn take<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = *b.get(*pos)? as usize;
    let s = b.get(*pos + 1..*pos + 1 + len)?;
    *pos += 1 + len;
    Some(s)
}

/// The `__name__` value in a stored series (tenant, label count, then name/value pairs), or
/// `?`.
fn metric_name(b: &[u8]) -> String {
    let mut pos = 0;
    let _tenant = take(b, &mut pos);
    pos += 1; // label count
    while let (Some(name), Some(value)) = (take(b, &mut pos), take(b, &mut pos)) {
        if name == b"__name__" {
            return String::from_utf8_lossy(value).into_owned();
        }
    }
    "?".to_string()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: chunk_stats DATA_DIR [--by-metric]")?;
    let by_metric = std::env::args().any(|a| a == "--by-metric");
    let cfs = ["series", "index", "wal", "chunks"];
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &dir, cfs, false)?;
    let cf = db.cf_handle("chunks").ok_or("no chunks column family")?;
    let series = db.cf_handle("series").ok_or("no series column family")?;
    let mut by_mode: BTreeMap<String, Totals> = BTreeMap::new();
    for kv in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = kv?;
        let samples = codec::decode(&v)?;
        let zeroed: Vec<Sample> =
            samples.iter().map(|s| Sample { timestamp_ms: s.timestamp_ms, value: 0.0 }).collect();
        let mode = if by_metric {
            // Key: day (4) | id (8) | last timestamp (8); the series value holds the name.
            let labels = k.get(4..12).map(|id| db.get_cf(series, id)).transpose()?.flatten();
            metric_name(labels.as_deref().unwrap_or_default())
        } else {
            match (v.get(1), v.get(2)) {
                (Some(1), _) => "integer".to_string(),
                (Some(2), _) => "xor".to_string(),
                (Some(3), Some(k)) => format!("decimal k={k}"),
                _ => "unknown".to_string(),
            }
        };
        let t = by_mode.entry(mode).or_default();
        t.chunks += 1;
        t.samples += samples.len();
        t.bytes += v.len();
        t.timestamp_bytes += codec::encode(&zeroed).len();
    }
    println!(
        "{:<14} {:>8} {:>10} {:>12} {:>14}",
        "mode", "chunks", "samples", "B/sample", "ts B/sample"
    );
    for (mode, t) in by_mode {
        let per = |b: usize| b as f64 / t.samples.max(1) as f64;
        println!(
            "{mode:<14} {:>8} {:>10} {:>12.3} {:>14.3}",
            t.chunks,
            t.samples,
            per(t.bytes),
            per(t.timestamp_bytes)
        );
    }
    Ok(())
}
