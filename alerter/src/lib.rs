//! Basin's alerter (`basin alerter`): a drop-in for Prometheus' rule evaluation and vmalert.
//!
//! - Rule files in the Prometheus format, validated like `promtool check rules` ([`rules`]).
//! - Groups evaluated concurrently at their interval, rules in order, evaluation timestamps
//!   aligned to the interval so restarts and replicas agree; instant queries against any
//!   Prometheus-compatible API.
//! - Alert states inactive → pending → firing → resolved with `for` and `keep_firing_for` as
//!   in Prometheus; Go templates for labels and annotations ([`template`]).
//! - Alertmanager API v2 notifications, resend and retries, never blocking evaluation.
//! - Recording rule results, `ALERTS` and `ALERTS_FOR_STATE` written through remote_write 1.0;
//!   on start the `for` progress is restored from `ALERTS_FOR_STATE`.
//! - `/api/v1/rules`, `/api/v1/alerts` and `POST /-/reload` ([`router`]), self-metrics.

pub mod api;
pub mod duration;
pub mod error;
pub mod eval;
pub mod labels;
pub mod metrics;
pub mod notify;
pub mod query;
pub mod remote_write;
pub mod rules;
pub mod service;
pub mod state;
pub mod template;

pub use api::router;
pub use error::{AlerterError, QueryError, RuleFileError};
pub use rules::validate::CheckSummary;
pub use service::{Alerter, AlerterConfig, parse_external_label};

/// Validates the rule files the globs name, as `promtool check rules` does
/// (for `basin alerter --check FILES`). Returns the counts, or every problem found.
pub fn check_rule_files(globs: &[String]) -> Result<CheckSummary, Vec<RuleFileError>> {
    rules::validate::load_rule_files(globs, std::time::Duration::from_secs(60))
        .map(|(_, summary)| summary)
}
