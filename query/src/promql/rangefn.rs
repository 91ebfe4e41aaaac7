//! Functions over range vectors: `rate`/`increase`/`delta` with Prometheus' extrapolation,
//! `irate`/`idelta`, `deriv`/`predict_linear`, `resets`/`changes` and the `*_over_time` family.

use super::EvalError;
use super::columns::{ColumnsKey, StepCells};
use super::eval::Evaluator;
use super::functions::{absent_labels, kahan_inc, quantile, range_out};
use super::types::{Elem, Inst, get};
use basin_proto::METRIC_NAME;
use basin_proto::storage::Label;
use promql_parser::parser::Call;
use std::sync::Arc;

/// Whether `name` takes a range vector.
pub(crate) fn is_range_fn(name: &str) -> bool {
    matrix_arg(name).is_some()
}

/// Index of the range-vector argument of a range function.
fn matrix_arg(name: &str) -> Option<usize> {
    Some(match name {
        "quantile_over_time" => 1,
        "rate"
        | "irate"
        | "increase"
        | "delta"
        | "idelta"
        | "deriv"
        | "predict_linear"
        | "resets"
        | "changes"
        | "avg_over_time"
        | "sum_over_time"
        | "min_over_time"
        | "max_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "absent_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "double_exponential_smoothing"
        | "mad_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time"
        | "ts_of_max_over_time"
        | "ts_of_min_over_time" => 0,
        _ => return None,
    })
}

/// A series-major range function's answer at `t` (scalar arguments evaluated first, as
/// [`call`] does), or `None` when it must be evaluated step by step.
pub(crate) fn call_cells<'a>(
    ev: &mut Evaluator<'a>,
    c: &Call,
    t: i64,
) -> Result<Option<StepCells<'a>>, EvalError> {
    let scalars = scalar_args(ev, c, t)?;
    cells_with(ev, c, &scalars, t)
}

/// The arguments of range function call `c` other than its range vector, evaluated at `t`
/// in order.
fn scalar_args(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Vec<f64>, EvalError> {
    let mi = matrix_arg(c.func.name).unwrap_or(0);
    let mut scalars = Vec::new();
    for (i, a) in c.args.args.iter().enumerate() {
        if i != mi {
            scalars.push(ev.eval_scalar(a, t)?);
        }
    }
    Ok(scalars)
}

/// [`call_cells`] with the scalar arguments evaluated already.
fn cells_with<'a>(
    ev: &mut Evaluator<'a>,
    c: &Call,
    scalars: &[f64],
    t: i64,
) -> Result<Option<StepCells<'a>>, EvalError> {
    let name = c.func.name;
    if c.args.args.get(matrix_arg(name).unwrap_or(0)).is_none() {
        return Ok(None);
    }
    let cells = ev.columns_step(ColumnsKey::call(c), t)?;
    if cells.is_some() {
        quantile_warning(ev, name, scalars);
    }
    Ok(cells)
}

/// Evaluates a range function at `t`.
pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Inst, EvalError> {
    let name = c.func.name;
    let mi = matrix_arg(name).unwrap_or(0);
    // Scalar arguments first, in order.
    let scalars = scalar_args(ev, c, t)?;
    let Some(marg) = c.args.args.get(mi) else {
        return Err(EvalError::BadData(format!("missing range argument to {name}")));
    };
    if let Some(cells) = cells_with(ev, c, &scalars, t)? {
        return Ok(Inst::Vector(cells.into_elems()));
    }
    let (series, start, end) = ev.eval_range_arg(marg, t)?;
    let range = end - start;
    if name == "absent_over_time" {
        if series.is_empty() {
            return Ok(Inst::Vector(vec![Elem {
                labels: Arc::new(absent_labels(marg)),
                t,
                v: 1.0,
                drop_name: false,
            }]));
        }
        return Ok(Inst::Vector(Vec::new()));
    }
    if name == "double_exponential_smoothing" {
        let (sf, tf) = (scalars.first().copied(), scalars.get(1).copied());
        let (sf, tf) = (sf.unwrap_or(f64::NAN), tf.unwrap_or(f64::NAN));
        if !(sf > 0.0 && sf < 1.0) {
            return Err(EvalError::Execution(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
            )));
        }
        if !(tf > 0.0 && tf < 1.0) {
            return Err(EvalError::Execution(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
            )));
        }
    }
    quantile_warning(ev, name, &scalars);
    let mut out = Vec::with_capacity(series.len());
    for s in &series {
        if !s.points.is_empty()
            && let Some(metric) = not_a_counter(name, &s.labels)
        {
            counter_info(ev, name, metric);
        }
        let keep_name = keeps_name(name);
        if let Some(v) = apply(name, &s.points, true, &scalars, start, end, range, t) {
            out.push(range_out(s, t, v, keep_name));
        }
    }
    Ok(Inst::Vector(out))
}

