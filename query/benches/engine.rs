//! In-process PromQL engine benchmark: node-exporter-like data in memory, five range queries
//! through the public engine API, plus rendering a big matrix to JSON as the HTTP API does.
//!
//! Run with `cargo bench -p basin-query --bench engine` (optionally `-- <runs> [filter]`).
//! Prints the median, minimum and maximum wall time of each case.

use basin_proto::matcher::Matcher;
use basin_proto::node::SharedSeries;
use basin_proto::storage::{self, Label, SelectHints};
use basin_query::api::json;
use basin_query::promql::{Engine, EngineOptions, Value};
use basin_query::source::{Selected, SeriesSource, SourceError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Query range: 2 h at a 15 s step (481 steps), data starting 10 min earlier for the windows.
const START: i64 = 1_700_000_000_000;
const END: i64 = START + 2 * 3600 * 1000;
const STEP: i64 = 15_000;
const DATA_START: i64 = START - 600_000;

/// A tiny deterministic PRNG (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Series held in memory, already sorted by labels; selects clone the matching ones.
struct BenchSource {
    series: Vec<storage::Series>,
}

#[async_trait::async_trait]
impl SeriesSource for BenchSource {
    async fn select(
        &self,
        matchers: &[storage::Matcher],
        start_ms: i64,
        end_ms: i64,
        _hints: &SelectHints,
    ) -> Result<Selected, SourceError> {
        let compiled =
            Matcher::compile_all(matchers).map_err(|e| SourceError::BadRequest(e.to_string()))?;
        let mut out = Vec::new();
        for s in &self.series {
            if !compiled.iter().all(|m| m.matches_labels(&s.labels)) {
                continue;
            }
            let lo = s.samples.partition_point(|x| x.timestamp_ms < start_ms);
            let hi = s.samples.partition_point(|x| x.timestamp_ms <= end_ms);
            out.push(SharedSeries::new(Arc::new(s.labels.clone()), s.samples[lo..hi].to_vec()));
        }
        Ok(Selected { series: out, warnings: Vec::new() })
    }
}

fn label(name: &str, value: impl Into<String>) -> Label {
    Label { name: name.to_string(), value: value.into() }
}

/// Samples every 15 s with up to ±500 ms jitter; `next` gives each value from the previous.
fn samples(rng: &mut Rng, mut next: impl FnMut(&mut Rng, f64) -> f64) -> Vec<storage::Sample> {
    let mut out = Vec::new();
    let mut v = 0.0;
    let mut t = DATA_START;
    while t <= END {
        let jitter = (rng.next() % 1001) as i64 - 500;
        v = next(rng, v);
        out.push(storage::Sample { timestamp_ms: t + jitter, value: v });
        t += 15_000;
    }
    out
}

/// 10,000 `node_cpu_seconds_total` counters (125 instances × 10 cpus × 8 modes) and 100 instances × 12 `http_request_duration_seconds_bucket` buckets.
fn build() -> BenchSource {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut series = Vec::new();
    let modes = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
    let jobs = ["node", "node-infra", "node-db", "node-web", "node-batch"];
    // 125 instances × 10 cpus × 8 modes = 10,000 series.
    for i in 0..125 {
        let instance = format!("10.0.{}.{}:9100", i / 250, i % 250);
        let job = jobs[i % jobs.len()];
        for cpu in 0..10 {
            for mode in modes {
                let rate = 0.01 + rng.unit();
                let labels = vec![
                    label("__name__", "node_cpu_seconds_total"),
                    label("cpu", cpu.to_string()),
                    label("instance", instance.clone()),
                    label("job", job),
                    label("mode", mode),
                ];
                let samples = samples(&mut rng, |r, v| v + 15.0 * rate * (0.5 + r.unit()));
                series.push(storage::Series { labels, samples });
            }
        }
    }
    let les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"];
    for i in 0..100 {
        let instance = format!("10.1.0.{i}:8080");
        // Cumulative bucket counters: bucket k gets a growing share of the requests.
        let mut per_bucket: Vec<Vec<storage::Sample>> = vec![Vec::new(); les.len() + 1];
        let mut counts = vec![0.0; les.len() + 1];
        let mut t = DATA_START;
        while t <= END {
            let jitter = (rng.next() % 1001) as i64 - 500;
            let reqs = 100.0 * rng.unit();
            let mut cum = 0.0;
            for (k, c) in counts.iter_mut().enumerate() {
                cum += reqs * (k as f64 + 1.0) / (les.len() as f64 + 1.0) * rng.unit();
                *c += cum.min(reqs);
                per_bucket[k].push(storage::Sample { timestamp_ms: t + jitter, value: *c });
            }
            t += 15_000;
        }
        for (k, samples) in per_bucket.into_iter().enumerate() {
            let le = les.get(k).copied().unwrap_or("+Inf");
            let labels = vec![
                label("__name__", "http_request_duration_seconds_bucket"),
                label("instance", instance.clone()),
                label("job", "api"),
                label("le", le),
            ];
            series.push(storage::Series { labels, samples });
        }
    }
    series.sort_by(|a, b| {
        let key = |l: &Label| (l.name.clone(), l.value.clone());
        a.labels.iter().map(key).cmp(b.labels.iter().map(key))
    });
    BenchSource { series }
}

const QUERIES: &[(&str, &str)] = &[
    ("sum_rate", "sum by (job) (rate(node_cpu_seconds_total[5m]))"),
    (
        "hist_quantile",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    ("topk_rate", "topk(10, rate(node_cpu_seconds_total[5m]))"),
    ("count_regex", r#"count by (mode) ({__name__=~"node_cpu_sec.*", instance=~"10\\..*:9100"})"#),
    ("select", "node_cpu_seconds_total"),
    // Beyond the five reference queries: vector matching on both sides of 10,000 series.
    ("x_one_to_one", "node_cpu_seconds_total - node_cpu_seconds_total offset 1m"),
    (
        "x_group_left",
        "rate(node_cpu_seconds_total[5m]) / on (instance, cpu) group_left \
         sum by (instance, cpu) (rate(node_cpu_seconds_total[5m]))",
    ),
];

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn fmt(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    let filter = args.get(1).cloned().unwrap_or_default();
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio runtime");
    let built = Instant::now();
    let src = build();
    let points: usize = src.series.iter().map(|s| s.samples.len()).sum();
    println!(
        "data: {} series, {} samples, built in {}; {} runs per case",
        src.series.len(),
        points,
        fmt(built.elapsed()),
        runs
    );
    let engine = Engine::new(EngineOptions::default());
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>8} {:>9}",
        "case", "median", "min", "max", "series", "points"
    );
    let mut selected: Option<Value> = None;
    for (name, query) in QUERIES {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let mut times = Vec::new();
        let mut shape = (0, 0);
        for _ in 0..runs {
            let began = Instant::now();
            let res = rt
                .block_on(engine.query_range(&src, query, START, END, STEP))
                .expect("query succeeds");
            times.push(began.elapsed());
            if let Value::Matrix(m) = &res.value {
                shape = (m.len(), m.iter().map(|s| s.points.len()).sum::<usize>());
            }
            if *name == "select" {
                selected = Some(res.value);
            }
        }
        report(name, &times, shape);
    }
    if let Some(value) = selected {
        let mut times = Vec::new();
        let mut len = 0;
        for _ in 0..runs {
            let began = Instant::now();
            let mut data = String::new();
            json::write_query_data(&mut data, &value);
            let body = json::success(&data, &[], &[]);
            times.push(began.elapsed());
            len = body.len();
        }
        report("select_json", &times, (len, 0));
    }
}

fn report(name: &str, times: &[Duration], (series, points): (usize, usize)) {
    let min = times.iter().min().copied().unwrap_or_default();
    let max = times.iter().max().copied().unwrap_or_default();
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>8} {:>9}",
        name,
        fmt(median(times.to_vec())),
        fmt(min),
        fmt(max),
        series,
        points
    );
}
