//! The head's write-ahead log, kept in the `wal` column family (so it rides RocksDB's own
//! WAL and commits atomically with series and postings).
//!
//! Keys:
//!
//! | key | value |
//! |---|---|
//! | `0x00` part (4, BE) | checkpoint: head samples not in chunks at the last checkpoint |
//! | `0x01` seq (8, BE) | one write request's samples, in commit order |
//!
//! A write appends one record; a checkpoint (see `chunks`) writes, in one batch, the
//! chunks it cut, a new checkpoint of the samples left in the head, and the deletion of the
//! old checkpoint and of every record it covers. Opening replays the checkpoint, then the
//! records left, into the head.
//!
//! Record layout (integers LEB128 varints, signed ones zigzag-encoded):
//!
//! ```text
//! version (1) | base ts | series count | per series: id (8, BE) | sample count
//!   | per sample: ts - base | value bits (8, LE)
//! ```

use super::Storage;
use super::options::CF_WAL;
use crate::codec::{unzigzag, zigzag};
use crate::error::StorageError;
use crate::keys;
use crate::series::{get_uvarint, put_uvarint};
use basin_proto::storage::Sample;
use std::sync::atomic::Ordering;
use thiserror::Error;

const VERSION: u8 = 1;
/// Key tag of checkpoint parts.
pub(crate) const CHECKPOINT: u8 = 0x00;
/// Key tag of log records.
pub(crate) const LOG: u8 = 0x01;
/// A checkpoint is split into parts of about this many bytes.
pub(crate) const CHECKPOINT_PART_BYTES: usize = 1 << 20;