/// Whether a range function whose scalar arguments are constant can be evaluated
/// series-major by [`super::columns`] (those without argument checks or special outputs).
pub(crate) fn is_columnar(name: &str) -> bool {
    is_range_fn(name) && !matches!(name, "absent_over_time" | "double_exponential_smoothing")
}

/// Index of the range-vector argument of a range function (0 if not one).
pub(crate) fn range_arg_index(name: &str) -> usize {
    matrix_arg(name).unwrap_or(0)
}

/// Whether the function's output keeps the input's (delayed) metric name.
pub(crate) fn keeps_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

pub(crate) fn quantile_warning(ev: &mut Evaluator<'_>, name: &str, scalars: &[f64]) {
    if name == "quantile_over_time" {
        let q = scalars.first().copied().unwrap_or(f64::NAN);
        if !(0.0..=1.0).contains(&q) {
            let pos = ev.position_of_call(name, Some(0));
            ev.warn_at(
                format!(
                    "quantile value should be between 0 and 1, got {}",
                    super::aggregate::fmt_go(q)
                ),
                pos,
            );
        }
    }
}

/// For `rate`/`increase`: the metric name when it does not look like a counter's (Prometheus
/// then adds an info annotation for each series with samples in the window).
pub(crate) fn not_a_counter<'l>(name: &str, labels: &'l [Label]) -> Option<&'l str> {
    if name != "rate" && name != "increase" {
        return None;
    }
    let metric = get(labels, METRIC_NAME);
    let counter = ["_total", "_sum", "_count", "_bucket"].iter().any(|x| metric.ends_with(x));
    (!metric.is_empty() && !counter).then_some(metric)
}

/// Records the "metric might not be a counter" info for `metric`.
pub(crate) fn counter_info(ev: &mut Evaluator<'_>, name: &str, metric: &str) {
    let pos = ev.position_of_call(name, Some(0));
    ev.info_at(
        format!(
            "metric might not be a counter, name does not end in \
             _total/_sum/_count/_bucket: {metric:?}"
        ),
        pos,
    );
}

