//! API errors and their mapping to Prometheus' `errorType` and HTTP status codes.
//!
//! Prometheus: `bad_data` 400, `execution` 422, `canceled` 499, `timeout` 503, `unavailable`
//! 503, `not_found` 404, `internal` 500.

use crate::promql::EvalError;
use crate::source::SourceError;
use axum::http::StatusCode;
use thiserror::Error;

/// A failed API request; the variant is the Prometheus `errorType`, the text its `error`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ApiError {
    /// Invalid parameters or query (`bad_data`, 400).
    #[error("{0}")]
    BadData(String),
    /// The query failed during evaluation (`execution`, 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (`timeout`, 503).
    #[error("{0}")]
    Timeout(String),
    /// Storage could not answer (`unavailable`, 503).
    #[error("{0}")]
    Unavailable(String),
    /// Unknown endpoint or resource (`not_found`, 404).
    #[error("{0}")]
    NotFound(String),
    /// Anything else (`internal`, 500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The Prometheus `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadData(_) => "bad_data",
            Self::Execution(_) => "execution",
            Self::Timeout(_) => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::NotFound(_) => "not_found",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status code Prometheus answers with for this error type.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadData(_) => StatusCode::BAD_REQUEST,
            Self::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Timeout(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Prometheus' `invalid parameter "<name>": <reason>` error.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::BadData(format!("invalid parameter {name:?}: {reason}"))
    }
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Unavailable(_) => Self::Unavailable(e.to_string()),
            SourceError::BadRequest(m) => Self::BadData(m),
            SourceError::Limit(m) => Self::Execution(m),
            SourceError::Timeout(_) => Self::Timeout(e.to_string()),
            SourceError::Internal(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::BadData(m) => Self::BadData(m),
            EvalError::Execution(m) => Self::Execution(m),
            EvalError::Timeout(_) => Self::Timeout(e.to_string()),
            EvalError::Source(s) => s.into(),
        }
    }
}
