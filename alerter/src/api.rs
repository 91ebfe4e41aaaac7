//! The alerter's HTTP API in Prometheus' exact JSON format:
//!
//! - `GET /api/v1/rules` (`type=alert|record`, `rule_name[]`, `rule_group[]`, `file[]`
//!   filters, `exclude_alerts`): groups with `name`, `file`, `rules`, `interval`, `limit`, `evaluationTime`,
//!   `lastEvaluation`; alerting rules with `state`, `name`, `query`, `duration`,
//!   `keepFiringFor`, `labels`, `annotations`, `alerts`, `health`, `lastError`,
//!   `evaluationTime`, `lastEvaluation`, `type`; recording rules likewise without the alert
//!   fields.
//! - `GET /api/v1/alerts`: every pending and firing alert with `labels`, `annotations`,
//!   `state`, `activeAt`, `keepFiringSince` (when set) and `value` (Go's `%e` string).
//! - `POST /-/reload` (and `PUT`): re-reads the rule files.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::eval::{GroupRuntime, lock};
use crate::labels::Labels;
use crate::notify::rfc3339;
use crate::rules::RuleKind;
use crate::service::Alerter;
use crate::state::Alert;

/// The routes: `/api/v1/rules`, `/api/v1/alerts`, `POST /-/reload`.
pub fn router(alerter: Arc<Alerter>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules).post(rules))
        .route("/api/v1/alerts", get(alerts).post(alerts))
        .route("/-/reload", post(reload).put(reload))
        .with_state(alerter)
}

/// Go's zero `time.Time`, which Prometheus prints for never-evaluated rules.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Prometheus' JSON envelope.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    /// `success` or `error`.
    pub status: &'static str,
    /// The answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// `bad_data`, …
    #[serde(rename = "errorType", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<&'static str>,
    /// Error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `data` of `/api/v1/rules`.
#[derive(Debug, Serialize)]
pub struct RuleDiscovery {
    /// The groups.
    pub groups: Vec<RuleGroupJson>,
}

/// One group in `/api/v1/rules`.
#[derive(Debug, Serialize)]
pub struct RuleGroupJson {
    /// Group name.
    pub name: String,
    /// Rule file.
    pub file: String,
    /// Its rules.
    pub rules: Vec<RuleJson>,
    /// Interval in seconds.
    #[serde(serialize_with = "go_seconds")]
    pub interval: f64,
    /// Limit (0: none).
    pub limit: usize,
    /// Seconds the last evaluation took.
    #[serde(rename = "evaluationTime", serialize_with = "go_seconds")]
    pub evaluation_time: f64,
    /// RFC 3339 time of the last evaluation.
    #[serde(rename = "lastEvaluation")]
    pub last_evaluation: String,
}

/// A rule in `/api/v1/rules`, alerting or recording.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RuleJson {
    /// An alerting rule.
    Alerting(AlertingRuleJson),
    /// A recording rule.
    Recording(RecordingRuleJson),
}

