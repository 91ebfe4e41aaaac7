//! Evaluation of rule groups: each group runs in its own task at its interval, rules in order.
//!
//! Evaluation timestamps are aligned: slot `n` of a group is `n * interval + offset`, where the
//! offset is a stable hash of (file, group name) modulo the interval (Prometheus'
//! `EvalTimestamp`), so restarted processes and replicas evaluate at the same instants and
//! groups are spread over the interval. A slot missed because an evaluation overran is skipped.
//!
//! Outputs: recording rule results, `ALERTS` and `ALERTS_FOR_STATE` go to the remote writer
//! at the slot's timestamp (minus `query_offset`); series a rule produced in its previous
//! evaluation and not in this one get a staleness marker. Alerts due to be sent go to the
//! notifier. Neither ever waits on the network.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::labels::{ALERT_NAME, Labels};
use crate::metrics::{AlerterMetrics, group_label};
use crate::notify::{Notifier, PostableAlert};
use crate::query::{QueryClient, Sample};
use crate::remote_write::{OutSample, RemoteWriter};
use crate::rules::{Rule, RuleGroup, RuleKind};
use crate::state::{AlertSet, AlertTiming, Candidate, ms};
use crate::template::{TemplateData, TemplateQuery, TemplateSample, expand};

/// Evaluations that may fail on reading `ALERTS_FOR_STATE` before a rule runs without it.
const RESTORE_ATTEMPTS: u32 = 3;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The group's offset within its interval (ms): a stable hash of file and name.
pub fn group_offset(file: &str, name: &str, interval: Duration) -> i64 {
    let interval = ms(interval).max(1);
    let mut key = Vec::with_capacity(file.len() + name.len() + 1);
    key.extend_from_slice(file.as_bytes());
    key.push(0xff);
    key.extend_from_slice(name.as_bytes());
    (xxhash_rust::xxh3::xxh3_64(&key) % interval as u64) as i64
}

/// The latest aligned slot at or before `now` (ms).
pub fn aligned_slot(now: i64, interval: Duration, offset: i64) -> i64 {
    let interval = ms(interval).max(1);
    let adjusted = now - offset;
    adjusted - adjusted.rem_euclid(interval) + offset
}

/// A rule's health, as `/api/v1/rules` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed.
    Err,
}

impl Health {
    /// `unknown`, `ok` or `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// The evaluation state of one rule, kept across reloads while the rule is unchanged.
#[derive(Debug)]
pub struct RuleState {
    /// Health of the last evaluation.
    pub health: Health,
    /// The last evaluation's error.
    pub last_error: Option<String>,
    /// When the last evaluation started (wall clock, ms).
    pub last_evaluation: Option<i64>,
    /// How long it took.
    pub evaluation_time: Duration,
    /// Alerts (alerting rules).
    pub alerts: AlertSet,
    /// Whether `ALERTS_FOR_STATE` has been consulted.
    pub restored: bool,
    restore_attempts: u32,
    previous_series: HashSet<Labels>,
}

impl RuleState {
    fn new(restored: bool) -> Self {
        RuleState {
            health: Health::Unknown,
            last_error: None,
            last_evaluation: None,
            evaluation_time: Duration::ZERO,
            alerts: AlertSet::default(),
            restored,
            restore_attempts: 0,
            previous_series: HashSet::new(),
        }
    }
}

/// Group-level evaluation status.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupStatus {
    /// When the last evaluation started (wall clock, ms).
    pub last_evaluation: Option<i64>,
    /// How long it took.
    pub evaluation_time: Duration,
}

/// A loaded group with the state of its rules.
#[derive(Debug)]
pub struct GroupRuntime {
    /// The group's definition.
    pub group: RuleGroup,
    /// One state per rule, same order as `group.rules`.
    pub rules: Vec<Arc<Mutex<RuleState>>>,
    /// Group-level status.
    pub status: Mutex<GroupStatus>,
}

