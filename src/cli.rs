//! Command line: one binary, one subcommand per role.
//!
//! Every flag is optional here: a flag that is given overrides the config file and the
//! environment (see `settings`), one that is not leaves the lower layers in force. Flag names
//! are a contract that scripts and docs rely on.

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

/// Basin: a distributed, Prometheus-compatible metrics store.
///
/// Runs one role per process (ingest, storage, query, alerter) or all of them in one
/// (standalone, the default). Settings come from, in rising precedence: built-in defaults,
/// a config file (--config, TOML or YAML), environment variables BASIN_<KEY> (e.g.
/// BASIN_HTTP_LISTEN), and flags.
#[derive(Debug, Parser)]
#[command(
    name = "basin",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The role to run; `standalone` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `standalone`, accepted without the subcommand.
    #[command(flatten)]
    pub standalone: StandaloneArgs,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process: remote_write, storage on local disk, PromQL HTTP API.
    Standalone(StandaloneArgs),
    /// Ingest gateway: receives remote_write and shards series over the storage nodes.
    Ingest(IngestArgs),
    /// Storage node: stores series in RocksDB and serves them over gRPC.
    Storage(StorageArgs),
    /// Query node: Prometheus HTTP API, fanning PromQL selects out to the storage nodes.
    Query(QueryArgs),
    /// Alerter: evaluates Prometheus rule files against a query node.
    Alerter(AlerterArgs),
    /// Runs PromQL test files in Prometheus' data-driven `.test` format against Basin's engine.
    #[command(name = "promql-test")]
    PromqlTest(PromqlTestArgs),
}

/// Flags every role has.
#[derive(Debug, Args, Serialize, Default)]
pub struct CommonArgs {
    /// Config file (TOML or YAML) with the same keys as the flags, in snake_case.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address of the HTTP server (API, /metrics, /health, /ready).
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Log level or filter, e.g. `info`, `debug`, `basin_ingest=debug,info`.
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// Flags of roles that talk to storage nodes (ingest, query).
#[derive(Debug, Args, Serialize, Default)]
pub struct ClusterArgs {
    /// Storage nodes' gRPC addresses, comma-separated: HOST:PORT,HOST:PORT,...
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_nodes: Option<Vec<String>>,
    /// Copies of each series on distinct storage nodes.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u64>,
    /// Timeout of one gRPC call to a storage node (e.g. `10s`).
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_timeout: Option<String>,
    /// How often each storage node's health is probed (a node marked down comes back when a
    /// probe succeeds).
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_probe_interval: Option<String>,
}

/// Flags of the public gRPC client API (ingest, query, standalone).
#[derive(Debug, Args, Serialize, Default)]
pub struct ClientApiArgs {
    /// Address of the gRPC client API (`basin.client.v1`): `Ingest` on gateways, `Query` on
    /// query nodes, both on standalone. Off when unset.
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<String>,
}

/// Flags of the write path (ingest, standalone).
#[derive(Debug, Args, Serialize, Default)]
pub struct WriteArgs {
    /// Label dropped from incoming series, for HA Prometheus pairs (repeatable).
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha_replica_label: Option<Vec<String>>,
    /// HTTP header that names the tenant on writes and queries.
    #[arg(long, value_name = "HEADER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_header: Option<String>,
    /// Largest uncompressed remote_write body accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    /// Most labels one series may have.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_labels_per_series: Option<u64>,
    /// Longest label name or value, in bytes.
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_label_length: Option<u64>,
    /// Copies every sample must reach before a write is acknowledged (default: the
    /// replication factor).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_write_replicas: Option<u64>,
    /// Write requests handled at once; more get 429 with Retry-After (0: unbounded).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight_requests: Option<u64>,
    /// Samples being written at once; requests beyond get 429 with Retry-After (0: unbounded).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight_samples: Option<u64>,
}

/// Flags of the query path (query, standalone).
#[derive(Debug, Args, Serialize, Default)]
pub struct ReadArgs {
    /// How far back an instant selector looks for the latest sample.
    #[arg(long = "query.lookback-delta", value_name = "DURATION")]
    #[serde(rename = "query_lookback_delta", skip_serializing_if = "Option::is_none")]
    pub lookback_delta: Option<String>,
    /// Most samples one query may load into memory.
    #[arg(long = "query.max-samples", value_name = "N")]
    #[serde(rename = "query_max_samples", skip_serializing_if = "Option::is_none")]
    pub max_samples: Option<u64>,
    /// Most series one selector may fetch from a storage node (0: the node's own limit).
    #[arg(long = "query.max-series", value_name = "N")]
    #[serde(rename = "query_max_series", skip_serializing_if = "Option::is_none")]
    pub max_series: Option<u64>,
    /// Longest a query may run.
    #[arg(long = "query.timeout", value_name = "DURATION")]
    #[serde(rename = "query_timeout", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Answer with warnings (true) or fail with 503 (false) when storage nodes are missing.
    #[arg(long = "query.partial-response", value_name = "BOOL")]
    #[serde(rename = "query_partial_response", skip_serializing_if = "Option::is_none")]
    pub partial_response: Option<bool>,
    /// Alerter base URL; `/api/v1/rules` and `/api/v1/alerts` are proxied to it.
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerter_url: Option<String>,
}

/// Flags of the storage engine (storage, standalone).
#[derive(Debug, Args, Serialize, Default)]
pub struct EngineArgs {
    /// Directory of the RocksDB data.
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// How long samples are kept (e.g. `30d`); unlimited when unset.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// Keep one sample per series per interval (e.g. `15s`), for HA pairs.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_interval: Option<String>,
}

/// `basin standalone`.
#[derive(Debug, Args, Default)]
pub struct StandaloneArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub client: ClientApiArgs,
}

