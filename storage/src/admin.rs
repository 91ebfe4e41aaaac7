//! The storage admin HTTP API: `POST /api/v1/admin/flush` persists everything in memory into
//! chunks and compacts, answering 204 when done or a Prometheus-style JSON error.

use crate::engine::Storage;
use crate::node::blocking;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

/// Routes of the storage admin API.
pub fn admin_router(storage: Arc<Storage>) -> Router {
    Router::new().route("/api/v1/admin/flush", post(flush)).with_state(storage)
}

async fn flush(State(storage): State<Arc<Storage>>) -> Response {
    match blocking(&storage, |s| s.flush()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "admin flush failed");
            let code =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let error_type = match code.as_u16() {
                400 => "bad_data",
                503 | 429 => "unavailable",
                _ => "internal",
            };
            let body = serde_json::json!({
                "status": "error",
                "errorType": error_type,
                "error": e.to_string(),
            });
            (code, Json(body)).into_response()
        }
    }
}
