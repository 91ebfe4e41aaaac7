//! The inverted index: postings `scope | name | value | id` in the `index` column family, and
//! how a list of PromQL matchers becomes a set of candidate series ids.
//!
//! A scope is a tenant's global postings or one day's ([`Scope`]), so one code path serves
//! the label APIs, short queries (per-day postings: only series active in the range are
//! walked) and long ones (global postings).
//!
//! Matchers that accept the empty value (`a=""`, `a!="x"`, `a=~".*"`, `a!~".+"`) also
//! accept series *without* the label, so postings cannot enumerate them; they are applied
//! afterwards to each candidate's labels. Candidates come from the other matchers
//! (intersected), or from the all-series posting (empty name and value) when there are none.
//! The result is a superset: callers filter every candidate with every matcher.

use crate::error::StorageError;
use crate::keys::{self, Scope};
use basin_proto::matcher::Matcher;
use rocksdb::{DB, DBRawIterator, ReadOptions};

/// The postings column family.
#[derive(Clone, Copy)]
pub(crate) struct Index<'a> {
    pub(crate) db: &'a DB,
    pub(crate) cf: &'a rocksdb::ColumnFamily,
}

/// Name and value of the posting every series has.
pub(crate) const ALL: (&str, &str) = ("", "");

impl<'a> Index<'a> {
    fn iter(&self, prefix: &[u8]) -> DBRawIterator<'a> {
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_end(prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf, ro);
        it.seek(prefix);
        it
    }

    /// Ids of the series whose tenant and labels hash to `hash` (almost always at most one).
    pub(crate) fn ids_with_hash(&self, hash: u64) -> Result<Vec<u64>, StorageError> {
        let mut prefix = vec![keys::LOOKUP];
        prefix.extend_from_slice(&hash.to_be_bytes());
        let mut it = self.iter(&prefix);
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            let id = k
                .get(9..)
                .and_then(keys::get_u64)
                .ok_or_else(|| StorageError::corrupt("series lookup", k, "short lookup key"))?;
            out.push(id);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Ids of the series with `name = value` in the scope, sorted.
    pub(crate) fn ids_with_value(
        &self,
        scope: &[u8],
        name: &str,
        value: &str,
    ) -> Result<Vec<u64>, StorageError> {
        let mut prefix = scope.to_vec();
        keys::put_str(&mut prefix, name);
        keys::put_str(&mut prefix, value);
        let mut it = self.iter(&prefix);
        let mut ids = Vec::new();
        while it.valid() {
            let Some(k) = it.key() else { break };
            let id = keys::get_u64(&k[prefix.len()..]).ok_or_else(|| {
                StorageError::corrupt(format!("{name}={value:?}"), k, "short posting key")
            })?;
            ids.push(id);
            it.next();
        }
        it.status()?;
        Ok(ids)
    }

    /// Ids of the series whose `name` has a value accepted by `accept`, sorted. Each
    /// distinct value is tested once; the ids of rejected values are skipped with one seek.
    pub(crate) fn ids_matching(
        &self,
        scope: &[u8],
        name: &str,
        accept: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u64>, StorageError> {
        let mut prefix = scope.to_vec();
        keys::put_str(&mut prefix, name);
        let mut it = self.iter(&prefix);
        let mut ids = Vec::new();
        while it.valid() {
            let Some(k) = it.key() else { break };
            let rest = &k[prefix.len()..];
            let (value, tail) = keys::take_str(rest).ok_or_else(|| {
                StorageError::corrupt(format!("label {name}"), k, "bad posting value")
            })?;
            let value_end = k.len() - tail.len();
            if accept(&value) {
                // Read every id of this value.
                let value_prefix = k[..value_end].to_vec();
                while it.valid() {
                    let Some(k) = it.key() else { break };
                    if !k.starts_with(&value_prefix) {
                        break;
                    }
                    let id = keys::get_u64(&k[value_prefix.len()..]).ok_or_else(|| {
                        StorageError::corrupt(format!("{name}={value:?}"), k, "short posting key")
                    })?;
                    ids.push(id);
                    it.next();
                }
            } else {
                let past = keys::past_str(&k[..value_end]);
                it.seek(&past);
            }
        }
        it.status()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Candidate ids for a conjunction of matchers in a scope (a superset of the matches).
    pub(crate) fn candidates(
        &self,
        scope: &[u8],
        matchers: &[Matcher],
    ) -> Result<Vec<u64>, StorageError> {
        let mut positive: Vec<&Matcher> = matchers.iter().filter(|m| !m.matches_empty()).collect();
        if positive.is_empty() {
            return self.ids_with_value(scope, ALL.0, ALL.1);
        }
        // Equality lookups first: they are one short scan and usually the most selective.
        positive.sort_by_key(|m| m.equal_value().is_none());
        let mut acc: Option<Vec<u64>> = None;
        for m in positive {
            let ids = match (m.equal_value(), literal_alternatives(m)) {
                (Some(v), _) => self.ids_with_value(scope, &m.name, v)?,
                // `job=~"a|b|c"`: one lookup per value instead of a scan of every value.
                (None, Some(values)) => {
                    let mut ids = Vec::new();
                    for v in values {
                        ids.extend(self.ids_with_value(scope, &m.name, &v)?);
                    }
                    ids.sort_unstable();
                    ids.dedup();
                    ids
                }
                (None, None) => self.ids_matching(scope, &m.name, &|v| m.matches(v))?,
            };
            let next = match acc {
                None => ids,
                Some(prev) => intersect(&prev, &ids),
            };
            if next.is_empty() {
                return Ok(next);
            }
            acc = Some(next);
        }
        Ok(acc.unwrap_or_default())
    }

    /// Distinct label names in a scope, sorted (the all-series posting excluded).
    pub(crate) fn names(&self, scope: &[u8]) -> Result<Vec<String>, StorageError> {
        let mut it = self.iter(scope);
        let mut out = Vec::new();
        while it.valid() {
            let Some(k) = it.key() else { break };
            let len = keys::skip_str(&k[scope.len()..])
                .ok_or_else(|| StorageError::corrupt("label names", k, "bad posting name"))?;
            let name_end = scope.len() + len;
            let (name, _) = keys::take_str(&k[scope.len()..name_end])
                .ok_or_else(|| StorageError::corrupt("label names", k, "bad posting name"))?;
            if !name.is_empty() {
                out.push(name);
            }
            let past = keys::past_str(&k[..name_end]);
            it.seek(&past);
        }
        it.status()?;
        Ok(out)
    }

    /// Distinct values of one label in a scope, sorted.
    pub(crate) fn values(&self, scope: &[u8], name: &str) -> Result<Vec<String>, StorageError> {
        let mut prefix = scope.to_vec();
        keys::put_str(&mut prefix, name);
        let mut it = self.iter(&prefix);
        let mut out = Vec::new();
        while it.valid() {
            let Some(k) = it.key() else { break };
            let (value, tail) = keys::take_str(&k[prefix.len()..]).ok_or_else(|| {
                StorageError::corrupt(format!("label {name}"), k, "bad posting value")
            })?;
            let value_end = k.len() - tail.len();
            if !value.is_empty() {
                out.push(value);
            }
            let past = keys::past_str(&k[..value_end]);
            it.seek(&past);
        }
        it.status()?;
        Ok(out)
    }

    /// Every day that has per-day postings, with one seek per day.
    pub(crate) fn days(&self) -> Result<Vec<i32>, StorageError> {
        let mut it = self.iter(&[keys::DAILY]);
        let mut out = Vec::new();
        while it.valid() {
            let Some(k) = it.key() else { break };
            let day = keys::get_day(&k[1..])
                .ok_or_else(|| StorageError::corrupt("day index", k, "short daily posting key"))?;
            out.push(day);
            match day.checked_add(1) {
                Some(next) => {
                    let mut seek = vec![keys::DAILY];
                    keys::put_day(&mut seek, next);
                    it.seek(&seek);
                }
                None => break,
            }
        }
        it.status()?;
        Ok(out)
    }
}

/// Walks the postings of several scopes (prefixes) of the index as one stream in
/// `(name, value, id)` order, merged across scopes so that a series posted in several scopes
/// (days) counts once. Calls `f(name, value, series)` once per distinct `(name, value)`, in
/// order, with its number of distinct series ids; the all-series posting comes first as
/// `("", "")`. One pass over each prefix, memory independent of the index size.
pub(crate) fn for_each_pair(
    index: &Index<'_>,
    scopes: &[Vec<u8>],
    mut f: impl FnMut(&str, &str, u64),
) -> Result<(), StorageError> {
    let mut its: Vec<(usize, DBRawIterator<'_>)> =
        scopes.iter().map(|p| (p.len(), index.iter(p))).collect();
    // The last suffix counted (`name value id`), and the current group (`name value`).
    let mut last: Vec<u8> = Vec::new();
    let mut group: Vec<u8> = Vec::new();
    let mut current: Option<(String, String, u64)> = None;
    loop {
        // The iterator whose key suffix (after its scope prefix) is smallest.
        let mut best: Option<usize> = None;
        for i in 0..its.len() {
            let Some(k) = its[i].1.key() else { continue };
            let smaller = match best {
                None => true,
                Some(b) => its[b].1.key().is_none_or(|bk| k[its[i].0..] < bk[its[b].0..]),
            };
            if smaller {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        let (plen, it) = &mut its[b];
        let Some(k) = it.key() else { break };
        let suffix = &k[*plen..];
        if suffix != last.as_slice() {
            let Some(pair_len) = suffix.len().checked_sub(8) else {
                return Err(StorageError::corrupt("postings", k, "short posting key"));
            };
            let pair = &suffix[..pair_len];
            if pair != group.as_slice() {
                let bad = || StorageError::corrupt("postings", k, "bad posting name or value");
                let (name, rest) = keys::take_str(pair).ok_or_else(bad)?;
                let (value, rest) = keys::take_str(rest).ok_or_else(bad)?;
                if !rest.is_empty() {
                    return Err(bad());
                }
                if let Some((n, v, c)) = current.take() {
                    f(&n, &v, c);
                }
                current = Some((name, value, 0));
                group.clear();
                group.extend_from_slice(pair);
            }
            if let Some((_, _, c)) = current.as_mut() {
                *c += 1;
            }
            last.clear();
            last.extend_from_slice(suffix);
        }
        it.next();
    }
    for (_, it) in &its {
        it.status()?;
    }
    if let Some((n, v, c)) = current {
        f(&n, &v, c);
    }
    Ok(())
}

/// The postings to write for a series in a scope: one per label plus the all-series one.
pub(crate) fn postings_of(
    scope: &Scope<'_>,
    labels: &[basin_proto::storage::Label],
    id: u64,
) -> Vec<Vec<u8>> {
    let prefix = scope.prefix();
    let mut out = Vec::with_capacity(labels.len() + 1);
    out.push(keys::posting(&prefix, ALL.0, ALL.1, id));
    for l in labels {
        out.push(keys::posting(&prefix, &l.name, &l.value, id));
    }
    out
}

/// The values a `=~` matcher accepts when its pattern is an alternation of plain literals
/// (`a|b|c`), so the index can look each one up.
fn literal_alternatives(m: &Matcher) -> Option<Vec<String>> {
    let wire = m.to_wire();
    if wire.r#type() != basin_proto::storage::MatchType::Regex {
        return None;
    }
    let meta = |c: char| "\\.+*?()[]{}^$".contains(c);
    if wire.value.is_empty() || wire.value.chars().any(meta) {
        return None;
    }
    let values: Vec<String> = wire.value.split('|').map(str::to_string).collect();
    // An empty alternative matches the empty value: not a positive matcher then.
    (!values.iter().any(String::is_empty)).then_some(values)
}

/// Intersection of two sorted id lists.
pub(crate) fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_alternations_are_detected() {
        use basin_proto::matcher::wire;
        use basin_proto::storage::MatchType;
        let m = |t, v| Matcher::compile(&wire(t, "job", v)).unwrap();
        assert_eq!(
            literal_alternatives(&m(MatchType::Regex, "a|b-c")),
            Some(vec!["a".into(), "b-c".into()])
        );
        assert_eq!(literal_alternatives(&m(MatchType::Regex, "a.*")), None);
        assert_eq!(literal_alternatives(&m(MatchType::Regex, "a|")), None);
        assert_eq!(literal_alternatives(&m(MatchType::NotRegex, "a")), None);
        assert_eq!(literal_alternatives(&m(MatchType::Regex, "a\\.b")), None);
    }

    #[test]
    fn intersects_sorted_lists() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), vec![3, 7]);
        assert!(intersect(&[], &[1]).is_empty());
    }
}
