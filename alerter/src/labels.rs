//! Label sets as the alerter handles them: a sorted map, plus the validity rules of Prometheus'
//! classic (pre-UTF-8) names, which is what `promtool check rules` 2.x enforces.

use std::collections::BTreeMap;

/// A label set, sorted by name; the map's order is the canonical order.
pub type Labels = BTreeMap<String, String>;

/// The label that names an alert.
pub const ALERT_NAME: &str = "alertname";
/// The label that holds an `ALERTS` series' state.
pub const ALERT_STATE: &str = "alertstate";

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Adds each external label the set does not already have (Prometheus never overrides a label
/// a series or alert carries with an external one).
pub fn with_external(mut labels: Labels, external: &[(String, String)]) -> Labels {
    for (name, value) in external {
        labels.entry(name.clone()).or_insert_with(|| value.clone());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_label_name("job"));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("1x"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name(""));
        assert!(is_valid_metric_name("job:up:sum"));
        assert!(!is_valid_metric_name("job-up"));
        assert!(!is_valid_metric_name(""));
    }
}
