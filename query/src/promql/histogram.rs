//! `histogram_quantile` and `histogram_fraction` over classic histograms: series that share
//! all labels but `le` form one histogram, `le` being each bucket's upper bound.

use super::EvalError;
use super::aggregate::fmt_go;
use super::eval::Evaluator;
use super::types::{Elem, Inst, get, key_of};
use basin_proto::METRIC_NAME;
use basin_proto::storage::Label;
use std::collections::HashMap;
use std::sync::Arc;

const LE: &str = "le";

/// One histogram assembled from bucket series.
struct Classic {
    labels: Vec<Label>,
    name: String,
    /// `(upper bound, cumulative count)`.
    buckets: Vec<(f64, f64)>,
}

/// Groups bucket series into histograms; warns about series with a bad `le`.
fn group(ev: &mut Evaluator<'_>, v: Vec<Elem>, pos: Option<(usize, usize)>) -> Vec<Classic> {
    let mut out: Vec<Classic> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for e in v {
        let le = get(&e.labels, LE);
        let name = get(&e.labels, METRIC_NAME).to_string();
        let Some(ub) = parse_le(le) else {
            ev.warn_at(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of {le:?} for \
                     metric name {name:?}"
                ),
                pos,
            );
            continue;
        };
        let key = key_of(e.labels.iter().filter(|l| l.name != LE));
        let i = *index.entry(key).or_insert_with(|| {
            let labels = e.labels.iter().filter(|l| l.name != LE).cloned().collect();
            out.push(Classic { labels, name, buckets: Vec::new() });
            out.len() - 1
        });
        out[i].buckets.push((ub, e.v));
    }
    out
}

fn parse_le(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Sorts buckets, merges equal bounds, and makes counts monotonic. Returns `None` when the
/// histogram is unusable (no `+Inf` bucket), else whether counts had to be forced monotonic.
fn prepare(buckets: &mut Vec<(f64, f64)>) -> Option<bool> {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    *buckets = merged;
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    Some(forced)
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let norm = (a.abs() + b.abs()).min(f64::MAX);
    diff < eps * norm.max(f64::MIN_POSITIVE)
}

/// Prometheus' `BucketQuantile` on prepared buckets.
fn bucket_quantile(q: f64, b: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = b[..b.len() - 1].partition_point(|x| x.1 < rank);
    if i == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if i == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[i].0, b[i].1);
    if i > 0 {
        start = b[i - 1].0;
        count -= b[i - 1].1;
        rank -= b[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Prometheus' `BucketFraction`: the share of observations in `[lower, upper]`, interpolating
/// linearly inside finite buckets; infinite-width buckets are not interpolated.
fn bucket_fraction(lower: f64, upper: f64, b: &[(f64, f64)]) -> f64 {
    let count = b[b.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, &(ub, cum)) in b.iter().enumerate() {
        let lb = if i > 0 {
            b[i - 1].0
        } else if ub > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        let interpolate = |v: f64| -> f64 {
            if lb == f64::NEG_INFINITY {
                cum
            } else if ub == f64::INFINITY {
                rank
            } else {
                rank + (cum - rank) * (v - lb) / (ub - lb)
            }
        };
        if !lower_set && lb >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lb >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lb < lower && ub > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lb < upper && ub > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = cum;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn out_elem(h: Classic, t: i64, v: f64) -> Elem {
    Elem { labels: Arc::new(h.labels), t, v, drop_name: true }
}

/// `histogram_quantile(q, buckets)` at `t`.
pub(crate) fn quantile(
    ev: &mut Evaluator<'_>,
    q: f64,
    v: Vec<Elem>,
    t: i64,
) -> Result<Inst, EvalError> {
    if !(0.0..=1.0).contains(&q) {
        let pos = ev.position_of_call("histogram_quantile", Some(0));
        ev.warn_at(format!("quantile value should be between 0 and 1, got {}", fmt_go(q)), pos);
    }
    let pos = ev.position_of_call("histogram_quantile", Some(1));
    let mut out = Vec::new();
    for mut h in group(ev, v, pos) {
        let Some(forced) = prepare(&mut h.buckets) else {
            out.push(out_elem(h, t, f64::NAN));
            continue;
        };
        if forced {
            ev.info_at(
                format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see \
                     https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) \
                     for metric name {:?}",
                    h.name
                ),
                pos,
            );
        }
        let r = bucket_quantile(q, &h.buckets);
        out.push(out_elem(h, t, r));
    }
    Ok(Inst::Vector(out))
}

/// `histogram_fraction(lower, upper, buckets)` at `t`.
pub(crate) fn fraction(
    ev: &mut Evaluator<'_>,
    lower: f64,
    upper: f64,
    v: Vec<Elem>,
    t: i64,
) -> Result<Inst, EvalError> {
    let pos = ev.position_of_call("histogram_fraction", Some(2));
    let mut out = Vec::new();
    for mut h in group(ev, v, pos) {
        if prepare(&mut h.buckets).is_none() {
            out.push(out_elem(h, t, f64::NAN));
            continue;
        }
        let r = bucket_fraction(lower, upper, &h.buckets);
        out.push(out_elem(h, t, r));
    }
    Ok(Inst::Vector(out))
}
