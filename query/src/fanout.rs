//! Query fan-out: every storage node is asked in parallel, with a deadline, and the answers are
//! merged into one.
//!
//! Invariants of every merged answer:
//! - series with identical label sets (replicas on different nodes) become one series;
//! - samples are time-ordered with one sample per timestamp (on duplicates the answer of the
//!   first node in configuration order wins, so answers are deterministic);
//! - series come out sorted by label set; label names and values sorted and deduplicated.
//!
//! Missing nodes: gateways acknowledge a sample only once it is on `replication_factor` (RF)
//! distinct nodes (rerouting around nodes that are down), so `--replication-factor` on the
//! query node says how many node losses an answer survives. While fewer than RF nodes fail the
//! answer is complete, and says so: one warning per failed node ending in "the answer is
//! complete" (and no error, even without `partial_response`). From RF failed nodes on, data
//! may be missing: with `partial_response` the answer carries one warning per failed node,
//! otherwise the request fails with [`SourceError::Unavailable`]. When every node
//! failed there is no answer at all, so that is an error even with `partial_response` (an
//! empty "success" would silently resolve alerts). Failures are also logged and counted in
//! `basin_query_storage_node_errors_total`.

use crate::metrics::QueryMetrics;
use crate::source::{Selected, SeriesSource, SourceError};
use basin_proto::labels::cmp_labels;
use basin_proto::node::{SharedSeries, StorageNode};
use basin_proto::storage::{
    DeleteSeriesRequest, DeleteSeriesResponse, Label, LabelNamesRequest, LabelValuesRequest,
    Matcher, MatcherSet, Sample, SelectHints, SelectRequest, SeriesRequest, StatEntry,
    TsdbStatusRequest, TsdbStatusResponse,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status};

/// How a [`FanoutSource`] treats the storage nodes.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Deadline of each storage-node call.
    pub node_timeout: Duration,
    /// Answer with warnings (instead of an error) when data may be missing.
    pub partial_response: bool,
    /// Copies of each series in the cluster: up to `replication_factor - 1` failed nodes
    /// still give a complete answer.
    pub replication_factor: usize,
    /// Series limit passed to each node's select (0: the node's default).
    pub max_series: u64,
    /// Sample limit passed to each node's select (0: the node's default).
    pub max_samples: u64,
}

impl Default for FanoutOptions {
    fn default() -> Self {
        Self {
            node_timeout: Duration::from_secs(30),
            partial_response: true,
            replication_factor: 1,
            max_series: 0,
            max_samples: 0,
        }
    }
}

/// A merged answer of the metadata calls, plus warnings and whether `limit` cut it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged<T> {
    /// The merged, sorted, deduplicated (and possibly truncated) answer.
    pub value: Vec<T>,
    /// Warnings about missing nodes (only when data may be missing).
    pub warnings: Vec<String>,
    /// Whether the answer had more entries than the requested limit.
    pub truncated: bool,
}

/// The storage nodes, seen by one request of one tenant: a [`SeriesSource`] for the PromQL
/// engine, and the label and series calls of the HTTP API.
#[derive(Debug, Clone)]
pub struct FanoutSource {
    tenant: String,
    nodes: Arc<[Arc<dyn StorageNode>]>,
    opts: FanoutOptions,
    metrics: Option<Arc<QueryMetrics>>,
}

/// One node's failure, as reported in warnings and errors.
struct NodeFailure {
    node: String,
    reason: String,
}

impl FanoutSource {
    /// A source reading `tenant`'s series from `nodes`.
    pub fn new(
        tenant: impl Into<String>,
        nodes: Arc<[Arc<dyn StorageNode>]>,
        opts: FanoutOptions,
    ) -> Self {
        Self { tenant: tenant.into(), nodes, opts, metrics: None }
    }

    /// Counts node failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<QueryMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The tenant this source reads.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Calls `call` on every node in parallel with the node deadline, and sorts the outcomes
    /// into answers (in node order) and failures, applying the RF / partial-response rules.
    async fn fan_out<T, F, Fut>(&self, call: F) -> Result<(Vec<T>, Vec<String>), SourceError>
    where
        F: Fn(Arc<dyn StorageNode>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let (answers, failures) = self.call_all(call).await?;
        let warnings = self.judge(&failures)?;
        Ok((answers, warnings))
    }

