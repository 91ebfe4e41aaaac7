//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, ...) with `by`/`without`.
//!
//! Groups appear in the order their first element appears in the input. Grouping uses the
//! labels as they are before delayed `__name__` removal; an output element drops its name if
//! any element of its group would have.

use super::EvalError;
use super::eval::Evaluator;
use super::functions::{kahan_inc, quantile};
use super::plan::StoredSeries;
use super::types::{Elem, Inst, KeyIds, Labels, key_of};
use basin_proto::METRIC_NAME;
use basin_proto::storage::Label;
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use std::collections::HashMap;
use std::sync::Arc;

/// Evaluates an aggregation at `t`.
pub(crate) fn eval(ev: &mut Evaluator<'_>, a: &AggregateExpr, t: i64) -> Result<Inst, EvalError> {
    let op = a.op.id();
    // Parameters are evaluated before the vector, as they may fail independently.
    let param = match (&a.param, op) {
        (Some(p), T_COUNT_VALUES) => Param::Label(ev.eval_string(p, t)?),
        (Some(p), _) => Param::Number(ev.eval_scalar(p, t)?),
        (None, _) => Param::None,
    };
    let node = a as *const AggregateExpr as usize;
    if let Some(elems) = ev.fused_at(node, t)? {
        return Ok(Inst::Vector(elems));
    }
    let (by, names) = modifier(a);
    let simple_op = !matches!(op, T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO | T_COUNT_VALUES);
    if simple_op && let Some(cells) = ev.eval_cells(&a.expr, t)? {
        // A series-major input: grouped by series index, without building elements.
        quantile_check(ev, op, &param)?;
        let groups = ev.groups.entry(node).or_default();
        groups.index_series(cells.series, names, by);
        let ids = &groups.by_series.1;
        let items = cells.cells.iter().map(|c| (ids[c.series as usize], c.v, cells.drop_name));
        return Ok(Inst::Vector(simple(op, items, &groups.labels, &param, t)?));
    }
    let input = ev.eval_vector(&a.expr, t)?;
    let names = names.to_vec();
    match op {
        T_TOPK | T_BOTTOMK => {
            let k = param.number()?;
            if k.is_nan() {
                return Err(EvalError::Execution("Parameter value is NaN".to_string()));
            }
            let ids = ev.groups.entry(node).or_default().of(&input, &names, by);
            Ok(Inst::Vector(topk(input, ids, k, op == T_TOPK, t)))
        }
        T_LIMITK => {
            let k = param.number()?;
            if k.is_nan() {
                return Err(EvalError::Execution("Parameter value is NaN".to_string()));
            }
            let ids = ev.groups.entry(node).or_default().of(&input, &names, by);
            Ok(Inst::Vector(limitk(input, ids, k, t)))
        }
        T_LIMIT_RATIO => {
            let r = param.number()?;
            if r.is_nan() {
                return Err(EvalError::Execution("Ratio value is NaN".to_string()));
            }
            if !(-1.0..=1.0).contains(&r) {
                let pos = ev.position_of_call("limit_ratio", Some(0));
                ev.warn_at(
                    format!("ratio value should be between -1 and 1, got {}", fmt_go(r)),
                    pos,
                );
            }
            let r = r.clamp(-1.0, 1.0);
            Ok(Inst::Vector(
                input
                    .into_iter()
                    .filter(|e| ratio_keeps(&e.labels, r))
                    .map(|e| Elem { t, ..e })
                    .collect(),
            ))
        }
        T_COUNT_VALUES => {
            let label = param.label()?;
            if !valid_label_name(&label) {
                return Err(EvalError::Execution(format!("invalid label name {label:?}")));
            }
            Ok(Inst::Vector(count_values(input, &names, by, &label, t)))
        }
        _ => {
            quantile_check(ev, op, &param)?;
            let groups = ev.groups.entry(node).or_default();
            let ids = groups.of(&input, &names, by);
            let items = input.iter().zip(ids).map(|(e, g)| (g, e.v, e.drop_name));
            Ok(Inst::Vector(simple(op, items, &groups.labels, &param, t)?))
        }
    }
}

