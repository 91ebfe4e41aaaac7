//! Series identity: the stored form of a series (tenant + sorted labels) and the in-memory
//! cache that maps it to its id and back.
//!
//! A series' id starts as the configured hash of tenant and labels; when that id already
//! belongs to another series (a hash collision), the next id is probed, and so on. The
//! `series` column family (id → tenant + labels) records which series owns which id, so the
//! assignment survives restarts and is never silently merged.
//!
//! Value layout: `varint(len) tenant varint(n) (varint(len) name varint(len) value)*`.

use crate::error::StorageError;
use basin_proto::storage::Label;
use std::collections::HashMap;
use std::sync::Arc;

/// A series as stored: its tenant and sorted labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeriesEntry {
    pub(crate) tenant: String,
    pub(crate) labels: Vec<Label>,
}

impl SeriesEntry {
    /// The series as Prometheus prints it, for error messages.
    pub(crate) fn display(&self) -> String {
        basin_proto::labels::display(&self.labels)
    }
}

/// Appends an unsigned LEB128 varint.
pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads an unsigned LEB128 varint at `*pos`, advancing it.
pub(crate) fn get_uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_bytes(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn get_string(b: &[u8], pos: &mut usize) -> Option<String> {
    let len = usize::try_from(get_uvarint(b, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    let s = std::str::from_utf8(b.get(*pos..end)?).ok()?.to_string();
    *pos = end;
    Some(s)
}

/// The stored (and cache key) form of a series.
pub(crate) fn encode(tenant: &str, labels: &[Label]) -> Vec<u8> {
    let size: usize = labels.iter().map(|l| l.name.len() + l.value.len() + 4).sum();
    let mut b = Vec::with_capacity(tenant.len() + size + 4);
    put_bytes(&mut b, tenant);
    put_uvarint(&mut b, labels.len() as u64);
    for l in labels {
        put_bytes(&mut b, &l.name);
        put_bytes(&mut b, &l.value);
    }
    b
}

/// Decodes a stored series; `id` only names it in the error.
pub(crate) fn decode(id: u64, key: &[u8], b: &[u8]) -> Result<SeriesEntry, StorageError> {
    let bad = || StorageError::corrupt(format!("id {id:016x}"), key, "undecodable series labels");
    let mut pos = 0;
    let tenant = get_string(b, &mut pos).ok_or_else(bad)?;
    let n = get_uvarint(b, &mut pos).ok_or_else(bad)?;
    let mut labels = Vec::with_capacity(n.min(256) as usize);
    for _ in 0..n {
        let name = get_string(b, &mut pos).ok_or_else(bad)?;
        let value = get_string(b, &mut pos).ok_or_else(bad)?;
        labels.push(Label { name, value });
    }
    if pos != b.len() {
        return Err(bad());
    }
    Ok(SeriesEntry { tenant, labels })
}

/// In-memory maps between series and ids. Filled on write and on read; never evicted (its
/// size is that of the active series set, like every TSDB's head index).
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    by_key: HashMap<Vec<u8>, u64>,
    by_id: HashMap<u64, Arc<SeriesEntry>>,
}

impl SeriesCache {
    pub(crate) fn id(&self, encoded: &[u8]) -> Option<u64> {
        self.by_key.get(encoded).copied()
    }

    pub(crate) fn entry(&self, id: u64) -> Option<Arc<SeriesEntry>> {
        self.by_id.get(&id).cloned()
    }

    pub(crate) fn insert(&mut self, id: u64, encoded: Vec<u8>, entry: Arc<SeriesEntry>) {
        self.by_key.insert(encoded, id);
        self.by_id.insert(id, entry);
    }

    pub(crate) fn insert_entry(&mut self, id: u64, entry: Arc<SeriesEntry>) {
        self.by_id.insert(id, entry);
    }

    /// Forgets a deleted series, both directions of the mapping (`insert` always adds both,
    /// so the key is found through the entry).
    pub(crate) fn remove(&mut self, id: u64) {
        if let Some(entry) = self.by_id.remove(&id) {
            let key = encode(&entry.tenant, &entry.labels);
            if self.by_key.get(&key) == Some(&id) {
                self.by_key.remove(&key);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let labels = vec![
            Label { name: "__name__".into(), value: "up".into() },
            Label { name: "a".into(), value: "\0\u{1F600}".into() },
        ];
        let b = encode("t1", &labels);
        let e = decode(1, b"k", &b).unwrap();
        assert_eq!(e, SeriesEntry { tenant: "t1".into(), labels });
        let err = decode(1, b"k", &b[..b.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("id 0000000000000001"), "{err}");
        let mut long = b.clone();
        long.push(0);
        assert!(decode(1, b"k", &long).is_err());
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_uvarint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
    }
}
