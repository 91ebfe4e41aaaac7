//! End-to-end tests of `basin alerter` as a real process: rules evaluated against a standalone
//! Basin, alerts delivered to a real Alertmanager, recording rules and `ALERTS*` written back
//! into Basin, `for` progress surviving `kill -9`, the Prometheus-format rules and alerts API,
//! and `basin alerter --check`.
//!
//! The test drives one gauge, `test_temperature`, with current timestamps every 500 ms: room
//! `a` at a value the test sets, room `b` always at 20. `RoomTooHot` (`> 30`, `for: 15s`)
//! therefore goes pending, firing and resolved as the test heats and cools room `a`.

mod common;

use common::remote::{body, post, series};
use common::{Alertmanager, Basin, assert_close, get_json, labels, vector};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Room `a` below and above the threshold (30).
const COOL: f64 = 21.5;
/// `{{ $value }}` renders it as `45.678`, `humanize` (Go's `%.4g`) as `45.68`.
const HOT: f64 = 45.678;
/// Room `b`, constant.
const OTHER: f64 = 20.0;
/// `for` of `RoomTooHot`, in ms.
const FOR_MS: i64 = 15_000;
/// The external label given to the alerter.
const CLUSTER: &str = "test-eu";

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after the epoch");
    i64::try_from(d.as_millis()).expect("ms fit in i64")
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("alerter")
}

fn rule_file(name: &str) -> String {
    rules_dir().join(name).to_string_lossy().into_owned()
}

/// Writes `test_temperature{room="a"}` (value set by the test) and `{room="b"}` (20) with the
/// current time, every 500 ms and at once on every change, until dropped.
struct Feeder {
    shared: Arc<FeederShared>,
    thread: Option<JoinHandle<()>>,
}

struct FeederShared {
    url: String,
    /// Room `a`'s value; held while writing, so samples go out in timestamp order.
    value: Mutex<f64>,
    stop: AtomicBool,
}

impl FeederShared {
    fn write(&self, value: f64) {
        let t = now_ms();
        let batch = vec![
            series(&[("__name__", "test_temperature"), ("room", "a")], &[(t, value)]),
            series(&[("__name__", "test_temperature"), ("room", "b")], &[(t, OTHER)]),
        ];
        let (code, text) = post(&self.url, body(batch), None);
        assert_eq!(code, 204, "remote_write of test_temperature answered {code}: {text}");
    }
}

impl Feeder {
    fn start(url: &str, initial: f64) -> Self {
        let shared = Arc::new(FeederShared {
            url: url.to_string(),
            value: Mutex::new(initial),
            stop: AtomicBool::new(false),
        });
        shared.write(initial);
        let bg = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            while !bg.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let value = bg.value.lock().expect("feeder lock");
                bg.write(*value);
            }
        });
        Self { shared, thread: Some(thread) }
    }

    /// Sets room `a`'s value and writes it at once; returns a time (ms) at or before the
    /// sample's timestamp.
    fn set(&self, value: f64) -> i64 {
        let mut v = self.shared.value.lock().expect("feeder lock");
        *v = value;
        let t = now_ms();
        self.shared.write(value);
        t
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if !std::thread::panicking() {
                result.expect("feeder thread panicked");
            }
        }
    }
}

/// Milliseconds since the epoch of an RFC 3339 UTC time (`2026-11-24T20:31:02.5Z`).
fn parse_rfc3339(s: &str) -> i64 {
    fn parse(s: &str) -> Option<i64> {
        let rest = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
        let (date, time) = rest.split_once('T')?;
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let numbers = |text: &str, sep: char| -> Option<Vec<i64>> {
            text.split(sep).map(|n| n.parse().ok()).collect()
        };
        let [y, m, d] = numbers(date, '-')?[..] else { return None };
        let [hh, mm, ss] = numbers(hms, ':')?[..] else { return None };
        let ms: i64 =
            if frac.is_empty() { 0 } else { format!("{frac:0<3}").get(..3)?.parse().ok()? };
        // Days from civil (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000 + ms)
    }
    parse(s).unwrap_or_else(|| panic!("not an RFC 3339 UTC time: {s:?}"))
}

/// The sorted keys of a JSON object.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// Field names given space-separated, sorted.
fn fields(names: &str) -> Vec<&str> {
    let mut k: Vec<&str> = names.split_whitespace().collect();
    k.sort_unstable();
    k
}

/// Asserts a Prometheus-style RFC 3339 `lastEvaluation` within the last few seconds.
fn assert_recent(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    let age = now_ms() - parse_rfc3339(s);
    assert!((-1000..5000).contains(&age), "{what} {s} is {age} ms old");
}

