//! Differential test against a real Prometheus (Debian's 2.42): the same generated data is
//! remote-written into Prometheus and into a standalone Basin, then every query of the corpus in
//! `tests/differential/queries.promql` is asked of both, as instant queries at several times and as
//! a range query, and the answers must be identical (same result type, exact label sets, values
//! within 1e-9 relative, NaN equal to NaN). A query whose answers differ fails the test unless it
//! is listed, with the reason, in `tests/differential/known_differences.txt`.
//!
//! Prometheus 2.42 closes range windows on the left, Basin follows Prometheus 3 (left-open). Every
//! sample timestamp here is odd (in milliseconds) and every evaluation time, range, offset, step
//! and `@` time is even, so no sample ever sits on a window edge and the two agree.

mod common;

use common::{Basin, Prometheus, http, remote};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CORPUS: &str = include_str!("differential/queries.promql");
const KNOWN: &str = include_str!("differential/known_differences.txt");

/// Prometheus' staleness marker.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
const SCRAPE_MS: i64 = 15_000;
const MINUTE_MS: i64 = 60_000;
/// Minutes of generated data.
const SPAN_MIN: i64 = 90;
/// Remote-write batch: every series' samples of this many minutes, in time order.
const BATCH_MIN: i64 = 5;

const CONFIG: &str = "global:\n  evaluation_interval: 1m\nscrape_configs: []\n";

#[test]
fn basin_answers_like_prometheus() {
    let began = Instant::now();
    let now_ms =
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis();
    let now_ms = i64::try_from(now_ms).expect("time in ms fits i64");
    // Data ends one to two minutes ago (Prometheus rejects samples too far behind its head). T0 is
    // a whole minute, so subquery steps (multiples of their step since the epoch) fall at the same
    // places in the data on every run and the answers are the same from run to run.
    let t0 = (now_ms - MINUTE_MS - SPAN_MIN * MINUTE_MS) / MINUTE_MS * MINUTE_MS;
    let data = generate(t0, 0x5eed_ba51);

    let prom = Prometheus::start(CONFIG, &["--web.enable-remote-write-receiver"])
        .expect("start prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let basin = Basin::standalone(dir.path(), &[]);
    for batch in data.batches() {
        remote::write(&prom.url, batch.clone());
        remote::write(&basin.url, batch);
    }

    let client = http();
    let check_t = t0 + (SPAN_MIN + 1) * MINUTE_MS;
    // Every sample, as a raw range vector (count_over_time would drop the names and collide).
    let count_query = "{__name__=~\".+\"}[3h]";
    for (name, url) in [("prometheus", &prom.url), ("basin", &basin.url)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ans = instant(&client, url, count_query, check_t);
            let held: usize =
                elements(&ans["data"]["result"]).map(|s| elements(&s["values"]).count()).sum();
            if held == data.real_samples {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} holds {held} of the {} samples written ({count_query}: {})",
                data.real_samples,
                ans["status"]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let written = began.elapsed();

    let mid = fmt_secs(t0 + 45 * MINUTE_MS + 500);
    let corpus = parse_corpus(CORPUS, &mid);
    let known = parse_known(KNOWN);
    for q in known.keys() {
        assert!(
            corpus.iter().any(|c| &c.text == q),
            "known_differences.txt lists a query that is not in the corpus: {q}"
        );
    }

    // Instant queries just after api-1's 2-minute gap, in web-0's idle period, during web-1's
    // outage (after api-2's restart), in api-1's long gap (batch gone), and after the data.
    let instants = [33, 44, 62, 83, SPAN_MIN + 2].map(|m| t0 + m * MINUTE_MS + 500);
    let range = (t0 - 3 * MINUTE_MS + 500, t0 + (SPAN_MIN + 7) * MINUTE_MS + 500, 45_000);
    let targets = Targets { prom: &prom.url, basin: &basin.url, instants: &instants, range };

    let outcomes = run_corpus(&corpus, &targets);
    let mut identical = 0;
    let mut known_hits = 0;
    let mut failures = Vec::new();
    for (case, outcome) in corpus.iter().zip(&outcomes) {
        if outcome.empty {
            eprintln!(
                "note: Prometheus answers nothing but empty results or errors: {}",
                case.text
            );
        }
        match (&outcome.diff, known.get(&case.text)) {
            (None, None) => identical += 1,
            (None, Some(_)) => {
                identical += 1;
                eprintln!("note: known difference no longer differs, remove it: {}", case.text);
            }
            (Some(_), Some(_)) => known_hits += 1,
            (Some(diff), None) => failures.push(format!("{}\n    {diff}", case.text)),
        }
    }
    println!(
        "differential: {} queries, {identical} identical, {known_hits} known differences \
         ({} series, {} samples written in {written:.1?}; total {:.1?})",
        corpus.len(),
        data.series.len(),
        data.real_samples,
        began.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} queries answer differently from Prometheus (add them to \
         tests/differential/known_differences.txt only with a reason):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Data generation

/// A deterministic pseudo-random generator (SplitMix64), so every run writes the same shapes.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [lo, hi].
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).expect("non-empty range");
        lo + i64::try_from(self.next_u64() % span).expect("span fits i64")
    }
}