    /// Calls `call` on every node in parallel with the node deadline: the answers (in node
    /// order) and the failed nodes. A request error (bad request, limit) fails it at once.
    async fn call_all<T, F, Fut>(&self, call: F) -> Result<(Vec<T>, Vec<NodeFailure>), SourceError>
    where
        F: Fn(Arc<dyn StorageNode>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        if self.nodes.is_empty() {
            return Err(SourceError::Unavailable("no storage nodes configured".into()));
        }
        let timeout = self.opts.node_timeout;
        let calls = self.nodes.iter().map(|node| {
            let fut = call(Arc::clone(node));
            async move { (node.name().to_string(), tokio::time::timeout(timeout, fut).await) }
        });
        let outcomes = futures::future::join_all(calls).await;

        let mut answers = Vec::with_capacity(outcomes.len());
        let mut failures = Vec::new();
        for (node, outcome) in outcomes {
            let reason = match outcome {
                Ok(Ok(answer)) => {
                    answers.push(answer);
                    continue;
                }
                Ok(Err(status)) => match status.code() {
                    // The request itself is wrong or over a limit: every node would say the
                    // same, and retrying elsewhere cannot help.
                    Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                        return Err(SourceError::BadRequest(status.message().to_string()));
                    }
                    Code::ResourceExhausted => {
                        return Err(SourceError::Limit(status.message().to_string()));
                    }
                    _ => format!("{}: {}", code_name(status.code()), status.message()),
                },
                Err(_) => format!("timed out after {}", humanize(timeout)),
            };
            tracing::warn!(%node, %reason, tenant = %self.tenant, "storage node call failed");
            if let Some(m) = &self.metrics {
                m.node_error(&node);
            }
            failures.push(NodeFailure { node, reason });
        }
        Ok((answers, failures))
    }

    /// Applies the RF / partial-response rules to the failed nodes of one fan-out.
    fn judge(&self, failures: &[NodeFailure]) -> Result<Vec<String>, SourceError> {
        let rf = self.opts.replication_factor.max(1);
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let (failed, total) = (failures.len(), self.nodes.len());
        if failed < rf && failed < total {
            // Every series still has a live replica: the answer is complete, and says so.
            return Ok(failures
                .iter()
                .map(|f| {
                    format!(
                        "storage node {} unavailable: {}; the answer is complete \
                         ({failed} of {total} nodes failed, replication factor {rf})",
                        f.node, f.reason
                    )
                })
                .collect());
        }
        let messages: Vec<String> = failures
            .iter()
            .map(|f| format!("storage node {} unavailable: {}", f.node, f.reason))
            .collect();
        if self.opts.partial_response && failed < total {
            Ok(messages)
        } else {
            Err(SourceError::Unavailable(messages.join("; ")))
        }
    }

    /// Label sets of the series matching any of `matcher_sets` (all series when empty) with
    /// samples in `[start_ms, end_ms]`; at most `limit` of them when `limit > 0`.
    pub async fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Merged<Vec<Label>>, SourceError> {
        let req = SeriesRequest {
            tenant: self.tenant.clone(),
            matchers: to_sets(matcher_sets),
            start_ms,
            end_ms,
            limit: node_limit(limit),
        };
        let (answers, warnings) = self
            .fan_out(|node| {
                let req = req.clone();
                async move { node.series(req).await }
            })
            .await?;
        let mut all: Vec<Vec<Label>> = answers.into_iter().flatten().map(|s| s.labels).collect();
        all.sort_unstable_by(|a, b| cmp_labels(a, b));
        all.dedup();
        Ok(truncate(all, limit, warnings))
    }

    /// Label names of the series matching any of `matcher_sets` (all series when empty).
    pub async fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Merged<String>, SourceError> {
        let req = LabelNamesRequest {
            tenant: self.tenant.clone(),
            matchers: to_sets(matcher_sets),
            start_ms,
            end_ms,
            limit: node_limit(limit),
        };
        let (answers, warnings) = self
            .fan_out(|node| {
                let req = req.clone();
                async move { node.label_names(req).await }
            })
            .await?;
        Ok(truncate(union_sorted(answers), limit, warnings))
    }

    /// Values of label `name` over the series matching any of `matcher_sets`.
    pub async fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Merged<String>, SourceError> {
        let req = LabelValuesRequest {
            tenant: self.tenant.clone(),
            name: name.to_string(),
            matchers: to_sets(matcher_sets),
            start_ms,
            end_ms,
            limit: node_limit(limit),
        };
        let (answers, warnings) = self
            .fan_out(|node| {
                let req = req.clone();
                async move { node.label_values(req).await }
            })
            .await?;
        Ok(truncate(union_sorted(answers), limit, warnings))
    }

    /// Cardinality statistics of the tenant (Prometheus' `/api/v1/status/tsdb`) over all
    /// storage nodes, top `limit` entries per list (`limit` > 0). `start_ms`/`end_ms` 0 and 0
    /// mean all time, else the series with samples on the days the range touches.
    ///
    /// Merging replicas. Nodes only report counts, and with replication factor RF each series
    /// sits on RF nodes, so summing would multiply by RF. Exact distinct counts would need
    /// every node's series ids; instead:
    /// - series counts (`numSeries`, series per metric name and per `name=value` pair) and
    ///   value bytes per label name are additive over series: the estimate is
    ///   `max(largest single node, ceil(sum / RF))`. That is exact while every series is on
    ///   exactly RF answering nodes (the gateway's invariant when no node was down at write
    ///   time); with nodes missing it is a lower bound (never below what one node alone
    ///   proves), and series rerouted around a down node (on more than RF nodes) may be
    ///   counted a little high;
    /// - distinct values per label name are not additive (the same value lives on every
    ///   node), so they are counted exactly, as the union of the label's values from every
    ///   node (one label-values fan-out per candidate name); `numLabelPairs` is their sum
    ///   when every label name was a candidate, else the largest single node's count;
    /// - each node is asked for `limit` x [`STATUS_OVERFETCH`] entries, so an entry in the
    ///   merged top `limit` is almost surely in every node's list (series spread evenly);
    /// - with nodes missing the answer carries a warning that counts are estimates.
    pub async fn tsdb_status(
        &self,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<(TsdbStatusResponse, Vec<String>), SourceError> {
        let limit = limit.max(1);
        let node_limit =
            if self.nodes.len() == 1 { limit } else { limit.saturating_mul(STATUS_OVERFETCH) };
        let req = TsdbStatusRequest {
            tenant: self.tenant.clone(),
            start_ms,
            end_ms,
            limit: u64::try_from(node_limit).unwrap_or(u64::MAX),
        };
        let (answers, failures) = self
            .call_all(|node| {
                let req = req.clone();
                async move { node.tsdb_status(req).await }
            })
            .await?;
        let mut warnings = self.judge(&failures)?;
        if self.nodes.len() == 1 {
            return Ok((answers.into_iter().next().unwrap_or_default(), warnings));
        }
        if !failures.is_empty() {
            warnings.push(format!(
                "tsdb status: {} of {} storage nodes did not answer; series counts are estimates",
                failures.len(),
                self.nodes.len()
            ));
        }
        let rf = self.opts.replication_factor.max(1) as u64;
        let additive = |pick: fn(&TsdbStatusResponse) -> &[StatEntry]| {
            merge_additive(answers.iter().map(pick), rf, limit)
        };
        let mut out = TsdbStatusResponse {
            num_series: estimate(answers.iter().map(|a| a.num_series), rf),
            min_time_ms: answers.iter().map(|a| a.min_time_ms).min().unwrap_or(i64::MAX),
            max_time_ms: answers.iter().map(|a| a.max_time_ms).max().unwrap_or(i64::MIN),
            series_count_by_metric_name: additive(|a| &a.series_count_by_metric_name),
            memory_in_bytes_by_label_name: additive(|a| &a.memory_in_bytes_by_label_name),
            series_count_by_label_value_pair: additive(|a| &a.series_count_by_label_value_pair),
            ..Default::default()
        };

        // Distinct values per label name: the union over nodes, for every candidate name.
        let mut candidates: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &answers {
            for e in &a.label_value_count_by_label_name {
                let best = candidates.entry(e.name.as_str()).or_default();
                *best = (*best).max(e.value);
            }
        }
        let complete = answers.iter().all(|a| a.label_value_count_by_label_name.len() < node_limit);
        let mut counts: Vec<(&str, u64, bool)> = Vec::with_capacity(candidates.len());
        let candidates: Vec<(&str, u64)> = candidates.into_iter().collect();
        for group in candidates.chunks(STATUS_CONCURRENCY) {
            let calls = group
                .iter()
                .map(|&(name, lower)| self.distinct_values(name, lower, start_ms, end_ms));
            counts.extend(futures::future::join_all(calls).await);
        }
        let exact = counts.iter().all(|(_, _, exact)| *exact);
        let mut values: Vec<StatEntry> = counts
            .into_iter()
            .map(|(name, value, _)| StatEntry { name: name.to_string(), value })
            .collect();
        out.num_label_pairs = if complete && exact {
            values.iter().map(|e| e.value).sum()
        } else {
            answers.iter().map(|a| a.num_label_pairs).max().unwrap_or(0)
        };
        sort_entries(&mut values);
        values.truncate(limit);
        out.label_value_count_by_label_name = values;
        Ok((out, warnings))
    }

    /// Distinct values of label `name` over all nodes (at least `lower`, what one node
    /// reported), and whether every node answered.
    async fn distinct_values<'n>(
        &self,
        name: &'n str,
        lower: u64,
        start_ms: i64,
        end_ms: i64,
    ) -> (&'n str, u64, bool) {
        match self.label_values(name, &[], start_ms, end_ms, 0).await {
            Ok(m) => (name, (m.value.len() as u64).max(lower), m.warnings.is_empty()),
            Err(_) => (name, lower, false),
        }
    }

    /// Deletes the samples in `[start_ms, end_ms]` (literal: all time is `i64::MIN..i64::MAX`
    /// or Prometheus' MinTime..MaxTime) of the series matching any of `matcher_sets`, on every
    /// storage node. Unlike reads this is all or nothing: any node that fails or does not
    /// answer makes it an error (the nodes that did answer have deleted; repeating the delete
    /// is safe). Returns the nodes' answers summed (replicas counted once per node).
    pub async fn delete_series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<DeleteSeriesResponse, SourceError> {
        let req = DeleteSeriesRequest {
            tenant: self.tenant.clone(),
            matchers: to_sets(matcher_sets),
            start_ms,
            end_ms,
        };
        let (answers, failures) = self
            .call_all(|node| {
                let req = req.clone();
                async move { node.delete_series(req).await }
            })
            .await?;
        if !failures.is_empty() {
            let reasons: Vec<String> =
                failures.iter().map(|f| format!("storage node {}: {}", f.node, f.reason)).collect();
            return Err(SourceError::Unavailable(format!(
                "delete_series did not reach {} of {} storage nodes ({}); retry the delete",
                failures.len(),
                self.nodes.len(),
                reasons.join("; ")
            )));
        }
        let mut total = DeleteSeriesResponse::default();
        for a in answers {
            total.series_matched += a.series_matched;
            total.samples_deleted += a.samples_deleted;
            total.series_removed += a.series_removed;
        }
        Ok(total)
    }
}