/// A non-negative JSON number of seconds.
fn assert_seconds(v: &Value, what: &str) {
    let secs = v.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!((0.0..5.0).contains(&secs), "{what}: {secs} s");
}

/// Checks `/api/v1/rules` field by field against Prometheus' format. `alerts` are the alerts
/// `RoomTooHot` must list (compared whole, with `activeAt` as given).
fn check_rules_api(alerter: &Basin, state: &str, alerts: &Value) {
    let answer = get_json(&alerter.url, "/api/v1/rules", &[]);
    assert_eq!(keys(&answer), ["data", "status"], "{answer}");
    assert_eq!(answer["status"], "success");
    assert_eq!(keys(&answer["data"]), ["groups"]);
    let groups = answer["data"]["groups"].as_array().expect("groups array");
    assert_eq!(groups.len(), 2, "{answer}");
    let group_keys = fields("name file rules interval limit evaluationTime lastEvaluation");
    for g in groups {
        assert_eq!(keys(g), group_keys, "group {g}");
        assert_eq!(g["interval"], json!(1), "interval in seconds, as an integer: {g}");
        assert_eq!(g["limit"], json!(0));
        assert_seconds(&g["evaluationTime"], "group evaluationTime");
        assert_recent(&g["lastEvaluation"], "group lastEvaluation");
        assert_eq!(g["rules"].as_array().expect("rules").len(), 1, "{g}");
    }
    // Sorted by file: recording.rules.yml, then temperature.rules.yml.
    let (recording, temperature) = (&groups[0], &groups[1]);
    assert_eq!(recording["name"], "recording");
    assert_eq!(recording["file"], rule_file("recording.rules.yml"));
    assert_eq!(temperature["name"], "temperature");
    assert_eq!(temperature["file"], rule_file("temperature.rules.yml"));

    let record = &recording["rules"][0];
    assert_eq!(
        keys(record),
        fields("name query labels health evaluationTime lastEvaluation type"),
        "recording rule {record} (lastError only when set)"
    );
    assert_eq!(record["name"], "site:test_temperature:sum");
    assert_eq!(record["query"], "sum(test_temperature)");
    assert_eq!(record["labels"], json!({"source": "rule"}));
    assert_eq!(record["health"], "ok", "{record}");
    assert_eq!(record["type"], "recording");
    assert_seconds(&record["evaluationTime"], "recording evaluationTime");
    assert_recent(&record["lastEvaluation"], "recording lastEvaluation");

    let alert = &temperature["rules"][0];
    assert_eq!(
        keys(alert),
        fields(
            "state name query duration keepFiringFor labels annotations alerts health \
             evaluationTime lastEvaluation type"
        ),
        "alerting rule {alert} (lastError only when set)"
    );
    assert_eq!(alert["state"], state, "{alert}");
    assert_eq!(alert["name"], "RoomTooHot");
    assert_eq!(alert["query"], "test_temperature > 30");
    assert_eq!(alert["duration"], json!(15));
    assert_eq!(alert["keepFiringFor"], json!(0));
    // The templates, unexpanded.
    assert_eq!(alert["labels"], json!({"severity": "page", "where": "room-{{ $labels.room }}"}));
    assert_eq!(
        alert["annotations"],
        json!({
            "summary": "Room {{ $labels.room }} in {{ $externalLabels.cluster }} is too hot",
            "description": "{{ $value }} degrees, about {{ $value | humanize }}",
        })
    );
    assert_eq!(alert["health"], "ok", "{alert}");
    assert_eq!(alert["type"], "alerting");
    assert_seconds(&alert["evaluationTime"], "alerting evaluationTime");
    assert_recent(&alert["lastEvaluation"], "alerting lastEvaluation");
    assert_eq!(&alert["alerts"], alerts);
}

/// `/api/v1/alerts`' list, after checking the envelope.
fn alerts_api(alerter: &Basin) -> Vec<Value> {
    let answer = get_json(&alerter.url, "/api/v1/alerts", &[]);
    assert_eq!(keys(&answer), ["data", "status"], "{answer}");
    assert_eq!(answer["status"], "success");
    assert_eq!(keys(&answer["data"]), ["alerts"], "{answer}");
    answer["data"]["alerts"].as_array().expect("alerts array").clone()
}

/// What `/api/v1/alerts` must say of `RoomTooHot` (labels without the external ones, as
/// Prometheus shows them; the value in Go's `%e`).
fn expected_alert(state: &str, active_at: &str) -> Value {
    json!({
        "labels": {"alertname": "RoomTooHot", "room": "a", "severity": "page", "where": "room-a"},
        "annotations": {
            "summary": format!("Room a in {CLUSTER} is too hot"),
            "description": "45.678 degrees, about 45.68",
        },
        "state": state,
        "activeAt": active_at,
        "value": "4.5678e+01",
    })
}