type Labels = Vec<(String, String)>;

/// The generated data: series (sorted labels) to `(timestamp ms, value)` samples.
#[derive(Debug)]
struct Dataset {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    /// Samples that are not staleness markers.
    real_samples: usize,
}

impl Dataset {
    /// Remote-write batches: all series' samples of one time slice per request, in time order.
    fn batches(&self) -> Vec<Vec<basin_proto::remote::TimeSeries>> {
        let first = self.series.values().flatten().map(|s| s.0).min().expect("some samples");
        let mut slices: BTreeMap<i64, Vec<basin_proto::remote::TimeSeries>> = BTreeMap::new();
        for (labels, samples) in &self.series {
            let pairs: Vec<(&str, &str)> =
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut by_slice: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
            for &s in samples {
                by_slice.entry((s.0 - first) / (BATCH_MIN * MINUTE_MS)).or_default().push(s);
            }
            for (slice, samples) in by_slice {
                slices.entry(slice).or_default().push(remote::series(&pairs, &samples));
            }
        }
        slices.into_values().collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Api,
    Web,
    Batch,
}

/// What one scrape target looks like over the 90 minutes.
#[derive(Debug)]
struct Target {
    job: &'static str,
    instance: &'static str,
    kind: Kind,
    /// The minute at whose start the process restarts (its counters reset).
    restart_at: Option<i64>,
    /// Scrapes fail in `[from, to)`: `up` is 0 and the other series get staleness markers; the
    /// process comes back restarted.
    down: Option<(i64, i64)>,
    /// No samples at all in these `[from, to)` minutes (Prometheus itself was not scraping).
    gaps: &'static [(i64, i64)],
    /// No requests served in `[from, to)`.
    idle: Option<(i64, i64)>,
    /// The target exists in `[from, to)`; when it goes away every series gets a staleness marker.
    alive: (i64, i64),
}

const BUCKETS: [(f64, &str); 9] = [
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (f64::INFINITY, "+Inf"),
];

/// The state of one target's process (counters and gauges).
#[derive(Debug, Default)]
struct Process {
    requests: Vec<f64>,
    buckets: [f64; 9],
    duration_sum: f64,
    cpu: f64,
    memory: f64,
    goroutines: f64,
    processed: f64,
    last_success: f64,
    /// Just (re)started: the first scrape comes before any request is served.
    fresh: bool,
}

fn targets() -> Vec<Target> {
    let api = |instance, restart_at, gaps| Target {
        job: "api",
        instance,
        kind: Kind::Api,
        restart_at,
        down: None,
        gaps,
        idle: None,
        alive: (0, SPAN_MIN),
    };
    let web = |instance, down, idle| Target {
        job: "web",
        instance,
        kind: Kind::Web,
        restart_at: None,
        down,
        gaps: &[],
        idle,
        alive: (0, SPAN_MIN),
    };
    vec![
        api("api-0:8080", None, &[]),
        api("api-1:8080", None, &[(30, 32), (78, 85)]),
        api("api-2:8080", Some(50), &[]),
        web("web-0:80", None, Some((40, 46))),
        web("web-1:80", Some((60, 70)), None),
        Target {
            job: "batch",
            instance: "batch-0:9091",
            kind: Kind::Batch,
            restart_at: None,
            down: None,
            gaps: &[],
            idle: None,
            alive: (10, 70),
        },
    ]
}

/// `(method, code, requests per second)` served by each kind of target.
fn routes(kind: Kind) -> &'static [(&'static str, &'static str, f64)] {
    match kind {
        Kind::Api => &[
            ("GET", "200", 3.0),
            ("GET", "500", 0.05),
            ("POST", "200", 0.8),
            ("POST", "500", 0.02),
        ],
        Kind::Web => &[("GET", "200", 1.2), ("GET", "404", 0.1)],
        Kind::Batch => &[],
    }
}

