//! Settings: defaults → config file → `BASIN_*` environment → flags, via the `config` crate.
//!
//! One flat set of snake_case keys serves every role (a key a role does not use is ignored by
//! it, an unknown key is an error). Values are checked here, once, so that a bad value is a
//! clear error naming the key before any role starts.

use crate::cli::{ClientApiArgs, ClusterArgs, CommonArgs, EngineArgs, ReadArgs, WriteArgs};
use config::{Config, Environment, File};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// A setting that could not be loaded or is invalid.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// The config file, environment or flags could not be read or typed.
    #[error("configuration error: {0}")]
    Load(#[from] config::ConfigError),
    /// A key has a value of the right type that is still wrong.
    #[error("invalid value for key `{key}`: {reason}")]
    Invalid {
        /// The key, as written in a config file.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of every role, with its default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// HTTP listen address; the role's default when unset.
    pub http_listen: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level / filter.
    pub log_level: String,
    /// gRPC listen address: the storage service on storage nodes (default `0.0.0.0:9204`),
    /// the client API on ingest, query and standalone (off when unset).
    pub grpc_listen: Option<String>,
    /// Data directory (storage, standalone).
    pub data_dir: PathBuf,
    /// Sample retention; unlimited when unset.
    pub retention: Option<String>,
    /// Dedup interval; off when unset.
    pub dedup_interval: Option<String>,
    /// Storage node addresses (ingest, query).
    pub storage_nodes: Vec<String>,
    /// Replication factor (ingest, query).
    pub replication_factor: u64,
    /// Timeout of one storage node call.
    pub storage_timeout: String,
    /// Interval of storage node health probes (ingest, query).
    pub storage_probe_interval: String,
    /// Copies a sample must reach before a write is acknowledged; 0 means the replication
    /// factor (ingest).
    pub min_write_replicas: u64,
    /// Write requests handled at once (0: unbounded).
    pub max_inflight_requests: u64,
    /// Samples being written at once (0: unbounded).
    pub max_inflight_samples: u64,
    /// Labels dropped on ingest (HA replica labels).
    pub ha_replica_label: Vec<String>,
    /// Tenant header.
    pub tenant_header: String,
    /// Largest uncompressed remote_write body.
    pub max_request_bytes: u64,
    /// Most labels per series.
    pub max_labels_per_series: u64,
    /// Longest label name or value.
    pub max_label_length: u64,
    /// PromQL lookback delta.
    pub query_lookback_delta: String,
    /// Most samples per query.
    pub query_max_samples: u64,
    /// Most series one selector may fetch from a storage node (0: the node's limit).
    pub query_max_series: u64,
    /// Query timeout.
    pub query_timeout: String,
    /// Partial answers with warnings (true) or 503 (false) when nodes are missing.
    pub query_partial_response: bool,
    /// Alerter whose rules and alerts the query API proxies (query, standalone).
    pub alerter_url: Option<String>,
    /// Rule file globs (alerter).
    pub rule_files: Vec<String>,
    /// Query API base URL (alerter).
    pub query_url: Option<String>,
    /// remote_write URL (alerter).
    pub remote_write_url: Option<String>,
    /// Alertmanager base URLs (alerter).
    pub alertmanager_url: Vec<String>,
    /// `NAME=VALUE` labels added to alerts and recorded series (alerter).
    pub external_label: Vec<String>,
    /// Default group evaluation interval (alerter).
    pub evaluation_interval: String,
    /// External URL for generatorURL (alerter); `http://<http_listen>` when unset.
    pub external_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_listen: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            grpc_listen: None,
            data_dir: PathBuf::from("./basin-data"),
            retention: None,
            dedup_interval: None,
            storage_nodes: Vec::new(),
            replication_factor: 1,
            storage_timeout: "10s".into(),
            storage_probe_interval: "1s".into(),
            min_write_replicas: 0,
            max_inflight_requests: 256,
            max_inflight_samples: 4_000_000,
            ha_replica_label: Vec::new(),
            tenant_header: "X-Scope-OrgID".into(),
            max_request_bytes: 64 << 20,
            max_labels_per_series: 64,
            max_label_length: 4096,
            query_lookback_delta: "5m".into(),
            query_max_samples: 50_000_000,
            query_max_series: 0,
            query_timeout: "2m".into(),
            query_partial_response: true,
            alerter_url: None,
            rule_files: Vec::new(),
            query_url: None,
            remote_write_url: None,
            alertmanager_url: Vec::new(),
            external_label: Vec::new(),
            evaluation_interval: "1m".into(),
            external_url: None,
        }
    }
}

/// Flag values that override the lower layers; `None` leaves them alone.
#[derive(Debug, Default)]
pub struct Overrides<'a> {
    /// Common flags (also names the config file).
    pub common: Option<&'a CommonArgs>,
    /// Cluster flags.
    pub cluster: Option<&'a ClusterArgs>,
    /// Write-path flags.
    pub write: Option<&'a WriteArgs>,
    /// Query flags.
    pub read: Option<&'a ReadArgs>,
    /// Engine flags.
    pub engine: Option<&'a EngineArgs>,
    /// Client API flags.
    pub client: Option<&'a ClientApiArgs>,
    /// Single flags of one role, by key.
    pub single: Vec<(&'static str, config::Value)>,
}

