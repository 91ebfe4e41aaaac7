//! Bytes per sample of a data directory's chunks, by value encoding: where the disk goes.
//!
//! ```text
//! cargo run --release -p basin-storage --example chunk_stats -- DATA_DIR
//! ```
//!
//! Opens the database read-only (stop the node, or point it at a copy), decodes every chunk
//! and prints, per value mode (integer, XOR, decimal with `k` digits), the chunks, samples,
//! encoded bytes per sample, and how many of those bytes the timestamps take (the chunk
//! re-encoded with every value 0).

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: chunk_stats DATA_DIR")?;
    let cfs = ["series", "index", "wal", "chunks"];
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &dir, cfs, false)?;
    let cf = db.cf_handle("chunks").ok_or("no chunks column family")?;
    let mut by_mode: BTreeMap<String, Totals> = BTreeMap::new();
    for kv in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (_, v) = kv?;
        let samples = codec::decode(&v)?;
        let zeroed: Vec<Sample> =
            samples.iter().map(|s| Sample { timestamp_ms: s.timestamp_ms, value: 0.0 }).collect();
        let mode = match (v.get(1), v.get(2)) {
            (Some(1), _) => "integer".to_string(),
            (Some(2), _) => "xor".to_string(),
            (Some(3), Some(k)) => format!("decimal k={k}"),
            _ => "unknown".to_string(),
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
