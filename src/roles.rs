//! Wiring of each role from settings: which servers run, which clients they use.
//!
//! Each `run_*` starts its servers, marks the process ready and returns when `shutdown` fires
//! and the servers have drained. Standalone wires the same gateway, query API and storage
//! engine as the cluster, with an in-process storage node in place of gRPC clients.
//!
//! Gateways and query nodes observe every storage node (`basin_proto::health`): calls are
//! bounded by `--storage-timeout`, failures mark a node down, and a probe every
//! `--storage-probe-interval` brings it back. `--grpc-listen` on ingest, query and standalone
//! serves the public gRPC client API (`basin.client.v1`); on storage, the storage service.

use crate::server::{Common, bind, serve_http, with_common};
use crate::settings::Settings;
use anyhow::Context;
use basin_ingest::decode::DecodeLimits;
use basin_ingest::grpc::IngestService;
use basin_ingest::{Gateway, IngestConfig, IngestMetrics};
use basin_proto::client::ingest_server::IngestServer;
use basin_proto::client::query_server::QueryServer;
use basin_proto::health::Membership;
use basin_proto::labels::LabelLimits;
use basin_proto::node::{GrpcStorageNode, MAX_GRPC_MESSAGE_BYTES, StorageNode};
use basin_query::api::{QueryApi, QueryConfig};
use basin_query::cluster_status::ClusterStatus;
use basin_query::grpc::QueryService;
use basin_query::metrics::QueryMetrics;
use basin_storage::{LocalNode, Storage, StorageConfig};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default HTTP listen addresses per role.
pub const STANDALONE_HTTP: &str = "0.0.0.0:9201";
/// Ingest gateway default HTTP address.
pub const INGEST_HTTP: &str = "0.0.0.0:9201";
/// Query node default HTTP address.
pub const QUERY_HTTP: &str = "0.0.0.0:9202";
/// Storage node default HTTP address (admin, metrics).
pub const STORAGE_HTTP: &str = "0.0.0.0:9203";
/// Storage node default gRPC address.
pub const STORAGE_GRPC: &str = "0.0.0.0:9204";
/// Alerter default HTTP address.
pub const ALERTER_HTTP: &str = "0.0.0.0:9205";

fn storage_config(s: &Settings) -> anyhow::Result<StorageConfig> {
    Ok(StorageConfig {
        data_dir: s.data_dir.clone(),
        retention: s.duration("retention")?,
        dedup_interval: s.duration("dedup_interval")?,
        ..StorageConfig::default()
    })
}

fn ingest_config(s: &Settings, replication_factor: usize) -> IngestConfig {
    let usize_of = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    IngestConfig {
        replication_factor,
        min_write_replicas: usize_of(s.min_write_replicas),
        max_inflight_requests: usize_of(s.max_inflight_requests),
        max_inflight_samples: usize_of(s.max_inflight_samples),
        tenant_header: s.tenant_header.clone(),
        ha_replica_labels: s.ha_replica_label.clone(),
        limits: DecodeLimits {
            max_request_bytes: s.max_request_bytes as usize,
            labels: LabelLimits {
                max_labels: s.max_labels_per_series as usize,
                max_length: s.max_label_length as usize,
            },
        },
    }
}

fn query_config(s: &Settings, replication_factor: usize) -> anyhow::Result<QueryConfig> {
    let required = |key| -> anyhow::Result<Duration> {
        s.duration(key)?.with_context(|| format!("missing value for key `{key}`"))
    };
    Ok(QueryConfig {
        lookback_delta: required("query_lookback_delta")?,
        max_samples: s.query_max_samples as usize,
        timeout: required("query_timeout")?,
        partial_response: s.query_partial_response,
        replication_factor,
        node_timeout: required("storage_timeout")?,
        tenant_header: s.tenant_header.clone(),
        max_series_per_select: s.query_max_series,
        ..QueryConfig::default()
    })
}

fn open_storage(s: &Settings, registry: &mut Registry) -> anyhow::Result<Arc<Storage>> {
    let cfg = storage_config(s)?;
    let storage = Storage::open(cfg)
        .with_context(|| format!("cannot open storage in {}", s.data_dir.display()))?;
    basin_storage::register_metrics(&storage, registry);
    Ok(storage)
}

fn storage_timeout(s: &Settings) -> anyhow::Result<Duration> {
    Ok(s.duration("storage_timeout")?.unwrap_or(Duration::from_secs(10)))
}