/// Key of log record `seq`.
pub(crate) fn log_key(seq: u64) -> [u8; 9] {
    let mut k = [LOG; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Key of checkpoint part `part`.
pub(crate) fn checkpoint_key(part: u32) -> [u8; 5] {
    let mut k = [CHECKPOINT; 5];
    k[1..].copy_from_slice(&part.to_be_bytes());
    k
}

/// The sequence number of a log key.
pub(crate) fn log_seq(key: &[u8]) -> Option<u64> {
    match key {
        [LOG, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Why a WAL record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum WalError {
    /// The record ends early.
    #[error("WAL record truncated while reading {0}")]
    Truncated(&'static str),
    /// Unknown version byte.
    #[error("unknown WAL record version {0}")]
    Version(u8),
}

/// Builds one record series by series.
#[derive(Debug)]
pub(crate) struct RecordBuilder {
    buf: Vec<u8>,
    base: i64,
    series: u64,
    /// Where the series count goes (patched in `finish`).
    count_at: usize,
}

impl RecordBuilder {
    /// A record whose timestamps are stored relative to `base` (any sample's timestamp keeps
    /// the deltas short).
    pub(crate) fn new(base: i64) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.push(VERSION);
        put_uvarint(&mut buf, zigzag(base));
        let count_at = buf.len();
        // Fixed-width placeholder for the series count: a 5-byte varint.
        buf.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
        Self { buf, base, series: 0, count_at }
    }

    /// Appends one series' samples.
    pub(crate) fn series(&mut self, id: u64, samples: &[Sample]) {
        self.buf.extend_from_slice(&id.to_be_bytes());
        put_uvarint(&mut self.buf, samples.len() as u64);
        for s in samples {
            put_uvarint(&mut self.buf, zigzag(s.timestamp_ms.wrapping_sub(self.base)));
            self.buf.extend_from_slice(&s.value.to_bits().to_le_bytes());
        }
        self.series += 1;
    }

    /// Bytes so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Series so far.
    pub(crate) fn is_empty(&self) -> bool {
        self.series == 0
    }

    /// The encoded record.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        // A 5-byte varint holds 35 bits; a record never has 2^32 series (request limits).
        let n = self.series.min(u32::MAX as u64);
        for i in 0..5 {
            let byte = ((n >> (7 * i)) & 0x7f) as u8;
            self.buf[self.count_at + i] = if i < 4 { byte | 0x80 } else { byte };
        }
        self.buf
    }
}

/// Decodes a record, calling `f(id, samples)` per series.
pub(crate) fn decode(b: &[u8], mut f: impl FnMut(u64, Vec<Sample>)) -> Result<(), WalError> {
    let (&version, _) = b.split_first().ok_or(WalError::Truncated("version"))?;
    if version != VERSION {
        return Err(WalError::Version(version));
    }
    let mut pos = 1;
    let base = unzigzag(get_uvarint(b, &mut pos).ok_or(WalError::Truncated("base"))?);
    let n = get_uvarint(b, &mut pos).ok_or(WalError::Truncated("series count"))?;
    for _ in 0..n {
        let id = b
            .get(pos..pos + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or(WalError::Truncated("series id"))?;
        pos += 8;
        let count = get_uvarint(b, &mut pos).ok_or(WalError::Truncated("sample count"))?;
        let mut samples = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let d = get_uvarint(b, &mut pos).ok_or(WalError::Truncated("timestamp"))?;
            let bits: [u8; 8] = b
                .get(pos..pos + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or(WalError::Truncated("value"))?;
            pos += 8;
            samples.push(Sample {
                timestamp_ms: base.wrapping_add(unzigzag(d)),
                value: f64::from_bits(u64::from_le_bytes(bits)),
            });
        }
        f(id, samples);
    }
    Ok(())
}

/// Appends a series' samples to `head`, split by day partition.
pub(crate) fn apply(head: &super::head::Head, id: u64, samples: &[Sample]) {
    for (day, run) in keys::day_runs(samples) {
        head.append((day, id), run.iter().copied());
    }
}

impl Storage {
    /// Rebuilds the head from the checkpoint and the log records after it, and sets the next
    /// sequence number. A record that cannot be decoded is logged with its key and skipped:
    /// one bad record must not keep the node from starting.
    pub(crate) fn replay_wal(&self) -> Result<(), StorageError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_total_order_seek(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_WAL), ro);
        it.seek_to_first();
        let (mut records, mut bytes, mut next_seq) = (0u64, 0u64, 0u64);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if let Some(seq) = log_seq(k) {
                next_seq = next_seq.max(seq.saturating_add(1));
                bytes += v.len() as u64;
            }
            if let Err(e) = decode(v, |id, samples| apply(&self.head, id, &samples)) {
                let e = StorageError::corrupt("(WAL record)", k, e.to_string());
                tracing::error!(error = %e, "skipping undecodable WAL record");
                self.metrics.errors.get_or_create(&[("op", "replay")]).inc();
            }
            records += 1;
            it.next();
        }
        it.status()?;
        self.next_seq.store(next_seq, Ordering::SeqCst);
        self.wal_bytes.store(bytes, Ordering::SeqCst);
        if records > 0 {
            tracing::info!(records, head_samples = self.head.len(), "replayed WAL into the head");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_bit_exact() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let a = vec![
            Sample { timestamp_ms: i64::MIN, value: -0.0 },
            Sample { timestamp_ms: 1_700_000_000_000, value: stale },
            Sample { timestamp_ms: i64::MAX, value: f64::INFINITY },
        ];
        let b = vec![Sample { timestamp_ms: -5, value: 1.5 }];
        let mut r = RecordBuilder::new(1_700_000_000_000);
        assert!(r.is_empty());
        r.series(u64::MAX, &a);
        r.series(7, &b);
        r.series(8, &[]);
        let bytes = r.finish();
        let mut got = Vec::new();
        decode(&bytes, |id, s| got.push((id, s))).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, u64::MAX);
        let bits = |v: &[Sample]| -> Vec<(i64, u64)> {
            v.iter().map(|s| (s.timestamp_ms, s.value.to_bits())).collect()
        };
        assert_eq!(bits(&got[0].1), bits(&a));
        assert_eq!((got[1].0, bits(&got[1].1)), (7, bits(&b)));
        assert!(got[2].1.is_empty());
        assert_eq!(
            decode(&bytes[..bytes.len() - 3], |_, _| {}),
            Err(WalError::Truncated("series id"))
        );
        assert_eq!(decode(&[9], |_, _| {}), Err(WalError::Version(9)));
    }

    #[test]
    fn keys_sort_checkpoint_first_then_by_seq() {
        assert!(checkpoint_key(u32::MAX).as_slice() < log_key(0).as_slice());
        assert!(log_key(255).as_slice() < log_key(256).as_slice());
        assert_eq!(log_seq(&log_key(42)), Some(42));
        assert_eq!(log_seq(&checkpoint_key(1)), None);
    }
}
