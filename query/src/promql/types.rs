//! Values inside the evaluator: one step's worth of data per node.
//!
//! Every element carries a `drop_name` flag instead of removing `__name__` right away:
//! Prometheus 3 delays the removal of the metric name to the end of evaluation, so that
//! `label_replace` can still read it and aggregations can group by it.

use basin_proto::METRIC_NAME;
use basin_proto::hash::IdBuild;
use basin_proto::storage::Label;
use std::collections::HashMap;
use std::sync::Arc;

/// A label set sorted by name, shared cheaply between steps.
pub(crate) type Labels = Arc<Vec<Label>>;

/// One element of an instant vector.
#[derive(Debug, Clone)]
pub(crate) struct Elem {
    pub(crate) labels: Labels,
    /// The sample's own timestamp for selector output (what `timestamp()` reports); the
    /// evaluation time for anything computed.
    pub(crate) t: i64,
    pub(crate) v: f64,
    /// `__name__` is removed when evaluation finishes.
    pub(crate) drop_name: bool,
}

/// One series of a range vector.
#[derive(Debug, Clone)]
pub(crate) struct RangeSeries {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<(i64, f64)>,
    pub(crate) drop_name: bool,
}

/// The value of a node at one evaluation time.
#[derive(Debug, Clone)]
pub(crate) enum Inst {
    Scalar(f64),
    Str(String),
    Vector(Vec<Elem>),
    Matrix(Vec<RangeSeries>),
}

impl Inst {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Inst::Scalar(_) => "scalar",
            Inst::Str(_) => "string",
            Inst::Vector(_) => "instant vector",
            Inst::Matrix(_) => "range vector",
        }
    }
}

/// The value of label `name`, or `""`.
pub(crate) fn get<'a>(labels: &'a [Label], name: &str) -> &'a str {
    labels
        .binary_search_by(|l| l.name.as_str().cmp(name))
        .map(|i| labels[i].value.as_str())
        .unwrap_or("")
}

/// Sets (or, with an empty value, removes) a label, keeping the set sorted.
pub(crate) fn set(labels: &mut Vec<Label>, name: &str, value: &str) {
    match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].value = value.to_string(),
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, Label { name: name.to_string(), value: value.to_string() }),
    }
}

/// The label set without `__name__` (and the `__type__`/`__unit__` metadata labels, which
/// Prometheus drops together with the name).
pub(crate) fn without_name(labels: &[Label]) -> Vec<Label> {
    labels.iter().filter(|l| !is_name_like(&l.name)).cloned().collect()
}

fn is_name_like(name: &str) -> bool {
    name == METRIC_NAME || name == "__type__" || name == "__unit__"
}

/// Renders labels as Prometheus does in error messages: `{__name__="a", b="c"}`.
pub(crate) fn display(labels: &[Label]) -> String {
    let parts: Vec<String> = labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
}

/// A byte key identifying a label subset, used for grouping and matching.
pub(crate) fn key_of<'a>(labels: impl Iterator<Item = &'a Label>) -> Vec<u8> {
    let mut key = Vec::new();
    for l in labels {
        key.extend_from_slice(l.name.as_bytes());
        key.push(0xff);
        key.extend_from_slice(l.value.as_bytes());
        key.push(0xfe);
    }
    key
}

/// Key of the labels selected by `on (names)` (include) or `ignoring (names)` (exclude; the
/// metric name is always ignored then).
pub(crate) fn match_key(labels: &[Label], include: bool, names: &[String]) -> Vec<u8> {
    if include {
        key_of(labels.iter().filter(|l| names.iter().any(|n| n == &l.name)))
    } else {
        key_of(
            labels.iter().filter(|l| l.name != METRIC_NAME && !names.iter().any(|n| n == &l.name)),
        )
    }
}

/// The address of a shared label set, for [`AddrMap`] keys.
pub(crate) fn addr(labels: &Labels) -> usize {
    Arc::as_ptr(labels) as usize
}

/// A map keyed by a shared label set's address plus a second word (a flag, or another label
/// set's address), for finding per-series state across steps without building keys. It holds
/// the label sets alive, so an address cannot be reused for another label set while it is
/// part of a key.
#[derive(Debug)]
pub(crate) struct AddrMap<V> {
    map: HashMap<(usize, usize), V, IdBuild>,
    held: Vec<Labels>,
}

impl<V> Default for AddrMap<V> {
    fn default() -> Self {
        Self { map: HashMap::default(), held: Vec::new() }
    }
}

impl<V: Copy> AddrMap<V> {
    pub(crate) fn get(&self, labels: &Labels, with: usize) -> Option<V> {
        self.map.get(&(addr(labels), with)).copied()
    }

    /// Inserts a value for `labels` and `with`; a label set whose address is `with` must be
    /// passed to [`AddrMap::hold`].
    pub(crate) fn insert(&mut self, labels: &Labels, with: usize, v: V) {
        self.map.insert((addr(labels), with), v);
        self.hold(labels);
    }

    /// Keeps `labels` alive as long as the entries.
    pub(crate) fn hold(&mut self, labels: &Labels) {
        self.held.push(Arc::clone(labels));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Starts over when the map holds far more label sets than a step brings (`per_step`),
    /// i.e. when label sets are not shared across steps; bounds the memory held.
    pub(crate) fn prune(&mut self, per_step: usize) {
        if self.held.len() > per_step.saturating_mul(4).max(1 << 16) {
            self.map.clear();
            self.held.clear();
        }
    }
}

/// A hash set of small integer keys (ids, addresses), hashed with [`IdBuild`].
pub(crate) type IdSet<T> = std::collections::HashSet<T, IdBuild>;

/// Dense ids for the keys of label sets (grouping or matching keys), remembered across steps:
/// a label set is found by its address, and its key is built only the first time it is seen.
#[derive(Debug, Default)]
pub(crate) struct KeyIds {
    by_addr: AddrMap<usize>,
    by_key: HashMap<Vec<u8>, usize>,
}

impl KeyIds {
    /// The id of each element's key; `key` builds the key of a label set, and `on_new` is told
    /// about every id seen for the first time.
    pub(crate) fn ids(
        &mut self,
        elems: &[Elem],
        key: impl Fn(&[Label]) -> Vec<u8>,
        mut on_new: impl FnMut(usize, &[Label]),
    ) -> Vec<usize> {
        let mut out = Vec::with_capacity(elems.len());
        for e in elems {
            if let Some(id) = self.by_addr.get(&e.labels, 0) {
                out.push(id);
                continue;
            }
            let id = self.id_by_key(&e.labels, &key, &mut on_new);
            self.by_addr.insert(&e.labels, 0, id);
            out.push(id);
        }
        out
    }

    /// The id of one label set's key, built with `key`; `on_new` as in [`KeyIds::ids`].
    pub(crate) fn id_by_key(
        &mut self,
        labels: &[Label],
        key: impl Fn(&[Label]) -> Vec<u8>,
        mut on_new: impl FnMut(usize, &[Label]),
    ) -> usize {
        let next = self.by_key.len();
        let id = *self.by_key.entry(key(labels)).or_insert(next);
        if id == next {
            on_new(id, labels);
        }
        id
    }

    /// Forgets addresses when they far outnumber the label sets of a step (`per_step`).
    pub(crate) fn prune(&mut self, per_step: usize) {
        self.by_addr.prune(per_step);
    }

    /// Number of ids handed out (every id is below it).
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}
