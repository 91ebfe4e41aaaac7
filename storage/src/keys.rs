//! Byte layouts of every RocksDB key, all order-preserving so that range scans come out sorted.
//!
//! - integers are big-endian; signed ones have the sign bit flipped, so negative timestamps
//!   sort before positive ones;
//! - strings are escaped (`0x00` → `0x00 0xff`) and terminated by `0x00 0x01`, which keeps
//!   them prefix-free (no string's encoding is a prefix of another's) and sorted by value;
//! - a day is `timestamp.div_euclid(86_400_000)` clamped to `i32`, 4 bytes.
//!
//! Column families and their keys:
//!
//! | CF | key | value |
//! |---|---|---|
//! | `series` | id (8) | tenant + labels ([`crate::series`]) |
//! | `index` | `0x01` tenant name value id | empty: global postings, for label APIs and long ranges |
//! | `index` | `0x02` day tenant name value id | empty: postings of series with samples that day |
//! | `index` | `0x03` hash id | empty: series by the hash of tenant and labels (lookup on a cache miss) |
//! | `head` | day id ts | f64 bits (8): samples not yet cut into chunks |
//! | `chunks` | day id first_ts | compressed chunk ([`crate::codec`]) |
//!
//! Every series also has a posting with empty name and value (`ALL`), the set of all series.
//! Day-first head and chunk keys make a day a contiguous key range, so retention is one
//! `DeleteRange` per column family.

/// Milliseconds in a day partition.
pub(crate) const DAY_MS: i64 = 86_400_000;
/// Tag of global postings in the index CF.
pub(crate) const GLOBAL: u8 = 0x01;
/// Tag of per-day postings in the index CF.
pub(crate) const DAILY: u8 = 0x02;
/// Tag of the series lookup (hash → ids) in the index CF.
pub(crate) const LOOKUP: u8 = 0x03;

/// Lookup key of series `id` whose tenant and labels hash to `hash`.
pub(crate) fn lookup_key(hash: u64, id: u64) -> [u8; 17] {
    let mut k = [LOOKUP; 17];
    k[1..9].copy_from_slice(&hash.to_be_bytes());
    k[9..].copy_from_slice(&id.to_be_bytes());
    k
}
/// Length of a head or chunk key.
pub(crate) const DATA_KEY_LEN: usize = 20;

/// The day partition of a timestamp.
pub(crate) fn day_of(ts: i64) -> i32 {
    ts.div_euclid(DAY_MS).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Splits samples into runs of consecutive samples on the same day partition (one run per
/// series in almost every write).
pub(crate) fn day_runs(
    samples: &[basin_proto::storage::Sample],
) -> impl Iterator<Item = (i32, &[basin_proto::storage::Sample])> {
    let mut rest = samples;
    std::iter::from_fn(move || {
        let day = day_of(rest.first()?.timestamp_ms);
        let n = rest.iter().take_while(|s| day_of(s.timestamp_ms) == day).count();
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some((day, run))
    })
}

/// First millisecond of a day (clamped days extend to the ends of the `i64` range).
pub(crate) fn day_start(day: i32) -> i64 {
    if day == i32::MIN { i64::MIN } else { day as i64 * DAY_MS }
}

/// Last millisecond of a day.
pub(crate) fn day_end(day: i32) -> i64 {
    if day == i32::MAX { i64::MAX } else { day as i64 * DAY_MS + DAY_MS - 1 }
}

pub(crate) fn get_i64(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

pub(crate) fn put_day(buf: &mut Vec<u8>, d: i32) {
    buf.extend_from_slice(&((d as u32) ^ (1 << 31)).to_be_bytes());
}

pub(crate) fn get_day(b: &[u8]) -> Option<i32> {
    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some((u32::from_be_bytes(a) ^ (1 << 31)) as i32)
}

pub(crate) fn get_u64(b: &[u8]) -> Option<u64> {
    let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(a))
}

/// Appends an escaped, terminated string.
pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == 0 {
            buf.extend_from_slice(&[0, 0xff]);
        } else {
            buf.push(b);
        }
    }
    buf.extend_from_slice(&[0, 1]);
}