impl Process {
    fn start(kind: Kind, rng: &mut Rng) -> Self {
        Self {
            requests: vec![0.0; routes(kind).len()],
            memory: 4.0e7 + rng.int(0, 4_000_000) as f64,
            goroutines: rng.int(20, 40) as f64,
            fresh: true,
            ..Self::default()
        }
    }

    /// A process that has been up for a while before `t0_ms` (its counters are well above the
    /// increase of one window).
    fn running(target: &Target, t0_ms: i64, rng: &mut Rng) -> Self {
        let mut p = Self::start(target.kind, rng);
        for i in (1..=400).rev() {
            p.step(target, -1, t0_ms - i * SCRAPE_MS, rng);
        }
        p
    }

    /// Advances the process by one scrape interval ending at `t_ms`.
    fn step(&mut self, target: &Target, minute: i64, t_ms: i64, rng: &mut Rng) {
        // A restarted process is scraped before it serves its first request, so its counters
        // restart from 0 (and rate()'s zero-point extrapolation, which changed after Prometheus
        // 2.42, does not come into play).
        let idle = target.idle.is_some_and(|(a, b)| (a..b).contains(&minute)) || self.fresh;
        let latency = if target.kind == Kind::Api { 0.12 } else { 0.03 };
        for (i, &(_, _, per_s)) in routes(target.kind).iter().enumerate() {
            let n = if idle { 0 } else { (per_s * 15.0 * (0.4 + 1.2 * rng.unit())).round() as i64 };
            self.requests[i] += n as f64;
            for _ in 0..n {
                // Exponentially distributed latencies, with a 2% slow tail.
                let slow = if rng.unit() < 0.02 { 10.0 } else { 1.0 };
                let d = -latency * slow * (1.0 - rng.unit()).ln();
                self.duration_sum += d;
                for (b, &(le, _)) in BUCKETS.iter().enumerate() {
                    if d <= le {
                        self.buckets[b] += 1.0;
                    }
                }
            }
        }
        self.cpu += if self.fresh { 0.01 } else { 15.0 * (0.05 + 0.25 * rng.unit()) };
        self.fresh = false;
        self.memory = (self.memory + rng.int(-1_500_000, 1_600_000) as f64).max(1.0e7);
        self.goroutines = (self.goroutines + rng.int(-4, 4) as f64).clamp(5.0, 150.0);
        if target.kind == Kind::Batch {
            self.processed += rng.int(0, 900) as f64;
            if minute % 5 == 0 && self.last_success < (t_ms / 1000 - 60) as f64 {
                self.last_success = (t_ms / 1000) as f64;
            }
        }
    }