/// Warns about a `quantile` parameter outside `[0, 1]`.
fn quantile_check(ev: &mut Evaluator<'_>, op: u16, param: &Param) -> Result<(), EvalError> {
    if op != T_QUANTILE {
        return Ok(());
    }
    let q = param.number()?;
    if !(0.0..=1.0).contains(&q) {
        let pos = ev.position_of_call("quantile", Some(0));
        ev.warn_at(format!("quantile value should be between 0 and 1, got {}", fmt_go(q)), pos);
    }
    Ok(())
}

enum Param {
    None,
    Number(f64),
    Label(String),
}

impl Param {
    fn number(&self) -> Result<f64, EvalError> {
        match self {
            Param::Number(v) => Ok(*v),
            _ => Err(EvalError::BadData("aggregation parameter must be a scalar".to_string())),
        }
    }
    fn label(&self) -> Result<String, EvalError> {
        match self {
            Param::Label(s) => Ok(s.clone()),
            _ => Err(EvalError::BadData("aggregation parameter must be a string".to_string())),
        }
    }
}

/// Go's `%v` rendering of a float as used in Prometheus annotations.
pub(crate) fn fmt_go(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Whether a name is a valid label name (Prometheus 3 accepts any non-empty UTF-8 name).
pub(crate) fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('\u{FFFD}')
}

/// The grouping key of an element (without building its output labels).
fn group_key(labels: &[Label], names: &[String], by: bool) -> Vec<u8> {
    if by {
        key_of(labels.iter().filter(|l| names.iter().any(|n| n == &l.name)))
    } else {
        key_of(
            labels.iter().filter(|l| l.name != METRIC_NAME && !names.iter().any(|n| n == &l.name)),
        )
    }
}

/// The output labels of an element's group.
fn group_of(labels: &[Label], names: &[String], by: bool) -> Vec<Label> {
    if by {
        labels.iter().filter(|l| names.iter().any(|n| n == &l.name)).cloned().collect()
    } else {
        labels
            .iter()
            .filter(|l| l.name != METRIC_NAME && !names.iter().any(|n| n == &l.name))
            .cloned()
            .collect()
    }
}

/// The groups one aggregation node has seen, remembered across steps.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    ids: KeyIds,
    /// Output labels by group id.
    labels: Vec<Labels>,
    /// Group id by series index of a series-major input (whose series never change), and the
    /// address of that input's series.
    by_series: (usize, Vec<usize>),
}

impl Groups {
    /// The group id of each element of `input`.
    fn of(&mut self, input: &[Elem], names: &[String], by: bool) -> Vec<usize> {
        let labels = &mut self.labels;
        self.ids.prune(input.len());
        self.ids.ids(
            input,
            |l| group_key(l, names, by),
            |_, l| labels.push(Arc::new(group_of(l, names, by))),
        )
    }
}

impl Groups {
    /// Sets `by_series` to the group id of every series of a series-major input (computed
    /// once per query).
    fn index_series(&mut self, series: &[StoredSeries], names: &[String], by: bool) {
        let addr = series.as_ptr() as usize;
        if self.by_series.0 != addr || self.by_series.1.len() != series.len() {
            let ids = series_groups(&mut self.ids, &mut self.labels, series, names, by);
            self.by_series = (addr, ids);
        }
    }
}

/// The group id of every series under `by`/`without` `names`; groups seen for the first time
/// get the next ids and their output labels are appended to `labels`.
fn series_groups(
    ids: &mut KeyIds,
    labels: &mut Vec<Labels>,
    series: &[StoredSeries],
    names: &[String],
    by: bool,
) -> Vec<usize> {
    series
        .iter()
        .map(|s| {
            ids.id_by_key(
                &s.labels,
                |l| group_key(l, names, by),
                |_, l| labels.push(Arc::new(group_of(l, names, by))),
            )
        })
        .collect()
}

/// The grouping of an aggregation's input series: each series' group id (ids in order of
/// first appearance) and each group's output labels.
pub(crate) fn group_series(
    a: &AggregateExpr,
    series: &[StoredSeries],
) -> (Vec<usize>, Vec<Labels>) {
    let (by, names) = modifier(a);
    let mut labels = Vec::new();
    let ids = series_groups(&mut KeyIds::default(), &mut labels, series, names, by);
    (ids, labels)
}

