//! PromQL label matchers (`=`, `!=`, `=~`, `!~`), compiled once and applied to label values.
//!
//! Prometheus semantics: regexes are fully anchored and `.` matches newlines; a label that a
//! series lacks has the value `""`, so `{a=~".*"}` matches series without `a` and `{a=""}`
//! matches exactly those.

use crate::storage::{self, MatchType};
use regex::Regex;
use thiserror::Error;

/// A matcher that could not be compiled.
#[derive(Debug, Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    /// Label the matcher applies to.
    pub name: String,
    /// The pattern as given.
    pub pattern: String,
    /// What the regex compiler said.
    #[source]
    pub source: regex::Error,
}

/// A compiled label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Equal(String),
    NotEqual(String),
    Regex(Regex, String),
    NotRegex(Regex, String),
}

impl Matcher {
    /// Compiles a wire matcher.
    pub fn compile(m: &storage::Matcher) -> Result<Self, MatcherError> {
        let kind = match m.r#type() {
            MatchType::Equal => Kind::Equal(m.value.clone()),
            MatchType::NotEqual => Kind::NotEqual(m.value.clone()),
            MatchType::Regex => Kind::Regex(anchored(&m.name, &m.value)?, m.value.clone()),
            MatchType::NotRegex => Kind::NotRegex(anchored(&m.name, &m.value)?, m.value.clone()),
        };
        Ok(Self { name: m.name.clone(), kind })
    }

    /// Compiles every matcher of a list.
    pub fn compile_all(ms: &[storage::Matcher]) -> Result<Vec<Self>, MatcherError> {
        ms.iter().map(Self::compile).collect()
    }

    /// Whether a label value (`""` when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match &self.kind {
            Kind::Equal(v) => v == value,
            Kind::NotEqual(v) => v != value,
            Kind::Regex(r, _) => r.is_match(value),
            Kind::NotRegex(r, _) => !r.is_match(value),
        }
    }

    /// Whether the matcher accepts the empty value, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The value for an `=` matcher, which the index can look up directly.
    pub fn equal_value(&self) -> Option<&str> {
        match &self.kind {
            Kind::Equal(v) => Some(v),
            _ => None,
        }
    }

    /// The wire form of this matcher.
    pub fn to_wire(&self) -> storage::Matcher {
        let (t, v) = match &self.kind {
            Kind::Equal(v) => (MatchType::Equal, v),
            Kind::NotEqual(v) => (MatchType::NotEqual, v),
            Kind::Regex(_, v) => (MatchType::Regex, v),
            Kind::NotRegex(_, v) => (MatchType::NotRegex, v),
        };
        storage::Matcher { r#type: t as i32, name: self.name.clone(), value: v.clone() }
    }

    /// Whether a sorted label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &[storage::Label]) -> bool {
        let v = labels
            .binary_search_by(|l| l.name.as_str().cmp(&self.name))
            .map(|i| labels[i].value.as_str())
            .unwrap_or("");
        self.matches(v)
    }
}

fn anchored(name: &str, pattern: &str) -> Result<Regex, MatcherError> {
    Regex::new(&format!("^(?s:{pattern})$")).map_err(|source| MatcherError {
        name: name.to_string(),
        pattern: pattern.to_string(),
        source,
    })
}

/// Builds a wire matcher.
pub fn wire(t: MatchType, name: &str, value: &str) -> storage::Matcher {
    storage::Matcher { r#type: t as i32, name: name.into(), value: value.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: MatchType, v: &str) -> Matcher {
        Matcher::compile(&wire(t, "a", v)).unwrap()
    }

    #[test]
    fn regexes_are_anchored_and_dot_matches_newline() {
        assert!(m(MatchType::Regex, "fo+").matches("foo"));
        assert!(!m(MatchType::Regex, "fo+").matches("xfoo"));
        assert!(!m(MatchType::Regex, "fo+").matches("foox"));
        assert!(m(MatchType::Regex, "a.b").matches("a\nb"));
        assert!(m(MatchType::Regex, "x|y").matches("y"));
    }

    #[test]
    fn absent_label_is_empty_value() {
        let labels = vec![storage::Label { name: "b".into(), value: "1".into() }];
        assert!(m(MatchType::Regex, ".*").matches_labels(&labels));
        assert!(m(MatchType::Equal, "").matches_labels(&labels));
        assert!(!m(MatchType::Regex, ".+").matches_labels(&labels));
        assert!(m(MatchType::NotEqual, "x").matches_labels(&labels));
        assert!(!m(MatchType::NotRegex, ".*").matches_labels(&labels));
    }

    #[test]
    fn bad_regex_names_label_and_pattern() {
        let err = Matcher::compile(&wire(MatchType::Regex, "job", "(")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"job\"") && msg.contains("\"(\""), "{msg}");
    }
}