    /// The series one successful scrape returns.
    fn expose(
        &self,
        target: &Target,
        t_ms: i64,
        rng: &mut Rng,
    ) -> Vec<(Vec<(&'static str, String)>, f64)> {
        let mut out: Vec<(Vec<(&'static str, String)>, f64)> =
            vec![(vec![("__name__", "up".into())], 1.0)];
        if target.kind == Kind::Batch {
            out.push((vec![("__name__", "batch_processed_total".into())], self.processed));
            out.push((
                vec![("__name__", "batch_last_success_timestamp_seconds".into())],
                self.last_success,
            ));
            return out;
        }
        for (i, &(method, code, _)) in routes(target.kind).iter().enumerate() {
            out.push((
                vec![
                    ("__name__", "http_requests_total".into()),
                    ("method", method.into()),
                    ("code", code.into()),
                ],
                self.requests[i],
            ));
        }
        for (b, &(_, le)) in BUCKETS.iter().enumerate() {
            out.push((
                vec![
                    ("__name__", "http_request_duration_seconds_bucket".into()),
                    ("le", le.into()),
                ],
                self.buckets[b],
            ));
        }
        out.push((
            vec![("__name__", "http_request_duration_seconds_count".into())],
            self.buckets[8],
        ));
        out.push((
            vec![("__name__", "http_request_duration_seconds_sum".into())],
            self.duration_sum,
        ));
        out.push((vec![("__name__", "process_cpu_seconds_total".into())], self.cpu));
        out.push((vec![("__name__", "process_resident_memory_bytes".into())], self.memory));
        out.push((vec![("__name__", "go_goroutines".into())], self.goroutines));
        let version = match (target.kind, target.instance) {
            (Kind::Web, _) => "2.0.1",
            (_, "api-2:8080") => "1.5.0",
            _ => "1.4.2",
        };
        out.push((vec![("__name__", "app_info".into()), ("version", version.into())], 1.0));
        if target.kind == Kind::Web {
            // A slow daily-like swing plus sensor noise, in millidegrees.
            let phase = t_ms as f64 / (40.0 * MINUTE_MS as f64);
            let cpu = 55.0 + 10.0 * phase.sin() + rng.unit() * 2.0;
            let ambient = 2.5 + 6.0 * (phase * 1.3).cos() + rng.unit();
            for (sensor, v) in [("cpu", cpu), ("ambient", ambient)] {
                out.push((
                    vec![
                        ("__name__", "node_temperature_celsius".into()),
                        ("sensor", sensor.into()),
                    ],
                    (v * 1000.0).round() / 1000.0,
                ));
            }
        }
        out
    }
}

/// Simulates Prometheus scraping the targets every 15 s (each target at its own phase, with
/// millisecond jitter) from `t0` for [`SPAN_MIN`] minutes.
fn generate(t0: i64, seed: u64) -> Dataset {
    let mut rng = Rng(seed);
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for target in targets() {
        let phase = rng.int(1_000, SCRAPE_MS - 1_000);
        let mut process = Process::running(&target, t0, &mut rng);
        // The series of the last successful scrape, to mark stale when they disappear.
        let mut exposed: Vec<Labels> = Vec::new();
        let push =
            |series: &mut BTreeMap<Labels, Vec<(i64, f64)>>, labels: Labels, t: i64, v: f64| {
                series.entry(labels).or_default().push((t, v));
            };
        for i in 0..SPAN_MIN * 60_000 / SCRAPE_MS {
            let minute = i * SCRAPE_MS / MINUTE_MS;
            // Odd milliseconds: never on an (even) evaluation window edge.
            let t = (t0 + i * SCRAPE_MS + phase + rng.int(-150, 150)) | 1;
            let in_gap = target.gaps.iter().any(|&(a, b)| (a..b).contains(&minute));
            let alive = (target.alive.0..target.alive.1).contains(&minute);
            let down = target.down.is_some_and(|(a, b)| (a..b).contains(&minute));
            let minute_start = i * SCRAPE_MS % MINUTE_MS == 0;
            let back_up = target.down.is_some_and(|(_, b)| b == minute);
            if minute_start && (target.restart_at == Some(minute) || back_up) {
                process = Process::start(target.kind, &mut rng);
            }
            if alive {
                process.step(&target, minute, t, &mut rng);
            }
            if in_gap || (!alive && exposed.is_empty()) {
                continue;
            }
            let with_target = |extra: Vec<(&'static str, String)>| -> Labels {
                let mut l: Labels = extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                l.push(("job".into(), target.job.into()));
                l.push(("instance".into(), target.instance.into()));
                l.sort();
                l
            };
            if !alive || down {
                for labels in exposed.drain(..) {
                    let is_up = labels.iter().any(|(k, v)| k == "__name__" && v == "up");
                    if !(down && is_up) {
                        push(&mut series, labels, t, stale);
                    }
                }
                if down {
                    push(&mut series, with_target(vec![("__name__", "up".into())]), t, 0.0);
                    exposed.push(with_target(vec![("__name__", "up".into())]));
                }
                continue;
            }
            let scraped = process.expose(&target, t, &mut rng);
            exposed.clear();
            for (extra, v) in scraped {
                let labels = with_target(extra);
                exposed.push(labels.clone());
                push(&mut series, labels, t, v);
            }
        }
    }
    let real_samples =
        series.values().flatten().filter(|s| s.1.to_bits() != STALE_NAN_BITS).count();
    Dataset { series, real_samples }
}

// ---------------------------------------------------------------------------------------------
// Corpus and known differences

#[derive(Debug)]
struct Case {
    /// The query as written in the corpus (the key of known differences).
    text: String,
    /// The query sent (placeholders replaced).
    query: String,
    /// Compare an instant vector in order.
    ordered: bool,
}

fn parse_corpus(text: &str, mid: &str) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (ordered, q) = match line.strip_prefix("[ordered]") {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        assert!(!out.iter().any(|c| c.text == q), "duplicate query in the corpus: {q}");
        out.push(Case { text: q.to_string(), query: q.replace("${MID}", mid), ordered });
    }
    assert!(out.len() >= 150, "the corpus has only {} queries", out.len());
    out
}

/// `query -> reason`: a query line (not indented) followed by indented reason lines.
fn parse_known(text: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let q = current.as_ref().unwrap_or_else(|| panic!("reason without a query: {line}"));
            let reason = out.entry(q.clone()).or_default();
            reason.push_str(line.trim());
            reason.push(' ');
        } else {
            let q = line.trim().to_string();
            assert!(!out.contains_key(&q), "known difference listed twice: {q}");
            out.insert(q.clone(), String::new());
            current = Some(q);
        }
    }
    for (q, reason) in &out {
        assert!(!reason.trim().is_empty(), "known difference without a reason: {q}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running and comparing

#[derive(Debug)]
struct Targets<'a> {
    prom: &'a str,
    basin: &'a str,
    /// Instant query times (ms).
    instants: &'a [i64],
    /// Range query `(start, end, step)` in ms.
    range: (i64, i64, i64),
}

/// Runs every case on a few threads, in corpus order.
fn run_corpus(corpus: &[Case], targets: &Targets<'_>) -> Vec<Outcome> {
    const WORKERS: usize = 4;
    let mut out: Vec<Outcome> = vec![Outcome::default(); corpus.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                s.spawn(move || {
                    let client = http();
                    (w..corpus.len())
                        .step_by(WORKERS)
                        .map(|i| (i, run_case(&client, &corpus[i], targets)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("query worker panicked") {
                out[i] = r;
            }
        }
    });
    out
}

/// What one case gave: the first difference (if any), and whether Prometheus' answers were all
/// empty (or errors), which makes a corpus entry a weak check unless it is meant that way.
#[derive(Debug, Clone, Default)]
struct Outcome {
    diff: Option<String>,
    empty: bool,
}

fn run_case(client: &reqwest::blocking::Client, case: &Case, t: &Targets<'_>) -> Outcome {
    // `DIFFERENTIAL_SHOW=<part of a query>` prints both answers of the matching queries.
    let show = std::env::var("DIFFERENTIAL_SHOW").is_ok_and(|s| case.text.contains(&s));
    let mut empty = true;
    for &at in t.instants {
        let want = Answer::parse(&instant(client, t.prom, &case.query, at));
        let got = Answer::parse(&instant(client, t.basin, &case.query, at));
        if show {
            eprintln!(
                "{} at {}:\n  Prometheus {want:?}\n  Basin      {got:?}",
                case.text,
                fmt_secs(at)
            );
        }
        empty &= want.is_empty();
        if let Err(e) = compare(&want, &got, case.ordered) {
            return Outcome { diff: Some(format!("instant at {}: {e}", fmt_secs(at))), empty };
        }
    }
    let (start, end, step) = t.range;
    let want = Answer::parse(&range(client, t.prom, &case.query, start, end, step));
    let got = Answer::parse(&range(client, t.basin, &case.query, start, end, step));
    empty &= want.is_empty();
    let diff = compare(&want, &got, false).err().map(|e| {
        format!("range {}..{} step {}: {e}", fmt_secs(start), fmt_secs(end), fmt_secs(step))
    });
    Outcome { diff, empty }
}

/// Milliseconds as the API's decimal seconds.
fn fmt_secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn instant(client: &reqwest::blocking::Client, base: &str, q: &str, t: i64) -> Value {
    fetch(client, base, "/api/v1/query", &[("query", q), ("time", &fmt_secs(t))])
}

fn range(
    client: &reqwest::blocking::Client,
    base: &str,
    q: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Value {
    let params = [
        ("query", q),
        ("start", &fmt_secs(start)),
        ("end", &fmt_secs(end)),
        ("step", &fmt_secs(step)),
    ];
    fetch(client, base, "/api/v1/query_range", &params)
}

/// GET with a shared client; a body that is not JSON becomes an error answer.
fn fetch(
    client: &reqwest::blocking::Client,
    base: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Value {
    let resp = client
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .unwrap_or_else(|e| panic!("GET {base}{path} {params:?}: {e}"));
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|_| {
        serde_json::json!({"status": "error", "errorType": format!("non-JSON answer ({status}): {text}")})
    })
}

/// A query answer, normalised for comparison (timestamps in ms).
#[derive(Debug)]
enum Answer {
    /// `errorType` only: the messages are worded differently.
    Error(String),
    Scalar(i64, f64),
    String(i64, String),
    Vector(Vec<(Labels, i64, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

impl Answer {
    fn parse(v: &Value) -> Self {
        if v["status"] != "success" {
            return Self::Error(v["errorType"].as_str().unwrap_or("(no errorType)").to_string());
        }
        let data = &v["data"];
        let result = &data["result"];
        match data["resultType"].as_str() {
            Some("scalar") => Self::Scalar(ts(&result[0]), value(&result[1])),
            Some("string") => {
                Self::String(ts(&result[0]), result[1].as_str().unwrap_or_default().to_string())
            }
            Some("vector") => Self::Vector(
                elements(result)
                    .map(|s| (labels(&s["metric"]), ts(&s["value"][0]), value(&s["value"][1])))
                    .collect(),
            ),
            Some("matrix") => Self::Matrix(
                elements(result)
                    .map(|s| {
                        let points =
                            elements(&s["values"]).map(|p| (ts(&p[0]), value(&p[1]))).collect();
                        (labels(&s["metric"]), points)
                    })
                    .collect(),
            ),
            other => Self::Error(format!("unknown resultType {other:?}")),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Error(_) => true,
            Self::Scalar(..) | Self::String(..) => false,
            Self::Vector(v) => v.is_empty(),
            Self::Matrix(m) => m.is_empty(),
        }
    }

    fn kind(&self) -> String {
        match self {
            Self::Error(t) => format!("error {t}"),
            Self::Scalar(..) => "scalar".into(),
            Self::String(..) => "string".into(),
            Self::Vector(v) => format!("vector of {}", v.len()),
            Self::Matrix(m) => format!("matrix of {}", m.len()),
        }
    }
}

fn elements(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().map(|a| a.iter()).into_iter().flatten()
}

fn ts(v: &Value) -> i64 {
    (v.as_f64().unwrap_or(f64::NAN) * 1000.0).round() as i64
}

fn value(v: &Value) -> f64 {
    match v.as_str() {
        Some("NaN") => f64::NAN,
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(s) => s.parse().unwrap_or_else(|_| panic!("sample value {s:?} is not a number")),
        None => panic!("sample value {v} is not a string"),
    }
}

fn labels(m: &Value) -> Labels {
    let mut l: Labels = m
        .as_object()
        .map(|o| {
            o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
        })
        .unwrap_or_default();
    l.sort();
    l
}

/// Equal within 1e-9 relative; NaN equals NaN; infinities equal only themselves.
fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn show(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// `Ok` when `got` (Basin) answers like `want` (Prometheus), else what differs first.
fn compare(want: &Answer, got: &Answer, ordered: bool) -> Result<(), String> {
    let mismatch = || Err(format!("Prometheus: {}, Basin: {}", want.kind(), got.kind()));
    match (want, got) {
        (Answer::Error(a), Answer::Error(b)) if a == b => Ok(()),
        (Answer::Scalar(ta, a), Answer::Scalar(tb, b)) => {
            if ta == tb && close(*a, *b) {
                Ok(())
            } else {
                Err(format!("scalar: Prometheus {a}@{ta}, Basin {b}@{tb}"))
            }
        }
        (Answer::String(ta, a), Answer::String(tb, b)) => {
            if ta == tb && a == b {
                Ok(())
            } else {
                Err(format!("string: Prometheus {a:?}, Basin {b:?}"))
            }
        }
        (Answer::Vector(want), Answer::Vector(got)) => {
            let (mut a, mut b) = (want.clone(), got.clone());
            a.sort_by(|x, y| x.0.cmp(&y.0));
            b.sort_by(|x, y| x.0.cmp(&y.0));
            let la: Vec<&Labels> = a.iter().map(|s| &s.0).collect();
            let lb: Vec<&Labels> = b.iter().map(|s| &s.0).collect();
            if la != lb {
                return Err(label_diff(&la, &lb));
            }
            for ((l, ta, va), (_, tb, vb)) in a.iter().zip(&b) {
                if ta != tb || !close(*va, *vb) {
                    return Err(format!("{}: Prometheus {va}@{ta}, Basin {vb}@{tb}", show(l)));
                }
            }
            if ordered && !same_order(want, got) {
                let order = |v: &[(Labels, i64, f64)]| {
                    v.iter()
                        .map(|s| format!("{}={}", show(&s.0), s.2))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                return Err(format!("order: Prometheus [{}], Basin [{}]", order(want), order(got)));
            }
            Ok(())
        }
        (Answer::Matrix(a), Answer::Matrix(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.sort_by(|x, y| x.0.cmp(&y.0));
            b.sort_by(|x, y| x.0.cmp(&y.0));
            let la: Vec<&Labels> = a.iter().map(|s| &s.0).collect();
            let lb: Vec<&Labels> = b.iter().map(|s| &s.0).collect();
            if la != lb {
                return Err(label_diff(&la, &lb));
            }
            for ((l, pa), (_, pb)) in a.iter().zip(&b) {
                for (i, (&(ta, va), &(tb, vb))) in pa.iter().zip(pb).enumerate() {
                    if ta != tb || !close(va, vb) {
                        return Err(format!(
                            "{} point {i}: Prometheus {va}@{ta}, Basin {vb}@{tb}",
                            show(l)
                        ));
                    }
                }
                if pa.len() != pb.len() {
                    let extra = if pa.len() > pb.len() { &pa[pb.len()] } else { &pb[pa.len()] };
                    return Err(format!(
                        "{}: Prometheus {} points, Basin {} (first extra {extra:?})",
                        show(l),
                        pa.len(),
                        pb.len()
                    ));
                }
            }
            Ok(())
        }
        _ => mismatch(),
    }
}

fn label_diff(a: &[&Labels], b: &[&Labels]) -> String {
    let only_a: Vec<String> = a.iter().filter(|l| !b.contains(*l)).map(|l| show(l)).collect();
    let only_b: Vec<String> = b.iter().filter(|l| !a.contains(*l)).map(|l| show(l)).collect();
    format!(
        "series: Prometheus {} / Basin {}; only in Prometheus: [{}]; only in Basin: [{}]",
        a.len(),
        b.len(),
        only_a.join(" "),
        only_b.join(" ")
    )
}

/// Whether two vectors (with the same elements) come in the same order. Prometheus does not
/// define the order of elements with equal values, so each run of equal values in `want` is
/// compared as a set.
fn same_order(want: &[(Labels, i64, f64)], got: &[(Labels, i64, f64)]) -> bool {
    let mut i = 0;
    while i < want.len() {
        let run = want[i..].iter().take_while(|s| close(s.2, want[i].2)).count();
        let mut a: Vec<&Labels> = want[i..i + run].iter().map(|s| &s.0).collect();
        let mut b: Vec<&Labels> = got[i..i + run].iter().map(|s| &s.0).collect();
        a.sort();
        b.sort();
        if a != b {
            return false;
        }
        i += run;
    }
    true
}