/// How many times `limit` entries each node is asked for when several are merged.
pub const STATUS_OVERFETCH: usize = 4;

/// Label-values fan-outs run at once while merging `tsdb_status`.
const STATUS_CONCURRENCY: usize = 8;

/// `max(largest single value, ceil(sum / rf))`: see [`FanoutSource::tsdb_status`].
fn estimate(values: impl Iterator<Item = u64>, rf: u64) -> u64 {
    let (mut max, mut sum) = (0u64, 0u64);
    for v in values {
        max = max.max(v);
        sum = sum.saturating_add(v);
    }
    max.max(sum.div_ceil(rf.max(1)))
}

/// Merges the per-node lists of an additive statistic (absent entries count 0) with
/// [`estimate`], largest first, at most `limit`.
fn merge_additive<'a>(
    lists: impl Iterator<Item = &'a [StatEntry]>,
    rf: u64,
    limit: usize,
) -> Vec<StatEntry> {
    let mut by_name: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for list in lists {
        for e in list {
            by_name.entry(e.name.as_str()).or_default().push(e.value);
        }
    }
    let mut out: Vec<StatEntry> = by_name
        .into_iter()
        .map(|(name, v)| StatEntry { name: name.to_string(), value: estimate(v.into_iter(), rf) })
        .collect();
    sort_entries(&mut out);
    out.truncate(limit);
    out
}

