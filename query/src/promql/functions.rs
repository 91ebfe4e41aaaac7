//! Function calls: instant-vector functions, range-vector functions (`*_over_time`, `rate`,
//! ...), label functions, date functions and the classic-histogram functions.
//!
//! Functions drop the metric name of their output (delayed, see [`super::types`]) except
//! `last_over_time`, `first_over_time`, the sort functions and the label functions (which keep
//! it when they write `__name__` themselves).

use super::EvalError;
use super::aggregate::valid_label_name;
use super::eval::Evaluator;
use super::histogram;
use super::rangefn;
use super::types::{Elem, Inst, RangeSeries, get, set};
use basin_proto::METRIC_NAME;
use basin_proto::storage::Label;
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};
use std::sync::Arc;

/// Neumaier-compensated summation step: returns the new sum and compensation.
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The φ-quantile of `values` (Prometheus' `quantile`, linear interpolation).
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `math.Max` (NaN if either is NaN).
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Go's `math.Min` (NaN if either is NaN).
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

fn arg(c: &Call, i: usize) -> Result<&Expr, EvalError> {
    c.args
        .args
        .get(i)
        .map(|b| b.as_ref())
        .ok_or_else(|| EvalError::BadData(format!("missing argument {i} to {}", c.func.name)))
}

/// Applies `f` to every element, dropping the metric name.
fn map_values(v: Vec<Elem>, t: i64, f: impl Fn(f64) -> f64) -> Inst {
    Inst::Vector(v.into_iter().map(|e| Elem { t, v: f(e.v), drop_name: true, ..e }).collect())
}

/// Evaluates a function call at `t`.
pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Inst, EvalError> {
    let name = c.func.name;
    if let Some(f) = math_fn(name) {
        let v = ev.eval_vector(arg(c, 0)?, t)?;
        return Ok(map_values(v, t, f));
    }
    if rangefn::is_range_fn(name) {
        return rangefn::call(ev, c, t);
    }
    match name {
        "time" => Ok(Inst::Scalar(t as f64 / 1000.0)),
        "pi" => Ok(Inst::Scalar(std::f64::consts::PI)),
        "start" => Ok(Inst::Scalar(ev.query_start as f64 / 1000.0)),
        "end" => Ok(Inst::Scalar(ev.query_end as f64 / 1000.0)),
        "step" => Ok(Inst::Scalar(ev.query_step as f64 / 1000.0)),
        "range" => Ok(Inst::Scalar((ev.query_end - ev.query_start) as f64 / 1000.0)),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg(c, 0)?, t)?;
            let b = ev.eval_scalar(arg(c, 1)?, t)?;
            Ok(Inst::Scalar(if name == "min_of" { go_min(a, b) } else { go_max(a, b) }))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let mut names = Vec::new();
            for a in c.args.args.iter().skip(1) {
                names.push(ev.eval_string(a, t)?);
            }
            if ev.query_start != ev.query_end {
                let pos = ev.position_of_call(name, None);
                ev.warn_at(
                    "sort is ineffective for range queries since results are always ordered by \
                     labels"
                        .to_string(),
                    pos,
                );
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let o = names
                    .iter()
                    .map(|n| natural_cmp(get(&a.labels, n), get(&b.labels, n)))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| basin_proto::labels::cmp_labels(&a.labels, &b.labels));
                if desc { o.reverse() } else { o }
            });
            Ok(Inst::Vector(v.into_iter().map(|e| Elem { t, ..e }).collect()))
        }
        "vector" => {
            let v = ev.eval_scalar(arg(c, 0)?, t)?;
            Ok(Inst::Vector(vec![Elem { labels: Arc::new(Vec::new()), t, v, drop_name: false }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            Ok(Inst::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "round" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let to = match c.args.args.get(1) {
                Some(e) => ev.eval_scalar(e, t)?,
                None => 1.0,
            };
            let inv = 1.0 / to;
            Ok(map_values(v, t, |x| (x * inv + 0.5).floor() / inv))
        }
        "clamp" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let lo = ev.eval_scalar(arg(c, 1)?, t)?;
            let hi = ev.eval_scalar(arg(c, 2)?, t)?;
            if hi < lo {
                return Ok(Inst::Vector(Vec::new()));
            }
            Ok(map_values(v, t, |x| go_max(lo, go_min(hi, x))))
        }
        "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let hi = ev.eval_scalar(arg(c, 1)?, t)?;
            Ok(map_values(v, t, |x| go_min(hi, x)))
        }
        "clamp_min" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let lo = ev.eval_scalar(arg(c, 1)?, t)?;
            Ok(map_values(v, t, |x| go_max(lo, x)))
        }
        "timestamp" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            Ok(Inst::Vector(
                v.into_iter()
                    .map(|e| Elem { v: e.t as f64 / 1000.0, t, drop_name: true, ..e })
                    .collect(),
            ))
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let v = match c.args.args.first() {
                Some(e) => ev.eval_vector(e, t)?,
                None => vec![Elem {
                    labels: Arc::new(Vec::new()),
                    t,
                    v: t as f64 / 1000.0,
                    drop_name: false,
                }],
            };
            Ok(map_values(v, t, |x| date_part(name, x)))
        }
        "absent" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            if !v.is_empty() {
                return Ok(Inst::Vector(Vec::new()));
            }
            Ok(Inst::Vector(vec![Elem {
                labels: Arc::new(absent_labels(arg(c, 0)?)),
                t,
                v: 1.0,
                drop_name: false,
            }]))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let desc = name == "sort_desc";
            v.sort_by(|a, b| {
                use std::cmp::Ordering::*;
                match (a.v.is_nan(), b.v.is_nan()) {
                    (true, true) => Equal,
                    (true, false) => Greater,
                    (false, true) => Less,
                    _ if desc => b.v.partial_cmp(&a.v).unwrap_or(Equal),
                    _ => a.v.partial_cmp(&b.v).unwrap_or(Equal),
                }
            });
            if ev.query_start != ev.query_end {
                let pos = ev.position_of_call(name, None);
                ev.warn_at(
                    "sort is ineffective for range queries since results are always ordered by \
                     labels"
                        .to_string(),
                    pos,
                );
            }
            Ok(Inst::Vector(v.into_iter().map(|e| Elem { t, ..e }).collect()))
        }
        "label_replace" => label_replace(ev, c, t),
        "label_join" => label_join(ev, c, t),
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(c, 0)?, t)?;
            let v = ev.eval_vector(arg(c, 1)?, t)?;
            histogram::quantile(ev, q, v, t)
        }
        "histogram_fraction" => {
            let lo = ev.eval_scalar(arg(c, 0)?, t)?;
            let hi = ev.eval_scalar(arg(c, 1)?, t)?;
            let v = ev.eval_vector(arg(c, 2)?, t)?;
            histogram::fraction(ev, lo, hi, v, t)
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Classic series carry no native histograms, so these yield nothing.
            let _ = ev.eval_vector(arg(c, 0)?, t)?;
            Ok(Inst::Vector(Vec::new()))
        }
        other => Err(EvalError::BadData(format!("function {other}() is not supported"))),
    }
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

