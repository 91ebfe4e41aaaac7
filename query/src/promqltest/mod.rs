//! Conformance runner for Prometheus' data-driven PromQL `.test` scripts
//! (`shared/conformance/FORMAT.md`), run against [`Engine`] over an in-memory
//! [`MemSource`].
//!
//! Evals are grouped as in the conformance README: *core*, *native histograms*,
//! *experimental* (feature-flagged) and *start timestamps*. Only core evals run; the others
//! are reported as skipped, per group. An eval the engine or runner reports as unsupported is
//! skipped as experimental.

mod compare;
mod script;
mod storage;
#[cfg(test)]
mod tests;

pub use storage::MemSource;

use crate::promql::{Annotated, Engine, EngineOptions, EvalError};
use basin_proto::storage::Label;
use script::{Command, Eval, EvalKind, Point};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The groups evals are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// Plain PromQL over float samples.
    Core,
    /// Reads or expects native histograms.
    NativeHistograms,
    /// Uses a feature Prometheus only enables behind a flag.
    Experimental,
    /// Data with per-sample start timestamps.
    StartTimestamps,
}

impl Group {
    fn name(self) -> &'static str {
        match self {
            Group::Core => "core",
            Group::NativeHistograms => "native histograms",
            Group::Experimental => "experimental",
            Group::StartTimestamps => "start timestamps",
        }
    }
}

/// What happened to one eval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and matched the expectations.
    Passed,
    /// Ran and did not match; the reason.
    Failed(String),
    /// Not run (its group is not supported).
    Skipped,
}

/// The result of one eval.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// 1-based line of the `eval` command.
    pub line: usize,
    /// The query.
    pub query: String,
    /// Its group.
    pub group: Group,
    /// The outcome.
    pub outcome: Outcome,
    /// The reference runner's implicit extra checks (FORMAT.md section 7), by name:
    /// `at-modifier` (step invariance via `@`) and `range` (instant vs range consistency).
    pub checks: Vec<(&'static str, Outcome)>,
}

/// The results of one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// File name (without directory), as used in the known-failures list.
    pub file: String,
    /// Every eval, in file order.
    pub evals: Vec<EvalReport>,
}

/// Counts of passed / failed / skipped evals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Passed evals.
    pub passed: usize,
    /// Failed evals.
    pub failed: usize,
    /// Skipped evals.
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

impl FileReport {
    /// Totals over all groups.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for e in &self.evals {
            c.add(&e.outcome);
        }
        c
    }

    /// Totals per group.
    pub fn group_counts(&self) -> BTreeMap<Group, Counts> {
        let mut m: BTreeMap<Group, Counts> = BTreeMap::new();
        for e in &self.evals {
            m.entry(e.group).or_default().add(&e.outcome);
        }
        m
    }
}

/// The engine settings the conformance files assume (FORMAT.md section 8).
pub fn conformance_engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(300),
        max_samples: 10_000,
        timeout: Duration::from_secs(100),
    })
    .with_default_subquery_step(Duration::from_secs(60))
}

/// Functions Prometheus only enables with `--enable-feature=promql-experimental-functions`.
const EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "mad_over_time",
    "sort_by_label",
    "sort_by_label_desc",
    "double_exponential_smoothing",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "histogram_quantiles",
    "start",
    "end",
    "range",
    "step",
    "min_of",
    "max_of",
    "info",
    "limitk",
    "limit_ratio",
    "start_timestamp",
];

/// Identifier-like words of a query (metric and function names, keywords, label names).
fn words(query: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in query.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
                out.insert(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == ':' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.insert(std::mem::take(&mut cur));
            }
            if c == '"' || c == '\'' || c == '`' {
                quote = Some(c);
            }
        }
    }
    if !cur.is_empty() {
        out.insert(cur);
    }
    out
}

