//! Which storage nodes own a series: rendezvous (highest-random-weight) hashing.
//!
//! Every node gets a score `hash(series, node)`; a series' preference list is the nodes by
//! descending score, and its replicas are the first `replication_factor` of them. Adding a node
//! takes over only the series for which it now scores highest (about 1/N), and every gateway
//! computes the same list from the same node addresses, with no coordination.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The set of storage nodes, identified by their configured addresses.
#[derive(Debug, Clone)]
pub struct Placement {
    node_seeds: Vec<u64>,
}

impl Placement {
    /// Builds a placement over node identities (their `host:port` addresses).
    pub fn new<S: AsRef<str>>(nodes: &[S]) -> Self {
        let node_seeds =
            nodes.iter().map(|n| xxhash_rust::xxh3::xxh3_64(n.as_ref().as_bytes())).collect();
        Self { node_seeds }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.node_seeds.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.node_seeds.is_empty()
    }

    /// Node indexes in preference order for a series hash; writes `self.len()` entries.
    pub fn preference(&self, series_hash: u64, out: &mut Vec<usize>) {
        out.clear();
        out.extend(0..self.node_seeds.len());
        let score = |i: usize| xxh3_64_with_seed(&series_hash.to_le_bytes(), self.node_seeds[i]);
        out.sort_unstable_by_key(|&i| std::cmp::Reverse(score(i)));
    }

    /// The `rf` nodes (fewer if there are fewer nodes) that own a series.
    pub fn owners(&self, series_hash: u64, rf: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.node_seeds.len());
        self.preference(series_hash, &mut out);
        out.truncate(rf.max(1));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:7001")).collect()
    }

    #[test]
    fn spreads_evenly_and_replicas_are_distinct() {
        let p = Placement::new(&nodes(3));
        let mut counts = [0usize; 3];
        for s in 0..100_000u64 {
            let h = xxhash_rust::xxh3::xxh3_64(&s.to_le_bytes());
            let o = p.owners(h, 2);
            assert_eq!(o.len(), 2);
            assert_ne!(o[0], o[1]);
            counts[o[0]] += 1;
        }
        // Within 10% of an even share.
        let even = 100_000.0 / 3.0;
        for c in counts {
            assert!((c as f64 - even).abs() <= 0.1 * even, "uneven: {counts:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_about_one_nth() {
        let before = Placement::new(&nodes(3));
        let after = Placement::new(&nodes(4));
        let total = 100_000u64;
        let moved = (0..total)
            .map(|s| xxhash_rust::xxh3::xxh3_64(&s.to_le_bytes()))
            .filter(|&h| before.owners(h, 1) != after.owners(h, 1))
            .count();
        let share = moved as f64 / total as f64;
        assert!((0.20..0.30).contains(&share), "moved {share}");
    }
}