/// Largest value first, equal values by name.
fn sort_entries(v: &mut [StatEntry]) {
    v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
}

#[async_trait::async_trait]
impl SeriesSource for FanoutSource {
    async fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints,
    ) -> Result<Selected, SourceError> {
        let req = SelectRequest {
            tenant: self.tenant.clone(),
            matchers: matchers.to_vec(),
            start_ms,
            end_ms,
            hints: Some(hints.clone()),
            max_series: self.opts.max_series,
            max_samples: self.opts.max_samples,
        };
        let (answers, warnings) = self
            .fan_out(|node| {
                let req = req.clone();
                async move { node.select(req).await }
            })
            .await?;
        let series = match <[_; 1]>::try_from(answers) {
            // One node answered: its series are distinct, and the engine puts samples in order
            // itself (`plan::stored`), in the pass it makes over them anyway.
            Ok([mut only]) => {
                only.sort_by(|a, b| cmp_labels(&a.labels, &b.labels));
                only
            }
            Err(answers) => merge_series(answers),
        };
        Ok(Selected { series, warnings })
    }
}

/// Merges the series answers of several nodes: one series per label set, sorted by label set,
/// samples time-ordered with one per timestamp (the earliest answer wins on duplicates).
pub fn merge_series(mut answers: Vec<Vec<SharedSeries>>) -> Vec<SharedSeries> {
    if answers.len() == 1 {
        // One node answered (standalone, or the others failed): its series are already
        // distinct, so only the per-series sample invariant needs checking.
        let mut only = answers.pop().unwrap_or_default();
        only.iter_mut().for_each(normalize_series);
        only.sort_by(|a, b| cmp_labels(&a.labels, &b.labels));
        return only;
    }
    // Tag each series with its node index so the sort below is deterministic and the first
    // node's sample wins on equal timestamps.
    let mut all: Vec<(usize, SharedSeries)> = answers
        .into_iter()
        .enumerate()
        .flat_map(|(i, series)| series.into_iter().map(move |s| (i, s)))
        .collect();
    all.sort_by(|(ia, a), (ib, b)| cmp_labels(&a.labels, &b.labels).then(ia.cmp(ib)));

    let mut out: Vec<SharedSeries> = Vec::with_capacity(all.len());
    let mut group: Vec<Vec<Sample>> = Vec::new();
    let mut iter = all.into_iter().map(|(_, s)| s).peekable();
    while let Some(mut first) = iter.next() {
        while let Some(next) = iter.next_if(|n| n.labels == first.labels) {
            group.push(next.samples);
        }
        if group.is_empty() {
            normalize_series(&mut first);
        } else {
            let mut samples = std::mem::take(&mut first.samples);
            for other in group.drain(..) {
                samples = merge_samples(samples, other);
            }
            first.samples = samples;
            first.facts = None;
        }
        out.push(first);
    }
    out
}

