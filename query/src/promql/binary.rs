//! Binary operators: arithmetic, comparisons (filtering or `bool`), set operators, and vector
//! matching with `on`/`ignoring`/`group_left`/`group_right`.

use super::EvalError;
use super::eval::Evaluator;
use super::types::{
    AddrMap, Elem, IdSet, Inst, KeyIds, Labels, addr, display, get, match_key, set,
};
use basin_proto::METRIC_NAME;
use basin_proto::storage::Label;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use std::collections::HashMap;
use std::sync::Arc;

/// Evaluates a binary expression at `t`.
pub(crate) fn eval(ev: &mut Evaluator<'_>, b: &BinaryExpr, t: i64) -> Result<Inst, EvalError> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let cmp = is_comparison(op);
    match (lhs, rhs) {
        (Inst::Scalar(l), Inst::Scalar(r)) => {
            let (v, keep) = apply(op, l, r)?;
            if cmp { Ok(Inst::Scalar(if keep { 1.0 } else { 0.0 })) } else { Ok(Inst::Scalar(v)) }
        }
        (Inst::Vector(l), Inst::Scalar(r)) => {
            Ok(Inst::Vector(vector_scalar(op, l, r, false, return_bool, t)?))
        }
        (Inst::Scalar(l), Inst::Vector(r)) => {
            Ok(Inst::Vector(vector_scalar(op, r, l, true, return_bool, t)?))
        }
        (Inst::Vector(l), Inst::Vector(r)) => {
            let (include, names) = matching(b);
            let m = ev.matching.entry(b as *const BinaryExpr as usize).or_default();
            let key = |l: &[Label]| match_key(l, include, &names);
            m.keys.prune(l.len() + r.len());
            let lids = m.keys.ids(&l, key, |_, _| {});
            let rids = m.keys.ids(&r, key, |_, _| {});
            let ids = Ids { lhs: lids, rhs: rids, count: m.keys.len() };
            match op {
                T_LAND => Ok(Inst::Vector(and(l, &ids))),
                T_LOR => Ok(Inst::Vector(or(l, r, &ids))),
                T_LUNLESS => Ok(Inst::Vector(unless(l, &ids))),
                _ => Ok(Inst::Vector(vector_vector(b, op, l, r, ids, m, return_bool, t)?)),
            }
        }
        (l, r) => Err(EvalError::BadData(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies `op` to two floats: the value, and for comparisons whether the pair passes.
pub(crate) fn apply(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        other => {
            return Err(EvalError::BadData(format!(
                "operator {other} not allowed between these operands"
            )));
        }
    })
}

fn vector_scalar(
    op: TokenId,
    vec: Vec<Elem>,
    scalar: f64,
    scalar_left: bool,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Elem>, EvalError> {
    let cmp = is_comparison(op);
    let mut out = Vec::with_capacity(vec.len());
    for e in vec {
        let (l, r) = if scalar_left { (scalar, e.v) } else { (e.v, scalar) };
        let (mut v, keep) = apply(op, l, r)?;
        // Prometheus: a comparison keeps the vector element's value even when the scalar is
        // on the left.
        if cmp && scalar_left {
            v = e.v;
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let drop_name = e.drop_name || !cmp || return_bool;
        out.push(Elem { labels: e.labels, t, v, drop_name });
    }
    Ok(out)
}

/// `on` (true) / `ignoring` (false) and the listed names. No modifier = ignoring nothing.
fn matching(b: &BinaryExpr) -> (bool, Vec<String>) {
    match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
        Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
        None => (false, Vec::new()),
    }
}

/// Vector matching state of one binary node, remembered across steps.
#[derive(Debug, Default)]
pub(crate) struct Matching {
    /// Ids of the matching keys (`on`/`ignoring` labels) of label sets.
    keys: KeyIds,
    /// Output label ids by the "many" side's label set and, for `group_x`, the "one" side's
    /// label set address (0 for one-to-one, where the output depends on the "many" side only).
    result_of: AddrMap<usize>,
    /// `group_x` output label ids by content, so equal outputs share an id.
    result_ids: HashMap<Vec<u8>, usize>,
    /// Output labels by id.
    results: Vec<Labels>,
}

/// The matching-key ids of one step's operands; every id is below `count`.
struct Ids {
    lhs: Vec<usize>,
    rhs: Vec<usize>,
    count: usize,
}

impl Ids {
    /// Which ids occur in `ids`.
    fn present(&self, ids: &[usize]) -> Vec<bool> {
        let mut out = vec![false; self.count];
        ids.iter().for_each(|&i| out[i] = true);
        out
    }
}

fn and(l: Vec<Elem>, ids: &Ids) -> Vec<Elem> {
    let present = ids.present(&ids.rhs);
    l.into_iter().zip(&ids.lhs).filter(|(_, i)| present[**i]).map(|(e, _)| e).collect()
}

fn or(l: Vec<Elem>, r: Vec<Elem>, ids: &Ids) -> Vec<Elem> {
    let present = ids.present(&ids.lhs);
    let mut out = l;
    out.extend(r.into_iter().zip(&ids.rhs).filter(|(_, i)| !present[**i]).map(|(e, _)| e));
    out
}

fn unless(l: Vec<Elem>, ids: &Ids) -> Vec<Elem> {
    let present = ids.present(&ids.rhs);
    l.into_iter().zip(&ids.lhs).filter(|(_, i)| !present[**i]).map(|(e, _)| e).collect()
}

/// The labels a match group is identified by, for error messages.
fn match_labels(labels: &[Label], include: bool, names: &[String]) -> Vec<Label> {
    labels
        .iter()
        .filter(|l| {
            if include {
                names.iter().any(|n| n == &l.name)
            } else {
                l.name != METRIC_NAME && !names.iter().any(|n| n == &l.name)
            }
        })
        .cloned()
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    b: &BinaryExpr,
    op: TokenId,
    lhs: Vec<Elem>,
    rhs: Vec<Elem>,
    ids: Ids,
    cache: &mut Matching,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Elem>, EvalError> {
    const NONE: usize = usize::MAX;
    let (include, names) = matching(b);
    let card =
        b.modifier.as_ref().map(|m| m.card.clone()).unwrap_or(VectorMatchCardinality::OneToOne);
    let (extra, one_to_many) = match &card {
        VectorMatchCardinality::ManyToOne(ls) => (ls.labels.clone(), false),
        VectorMatchCardinality::OneToMany(ls) => (ls.labels.clone(), true),
        _ => (Vec::new(), false),
    };
    let grouped =
        matches!(card, VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_));
    // Make the "many" side the left one; swap the operands back when computing.
    let (many, one, many_ids, one_ids) =
        if one_to_many { (rhs, lhs, ids.rhs, ids.lhs) } else { (lhs, rhs, ids.lhs, ids.rhs) };
    // Position in `one` by matching-key id.
    let mut one_by_key = vec![NONE; ids.count];
    for (j, (e, &k)) in one.iter().zip(&one_ids).enumerate() {
        if let Some(prev) = one.get(one_by_key[k]) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the \
                 operation: [{}, {}];many-to-many matching not allowed: matching labels must be \
                 unique on one side",
                display(&match_labels(&e.labels, include, &names)),
                display(&prev.labels),
                display(&e.labels),
            )));
        }
        one_by_key[k] = j;
    }
    let cmp = is_comparison(op);
    if !grouped {
        // Prometheus checks one-to-one uniqueness before comparisons filter anything out.
        let mut seen = vec![false; ids.count];
        for &k in &many_ids {
            if one_by_key[k] != NONE && std::mem::replace(&mut seen[k], true) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right)"
                        .to_string(),
                ));
            }
        }
    }
    cache.result_of.prune(many.len());
    if cache.result_of.is_empty() {
        cache.results.clear();
        cache.result_ids.clear();
    }
    let mut matched_once = vec![false; ids.count];
    let mut matched: IdSet<(usize, usize)> = IdSet::default();
    if grouped {
        matched.reserve(many.len());
    }
    let mut out = Vec::new();
    for (m, &k) in many.iter().zip(&many_ids) {
        let Some(o) = one.get(one_by_key[k]) else {
            continue;
        };
        let (l, r) = if one_to_many { (o.v, m.v) } else { (m.v, o.v) };
        let (mut v, keep) = apply(op, l, r)?;
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = if grouped {
            let (id, labels) = cache.grouped_labels(&m.labels, &o.labels, || {
                result_labels(&m.labels, &o.labels, include, &names, true, &extra)
            });
            if !matched.insert((k, id)) {
                return Err(EvalError::Execution(
                    "multiple matches for matching labels: grouping labels must ensure unique \
                     matches"
                        .to_string(),
                ));
            }
            labels
        } else {
            if std::mem::replace(&mut matched_once[k], true) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right)"
                        .to_string(),
                ));
            }
            cache.one_to_one_labels(&m.labels, || {
                result_labels(&m.labels, &o.labels, include, &names, false, &extra)
            })
        };
        let drop_name = m.drop_name || !cmp || return_bool;
        out.push(Elem { labels, t, v, drop_name });
    }
    // Experimental `fill`/`fill_left`/`fill_right`: a missing "one" side takes the right fill
    // value, a missing "many" side the left one (for `group_right` too, as Prometheus does).
    let fills = b.modifier.as_ref().map(|m| &m.fill_values);
    if let Some(fill) = fills.and_then(|f| f.rhs) {
        for (m, &k) in many.iter().zip(&many_ids) {
            if one_by_key[k] != NONE {
                continue;
            }
            let (l, r) = if one_to_many { (fill, m.v) } else { (m.v, fill) };
            let (mut v, keep) = apply(op, l, r)?;
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let labels = result_labels(&m.labels, &[], include, &names, grouped, &extra);
            let drop_name = m.drop_name || !cmp || return_bool;
            out.push(Elem { labels: labels_arc(labels, &m.labels), t, v, drop_name });
        }
    }
    if let Some(fill) = fills.and_then(|f| f.lhs) {
        let mut many_keys = vec![false; ids.count];
        many_ids.iter().for_each(|&k| many_keys[k] = true);
        for (o, &k) in one.iter().zip(&one_ids) {
            if many_keys[k] {
                continue;
            }
            let (l, r) = if one_to_many { (o.v, fill) } else { (fill, o.v) };
            let (mut v, keep) = apply(op, l, r)?;
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let mut labels = match_labels(&o.labels, include, &names);
            for n in &extra {
                set(&mut labels, n, get(&o.labels, n));
            }
            out.push(Elem { labels: Arc::new(labels), t, v, drop_name: true });
        }
    }
    Ok(out)
}