/// Whether the query uses duration arithmetic (`[5m+1m]`, `offset (2*2)`, `[step()]`).
fn has_duration_expr(query: &str) -> bool {
    let mut depth = 0;
    let mut inner = String::new();
    for c in query.chars() {
        match c {
            '[' => {
                depth += 1;
                inner.clear();
            }
            ']' if depth > 0 => {
                depth -= 1;
                let s: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
                let body = s.trim_start_matches('-');
                if body.contains(['+', '*', '/', '^', '%', '(']) || body.contains('-') {
                    return true;
                }
            }
            _ if depth > 0 => inner.push(c),
            _ => {}
        }
    }
    let q = query.replace(char::is_whitespace, " ");
    if let Some(i) = q.find("offset") {
        let rest = q[i + 6..].trim_start();
        if rest.starts_with('(') || rest.starts_with("-(") {
            return true;
        }
    }
    false
}

/// Classifies an eval by the README's heuristics.
fn classify(ev: &Eval, hist_series: &[Vec<Label>], start_ts: bool) -> Group {
    if start_ts {
        return Group::StartTimestamps;
    }
    let w = words(&ev.query);
    let selectors = crate::promql::query_selectors(&ev.query);
    let reads_histograms = selectors.as_ref().is_some_and(|sels| {
        sels.iter().any(|ms| {
            let Ok(ms) = basin_proto::matcher::Matcher::compile_all(ms) else {
                return false;
            };
            hist_series.iter().any(|h| ms.iter().all(|m| m.matches_labels(h)))
        })
    });
    // Also by name, for queries the parser cannot read (e.g. the `</` trim operators).
    let names_histogram = selectors.is_none()
        && hist_series.iter().any(|h| {
            let n = name_of(h);
            !n.is_empty() && w.contains(&n)
        });
    if reads_histograms
        || names_histogram
        || ev.results.iter().any(|r| r.points.contains(&Point::Histogram))
    {
        return Group::NativeHistograms;
    }
    let lower = ev.query.to_lowercase();
    let q = lower.as_str();
    let experimental = EXPERIMENTAL_FUNCTIONS.iter().any(|f| {
        // A call `f(`, not `@ start()` (which is core).
        let mut from = 0;
        while let Some(i) = q[from..].find(f) {
            let at = from + i;
            from = at + f.len();
            let before = q[..at].trim_end();
            let boundary = q[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let after = q[from..].trim_start();
            if boundary && after.starts_with('(') && !before.ends_with('@') {
                return true;
            }
        }
        false
    }) || w.contains("anchored")
        || w.contains("smoothed")
        || ["fill", "fill_left", "fill_right"].iter().any(|f| {
            q.split(f).skip(1).any(|r| r.trim_start().starts_with('('))
                && !q.contains(&format!("{f}{{"))
        })
        || w.contains("__type__")
        || w.contains("__unit__")
        || has_duration_expr(q);
    if experimental { Group::Experimental } else { Group::Core }
}

/// Runner settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Also run experimental (feature-flagged) evals instead of skipping them; their failures
    /// are reported but never make the run fail.
    pub run_experimental: bool,
}

/// Runs one script's text. `file` names it in the report.
pub fn run_script(
    file: &str,
    text: &str,
    engine: &Engine,
    opts: RunOptions,
) -> Result<FileReport, String> {
    let cmds = script::parse(text).map_err(|e| format!("{file}: {e}"))?;
    let mut src = MemSource::new();
    let mut hist_series: Vec<Vec<Label>> = Vec::new();
    let mut start_ts = false;
    let mut evals = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    for cmd in cmds {
        match cmd {
            Command::Clear => {
                src.clear();
                hist_series.clear();
                start_ts = false;
            }
            Command::Load { interval, nhcb, start_timestamps, series, .. } => {
                start_ts |= start_timestamps;
                load(&mut src, &mut hist_series, interval, nhcb, series);
            }
            Command::Eval(ev) => {
                let group = classify(&ev, &hist_series, start_ts);
                let run =
                    group == Group::Core || (group == Group::Experimental && opts.run_experimental);
                let (outcome, checks) = if run {
                    let outcome = rt.block_on(run_eval(engine, &src, &ev, group));
                    let checks = if outcome == Outcome::Passed {
                        rt.block_on(implicit_checks(engine, &src, &ev))
                    } else {
                        Vec::new()
                    };
                    (outcome, checks)
                } else {
                    (Outcome::Skipped, Vec::new())
                };
                let group = if outcome == Outcome::Skipped && group == Group::Core {
                    Group::Experimental
                } else {
                    group
                };
                evals.push(EvalReport {
                    line: ev.line,
                    query: ev.query.clone(),
                    group,
                    outcome,
                    checks,
                });
            }
        }
    }
    Ok(FileReport { file: file.to_string(), evals })
}

