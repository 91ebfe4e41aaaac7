//! End-to-end against a real Prometheus (query API and remote_write receiver) and a real
//! Alertmanager: an alert goes pending → firing → resolved and Alertmanager sees it come and
//! go; a recording rule's result and `ALERTS` are written via remote_write and read back; a
//! restart keeps `for` progress from `ALERTS_FOR_STATE`.

mod support;

use std::time::Duration;

use anyhow::Result;
use basin_alerter::AlerterConfig;
use support::*;

fn config(rules: &std::path::Path, prometheus: &str, alertmanager: &str) -> AlerterConfig {
    AlerterConfig {
        rule_files: vec![rules.display().to_string()],
        query_url: prometheus.to_string(),
        remote_write_url: Some(format!("{prometheus}/api/v1/write")),
        alertmanager_urls: vec![alertmanager.to_string()],
        external_labels: vec![("cluster".to_string(), "test".to_string())],
        evaluation_interval: Duration::from_secs(1),
        resend_delay: Duration::from_secs(1),
        external_url: "http://alerter.example:9093".to_string(),
        query_timeout: Duration::from_secs(5),
        ..AlerterConfig::default()
    }
}

fn alert_named<'a>(alerts: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_lifecycle_reaches_alertmanager_and_recording_rule_is_written() -> Result<()> {
    if !peers_installed() {
        return Ok(());
    }
    let prometheus = start_prometheus().await?;
    let alertmanager = start_alertmanager().await?;
    let pusher = Pusher::start(&prometheus.url, "test_value", &[("instance", "a")], 1.0);
    let dir = tempfile::tempdir()?;
    let rules = rule_file(
        dir.path(),
        "rules.yml",
        r#"groups:
  - name: lifecycle
    interval: 1s
    rules:
      - record: test:value:doubled
        expr: test_value * 2
        labels:
          recorded: "yes"
      - alert: TestHigh
        expr: test_value > 0
        for: 3s
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.instance }} is at {{ $value }} in {{ $externalLabels.cluster }}'
          total: '{{ with query "sum(test_value) * 10" }}{{ . | first | value | humanize }}{{ end }}'