/// An instant vector as `common::vector` returns it: `(sorted labels, value)` pairs.
type Vector = Vec<(Vec<(String, String)>, f64)>;

/// An instant query at the current time, as a sorted vector (`None` while the query fails).
fn query_now(basin: &Basin, q: &str) -> Option<Vector> {
    let answer = basin.query(q, now_ms() as f64 / 1000.0);
    (answer["status"] == "success").then(|| vector(&answer))
}

/// `ALERTS` and `ALERTS_FOR_STATE` labels of room `a`'s alert as stored in Basin.
fn stored_labels(name: &str, state: Option<&str>) -> Vec<(String, String)> {
    let mut l = vec![
        ("__name__", name),
        ("alertname", "RoomTooHot"),
        ("cluster", CLUSTER),
        ("room", "a"),
        ("severity", "page"),
        ("where", "room-a"),
    ];
    if let Some(s) = state {
        l.push(("alertstate", s));
    }
    labels(&l)
}

/// Waits until the recording rule's series in Basin carries `want`.
fn wait_recorded(basin: &Basin, want: f64) {
    let series = labels(&[
        ("__name__", "site:test_temperature:sum"),
        ("cluster", CLUSTER),
        ("source", "rule"),
    ]);
    let got = common::wait_until(
        &format!("site:test_temperature:sum = {want} in Basin"),
        Duration::from_secs(10),
        || {
            query_now(basin, "site:test_temperature:sum")
                .filter(|v| v.len() == 1 && (v[0].1 - want).abs() < 1e-6)
        },
    );
    assert_eq!(got[0].0, series);
    assert_close(got[0].1, want, "recorded sum");
}

/// Room `a`'s alert in Alertmanager, if it holds it as active.
fn am_alert(am: &Alertmanager) -> Option<Value> {
    am.alerts().into_iter().find(|a| a["labels"]["alertname"] == "RoomTooHot")
}