/// Computes range function `name` over the window `p` (non-stale samples in `(start, end]`)
/// at evaluation time `t`; `None` when it yields no sample. Without `resets`, the caller
/// knows that no value in `p` is below its predecessor (counter functions skip the check).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply(
    name: &str,
    p: &[(i64, f64)],
    resets: bool,
    scalars: &[f64],
    start: i64,
    end: i64,
    range: i64,
    t: i64,
) -> Option<f64> {
    let first = p.first()?;
    let last = p.last()?;
    let vals = || p.iter().map(|&(_, v)| v);
    Some(match name {
        "rate" => extrapolated(p, start, end, range, resets, true, true)?,
        "increase" => extrapolated(p, start, end, range, resets, true, false)?,
        "delta" => extrapolated(p, start, end, range, false, false, false)?,
        "irate" | "idelta" => {
            if p.len() < 2 {
                return None;
            }
            let (pt, pv) = p[p.len() - 2];
            let (lt, lv) = *last;
            let dt = (lt - pt) as f64 / 1000.0;
            if dt == 0.0 {
                return None;
            }
            if name == "idelta" {
                lv - pv
            } else if lv < pv {
                lv / dt
            } else {
                (lv - pv) / dt
            }
        }
        "deriv" => {
            if p.len() < 2 {
                return None;
            }
            linear_regression(p, first.0).0
        }
        "predict_linear" => {
            if p.len() < 2 {
                return None;
            }
            let dur = scalars.first().copied().unwrap_or(0.0);
            let (slope, intercept) = linear_regression(p, t);
            slope * dur + intercept
        }
        "resets" => {
            let mut n = 0.0;
            for w in p.windows(2) {
                if w[1].1 < w[0].1 {
                    n += 1.0;
                }
            }
            n
        }
        "changes" => {
            let mut n = 0.0;
            for w in p.windows(2) {
                let (a, b) = (w[0].1, w[1].1);
                if a != b && !(a.is_nan() && b.is_nan()) {
                    n += 1.0;
                }
            }
            n
        }
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for v in vals() {
                (sum, c) = kahan_inc(v, sum, c);
            }
            if sum.is_infinite() { sum } else { sum + c }
        }
        "avg_over_time" => avg(p),
        "min_over_time" => {
            let mut m = first.1;
            for v in vals() {
                if v < m || m.is_nan() {
                    m = v;
                }
            }
            m
        }
        "max_over_time" => {
            let mut m = first.1;
            for v in vals() {
                if v > m || m.is_nan() {
                    m = v;
                }
            }
            m
        }
        "count_over_time" => p.len() as f64,
        "last_over_time" => last.1,
        "first_over_time" => first.1,
        "present_over_time" => 1.0,
        "stdvar_over_time" => stdvar(p),
        "stddev_over_time" => stdvar(p).sqrt(),
        "quantile_over_time" => quantile(scalars.first().copied()?, vals().collect()),
        "mad_over_time" => {
            let values: Vec<f64> = vals().collect();
            if values.iter().any(|v| v.is_nan()) {
                return Some(f64::NAN);
            }
            let median = quantile(0.5, values.clone());
            quantile(0.5, values.iter().map(|v| (v - median).abs()).collect())
        }
        "ts_of_first_over_time" => first.0 as f64 / 1000.0,
        "ts_of_last_over_time" => last.0 as f64 / 1000.0,
        "ts_of_max_over_time" | "ts_of_min_over_time" => {
            let max = name == "ts_of_max_over_time";
            let mut best = *first;
            for &(ts, v) in p {
                let better = if max { v >= best.1 } else { v <= best.1 };
                if better || best.1.is_nan() {
                    best = (ts, v);
                }
            }
            best.0 as f64 / 1000.0
        }
        "double_exponential_smoothing" => {
            let sf = scalars.first().copied()?;
            let tf = scalars.get(1).copied()?;
            double_exp(p, sf, tf)?
        }
        _ => return None,
    })
}

/// Prometheus' `extrapolatedRate`: the increase between the first and last sample (with
/// counter resets compensated), extrapolated towards the window edges by at most half an
/// average sample interval (and for counters, not below zero).
fn extrapolated(
    p: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    resets: bool,
    counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let w = Edges::of(p, counter && resets)?;
    Some(w.extrapolate(range_start, range_end, Extrapolation::new(range, counter, is_rate)))
}

/// What extrapolation needs of a window of two or more samples.
#[derive(Debug, Clone, Copy)]
struct Edges {
    first_t: i64,
    last_t: i64,
    first_v: f64,
    /// Last minus first value, plus the value before each drop when resets count.
    increase: f64,
    /// Samples in the window, less one.
    intervals: usize,
}

impl Edges {
    /// The edges of window `p`; `None` below two samples. `resets`: compensate drops.
    #[inline]
    fn of(p: &[(i64, f64)], resets: bool) -> Option<Self> {
        let (&(first_t, first_v), &(last_t, last_v)) = (p.first()?, p.last()?);
        if p.len() < 2 {
            return None;
        }
        let mut increase = last_v - first_v;
        if resets {
            let mut prev = first_v;
            for &(_, v) in &p[1..] {
                if v < prev {
                    increase += prev;
                }
                prev = v;
            }
        }
        Some(Edges { first_t, last_t, first_v, increase, intervals: p.len() - 1 })
    }