"#,
    )?;
    let alerter = RunningAlerter::start(config(&rules, &prometheus.url, &alertmanager.url)).await?;

    // Pending first, visible in the alerter's own API.
    let pending = wait_until("pending alert", Duration::from_secs(15), || async {
        let alerts = alerter.get_json("/api/v1/alerts").await?;
        let list = alerts["data"]["alerts"].as_array()?.clone();
        alert_named(&list, "TestHigh").filter(|a| a["state"] == "pending").cloned()
    })
    .await?;
    assert_eq!(pending["labels"]["instance"], "a");
    assert_eq!(pending["labels"]["severity"], "page");
    assert_eq!(pending["value"], "1e+00");
    assert_eq!(pending["annotations"]["summary"], "a is at 1 in test");
    assert_eq!(pending["annotations"]["total"], "10", "`query` in a template");
    assert!(
        am_alerts(&alertmanager.url).await.unwrap_or_default().is_empty(),
        "pending is not sent"
    );

    // Firing: Alertmanager gets it, with external labels and generatorURL.
    let am_alert = wait_until("alert in Alertmanager", Duration::from_secs(15), || async {
        let alerts = am_alerts(&alertmanager.url).await?;
        alert_named(&alerts, "TestHigh").cloned()
    })
    .await?;
    assert_eq!(am_alert["labels"]["cluster"], "test");
    assert_eq!(am_alert["labels"]["instance"], "a");
    assert_eq!(am_alert["annotations"]["summary"], "a is at 1 in test");
    assert_eq!(
        am_alert["generatorURL"],
        "http://alerter.example:9093/graph?g0.expr=test_value+%3E+0&g0.tab=1"
    );
    assert_eq!(am_alert["status"]["state"], "active");
    let rules_json = alerter.get_json("/api/v1/rules").await.unwrap_or_default();
    let rule = &rules_json["data"]["groups"][0]["rules"][1];
    assert_eq!(rule["state"], "firing");
    assert_eq!(rule["health"], "ok");
    assert_eq!(rule["duration"], 3.0);

    // The recording rule's result and ALERTS were written back through remote_write.
    let recorded = wait_until("recorded series", Duration::from_secs(15), || async {
        let r = prom_query(&prometheus.url, "test:value:doubled").await?;
        r.first().cloned()
    })
    .await?;
    assert_eq!(recorded["metric"]["instance"], "a");
    assert_eq!(recorded["metric"]["recorded"], "yes");
    assert_eq!(recorded["metric"]["cluster"], "test");
    assert_eq!(recorded["value"][1], "2");
    // Written at the group's aligned slots: n * interval + offset(file, group).
    let offset = basin_alerter::eval::group_offset(
        &rules.display().to_string(),
        "lifecycle",
        Duration::from_secs(1),
    );
    let stamps = wait_until("several recorded samples", Duration::from_secs(15), || async {
        let r = prom_query(&prometheus.url, "test:value:doubled[10s]").await?;
        let values = r.first()?["values"].as_array()?.clone();
        let stamps: Vec<i64> = values
            .iter()
            .filter_map(|v| v[0].as_f64())
            .map(|t| (t * 1000.0).round() as i64)
            .collect();
        (stamps.len() >= 3).then_some(stamps)
    })
    .await?;
    for t in &stamps {
        assert_eq!(t.rem_euclid(1000), offset, "sample at {t} is off the group's slots");
    }
    wait_until("ALERTS firing series", Duration::from_secs(15), || async {
        let r = prom_query(&prometheus.url, r#"ALERTS{alertname="TestHigh",alertstate="firing"}"#)
            .await?;
        (!r.is_empty()).then_some(())
    })
    .await?;

    // Resolved: the condition clears, Alertmanager is told (endsAt) and drops it.
    pusher.set(0.0);
    wait_until("alert resolved in Alertmanager", Duration::from_secs(15), || async {
        let alerts = am_alerts(&alertmanager.url).await?;
        alert_named(&alerts, "TestHigh").is_none().then_some(())
    })
    .await?;
    let alerts = alerter.get_json("/api/v1/alerts").await.unwrap_or_default();
    assert!(alerts["data"]["alerts"].as_array().is_some_and(Vec::is_empty));
    // The ALERTS series got a staleness marker, so it is gone at once (not after 5m).
    wait_until("ALERTS series stale", Duration::from_secs(10), || async {
        let r = prom_query(&prometheus.url, r#"ALERTS{alertname="TestHigh"}"#).await?;
        r.is_empty().then_some(())
    })
    .await?;
    alerter.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_for_progress_but_not_resolved_alerts() -> Result<()> {
    if !peers_installed() {
        return Ok(());
    }
    let prometheus = start_prometheus().await?;
    let alertmanager = start_alertmanager().await?;
    let _kept = Pusher::start(&prometheus.url, "restart_value", &[("instance", "b")], 1.0);
    let gone = Pusher::start(&prometheus.url, "restart_value", &[("instance", "r")], 1.0);
    let dir = tempfile::tempdir()?;
    let rules = rule_file(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: restart\n    interval: 1s\n    rules:\n      - alert: SlowBurn\n        expr: restart_value > 0\n        for: 15s\n",
    )?;
    let cfg = config(&rules, &prometheus.url, &alertmanager.url);
    let instance_alert = |list: &[serde_json::Value], instance: &str| {
        list.iter().find(|a| a["labels"]["instance"] == instance).cloned()
    };

    let first = RunningAlerter::start(cfg.clone()).await?;
    let active_at = wait_until("pending alerts", Duration::from_secs(15), || async {
        let alerts = first.get_json("/api/v1/alerts").await?;
        let list = alerts["data"]["alerts"].as_array()?.clone();
        instance_alert(&list, "r")?;
        let a = instance_alert(&list, "b")?;
        (a["state"] == "pending").then(|| a["activeAt"].as_str().map(str::to_string))?
    })
    .await?;
    wait_until("ALERTS_FOR_STATE stored", Duration::from_secs(10), || async {
        let r = prom_query(&prometheus.url, r#"ALERTS_FOR_STATE{alertname="SlowBurn"}"#).await?;
        (r.len() == 2).then_some(())
    })
    .await?;
    // Instance r's condition clears: its pending alert is dropped and its series marked stale.
    gone.set(0.0);
    wait_until("r's state gone", Duration::from_secs(10), || async {
        let r = prom_query(&prometheus.url, r#"ALERTS_FOR_STATE{instance="r"}"#).await?;
        r.is_empty().then_some(())
    })
    .await?;
    first.stop().await;
    let stopped_at = std::time::Instant::now();
    let restarted_ms = now_ms();
    gone.set(1.0);

    let second = RunningAlerter::start(cfg).await?;
    let (restored, fresh) = wait_until("alerts after restart", Duration::from_secs(10), || async {
        let alerts = second.get_json("/api/v1/alerts").await?;
        let list = alerts["data"]["alerts"].as_array()?.clone();
        Some((instance_alert(&list, "b")?, instance_alert(&list, "r")?))
    })
    .await?;
    // ALERTS_FOR_STATE keeps whole seconds, so compare to the second.
    let restored_at = restored["activeAt"].as_str().unwrap_or_default();
    assert_eq!(restored_at.get(..19), active_at.get(..19), "activeAt restored, not reset");
    // The alert that had resolved before the restart starts over.
    assert_eq!(fresh["state"], "pending");
    let fresh_at = fresh["activeAt"].as_str().unwrap_or_default().to_string();
    assert!(
        fresh_at.as_str() >= basin_alerter::notify::rfc3339(restarted_ms - 1000).as_str(),
        "{fresh_at}"
    );
    // b fires when its original `for` ends, not 15s after the restart.
    wait_until("firing after restart", Duration::from_secs(20), || async {
        let alerts = am_alerts(&alertmanager.url).await?;
        alerts.iter().find(|a| a["labels"]["instance"] == "b").cloned()
    })
    .await?;
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "fired {:?} after the restart: `for` was waited again",
        stopped_at.elapsed()
    );
    second.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_state_of_unchanged_rules_and_rejects_bad_files() -> Result<()> {
    if !peers_installed() {
        return Ok(());
    }
    let prometheus = start_prometheus().await?;
    let alertmanager = start_alertmanager().await?;
    let _pusher = Pusher::start(&prometheus.url, "reload_value", &[("instance", "c")], 1.0);
    let dir = tempfile::tempdir()?;
    let rules = rule_file(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: reload\n    interval: 1s\n    rules:\n      - alert: Kept\n        expr: reload_value > 0\n        for: 1h\n",
    )?;
    let alerter = RunningAlerter::start(config(&rules, &prometheus.url, &alertmanager.url)).await?;
    let active_at = wait_until("pending alert", Duration::from_secs(15), || async {
        let alerts = alerter.get_json("/api/v1/alerts").await?;
        let list = alerts["data"]["alerts"].as_array()?.clone();
        alert_named(&list, "Kept").map(|a| a["activeAt"].clone())
    })
    .await?;
    let client = reqwest::Client::new();

    // A bad file: reload fails with the reason, the old rules keep running.
    std::fs::write(
        &rules,
        "groups:\n  - name: reload\n    rules:\n      - alert: Kept\n        expr: reload_value >\n",
    )?;
    let r = client.post(format!("{}/-/reload", alerter.url)).send().await?;
    assert_eq!(r.status(), 500);
    assert!(r.text().await?.contains("could not parse expression"));

    // Same rule plus a new group member: the unchanged rule keeps its activeAt.
    std::fs::write(
        &rules,
        "groups:\n  - name: reload\n    interval: 1s\n    rules:\n      - alert: Kept\n        expr: reload_value > 0\n        for: 1h\n      - record: reload:value\n        expr: reload_value\n",
    )?;
    let r = client.post(format!("{}/-/reload", alerter.url)).send().await?;
    assert_eq!(r.status(), 200);
    let rules_json = alerter.get_json("/api/v1/rules").await.unwrap_or_default();
    assert_eq!(rules_json["data"]["groups"][0]["rules"].as_array().map(Vec::len), Some(2));
    let alerts = alerter.get_json("/api/v1/alerts").await.unwrap_or_default();
    let list = alerts["data"]["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alert_named(&list, "Kept").map(|a| a["activeAt"].clone()), Some(active_at));
    alerter.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_down_never_blocks_evaluation() -> Result<()> {
    if !peers_installed() {
        return Ok(());
    }
    let prometheus = start_prometheus().await?;
    let _pusher = Pusher::start(&prometheus.url, "down_value", &[("instance", "d")], 1.0);
    let dir = tempfile::tempdir()?;
    let rules = rule_file(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: down\n    interval: 1s\n    rules:\n      - alert: Fires\n        expr: down_value > 0\n      - record: down:value\n        expr: down_value\n",
    )?;
    // Nothing listens on this port; the remote_write target is fine.
    let dead = format!("http://127.0.0.1:{}", free_port()?);
    let alerter = RunningAlerter::start(config(&rules, &prometheus.url, &dead)).await?;
    wait_until(
        "recording continues while Alertmanager is down",
        Duration::from_secs(15),
        || async {
            let r = prom_query(&prometheus.url, "down:value").await?;
            (!r.is_empty()).then_some(())
        },
    )
    .await?;
    // Delivery failures are counted per Alertmanager (after retries).
    wait_until("failed notifications counted", Duration::from_secs(15), || async {
        let mut text = String::new();
        let registry = alerter.registry.lock().ok()?;
        prometheus_client::encoding::text::encode(&mut text, &registry).ok()?;
        let line =
            text.lines().find(|l| l.starts_with("basin_alerter_notifications_failed_total"))?;
        let count: f64 = line.rsplit(' ').next()?.parse().ok()?;
        (count > 0.0).then_some(())
    })
    .await?;
    let first = alerter.get_json("/api/v1/rules").await.unwrap_or_default();
    let t0 = first["data"]["groups"][0]["lastEvaluation"].clone();
    wait_until("later evaluations", Duration::from_secs(10), || async {
        let r = alerter.get_json("/api/v1/rules").await?;
        (r["data"]["groups"][0]["lastEvaluation"] != t0).then_some(())
    })
    .await?;
    alerter.stop().await;
    Ok(())
}