/// Merges two sample lists into one time-ordered list with one sample per timestamp; on equal
/// timestamps the sample of `a` wins. Inputs that are not sorted are sorted first.
pub fn merge_samples(mut a: Vec<Sample>, mut b: Vec<Sample>) -> Vec<Sample> {
    normalize_samples(&mut a);
    normalize_samples(&mut b);
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let mut bi = b.into_iter().peekable();
    for s in a {
        while let Some(x) = bi.next_if(|x| x.timestamp_ms < s.timestamp_ms) {
            out.push(x);
        }
        bi.next_if(|x| x.timestamp_ms == s.timestamp_ms);
        out.push(s);
    }
    out.extend(bi);
    out
}

/// [`normalize_samples`] of a series, unless its node found its samples in order already.
fn normalize_series(s: &mut SharedSeries) {
    if !s.facts.is_some_and(|f| f.ordered) {
        normalize_samples(&mut s.samples);
        s.facts = None;
    }
}

/// Sorts samples by time and keeps the first of each timestamp; cheap when already in order.
fn normalize_samples(samples: &mut Vec<Sample>) {
    time_order(samples, |s| s.timestamp_ms);
}

/// Sorts `items` by their time `t` and keeps the first of each time; cheap when already in
/// order.
pub(crate) fn time_order<T>(items: &mut Vec<T>, t: impl Fn(&T) -> i64) {
    if items.windows(2).all(|w| t(&w[0]) < t(&w[1])) {
        return;
    }
    items.sort_by_key(&t); // stable: the first of equal times stays first
    items.dedup_by_key(|x| t(x));
}

