//! `/api/v1/rules` and `/api/v1/alerts` compared with a real Prometheus evaluating the same
//! rule file against the same data: identical JSON once the fields that depend on timing
//! (`evaluationTime`, `lastEvaluation`, `activeAt`) are masked. This checks the format field
//! by field, the printed `query`, and the rendered templates.

mod support;

use std::time::Duration;

use anyhow::Result;
use basin_alerter::AlerterConfig;
use serde_json::Value;
use support::*;

const RULES: &str = r#"groups:
  - name: api
    interval: 1s
    rules:
      - record: api:value:rate
        expr: rate(api_value[5m])
      - record: api:value:sum
        expr: sum   by(instance)(api_value)
        labels:
          kind: sum
      - alert: ApiFiring
        expr: api_value   >   0
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.instance }} at {{ $value | humanize }} ({{ printf "%.2f" $value }})'
          pct: '{{ humanizePercentage 0.1234 }} {{ humanizeDuration 3725 }} {{ humanize1024 4096 }}'
          link: '{{ graphLink "up" }} {{ title "hello world" }} {{ toUpper "x" }}'
          tmpl: '{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}'
      - alert: ApiPending
        expr: avg without (job) (api_value) * 2 >= 1
        for: 1h
        keep_firing_for: 5m
        annotations:
          value: '{{ $value }}'
      - alert: ApiNever
        expr: api_value offset 1m < 0
        for: 5m
      - alert: ApiTemplates
        expr: api_value
        annotations:
          a: '{{ reReplaceAll "(.)x" "${1}y" "axbx" }} {{ humanizeTimestamp 1435065584.128 }} {{ $externalLabels }}'
          b: '{{ .Value }} {{ with query "api_value" }}{{ . | first | label "instance" }}{{ end }} {{ stripPort "host:9090" }}'
          c: '{{ match "^a" "abc" }} {{ $value | printf "%.3e" }} {{ args 1 "a" }} {{ humanize 1234567 }} {{ humanize 0.000012 }}'
          d: '{{ $labels }} {{ humanizeDuration 0.25 }} {{ humanizeDuration 90061 }} {{ humanize1024 0.5 }} {{ toLower "AbC" }}'
          e: '{{ if eq $labels.job "j" }}job j{{ else }}other{{ end }} {{ len $labels }} {{ index $labels "instance" }}'
          f: '{{ range query "api_value" }}{{ .Labels.instance }}={{ .Value }}{{ end }} {{ humanizePercentage 1 }}'
  - name: expressions
    interval: 1s
    rules:
      - record: e:1
        expr: histogram_quantile(0.9, sum by (le) (rate(api_bucket[5m])))
      - record: e:2
        expr: label_replace(api_value, "dst", "$1", "instance", "(.*)")
      - record: e:3
        expr: rate(api_value[5m:1m])
      - record: e:4
        expr: api_value and on(instance) api_value
      - record: e:5
        expr: topk(3, api_value)
      - record: e:6
        expr: -api_value
      - record: e:7
        expr: (api_value + 1) * 2
      - record: e:8
        expr: api_value > bool 1
      - record: e:9
        expr: api_value / on(instance) group_left(job) api_value
      - record: e:10
        expr: count_values("v", api_value)
      - record: e:11
        expr: absent(nonexistent{job="x"})
      - record: e:12
        expr: api_value{job=~"j|k",instance!="y"}
      - record: e:13
        expr: sum without(job)(api_value)
      - record: e:14
        expr: vector(1)
      - record: e:15
        expr: 1 + 2
      - record: e:16
        expr: quantile_over_time(0.5, api_value[1m])
      - record: e:17
        expr: api_value unless api_value offset 5m
      - record: e:18
        expr: max by(instance, job)(api_value) or vector(0)
      - record: e:19
        expr: time() - api_value
      - record: e:20
        expr: avg_over_time(api_value[1m] offset 1m)
"#;

