//! The evaluator: computes one node at one evaluation time over the fetched data.
//!
//! Range queries evaluate the whole expression once per step (so no node materialises more
//! than one step's worth of data, except range vectors and subqueries, which hold exactly their
//! window). Windows are left-open: a range selector `[d]` at `t` covers `(t-d, t]`, and an
//! instant selector takes the newest sample in `(t-lookback, t]` unless it is a staleness
//! marker.

use super::EvalError;
use super::aggregate::Groups;
use super::binary::Matching;
use super::columns::{Columns, ColumnsKey, Fused};
use super::plan::{Fetched, at_ms, ms, offset_ms, selector_id};
use super::types::{Elem, Inst, RangeSeries, key_of};
use super::{aggregate, binary, functions};
use basin_proto::is_stale_nan;
use promql_parser::parser::{Expr, MatrixSelector, SubqueryExpr, VectorSelector};
use std::collections::HashMap;
use std::time::Instant;

/// Evaluation state shared by all steps of one query.
#[derive(Debug)]
pub(crate) struct Evaluator<'a> {
    pub(crate) data: &'a Fetched,
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    /// Step of a range query, 0 for an instant query.
    pub(crate) query_step: i64,
    pub(crate) lookback: i64,
    pub(crate) default_sub_step: i64,
    pub(crate) deadline: Instant,
    pub(crate) timeout_text: String,
    /// The query text, to locate annotation positions.
    pub(crate) query: &'a str,
    pub(crate) max_samples: usize,
    /// Samples currently held (selector output of the current step plus accumulated output).
    pub(crate) samples: usize,
    pub(crate) warnings: Vec<String>,
    pub(crate) infos: Vec<String>,
    /// Nodes evaluated series-major (range queries only).
    pub(crate) columns: HashMap<ColumnsKey, Columns<'a>>,
    /// Aggregations fused with their series-major input, by node address.
    pub(crate) fused: HashMap<usize, Fused<'a>>,
    /// Grouping of each aggregation node, remembered across steps.
    pub(crate) groups: HashMap<usize, Groups>,
    /// Vector matching of each binary node, remembered across steps.
    pub(crate) matching: HashMap<usize, Matching>,
}

/// The error Prometheus returns when `--query.max-samples` is exceeded.
pub(crate) const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

