//! The fetch plan: which series each selector needs and over which time window.
//!
//! Before evaluating, the engine walks the AST once and computes, for every vector and
//! matrix selector, the widest window any evaluation step will read (taking `offset`, `@`,
//! the range, enclosing subqueries and the lookback delta into account). Each selector is then
//! fetched exactly once from the [`SeriesSource`](crate::source::SeriesSource); evaluation
//! runs in memory afterwards.

use super::EvalError;
use super::types::Labels;
use basin_proto::METRIC_NAME;
use basin_proto::node::{SampleFacts, SharedSeries};
use basin_proto::storage::{self, MatchType, SelectHints};
use promql_parser::label::MatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Identity of a selector node in the AST (its address, stable while the AST lives).
pub(crate) type SelectorId = usize;

/// The id of a vector selector node.
pub(crate) fn selector_id(vs: &VectorSelector) -> SelectorId {
    vs as *const VectorSelector as usize
}

/// One selector's fetch: matchers and the inclusive window.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) matchers: Vec<storage::Matcher>,
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) hints: SelectHints,
}

/// A fetched series: its samples in time order, staleness markers included.
#[derive(Debug, Clone)]
pub(crate) struct StoredSeries {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<(i64, f64)>,
    /// Whether any sample is a staleness marker (range windows must then skip them).
    pub(crate) has_stale: bool,
    /// Whether some value (staleness markers left out) is below the one before it: a
    /// counter reset somewhere.
    pub(crate) has_drop: bool,
}

/// Everything fetched for one query, by selector.
pub(crate) type Fetched = HashMap<SelectorId, Vec<StoredSeries>>;

/// Time parameters the plan needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    pub(crate) lookback: i64,
    pub(crate) default_sub_step: i64,
}

/// Milliseconds of a `Duration`.
pub(crate) fn ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Signed milliseconds of an `offset` (0 when absent).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => ms(d),
        Some(Offset::Neg(d)) => -ms(d),
    }
}

/// Milliseconds since the epoch of a `SystemTime` (negative before 1970).
pub(crate) fn system_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => ms(&d),
        Err(e) => -ms(&e.duration()),
    }
}

/// The time an `@` modifier pins evaluation to, if any.
pub(crate) fn at_ms(at: &Option<AtModifier>, query_start: i64, query_end: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(query_start),
        Some(AtModifier::End) => Some(query_end),
        Some(AtModifier::At(t)) => Some(system_ms(t)),
    }
}

/// The wire matchers of a selector, including the metric name given outside the braces.
pub(crate) fn wire_matchers(vs: &VectorSelector) -> Result<Vec<storage::Matcher>, EvalError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::BadData("'or' inside label matchers is not supported".to_string()));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        let already = vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal && &m.value == name);
        if !already {
            out.push(basin_proto::matcher::wire(MatchType::Equal, METRIC_NAME, name));
        }
    }
    for m in &vs.matchers.matchers {
        let t = match m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::Regex,
            MatchOp::NotRe(_) => MatchType::NotRegex,
        };
        out.push(basin_proto::matcher::wire(t, &m.name, &m.value));
    }
    Ok(out)
}

/// Collects the fetch requests of every selector in `expr`, evaluated over `[start, end]`.
pub(crate) fn collect(
    expr: &Expr,
    start: i64,
    end: i64,
    w: &Window,
    func: Option<&str>,
    out: &mut HashMap<SelectorId, Request>,
) -> Result<(), EvalError> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => collect(&p.expr, start, end, w, func, out),
        Expr::Unary(u) => collect(&u.expr, start, end, w, func, out),
        Expr::Binary(b) => {
            collect(&b.lhs, start, end, w, func, out)?;
            collect(&b.rhs, start, end, w, func, out)
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect(p, start, end, w, func, out)?;
            }
            collect(&a.expr, start, end, w, func, out)
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                collect(a, start, end, w, Some(c.func.name), out)?;
            }
            Ok(())
        }
        Expr::VectorSelector(vs) => {
            let (lo, hi) = shifted(start, end, &vs.at, &vs.offset, w);
            add(vs, lo.saturating_sub(w.lookback).saturating_add(1), hi, 0, func, out)
        }
        Expr::MatrixSelector(m) => {
            let (lo, hi) = shifted(start, end, &m.vs.at, &m.vs.offset, w);
            let range = ms(&m.range);
            add(&m.vs, lo.saturating_sub(range).saturating_add(1), hi, range, func, out)
        }
        Expr::Subquery(sq) => {
            let (lo, hi) = shifted(start, end, &sq.at, &sq.offset, w);
            collect(&sq.expr, lo.saturating_sub(ms(&sq.range)), hi, w, None, out)
        }
        Expr::Extension(_) => {
            Err(EvalError::BadData("extension expressions are not supported".to_string()))
        }
    }
}

