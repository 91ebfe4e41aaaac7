//! Aggregations fused with their series-major input: `sum by (job) (rate(x[5m]))` or
//! `count by (mode) (x)` computed a block of steps at a time straight into each step's group
//! values, without building the input's elements.
//!
//! Threads split the steps, not the series: every thread walks all series in order for its
//! own steps, so each group sees its values in series order and the results (Kahan sums,
//! averages, variances), sample accounting and annotations are those of the step-by-step
//! path, bit for bit.

use super::{Columns, Grid, Kind, RangeView, instant_steps, range_call, seek, unparen};
use crate::promql::EvalError;
use crate::promql::aggregate::{Acc, accumulates, group_series};
use crate::promql::eval::Evaluator;
use crate::promql::plan::{Fetched, selector_id};
use crate::promql::rangefn;
use crate::promql::shares;
use crate::promql::types::{Elem, Labels};
use promql_parser::parser::token::T_SUM;
use promql_parser::parser::{AggregateExpr, Expr};
use std::sync::Arc;
use std::time::Instant;

/// Group values held per block at most, so many groups mean shorter blocks.
const BLOCK_ACCS: usize = 1 << 18;

/// Series × steps below which a block is computed on one thread. Tests use a handful, so
/// their comparisons with step-by-step evaluation cover the split.
const CELLS_PER_THREAD: usize = if cfg!(test) { 4 } else { 1 << 16 };

/// An aggregation node whose input is evaluated series-major.
#[derive(Debug)]
pub(crate) struct Fused<'a> {
    input: Columns<'a>,
    op: u16,
    /// Group id of each input series.
    group: Vec<u32>,
    /// Output labels by group id.
    labels: Vec<Labels>,
    /// Step index of `block[0]`.
    first: usize,
    /// Answers of the current block, `None` once taken.
    block: Vec<Option<Step>>,
}

/// One step's answer.
#[derive(Debug, Default)]
struct Step {
    /// Group values, groups in order of first appearance among the series.
    values: Vec<(u32, f64)>,
    /// Samples loaded, as the step-by-step path accounts them.
    loaded: usize,
    /// Series whose "not a counter" info is first raised at this step.
    infos: Vec<u32>,
}

/// A fused node for aggregation `a` when its operator keeps running values and its input is
/// an instant selector or a range function evaluated series-major.
pub(crate) fn plan<'a>(a: &AggregateExpr, data: &'a Fetched, grid: Grid) -> Option<Fused<'a>> {
    let op = a.op.id();
    if a.param.is_some() || !accumulates(op) {
        return None;
    }
    let input = match unparen(&a.expr) {
        Expr::Call(c) => range_call(c, data, grid)?,
        Expr::VectorSelector(vs) => {
            let series = data.get(&selector_id(vs))?;
            Columns::new(series, Kind::Instant, grid, vs, false)
        }
        _ => return None,
    };
    let (ids, labels) = group_series(a, input.series);
    let group = ids.into_iter().map(|g| u32::try_from(g).ok()).collect::<Option<_>>()?;
    Some(Fused { input, op, group, labels, first: 0, block: Vec::new() })
}