fn union_sorted(answers: Vec<Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = answers.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn truncate<T>(mut value: Vec<T>, limit: usize, warnings: Vec<String>) -> Merged<T> {
    let truncated = limit > 0 && value.len() > limit;
    if truncated {
        value.truncate(limit);
    }
    Merged { value, warnings, truncated }
}

/// Asks each node for one entry more than the limit so truncation can be detected.
fn node_limit(limit: usize) -> u64 {
    if limit == 0 { 0 } else { (limit as u64).saturating_add(1) }
}

fn to_sets(matcher_sets: &[Vec<Matcher>]) -> Vec<MatcherSet> {
    matcher_sets.iter().map(|ms| MatcherSet { matchers: ms.clone() }).collect()
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::Cancelled => "cancelled",
        Code::Internal => "internal error",
        Code::Unknown => "unknown error",
        Code::Aborted => "aborted",
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission denied",
        Code::NotFound => "not found",
        Code::Unimplemented => "unimplemented",
        _ => "error",
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn s(t: i64, v: f64) -> Sample {
        Sample { timestamp_ms: t, value: v }
    }

    fn l(name: &str, value: &str) -> Label {
        Label { name: name.into(), value: value.into() }
    }

    #[test]
    fn merge_samples_interleaves_and_dedups_first_wins() {
        let a = vec![s(1, 1.0), s(3, 3.0), s(5, 5.0)];
        let b = vec![s(2, 20.0), s(3, 30.0), s(6, 60.0)];
        let got = merge_samples(a, b);
        assert_eq!(got, vec![s(1, 1.0), s(2, 20.0), s(3, 3.0), s(5, 5.0), s(6, 60.0)]);
    }

    #[test]
    fn merge_samples_sorts_unsorted_input() {
        let got = merge_samples(vec![s(3, 3.0), s(1, 1.0), s(3, 4.0)], vec![]);
        assert_eq!(got, vec![s(1, 1.0), s(3, 3.0)]);
    }

    #[test]
    fn merge_series_groups_replicas_and_sorts_by_labels() {
        let x = vec![l("__name__", "up"), l("job", "x")];
        let y = vec![l("__name__", "up"), l("job", "y")];
        let node_a = vec![
            SharedSeries::new(Arc::new(y.clone()), vec![s(1, 1.0)]),
            SharedSeries::new(Arc::new(x.clone()), vec![s(1, 1.0), s(2, 2.0)]),
        ];
        let node_b = vec![SharedSeries::new(Arc::new(x.clone()), vec![s(2, 9.0), s(3, 3.0)])];
        let got = merge_series(vec![node_a, node_b]);
        assert_eq!(
            got,
            vec![
                SharedSeries::new(Arc::new(x), vec![s(1, 1.0), s(2, 2.0), s(3, 3.0)]),
                SharedSeries::new(Arc::new(y), vec![s(1, 1.0)]),
            ]
        );
    }

    #[test]
    fn cmp_labels_is_lexicographic_by_pairs() {
        let a = vec![l("a", "1")];
        let ab = vec![l("a", "1"), l("b", "1")];
        let a2 = vec![l("a", "2")];
        assert_eq!(cmp_labels(&a, &ab), Ordering::Less);
        assert_eq!(cmp_labels(&ab, &a2), Ordering::Less);
        assert_eq!(cmp_labels(&a2, &a2), Ordering::Equal);
    }
}