    /// `rate`, `increase` or `delta` of the window `(range_start, range_end]`, as Prometheus
    /// computes it, operation for operation but one: milliseconds become seconds by a
    /// multiplication with 0.001 rather than a division by 1000 (results may differ from
    /// Prometheus' in the last bit; three divisions per window were a fifth of the time of
    /// `sum(rate(...))`).
    ///
    /// Two of Prometheus' four divisions decide comparisons that are almost never close; they
    /// are made only when a comparison is (the tests compare this with every division made,
    /// bit for bit).
    #[inline(always)]
    fn extrapolate(&self, range_start: i64, range_end: i64, x: Extrapolation) -> f64 {
        let (first_v, result) = (self.first_v, self.increase);
        let to_start = (self.first_t - range_start) as f64 * 0.001;
        let to_end = (range_end - self.last_t) as f64 * 0.001;
        let sampled = (self.last_t - self.first_t) as f64 * 0.001;
        let intervals = self.intervals as f64;
        // Edges farther than 1.1 average intervals from the samples are extrapolated by half
        // an interval instead. A window whose edges are clearly nearer, as are those of a
        // regular scrape everywhere but at gaps, needs no average: `to · intervals <
        // sampled · 1.1`, with a margin far above the rounding of either side, implies
        // `to < threshold`.
        let near = sampled * NEAR_BOUND;
        let (mut to_start, to_end) = if to_start * intervals < near && to_end * intervals < near {
            (to_start, to_end)
        } else {
            let avg_step = sampled / intervals;
            let threshold = avg_step * 1.1;
            let to_start = if to_start >= threshold { avg_step / 2.0 } else { to_start };
            let to_end = if to_end >= threshold { avg_step / 2.0 } else { to_end };
            (to_start, to_end)
        };
        if x.counter && result > 0.0 && first_v >= 0.0 {
            // A counter is not extrapolated below zero: `to_zero = sampled · (first_v /
            // result)` caps the start. It is computed only when it can be below `to_start`: a
            // counter far above its increase (the usual case) is clearly not, by the same
            // kind of margin.
            let (far, limit) = (sampled * first_v, to_start * result * ZERO_MARGIN);
            if !(far.is_finite() && limit >= f64::MIN_POSITIVE && far > limit) {
                let to_zero = sampled * (first_v / result);
                to_start = if to_zero < to_start { to_zero } else { to_start };
            }
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if x.is_rate {
            factor /= x.range_s;
        }
        result * factor
    }
}

/// `1.1` less a margin of 1e-9: products that compare below `sampled · NEAR_BOUND` are below
/// the threshold whatever the rounding (each operation errs by at most 1.1e-16).
const NEAR_BOUND: f64 = 1.1 * (1.0 - 1e-9);

/// `1 + 1e-9`: the margin of the `to_zero` test, as [`NEAR_BOUND`]'s.
const ZERO_MARGIN: f64 = 1.0 + 1e-9;

/// Which of `rate`, `increase` and `delta` to compute, over which range.
#[derive(Debug, Clone, Copy)]
struct Extrapolation {
    range_s: f64,
    counter: bool,
    is_rate: bool,
}

impl Extrapolation {
    fn new(range: i64, counter: bool, is_rate: bool) -> Self {
        Extrapolation { range_s: range as f64 / 1000.0, counter, is_rate }
    }

    /// The extrapolation of range function `func` over `range` ms, if it is one.
    fn of(func: &str, range: i64) -> Option<Self> {
        match func {
            "rate" => Some(Self::new(range, true, true)),
            "increase" => Some(Self::new(range, true, false)),
            "delta" => Some(Self::new(range, false, false)),
            _ => None,
        }
    }
}

/// A range function resolved once for a node that applies it to many windows: `rate`,
/// `increase` and `delta` extrapolate the window's edges directly, without matching the
/// function's name and dividing its range at every window; the others go through [`apply`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowFn {
    name: &'static str,
    extrapolation: Option<Extrapolation>,
}

impl WindowFn {
    /// Range function `name` over windows of `range` ms.
    pub(crate) fn new(name: &'static str, range: i64) -> Self {
        Self { name, extrapolation: Extrapolation::of(name, range) }
    }

    /// [`apply`] of the function to the window `p` of `(start, end]` at evaluation time `t`.
    #[inline(always)]
    pub(crate) fn value(
        &self,
        p: &[(i64, f64)],
        resets: bool,
        scalars: &[f64],
        start: i64,
        end: i64,
        t: i64,
    ) -> Option<f64> {
        match self.extrapolation {
            Some(x) => Edges::of(p, x.counter && resets).map(|e| e.extrapolate(start, end, x)),
            None => apply(self.name, p, resets, scalars, start, end, end - start, t),
        }
    }
}

/// Least-squares slope and intercept at `intercept_t` (x in seconds from it).
pub(crate) fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(ts, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (ts - intercept_t) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn avg(p: &[(i64, f64)]) -> f64 {
    let (mut sum, mut c) = (p[0].1, 0.0);
    let mut count;
    let (mut mean, mut kc) = (0.0, 0.0);
    let mut incremental = false;
    for (i, &(_, v)) in p.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            kc = c / (count - 1.0);
        }
        let q = (count - 1.0) / count;
        (mean, kc) = kahan_inc(v / count, q * mean, q * kc);
    }
    if incremental {
        return mean + kc;
    }
    let n = p.len() as f64;
    sum / n + c / n
}

