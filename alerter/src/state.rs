//! The alert state machine of one alerting rule, exactly as Prometheus' `AlertingRule.Eval`:
//!
//! - a new result element creates a *pending* alert with `activeAt` = evaluation time;
//! - a pending alert *fires* once `ts - activeAt >= for` (immediately when `for` is 0);
//! - an alert whose element is gone: pending ones are dropped; firing ones become *inactive*
//!   (resolved, `resolvedAt` = ts) unless `keep_firing_for` keeps them firing until
//!   `ts - keepFiringSince >= keep_firing_for`; resolved alerts stay 15 minutes so they are
//!   sent to Alertmanager as resolved;
//! - a returning element of a resolved alert starts a new pending alert;
//! - more than `limit` pending/firing alerts is an error and clears the rule's alerts.
//!
//! Notification follows `needsSending`: firing alerts every `resend_delay`, resolved ones at once
//! (and again every `resend_delay` while retained), pending ones never. Times are milliseconds.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::labels::{ALERT_NAME, ALERT_STATE, Labels, with_external};

/// How long resolved alerts are kept (and re-sent as resolved).
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Resolved (kept for notification) or never active.
    Inactive,
    /// Active, waiting for `for`.
    Pending,
    /// Active and firing.
    Firing,
}

impl AlertState {
    /// The name Prometheus uses (`inactive`, `pending`, `firing`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identifying labels (result labels, rule labels, `alertname`).
    pub labels: Labels,
    /// Rendered annotations.
    pub annotations: Labels,
    /// Current state.
    pub state: AlertState,
    /// The latest value.
    pub value: f64,
    /// When it became active (ms).
    pub active_at: i64,
    /// When it started firing (ms).
    pub fired_at: Option<i64>,
    /// When it resolved (ms).
    pub resolved_at: Option<i64>,
    /// When it was last handed to the notifier (ms).
    pub last_sent_at: Option<i64>,
    /// `endsAt` for a firing alert: Alertmanager resolves it by itself after this.
    pub valid_until: Option<i64>,
    /// When its element disappeared while `keep_firing_for` keeps it firing (ms).
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    fn needs_sending(&self, ts: i64, resend_delay: Duration) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last = self.last_sent_at;
        if let Some(resolved) = self.resolved_at
            && last.is_none_or(|l| resolved > l)
        {
            return true;
        }
        match last {
            None => true,
            Some(l) => l + ms(resend_delay) < ts,
        }
    }
}

/// A result element after templating: what the rule's expression produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Final alert labels (with `alertname`).
    pub labels: Labels,
    /// Rendered annotations.
    pub annotations: Labels,
    /// The sample value.
    pub value: f64,
}

/// The alert-related parameters of a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertTiming {
    /// `for`.
    pub hold: Duration,
    /// `keep_firing_for`.
    pub keep_firing_for: Duration,
    /// Group `limit`; 0 is none.
    pub limit: usize,
}

/// Every alert of one rule, keyed by labels.
#[derive(Debug, Clone, Default)]
pub struct AlertSet {
    active: BTreeMap<Labels, Alert>,
    /// `activeAt` values read from `ALERTS_FOR_STATE` at start, applied to the alerts the first
    /// evaluation creates and then discarded.
    restore: Option<Restore>,
}

/// `activeAt` (ms) by the label set stored in `ALERTS_FOR_STATE` (without `__name__`), and the
/// external labels the writer added to it.
#[derive(Debug, Clone, Default)]
struct Restore {
    active_at: BTreeMap<Labels, i64>,
    external: Vec<(String, String)>,
}

