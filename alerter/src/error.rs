//! The alerter's error types: one for rule files (what `--check` prints), one for the service.

use std::fmt;

/// One problem found in a rule file: the file, and where known the group and the rule
/// (1-based position and name), with the reason. Displayed like promtool's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFileError {
    /// The file's path as given (after glob expansion).
    pub file: String,
    /// The group's name, when the problem is inside a group.
    pub group: Option<String>,
    /// The rule's 1-based position in its group and its `alert`/`record` name.
    pub rule: Option<(usize, String)>,
    /// Why the file is rejected.
    pub reason: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(group) = &self.group {
            write!(f, ": group {group:?}")?;
        }
        if let Some((index, name)) = &self.rule {
            write!(f, ", rule {index}, {name:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RuleFileError {}

/// Errors of the alerter service.
#[derive(Debug, thiserror::Error)]
pub enum AlerterError {
    /// One or more rule files are invalid; nothing was (re)loaded.
    #[error("invalid rule files: {}", join_errors(.0))]
    RuleFiles(Vec<RuleFileError>),
    /// The configuration is unusable (bad URL, bad external label, …).
    #[error("invalid alerter configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

fn join_errors(errors: &[RuleFileError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// An error from one query against `--query-url`.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Transport failure or timeout.
    #[error("query request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The API answered with an error envelope or an unexpected status.
    #[error("query failed ({error_type}): {message}")]
    Api {
        /// Prometheus' `errorType`, or the HTTP status when there was no envelope.
        error_type: String,
        /// Prometheus' `error` message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("bad query response: {0}")]
    Decode(String),
}
