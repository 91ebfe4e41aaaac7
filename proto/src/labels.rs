//! Label-set validation and normalisation shared by every write path.

use crate::METRIC_NAME;
use crate::storage::Label;
use std::cmp::Ordering;
use thiserror::Error;

/// Why a label set was rejected. The message names the offending label.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LabelError {
    /// A series without labels cannot be addressed.
    #[error("series has no labels")]
    Empty,
    /// Label names must not be empty.
    #[error("empty label name (value {value:?})")]
    EmptyName {
        /// The value of the label with the empty name.
        value: String,
    },
    /// A label name appears twice.
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    /// The name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// Missing `__name__`.
    #[error("series has no metric name (__name__ label)")]
    MissingMetricName,
    /// Over the configured limit of labels per series.
    #[error("series has {count} labels, over the limit of {limit} (max_labels_per_series)")]
    TooManyLabels {
        /// Labels in the series.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A label name or value over the configured length limit.
    #[error("label {name:?} is {len} bytes long, over the limit of {limit} (max_label_length)")]
    TooLong {
        /// The label's name (cut to 64 bytes).
        name: String,
        /// Length of the name or value.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// A label as a name and a value, owned ([`Label`]) or borrowed ([`LabelRef`]), so validation,
/// hashing and comparison work on either without copying.
pub trait AsLabel {
    /// The label's name.
    fn name(&self) -> &str;
    /// The label's value.
    fn value(&self) -> &str;
    /// An owned copy.
    fn to_label(&self) -> Label {
        Label { name: self.name().to_string(), value: self.value().to_string() }
    }
}

impl AsLabel for Label {
    fn name(&self) -> &str {
        &self.name
    }
    fn value(&self) -> &str {
        &self.value
    }
}

/// A label borrowed from a request (see [`crate::batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRef<'a> {
    /// The label's name.
    pub name: &'a str,
    /// The label's value.
    pub value: &'a str,
}

impl<'a> LabelRef<'a> {
    /// Borrows an owned label.
    pub fn of(l: &'a Label) -> Self {
        Self { name: &l.name, value: &l.value }
    }
}

impl AsLabel for LabelRef<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn value(&self) -> &str {
        self.value
    }
}

/// Whether two label sets are equal, label by label.
pub fn same_labels<A: AsLabel, B: AsLabel>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| a.name() == b.name() && a.value() == b.value())
}

/// Orders label sets (each sorted by name) as Prometheus orders series: lexicographically by
/// `(name, value)` pairs, a set before the longer sets it begins.
pub fn cmp_labels(a: &[Label], b: &[Label]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        // Neighbours in a sort share most pairs: an equality test (lengths, then the bytes)
        // settles those faster than an ordering of every pair.
        if x.name != y.name {
            return x.name.cmp(&y.name);
        }
        if x.value != y.value {
            return x.value.cmp(&y.value);
        }
    }
    a.len().cmp(&b.len())
}

/// Limits applied to every label set.
#[derive(Debug, Clone, Copy)]
pub struct LabelLimits {
    /// Maximum number of labels in one series, `__name__` included.
    pub max_labels: usize,
    /// Maximum length in bytes of a label name or value.
    pub max_length: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        Self { max_labels: 64, max_length: 4096 }
    }
}

/// Whether `name` is a valid Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` is a valid Prometheus metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Sorts `labels` by name, drops labels with empty values (Prometheus treats them as absent),
/// and checks names, duplicates, the metric name and the limits.
pub fn normalize<L: AsLabel>(labels: &mut Vec<L>, limits: &LabelLimits) -> Result<(), LabelError> {
    labels.retain(|l| !l.value().is_empty() || l.name().is_empty());
    if labels.is_empty() {
        return Err(LabelError::Empty);
    }
    if labels.len() > limits.max_labels {
        return Err(LabelError::TooManyLabels { count: labels.len(), limit: limits.max_labels });
    }
    labels.sort_unstable_by(|a, b| a.name().cmp(b.name()));
    let mut has_name = false;
    for (i, l) in labels.iter().enumerate() {
        let (name, value) = (l.name(), l.value());
        if name.is_empty() {
            return Err(LabelError::EmptyName { value: value.to_string() });
        }
        let len = name.len().max(value.len());
        if len > limits.max_length {
            let name: String = name.chars().take(64).collect();
            return Err(LabelError::TooLong { name, len, limit: limits.max_length });
        }
        if i > 0 && labels[i - 1].name() == name {
            return Err(LabelError::Duplicate(name.to_string()));
        }
        if name == METRIC_NAME {
            has_name = true;
            if !is_valid_metric_name(value) {
                return Err(LabelError::InvalidMetricName(value.to_string()));
            }
        } else if !is_valid_label_name(name) {
            return Err(LabelError::InvalidName(name.to_string()));
        }
    }
    if !has_name {
        return Err(LabelError::MissingMetricName);
    }
    Ok(())
}

/// Renders a label set the way Prometheus prints series: `name{a="b", c="d"}`.
pub fn display<L: AsLabel>(labels: &[L]) -> String {
    let mut name = "";
    let mut rest = Vec::with_capacity(labels.len());
    for l in labels {
        if l.name() == METRIC_NAME {
            name = l.value();
        } else {
            rest.push(format!("{}={:?}", l.name(), l.value()));
        }
    }
    format!("{name}{{{}}}", rest.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect()
    }

    #[test]
    fn sorts_and_accepts_valid_sets() {
        let mut l = ls(&[("job", "a"), ("__name__", "up"), ("instance", "x:1")]);
        normalize(&mut l, &LabelLimits::default()).unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "instance", "job"]);
    }

    #[test]
    fn rejects_bad_sets_naming_the_label() {
        let lim = LabelLimits::default();
        let cases = [
            (ls(&[("__name__", "up"), ("", "x")]), LabelError::EmptyName { value: "x".into() }),
            (ls(&[("__name__", "up"), ("a", "1"), ("a", "2")]), LabelError::Duplicate("a".into())),
            (ls(&[("__name__", "1up")]), LabelError::InvalidMetricName("1up".into())),
            (ls(&[("__name__", "up"), ("a-b", "1")]), LabelError::InvalidName("a-b".into())),
            (ls(&[("job", "x")]), LabelError::MissingMetricName),
            (ls(&[]), LabelError::Empty),
        ];
        for (mut labels, want) in cases {
            assert_eq!(normalize(&mut labels, &lim), Err(want));
        }
    }

    #[test]
    fn drops_empty_values_and_enforces_limits() {
        let mut l = ls(&[("__name__", "up"), ("empty", "")]);
        normalize(&mut l, &LabelLimits::default()).unwrap();
        assert_eq!(l.len(), 1);
        let mut l = ls(&[("__name__", "up"), ("a", "1"), ("b", "2")]);
        let err = normalize(&mut l, &LabelLimits { max_labels: 2, max_length: 10 }).unwrap_err();
        assert!(err.to_string().contains("max_labels_per_series"), "{err}");
    }

    #[test]
    fn displays_like_prometheus() {
        let l = ls(&[("__name__", "up"), ("job", "a")]);
        assert_eq!(display(&l), r#"up{job="a"}"#);
    }
}