pub(crate) fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl AlertSet {
    /// The alerts, including resolved ones still retained.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Pending and firing alerts.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().filter(|a| a.state != AlertState::Inactive)
    }

    /// The rule's state: firing if any alert fires, else pending if any is pending.
    pub fn state(&self) -> AlertState {
        self.active().map(|a| a.state).max().unwrap_or(AlertState::Inactive)
    }

    /// Sets the `activeAt` of alerts the next evaluation creates (restore after restart).
    /// `active_at` is keyed by the stored series' labels without `__name__`; `external` are the
    /// external labels the writer added (where absent) when it stored them.
    pub fn set_restore(
        &mut self,
        active_at: BTreeMap<Labels, i64>,
        external: Vec<(String, String)>,
    ) {
        self.restore = Some(Restore { active_at, external });
    }

    /// Applies one evaluation's result at `ts`.
    pub fn update(
        &mut self,
        ts: i64,
        candidates: Vec<Candidate>,
        timing: AlertTiming,
    ) -> Result<(), String> {
        let mut current: BTreeMap<Labels, Candidate> = BTreeMap::new();
        for c in candidates {
            if current.contains_key(&c.labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            current.insert(c.labels.clone(), c);
        }
        let restore = self.restore.take().unwrap_or_default();
        for (labels, c) in &current {
            match self.active.get_mut(labels) {
                Some(alert) if alert.state != AlertState::Inactive => {
                    alert.value = c.value;
                    alert.annotations = c.annotations.clone();
                }
                _ => {
                    // Prometheus: it restores only `for` >= 10m alerts and shifts `activeAt`
                    // by the downtime; like vmalert we keep the stored `activeAt`, so a restart
                    // neither re-waits `for` nor delays firing.
                    let stored = with_external(labels.clone(), &restore.external);
                    let active_at = restore.active_at.get(&stored).map_or(ts, |&t| t.min(ts));
                    self.active.insert(
                        labels.clone(),
                        Alert {
                            labels: labels.clone(),
                            annotations: c.annotations.clone(),
                            state: AlertState::Pending,
                            value: c.value,
                            active_at,
                            fired_at: None,
                            resolved_at: None,
                            last_sent_at: None,
                            valid_until: None,
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }
        let mut active_count = 0;
        let retention = ms(RESOLVED_RETENTION);
        self.active.retain(|labels, a| {
            if current.contains_key(labels) {
                a.keep_firing_since = None;
            } else {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && !timing.keep_firing_for.is_zero() {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < ms(timing.keep_firing_for);
                }
                if a.state == AlertState::Pending
                    || a.resolved_at.is_some_and(|r| ts - r > retention)
                {
                    return false;
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    return true;
                }
            }
            active_count += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= ms(timing.hold) {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
            true
        });
        if timing.limit > 0 && active_count > timing.limit {
            self.active.clear();
            return Err(format!("exceeded limit of {} with {active_count} alerts", timing.limit));
        }
        Ok(())
    }

    /// The `ALERTS` and `ALERTS_FOR_STATE` samples for the pending and firing alerts.
    pub fn series(&self) -> Vec<(Labels, f64)> {
        let mut out = Vec::new();
        for a in self.active() {
            let mut alerts = a.labels.clone();
            alerts.insert(basin_proto::METRIC_NAME.to_string(), "ALERTS".to_string());
            alerts.insert(ALERT_STATE.to_string(), a.state.as_str().to_string());
            out.push((alerts, 1.0));
            let mut for_state = a.labels.clone();
            for_state.insert(basin_proto::METRIC_NAME.to_string(), "ALERTS_FOR_STATE".to_string());
            out.push((for_state, (a.active_at / 1000) as f64));
        }
        out
    }

    /// The alerts to hand to the notifier now; marks them sent and sets their `valid_until`.
    pub fn to_send(&mut self, ts: i64, resend_delay: Duration, interval: Duration) -> Vec<Alert> {
        let delta = ms(resend_delay.max(interval));
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts, resend_delay) {
                a.last_sent_at = Some(ts);
                a.valid_until = Some(ts + 4 * delta);
                out.push(a.clone());
            }
        }
        out
    }
}

/// The `alertname` of a candidate's label set.
pub fn alert_name(labels: &Labels) -> &str {
    labels.get(ALERT_NAME).map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn cand(instance: &str, value: f64) -> Candidate {
        Candidate {
            labels: Labels::from([
                (ALERT_NAME.to_string(), "Down".to_string()),
                ("instance".to_string(), instance.to_string()),
            ]),
            annotations: Labels::new(),
            value,
        }
    }

    fn timing(hold: u64, keep: u64) -> AlertTiming {
        AlertTiming {
            hold: Duration::from_secs(hold),
            keep_firing_for: Duration::from_secs(keep),
            limit: 0,
        }
    }

    fn states(set: &AlertSet) -> Vec<AlertState> {
        set.alerts().map(|a| a.state).collect()
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let mut set = AlertSet::default();
        let t = timing(30, 0);
        set.update(0, vec![cand("a", 1.0)], t).unwrap();
        assert_eq!(states(&set), [AlertState::Pending]);
        set.update(20 * S, vec![cand("a", 2.0)], t).unwrap();
        assert_eq!(states(&set), [AlertState::Pending]);
        set.update(30 * S, vec![cand("a", 3.0)], t).unwrap();
        assert_eq!(states(&set), [AlertState::Firing]);
        let a = set.alerts().next().unwrap();
        assert_eq!((a.active_at, a.fired_at, a.value), (0, Some(30 * S), 3.0));
        set.update(40 * S, vec![], t).unwrap();
        assert_eq!(states(&set), [AlertState::Inactive]);
        assert_eq!(set.alerts().next().unwrap().resolved_at, Some(40 * S));
        // Kept for 15 minutes, then forgotten.
        set.update(40 * S + ms(RESOLVED_RETENTION), vec![], t).unwrap();
        assert_eq!(set.alerts().count(), 1);
        set.update(41 * S + ms(RESOLVED_RETENTION), vec![], t).unwrap();
        assert_eq!(set.alerts().count(), 0);
    }

    #[test]
    fn zero_for_fires_at_once_and_pending_is_dropped_when_gone() {
        let mut set = AlertSet::default();
        set.update(0, vec![cand("a", 1.0)], timing(0, 0)).unwrap();
        assert_eq!(states(&set), [AlertState::Firing]);
        let mut set = AlertSet::default();
        set.update(0, vec![cand("a", 1.0)], timing(60, 0)).unwrap();
        set.update(10 * S, vec![], timing(60, 0)).unwrap();
        assert_eq!(set.alerts().count(), 0, "a pending alert is dropped, never resolved");
    }

    #[test]
    fn keep_firing_for_holds_then_resolves() {
        let mut set = AlertSet::default();
        let t = timing(0, 30);
        set.update(0, vec![cand("a", 1.0)], t).unwrap();
        set.update(10 * S, vec![], t).unwrap();
        assert_eq!(states(&set), [AlertState::Firing]);
        assert_eq!(set.alerts().next().unwrap().keep_firing_since, Some(10 * S));
        set.update(39 * S, vec![], t).unwrap();
        assert_eq!(states(&set), [AlertState::Firing]);
        set.update(40 * S, vec![], t).unwrap();
        assert_eq!(states(&set), [AlertState::Inactive]);
        assert_eq!(set.alerts().next().unwrap().resolved_at, Some(40 * S));
    }

    #[test]
    fn returning_condition_resets_keep_firing_and_resolved_restarts_pending() {
        let mut set = AlertSet::default();
        let t = timing(0, 30);
        set.update(0, vec![cand("a", 1.0)], t).unwrap();
        set.update(10 * S, vec![], t).unwrap();
        set.update(20 * S, vec![cand("a", 1.0)], t).unwrap();
        assert_eq!(set.alerts().next().unwrap().keep_firing_since, None);
        let mut set = AlertSet::default();
        let t = timing(60, 0);
        set.update(0, vec![cand("a", 1.0)], t).unwrap();
        set.update(60 * S, vec![cand("a", 1.0)], t).unwrap();
        set.update(70 * S, vec![], t).unwrap();
        set.update(80 * S, vec![cand("a", 1.0)], t).unwrap();
        let a = set.alerts().next().unwrap();
        assert_eq!((a.state, a.active_at, a.resolved_at), (AlertState::Pending, 80 * S, None));
    }

    #[test]
    fn limit_and_duplicates_are_errors() {
        let mut set = AlertSet::default();
        let t = AlertTiming { limit: 1, ..timing(0, 0) };
        let err = set.update(0, vec![cand("a", 1.0), cand("b", 1.0)], t).unwrap_err();
        assert_eq!(err, "exceeded limit of 1 with 2 alerts");
        assert_eq!(set.alerts().count(), 0);
        assert!(set.update(0, vec![cand("a", 1.0), cand("a", 2.0)], timing(0, 0)).is_err());
    }

    #[test]
    fn sending_follows_needs_sending() {
        let mut set = AlertSet::default();
        let t = timing(10, 0);
        let resend = Duration::from_secs(60);
        let interval = Duration::from_secs(10);
        set.update(0, vec![cand("a", 1.0)], t).unwrap();
        assert!(set.to_send(0, resend, interval).is_empty(), "pending is not sent");
        set.update(10 * S, vec![cand("a", 1.0)], t).unwrap();
        let sent = set.to_send(10 * S, resend, interval);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until, Some(10 * S + 4 * 60 * S));
        set.update(20 * S, vec![cand("a", 1.0)], t).unwrap();
        assert!(set.to_send(20 * S, resend, interval).is_empty(), "not before resend delay");
        assert_eq!(set.to_send(71 * S, resend, interval).len(), 1, "resent after the delay");
        set.update(80 * S, vec![], t).unwrap();
        let sent = set.to_send(80 * S, resend, interval);
        assert_eq!(sent.len(), 1, "resolved is sent at once");
        assert_eq!(sent[0].resolved_at, Some(80 * S));
        assert!(set.to_send(90 * S, resend, interval).is_empty());
    }

    #[test]
    fn series_and_restore() {
        let mut set = AlertSet::default();
        let mut stored = cand("a", 0.0).labels;
        stored.insert("cluster".to_string(), "eu".to_string());
        set.set_restore(
            BTreeMap::from([(stored, 5 * S)]),
            vec![("cluster".to_string(), "eu".to_string())],
        );
        set.update(100 * S, vec![cand("a", 1.0), cand("b", 1.0)], timing(60, 0)).unwrap();
        let by_instance: BTreeMap<_, _> =
            set.alerts().map(|a| (a.labels["instance"].clone(), (a.state, a.active_at))).collect();
        assert_eq!(by_instance["a"], (AlertState::Firing, 5 * S), "restored `for` progress");
        assert_eq!(by_instance["b"], (AlertState::Pending, 100 * S));
        let series = set.series();
        assert_eq!(series.len(), 4);
        let firing =
            series.iter().find(|(l, _)| l["__name__"] == "ALERTS" && l["instance"] == "a").unwrap();
        assert_eq!(firing.0[ALERT_STATE], "firing");
        let for_state = series
            .iter()
            .find(|(l, _)| l["__name__"] == "ALERTS_FOR_STATE" && l["instance"] == "a")
            .unwrap();
        assert_eq!(for_state.1, 5.0);
    }
}