/// Reads an escaped string from the front of `b`; returns it and the rest.
pub(crate) fn take_str(b: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match *b.get(i)? {
            0 => match *b.get(i + 1)? {
                0xff => out.push(0),
                1 => return Some((String::from_utf8(out).ok()?, &b[i + 2..])),
                _ => return None,
            },
            c => {
                out.push(c);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
}

/// Length of the escaped string at the front of `b` including its terminator.
pub(crate) fn skip_str(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        if *b.get(i)? == 0 {
            match *b.get(i + 1)? {
                1 => return Some(i + 2),
                0xff => i += 2,
                _ => return None,
            }
        } else {
            i += 1;
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when the prefix
/// is all `0xff` (then there is no upper bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key just past every key that starts with `prefix` followed by one escaped string
/// (whose encoding ends in `0x00 0x01`): `prefix_with_string[..len-1] + 0x02`.
pub(crate) fn past_str(prefix_with_string: &[u8]) -> Vec<u8> {
    let mut k = prefix_with_string.to_vec();
    if let Some(last) = k.last_mut() {
        *last = 2;
    }
    k
}

/// The scope of postings: which tenant, and all time or one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope<'a> {
    /// Every series of the tenant ever written.
    Global(&'a str),
    /// Series of the tenant with samples on that day.
    Day(&'a str, i32),
}

impl Scope<'_> {
    /// `tag [day] tenant`: the prefix of every posting in the scope.
    pub(crate) fn prefix(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        match *self {
            Scope::Global(t) => {
                k.push(GLOBAL);
                put_str(&mut k, t);
            }
            Scope::Day(t, d) => {
                k.push(DAILY);
                put_day(&mut k, d);
                put_str(&mut k, t);
            }
        }
        k
    }
}

/// A posting key: `scope name value id`.
pub(crate) fn posting(scope_prefix: &[u8], name: &str, value: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope_prefix.len() + name.len() + value.len() + 12);
    k.extend_from_slice(scope_prefix);
    put_str(&mut k, name);
    put_str(&mut k, value);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// A head or chunk key: `day id ts`.
pub(crate) fn data_key(day: i32, id: u64, ts: i64) -> [u8; DATA_KEY_LEN] {
    let mut k = [0u8; DATA_KEY_LEN];
    k[..4].copy_from_slice(&((day as u32) ^ (1 << 31)).to_be_bytes());
    k[4..12].copy_from_slice(&id.to_be_bytes());
    k[12..].copy_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// Splits a head or chunk key into `(day, id, ts)`.
pub(crate) fn parse_data_key(k: &[u8]) -> Option<(i32, u64, i64)> {
    if k.len() != DATA_KEY_LEN {
        return None;
    }
    Some((get_day(k)?, get_u64(&k[4..])?, get_i64(&k[12..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_sort() {
        let vals = ["", "\0", "a", "a\0", "a\0b", "ab", "b", "\u{1F600}"];
        let mut enc: Vec<Vec<u8>> = vals
            .iter()
            .map(|v| {
                let mut b = Vec::new();
                put_str(&mut b, v);
                b
            })
            .collect();
        for (v, e) in vals.iter().zip(&enc) {
            let (s, rest) = take_str(e).unwrap();
            assert_eq!(&s, v);
            assert!(rest.is_empty());
            assert_eq!(skip_str(e), Some(e.len()));
        }
        let sorted = enc.clone();
        enc.sort();
        assert_eq!(enc, sorted, "encoding must preserve order");
    }

    #[test]
    fn timestamps_and_days_sort() {
        let ts = [i64::MIN, -DAY_MS - 1, -1, 0, 1, DAY_MS, i64::MAX];
        let keys: Vec<_> = ts.iter().map(|&t| data_key(day_of(t), 7, t)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (&t, k) in ts.iter().zip(&keys) {
            assert_eq!(parse_data_key(k), Some((day_of(t), 7, t)));
        }
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_start(day_of(DAY_MS + 5)), DAY_MS);
        assert_eq!(day_end(0), DAY_MS - 1);
        assert_eq!(day_start(day_of(i64::MIN)), i64::MIN);
        assert_eq!(day_end(day_of(i64::MAX)), i64::MAX);
    }

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        let mut p = vec![9];
        put_str(&mut p, "job");
        let inside = posting(&[9], "job", "zzz", u64::MAX);
        assert!(inside < past_str(&p));
        assert!(posting(&[9], "job\0", "", 0) > past_str(&p));
    }
}