impl Fused<'_> {
    /// The answer at step `k`, computing its block when `k` lies past the current one;
    /// `None` when it was taken already or lies behind. Fails past `deadline`.
    fn take(&mut self, k: usize, deadline: Instant) -> Result<Option<Step>, ()> {
        if k >= self.input.steps || k < self.first {
            return Ok(None);
        }
        if k >= self.first + self.block.len() {
            self.fill(k, deadline)?;
        }
        Ok(self.block.get_mut(k - self.first).and_then(Option::take))
    }

    /// Computes the block of steps starting at `from`, its steps split among threads.
    fn fill(&mut self, from: usize, deadline: Instant) -> Result<(), ()> {
        let groups = self.labels.len().max(1);
        let n = (BLOCK_ACCS / groups).clamp(1, self.input.steps - from);
        let times = self.input.times(from, n);
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let cells = self.input.series.len().saturating_mul(n);
        let threads = (cells / CELLS_PER_THREAD).clamp(1, cores.min(n));
        let share = n.div_ceil(threads);
        let (op, group, lookback) = (self.op, self.group.as_slice(), self.input.grid.lookback);
        let input = Input::of(&self.input);
        let input = &input;
        let parts = shares::run(times.chunks(share).map(|times| {
            move || {
                if op == T_SUM {
                    fill_part::<true>(input, op, group, groups, times, lookback, deadline)
                } else {
                    fill_part::<false>(input, op, group, groups, times, lookback, deadline)
                }
            }
        }));
        let mut block = Vec::with_capacity(n);
        let mut pending = match &mut self.input.kind {
            Kind::Range { info_pending, .. } => Some(info_pending),
            Kind::Instant => None,
        };
        for part in parts {
            let part = part?;
            let offset = block.len();
            block.extend(part.steps);
            // A series' info is raised at its first step with samples, over all parts.
            if let Some(pending) = pending.as_mut() {
                for (k, i) in part.infos {
                    if std::mem::take(&mut pending[i as usize]) {
                        block[offset + k].infos.push(i);
                    }
                }
            }
        }
        self.first = from;
        self.block = block.into_iter().map(Some).collect();
        Ok(())
    }
}

/// What the threads read of the input.
struct Input<'s> {
    series: &'s [crate::promql::plan::StoredSeries],
    /// For a range function: its series and, per series, whether its "not a counter" info
    /// is still to be reported.
    range: Option<(RangeView<'s>, &'s [bool])>,
}

impl<'s> Input<'s> {
    fn of(c: &'s Columns<'_>) -> Self {
        let range = match &c.kind {
            Kind::Instant => None,
            Kind::Range { func, range, scalars, live, info_pending, resets } => {
                let func = rangefn::WindowFn::new(func, *range);
                Some((RangeView { func, range: *range, scalars, live, resets }, &info_pending[..]))
            }
        };
        Input { series: c.series, range }
    }
}

/// One thread's steps.
struct Part {
    steps: Vec<Step>,
    /// `(step in part, series)`: the first step of the part at which a series whose info is
    /// pending has samples.
    infos: Vec<(usize, u32)>,
}

/// Computes the steps at `times` over all series, in series order, for operator `op`, which
/// is `sum` when `SUM`: the most common operator gets a copy of its own, in which the
/// accumulator's update inlines.
fn fill_part<const SUM: bool>(
    input: &Input<'_>,
    op: u16,
    group: &[u32],
    groups: usize,
    times: &[(i64, i64)],
    lookback: i64,
    deadline: Instant,
) -> Result<Part, ()> {
    let n = times.len();
    let mut accs = vec![Acc::default(); n * groups];
    let mut steps: Vec<Step> = (0..n).map(|_| Step::default()).collect();
    // Samples loaded per step, kept apart from `steps` to stay dense.
    let mut loaded = vec![0usize; n];
    let mut infos = Vec::new();
    let (Some(&(_, first)), Some(&(_, last))) = (times.first(), times.last()) else {
        return Ok(Part { steps, infos });
    };
    for (i, s) in input.series.iter().enumerate() {
        if i % 1024 == 0 && Instant::now() > deadline {
            return Err(());
        }
        let g = group[i];
        let Some((r, info_pending)) = &input.range else {
            let p = &s.points;
            if p.first().is_none_or(|x| x.0 > last) {
                continue;
            }
            instant_steps(p, seek(p, first), times, lookback, |k, _, v| {
                loaded[k] += 1;
                add_to::<SUM>(&mut accs[k * groups + g as usize], op, v, g, &mut steps[k]);
            });
            continue;
        };
        let start = seek(&r.live[i], first.saturating_sub(r.range));
        let mut pending = info_pending[i];
        r.walk(i, (start, start), times, |k, n, v| {
            loaded[k] += n;
            if pending {
                pending = false;
                infos.push((k, i as u32));
            }
            if let Some(v) = v {
                add_to::<SUM>(&mut accs[k * groups + g as usize], op, v, g, &mut steps[k]);
            }
        });
    }
    for (k, step) in steps.iter_mut().enumerate() {
        step.loaded = loaded[k];
        for (g, v) in &mut step.values {
            *v = accs[k * groups + *g as usize].result(op);
        }
    }
    Ok(Part { steps, infos })
}

