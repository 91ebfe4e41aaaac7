//! Series identity: a 64-bit hash of tenant + sorted labels.
//!
//! The hash decides placement (which storage nodes own a series) and is the starting point of
//! the storage node's series id. It must be identical in every process and every version, so the
//! byte layout below is part of the on-disk and cluster contract: change it and data moves.

use crate::labels::AsLabel;
use std::cell::RefCell;
use xxhash_rust::xxh3::xxh3_64;

thread_local! {
    /// The bytes being hashed, reused: one-shot xxh3 over a buffer is several times faster
    /// than feeding a streaming hasher one short label at a time (and gives the same digest).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hashes a tenant and a label set that is already sorted by name: xxh3-64 of
/// `tenant 0xff (name 0xfe value 0xff)*`.
pub fn series_hash<L: AsLabel>(tenant: &str, labels: &[L]) -> u64 {
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend_from_slice(tenant.as_bytes());
        buf.push(0xff);
        for l in labels {
            buf.extend_from_slice(l.name().as_bytes());
            buf.push(0xfe);
            buf.extend_from_slice(l.value().as_bytes());
            buf.push(0xff);
        }
        xxh3_64(buf)
    })
}

/// A hasher for keys that are small integers, addresses or hashes already (series ids,
/// series hashes, label-set addresses, and tuples of them): one multiply per word instead of
/// SipHash's rounds. Not for keys that clients choose.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_i32(&mut self, v: i32) {
        self.write_u64(v as u32 as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(26) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// `HashMap`/`HashSet` builder using [`IdHasher`].
pub type IdBuild = std::hash::BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Label;

    fn l(n: &str, v: &str) -> Label {
        Label { name: n.into(), value: v.into() }
    }

    #[test]
    fn separators_keep_label_boundaries_apart() {
        // "ab"="c" and "a"="bc" must not hash alike; neither may tenants bleed into labels.
        assert_ne!(series_hash("", &[l("ab", "c")]), series_hash("", &[l("a", "bc")]));
        assert_ne!(series_hash("t", &[l("a", "b")]), series_hash("", &[l("a", "b")]));
        assert_eq!(series_hash("t", &[l("a", "b")]), series_hash("t", &[l("a", "b")]));
    }

    /// The digest is part of the on-disk and cluster contract: it must stay the streaming
    /// hash of the documented byte layout, for every length xxh3 treats differently.
    #[test]
    fn same_digest_as_the_streaming_hasher() {
        fn streaming(tenant: &str, labels: &[Label]) -> u64 {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(tenant.as_bytes());
            h.update(&[0xff]);
            for x in labels {
                h.update(x.name.as_bytes());
                h.update(&[0xfe]);
                h.update(x.value.as_bytes());
                h.update(&[0xff]);
            }
            h.digest()
        }
        for n in [0, 1, 2, 5, 9, 17, 40, 130, 300] {
            let labels: Vec<Label> =
                (0..n).map(|i| l(&format!("name{i}"), &"v".repeat(i * 7 % 23))).collect();
            assert_eq!(series_hash("tenant", &labels), streaming("tenant", &labels), "{n}");
        }
        // A fixed value: the layout and the algorithm must never change.
        let up = [l("__name__", "up")];
        assert_eq!(streaming("", &up), 0xf303_3fff_196c_1ce4);
        assert_eq!(series_hash("", &up), 0xf303_3fff_196c_1ce4);
    }
}