fn stdvar(p: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

fn double_exp(p: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = p[0].1;
    let mut b = p[1].1 - p[0].1;
    for (i, &(_, v)) in p.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus' `extrapolatedRate` arithmetic, every division made (with milliseconds
    /// turned into seconds as [`Edges::extrapolate`] does).
    fn reference_extrapolate(e: &Edges, range_start: i64, range_end: i64, x: Extrapolation) -> f64 {
        let (first_v, result) = (e.first_v, e.increase);
        let sampled = (e.last_t - e.first_t) as f64 * 0.001;
        let avg_step = sampled / e.intervals as f64;
        let threshold = avg_step * 1.1;
        let to_start = (e.first_t - range_start) as f64 * 0.001;
        let mut to_start = if to_start >= threshold { avg_step / 2.0 } else { to_start };
        if x.counter && result > 0.0 && first_v >= 0.0 {
            let to_zero = sampled * (first_v / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        let to_end = (range_end - e.last_t) as f64 * 0.001;
        let to_end = if to_end >= threshold { avg_step / 2.0 } else { to_end };
        let mut factor = (sampled + to_start + to_end) / sampled;
        if x.is_rate {
            factor /= x.range_s;
        }
        result * factor
    }

    /// xorshift64*: deterministic inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: i64) -> i64 {
            (self.next() % n.max(1) as u64) as i64
        }
    }

    /// Skipping the average and the zero point where their comparisons are clear changes no
    /// result: windows with edges at, just inside and just past the threshold, counters near
    /// zero, and non-finite values all come out bit for bit as with every division made.
    #[test]
    fn extrapolation_matches_every_division_bit_for_bit() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let range = 300_000;
        let specials = [0.0, 1e-300, 5e-324, -1.0, f64::NAN, f64::INFINITY, 1e308];
        let mut thresholds = 0;
        let mut capped = 0;
        for case in 0..200_000 {
            let intervals = 1 + rng.below(40);
            let sampled_ms = intervals + rng.below(range - intervals);
            // Every fourth window puts an edge within a millisecond of 1.1 average intervals.
            let edge = |rng: &mut Rng| {
                if case % 4 == 0 {
                    (sampled_ms * 11 / (intervals * 10)) + rng.below(3) - 1
                } else {
                    rng.below(range - sampled_ms + 1)
                }
            };
            let to_start_ms = edge(&mut rng).clamp(1, range - sampled_ms);
            let to_end_ms = edge(&mut rng).clamp(0, range - sampled_ms - to_start_ms);
            let (first_t, last_t) = (to_start_ms, to_start_ms + sampled_ms);
            let end = last_t + to_end_ms;
            let result = match rng.below(8) {
                0 => specials[rng.below(specials.len() as i64) as usize],
                _ => (rng.next() >> 11) as f64 / (1u64 << 40) as f64,
            };
            // Counters start anywhere from far below their increase to far above it.
            let first_v = match rng.below(8) {
                0 => specials[rng.below(specials.len() as i64) as usize],
                // Within a few parts in a million (or in 1e15) of the start.
                1 => {
                    let near = [1e-15, 1e-6][rng.below(2) as usize] * (rng.below(9) - 4) as f64;
                    result * (to_start_ms as f64 / sampled_ms as f64) * (1.0 + near)
                }
                k => result * (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 4f64.powi(k as i32),
            };
            let intervals = intervals as usize;
            let e = Edges { first_t, last_t, first_v, increase: result, intervals };
            for (counter, is_rate) in [(true, true), (true, false), (false, false)] {
                let x = Extrapolation::new(range, counter, is_rate);
                let want = reference_extrapolate(&e, 0, end, x);
                let got = e.extrapolate(0, end, x);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{e:?} end={end} {x:?}: {got} != {want}"
                );
            }
            let (sampled, to_start) = (sampled_ms as f64 * 0.001, to_start_ms as f64 * 0.001);
            let avg = sampled / intervals as f64;
            thresholds +=
                usize::from(to_start >= avg * 1.1 || to_end_ms as f64 * 0.001 >= avg * 1.1);
            capped += usize::from(result > 0.0 && sampled * (first_v / result) < to_start);
        }
        // The inputs reach both sides of both comparisons.
        assert!(thresholds > 10_000 && capped > 10_000, "{thresholds} {capped}");
    }
}