/// Whether an aggregation groups `by` its label names (or `without` them), and the names.
fn modifier(a: &AggregateExpr) -> (bool, &[String]) {
    match &a.modifier {
        Some(LabelModifier::Include(ls)) => (true, &ls.labels),
        Some(LabelModifier::Exclude(ls)) => (false, &ls.labels),
        None => (true, &[]),
    }
}

/// Maps group ids to positions in one step's output, in order of first appearance.
struct Slots(Vec<usize>);

impl Slots {
    const NONE: usize = usize::MAX;

    fn new(ids: &[usize]) -> Self {
        Self::with_groups(ids.iter().max().map_or(0, |m| m + 1))
    }

    /// Slots for group ids below `n`.
    fn with_groups(n: usize) -> Self {
        Slots(vec![Self::NONE; n])
    }

    /// The position of group `g`, or `None` when `next` becomes its position.
    fn get_or_insert(&mut self, g: usize, next: usize) -> Option<usize> {
        let slot = &mut self.0[g];
        if *slot == Self::NONE {
            *slot = next;
            None
        } else {
            Some(*slot)
        }
    }
}

/// The running value of one group under a simple aggregation (not `quantile`, whose values
/// are kept whole): what `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev` and `stdvar`
/// need, updated as Prometheus does so that results match it bit for bit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Acc {
    /// Values added; 0 for a group without any yet.
    pub(crate) count: f64,
    value: f64,
    comp: f64,
    mean: f64,
    incremental: bool,
}

impl Acc {
    /// A group's state after its first value.
    pub(crate) fn first(op: u16, f: f64) -> Self {
        let spread = op == T_STDDEV || op == T_STDVAR;
        Acc {
            count: 1.0,
            // Prometheus: a NaN or infinite first value makes the variance NaN.
            value: if spread { if f.is_finite() { 0.0 } else { f64::NAN } } else { f },
            comp: 0.0,
            mean: f,
            incremental: false,
        }
    }

