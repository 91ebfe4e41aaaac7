//! Values inside the evaluator: one step's worth of data per node.
//!
//! Every element carries a `drop_name` flag instead of removing `__name__` right away:
//! Prometheus 3 delays the removal of the metric name to the end of evaluation, so that
//! `label_replace` can still read it and aggregations can group by it.

use basin_proto::METRIC_NAME;
use basin_proto::storage::Label;
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