#[test]
fn alert_goes_pending_firing_resolved_through_alertmanager_and_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let basin = Basin::standalone(dir.path(), &[]);
    let am = Alertmanager::start().expect("start Alertmanager");
    let feeder = Feeder::start(&basin.url, COOL);
    let rule_glob = rules_dir().join("*.rules.yml").to_string_lossy().into_owned();
    let write_url = format!("{}/api/v1/write", basin.url);
    let mut alerter = Basin::start(&[
        "alerter",
        "--rule-files",
        &rule_glob,
        "--query-url",
        &basin.url,
        "--remote-write-url",
        &write_url,
        "--alertmanager-url",
        &am.url,
        "--external-label",
        &format!("cluster={CLUSTER}"),
        "--evaluation-interval",
        "1s",
    ]);

    // Cool: every rule evaluates fine, nothing is active, the sum is recorded.
    common::wait_until("both groups evaluated", Duration::from_secs(10), || {
        let answer = get_json(&alerter.url, "/api/v1/rules", &[]);
        let groups = answer["data"]["groups"].as_array()?.clone();
        let ok = groups.len() == 2
            && groups.iter().all(|g| g["rules"][0]["health"] == "ok")
            && groups.iter().all(|g| g["lastEvaluation"] != "0001-01-01T00:00:00Z");
        ok.then_some(())
    });
    check_rules_api(&alerter, "inactive", &json!([]));
    assert_eq!(alerts_api(&alerter), Vec::<Value>::new());
    wait_recorded(&basin, COOL + OTHER);

    // Hot: pending at the first evaluation that sees the sample.
    let heated_at = feeder.set(HOT);
    let pending = common::wait_until("RoomTooHot pending", Duration::from_secs(10), || {
        alerts_api(&alerter).into_iter().next()
    });
    let active_at = pending["activeAt"].as_str().expect("activeAt string").to_string();
    assert_eq!(pending, expected_alert("pending", &active_at));
    let active_ms = parse_rfc3339(&active_at);
    assert!(
        (heated_at..=now_ms()).contains(&active_ms),
        "activeAt {active_at} before the hot sample ({heated_at} ms) or in the future"
    );
    check_rules_api(&alerter, "pending", &json!([expected_alert("pending", &active_at)]));
    assert!(am_alert(&am).is_none(), "pending alerts are not sent");

    // ALERTS and ALERTS_FOR_STATE (activeAt in seconds) are written to Basin.
    common::wait_until("ALERTS pending in Basin", Duration::from_secs(10), || {
        let got = query_now(&basin, r#"ALERTS{alertname="RoomTooHot"}"#)?;
        (got == vec![(stored_labels("ALERTS", Some("pending")), 1.0)]).then_some(())
    });
    let active_secs = active_ms.div_euclid(1000);
    common::wait_until("ALERTS_FOR_STATE in Basin", Duration::from_secs(10), || {
        let got = query_now(&basin, r#"ALERTS_FOR_STATE{alertname="RoomTooHot"}"#)?;
        (got == vec![(stored_labels("ALERTS_FOR_STATE", None), active_secs as f64)]).then_some(())
    });

    // kill -9 while pending, well before `for` ends; the restarted process must restore
    // activeAt from ALERTS_FOR_STATE instead of starting `for` over.
    common::wait_until("5 s into the pending period", Duration::from_secs(10), || {
        (now_ms() >= active_ms + 5000).then_some(())
    });
    assert!(now_ms() < active_ms + FOR_MS - 4000, "too slow to restart while pending");
    alerter.kill9();
    let restarted_at = now_ms();
    alerter.restart();
    let restored = common::wait_until("RoomTooHot restored", Duration::from_secs(10), || {
        alerts_api(&alerter).into_iter().next()
    });
    let restored_at = restored["activeAt"].as_str().expect("activeAt string").to_string();
    assert_eq!(
        parse_rfc3339(&restored_at),
        active_secs * 1000,
        "activeAt after restart: {restored_at}, before: {active_at}"
    );
    assert_eq!(restored["state"], "pending", "{restored}");

    // Firing at activeAt + for, not restart + for; delivered to Alertmanager.
    let delivered =
        common::wait_until("RoomTooHot in Alertmanager", Duration::from_secs(25), || {
            am_alert(&am).filter(|a| a["status"]["state"] == "active")
        });
    let fired_ms = parse_rfc3339(delivered["startsAt"].as_str().expect("startsAt"));
    assert!(
        fired_ms >= active_secs * 1000 + FOR_MS && fired_ms <= active_ms + FOR_MS + 1500,
        "fired at {fired_ms}, activeAt {active_ms}: not activeAt + for"
    );
    assert!(
        fired_ms < restarted_at + FOR_MS - 1000,
        "fired at {fired_ms}: `for` started over at the restart ({restarted_at})"
    );
    assert_eq!(
        delivered["labels"],
        json!({
            "alertname": "RoomTooHot",
            "cluster": CLUSTER,
            "room": "a",
            "severity": "page",
            "where": "room-a",
        })
    );
    assert_eq!(delivered["annotations"], expected_alert("firing", "")["annotations"]);
    let ends_ms = parse_rfc3339(delivered["endsAt"].as_str().expect("endsAt"));
    assert!(ends_ms > now_ms() + 60_000, "a firing alert's endsAt is minutes ahead: {delivered}");
    assert_eq!(
        delivered["generatorURL"],
        format!("{}/graph?g0.expr=test_temperature+%3E+30&g0.tab=1", alerter.url)
    );
    assert_eq!(delivered["receivers"], json!([{"name": "default"}]));

    let firing = common::wait_until("RoomTooHot firing", Duration::from_secs(5), || {
        alerts_api(&alerter).into_iter().next().filter(|a| a["state"] == "firing")
    });
    assert_eq!(firing, expected_alert("firing", &restored_at));
    check_rules_api(&alerter, "firing", &json!([expected_alert("firing", &restored_at)]));
    common::wait_until("ALERTS firing in Basin", Duration::from_secs(10), || {
        let got = query_now(&basin, r#"ALERTS{alertname="RoomTooHot"}"#)?;
        (got == vec![(stored_labels("ALERTS", Some("firing")), 1.0)]).then_some(())
    });
    wait_recorded(&basin, HOT + OTHER);

    // Cool again: resolved. Alertmanager gets endsAt = the resolving evaluation, in the past,
    // so it no longer lists the alert as active.
    feeder.set(COOL);
    common::wait_until("RoomTooHot resolved in Alertmanager", Duration::from_secs(10), || {
        am_alert(&am).is_none().then_some(())
    });
    let resolved_received = am
        .metrics()
        .lines()
        .find(|l| {
            l.starts_with("alertmanager_alerts_received_total{")
                && l.contains(r#"status="resolved""#)
                && l.contains(r#"version="v2""#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("alertmanager_alerts_received_total{status=\"resolved\",version=\"v2\"}");
    assert!(resolved_received >= 1.0, "Alertmanager received no resolved alert");
    assert_eq!(alerts_api(&alerter), Vec::<Value>::new());
    check_rules_api(&alerter, "inactive", &json!([]));
    // The resolution wrote staleness markers: ALERTS* are gone at once, not after 5 minutes.
    common::wait_until("ALERTS gone from Basin", Duration::from_secs(10), || {
        let alerts = query_now(&basin, r#"{__name__=~"ALERTS|ALERTS_FOR_STATE"}"#)?;
        alerts.is_empty().then_some(())
    });
    wait_recorded(&basin, COOL + OTHER);
    drop(feeder);
}

fn run_basin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basin")).args(args).output().expect("run basin")
}

#[test]
fn check_accepts_good_rule_files_and_names_file_group_and_rule_of_bad_ones() {
    let good = [rule_file("recording.rules.yml"), rule_file("temperature.rules.yml")];
    let out = run_basin(&["alerter", "--check", &good[0], &good[1]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--check of good files failed: {out:?}");
    assert_eq!(stdout.trim(), "SUCCESS: 2 files, 2 groups, 2 rules");

    // --check without files checks --rule-files (globs).
    let glob = rules_dir().join("*.rules.yml").to_string_lossy().into_owned();
    let out = run_basin(&["alerter", "--rule-files", &glob, "--check"]);
    assert!(out.status.success(), "--check of --rule-files failed: {out:?}");

    let bad = rule_file("broken.yml");
    let out = run_basin(&["alerter", "--check", &good[0], &bad]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--check accepted {bad}: {out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line per problem: {stderr}");
    assert!(
        lines[0].starts_with(&format!(
            r#"FAILED: {bad}: group "broken", rule 2, "BadExpression": could not parse expression"#
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            r#"FAILED: {bad}: group "broken", rule 3, "BadDuration": for: "#
        )),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "{out:?}");

    // The files agree with promtool, where it is installed.
    let promtool = Path::new("/usr/bin/promtool");
    if promtool.exists() {
        let check = |files: &[&str]| {
            let mut args = vec!["check", "rules"];
            args.extend_from_slice(files);
            Command::new(promtool).args(&args).output().expect("run promtool").status.success()
        };
        assert!(check(&[&good[0], &good[1]]), "promtool rejects the good files");
        assert!(!check(&[&bad]), "promtool accepts the bad file");
    }
}

#[test]
fn rfc3339_helper_parses_prometheus_and_alertmanager_times() {
    assert_eq!(parse_rfc3339("2026-11-24T20:31:02.5Z"), 1_795_552_262_500);
    assert_eq!(parse_rfc3339("2026-11-24T20:31:02.500123456Z"), 1_795_552_262_500);
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), 951_782_400_000);
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00.001+00:00"), 1);
}

/// SIGHUP reloads the rule files: a group added to the file appears, a broken file keeps the
/// old rules and the process alive.
#[test]
fn sighup_reloads_rule_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rules.yml");
    let group = |name: &str| {
        format!(
            "  - name: {name}\n    rules:\n      - record: job:{name}:sum\n        expr: sum(up)\n"
        )
    };
    std::fs::write(&file, format!("groups:\n{}", group("first"))).expect("write rules");
    let file_s = file.to_str().expect("utf-8 path");
    // The query URL is never answered; rules still load and the API still lists them.
    let alerter =
        Basin::start(&["alerter", "--rule-files", file_s, "--query-url", "http://127.0.0.1:9"]);
    let names = || -> Vec<String> {
        get_json(&alerter.url, "/api/v1/rules", &[])["data"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["name"].as_str().expect("group name").to_string())
            .collect()
    };
    assert_eq!(names(), ["first"]);
    let pid = alerter.pid().expect("running").to_string();
    let hup = || {
        let ok = Command::new("kill").args(["-HUP", &pid]).status().expect("kill -HUP").success();
        assert!(ok, "kill -HUP {pid}");
    };
    std::fs::write(&file, format!("groups:\n{}{}", group("first"), group("second")))
        .expect("write rules");
    hup();
    common::wait_until("the reload to add group `second`", Duration::from_secs(20), || {
        (names() == ["first", "second"]).then_some(())
    });
    std::fs::write(&file, "groups: [ {name: broken, rules: [ {record: x, expr: 'sum('} ] } ]\n")
        .expect("write rules");
    hup();
    common::wait_until("the failed reload to be counted", Duration::from_secs(20), || {
        alerter
            .metrics()
            .lines()
            .any(|l| l.starts_with("basin_alerter_reload_failures_total") && l.ends_with(" 1"))
            .then_some(())
    });
    assert_eq!(names(), ["first", "second"], "a bad file keeps the old rules");
}