fn load(
    src: &mut MemSource,
    hist_series: &mut Vec<Vec<Label>>,
    interval: i64,
    nhcb: bool,
    series: Vec<script::SeriesLine>,
) {
    for s in series {
        let name = name_of(&s.labels);
        if s.points.contains(&Point::Histogram) {
            hist_series.push(s.labels.clone());
        }
        if nhcb {
            // The runner would also store `X{labels without le}` as a native histogram.
            for suffix in ["_bucket", "_count", "_sum"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    let mut labels: Vec<Label> =
                        s.labels.iter().filter(|l| l.name != "le").cloned().collect();
                    if let Some(l) = labels.iter_mut().find(|l| l.name == basin_proto::METRIC_NAME)
                    {
                        l.value = base.to_string();
                    }
                    if !hist_series.contains(&labels) {
                        hist_series.push(labels);
                    }
                }
            }
        }
        let samples = s.points.iter().enumerate().filter_map(|(i, p)| match p {
            Point::Float(v) => Some((i as i64 * interval, *v)),
            _ => None,
        });
        src.add(s.labels.clone(), samples.collect::<Vec<_>>());
    }
}

fn name_of(labels: &[Label]) -> String {
    labels
        .iter()
        .find(|l| l.name == basin_proto::METRIC_NAME)
        .map(|l| l.value.clone())
        .unwrap_or_default()
}

/// Whether an error means "this engine does not support the feature" (then the eval is
/// skipped): an explicit "not supported", or, outside the core group, syntax the parser does
/// not know (duration expressions, `anchored`/`smoothed`).
fn is_unsupported(e: &EvalError, group: Group) -> bool {
    let s = e.to_string();
    s.contains("not supported") || (group != Group::Core && s.starts_with("parse error"))
}

async fn run_eval(engine: &Engine, src: &MemSource, ev: &Eval, group: Group) -> Outcome {
    let res: Result<Annotated, EvalError> = match ev.kind {
        EvalKind::Instant { at } => engine.instant_annotated(src, &ev.query, at).await,
        EvalKind::Range { start, end, step } => {
            engine.range_annotated(src, &ev.query, start, end, step).await
        }
    };
    match (&ev.fail, res) {
        (_, Err(e)) if is_unsupported(&e, group) => Outcome::Skipped,
        (Some(m), Err(e)) => {
            if compare::msg_matches(m, &e.to_string()) {
                Outcome::Passed
            } else {
                Outcome::Failed(format!("expected error {m:?}, got {:?}", e.to_string()))
            }
        }
        (Some(_), Ok(r)) => Outcome::Failed(format!("expected an error, got {:?}", r.result.value)),
        (None, Err(e)) => Outcome::Failed(format!("unexpected error: {e}")),
        (None, Ok(r)) => match compare::check_value(ev, &r.result.value)
            .and_then(|()| compare::check_annotations(ev, &r))
        {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::Failed(e),
        },
    }
}

/// Functions whose result depends on the evaluation time even with `@`.
const AT_UNSAFE: &[&str] = &[
    "time",
    "timestamp",
    "predict_linear",
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    "start",
    "end",
    "range",
    "step",
];

