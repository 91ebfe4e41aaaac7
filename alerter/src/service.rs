//! The alerter service: configuration, the set of running groups, reload.
//!
//! [`Alerter::run`] starts the notifier, the remote writer and one task per group, and stops
//! them on shutdown. [`Alerter::reload`] re-reads the rule files; if any is invalid nothing
//! changes, otherwise groups are replaced, keeping the alert state of rules that did not change
//! (same file, group, name, expression and labels).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::AlerterError;
use crate::eval::{EvalContext, GroupRuntime, lock, run_group};
use crate::metrics::AlerterMetrics;
use crate::notify::Notifier;
use crate::query::QueryClient;
use crate::remote_write::RemoteWriter;
use crate::rules::validate::load_rule_files;

/// Configuration of `basin alerter`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlerterConfig {
    /// Rule file globs (`--rule-files`).
    pub rule_files: Vec<String>,
    /// Prometheus-compatible query API base URL (`--query-url`).
    pub query_url: String,
    /// remote_write URL for recording rules and `ALERTS*` (`--remote-write-url`).
    pub remote_write_url: Option<String>,
    /// Alertmanager base URLs (`--alertmanager-url`, repeatable).
    pub alertmanager_urls: Vec<String>,
    /// Labels added to every alert and written series (`--external-label k=v`).
    pub external_labels: Vec<(String, String)>,
    /// Interval of groups that set none (`evaluation_interval`, default 1m).
    pub evaluation_interval: Duration,
    /// How often firing alerts are re-sent (default 1m).
    pub resend_delay: Duration,
    /// The alerter's externally reachable URL, prefix of `generatorURL`.
    pub external_url: String,
    /// Timeout of one query (default 2m, Prometheus' query timeout).
    pub query_timeout: Duration,
    /// Timeout of one Alertmanager request (default 10s).
    pub notification_timeout: Duration,
    /// Timeout of one remote_write request (default 30s).
    pub remote_write_timeout: Duration,
    /// Tenant to query and write as; sent in `tenant_header` when set.
    pub tenant: Option<String>,
    /// The header that names the tenant (default `X-Scope-OrgID`).
    pub tenant_header: String,
}

