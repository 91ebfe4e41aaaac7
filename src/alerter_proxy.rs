//! `/api/v1/rules` and `/api/v1/alerts` on the query API, proxied to `--alerter-url`, so that
//! Grafana's alert list works against the same data source as its dashboards.
//!
//! Without an alerter the endpoints answer as a Prometheus without rules does: empty lists.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct Proxy {
    base: Option<String>,
    client: reqwest::Client,
}

/// Routes for the two endpoints; `alerter_url` is the alerter's base URL, if any.
pub fn router(alerter_url: Option<String>) -> Router {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let base = alerter_url.map(|u| u.trim_end_matches('/').to_string());
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(Arc::new(Proxy { base, client }))
}

async fn rules(State(p): State<Arc<Proxy>>, RawQuery(q): RawQuery) -> Response {
    forward(&p, "/api/v1/rules", q, json!({"groups": []})).await
}

async fn alerts(State(p): State<Arc<Proxy>>, RawQuery(q): RawQuery) -> Response {
    forward(&p, "/api/v1/alerts", q, json!({"alerts": []})).await
}

async fn forward(
    p: &Proxy,
    path: &str,
    query: Option<String>,
    empty: serde_json::Value,
) -> Response {
    let Some(base) = &p.base else {
        return axum::Json(json!({"status": "success", "data": empty})).into_response();
    };
    let url = match query {
        Some(q) if !q.is_empty() => format!("{base}{path}?{q}"),
        _ => format!("{base}{path}"),
    };
    let unavailable = |e: String| {
        let body = json!({
            "status": "error",
            "errorType": "unavailable",
            "error": format!("alerter at {base} unreachable: {e}"),
        });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    let resp = match p.client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return unavailable(e.to_string()),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match resp.bytes().await {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => unavailable(e.to_string()),
    }
}
