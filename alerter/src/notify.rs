//! Alertmanager API v2 notifications: `POST <alertmanager>/api/v2/alerts` with a JSON list of
//! `{labels, annotations, startsAt, endsAt, generatorURL}`; resolved alerts carry their
//! resolution time as `endsAt`, firing ones `valid_until` (4 resend intervals ahead), as
//! Prometheus' notifier does. External labels are added where absent.
//!
//! Each Alertmanager has its own bounded queue and sender task, so one that is down or slow
//! delays nobody: evaluation only enqueues ([`Notifier::send`] never waits). A failed batch is
//! retried with exponential backoff a few times and then given up; firing alerts are re-sent
//! at the next resend interval anyway.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::labels::{Labels, with_external};
use crate::metrics::{AlerterMetrics, alertmanager_label};
use crate::state::Alert;
use crate::template::graph_link;

const QUEUE_CAPACITY: usize = 10_000;
const MAX_BATCH: usize = 64;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// One alert as Alertmanager's v2 API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostableAlert {
    /// Identifying labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// RFC 3339.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339.
    #[serde(rename = "endsAt", skip_serializing_if = "String::is_empty")]
    pub ends_at: String,
    /// Link back to the expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

impl PostableAlert {
    /// Builds the notification for `alert` of a rule with expression `query`.
    pub fn new(
        alert: &Alert,
        query: &str,
        external_url: &str,
        external: &[(String, String)],
    ) -> Self {
        let ends_at = alert.resolved_at.or(alert.valid_until);
        PostableAlert {
            labels: with_external(alert.labels.clone(), external),
            annotations: alert.annotations.clone(),
            starts_at: rfc3339(alert.fired_at.unwrap_or(alert.active_at)),
            ends_at: ends_at.map(rfc3339).unwrap_or_default(),
            generator_url: format!(
                "{}{}",
                external_url.trim_end_matches('/'),
                graph_link(query, 1)
            ),
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 in UTC, Go's `RFC3339Nano` style (trailing zeros
/// of the fraction trimmed), as Prometheus' JSON prints `time.Time`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (y, mo, d) = crate::template::civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    let mut out =
        format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod / 60) % 60, sod % 60);
    if millis != 0 {
        let frac = format!("{millis:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[derive(Debug)]
struct Queue {
    url: String,
    alerts: Mutex<VecDeque<PostableAlert>>,
    notify: Notify,
}

/// Fans alerts out to every Alertmanager.
#[derive(Debug, Clone)]
pub struct Notifier {
    queues: Arc<Vec<Arc<Queue>>>,
    http: reqwest::Client,
    metrics: AlerterMetrics,
}

impl Notifier {
    /// A notifier for these Alertmanagers (base URLs, or full `/api/v2/alerts` URLs).
    pub fn new(
        urls: &[String],
        timeout: Duration,
        metrics: AlerterMetrics,
    ) -> Result<Self, reqwest::Error> {
        let queues = urls
            .iter()
            .map(|u| {
                let trimmed = u.trim_end_matches('/');
                let url = if trimmed.ends_with("/api/v2/alerts") {
                    trimmed.to_string()
                } else {
                    format!("{trimmed}/api/v2/alerts")
                };
                Arc::new(Queue { url, alerts: Mutex::new(VecDeque::new()), notify: Notify::new() })
            })
            .collect();
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        let queues: Vec<Arc<Queue>> = queues;
        // Export zeros from the start, so rates and alerts on them work before any failure.
        for q in &queues {
            let label = alertmanager_label(&q.url);
            let _ = metrics.notifications_sent.get_or_create(&label);
            let _ = metrics.notifications_failed.get_or_create(&label);
            let _ = metrics.notifications_dropped.get_or_create(&label);
        }
        Ok(Notifier { queues: Arc::new(queues), http, metrics })
    }

    /// Enqueues alerts for every Alertmanager; never waits.
    pub fn send(&self, alerts: &[PostableAlert]) {
        if alerts.is_empty() {
            return;
        }
        for q in self.queues.iter() {
            let mut dropped = 0u64;
            if let Ok(mut queue) = q.alerts.lock() {
                queue.extend(alerts.iter().cloned());
                while queue.len() > QUEUE_CAPACITY {
                    queue.pop_front();
                    dropped += 1;
                }
            }
            if dropped > 0 {
                self.metrics
                    .notifications_dropped
                    .get_or_create(&alertmanager_label(&q.url))
                    .inc_by(dropped);
            }
            q.notify.notify_one();
        }
    }

    /// Runs one sender task per Alertmanager until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for q in self.queues.iter() {
            tasks.spawn(self.clone().run_queue(Arc::clone(q), shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn run_queue(self, q: Arc<Queue>, shutdown: CancellationToken) {
        let label = alertmanager_label(&q.url);
        loop {
            let batch: Vec<PostableAlert> = match q.alerts.lock() {
                Ok(mut queue) => {
                    let n = queue.len().min(MAX_BATCH);
                    queue.drain(..n).collect()
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = q.notify.notified() => continue,
                }
            }
            let mut backoff = FIRST_BACKOFF;
            let mut delivered = false;
            for attempt in 1..=ATTEMPTS {
                match self.post(&q.url, &batch).await {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(alertmanager = %q.url, attempt, error = %e, "sending alerts failed");
                        if attempt == ATTEMPTS {
                            break;
                        }
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff *= 2;
                    }
                }
            }
            let n = batch.len() as u64;
            if delivered {
                self.metrics.notifications_sent.get_or_create(&label).inc_by(n);
            } else {
                self.metrics.notifications_failed.get_or_create(&label).inc_by(n);
            }
        }
    }

    async fn post(&self, url: &str, batch: &[PostableAlert]) -> Result<(), String> {
        let response = self.http.post(url).json(batch).send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(format!("{status}: {}", body.trim()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AlertState;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_435_065_584_128), "2015-06-23T13:19:44.128Z");
        assert_eq!(rfc3339(1_700_000_000_500), "2023-11-14T22:13:20.5Z");
    }

    #[test]
    fn postable_alert_format() {
        let alert = Alert {
            labels: Labels::from([("alertname".to_string(), "Down".to_string())]),
            annotations: Labels::from([("summary".to_string(), "s".to_string())]),
            state: AlertState::Inactive,
            value: 1.0,
            active_at: 1000,
            fired_at: Some(2000),
            resolved_at: Some(3000),
            last_sent_at: None,
            valid_until: Some(9000),
            keep_firing_since: None,
        };
        let external = [("cluster".to_string(), "eu".to_string())];
        let p = PostableAlert::new(&alert, "up == 0", "http://a:9090/", &external);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "labels": {"alertname": "Down", "cluster": "eu"},
                "annotations": {"summary": "s"},
                "startsAt": "1970-01-01T00:00:02Z",
                "endsAt": "1970-01-01T00:00:03Z",
                "generatorURL": "http://a:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
            })
        );
    }
}
