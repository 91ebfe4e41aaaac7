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
use basin_proto::labels::AsLabel;
use basin_proto::storage::Label;
use std::collections::HashMap;
use std::sync::Arc;

/// A series as stored: its tenant and sorted labels (shared with the selects that answer
/// them, see [`SharedSeries`](basin_proto::node::SharedSeries)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeriesEntry {
    pub(crate) tenant: String,
    pub(crate) labels: Arc<Vec<Label>>,
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
pub(crate) fn encode<L: AsLabel>(tenant: &str, labels: &[L]) -> Vec<u8> {
    let size: usize = labels.iter().map(|l| l.name().len() + l.value().len() + 4).sum();
    let mut b = Vec::with_capacity(tenant.len() + size + 4);
    put_bytes(&mut b, tenant);
    put_uvarint(&mut b, labels.len() as u64);
    for l in labels {
        put_bytes(&mut b, l.name());
        put_bytes(&mut b, l.value());
    }
    b
}

/// Whether `encoded` (see [`encode`]) is this series: one sequential walk, no allocation.
pub(crate) fn is_encoded<L: AsLabel>(encoded: &[u8], tenant: &str, labels: &[L]) -> bool {
    let mut pos = 0;
    is_next(encoded, &mut pos, tenant)
        && get_uvarint(encoded, &mut pos) == Some(labels.len() as u64)
        && labels
            .iter()
            .all(|l| is_next(encoded, &mut pos, l.name()) && is_next(encoded, &mut pos, l.value()))
        && pos == encoded.len()
}

/// Whether the string encoded at `*pos` is `s`; advances past it.
fn is_next(encoded: &[u8], pos: &mut usize, s: &str) -> bool {
    let Some(len) = get_uvarint(encoded, pos) else { return false };
    if len != s.len() as u64 {
        return false;
    }
    let start = *pos;
    *pos = start + s.len();
    encoded.get(start..*pos).is_some_and(|e| short_eq(e, s.as_bytes()))
}

/// Equality of two byte strings of the same length, a word at a time. Label names and values
/// are short, and a steady-state write compares a dozen of them per series: a call into the
/// C library's `memcmp` for each costs more than the comparison.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or_default());
    x.by_ref().zip(y.by_ref()).all(|(p, q)| word(p) == word(q))
        && x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
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
    Ok(SeriesEntry { tenant, labels: Arc::new(labels) })
}

pub(crate) use basin_proto::hash::IdBuild;

/// A series id with the series' encoded form (see [`encode`]), which confirms a hash match in
/// one contiguous comparison instead of chasing every label's `String`.
#[derive(Debug)]
struct Known {
    id: u64,
    encoded: Box<[u8]>,
}

/// In-memory maps between series and ids, found by [`basin_proto::hash::series_hash`] and
/// confirmed by comparing labels, so a write of known series allocates nothing. Filled on
/// write and on read; never evicted (its size is that of the active series set, like every
/// TSDB's head index).
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    /// Series hash → id; a second series with the same hash goes to `overflow`.
    by_hash: HashMap<u64, Known, IdBuild>,
    overflow: Vec<(u64, Known)>,
    by_id: HashMap<u64, Arc<SeriesEntry>, IdBuild>,
}

impl SeriesCache {
    /// The id of the series with this `hash` (its `series_hash`), tenant and labels.
    pub(crate) fn id<L: AsLabel>(&self, hash: u64, tenant: &str, labels: &[L]) -> Option<u64> {
        let is = |k: &&Known| is_encoded(&k.encoded, tenant, labels);
        let first = self.by_hash.get(&hash).filter(is);
        first
            .or_else(|| self.overflow.iter().filter(|(h, _)| *h == hash).map(|(_, k)| k).find(is))
            .map(|k| k.id)
    }

    pub(crate) fn entry(&self, id: u64) -> Option<Arc<SeriesEntry>> {
        self.by_id.get(&id).cloned()
    }

    /// Caches a series known by both id and hash.
    pub(crate) fn insert(&mut self, id: u64, hash: u64, entry: Arc<SeriesEntry>) {
        let known = Known { id, encoded: encode(&entry.tenant, &entry.labels).into() };
        match self.by_hash.get(&hash) {
            Some(other) if other.id != id => self.overflow.push((hash, known)),
            _ => {
                self.by_hash.insert(hash, known);
            }
        }
        self.by_id.insert(id, entry);
    }

    pub(crate) fn insert_entry(&mut self, id: u64, entry: Arc<SeriesEntry>) {
        self.by_id.insert(id, entry);
    }

    /// Forgets a deleted series, both directions of the mapping.
    pub(crate) fn remove(&mut self, id: u64) {
        if let Some(entry) = self.by_id.remove(&id) {
            let hash = basin_proto::hash::series_hash(&entry.tenant, &entry.labels);
            if self.by_hash.get(&hash).is_some_and(|k| k.id == id) {
                self.by_hash.remove(&hash);
            }
            self.overflow.retain(|(_, k)| k.id != id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word-wise equality agrees with slice equality for every length and differing byte.
    #[test]
    fn short_eq_matches_slice_equality() {
        for len in 0..20usize {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(short_eq(&a, &a.clone()));
            assert!(!short_eq(&a, &a[..len.saturating_sub(1)]) || len == 0);
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!short_eq(&a, &b), "len {len}, byte {i}");
            }
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let labels = vec![
            Label { name: "__name__".into(), value: "up".into() },
            Label { name: "a".into(), value: "\0\u{1F600}".into() },
        ];
        let b = encode("t1", &labels);
        let e = decode(1, b"k", &b).unwrap();
        assert_eq!(e, SeriesEntry { tenant: "t1".into(), labels: Arc::new(labels) });
        let err = decode(1, b"k", &b[..b.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("id 0000000000000001"), "{err}");
        let mut long = b.clone();
        long.push(0);
        assert!(decode(1, b"k", &long).is_err());
    }

    #[test]
    fn encoded_form_confirms_only_the_same_series() {
        let l = |pairs: &[(&str, &str)]| -> Vec<Label> {
            pairs.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect()
        };
        let a = l(&[("__name__", "up"), ("job", "a")]);
        let enc = encode("t", &a);
        assert!(is_encoded(&enc, "t", &a));
        assert!(!is_encoded(&enc, "", &a));
        assert!(!is_encoded(&enc, "t", &l(&[("__name__", "up")])));
        assert!(!is_encoded(&enc, "t", &l(&[("__name__", "up"), ("job", "b")])));
        assert!(!is_encoded(&enc, "t", &l(&[("__name__", "up"), ("job", "a"), ("x", "y")])));
        assert!(!is_encoded(&enc[..enc.len() - 1], "t", &a));

        let mut cache = SeriesCache::default();
        let entry = Arc::new(SeriesEntry { tenant: "t".into(), labels: Arc::new(a.clone()) });
        cache.insert(7, 99, entry);
        // A different series with the same hash (a collision) gets its own id.
        let b = l(&[("__name__", "up"), ("job", "b")]);
        cache.insert(
            8,
            99,
            Arc::new(SeriesEntry { tenant: "t".into(), labels: Arc::new(b.clone()) }),
        );
        assert_eq!(cache.id(99, "t", &a), Some(7));
        assert_eq!(cache.id(99, "t", &b), Some(8));
        assert_eq!(cache.id(98, "t", &a), None);
        assert_eq!(cache.id(99, "u", &a), None);
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