/// The reference runner's extra checks for a passing instant eval: the same result with every
/// selector pinned by `@` at other evaluation times, and the same result from a range query
/// around the eval time.
async fn implicit_checks(
    engine: &Engine,
    src: &MemSource,
    ev: &Eval,
) -> Vec<(&'static str, Outcome)> {
    let EvalKind::Instant { at } = ev.kind else {
        return Vec::new();
    };
    if ev.fail.is_some() {
        return Vec::new();
    }
    let Ok(expr) = crate::promql::parse_query(&ev.query) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !crate::promql::calls_any(&expr, AT_UNSAFE) {
        let mut pinned = expr.clone();
        crate::promql::pin_at(&mut pinned, at);
        let times: Vec<i64> =
            if at == 0 { vec![-1000, 0, 1000] } else { vec![-10 * at, 0, at / 5, at, 10 * at] };
        let mut outcome = Outcome::Passed;
        for t in times {
            let res = engine.run_expr(src, &pinned, &ev.query, t, t, 0).await;
            let r = match res {
                Ok(r) => compare::check_value(ev, &r.result.value),
                Err(e) => Err(format!("unexpected error: {e}")),
            };
            if let Err(e) = r {
                outcome = Outcome::Failed(format!("with @ {at}ms evaluated at {t}ms: {e}"));
                break;
            }
        }
        out.push(("at-modifier", outcome));
    }
    let range_ok = ev.range_vector.is_none()
        && ev.string.is_none()
        && !ev.ordered
        && !crate::promql::calls_any(&expr, &["start", "end", "range", "step"]);
    if range_ok {
        let res = engine.run_expr(src, &expr, &ev.query, at - 60_000, at + 60_000, 60_000).await;
        let outcome = match res {
            Ok(r) => {
                match compare::check_value(ev, &point_at(&r.result.value, at, ev.scalar.is_some()))
                {
                    Ok(()) => Outcome::Passed,
                    Err(e) => Outcome::Failed(format!("range query around the eval time: {e}")),
                }
            }
            Err(e) => Outcome::Failed(format!("range query around the eval time: {e}")),
        };
        out.push(("range", outcome));
    }
    out
}

/// The points of a range-query matrix at `t`, as an instant result.
fn point_at(v: &crate::promql::Value, t: i64, scalar: bool) -> crate::promql::Value {
    use crate::promql::{Sample, Value};
    let Value::Matrix(m) = v else {
        return v.clone();
    };
    let samples: Vec<Sample> = m
        .iter()
        .filter_map(|s| {
            s.points.iter().find(|p| p.0 == t).map(|p| Sample {
                labels: s.labels.clone(),
                t,
                v: p.1,
            })
        })
        .collect();
    if scalar && samples.len() == 1 && samples[0].labels.is_empty() {
        return Value::Scalar { t, v: samples[0].v };
    }
    Value::Vector(samples)
}

/// Reads a known-failures list: `file:line` per line, `#` comments.
fn read_known(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read known-failures file {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "test"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("conformance directory {} has no .test files", p.display()));
            }
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(format!("conformance directory or file {} not found", p.display()));
        }
    }
    Ok(files)
}

/// Summary of a run over several files.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Per-file reports.
    pub files: Vec<FileReport>,
    /// The human-readable report (what `run_cli` prints).
    pub text: String,
    /// Failed evals (`file:line`) not in the known-failures list.
    pub unexpected: Vec<String>,
    /// Known failures that now pass.
    pub fixed: Vec<String>,
}

/// Runs files or directories of `.test` scripts; `known` is the known-failures list.
pub fn run_paths(paths: &[PathBuf], known: &BTreeSet<String>) -> Result<RunSummary, String> {
    run_paths_with(paths, known, RunOptions::default())
}