fn shifted(
    start: i64,
    end: i64,
    at: &Option<AtModifier>,
    offset: &Option<Offset>,
    w: &Window,
) -> (i64, i64) {
    let (lo, hi) = match at_ms(at, w.query_start, w.query_end) {
        Some(a) => (a, a),
        None => (start, end),
    };
    let off = offset_ms(offset);
    (lo.saturating_sub(off), hi.saturating_sub(off))
}

fn add(
    vs: &VectorSelector,
    min_t: i64,
    max_t: i64,
    range: i64,
    func: Option<&str>,
    out: &mut HashMap<SelectorId, Request>,
) -> Result<(), EvalError> {
    let id = selector_id(vs);
    if let Some(r) = out.get_mut(&id) {
        r.min_t = r.min_t.min(min_t);
        r.max_t = r.max_t.max(max_t);
        return Ok(());
    }
    let hints = SelectHints {
        range_ms: range,
        function: func.unwrap_or_default().to_string(),
        ..Default::default()
    };
    out.insert(id, Request { matchers: wire_matchers(vs)?, min_t, max_t, hints });
    Ok(())
}

/// Converts a fetched series into the evaluator's form.
///
/// The samples become points without a copy ([`into_points`]). What evaluation needs to know
/// of them, the storage node found out while reading them; a series from elsewhere gets a
/// pass of its own.
pub(crate) fn stored(series: SharedSeries) -> StoredSeries {
    let mut samples = series.samples;
    let mut facts = series.facts.unwrap_or_else(|| SampleFacts::of(&samples));
    if !facts.ordered {
        crate::fanout::time_order(&mut samples, |s| s.timestamp_ms);
        facts = SampleFacts::of(&samples);
    }
    let mut labels = series.labels;
    if !labels.is_sorted_by(|a, b| a.name <= b.name) {
        Arc::make_mut(&mut labels).sort_by(|a, b| a.name.cmp(&b.name));
    }
    let points = into_points(samples);
    StoredSeries { labels, points, has_stale: facts.has_stale, has_drop: facts.has_drop }
}

// `storage::Sample` and `(i64, f64)` have one layout, for [`into_points`].
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<storage::Sample>() == size_of::<(i64, f64)>());
    assert!(align_of::<storage::Sample>() == align_of::<(i64, f64)>());
    assert!(offset_of!(storage::Sample, timestamp_ms) == offset_of!((i64, f64), 0));
    assert!(offset_of!(storage::Sample, value) == offset_of!((i64, f64), 1));
};

/// The samples as `(timestamp, value)` points, in the same allocation: converting them one by
/// one rewrote every byte of millions of samples with the same bytes.
fn into_points(samples: Vec<storage::Sample>) -> Vec<(i64, f64)> {
    let mut samples = std::mem::ManuallyDrop::new(samples);
    let (ptr, len, cap) = (samples.as_mut_ptr(), samples.len(), samples.capacity());
    // SAFETY: both types have the same size, alignment and field offsets (asserted at compile
    // time above) and hold plain `i64` and `f64` values, valid for any bits; the allocation
    // came from a `Vec` of `cap` elements of that layout, and `samples` is not used again.
    unsafe { Vec::from_raw_parts(ptr.cast::<(i64, f64)>(), len, cap) }
}

/// [`stored`] of every series, in order: on all cores when there are many (series from a
/// remote node get their first pass since they left it).
pub(crate) fn stored_all(series: Vec<SharedSeries>) -> Vec<StoredSeries> {
    let shares = super::shares::split(series, 2048);
    let converted =
        super::shares::map(shares, |share| share.into_iter().map(stored).collect::<Vec<_>>());
    converted.into_iter().flatten().collect()
}