fn grpc_nodes(s: &Settings) -> anyhow::Result<Vec<Arc<dyn StorageNode>>> {
    anyhow::ensure!(!s.storage_nodes.is_empty(), "missing value for key `storage_nodes`");
    let timeout = storage_timeout(s)?;
    s.storage_nodes
        .iter()
        .map(|addr| {
            let node = GrpcStorageNode::new(addr, timeout)
                .with_context(|| format!("invalid storage node address {addr:?}"))?;
            Ok(Arc::new(node) as Arc<dyn StorageNode>)
        })
        .collect()
}

/// The configured storage nodes, observed (health, deadline) and probed in the background.
fn membership(s: &Settings) -> anyhow::Result<Membership> {
    let membership = Membership::new(grpc_nodes(s)?, Some(storage_timeout(s)?));
    let interval = s.duration("storage_probe_interval")?.unwrap_or(Duration::from_secs(1));
    membership.spawn_probes(interval);
    Ok(membership)
}

/// Starts the public gRPC client API on `--grpc-listen` when it is set; the task ends when
/// `shutdown` fires and in-flight calls have finished.
async fn spawn_client_grpc(
    s: &Settings,
    ingest: Option<IngestServer<IngestService>>,
    query: Option<QueryServer<QueryService>>,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<JoinHandle<Result<(), tonic::transport::Error>>>> {
    let Some(addr) = &s.grpc_listen else { return Ok(None) };
    let listener = bind("gRPC", addr).await?;
    let local = listener.local_addr()?;
    let router = tonic::transport::Server::builder()
        .add_optional_service(ingest)
        .add_optional_service(query);
    Ok(Some(tokio::spawn(async move {
        tracing::info!(addr = %local, "gRPC client API listening");
        router
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.cancelled_owned(),
            )
            .await
    })))
}

/// Waits for the client API task started by [`spawn_client_grpc`].
async fn join_client_grpc(
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
) -> anyhow::Result<()> {
    if let Some(t) = task {
        t.await.context("gRPC client API task")?.context("gRPC client API server")?;
    }
    Ok(())
}

fn http_addr<'a>(s: &'a Settings, default: &'a str) -> &'a str {
    s.http_listen.as_deref().unwrap_or(default)
}

/// `basin standalone`: gateway + query API + storage engine behind one HTTP port.
pub async fn run_standalone(s: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = bind("HTTP", http_addr(&s, STANDALONE_HTTP)).await?;
    let mut registry = Registry::default();
    let storage = open_storage(&s, &mut registry)?;
    let node: Arc<dyn StorageNode> = Arc::new(LocalNode::new(Arc::clone(&storage)));
    let ingest_metrics = Arc::new(IngestMetrics::register(&mut registry));
    // The gateway observes the in-process node too, so /api/v1/status/cluster and the node
    // metrics exist in every role that writes.
    let membership = Membership::new(vec![Arc::clone(&node)], None);
    let gateway =
        Arc::new(Gateway::with_membership(ingest_config(&s, 1), membership, ingest_metrics));
    let query_metrics = QueryMetrics::register(&mut registry);
    let api = Arc::new(QueryApi::new(query_config(&s, 1)?, vec![node], query_metrics));
    let grpc = spawn_client_grpc(
        &s,
        Some(IngestService::new(Arc::clone(&gateway)).into_server()),
        Some(QueryService::new(Arc::clone(&api)).into_server()),
        shutdown.clone(),
    )
    .await?;
    let routes = basin_ingest::router(gateway)
        .merge(basin_query::api::router(api))
        .merge(crate::alerter_proxy::router(s.alerter_url.clone()))
        .merge(basin_storage::admin_router(Arc::clone(&storage)));
    let common = Common::new("standalone", registry);
    let app = with_common(routes, Arc::clone(&common));
    common.set_ready(true);
    let served = serve_http(listener, app, shutdown.clone()).await;
    shutdown.cancel();
    join_client_grpc(grpc).await?;
    served?;
    storage.flush().context("flushing storage at shutdown")?;
    Ok(())
}

/// `basin storage`: the engine behind gRPC, plus admin and metrics over HTTP.
pub async fn run_storage(s: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let http = bind("HTTP", http_addr(&s, STORAGE_HTTP)).await?;
    let grpc = bind("gRPC", s.grpc_listen.as_deref().unwrap_or(STORAGE_GRPC)).await?;
    let grpc_addr = grpc.local_addr()?;
    let mut registry = Registry::default();
    let storage = open_storage(&s, &mut registry)?;
    let common = Common::new("storage", registry);
    let app = with_common(basin_storage::admin_router(Arc::clone(&storage)), Arc::clone(&common));
    let service = basin_storage::grpc_service(Arc::clone(&storage))
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    let grpc_shutdown = shutdown.clone();
    let grpc_task = tokio::spawn(async move {
        tracing::info!(addr = %grpc_addr, "gRPC server listening");
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc),
                grpc_shutdown.cancelled_owned(),
            )
            .await
    });
    common.set_ready(true);
    let http_result = serve_http(http, app, shutdown.clone()).await;
    shutdown.cancel();
    grpc_task.await.context("gRPC server task")?.context("gRPC server")?;
    http_result?;
    storage.flush().context("flushing storage at shutdown")?;
    Ok(())
}

