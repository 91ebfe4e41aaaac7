//! Rule groups as the alerter evaluates them: loaded from Prometheus rule files
//! ([`mod@file`]), validated the way `promtool check rules` validates them ([`validate`]).

pub mod file;
pub mod validate;

use std::time::Duration;

use crate::labels::Labels;

/// A validated group of rules from one file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// The group's name (unique within its file).
    pub name: String,
    /// The file it came from, as named after glob expansion.
    pub file: String,
    /// The evaluation interval (the group's own, or the default).
    pub interval: Duration,
    /// Maximum alerts/series per rule; 0 means no limit.
    pub limit: usize,
    /// How far in the past queries are evaluated.
    pub query_offset: Duration,
    /// Group labels (already merged into each rule's labels).
    pub labels: Labels,
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The `alert` or `record` name.
    pub name: String,
    /// The expression as Prometheus prints it (parsed and re-printed).
    pub query: String,
    /// Labels to set: group labels overlaid with the rule's own (templates for alerts).
    pub labels: Labels,
    /// Alerting or recording specifics.
    pub kind: RuleKind,
}

/// What kind of rule, with the fields only that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// An alerting rule.
    Alerting {
        /// `for`: how long an alert stays pending before it fires.
        hold: Duration,
        /// `keep_firing_for`.
        keep_firing_for: Duration,
        /// Annotation templates.
        annotations: Labels,
    },
    /// A recording rule.
    Recording,
}

impl Rule {
    /// Whether this is an alerting rule.
    pub fn is_alerting(&self) -> bool {
        matches!(self.kind, RuleKind::Alerting { .. })
    }
}

impl RuleGroup {
    /// The group's identity across reloads: file and name, as in Prometheus.
    pub fn key(&self) -> (String, String) {
        (self.file.clone(), self.name.clone())
    }
}