/// `basin ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub client: ClientApiArgs,
}

/// `basin storage`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address of the gRPC server that gateways and query nodes call.
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `basin query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub client: ClientApiArgs,
    /// HTTP header that names the tenant on queries.
    #[arg(long, value_name = "HEADER")]
    pub tenant_header: Option<String>,
}

/// `basin alerter`.
#[derive(Debug, Args)]
pub struct AlerterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rule files to load (glob patterns, repeatable).
    #[arg(long, value_name = "GLOB", num_args = 1..)]
    pub rule_files: Option<Vec<String>>,
    /// Base URL of the Prometheus-compatible query API rules are evaluated against.
    #[arg(long, value_name = "URL")]
    pub query_url: Option<String>,
    /// remote_write URL that recording rule results and ALERTS are written to.
    #[arg(long, value_name = "URL")]
    pub remote_write_url: Option<String>,
    /// Alertmanager base URLs (repeatable).
    #[arg(long, value_name = "URL", num_args = 1..)]
    pub alertmanager_url: Option<Vec<String>>,
    /// Label added to every alert and recorded series, `NAME=VALUE` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    pub external_label: Option<Vec<String>>,
    /// Evaluation interval of groups that set none.
    #[arg(long, value_name = "DURATION")]
    pub evaluation_interval: Option<String>,
    /// This alerter's externally reachable URL, used in alerts' generatorURL.
    #[arg(long, value_name = "URL")]
    pub external_url: Option<String>,
    /// Only check the rule files (given as arguments, or --rule-files) and exit.
    #[arg(long, value_name = "FILE", num_args = 0..)]
    pub check: Option<Vec<String>>,
}

/// `basin promql-test`.
#[derive(Debug, Args)]
pub struct PromqlTestArgs {
    /// Test files or directories of `.test` files (default: $BASIN_CONFORMANCE_DIR).
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
    /// File listing evals known to fail (`file:line`); only unlisted failures fail the run.
    #[arg(long, value_name = "FILE")]
    pub known_failures: Option<String>,
}