/// The labels `absent(sel)` reports: the selector's equality matchers, except `__name__` and
/// names matched by more than one equality matcher.
pub(crate) fn absent_labels(e: &Expr) -> Vec<Label> {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(m) => &m.vs,
        Expr::Paren(p) => return absent_labels(&p.expr),
        _ => return Vec::new(),
    };
    // Prometheus: the first equality matcher of a name sets it; any other matcher on the
    // same name removes it again.
    let mut out: Vec<Label> = Vec::new();
    let mut has: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name.as_str()) {
            set(&mut out, &m.name, &m.value);
            has.push(&m.name);
        } else {
            out.retain(|l| l.name != m.name);
        }
    }
    out.retain(|l| !l.value.is_empty());
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian calendar.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let month_days = [31, if is_leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    match name {
        "minute" => ((sod / 60) % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_month" => f64::from(d),
        "day_of_year" => {
            let before: u32 = month_days[..(m as usize - 1)].iter().sum();
            f64::from(before + d)
        }
        "days_in_month" => f64::from(month_days[m as usize - 1]),
        "month" => f64::from(m),
        _ => y as f64,
    }
}

fn label_replace(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Inst, EvalError> {
    let v = ev.eval_vector(arg(c, 0)?, t)?;
    let dst = ev.eval_string(arg(c, 1)?, t)?;
    let repl = ev.eval_string(arg(c, 2)?, t)?;
    let src = ev.eval_string(arg(c, 3)?, t)?;
    let re_text = ev.eval_string(arg(c, 4)?, t)?;
    let re = regex::Regex::new(&format!("^(?s:{re_text})$")).map_err(|e| {
        EvalError::Execution(format!("invalid regular expression in label_replace(): {e}"))
    })?;
    if !valid_label_name(&dst) {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut e in v {
        let sv = get(&e.labels, &src).to_string();
        if let Some(caps) = re.captures(&sv) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            set_label(&mut e, &dst, &res);
        }
        out.push(Elem { t, ..e });
    }
    Ok(Inst::Vector(out))
}

/// Sets label `name` of `e` (as `label_replace` and `label_join` do): a metric name set
/// this way is kept at the end of evaluation.
fn set_label(e: &mut Elem, name: &str, value: &str) {
    let mut labels = (*e.labels).clone();
    set(&mut labels, name, value);
    e.labels = Arc::new(labels);
    if name == METRIC_NAME {
        e.drop_name = false;
    }
}

fn label_join(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Inst, EvalError> {
    let v = ev.eval_vector(arg(c, 0)?, t)?;
    let dst = ev.eval_string(arg(c, 1)?, t)?;
    let sep = ev.eval_string(arg(c, 2)?, t)?;
    let mut srcs = Vec::new();
    for a in c.args.args.iter().skip(3) {
        srcs.push(ev.eval_string(a, t)?);
    }
    if !valid_label_name(&dst) {
        return Err(EvalError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for mut e in v {
        let joined: Vec<&str> = srcs.iter().map(|s| get(&e.labels, s)).collect();
        let joined = joined.join(&sep);
        set_label(&mut e, &dst, &joined);
        out.push(Elem { t, ..e });
    }
    Ok(Inst::Vector(out))
}

/// Output element for a range function over one series.
pub(crate) fn range_out(s: &RangeSeries, t: i64, v: f64, keep_name: bool) -> Elem {
    Elem {
        labels: Arc::clone(&s.labels),
        t,
        v,
        drop_name: if keep_name { s.drop_name } else { true },
    }
}

/// Natural order: runs of digits compare by numeric value, everything else bytewise.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (x, y) = (trim_zeros(&a[si..i]), trim_zeros(&b[sj..j]));
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o.is_ne() {
                return o;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n.min(d.len().saturating_sub(1))..]
}