impl Matching {
    /// The output labels of a one-to-one match of `many`, built by `build` the first time.
    fn one_to_one_labels(&mut self, many: &Labels, build: impl FnOnce() -> Vec<Label>) -> Labels {
        if let Some(i) = self.result_of.get(many, 0) {
            return Arc::clone(&self.results[i]);
        }
        let labels = labels_arc(build(), many);
        self.results.push(Arc::clone(&labels));
        self.result_of.insert(many, 0, self.results.len() - 1);
        labels
    }

    /// The output labels of a `group_x` match of `many` with `one`, built by `build` the first
    /// time, and their id (equal for equal labels).
    fn grouped_labels(
        &mut self,
        many: &Labels,
        one: &Labels,
        build: impl FnOnce() -> Vec<Label>,
    ) -> (usize, Labels) {
        if let Some(i) = self.result_of.get(many, addr(one)) {
            return (i, Arc::clone(&self.results[i]));
        }
        let labels = build();
        let next = self.results.len();
        let id = *self.result_ids.entry(super::types::key_of(labels.iter())).or_insert(next);
        if id == next {
            self.results.push(labels_arc(labels, many));
        }
        self.result_of.insert(many, addr(one), id);
        self.result_of.hold(one);
        (id, Arc::clone(&self.results[id]))
    }
}

fn labels_arc(new: Vec<Label>, old: &Arc<Vec<Label>>) -> Arc<Vec<Label>> {
    if new == **old { Arc::clone(old) } else { Arc::new(new) }
}

/// The output labels of a vector-vector operation: the "many" side's labels, reduced to the
/// matching labels for one-to-one `on`/`ignoring`, plus `group_x` labels from the "one" side.
fn result_labels(
    many: &[Label],
    one: &[Label],
    include: bool,
    names: &[String],
    grouped: bool,
    extra: &[String],
) -> Vec<Label> {
    let mut labels: Vec<Label> = if grouped {
        many.to_vec()
    } else if include {
        many.iter().filter(|l| names.iter().any(|n| n == &l.name)).cloned().collect()
    } else {
        many.iter().filter(|l| !names.iter().any(|n| n == &l.name)).cloned().collect()
    };
    for n in extra {
        set(&mut labels, n, get(one, n));
    }
    labels
}