impl Evaluator<'_> {
    /// Adds `n` samples to the running count, failing past the limit.
    pub(crate) fn account(&mut self, n: usize) -> Result<(), EvalError> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.max_samples {
            return Err(EvalError::Execution(TOO_MANY_SAMPLES.to_string()));
        }
        Ok(())
    }

    /// Fails when the query ran past its deadline.
    pub(crate) fn check_deadline(&self) -> Result<(), EvalError> {
        if Instant::now() > self.deadline {
            return Err(EvalError::Timeout(self.timeout_text.clone()));
        }
        Ok(())
    }

    /// Records a warning annotation once.
    pub(crate) fn warn(&mut self, msg: String) {
        let msg = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// `(line:col)` of a call or one of its arguments, for annotations.
    pub(crate) fn position_of_call(
        &self,
        name: &str,
        arg: Option<usize>,
    ) -> Option<(usize, usize)> {
        super::position::of_call(self.query, name, arg)
    }

    /// Records a warning with a position suffix when known.
    pub(crate) fn warn_at(&mut self, msg: String, pos: Option<(usize, usize)>) {
        match pos {
            Some((l, c)) => self.warn(format!("{msg} ({l}:{c})")),
            None => self.warn(msg),
        }
    }

    /// Records an info with a position suffix when known.
    pub(crate) fn info_at(&mut self, msg: String, pos: Option<(usize, usize)>) {
        match pos {
            Some((l, c)) => self.info(format!("{msg} ({l}:{c})")),
            None => self.info(msg),
        }
    }

    /// Records an info annotation once.
    pub(crate) fn info(&mut self, msg: String) {
        let msg = format!("PromQL info: {msg}");
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// Evaluates `e` at time `t` (ms).
    pub(crate) fn eval(&mut self, e: &Expr, t: i64) -> Result<Inst, EvalError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Inst::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Inst::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Inst::Scalar(v) => Ok(Inst::Scalar(-v)),
                Inst::Vector(v) => Ok(Inst::Vector(
                    v.into_iter().map(|e| Elem { t, v: -e.v, drop_name: true, ..e }).collect(),
                )),
                other => Err(EvalError::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or instant \
                     vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => match self.columns_at(ColumnsKey::selector(vs), t)? {
                Some(v) => Ok(Inst::Vector(v)),
                None => Ok(Inst::Vector(self.select_instant(vs, t)?)),
            },
            Expr::MatrixSelector(m) => Ok(Inst::Matrix(self.select_range(m, t)?.0)),
            Expr::Subquery(sq) => Ok(Inst::Matrix(self.subquery(sq, t)?.0)),
            Expr::Binary(b) => binary::eval(self, b, t),
            Expr::Aggregate(a) => aggregate::eval(self, a, t),
            Expr::Call(c) => functions::call(self, c, t),
            Expr::Extension(_) => {
                Err(EvalError::BadData("extension expressions are not supported".to_string()))
            }
        }
    }

    /// Evaluates `e` expecting an instant vector.
    pub(crate) fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Elem>, EvalError> {
        match self.eval(e, t)? {
            Inst::Vector(v) => Ok(v),
            other => Err(EvalError::BadData(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `e` expecting a scalar.
    pub(crate) fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64, EvalError> {
        match self.eval(e, t)? {
            Inst::Scalar(v) => Ok(v),
            other => Err(EvalError::BadData(format!("expected scalar, got {}", other.type_name()))),
        }
    }

    /// Evaluates `e` expecting a string.
    pub(crate) fn eval_string(&mut self, e: &Expr, t: i64) -> Result<String, EvalError> {
        match self.eval(e, t)? {
            Inst::Str(s) => Ok(s),
            other => Err(EvalError::BadData(format!("expected string, got {}", other.type_name()))),
        }
    }

    /// The time a selector with `@`/`offset` reads at when evaluated at `t`.
    fn effective(
        &self,
        t: i64,
        at: &Option<promql_parser::parser::AtModifier>,
        off: &Option<promql_parser::parser::Offset>,
    ) -> i64 {
        at_ms(at, self.query_start, self.query_end).unwrap_or(t).saturating_sub(offset_ms(off))
    }

    /// An instant vector selector at `t`.
    pub(crate) fn select_instant(
        &mut self,
        vs: &VectorSelector,
        t: i64,
    ) -> Result<Vec<Elem>, EvalError> {
        let at = self.effective(t, &vs.at, &vs.offset);
        let Some(series) = self.data.get(&selector_id(vs)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for s in series {
            let idx = s.points.partition_point(|&(ts, _)| ts <= at);
            if idx == 0 {
                continue;
            }
            let (ts, v) = s.points[idx - 1];
            if ts <= at.saturating_sub(self.lookback) || is_stale_nan(v) {
                continue;
            }
            out.push(Elem { labels: std::sync::Arc::clone(&s.labels), t: ts, v, drop_name: false });
        }
        self.account(out.len())?;
        Ok(out)
    }

    /// A range selector at `t`: the series with at least one sample in the window, and the
    /// window `(start, end]`.
    pub(crate) fn select_range(
        &mut self,
        m: &MatrixSelector,
        t: i64,
    ) -> Result<(Vec<RangeSeries>, i64, i64), EvalError> {
        self.check_deadline()?;
        let end = self.effective(t, &m.vs.at, &m.vs.offset);
        let start = end.saturating_sub(ms(&m.range));
        let Some(series) = self.data.get(&selector_id(&m.vs)) else {
            return Ok((Vec::new(), start, end));
        };
        let mut out = Vec::new();
        let mut total = 0;
        for s in series {
            let lo = s.points.partition_point(|&(ts, _)| ts <= start);
            let hi = s.points.partition_point(|&(ts, _)| ts <= end);
            let points: Vec<(i64, f64)> =
                s.points[lo..hi].iter().copied().filter(|&(_, v)| !is_stale_nan(v)).collect();
            if points.is_empty() {
                continue;
            }
            total += points.len();
            out.push(RangeSeries {
                labels: std::sync::Arc::clone(&s.labels),
                points,
                drop_name: false,
            });
        }
        self.account(total)?;
        Ok((out, start, end))
    }

    /// A subquery at `t`: the inner expression evaluated at every multiple of the step inside
    /// `(end-range, end]`, and that window.
    pub(crate) fn subquery(
        &mut self,
        sq: &SubqueryExpr,
        t: i64,
    ) -> Result<(Vec<RangeSeries>, i64, i64), EvalError> {
        let end = self.effective(t, &sq.at, &sq.offset);
        let range = ms(&sq.range);
        let step = sq.step.as_ref().map(ms).unwrap_or(self.default_sub_step).max(1);
        let start = end.saturating_sub(range);
        // Prometheus: the first step is the first multiple of the step after `start` (Go's
        // truncating division, so negative times align the same way).
        let mut ts = step * (start / step);
        if ts <= start {
            ts = ts.saturating_add(step);
        }
        let mut order: Vec<RangeSeries> = Vec::new();
        let mut index: HashMap<(Vec<u8>, bool), usize> = HashMap::new();
        let mut total = 0;
        while ts <= end {
            self.check_deadline()?;
            match self.eval(&sq.expr, ts)? {
                Inst::Vector(v) => {
                    for e in v {
                        let k = (key_of(e.labels.iter()), e.drop_name);
                        let i = *index.entry(k).or_insert_with(|| {
                            order.push(RangeSeries {
                                labels: std::sync::Arc::clone(&e.labels),
                                points: Vec::new(),
                                drop_name: e.drop_name,
                            });
                            order.len() - 1
                        });
                        order[i].points.push((ts, e.v));
                        total += 1;
                    }
                    // Counted as it grows, so a huge subquery fails before exhausting memory.
                    self.account(total)?;
                    total = 0;
                }
                Inst::Scalar(v) => {
                    let i = *index.entry((Vec::new(), false)).or_insert_with(|| {
                        order.push(RangeSeries {
                            labels: std::sync::Arc::new(Vec::new()),
                            points: Vec::new(),
                            drop_name: false,
                        });
                        order.len() - 1
                    });
                    order[i].points.push((ts, v));
                    total += 1;
                }
                other => {
                    return Err(EvalError::BadData(format!(
                        "subquery is only allowed on instant vector, got {}",
                        other.type_name()
                    )));
                }
            }
            match ts.checked_add(step) {
                Some(next) => ts = next,
                None => break,
            }
        }
        self.account(total)?;
        Ok((order, start, end))
    }

    /// Evaluates a range-vector argument (matrix selector or subquery, possibly in parens).
    pub(crate) fn eval_range_arg(
        &mut self,
        e: &Expr,
        t: i64,
    ) -> Result<(Vec<RangeSeries>, i64, i64), EvalError> {
        match e {
            Expr::MatrixSelector(m) => self.select_range(m, t),
            Expr::Subquery(sq) => self.subquery(sq, t),
            Expr::Paren(p) => self.eval_range_arg(&p.expr, t),
            _ => match self.eval(e, t)? {
                Inst::Matrix(m) => Ok((m, t, t)),
                other => Err(EvalError::BadData(format!(
                    "expected range vector, got {}",
                    other.type_name()
                ))),
            },
        }
    }
}
