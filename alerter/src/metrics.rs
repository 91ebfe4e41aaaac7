//! The alerter's self-metrics, registered in the process' registry (served on `/metrics`):
//! evaluation durations and failures per group, notifications sent and failed per Alertmanager,
//! remote_write samples and failures, rule and group counts.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type LabelPairs = Vec<(String, String)>;

fn new_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the alerter exports.
#[derive(Debug, Clone)]
pub struct AlerterMetrics {
    /// Time to evaluate all rules of a group once, per `rule_group`.
    pub group_duration: Family<LabelPairs, Histogram, fn() -> Histogram>,
    /// Rule evaluations, per `rule_group`.
    pub evaluations: Family<LabelPairs, Counter>,
    /// Rule evaluations that failed, per `rule_group`.
    pub evaluation_failures: Family<LabelPairs, Counter>,
    /// Group iterations skipped because the previous one overran, per `rule_group`.
    pub missed_iterations: Family<LabelPairs, Counter>,
    /// Alerts delivered, per `alertmanager`.
    pub notifications_sent: Family<LabelPairs, Counter>,
    /// Alerts whose delivery failed after all retries, per `alertmanager`.
    pub notifications_failed: Family<LabelPairs, Counter>,
    /// Alerts dropped because a notification queue was full, per `alertmanager`.
    pub notifications_dropped: Family<LabelPairs, Counter>,
    /// Samples written through remote_write.
    pub remote_write_samples: Counter,
    /// remote_write requests that failed (each retry counts).
    pub remote_write_failures: Counter,
    /// Samples dropped (buffer full, or rejected with a 4xx).
    pub remote_write_dropped: Counter,
    /// Rule groups loaded.
    pub groups: Gauge,
    /// Rules loaded.
    pub rules: Gauge,
    /// Successful reloads.
    pub reloads: Counter,
    /// Failed reloads.
    pub reload_failures: Counter,
}

impl AlerterMetrics {
    /// Creates the metrics and registers them under `basin_alerter_`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = AlerterMetrics {
            group_duration: Family::new_with_constructor(new_duration_histogram),
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            missed_iterations: Family::default(),
            notifications_sent: Family::default(),
            notifications_failed: Family::default(),
            notifications_dropped: Family::default(),
            remote_write_samples: Counter::default(),
            remote_write_failures: Counter::default(),
            remote_write_dropped: Counter::default(),
            groups: Gauge::default(),
            rules: Gauge::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("basin_alerter");
        r.register(
            "rule_group_evaluation_duration_seconds",
            "Time to evaluate every rule of a group once",
            m.group_duration.clone(),
        );
        r.register("rule_evaluations", "Rule evaluations", m.evaluations.clone());
        r.register(
            "rule_evaluation_failures",
            "Rule evaluations that failed",
            m.evaluation_failures.clone(),
        );
        r.register(
            "rule_group_iterations_missed",
            "Group evaluations skipped because the previous one overran",
            m.missed_iterations.clone(),
        );
        r.register(
            "notifications_sent",
            "Alerts delivered to an Alertmanager",
            m.notifications_sent.clone(),
        );
        r.register(
            "notifications_failed",
            "Alerts whose delivery to an Alertmanager failed after retries",
            m.notifications_failed.clone(),
        );
        r.register(
            "notifications_dropped",
            "Alerts dropped because an Alertmanager's queue was full",
            m.notifications_dropped.clone(),
        );
        r.register(
            "remote_write_samples",
            "Samples written through remote_write",
            m.remote_write_samples.clone(),
        );
        r.register(
            "remote_write_failures",
            "remote_write requests that failed",
            m.remote_write_failures.clone(),
        );
        r.register(
            "remote_write_dropped_samples",
            "Samples dropped: buffer full or rejected by the receiver",
            m.remote_write_dropped.clone(),
        );
        r.register("rule_groups", "Rule groups loaded", m.groups.clone());
        r.register("rules", "Rules loaded", m.rules.clone());
        r.register("reloads", "Successful rule reloads", m.reloads.clone());
        r.register("reload_failures", "Failed rule reloads", m.reload_failures.clone());
        m
    }
}

/// The label set for per-group metrics.
pub fn group_label(file: &str, name: &str) -> LabelPairs {
    vec![("rule_group".to_string(), format!("{file};{name}"))]
}

/// The label set for per-Alertmanager metrics.
pub fn alertmanager_label(url: &str) -> LabelPairs {
    vec![("alertmanager".to_string(), url.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_under_basin_alerter() {
        let mut registry = Registry::default();
        let m = AlerterMetrics::new(&mut registry);
        m.evaluations.get_or_create(&group_label("rules.yml", "g")).inc();
        m.notifications_sent.get_or_create(&alertmanager_label("http://am:9093")).inc_by(2);
        m.group_duration.get_or_create(&group_label("rules.yml", "g")).observe(0.01);
        m.rules.set(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for needle in [
            "basin_alerter_rule_evaluations_total{rule_group=\"rules.yml;g\"} 1",
            "basin_alerter_notifications_sent_total{alertmanager=\"http://am:9093\"} 2",
            "basin_alerter_rule_group_evaluation_duration_seconds_count{rule_group=\"rules.yml;g\"} 1",
            "basin_alerter_rules 3",
            "basin_alerter_rule_groups 0",
            "basin_alerter_remote_write_samples_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