/// The wire matchers of every selector in `expr` (for tools that inspect queries).
pub(crate) fn selector_matchers(expr: &Expr, out: &mut Vec<Vec<storage::Matcher>>) {
    match expr {
        Expr::Paren(p) => selector_matchers(&p.expr, out),
        Expr::Unary(u) => selector_matchers(&u.expr, out),
        Expr::Binary(b) => {
            selector_matchers(&b.lhs, out);
            selector_matchers(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                selector_matchers(p, out);
            }
            selector_matchers(&a.expr, out);
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| selector_matchers(a, out)),
        Expr::Subquery(sq) => selector_matchers(&sq.expr, out),
        Expr::VectorSelector(vs) => out.extend(wire_matchers(vs).ok()),
        Expr::MatrixSelector(m) => out.extend(wire_matchers(&m.vs).ok()),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Pins every selector and subquery without `@` to `t_ms` (not descending into subqueries,
/// whose inner selectors stay relative to the subquery's steps). Used by the conformance
/// runner's step-invariance check.
pub(crate) fn pin_at(expr: &mut Expr, t_ms: i64) {
    let at = || {
        let d = Duration::from_millis(t_ms.unsigned_abs());
        let t = if t_ms >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(d)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(d)
        };
        t.map(AtModifier::At)
    };
    match expr {
        Expr::Paren(p) => pin_at(&mut p.expr, t_ms),
        Expr::Unary(u) => pin_at(&mut u.expr, t_ms),
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, t_ms);
            pin_at(&mut b.rhs, t_ms);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                pin_at(p, t_ms);
            }
            pin_at(&mut a.expr, t_ms);
        }
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| pin_at(a, t_ms)),
        Expr::Subquery(sq) => {
            if sq.at.is_none() {
                sq.at = at();
            }
        }
        Expr::VectorSelector(vs) => {
            if vs.at.is_none() {
                vs.at = at();
            }
        }
        Expr::MatrixSelector(m) => {
            if m.vs.at.is_none() {
                m.vs.at = at();
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether `expr` calls any of the functions `names`.
pub(crate) fn calls_any(expr: &Expr, names: &[&str]) -> bool {
    match expr {
        Expr::Paren(p) => calls_any(&p.expr, names),
        Expr::Unary(u) => calls_any(&u.expr, names),
        Expr::Binary(b) => calls_any(&b.lhs, names) || calls_any(&b.rhs, names),
        Expr::Aggregate(a) => {
            a.param.as_ref().is_some_and(|p| calls_any(p, names)) || calls_any(&a.expr, names)
        }
        Expr::Call(c) => {
            names.contains(&c.func.name) || c.args.args.iter().any(|a| calls_any(a, names))
        }
        Expr::Subquery(sq) => calls_any(&sq.expr, names),
        Expr::MatrixSelector(_)
        | Expr::VectorSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: &[(i64, f64)]) -> SharedSeries {
        SharedSeries {
            labels: Arc::new(vec![
                storage::Label { name: "job".into(), value: "a".into() },
                storage::Label { name: "__name__".into(), value: "x".into() },
            ]),
            samples: samples
                .iter()
                .map(|&(timestamp_ms, value)| storage::Sample { timestamp_ms, value })
                .collect(),
            facts: None,
        }
    }

    /// Many series are converted on several threads and come out in their order.
    #[test]
    fn stored_all_keeps_order() {
        let input: Vec<SharedSeries> = (0..5_000)
            .map(|i| {
                let mut s = series(&[(i, 1.0), (i - 1, 2.0)]);
                Arc::make_mut(&mut s.labels)[0].value = i.to_string();
                s
            })
            .collect();
        let want: Vec<StoredSeries> = input.clone().into_iter().map(stored).collect();
        let got = stored_all(input);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.labels, &g.points, g.has_drop), (&w.labels, &w.points, w.has_drop));
        }
    }

    /// Samples come out time-ordered with the first of each timestamp, labels sorted by name,
    /// and the flags describe the samples.
    #[test]
    fn stored_orders_samples_and_flags_them() {
        let stale = f64::from_bits(basin_proto::STALE_NAN_BITS);
        let s = stored(series(&[(30, 3.0), (10, 1.0), (20, 5.0), (10, 9.0)]));
        assert_eq!(s.points, vec![(10, 1.0), (20, 5.0), (30, 3.0)]);
        assert_eq!(s.labels[0].name, "__name__");
        assert!(s.has_drop && !s.has_stale);
        // A staleness marker between two equal values is neither a drop nor hides one.
        let s = stored(series(&[(10, 2.0), (20, stale), (30, 2.0), (40, 4.0)]));
        assert!(s.has_stale && !s.has_drop);
        let s = stored(series(&[(10, 2.0), (20, stale), (30, 1.0)]));
        assert!(s.has_stale && s.has_drop);
        let s = stored(series(&[(10, 1.0), (20, f64::NAN), (30, 0.5)]));
        assert!(!s.has_drop, "comparisons with NaN are false, as between neighbours");
    }

    /// Facts the node sends are taken as they are (no pass of the engine's own), except that
    /// samples it did not find in order are ordered and looked at again.
    #[test]
    fn stored_takes_the_nodes_facts() {
        let claimed = SampleFacts { ordered: true, has_stale: true, has_drop: true };
        let mut s = series(&[(10, 1.0), (20, 2.0)]);
        s.facts = Some(claimed);
        let got = stored(s);
        assert!(got.has_stale && got.has_drop, "the node's facts, not the samples'");
        let mut s = series(&[(20, 2.0), (10, 1.0)]);
        s.facts = Some(SampleFacts { ordered: false, ..claimed });
        let got = stored(s);
        assert_eq!(got.points, vec![(10, 1.0), (20, 2.0)]);
        assert!(!got.has_stale && !got.has_drop);
    }
}