/// Adds value `v` to group `g`'s accumulator `acc` at `step` (which lists the group at its
/// first value). Inlined into every call: a call per window was a tenth of the time of
/// `histogram_quantile(0.99, sum by (le) (rate(...)))`.
#[inline(always)]
fn add_to<const SUM: bool>(acc: &mut Acc, op: u16, v: f64, g: u32, step: &mut Step) {
    if acc.count == 0.0 {
        *acc = Acc::first(op, v);
        step.values.push((g, 0.0));
    } else {
        acc.add(if SUM { T_SUM } else { op }, v);
    }
}

impl Evaluator<'_> {
    /// The answer of fused aggregation `node` at time `t`, with its samples accounted and its
    /// annotations recorded; `None` when it must be evaluated step by step.
    pub(crate) fn fused_at(&mut self, node: usize, t: i64) -> Result<Option<Vec<Elem>>, EvalError> {
        let deadline = self.deadline;
        let Some(f) = self.fused.get_mut(&node) else {
            return Ok(None);
        };
        let Some(k) = f.input.grid.index_of(t) else {
            return Ok(None);
        };
        let step = match f.take(k, deadline) {
            Ok(Some(step)) => step,
            Ok(None) => return Ok(None),
            Err(()) => return Err(EvalError::Timeout(self.timeout_text.clone())),
        };
        let series = f.input.series;
        let drop_name = f.input.drop_name;
        let elems = step
            .values
            .iter()
            .map(|&(g, v)| Elem { labels: Arc::clone(&f.labels[g as usize]), t, v, drop_name })
            .collect();
        let range = match &f.input.kind {
            Kind::Range { func, scalars, .. } => Some((*func, scalars.clone())),
            Kind::Instant => None,
        };
        // As the unfused path does at every step: the input's accounting and annotations.
        let func = range.as_ref().map(|(func, _)| *func);
        self.account_step(series, func, step.loaded, &step.infos)?;
        if let Some((func, scalars)) = range {
            rangefn::quantile_warning(self, func, &scalars);
        }
        Ok(Some(elems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::plan::StoredSeries;
    use basin_proto::storage::Label;

    fn fetched(expr: &Expr) -> Fetched {
        let w = crate::promql::plan::Window {
            query_start: 0,
            query_end: 60_000,
            lookback: 300_000,
            default_sub_step: 60_000,
        };
        let mut requests = std::collections::HashMap::new();
        crate::promql::plan::collect(expr, 0, 60_000, &w, None, &mut requests).expect("plans");
        let series = StoredSeries {
            labels: Arc::new(vec![Label { name: "job".into(), value: "a".into() }]),
            points: vec![(0, 1.0), (60_000, 2.0)],
            has_stale: false,
            has_drop: false,
        };
        requests.into_keys().map(|id| (id, vec![series.clone()])).collect()
    }

    /// Which aggregations are fused: those with running values over a series-major input.
    #[test]
    fn fuses_running_aggregations_of_series_major_inputs() {
        let grid = Grid { start: 0, end: 60_000, step: 15_000, lookback: 300_000 };
        for (q, fused) in [
            ("sum by (job) (rate(x[5m]))", 1),
            ("count(x)", 1),
            ("avg((x))", 1),
            ("sum(rate(x[5m])) / count(x)", 2),
            ("quantile(0.5, x)", 0),
            ("topk(2, x)", 0),
            ("sum(x + 1)", 0),
            ("sum(rate(x[5m:1m]))", 0),
        ] {
            let expr = promql_parser::parser::parse(q).expect("parses");
            let data = fetched(&expr);
            assert_eq!(super::super::plan(&expr, &data, grid).fused.len(), fused, "{q}");
        }
    }
}
