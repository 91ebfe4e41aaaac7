//! `basin-bench`: an end-to-end load benchmark for any Prometheus remote_write receiver.
//!
//! `basin-bench run --url BASE` generates node-exporter-like data (see [`workload`]), sends it
//! to `BASE/api/v1/write` as Prometheus would, optionally calls a flush endpoint, then times a
//! PromQL suite on `BASE/api/v1/query_range` (see [`queries`]). With `--pid` it reads the
//! server's CPU time and peak RSS from `/proc`, with `--data-dir` the bytes on disk. It prints
//! a table and, as its last line, the same figures as one JSON object.
//!
//! `basin-bench compare A.json B.json ...` prints runs side by side with ratios to the first.
//! `scripts/bench` runs Basin, VictoriaMetrics and Prometheus on identical data this way.

mod process;
mod queries;
mod report;
mod send;
mod workload;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// End-to-end load benchmark: remote_write ingest, flush, PromQL queries.
#[derive(Debug, Parser)]
#[command(name = "basin-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest the workload into one server, flush, query, report.
    Run(Box<RunArgs>),
    /// Print the JSON records of several runs side by side, with ratios to the first.
    Compare {
        /// Files holding a run's JSON record (the last line starting with `{` is used).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Base URL of the server (remote_write at /api/v1/write, queries at /api/v1/query_range).
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    url: String,
    /// Name of this run in the report (e.g. `basin`, `victoria-metrics`).
    #[arg(long, default_value = "target")]
    name: String,
    /// Series to generate (100 per simulated host; half are node_cpu_seconds_total).
    #[arg(long, default_value_t = 20_000)]
    series: usize,
    /// Time range of the data, ending at --end-ms.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Scrape interval: spacing of the samples, and the step of range queries.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Samples (one per series, as Prometheus sends them) per remote_write request.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seed of the generated values; same seed and --end-ms give byte-identical requests.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Timestamp (ms since the epoch) of the last step; now when omitted.
    #[arg(long)]
    end_ms: Option<i64>,
    /// URL (or path under --url) to POST after ingest to persist everything, e.g.
    /// `/api/v1/admin/flush` (Basin) or `/internal/force_flush` (VictoriaMetrics); repeat
    /// for several, posted in order (VictoriaMetrics: also `/internal/force_merge`).
    #[arg(long)]
    flush_url: Vec<String>,
    /// After the flush, wait until the data directory's size has not changed for this long
    /// before measuring it (servers that keep writing after their flush call returns).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Server process id: CPU seconds and peak RSS come from /proc/<pid>.
    #[arg(long)]
    pid: Option<u32>,
    /// Server data directory: bytes on disk are measured after the flush.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Runs of each query; the median is reported.
    #[arg(long, default_value_t = 9)]
    query_repeats: usize,
    /// Timeout of one query.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    query_timeout: Duration,
    /// Skip the query phase.
    #[arg(long)]
    no_queries: bool,
    /// Skip the ingest phase (query data sent by an earlier run with the same flags).
    #[arg(long)]
    no_ingest: bool,
    /// Also time the raw select through /api/v1/export (VictoriaMetrics' JSON lines; Basin
    /// serves it too).
    #[arg(long)]
    export: bool,
    /// Also write the JSON record to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(*args),
        Command::Compare { files } => {
            let records = files
                .iter()
                .map(|f| read_record(f).with_context(|| format!("reading {}", f.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            print!("{}", report::compare(&records));
            Ok(())
        }
    }
}

/// The last line of `path` that starts with `{`, parsed.
fn read_record(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("no JSON record in the file")?;
    Ok(serde_json::from_str(line)?)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    let interval_ms = i64::try_from(args.interval.as_millis()).context("--interval too long")?;
    anyhow::ensure!(interval_ms >= 1000, "--interval must be at least 1s");
    anyhow::ensure!(args.batch > 0 && args.series > 0, "--batch and --series must be positive");
    let steps = usize::try_from(args.duration.as_millis() / args.interval.as_millis())?;
    anyhow::ensure!(steps > 0, "--duration must be at least one --interval");
    let end_ms = match args.end_ms {
        Some(t) => t,
        None => i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?,
    };
    let w = workload::Workload {
        series: args.series,
        steps,
        interval_ms,
        end_ms,
        seed: args.seed,
        batch: args.batch,
    };
    let cpu = |pid: Option<u32>| pid.and_then(|p| process::cpu_seconds(p).ok());

    let mut record = json!({
        "name": args.name,
        "url": base,
        "series": w.series,
        "steps": w.steps,
        "samples": w.samples(),
        "interval_s": interval_ms / 1000,
        "batch": w.batch,
        "concurrency": args.concurrency,
        "seed": w.seed,
        "end_ms": w.end_ms,
    });

    if !args.no_ingest {
        let started = Instant::now();
        let bodies = workload::generate(&w);
        let bytes: usize = bodies.iter().map(Vec::len).sum();
        eprintln!(
            "generated {} samples in {} requests ({:.1} MB snappy) in {:.1}s",
            w.samples(),
            bodies.len(),
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        let cpu0 = cpu(args.pid);
        let stats = send::send_all(
            &format!("{base}/api/v1/write"),
            &bodies,
            w.blocks_per_step(),
            args.concurrency,
        )?;
        let cpu1 = cpu(args.pid);
        drop(bodies);
        let wall = stats.wall.as_secs_f64();
        eprintln!(
            "ingested in {wall:.2}s ({} rejected, {} retries)",
            stats.rejected, stats.retries
        );
        record["ingest"] = json!({
            "wall_s": wall,
            "samples_per_s": w.samples() as f64 / wall,
            "requests_rejected": stats.rejected,
            "retries": stats.retries,
            "error": stats.first_error,
        });
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            record["cpu_s_ingest"] = json!(b - a);
            record["cpu_s_per_m_samples"] = json!((b - a) / (w.samples() as f64 / 1e6));
        }
        record["peak_rss_bytes_after_ingest"] =
            json!(args.pid.and_then(|p| process::peak_rss_bytes(p).ok()));
    }

    if !args.flush_url.is_empty() {
        let cpu0 = cpu(args.pid);
        let started = Instant::now();
        for flush in &args.flush_url {
            let url = if flush.starts_with('/') { format!("{base}{flush}") } else { flush.clone() };
            flush_server(&url)?;
        }
        record["flush_s"] = json!(started.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, cpu(args.pid)) {
            record["flush_cpu_s"] = json!(b - a);
        }
        eprintln!("flushed in {:.2}s", started.elapsed().as_secs_f64());
    }

    if let Some(dir) = &args.data_dir {
        let bytes = settled_dir_bytes(dir, args.settle)
            .with_context(|| format!("measuring {}", dir.display()))?;
        record["disk_bytes"] = json!(bytes);
        record["bytes_per_sample"] = json!(bytes as f64 / w.samples() as f64);
    }

    if !args.no_queries {
        let client = reqwest::blocking::Client::builder().timeout(args.query_timeout).build()?;
        let range = queries::Range {
            start_s: (w.end_ms - w.steps as i64 * interval_ms) / 1000 + 1,
            end_s: w.end_ms / 1000,
            step_s: interval_ms / 1000,
        };
        let mut results = Vec::new();
        for spec in queries::suite(args.export) {
            let r = queries::run(&client, &base, &spec, range, args.query_repeats);
            eprintln!(
                "query {}: {} ({} series, {} points){}",
                spec.name,
                r.median.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0)),
                r.series,
                r.points,
                r.error.as_deref().map_or(String::new(), |e| format!(" error: {e}")),
            );
            results.push(report::query_json(&spec, &r));
        }
        record["queries"] = Value::Array(results);
        record["expected_select_series"] = json!(w.cpu_series());
    }

    record["peak_rss_bytes"] = json!(args.pid.and_then(|p| process::peak_rss_bytes(p).ok()));
    print!("{}", report::table(&record));
    let line = serde_json::to_string(&record)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{line}");
    Ok(())
}

/// POSTs to the flush endpoint (GET when the server only allows that, as some do).
/// The size of `dir` once it has stayed the same for `settle` (polled every 500 ms, for at
/// most five minutes).
fn settled_dir_bytes(dir: &std::path::Path, settle: Duration) -> std::io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = process::dir_bytes(dir)?;
    let mut since = Instant::now();
    while since.elapsed() < settle && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = process::dir_bytes(dir)?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(last)
}

fn flush_server(url: &str) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(3600)).build()?;
    let mut response = client.post(url).send()?;
    if response.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED {
        response = client.get(url).send()?;
    }
    let status = response.status();
    anyhow::ensure!(status.is_success(), "flush {url}: {status}: {}", response.text()?.trim());
    Ok(())
}