/// [`run_paths`] with settings.
pub fn run_paths_with(
    paths: &[PathBuf],
    known: &BTreeSet<String>,
    opts: RunOptions,
) -> Result<RunSummary, String> {
    let files = test_files(paths)?;
    let engine = conformance_engine();
    let mut reports = Vec::new();
    let mut text = String::new();
    let mut total = Counts::default();
    let mut groups: BTreeMap<Group, Counts> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut checks = Counts::default();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let body =
            std::fs::read_to_string(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let rep = run_script(&name, &body, &engine, opts)?;
        let c = rep.counts();
        let _ = writeln!(
            text,
            "{name}: {} passed, {} failed, {} skipped",
            c.passed, c.failed, c.skipped
        );
        for (g, gc) in rep.group_counts() {
            let _ = writeln!(
                text,
                "  {}: {} passed, {} failed, {} skipped",
                g.name(),
                gc.passed,
                gc.failed,
                gc.skipped
            );
            let e = groups.entry(g).or_default();
            e.passed += gc.passed;
            e.failed += gc.failed;
            e.skipped += gc.skipped;
        }
        for e in &rep.evals {
            for (check, o) in &e.checks {
                checks.add(o);
                let id = format!("{name}:{}:{check}", e.line);
                match o {
                    Outcome::Failed(why) => {
                        let tag = if known.contains(&id) { "known failure" } else { "FAIL" };
                        let _ = writeln!(text, "  {tag} {id}: {}\n    {why}", e.query);
                        if !known.contains(&id) && e.group == Group::Core {
                            unexpected.push(id);
                        }
                    }
                    Outcome::Passed if known.contains(&id) => fixed.push(id),
                    _ => {}
                }
            }
            let id = format!("{name}:{}", e.line);
            match &e.outcome {
                Outcome::Failed(why) => {
                    let tag = if known.contains(&id) { "known failure" } else { "FAIL" };
                    let first: Vec<&str> = why.lines().take(3).collect();
                    let _ =
                        writeln!(text, "  {tag} {id}: {}\n    {}", e.query, first.join("\n    "));
                    if !known.contains(&id) && e.group == Group::Core {
                        unexpected.push(id);
                    }
                }
                Outcome::Passed if known.contains(&id) => fixed.push(id),
                _ => {}
            }
        }
        total.passed += c.passed;
        total.failed += c.failed;
        total.skipped += c.skipped;
        reports.push(rep);
    }
    for (g, gc) in &groups {
        let run = gc.passed + gc.failed;
        let pct = if run == 0 { 0.0 } else { 100.0 * gc.passed as f64 / run as f64 };
        let _ = writeln!(
            text,
            "group {}: {} passed, {} failed, {} skipped ({pct:.1}% of run evals pass)",
            g.name(),
            gc.passed,
            gc.failed,
            gc.skipped
        );
    }
    let _ = writeln!(
        text,
        "implicit checks (@ step invariance, instant vs range): {} passed, {} failed",
        checks.passed, checks.failed
    );
    for id in &fixed {
        let _ = writeln!(text, "known failure now passes (remove it from the list): {id}");
    }
    let _ = writeln!(
        text,
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    Ok(RunSummary { files: reports, text, unexpected, fixed })
}

/// `basin promql-test [--known-failures FILE] [--experimental] FILE_OR_DIR...`: runs the
/// scripts and prints a report (`--experimental` also runs feature-flagged evals). With no paths, uses `$BASIN_CONFORMANCE_DIR`. Exit code 0 when every eval passed
/// (or, with a known-failures list, when every failure is listed), 1 otherwise, 2 for usage
/// or missing input.
pub fn run_cli(args: &[String]) -> i32 {
    let mut paths = Vec::new();
    let mut known_path = None;
    let mut opts = RunOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--known-failures" {
            match it.next() {
                Some(p) => known_path = Some(PathBuf::from(p)),
                None => {
                    eprintln!("--known-failures needs a file");
                    return 2;
                }
            }
        } else if a == "--experimental" {
            opts.run_experimental = true;
        } else if let Some(p) = a.strip_prefix("--known-failures=") {
            known_path = Some(PathBuf::from(p));
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    if paths.is_empty() {
        match std::env::var("BASIN_CONFORMANCE_DIR") {
            Ok(d) if !d.is_empty() => paths.push(PathBuf::from(d)),
            _ => {
                eprintln!(
                    "conformance directory not given: pass FILE_OR_DIR or set BASIN_CONFORMANCE_DIR"
                );
                return 2;
            }
        }
    }
    let known = match &known_path {
        Some(p) => match read_known(p) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        },
        None => BTreeSet::new(),
    };
    // Evaluation runs on its own thread with its own runtime, so the CLI works whether or not
    // the caller is inside an async runtime.
    let handle = std::thread::spawn(move || run_paths_with(&paths, &known, opts));
    let summary = match handle.join() {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("{e}");
            return 2;
        }
        Err(_) => {
            eprintln!("conformance runner panicked");
            return 2;
        }
    };
    print!("{}", summary.text);
    if !summary.unexpected.is_empty() {
        if known_path.is_some() {
            eprintln!("unexpected failures: {}", summary.unexpected.join(" "));
        }
        return 1;
    }
    0
}
