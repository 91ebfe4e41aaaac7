//! Series identity: a 64-bit hash of tenant + sorted labels.
//!
//! The hash decides placement (which storage nodes own a series) and is the starting point of
//! the storage node's series id. It must be identical in every process and every version, so the
//! byte layout below is part of the on-disk and cluster contract: change it and data moves.

use crate::storage::Label;
use xxhash_rust::xxh3::Xxh3;

/// Hashes a tenant and a label set that is already sorted by name.
pub fn series_hash(tenant: &str, labels: &[Label]) -> u64 {
    let mut h = Xxh3::new();
    h.update(tenant.as_bytes());
    h.update(&[0xff]);
    for l in labels {
        h.update(l.name.as_bytes());
        h.update(&[0xfe]);
        h.update(l.value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