/// Locks, recovering from a poisoned lock (a panic elsewhere must not stop evaluation).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GroupRuntime {
    /// A runtime for `group`, reusing the state of rules found unchanged in `previous`.
    /// `restore` says whether new rules should read `ALERTS_FOR_STATE` before their first
    /// evaluation (true at start, false for rules added by a reload).
    pub fn new(group: RuleGroup, previous: Option<&GroupRuntime>, restore: bool) -> Self {
        let mut reused = vec![false; previous.map_or(0, |p| p.rules.len())];
        let rules = group
            .rules
            .iter()
            .map(|rule| {
                let old = previous.and_then(|p| {
                    p.group.rules.iter().enumerate().find(|(i, r)| {
                        !reused[*i]
                            && r.name == rule.name
                            && r.query == rule.query
                            && r.labels == rule.labels
                            && r.is_alerting() == rule.is_alerting()
                    })
                });
                match old {
                    Some((i, _)) => {
                        reused[i] = true;
                        previous.map(|p| Arc::clone(&p.rules[i]))
                    }
                    None => None,
                }
                .unwrap_or_else(|| Arc::new(Mutex::new(RuleState::new(!restore))))
            })
            .collect();
        GroupRuntime { group, rules, status: Mutex::new(GroupStatus::default()) }
    }
}

/// What evaluation needs from the service.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// The query API.
    pub query: QueryClient,
    /// The remote writer, when `--remote-write-url` is set.
    pub writer: Option<RemoteWriter>,
    /// The Alertmanager fan-out.
    pub notifier: Notifier,
    /// `--external-label`s.
    pub external_labels: Vec<(String, String)>,
    /// `--external-url`.
    pub external_url: String,
    /// Resend interval of firing alerts.
    pub resend_delay: Duration,
    /// Self-metrics.
    pub metrics: AlerterMetrics,
}

/// Runs `group` at its aligned slots until `cancel`.
pub async fn run_group(runtime: Arc<GroupRuntime>, ctx: EvalContext, cancel: CancellationToken) {
    let interval = runtime.group.interval.max(Duration::from_millis(1));
    let offset = group_offset(&runtime.group.file, &runtime.group.name, interval);
    let mut slot = aligned_slot(now_ms(), interval, offset) + ms(interval);
    let label = group_label(&runtime.group.file, &runtime.group.name);
    loop {
        let wait = Duration::from_millis((slot - now_ms()).max(0) as u64);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = evaluate_group(&runtime, &ctx, slot) => {}
        }
        let now = now_ms();
        let mut next = slot + ms(interval);
        if next <= now {
            let missed = (now - next) / ms(interval) + 1;
            ctx.metrics.missed_iterations.get_or_create(&label).inc_by(missed as u64);
            next = aligned_slot(now, interval, offset) + ms(interval);
        }
        slot = next;
    }
}

/// Evaluates every rule of the group once, at slot `ts` (ms), in order.
pub async fn evaluate_group(runtime: &GroupRuntime, ctx: &EvalContext, ts: i64) {
    let started = Instant::now();
    let wall = now_ms();
    let group = &runtime.group;
    let label = group_label(&group.file, &group.name);
    let eval_ts = ts - ms(group.query_offset);
    for (rule, state) in group.rules.iter().zip(&runtime.rules) {
        let rule_started = Instant::now();
        let rule_wall = now_ms();
        ctx.metrics.evaluations.get_or_create(&label).inc();
        let result = evaluate_rule(group, rule, state, ctx, ts, eval_ts).await;
        let mut s = lock(state);
        s.last_evaluation = Some(rule_wall);
        s.evaluation_time = rule_started.elapsed();
        match result {
            Ok(()) => {
                s.health = Health::Ok;
                s.last_error = None;
            }
            Err(e) => {
                ctx.metrics.evaluation_failures.get_or_create(&label).inc();
                tracing::warn!(group = %group.name, rule = %rule.name, error = %e, "rule evaluation failed");
                s.health = Health::Err;
                s.last_error = Some(e);
            }
        }
    }
    let elapsed = started.elapsed();
    ctx.metrics.group_duration.get_or_create(&label).observe(elapsed.as_secs_f64());
    *lock(&runtime.status) = GroupStatus { last_evaluation: Some(wall), evaluation_time: elapsed };
}

