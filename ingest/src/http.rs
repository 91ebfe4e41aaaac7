//! The gateway's HTTP routes: `POST /api/v1/write` (remote_write 1.0) and
//! `GET /api/v1/status/cluster`.
//!
//! Write answers: 204 on success (every sample on its required replicas); 400 (plain-text
//! reason) for input a retry cannot fix; 413 for a body over the size limit; 429 with
//! `Retry-After` when the gateway is at its in-flight bound; 503 when storage nodes could not
//! store the data, so the sender retries.
//!
//! `/api/v1/status/cluster` answers the storage nodes' health as documented in
//! `basin_proto::health`, with the gateway's `replicationFactor` and `minWriteReplicas`.

use crate::decode::{DecodeError, decode_write_request};
use crate::gateway::{Gateway, WriteError};
use crate::metrics::CodeLabels;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use basin_proto::DEFAULT_TENANT;
use std::sync::Arc;
use std::time::Instant;

/// Seconds a sender is asked to wait after a 429.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The gateway's HTTP routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .route("/api/v1/status/cluster", get(cluster_status))
        .with_state(gateway)
}

/// The tenant a request belongs to, from the configured header.
pub fn tenant_of(headers: &HeaderMap, header: &str) -> Result<String, String> {
    match headers.get(header) {
        None => Ok(DEFAULT_TENANT.to_string()),
        Some(v) => {
            let t = v.to_str().map_err(|_| format!("header {header} is not valid ASCII"))?;
            check_tenant(t, header)?;
            Ok(t.to_string())
        }
    }
}

/// Checks a tenant name taken from `header` (or gRPC metadata of that name).
pub fn check_tenant(t: &str, header: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 256 || t.contains(['\0', '/']) {
        return Err(format!("invalid tenant {t:?} in header {header}"));
    }
    Ok(())
}

/// The `/api/v1/status/cluster` body of a gateway.
pub fn cluster_status_json(gw: &Gateway) -> String {
    let cfg = gw.config();
    let nodes = gw.membership().nodes().len();
    gw.membership().status_json(
        "ingest",
        &[
            ("replicationFactor", cfg.replication_factor.clamp(1, nodes.max(1)).to_string()),
            ("minWriteReplicas", cfg.required_copies(nodes).to_string()),
        ],
    )
}

async fn cluster_status(State(gw): State<Arc<Gateway>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], cluster_status_json(&gw)).into_response()
}

async fn write(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (code, message) = handle_write(&gw, &headers, body).await;
    let m = gw.metrics();
    m.requests.get_or_create(&CodeLabels { code: code.as_u16() }).inc();
    m.duration.observe(started.elapsed().as_secs_f64());
    m.inflight_requests.set(gw.admission().inflight_requests() as i64);
    m.inflight_samples.set(gw.admission().inflight_samples() as i64);
    if code.is_success() {
        return code.into_response();
    }
    let mut resp = (code, message + "\n").into_response();
    if code == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    resp
}

/// The HTTP status of a failed write.
pub fn write_error_status(e: &WriteError) -> StatusCode {
    match e {
        WriteError::Rejected { .. } => StatusCode::BAD_REQUEST,
        WriteError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
        WriteError::Unavailable { .. } | WriteError::NoNodes => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn handle_write(gw: &Gateway, headers: &HeaderMap, body: Body) -> (StatusCode, String) {
    let cfg = gw.config();
    // Admission before reading the body: the bound on requests also bounds buffered bodies.
    let mut admitted = match gw.admission().request() {
        Ok(a) => a,
        Err(e) => return (write_error_status(&e), e.to_string()),
    };
    gw.metrics().inflight_requests.set(gw.admission().inflight_requests() as i64);
    let tenant = match tenant_of(headers, &cfg.tenant_header) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, e),
    };
    let body = match axum::body::to_bytes(body, cfg.limits.max_request_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "cannot read body (max_request_bytes {}): {e}",
                    cfg.limits.max_request_bytes
                ),
            );
        }
    };
    let decoded = match decode_write_request(&body, &cfg.limits, &cfg.ha_replica_labels) {
        Ok(d) => d,
        Err(e) => {
            let code = match e {
                DecodeError::TooLarge { .. } | DecodeError::Batch(_) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return (code, e.to_string());
        }
    };
    drop(body);
    if let Err(e) = gw.admission().samples(&mut admitted, decoded.samples) {
        return (write_error_status(&e), e.to_string());
    }
    gw.metrics().inflight_samples.set(gw.admission().inflight_samples() as i64);
    let (series, samples) = (decoded.series.len() as u64, decoded.samples as u64);
    match gw.write(&tenant, decoded.series).await {
        Ok(_) => {
            gw.metrics().samples.inc_by(samples);
            gw.metrics().series.inc_by(series);
            (StatusCode::NO_CONTENT, String::new())
        }
        Err(e) => (write_error_status(&e), e.to_string()),
    }
}
