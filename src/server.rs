//! What every role's HTTP server has: `/metrics`, `/health`, `/ready`, request metrics, and
//! graceful shutdown that lets in-flight requests finish.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Labels of the HTTP request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    role: &'static str,
    handler: String,
    code: u16,
}

/// Labels of the HTTP latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    role: &'static str,
    handler: String,
}

/// Shared state of the common routes.
#[derive(Debug)]
pub struct Common {
    role: &'static str,
    registry: Registry,
    ready: AtomicBool,
    requests: Family<RequestLabels, Counter>,
    durations: Family<HandlerLabels, Histogram, fn() -> Histogram>,
}

impl Common {
    /// Builds the common state around a registry the role has filled with its own metrics.
    pub fn new(role: &'static str, mut registry: Registry) -> Arc<Self> {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Family<HandlerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 18)));
        registry.register(
            "basin_http_requests",
            "HTTP requests by handler and code",
            requests.clone(),
        );
        registry.register(
            "basin_http_request_duration_seconds",
            "HTTP request latency by handler",
            durations.clone(),
        );
        Arc::new(Self { role, registry, ready: AtomicBool::new(false), requests, durations })
    }

    /// Marks the process ready (`/ready` answers 200 from now on).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// Wraps a role's router with the common routes and request metrics.
pub fn with_common(role_routes: Router, common: Arc<Common>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "OK\n" }))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/ready", get(ready))
        .route("/-/ready", get(ready))
        .with_state(Arc::clone(&common))
        .merge(role_routes)
        .layer(middleware::from_fn_with_state(common, track))
}

async fn metrics(State(c): State<Arc<Common>>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &c.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

async fn ready(State(c): State<Arc<Common>>) -> Response {
    if c.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn track(State(c): State<Arc<Common>>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    let role = c.role;
    c.requests
        .get_or_create(&RequestLabels {
            role,
            handler: handler.clone(),
            code: resp.status().as_u16(),
        })
        .inc();
    c.durations
        .get_or_create(&HandlerLabels { role, handler })
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Binds `addr`; a clear error names the address.
pub async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {addr}: {e}"))
}

/// Serves `router` until `shutdown`, then lets in-flight requests finish.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "HTTP server listening");
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    tracing::info!(%addr, "HTTP server stopped");
    Ok(())
}