/// An alerting rule as Prometheus reports it.
#[derive(Debug, Serialize)]
pub struct AlertingRuleJson {
    /// `inactive`, `pending` or `firing`.
    pub state: &'static str,
    /// Alert name.
    pub name: String,
    /// The expression.
    pub query: String,
    /// `for` in seconds.
    #[serde(serialize_with = "go_seconds")]
    pub duration: f64,
    /// `keep_firing_for` in seconds.
    #[serde(rename = "keepFiringFor", serialize_with = "go_seconds")]
    pub keep_firing_for: f64,
    /// Label templates.
    pub labels: Labels,
    /// Annotation templates.
    pub annotations: Labels,
    /// Pending and firing alerts.
    pub alerts: Vec<AlertJson>,
    /// `ok`, `err` or `unknown`.
    pub health: &'static str,
    /// Last error.
    #[serde(rename = "lastError", skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Seconds.
    #[serde(rename = "evaluationTime", serialize_with = "go_seconds")]
    pub evaluation_time: f64,
    /// RFC 3339.
    #[serde(rename = "lastEvaluation")]
    pub last_evaluation: String,
    /// `alerting`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A recording rule as Prometheus reports it.
#[derive(Debug, Serialize)]
pub struct RecordingRuleJson {
    /// Recorded metric name.
    pub name: String,
    /// The expression.
    pub query: String,
    /// Labels set on the result.
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// `ok`, `err` or `unknown`.
    pub health: &'static str,
    /// Last error.
    #[serde(rename = "lastError", skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Seconds.
    #[serde(rename = "evaluationTime", serialize_with = "go_seconds")]
    pub evaluation_time: f64,
    /// RFC 3339.
    #[serde(rename = "lastEvaluation")]
    pub last_evaluation: String,
    /// `recording`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// An alert in `/api/v1/alerts` and in a rule's `alerts`.
#[derive(Debug, Serialize)]
pub struct AlertJson {
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// `pending` or `firing`.
    pub state: &'static str,
    /// RFC 3339.
    #[serde(rename = "activeAt")]
    pub active_at: String,
    /// RFC 3339, while `keep_firing_for` holds it.
    #[serde(rename = "keepFiringSince", skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<String>,
    /// The value as Go's `strconv.FormatFloat(v, 'e', -1, 64)`.
    pub value: String,
}

/// `data` of `/api/v1/alerts`.
#[derive(Debug, Serialize)]
pub struct AlertDiscovery {
    /// Pending and firing alerts.
    pub alerts: Vec<AlertJson>,
}

/// Serializes seconds as Go's `encoding/json` does: integral values without a fraction
/// (`300`, not `300.0`).
fn go_seconds<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest mantissa, two-digit signed exponent.
pub fn format_go_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

fn time_or_zero(ms: Option<i64>) -> String {
    ms.map_or_else(|| ZERO_TIME.to_string(), rfc3339)
}

/// As in Prometheus, alerts are shown without external labels (those are added on send).
fn alert_json(a: &Alert) -> AlertJson {
    AlertJson {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: a.state.as_str(),
        active_at: rfc3339(a.active_at),
        keep_firing_since: a.keep_firing_since.map(rfc3339),
        value: format_go_e(a.value),
    }
}

/// Filters of `/api/v1/rules`.
#[derive(Debug, Default)]
struct RuleFilter {
    kind: Option<String>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl RuleFilter {
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string())?;
        let mut f = RuleFilter::default();
        for (k, v) in pairs {
            match k.as_str() {
                "type" => {
                    let v = v.to_lowercase();
                    if !v.is_empty() && v != "alert" && v != "record" {
                        return Err(format!("unsupported type {v:?}"));
                    }
                    f.kind = Some(v).filter(|v| !v.is_empty());
                }
                "rule_name[]" => f.names.push(v),
                "rule_group[]" => f.groups.push(v),
                "file[]" => f.files.push(v),
                "exclude_alerts" => f.exclude_alerts = v == "true",
                _ => {}
            }
        }
        Ok(f)
    }
}

fn bad_data(message: String) -> Response {
    let body: Envelope<()> = Envelope {
        status: "error",
        data: None,
        error_type: Some("bad_data"),
        error: Some(message),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Builds the `/api/v1/rules` answer.
pub fn rule_discovery(
    groups: &[Arc<GroupRuntime>],
    query: Option<&str>,
) -> Result<RuleDiscovery, String> {
    let filter = RuleFilter::parse(query)?;
    // Prometheus lists groups by file, then name.
    let mut groups: Vec<&Arc<GroupRuntime>> = groups.iter().collect();
    groups.sort_by(|a, b| (&a.group.file, &a.group.name).cmp(&(&b.group.file, &b.group.name)));
    let mut out = Vec::new();
    for g in groups {
        let group = &g.group;
        if !filter.groups.is_empty() && !filter.groups.contains(&group.name) {
            continue;
        }
        if !filter.files.is_empty() && !filter.files.contains(&group.file) {
            continue;
        }
        let mut rules = Vec::new();
        for (rule, state) in group.rules.iter().zip(&g.rules) {
            if !filter.names.is_empty() && !filter.names.contains(&rule.name) {
                continue;
            }
            let s = lock(state);
            let health = s.health.as_str();
            let last_error = s.last_error.clone();
            let evaluation_time = s.evaluation_time.as_secs_f64();
            let last_evaluation = time_or_zero(s.last_evaluation);
            match &rule.kind {
                RuleKind::Alerting { hold, keep_firing_for, annotations } => {
                    if filter.kind.as_deref() == Some("record") {
                        continue;
                    }
                    rules.push(RuleJson::Alerting(AlertingRuleJson {
                        state: s.alerts.state().as_str(),
                        name: rule.name.clone(),
                        query: rule.query.clone(),
                        duration: hold.as_secs_f64(),
                        keep_firing_for: keep_firing_for.as_secs_f64(),
                        labels: rule.labels.clone(),
                        annotations: annotations.clone(),
                        alerts: if filter.exclude_alerts {
                            Vec::new()
                        } else {
                            s.alerts.active().map(alert_json).collect()
                        },
                        health,
                        last_error,
                        evaluation_time,
                        last_evaluation,
                        kind: "alerting",
                    }));
                }
                RuleKind::Recording => {
                    if filter.kind.as_deref() == Some("alert") {
                        continue;
                    }
                    rules.push(RuleJson::Recording(RecordingRuleJson {
                        name: rule.name.clone(),
                        query: rule.query.clone(),
                        labels: rule.labels.clone(),
                        health,
                        last_error,
                        evaluation_time,
                        last_evaluation,
                        kind: "recording",
                    }));
                }
            }
        }
        // Prometheus: with a rule filter, groups left without rules are omitted.
        if rules.is_empty() && (filter.kind.is_some() || !filter.names.is_empty()) {
            continue;
        }
        let status = *lock(&g.status);
        out.push(RuleGroupJson {
            name: group.name.clone(),
            file: group.file.clone(),
            rules,
            interval: group.interval.as_secs_f64(),
            limit: group.limit,
            evaluation_time: status.evaluation_time.as_secs_f64(),
            last_evaluation: time_or_zero(status.last_evaluation),
        });
    }
    Ok(RuleDiscovery { groups: out })
}

/// Builds the `/api/v1/alerts` answer.
pub fn alert_discovery(groups: &[Arc<GroupRuntime>]) -> AlertDiscovery {
    let mut alerts = Vec::new();
    for g in groups {
        for state in &g.rules {
            let s = lock(state);
            alerts.extend(s.alerts.active().map(alert_json));
        }
    }
    AlertDiscovery { alerts }
}

async fn rules(State(alerter): State<Arc<Alerter>>, RawQuery(query): RawQuery) -> Response {
    match rule_discovery(&alerter.groups(), query.as_deref()) {
        Ok(data) => axum::Json(Envelope {
            status: "success",
            data: Some(data),
            error_type: None,
            error: None,
        })
        .into_response(),
        Err(e) => bad_data(e),
    }
}

async fn alerts(State(alerter): State<Arc<Alerter>>) -> Response {
    let data = alert_discovery(&alerter.groups());
    axum::Json(Envelope { status: "success", data: Some(data), error_type: None, error: None })
        .into_response()
}

async fn reload(State(alerter): State<Arc<Alerter>>) -> Response {
    match alerter.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n"))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{GroupRuntime, Health};
    use crate::rules::validate::validate_rule_file;
    use crate::state::{AlertTiming, Candidate};
    use std::time::Duration;

    #[test]
    fn go_e_format() {
        assert_eq!(format_go_e(1.0), "1e+00");
        assert_eq!(format_go_e(0.5), "5e-01");
        assert_eq!(format_go_e(1234.5), "1.2345e+03");
        assert_eq!(format_go_e(-3e-10), "-3e-10");
        assert_eq!(format_go_e(1e100), "1e+100");
        assert_eq!(format_go_e(f64::NAN), "NaN");
    }

    fn runtime() -> Arc<GroupRuntime> {
        let groups = validate_rule_file(
            "/etc/rules.yml",
            "groups:\n- name: g\n  interval: 30s\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    labels: {severity: page}\n    annotations: {summary: down}\n  - record: job:up\n    expr: sum by (job) (up)\n",
            Duration::from_secs(60),
        )
        .unwrap();
        let rt = Arc::new(GroupRuntime::new(groups[0].clone(), None, false));
        {
            let mut s = lock(&rt.rules[0]);
            let labels = Labels::from([
                ("alertname".to_string(), "Down".to_string()),
                ("instance".to_string(), "a".to_string()),
                ("severity".to_string(), "page".to_string()),
            ]);
            let timing = AlertTiming {
                hold: Duration::from_secs(300),
                keep_firing_for: Duration::ZERO,
                limit: 0,
            };
            s.alerts
                .update(
                    1_700_000_000_000,
                    vec![Candidate {
                        labels,
                        annotations: Labels::from([("summary".to_string(), "down".to_string())]),
                        value: 0.0,
                    }],
                    timing,
                )
                .unwrap();
            s.health = Health::Ok;
            s.last_evaluation = Some(1_700_000_000_250);
            s.evaluation_time = Duration::from_millis(5);
        }
        rt
    }

    #[test]
    fn rules_json_matches_prometheus_field_by_field() {
        let data = rule_discovery(&[runtime()], None).unwrap();
        let json = serde_json::to_value(&data).unwrap();
        let group = &json["groups"][0];
        assert_eq!(group["name"], "g");
        assert_eq!(group["file"], "/etc/rules.yml");
        assert_eq!(group["interval"], 30);
        assert_eq!(group["limit"], 0);
        assert_eq!(group["evaluationTime"], 0);
        assert_eq!(group["lastEvaluation"], "0001-01-01T00:00:00Z");
        let alerting = &group["rules"][0];
        let mut keys: Vec<&str> =
            alerting.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = [
            "state",
            "name",
            "query",
            "duration",
            "keepFiringFor",
            "labels",
            "annotations",
            "alerts",
            "health",
            "evaluationTime",
            "lastEvaluation",
            "type",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected, "exactly Prometheus' fields (lastError only when set)");
        assert_eq!(alerting["state"], "pending");
        assert_eq!(alerting["query"], "up == 0");
        assert_eq!(alerting["duration"], 300);
        assert_eq!(alerting["keepFiringFor"], 0);
        assert_eq!(alerting["labels"], serde_json::json!({"severity": "page"}));
        assert_eq!(alerting["health"], "ok");
        assert_eq!(alerting["evaluationTime"], 0.005);
        assert_eq!(alerting["lastEvaluation"], "2023-11-14T22:13:20.25Z");
        assert_eq!(alerting["type"], "alerting");
        assert_eq!(
            alerting["alerts"][0],
            serde_json::json!({
                "labels": {"alertname": "Down", "instance": "a", "severity": "page"},
                "annotations": {"summary": "down"},
                "state": "pending",
                "activeAt": "2023-11-14T22:13:20Z",
                "value": "0e+00"
            })
        );
        let recording = &group["rules"][1];
        assert_eq!(
            *recording,
            serde_json::json!({
                "name": "job:up",
                "query": "sum by (job) (up)",
                "health": "unknown",
                "evaluationTime": 0,
                "lastEvaluation": "0001-01-01T00:00:00Z",
                "type": "recording"
            })
        );
    }

    #[test]
    fn rules_filters() {
        let rt = [runtime()];
        let only_alerts = rule_discovery(&rt, Some("type=alert")).unwrap();
        assert_eq!(only_alerts.groups[0].rules.len(), 1);
        let by_name = rule_discovery(&rt, Some("rule_name%5B%5D=job%3Aup")).unwrap();
        assert!(matches!(by_name.groups[0].rules[..], [RuleJson::Recording(_)]));
        assert!(rule_discovery(&rt, Some("type=bogus")).is_err());
        assert!(rule_discovery(&rt, Some("rule_group[]=other")).unwrap().groups.is_empty());
        let json = serde_json::to_value(rule_discovery(&rt, Some("exclude_alerts=true")).unwrap());
        assert_eq!(json.unwrap()["groups"][0]["rules"][0]["alerts"], serde_json::json!([]));
    }

    #[test]
    fn alerts_json() {
        let data = alert_discovery(&[runtime()]);
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(json["alerts"][0]["state"], "pending");
        assert_eq!(json["alerts"][0]["value"], "0e+00");
    }
}
