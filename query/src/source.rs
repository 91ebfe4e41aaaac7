//! Where the PromQL engine gets its series: the [`SeriesSource`] trait.
//!
//! The query node implements it by fanning a select out to every storage node and merging
//! replicas; tests and `basin promql-test` implement it over an in-memory set of series.

use basin_proto::node::SharedSeries;
use basin_proto::storage::{Matcher, SelectHints};
use thiserror::Error;

/// The series a selector matched, plus warnings for a partial answer (e.g. a node was down).
#[derive(Debug, Default, Clone)]
pub struct Selected {
    /// Matching series with sorted labels, each with time-ordered samples in the range and at
    /// most one sample per timestamp.
    pub series: Vec<SharedSeries>,
    /// Human-readable warnings, surfaced in the API's `warnings` field.
    pub warnings: Vec<String>,
}

/// Why a select failed.
#[derive(Debug, Error)]
pub enum SourceError {
    /// Storage could not answer (nodes down, partial answers refused); retryable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request was invalid (e.g. a bad regex).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A limit was exceeded; the message names the limit.
    #[error("{0}")]
    Limit(String),
    /// The deadline passed.
    #[error("query timed out in storage select: {0}")]
    Timeout(String),
    /// Anything else.
    #[error("storage error: {0}")]
    Internal(String),
}

/// A source of series for the PromQL engine.
#[async_trait::async_trait]
pub trait SeriesSource: Send + Sync {
    /// Series matching all `matchers` with their samples whose timestamps lie in
    /// `[start_ms, end_ms]` (inclusive; the engine applies its own left-open window rules).
    async fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints,
    ) -> Result<Selected, SourceError>;
}