/// Loads settings from the layers, then checks every value.
pub fn load(o: &Overrides<'_>) -> Result<Settings, SettingsError> {
    let mut b = Config::builder();
    if let Some(path) = o.common.and_then(|c| c.config.as_ref()) {
        b = b.add_source(File::from(path.as_path()).required(true));
    }
    // Only `BASIN_<KEY>` variables of known keys are settings: other BASIN_* variables (e.g.
    // BASIN_CONFORMANCE_DIR of `basin promql-test`, or ones a test harness sets) are not.
    let mut env = Environment::with_prefix("BASIN")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(settings_env()));
    for key in
        ["storage_nodes", "ha_replica_label", "rule_files", "alertmanager_url", "external_label"]
    {
        env = env.with_list_parse_key(key);
    }
    b = b.add_source(env);
    if let Some(c) = o.common {
        b = b.add_source(Config::try_from(c)?);
    }
    if let Some(c) = o.cluster {
        b = b.add_source(Config::try_from(c)?);
    }
    if let Some(c) = o.write {
        b = b.add_source(Config::try_from(c)?);
    }
    if let Some(c) = o.read {
        b = b.add_source(Config::try_from(c)?);
    }
    if let Some(c) = o.engine {
        b = b.add_source(Config::try_from(c)?);
    }
    if let Some(c) = o.client {
        b = b.add_source(Config::try_from(c)?);
    }
    for (key, value) in &o.single {
        b = b.set_override(*key, value.clone())?;
    }
    let settings: Settings = b.build()?.try_deserialize()?;
    settings.validate()?;
    Ok(settings)
}

/// The process environment's `BASIN_<KEY>` variables whose key is a setting.
fn settings_env() -> config::Map<String, String> {
    let keys: Vec<String> = match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().map(|k| k.to_uppercase()).collect(),
        _ => Vec::new(),
    };
    std::env::vars()
        .filter(|(k, _)| k.strip_prefix("BASIN_").is_some_and(|key| keys.iter().any(|s| s == key)))
        .collect()
}

impl Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: String| Err(SettingsError::Invalid { key, reason });
        if let Some(addr) = &self.http_listen {
            check_addr("http_listen", addr)?;
        }
        if let Some(addr) = &self.grpc_listen {
            check_addr("grpc_listen", addr)?;
        }
        for n in &self.storage_nodes {
            if n.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                return invalid("storage_nodes", format!("{n:?} is not HOST:PORT"));
            }
        }
        if self.replication_factor == 0 {
            return invalid("replication_factor", "must be at least 1".into());
        }
        if !self.storage_nodes.is_empty()
            && self.replication_factor as usize > self.storage_nodes.len()
        {
            return invalid(
                "replication_factor",
                format!(
                    "{} is more than the {} storage nodes configured",
                    self.replication_factor,
                    self.storage_nodes.len()
                ),
            );
        }
        for (key, v) in [
            ("storage_timeout", Some(&self.storage_timeout)),
            ("storage_probe_interval", Some(&self.storage_probe_interval)),
            ("query_lookback_delta", Some(&self.query_lookback_delta)),
            ("query_timeout", Some(&self.query_timeout)),
            ("retention", self.retention.as_ref()),
            ("dedup_interval", self.dedup_interval.as_ref()),
            ("evaluation_interval", Some(&self.evaluation_interval)),
        ] {
            if let Some(v) = v {
                duration(key, v)?;
            }
        }
        if self.min_write_replicas > self.replication_factor {
            return invalid(
                "min_write_replicas",
                format!(
                    "{} is more than the replication factor {}",
                    self.min_write_replicas, self.replication_factor
                ),
            );
        }
        if self.duration("storage_probe_interval")?.is_some_and(|d| d.is_zero()) {
            return invalid("storage_probe_interval", "must be positive".into());
        }
        if self.max_labels_per_series == 0 || self.max_label_length == 0 {
            return invalid("max_labels_per_series", "limits must be positive".into());
        }
        let urls = [("query_url", self.query_url.iter().collect::<Vec<_>>())]
            .into_iter()
            .chain([("remote_write_url", self.remote_write_url.iter().collect())])
            .chain([("alertmanager_url", self.alertmanager_url.iter().collect())])
            .chain([("external_url", self.external_url.iter().collect())])
            .chain([("alerter_url", self.alerter_url.iter().collect())]);
        for (key, list) in urls {
            for u in list {
                if !u.starts_with("http://") {
                    return invalid(
                        key,
                        format!("{u:?} is not an http:// URL (TLS is not built yet)"),
                    );
                }
            }
        }
        for l in &self.external_label {
            if basin_alerter::parse_external_label(l).is_err() {
                return invalid("external_label", format!("{l:?} is not NAME=VALUE"));
            }
        }
        Ok(())
    }

    /// A duration setting, already validated.
    pub fn duration(&self, key: &'static str) -> Result<Option<Duration>, SettingsError> {
        let v = match key {
            "storage_timeout" => Some(&self.storage_timeout),
            "storage_probe_interval" => Some(&self.storage_probe_interval),
            "query_lookback_delta" => Some(&self.query_lookback_delta),
            "query_timeout" => Some(&self.query_timeout),
            "retention" => self.retention.as_ref(),
            "dedup_interval" => self.dedup_interval.as_ref(),
            "evaluation_interval" => Some(&self.evaluation_interval),
            _ => None,
        };
        v.map(|v| duration(key, v)).transpose()
    }
}

fn check_addr(key: &'static str, addr: &str) -> Result<(), SettingsError> {
    match addr.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(SettingsError::Invalid { key, reason: format!("{addr:?} is not HOST:PORT") }),
    }
}

/// Parses a Prometheus duration (`30s`, `5m`, `1h30m`, `30d`, `2w`, `1y`, `250ms`).
pub fn duration(key: &'static str, v: &str) -> Result<Duration, SettingsError> {
    parse_duration(v).ok_or_else(|| SettingsError::Invalid {
        key,
        reason: format!("{v:?} is not a duration like 30s, 5m, 1h30m, 30d"),
    })
}

fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms = total_ms.checked_add(n.checked_mul(unit_ms)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "m", "5x", "1.5h", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