    /// Adds a value to a group that has one already. Inlined where it is called, so that a
    /// caller with a constant `op` gets that operator's update alone.
    #[inline(always)]
    pub(crate) fn add(&mut self, op: u16, f: f64) {
        self.count += 1.0;
        match op {
            T_SUM => (self.value, self.comp) = kahan_inc(f, self.value, self.comp),
            T_AVG => {
                if !self.incremental {
                    let (nv, nc) = kahan_inc(f, self.value, self.comp);
                    if !nv.is_infinite() {
                        (self.value, self.comp) = (nv, nc);
                        return;
                    }
                    self.incremental = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.comp /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.comp) = kahan_inc(f / self.count, q * self.mean, q * self.comp);
            }
            T_MIN if self.value > f || self.value.is_nan() => self.value = f,
            T_MAX if self.value < f || self.value.is_nan() => self.value = f,
            T_STDDEV | T_STDVAR => {
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            _ => {}
        }
    }

    /// The group's result.
    pub(crate) fn result(&self, op: u16) -> f64 {
        match op {
            T_SUM => self.value + self.comp,
            T_AVG if self.incremental => self.mean + self.comp,
            T_AVG => self.value / self.count + self.comp / self.count,
            T_COUNT => self.count,
            T_GROUP => 1.0,
            T_STDVAR => self.value / self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            _ => self.value,
        }
    }
}

/// Whether [`Acc`] computes operator `op`.
pub(crate) fn accumulates(op: u16) -> bool {
    matches!(op, T_SUM | T_AVG | T_MIN | T_MAX | T_COUNT | T_GROUP | T_STDDEV | T_STDVAR)
}

#[derive(Debug)]
struct Group {
    labels: Labels,
    drop_name: bool,
    acc: Acc,
    /// `quantile`'s values.
    values: Vec<f64>,
}

/// A simple aggregation of `items`, each `(group id, value, drop_name)`; `labels` holds the
/// output labels of every group id.
fn simple(
    op: u16,
    items: impl Iterator<Item = (usize, f64, bool)>,
    labels: &[Labels],
    param: &Param,
    t: i64,
) -> Result<Vec<Elem>, EvalError> {
    if op != T_QUANTILE && !accumulates(op) {
        return Err(EvalError::BadData(format!("unknown aggregation operator {op}")));
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut slots = Slots::with_groups(labels.len());
    for (gid, f, drop_name) in items {
        let Some(i) = slots.get_or_insert(gid, groups.len()) else {
            groups.push(Group {
                labels: Arc::clone(&labels[gid]),
                drop_name,
                acc: Acc::first(op, f),
                values: if op == T_QUANTILE { vec![f] } else { Vec::new() },
            });
            continue;
        };
        let g = &mut groups[i];
        g.drop_name |= drop_name;
        if op == T_QUANTILE {
            g.values.push(f);
        } else {
            g.acc.add(op, f);
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let v = match op {
            T_QUANTILE => quantile(param.number()?, g.values),
            _ => g.acc.result(op),
        };
        out.push(Elem { labels: g.labels, t, v, drop_name: g.drop_name });
    }
    Ok(out)
}

fn topk(input: Vec<Elem>, ids: Vec<usize>, k: f64, top: bool, t: i64) -> Vec<Elem> {
    if k < 1.0 {
        return Vec::new();
    }
    let k = if k >= input.len() as f64 { input.len() } else { k as usize };
    // Each group's members as positions in `input`, groups in order of first appearance.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slots = Slots::new(&ids);
    for (i, gid) in ids.into_iter().enumerate() {
        match slots.get_or_insert(gid, groups.len()) {
            Some(g) => groups[g].push(i),
            None => groups.push(vec![i]),
        }
    }
    // Order: best first; NaN always last (Prometheus treats it as the worst candidate); ties
    // keep input order, as a stable sort would.
    let cmp = |a: &usize, b: &usize| -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        let (x, y) = (input[*a].v, input[*b].v);
        let o = match (x.is_nan(), y.is_nan()) {
            (true, true) => Equal,
            (true, false) => Greater,
            (false, true) => Less,
            _ if top => y.partial_cmp(&x).unwrap_or(Equal),
            _ => x.partial_cmp(&y).unwrap_or(Equal),
        };
        o.then(a.cmp(b))
    };
    let mut out = Vec::new();
    for mut g in groups {
        if k < g.len() {
            g.select_nth_unstable_by(k - 1, cmp);
            g.truncate(k);
        }
        g.sort_unstable_by(cmp);
        out.extend(g.into_iter().map(|i| Elem { t, ..input[i].clone() }));
    }
    out
}

fn count_values(input: Vec<Elem>, names: &[String], by: bool, label: &str, t: i64) -> Vec<Elem> {
    let mut groups: Vec<(Vec<Label>, f64)> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for e in input {
        let mut labels = group_of(&e.labels, names, by);
        super::types::set(&mut labels, label, &format_value(e.v));
        let key = key_of(labels.iter());
        match index.get(&key) {
            Some(&i) => groups[i].1 += 1.0,
            None => {
                index.insert(key, groups.len());
                groups.push((labels, 1.0));
            }
        }
    }
    groups
        .into_iter()
        .map(|(labels, v)| Elem { labels: Arc::new(labels), t, v, drop_name: false })
        .collect()
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_value(v: f64) -> String {
    fmt_go(v)
}

/// `limitk`: the first `k` elements of each group, in input order.
fn limitk(input: Vec<Elem>, ids: Vec<usize>, k: f64, t: i64) -> Vec<Elem> {
    if k < 1.0 {
        return Vec::new();
    }
    let mut taken = vec![0.0; ids.iter().max().map_or(0, |m| m + 1)];
    let mut out = Vec::new();
    for (e, gid) in input.into_iter().zip(ids) {
        let n = &mut taken[gid];
        if *n < k {
            *n += 1.0;
            out.push(Elem { t, ..e });
        }
    }
    out
}

/// `limit_ratio`: keeps a series when its label hash, scaled to [0, 1), is below `r` (or, for
/// a negative `r`, at least `1 + r`), so `limit_ratio(r, v)` and `limit_ratio(-(1-r), v)` are
/// complements. Prometheus: it uses its own label hash; the sampled subset differs but has
/// the same properties.
fn ratio_keeps(labels: &[Label], r: f64) -> bool {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for l in labels {
        l.name.hash(&mut h);
        l.value.hash(&mut h);
    }
    let offset = h.finish() as f64 / u64::MAX as f64;
    if r >= 0.0 { offset < r } else { offset >= 1.0 + r }
}