/// Parses one `--external-label` value, `name=value`.
pub fn parse_external_label(s: &str) -> Result<(String, String), AlerterError> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| AlerterError::Config(format!("external label {s:?} is not name=value")))?;
    if !crate::labels::is_valid_label_name(name) {
        return Err(AlerterError::Config(format!("invalid external label name {name:?}")));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Default headers of every request to the query API and the remote_write receiver.
fn tenant_headers(cfg: &AlerterConfig) -> Result<reqwest::header::HeaderMap, AlerterError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(tenant) = &cfg.tenant {
        let name =
            reqwest::header::HeaderName::from_bytes(cfg.tenant_header.as_bytes()).map_err(|e| {
                AlerterError::Config(format!("tenant header {:?}: {e}", cfg.tenant_header))
            })?;
        let value = reqwest::header::HeaderValue::from_str(tenant)
            .map_err(|e| AlerterError::Config(format!("tenant {tenant:?}: {e}")))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

impl Default for AlerterConfig {
    fn default() -> Self {
        AlerterConfig {
            rule_files: Vec::new(),
            query_url: "http://127.0.0.1:9090".to_string(),
            remote_write_url: None,
            alertmanager_urls: Vec::new(),
            external_labels: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            resend_delay: Duration::from_secs(60),
            external_url: "http://localhost:9090".to_string(),
            query_timeout: Duration::from_secs(120),
            notification_timeout: Duration::from_secs(10),
            remote_write_timeout: Duration::from_secs(30),
            tenant: None,
            tenant_header: "X-Scope-OrgID".to_string(),
        }
    }
}

#[derive(Debug)]
struct Running {
    runtime: Arc<GroupRuntime>,
    cancel: CancellationToken,
}

/// The alerter: loaded groups, their state, and the machinery around them.
#[derive(Debug)]
pub struct Alerter {
    cfg: AlerterConfig,
    ctx: EvalContext,
    groups: Mutex<Vec<Running>>,
    /// Set by `run`: the token group tasks hang off, and the set they are spawned into.
    root: Mutex<Option<(CancellationToken, tokio::runtime::Handle)>>,
    reload_lock: tokio::sync::Mutex<()>,
    /// The group tasks, joined on shutdown.
    group_tasks: Mutex<JoinSet<()>>,
}

impl Alerter {
    /// Validates the configuration and loads the rule files (an invalid file is an error).
    /// Registers the alerter's metrics in `registry`.
    pub fn new(cfg: AlerterConfig, registry: &mut Registry) -> Result<Arc<Self>, AlerterError> {
        for (name, _) in &cfg.external_labels {
            if !crate::labels::is_valid_label_name(name) {
                return Err(AlerterError::Config(format!("invalid external label name {name:?}")));
            }
        }
        let urls = cfg.alertmanager_urls.iter().chain(cfg.remote_write_url.as_ref());
        for url in urls {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(AlerterError::Config(format!("{url:?} is not an http(s) URL")));
            }
        }
        if cfg.evaluation_interval.is_zero() {
            return Err(AlerterError::Config("evaluation interval must be positive".to_string()));
        }
        let metrics = AlerterMetrics::new(registry);
        let headers = tenant_headers(&cfg)?;
        let query = QueryClient::new(&cfg.query_url, cfg.query_timeout, headers.clone())?;
        let notifier =
            Notifier::new(&cfg.alertmanager_urls, cfg.notification_timeout, metrics.clone())?;
        let writer = cfg
            .remote_write_url
            .as_ref()
            .map(|url| {
                RemoteWriter::new(
                    url.clone(),
                    cfg.external_labels.clone(),
                    cfg.remote_write_timeout,
                    headers.clone(),
                    metrics.clone(),
                )
            })
            .transpose()?;
        let ctx = EvalContext {
            query,
            writer,
            notifier,
            external_labels: cfg.external_labels.clone(),
            external_url: cfg.external_url.trim_end_matches('/').to_string(),
            resend_delay: cfg.resend_delay,
            metrics,
        };
        let (groups, _) = load_rule_files(&cfg.rule_files, cfg.evaluation_interval)
            .map_err(AlerterError::RuleFiles)?;
        let running: Vec<Running> = groups
            .into_iter()
            .map(|g| Running {
                runtime: Arc::new(GroupRuntime::new(g, None, true)),
                cancel: CancellationToken::new(),
            })
            .collect();
        let alerter = Alerter {
            cfg,
            ctx,
            groups: Mutex::new(running),
            root: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            group_tasks: Mutex::new(JoinSet::new()),
        };
        alerter.update_counts();
        Ok(Arc::new(alerter))
    }

    /// The configuration in use.
    pub fn config(&self) -> &AlerterConfig {
        &self.cfg
    }

    /// Snapshot of the loaded groups, in file order.
    pub fn groups(&self) -> Vec<Arc<GroupRuntime>> {
        lock(&self.groups).iter().map(|r| Arc::clone(&r.runtime)).collect()
    }

    fn update_counts(&self) {
        let groups = lock(&self.groups);
        self.ctx.metrics.groups.set(groups.len() as i64);
        self.ctx.metrics.rules.set(groups.iter().map(|g| g.runtime.rules.len() as i64).sum());
    }

    /// Evaluates until `shutdown` is cancelled: every group at its interval, notifications and
    /// remote_write in the background. Returns once every task has stopped.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Notifier and writer stop after the groups, so the last evaluations' output is sent.
        let mut background = JoinSet::new();
        let background_stop = CancellationToken::new();
        background.spawn(self.ctx.notifier.clone().run(background_stop.clone()));
        if let Some(writer) = &self.ctx.writer {
            background.spawn(writer.clone().run(background_stop.clone()));
        }
        {
            *lock(&self.root) = Some((shutdown.clone(), tokio::runtime::Handle::current()));
            let mut groups = lock(&self.groups);
            for g in groups.iter_mut() {
                g.cancel = shutdown.child_token();
                let task = run_group(Arc::clone(&g.runtime), self.ctx.clone(), g.cancel.clone());
                lock(&self.group_tasks).spawn(task);
            }
        }
        tracing::info!(groups = lock(&self.groups).len(), "alerter started");
        shutdown.cancelled().await;
        let mut group_tasks = std::mem::take(&mut *lock(&self.group_tasks));
        while group_tasks.join_next().await.is_some() {}
        background_stop.cancel();
        while background.join_next().await.is_some() {}
        tracing::info!("alerter stopped");
    }

    /// Re-reads the rule files. On error nothing changes. Rules that did not change keep their
    /// state (pending/firing alerts, `for` progress).
    pub async fn reload(&self) -> Result<(), AlerterError> {
        let _serial = self.reload_lock.lock().await;
        let loaded = load_rule_files(&self.cfg.rule_files, self.cfg.evaluation_interval);
        let groups = match loaded {
            Ok((groups, _)) => groups,
            Err(errors) => {
                self.ctx.metrics.reload_failures.inc();
                return Err(AlerterError::RuleFiles(errors));
            }
        };
        let root = lock(&self.root).clone();
        {
            let mut running = lock(&self.groups);
            let old: HashMap<(String, String), &Running> =
                running.iter().map(|r| (r.runtime.group.key(), r)).collect();
            let mut next = Vec::with_capacity(groups.len());
            for group in groups {
                let previous = old.get(&group.key());
                // Unchanged groups keep running untouched.
                if let Some(p) = previous.filter(|p| p.runtime.group == group) {
                    next.push(Running {
                        runtime: Arc::clone(&p.runtime),
                        cancel: p.cancel.clone(),
                    });
                    continue;
                }
                let runtime =
                    Arc::new(GroupRuntime::new(group, previous.map(|p| &*p.runtime), false));
                let cancel = match &root {
                    Some((token, handle)) => {
                        let cancel = token.child_token();
                        let task =
                            run_group(Arc::clone(&runtime), self.ctx.clone(), cancel.clone());
                        let mut tasks = lock(&self.group_tasks);
                        // Forget tasks of groups stopped by earlier reloads.
                        while tasks.try_join_next().is_some() {}
                        tasks.spawn_on(task, handle);
                        cancel
                    }
                    None => CancellationToken::new(),
                };
                next.push(Running { runtime, cancel });
            }
            // Stop groups that were replaced or removed.
            for r in running.iter() {
                if !next.iter().any(|n| Arc::ptr_eq(&n.runtime, &r.runtime)) {
                    r.cancel.cancel();
                }
            }
            *running = next;
        }
        self.update_counts();
        self.ctx.metrics.reloads.inc();
        tracing::info!("rule files reloaded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        let mut registry = Registry::default();
        let bad = |cfg: AlerterConfig| Alerter::new(cfg, &mut Registry::default()).is_err();
        assert!(bad(AlerterConfig { query_url: "localhost:9090".into(), ..Default::default() }));
        assert!(bad(AlerterConfig {
            alertmanager_urls: vec!["am:9093".into()],
            ..Default::default()
        }));
        assert!(bad(AlerterConfig {
            external_labels: vec![("bad-name".into(), "x".into())],
            ..Default::default()
        }));
        assert!(bad(AlerterConfig {
            rule_files: vec!["/nonexistent.yml".into()],
            ..Default::default()
        }));
        assert!(bad(AlerterConfig { tenant: Some("a\nb".into()), ..Default::default() }));
        let ok = Alerter::new(AlerterConfig::default(), &mut registry);
        assert!(ok.is_ok_and(|a| a.groups().is_empty()));
        assert_eq!(
            parse_external_label("cluster=eu=1").ok(),
            Some(("cluster".into(), "eu=1".into()))
        );
        assert!(parse_external_label("novalue").is_err());
    }
}
