//! The PromQL engine (Prometheus 3 semantics).
//!
//! A query is parsed with `promql-parser`, then [`plan`] walks the AST and computes the time
//! window every selector needs; each selector is fetched once from the [`SeriesSource`]; then
//! [`eval`] evaluates the expression in memory, once per step. Delayed `__name__` removal
//! (Prometheus 3) happens when a step's result is finalised.
//!
//! Range queries avoid per-step work where they can: selectors and range functions are
//! computed series-major a chunk of steps at a time (`columns`), and grouping keys, matching
//! keys and output series are found by the address of shared label sets, with keys built once
//! per label set rather than once per step (`types::AddrMap`, `types::KeyIds`).

mod aggregate;
mod binary;
mod columns;
mod eval;
mod functions;
mod histogram;
mod plan;
mod position;
mod rangefn;
pub(crate) mod shares;
mod strings;
mod types;
pub mod value;

#[cfg(test)]
mod tests;

pub use value::{QueryResult, Sample, Series, Value};

use crate::source::{SeriesSource, SourceError};
use basin_proto::storage::{Label, SelectHints};
use eval::Evaluator;
use plan::{Fetched, Window};
use promql_parser::parser::Expr;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use types::{Elem, Inst, key_of, without_name};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus default 5m).
    pub lookback_delta: Duration,
    /// Maximum samples loaded into memory by one query (`--query.max-samples`).
    pub max_samples: usize,
    /// Maximum wall time of one query (`--query.timeout`).
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A failed query; each variant maps to a Prometheus API `errorType`.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The query does not parse or is invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`, HTTP 422), e.g. many-to-many matching, too many samples.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// Storage failed (`unavailable` HTTP 503, or mapped from the source error).
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Prometheus' error when a step's result has two series with the same labels.
const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// A query result together with the info-level annotations (Prometheus' `infos` field).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotated {
    /// Value and warnings.
    pub result: QueryResult,
    /// `PromQL info: ...` annotations.
    pub infos: Vec<String>,
}

/// The PromQL engine. Cheap to share; holds only settings.
#[derive(Debug, Clone)]
pub struct Engine {
    opts: EngineOptions,
    default_sub_step: Duration,
    /// Evaluate selectors and range functions series-major in range queries (tests turn it
    /// off to compare with the step-by-step path).
    series_major: bool,
}

impl Engine {
    /// An engine with these settings.
    pub fn new(opts: EngineOptions) -> Self {
        Self { opts, default_sub_step: Duration::from_secs(60), series_major: true }
    }

    /// The engine evaluating every node step by step (the reference for series-major paths).
    #[cfg(test)]
    pub(crate) fn step_by_step(mut self) -> Self {
        self.series_major = false;
        self
    }

    /// Sets the step of subqueries written without one (`[5m:]`); Prometheus uses the global
    /// evaluation interval, 1m by default.
    pub fn with_default_subquery_step(mut self, step: Duration) -> Self {
        self.default_sub_step = step;
        self
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn query_instant(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult, EvalError> {
        Ok(self.instant_annotated(src, query, time_ms).await?.result)
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`; returns a
    /// [`Value::Matrix`] sorted by labels.
    pub async fn query_range(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, EvalError> {
        Ok(self.range_annotated(src, query, start_ms, end_ms, step_ms).await?.result)
    }

    /// [`Engine::query_instant`], also returning info annotations.
    pub async fn instant_annotated(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        time_ms: i64,
    ) -> Result<Annotated, EvalError> {
        let expr = parse(query)?;
        self.run(src, &expr, query, time_ms, time_ms, 0).await
    }

    /// [`Engine::query_range`], also returning info annotations.
    pub async fn range_annotated(
        &self,
        src: &dyn SeriesSource,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Annotated, EvalError> {
        if step_ms <= 0 {
            return Err(EvalError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive \
                 integer"
                    .to_string(),
            ));
        }
        if end_ms < start_ms {
            return Err(EvalError::BadData(
                "end timestamp must not be before start time".to_string(),
            ));
        }
        // Prometheus (HTTP API): at most 11,000 points per series.
        if end_ms.saturating_sub(start_ms) / step_ms > 11_000 {
            return Err(EvalError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the \
                 query resolution (?step=XX)"
                    .to_string(),
            ));
        }
        let expr = parse(query)?;
        match expr.value_type() {
            promql_parser::parser::value::ValueType::Vector
            | promql_parser::parser::value::ValueType::Scalar => {}
            other => {
                return Err(EvalError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant \
                     Vector",
                    type_label(other)
                )));
            }
        }
        self.run(src, &expr, query, start_ms, end_ms, step_ms).await
    }

    /// Runs an already parsed (and possibly rewritten) expression; `query` is its text, used
    /// for annotation positions. `step == 0` means an instant query at `start`.
    pub(crate) async fn run_expr(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Annotated, EvalError> {
        self.run(src, expr, query, start, end, step).await
    }

    async fn run(
        &self,
        src: &dyn SeriesSource,
        expr: &Expr,
        query_text: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Annotated, EvalError> {
        let began = Instant::now();
        let deadline = began
            .checked_add(self.opts.timeout)
            .unwrap_or(began + Duration::from_secs(86_400 * 365));
        let window = Window {
            query_start: start,
            query_end: end,
            // Prometheus: a zero lookback delta means the 5m default.
            lookback: match plan::ms(&self.opts.lookback_delta) {
                0 => 300_000,
                l => l,
            },
            default_sub_step: plan::ms(&self.default_sub_step),
        };
        let mut requests = HashMap::new();
        plan::collect(expr, start, end, &window, None, &mut requests)?;
        let mut data: Fetched = HashMap::with_capacity(requests.len());
        let mut warnings = Vec::new();
        let mut convert = Duration::ZERO;
        for (id, req) in requests {
            let hints = SelectHints { step_ms: step, ..req.hints };
            let fut = src.select(&req.matchers, req.min_t, req.max_t, &hints);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let selected = match tokio::time::timeout(remaining, fut).await {
                Ok(r) => r.map_err(|e| match e {
                    SourceError::BadRequest(m) => EvalError::BadData(m),
                    SourceError::Limit(m) => EvalError::Execution(m),
                    other => EvalError::Source(other),
                })?,
                Err(_) => return Err(EvalError::Timeout("query select".to_string())),
            };
            for w in selected.warnings {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            let converting = Instant::now();
            data.insert(id, plan::stored_all(selected.series));
            convert += converting.elapsed();
        }
        let fetched = Instant::now();
        if self.series_major {
            let grid = columns::Grid { start, end, step, lookback: window.lookback };
            let max = self.opts.max_samples;
            if let Some(m) = columns::selector_matrix(expr, &mut data, grid, max, deadline)? {
                let result = QueryResult { value: Value::Matrix(m), warnings };
                return Ok(Annotated { result, infos: Vec::new() });
            }
        }
        let series_major = if self.series_major {
            columns::plan(
                expr,
                &data,
                columns::Grid { start, end, step, lookback: window.lookback },
            )
        } else {
            columns::Plan::default()
        };
        let mut ev = Evaluator {
            data: &data,
            query_start: start,
            query_end: end,
            query_step: step,
            lookback: window.lookback,
            default_sub_step: window.default_sub_step,
            deadline,
            timeout_text: "expression evaluation".to_string(),
            query: query_text,
            max_samples: self.opts.max_samples,
            samples: 0,
            warnings: Vec::new(),
            infos: Vec::new(),
            columns: series_major.columns,
            fused: series_major.fused,
            groups: HashMap::new(),
            matching: HashMap::new(),
        };
        let value = if step == 0 {
            instant(&mut ev, expr, start)?
        } else {
            range(&mut ev, expr, start, end, step)?
        };
        warnings.append(&mut ev.warnings);
        tracing::debug!(
            fetch_ms = (fetched - began).as_secs_f64() * 1e3,
            convert_ms = convert.as_secs_f64() * 1e3,
            eval_ms = fetched.elapsed().as_secs_f64() * 1e3,
            "query evaluated"
        );
        let infos = std::mem::take(&mut ev.infos);
        drop(ev);
        drop_later(data);
        Ok(Annotated { result: QueryResult { value, warnings }, infos })
    }
}

/// Frees the fetched series on a thread of their own when they are many: freeing millions
/// of samples and thousands of label sets took 3–6 ms that the answer need not wait for.
fn drop_later(data: Fetched) {
    /// Samples from which the fetched data is freed in the background.
    const BACKGROUND_FROM: usize = 100_000;
    let samples: usize = data.values().flatten().map(|s| s.points.len()).sum();
    if samples >= BACKGROUND_FROM {
        // Should the thread not start, the closure and the data are dropped right here.
        let _ =
            std::thread::Builder::new().name("basin-query-free".into()).spawn(move || drop(data));
    }
}

fn type_label(t: promql_parser::parser::value::ValueType) -> &'static str {
    use promql_parser::parser::value::ValueType;
    match t {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

pub(crate) use strings::unquote_go;

fn parse(query: &str) -> Result<Expr, EvalError> {
    let query = strings::normalize_literals(query);
    promql_parser::parser::parse(&query)
        .map_err(|e| EvalError::BadData(format!("parse error: {e}")))
}

/// The matchers of every selector of `query`, or `None` when it does not parse.
pub(crate) fn query_selectors(query: &str) -> Option<Vec<Vec<basin_proto::storage::Matcher>>> {
    let expr = promql_parser::parser::parse(query).ok()?;
    let mut out = Vec::new();
    plan::selector_matchers(&expr, &mut out);
    Some(out)
}

/// Parses a query as the engine does.
pub(crate) fn parse_query(query: &str) -> Result<Expr, EvalError> {
    parse(query)
}

pub(crate) use plan::{calls_any, pin_at};

/// Removes `__name__` where delayed removal asks for it and rejects duplicate label sets.
fn finalize(v: Vec<Elem>) -> Result<Vec<(Vec<Label>, Elem)>, EvalError> {
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    let mut out = Vec::with_capacity(v.len());
    for e in v {
        let labels = if e.drop_name { without_name(&e.labels) } else { (*e.labels).clone() };
        if !seen.insert(key_of(labels.iter())) {
            return Err(EvalError::Execution(DUPLICATE_LABELSET.to_string()));
        }
        out.push((labels, e));
    }
    Ok(out)
}

fn instant(ev: &mut Evaluator<'_>, expr: &Expr, t: i64) -> Result<Value, EvalError> {
    Ok(match ev.eval(expr, t)? {
        Inst::Scalar(v) => Value::Scalar { t, v },
        Inst::Str(s) => Value::String { t, s },
        Inst::Vector(v) => Value::Vector(
            finalize(v)?.into_iter().map(|(labels, e)| Sample { labels, t, v: e.v }).collect(),
        ),
        Inst::Matrix(m) => {
            let mut seen = std::collections::HashSet::with_capacity(m.len());
            let mut out = Vec::with_capacity(m.len());
            for s in m {
                let labels =
                    if s.drop_name { without_name(&s.labels) } else { (*s.labels).clone() };
                if !seen.insert(key_of(labels.iter())) {
                    return Err(EvalError::Execution(DUPLICATE_LABELSET.to_string()));
                }
                out.push(Series { labels, points: s.points });
            }
            Value::Matrix(out)
        }
    })
}

fn range(
    ev: &mut Evaluator<'_>,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Value, EvalError> {
    let mut out = Collector::default();
    let mut t = start;
    while t <= end {
        ev.check_deadline()?;
        ev.samples = out.held;
        let step_value = ev.eval(expr, t)?;
        let elems = match step_value {
            Inst::Scalar(v) => vec![Elem { labels: Arc::new(Vec::new()), t, v, drop_name: false }],
            Inst::Vector(v) => v,
            other => {
                return Err(EvalError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant \
                     Vector",
                    other.type_name()
                )));
            }
        };
        out.by_addr.prune(elems.len());
        for e in elems {
            out.push(t, e)?;
        }
        if out.held > ev.max_samples {
            return Err(EvalError::Execution(eval::TOO_MANY_SAMPLES.to_string()));
        }
        match t.checked_add(step) {
            Some(next) => t = next,
            None => break,
        }
    }
    let mut series = out.series;
    series.sort_by(|a, b| basin_proto::labels::cmp_labels(&a.labels, &b.labels));
    Ok(Value::Matrix(series))
}

/// Gathers a range query's steps into series. A step element finds its series by the address
/// of its shared label set (the final labels and their key are built once per label set), or
/// by the key of its final labels the first time.
#[derive(Default)]
struct Collector {
    series: Vec<Series>,
    by_key: HashMap<Vec<u8>, usize>,
    /// Series index by label set and `drop_name`.
    by_addr: types::AddrMap<usize>,
    /// Points gathered so far.
    held: usize,
}

impl Collector {
    /// Appends `e` at step `t`; fails when the step already has a point with the same final
    /// labels.
    fn push(&mut self, t: i64, e: Elem) -> Result<(), EvalError> {
        let i = match self.by_addr.get(&e.labels, usize::from(e.drop_name)) {
            Some(i) => i,
            None => {
                let labels =
                    if e.drop_name { without_name(&e.labels) } else { (*e.labels).clone() };
                let series = &mut self.series;
                let i = *self.by_key.entry(key_of(labels.iter())).or_insert_with(|| {
                    series.push(Series { labels, points: Vec::new() });
                    series.len() - 1
                });
                self.by_addr.insert(&e.labels, usize::from(e.drop_name), i);
                i
            }
        };
        let points = &mut self.series[i].points;
        if points.last().is_some_and(|&(last, _)| last == t) {
            return Err(EvalError::Execution(DUPLICATE_LABELSET.to_string()));
        }
        points.push((t, e.v));
        self.held += 1;
        Ok(())
    }
}