async fn evaluate_rule(
    group: &RuleGroup,
    rule: &Rule,
    state: &Mutex<RuleState>,
    ctx: &EvalContext,
    ts: i64,
    eval_ts: i64,
) -> Result<(), String> {
    let series: Vec<(Labels, f64)> = match &rule.kind {
        RuleKind::Recording => {
            let samples =
                ctx.query.instant(&rule.query, eval_ts).await.map_err(|e| e.to_string())?;
            record(rule, samples, group.limit)?
        }
        RuleKind::Alerting { hold, keep_firing_for, annotations } => {
            // With `for: 0` there is no progress to restore.
            let needs_restore = !lock(state).restored && !hold.is_zero();
            if needs_restore {
                match read_for_state(ctx, &rule.name, ts).await {
                    Ok(restore) => {
                        let mut s = lock(state);
                        s.alerts.set_restore(restore, ctx.external_labels.clone());
                        s.restored = true;
                    }
                    Err(e) => {
                        // Retried on the next evaluations; after that, evaluate without it
                        // rather than never alert.
                        let mut s = lock(state);
                        s.restore_attempts += 1;
                        if s.restore_attempts < RESTORE_ATTEMPTS {
                            return Err(e);
                        }
                        tracing::warn!(alert = %rule.name, error = %e, "giving up restoring alert state");
                        s.restored = true;
                    }
                }
            }
            let samples =
                ctx.query.instant(&rule.query, eval_ts).await.map_err(|e| e.to_string())?;
            let candidates = render_alerts(rule, annotations, samples, ctx, eval_ts).await?;
            let timing =
                AlertTiming { hold: *hold, keep_firing_for: *keep_firing_for, limit: group.limit };
            let mut s = lock(state);
            s.alerts.update(ts, candidates, timing)?;
            let due = s.alerts.to_send(ts, ctx.resend_delay, group.interval);
            let postable: Vec<PostableAlert> = due
                .iter()
                .map(|a| {
                    PostableAlert::new(a, &rule.query, &ctx.external_url, &ctx.external_labels)
                })
                .collect();
            ctx.notifier.send(&postable);
            s.alerts.series()
        }
    };
    let mut s = lock(state);
    let current: HashSet<Labels> = series.iter().map(|(l, _)| l.clone()).collect();
    let mut out: Vec<OutSample> = series
        .into_iter()
        .map(|(labels, value)| OutSample { labels, timestamp_ms: eval_ts, value })
        .collect();
    for gone in s.previous_series.difference(&current) {
        out.push(OutSample {
            labels: gone.clone(),
            timestamp_ms: eval_ts,
            value: f64::from_bits(basin_proto::STALE_NAN_BITS),
        });
    }
    s.previous_series = current;
    drop(s);
    if let Some(writer) = &ctx.writer {
        writer.push(out);
    }
    Ok(())
}