/// `basin ingest`: remote_write gateway over gRPC storage nodes.
pub async fn run_ingest(s: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = bind("HTTP", http_addr(&s, INGEST_HTTP)).await?;
    let membership = membership(&s)?;
    let mut registry = Registry::default();
    let metrics = Arc::new(IngestMetrics::register(&mut registry));
    let cfg = ingest_config(&s, s.replication_factor as usize);
    let gateway = Arc::new(Gateway::with_membership(cfg, membership, metrics));
    let grpc = spawn_client_grpc(
        &s,
        Some(IngestService::new(Arc::clone(&gateway)).into_server()),
        None,
        shutdown.clone(),
    )
    .await?;
    let common = Common::new("ingest", registry);
    let app = with_common(basin_ingest::router(gateway), Arc::clone(&common));
    common.set_ready(true);
    let served = serve_http(listener, app, shutdown.clone()).await;
    shutdown.cancel();
    join_client_grpc(grpc).await?;
    served
}

/// `basin query`: Prometheus HTTP API over gRPC storage nodes.
pub async fn run_query(s: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = bind("HTTP", http_addr(&s, QUERY_HTTP)).await?;
    let membership = membership(&s)?;
    let rf = s.replication_factor as usize;
    let mut registry = Registry::default();
    let metrics = QueryMetrics::register(&mut registry);
    let status = ClusterStatus::new(membership.clone(), rf);
    status.register_metrics(&mut registry);
    let api = Arc::new(QueryApi::new(query_config(&s, rf)?, membership.storage_nodes(), metrics));
    let grpc = spawn_client_grpc(
        &s,
        None,
        Some(QueryService::new(Arc::clone(&api)).into_server()),
        shutdown.clone(),
    )
    .await?;
    let common = Common::new("query", registry);
    let routes = basin_query::api::router(api)
        .merge(basin_query::cluster_status::router(Arc::new(status)))
        .merge(crate::alerter_proxy::router(s.alerter_url.clone()));
    let app = with_common(routes, Arc::clone(&common));
    common.set_ready(true);
    let served = serve_http(listener, app, shutdown.clone()).await;
    shutdown.cancel();
    join_client_grpc(grpc).await?;
    served
}

/// `basin alerter`: Prometheus rule files evaluated against `query_url`; reloads on SIGHUP.
pub async fn run_alerter(s: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(!s.rule_files.is_empty(), "missing value for key `rule_files`");
    let query_url = s.query_url.clone().context("missing value for key `query_url`")?;
    let addr = http_addr(&s, ALERTER_HTTP).to_string();
    let listener = bind("HTTP", &addr).await?;
    let external_labels = s
        .external_label
        .iter()
        .map(|l| basin_alerter::parse_external_label(l))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = basin_alerter::AlerterConfig {
        rule_files: s.rule_files.clone(),
        query_url,
        remote_write_url: s.remote_write_url.clone(),
        alertmanager_urls: s.alertmanager_url.clone(),
        external_labels,
        evaluation_interval: s.duration("evaluation_interval")?.unwrap_or(Duration::from_secs(60)),
        external_url: s.external_url.clone().unwrap_or_else(|| format!("http://{addr}")),
        tenant_header: s.tenant_header.clone(),
        ..basin_alerter::AlerterConfig::default()
    };
    let mut registry = Registry::default();
    let alerter = basin_alerter::Alerter::new(cfg, &mut registry)?;
    let common = Common::new("alerter", registry);
    let app = with_common(basin_alerter::router(Arc::clone(&alerter)), Arc::clone(&common));
    tokio::spawn(reload_on_sighup(Arc::clone(&alerter), shutdown.clone()));
    let eval = tokio::spawn(Arc::clone(&alerter).run(shutdown.clone()));
    common.set_ready(true);
    let served = serve_http(listener, app, shutdown.clone()).await;
    shutdown.cancel();
    eval.await.context("alerter evaluation task")?;
    served
}

async fn reload_on_sighup(alerter: Arc<basin_alerter::Alerter>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hup.recv() => {
                match alerter.reload().await {
                    Ok(()) => tracing::info!("rule files reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload failed; keeping the old rules"),
                }
            }
        }
    }
}