/// Replaces timing-dependent fields so two answers can be compared whole.
fn mask(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if matches!(k.as_str(), "evaluationTime" | "lastEvaluation" | "activeAt") {
                    *val = Value::String("<masked>".to_string());
                } else {
                    mask(val);
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                mask(item);
            }
            // Alert order within a rule is not specified by Prometheus.
            items.sort_by_key(|i| i.to_string());
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_alerts_json_match_prometheus() -> Result<()> {
    if !peers_installed() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let rules = rule_file(dir.path(), "api.yml", RULES)?;
    let prometheus = start_prometheus_with_config(&format!(
        "global:\n  scrape_interval: 1m\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
        rules.display()
    ))
    .await?;
    let _pusher =
        Pusher::start(&prometheus.url, "api_value", &[("instance", "x"), ("job", "j")], 1.5);
    let cfg = AlerterConfig {
        rule_files: vec![rules.display().to_string()],
        query_url: prometheus.url.clone(),
        evaluation_interval: Duration::from_secs(1),
        ..AlerterConfig::default()
    };
    let alerter = RunningAlerter::start(cfg).await?;

    let client = reqwest::Client::new();
    let fetch = |base: String, path: &'static str| {
        let client = client.clone();
        async move {
            let v: Value =
                client.get(format!("{base}{path}")).send().await.ok()?.json().await.ok()?;
            Some(v)
        }
    };
    // Both evaluated, with the firing and the pending alert, and every rule healthy.
    let ready = |v: &Value| {
        let rules = v["data"]["groups"][0]["rules"].as_array().cloned().unwrap_or_default();
        let expressions = v["data"]["groups"][1]["rules"].as_array().cloned().unwrap_or_default();
        rules.len() == 6
            && rules.iter().chain(&expressions).all(|r| r["health"] == "ok")
            && rules[2]["state"] == "firing"
            && rules[3]["state"] == "pending"
            && rules[5]["state"] == "firing"
    };
    let (mut ours, mut theirs) = wait_until("both evaluated", Duration::from_secs(20), || async {
        let ours = fetch(alerter.url.clone(), "/api/v1/rules").await?;
        let theirs = fetch(prometheus.url.clone(), "/api/v1/rules").await?;
        (ready(&ours) && ready(&theirs)).then_some((ours, theirs))
    })
    .await?;
    // Spot checks, so the comparison below cannot pass on two empty answers.
    let templates = ours["data"]["groups"][0]["rules"][5]["alerts"][0]["annotations"].clone();
    assert_eq!(templates["a"], "ayby 2015-06-23 13:19:44.128 +0000 UTC map[]");
    assert_eq!(templates["b"], "1.5 x host");
    assert_eq!(ours["data"]["groups"][1]["rules"].as_array().map(Vec::len), Some(20));
    mask(&mut ours);
    mask(&mut theirs);
    assert_eq!(
        serde_json::to_string_pretty(&ours)?,
        serde_json::to_string_pretty(&theirs)?,
        "/api/v1/rules differs from Prometheus"
    );

    let mut ours = fetch(alerter.url.clone(), "/api/v1/alerts").await.unwrap_or_default();
    let mut theirs = fetch(prometheus.url.clone(), "/api/v1/alerts").await.unwrap_or_default();
    mask(&mut ours);
    mask(&mut theirs);
    assert_eq!(
        serde_json::to_string_pretty(&ours)?,
        serde_json::to_string_pretty(&theirs)?,
        "/api/v1/alerts differs from Prometheus"
    );
    alerter.stop().await;
    Ok(())
}

/// Masks what depends on timing in Alertmanager's view of an alert.
fn mask_am(alerts: &mut [Value]) {
    for a in alerts.iter_mut() {
        if let Some(map) = a.as_object_mut() {
            for k in ["startsAt", "endsAt", "updatedAt"] {
                map.insert(k.to_string(), Value::String("<masked>".to_string()));
            }
        }
    }
    alerts.sort_by_key(|a| a["labels"].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_the_same_alerts_as_from_prometheus() -> Result<()> {
    if !peers_installed() {
        return Ok(());
    }
    let theirs_am = start_alertmanager().await?;
    let ours_am = start_alertmanager().await?;
    let dir = tempfile::tempdir()?;
    let rules = rule_file(dir.path(), "api.yml", RULES)?;
    let external_url = "http://rules.example:9090";
    let am_target = theirs_am.url.trim_start_matches("http://").to_string();
    let prometheus = start_prometheus_with(
        &format!(
            "global:\n  scrape_interval: 1m\n  evaluation_interval: 1s\n  external_labels:\n    cluster: test\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_target}']\n",
            rules.display()
        ),
        // Its notifier discovers the Alertmanager only after a few seconds; resend soon after.
        &[&format!("--web.external-url={external_url}"), "--rules.alert.resend-delay=1s"],
    )
    .await?;
    let _pusher =
        Pusher::start(&prometheus.url, "api_value", &[("instance", "x"), ("job", "j")], 1.5);
    let cfg = AlerterConfig {
        rule_files: vec![rules.display().to_string()],
        query_url: prometheus.url.clone(),
        alertmanager_urls: vec![ours_am.url.clone()],
        external_labels: vec![("cluster".to_string(), "test".to_string())],
        external_url: external_url.to_string(),
        evaluation_interval: Duration::from_secs(1),
        ..AlerterConfig::default()
    };
    let alerter = RunningAlerter::start(cfg).await?;
    // ApiFiring and ApiTemplates fire at once; ApiPending never reaches Alertmanager.
    let (mut ours, mut theirs) = wait_until("alerts in both", Duration::from_secs(30), || async {
        let ours = am_alerts(&ours_am.url).await?;
        let theirs = am_alerts(&theirs_am.url).await?;
        (ours.len() == 2 && theirs.len() == 2).then_some((ours, theirs))
    })
    .await?;
    mask_am(&mut ours);
    mask_am(&mut theirs);
    assert_eq!(
        serde_json::to_string_pretty(&ours)?,
        serde_json::to_string_pretty(&theirs)?,
        "Alertmanager's view differs"
    );
    alerter.stop().await;
    Ok(())
}