/// Applies a recording rule's name and labels to its result.
pub fn record(
    rule: &Rule,
    samples: Vec<Sample>,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, String> {
    let mut out = Vec::with_capacity(samples.len());
    let mut seen = HashSet::new();
    for s in samples {
        let mut labels = s.labels;
        labels.insert(basin_proto::METRIC_NAME.to_string(), rule.name.clone());
        for (k, v) in &rule.labels {
            if v.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        out.push((labels, s.value));
    }
    if limit > 0 && out.len() > limit {
        return Err(format!("exceeded limit of {limit} with {} series", out.len()));
    }
    Ok(out)
}

/// Renders each result element of an alerting rule into a candidate alert. Templates run on
/// a blocking thread because `query` in a template performs a (blocking) query.
async fn render_alerts(
    rule: &Rule,
    annotations: &Labels,
    samples: Vec<Sample>,
    ctx: &EvalContext,
    eval_ts: i64,
) -> Result<Vec<Candidate>, String> {
    let templated = rule.labels.values().chain(annotations.values()).any(|t| t.contains("{{"));
    let name = rule.name.clone();
    let labels = rule.labels.clone();
    let annotations = annotations.clone();
    let external: Labels = ctx.external_labels.iter().cloned().collect();
    let external_url = ctx.external_url.clone();
    let query: Option<TemplateQuery> = if templated {
        let client = ctx.query.clone();
        let handle = tokio::runtime::Handle::current();
        Some(Arc::new(move |expr: &str| {
            handle
                .block_on(client.instant(expr, eval_ts))
                .map(|v| {
                    v.into_iter()
                        .map(|s| TemplateSample { labels: s.labels, value: s.value })
                        .collect()
                })
                .map_err(|e| e.to_string())
        }))
    } else {
        None
    };
    let render = move || {
        samples
            .into_iter()
            .map(|s| {
                let data = TemplateData {
                    labels: s.labels.clone(),
                    external_labels: external.clone(),
                    external_url: external_url.clone(),
                    value: s.value,
                };
                let template_name = format!("__alert_{name}");
                let expand_one = |text: &str| {
                    expand(&template_name, text, &data, query.clone()).unwrap_or_else(|e| {
                        tracing::warn!(alert = %name, error = %e, "expanding alert template failed");
                        format!("<error expanding template: {e}>")
                    })
                };
                let mut alert_labels = s.labels.clone();
                alert_labels.remove(basin_proto::METRIC_NAME);
                for (k, v) in &labels {
                    let value = expand_one(v);
                    if value.is_empty() {
                        alert_labels.remove(k);
                    } else {
                        alert_labels.insert(k.clone(), value);
                    }
                }
                alert_labels.insert(ALERT_NAME.to_string(), name.clone());
                let annotations: Labels =
                    annotations.iter().map(|(k, v)| (k.clone(), expand_one(v))).collect();
                Candidate { labels: alert_labels, annotations, value: s.value }
            })
            .collect::<Vec<_>>()
    };
    if templated {
        tokio::task::spawn_blocking(render).await.map_err(|e| format!("template task: {e}"))
    } else {
        Ok(render())
    }
}

/// Reads `ALERTS_FOR_STATE` of an alert from the query API: the `activeAt` (ms) of each
/// stored series, keyed by labels without `__name__`.
///
/// Prometheus: it reads an hour back (`outage_tolerance`) from its own TSDB. Through the query
/// API, a range (`last_over_time(…[1h])`) would also return alerts that resolved before the
/// restart, since range functions skip the staleness markers written on resolution, and
/// those would then fire without waiting `for`. An instant selector honours the markers, so
/// exactly the alerts pending or firing when the alerter stopped are restored, provided the
/// restart took less than the query API's lookback (5m); after a longer outage `for` starts over.
async fn read_for_state(
    ctx: &EvalContext,
    alert: &str,
    ts: i64,
) -> Result<BTreeMap<Labels, i64>, String> {
    let selector = format!("ALERTS_FOR_STATE{{alertname={}}}", promql_string(alert));
    let samples = ctx
        .query
        .instant(&selector, ts)
        .await
        .map_err(|e| format!("restoring alert state: {e}"))?;
    Ok(samples
        .into_iter()
        .filter(|s| s.value.is_finite() && s.value > 0.0)
        .map(|s| {
            let mut labels = s.labels;
            labels.remove(basin_proto::METRIC_NAME);
            (labels, (s.value * 1000.0) as i64)
        })
        .collect())
}

/// A PromQL double-quoted string literal.
fn promql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_to_the_interval() {
        let interval = Duration::from_secs(60);
        let offset = group_offset("rules.yml", "node", interval);
        assert!((0..60_000).contains(&offset));
        assert_eq!(offset, group_offset("rules.yml", "node", interval), "stable");
        // Any two processes asking at any time within the same interval get the same slot.
        let base = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
        let a = aligned_slot(base + offset + 1, interval, offset);
        let b = aligned_slot(base + offset + 59_999, interval, offset);
        assert_eq!(a, b);
        assert_eq!(a, base + offset);
        assert_eq!(aligned_slot(base + offset - 1, interval, offset), base + offset - 60_000);
        assert_eq!((a - offset) % 60_000, 0);
        // Different groups are spread over the interval.
        let others: HashSet<i64> =
            (0..20).map(|i| group_offset("rules.yml", &format!("g{i}"), interval)).collect();
        assert!(others.len() > 15);
    }

    #[test]
    fn recording_applies_name_and_labels() {
        let rule = Rule {
            name: "job:up".to_string(),
            query: "up".to_string(),
            labels: Labels::from([("env".to_string(), "prod".to_string())]),
            kind: RuleKind::Recording,
        };
        let sample = |job: &str| Sample {
            labels: Labels::from([
                ("__name__".to_string(), "up".to_string()),
                ("job".to_string(), job.to_string()),
            ]),
            value: 1.0,
        };
        let out = record(&rule, vec![sample("a"), sample("b")], 0).unwrap();
        assert_eq!(out[0].0["__name__"], "job:up");
        assert_eq!(out[0].0["env"], "prod");
        assert!(record(&rule, vec![sample("a"), sample("b")], 1).is_err());
        let rule = Rule { labels: Labels::from([("job".to_string(), "x".to_string())]), ..rule };
        assert!(record(&rule, vec![sample("a"), sample("b")], 0).is_err(), "same labelset");
    }

    #[test]
    fn promql_strings_are_escaped() {
        assert_eq!(promql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
