//! Values a PromQL query produces.

use basin_proto::storage::Label;

/// One sample of an instant vector. `labels` are sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series labels, sorted by name.
    pub labels: Vec<Label>,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// One series of a range vector / range query result. `points` are time-ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Series labels, sorted by name.
    pub labels: Vec<Label>,
    /// `(timestamp ms, value)` pairs, time-ordered.
    pub points: Vec<(i64, f64)>,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a time.
    Scalar {
        /// Milliseconds since the epoch.
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Milliseconds since the epoch.
        t: i64,
        /// The string.
        s: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector, or the result of a range query.
    Matrix(Vec<Series>),
}

/// A query's value plus warnings (e.g. partial answers from storage).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Warnings for the API's `warnings` field.
    pub warnings: Vec<String>,
}
