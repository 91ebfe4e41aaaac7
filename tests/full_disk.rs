//! End-to-end: a full disk under `basin standalone`. The data directory is a small tmpfs;
//! remote_write fills it until writes fail, which must be a retryable status naming the full
//! disk (never 400, never a 2xx for data not stored) while reads and `/health` keep working;
//! then the tmpfs is grown and writes must succeed again without a restart, and every
//! acknowledged sample must read back (also after a `kill -9`, and after one while full).
//!
//! Needs root (it mounts a tmpfs): without it the tests fail and say so, they do not skip.

mod common;

use common::remote::{body, post, series};
use common::{Basin, get_json, http, vector};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000;

/// Size of the tmpfs the data directory starts on (room for RocksDB's files and ~25 requests
/// of the filler below), and after it is grown (RocksDB resumes writes once 16 MiB are free).
const SMALL: &str = "64m";
const LARGE: &str = "512m";

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("tests/full_disk.rs needs root and `mount` (util-linux) to mount a tmpfs");
        assert!(
            out.status.success(),
            "tests/full_disk.rs needs root to mount a tmpfs (CI runs it as root); \
             `mount -t tmpfs` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the basin process may still be exiting.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A request that fills the disk quickly: `n` new series with long label values (each
/// stored in the series entry and in every posting), plus one `acked` series naming the
/// request, so what was acknowledged can be counted back.
fn filler(req: usize, n: usize) -> Vec<u8> {
    let pad = "x".repeat(4000);
    let mut out = Vec::with_capacity(n + 1);
    let ts = T0 * 1000;
    for i in 0..n {
        let id = format!("{req}-{i}");
        out.push(series(&[("__name__", "filler"), ("id", &id), ("pad", &pad)], &[(ts, 1.0)]));
    }
    let r = req.to_string();
    out.push(series(&[("__name__", "acked"), ("req", &r)], &[(ts, req as f64)]));
    body(out)
}

/// The number of series `q` selects at `T0`.
fn count(basin: &Basin, q: &str) -> usize {
    let answer = basin.query(&format!("count({q})"), (T0 + 1) as f64);
    assert_eq!(answer["status"], "success", "count({q}): {answer}");
    vector(&answer).first().map_or(0, |v| v.1 as usize)
}

/// The request numbers whose `acked` series is stored.
fn stored_requests(basin: &Basin) -> BTreeSet<usize> {
    let answer = basin.query("acked", (T0 + 1) as f64);
    assert_eq!(answer["status"], "success", "acked: {answer}");
    vector(&answer).into_iter().map(|(_, v)| v as usize).collect()
}

/// What was sent: request number -> its filler series, for every request and for the
/// acknowledged ones.
#[derive(Default)]
struct Ledger {
    sent: BTreeMap<usize, usize>,
    acked: BTreeMap<usize, usize>,
}

impl Ledger {
    /// Sends request `req` with `n` filler series; returns the status and body.
    fn send(&mut self, basin: &Basin, req: usize, n: usize) -> (u16, String) {
        self.sent.insert(req, n);
        let (code, text) = post(&basin.url, filler(req, n), None);
        if (200..300).contains(&code) {
            self.acked.insert(req, n);
        }
        (code, text)
    }

    /// Every acknowledged request is stored whole: its `acked` series and all its `filler`
    /// series (a refused request may or may not be stored, but never in part).
    fn assert_stored(&self, basin: &Basin) {
        let stored = stored_requests(basin);
        let lost: Vec<_> = self.acked.keys().filter(|r| !stored.contains(r)).collect();
        assert!(lost.is_empty(), "acknowledged requests lost: {lost:?}");
        let want: usize = stored.iter().map(|r| self.sent[r]).sum();
        assert_eq!(count(basin, "filler"), want, "filler series of the stored requests");
        assert_eq!(count(basin, "before"), 1);
    }
}

fn df(path: &Path) -> String {
    let out = Command::new("df").arg("-h").arg(path).output().expect("df");
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string()
}

fn assert_disk_full_refusal(code: u16, text: &str) {
    assert!(
        code == 503 || code == 429,
        "a full disk must refuse writes with a retryable 503/429, got {code}: {text}"
    );
    assert!(text.contains("disk full"), "the refusal must name the full disk: {text}");
}

/// Starts Basin on a fresh small tmpfs, stores the `before` series, then fills the disk with
/// remote_write until a write is refused; checks the refusal (and that a small write is
/// refused too). The tmpfs comes first so that it is dropped (unmounted) after the process.
fn start_and_fill() -> (Tmpfs, Basin, Ledger) {
    let fs = Tmpfs::mount(SMALL);
    let data: PathBuf = fs.path().join("data");
    let basin = Basin::standalone(&data, &[]);

    // Data stored before the disk fills.
    common::remote::write(
        &basin.url,
        vec![series(&[("__name__", "before"), ("job", "a")], &[(T0 * 1000, 42.0)])],
    );

    // Fill the disk: requests of 200 new series (~1 MiB of labels each).
    let mut ledger = Ledger::default();
    let mut refusal = None;
    for req in 0..200 {
        let (code, text) = ledger.send(&basin, req, 200);
        if code != 204 {
            refusal = Some((code, text));
            break;
        }
    }
    let (code, text) = refusal.expect("the disk never filled: 200 requests of 200 series stored");
    eprintln!("refused after {} requests: {code} {text:?}; {}", ledger.acked.len(), df(fs.path()));
    assert!(ledger.acked.len() >= 3, "the disk filled too early to test anything: {code} {text}");
    assert_disk_full_refusal(code, &text);
    // A small write is refused too: the database stopped writing, it is not just out of room
    // for one big request.
    let (code, text) = ledger.send(&basin, 1000, 1);
    assert_disk_full_refusal(code, &text);
    (fs, basin, ledger)
}

#[test]
fn full_disk_refuses_writes_retryably_keeps_reads_and_recovers() {
    let started = Instant::now();
    let (fs, mut basin, mut ledger) = start_and_fill();

    // Reads of everything stored before, /health and /ready keep working.
    assert_eq!(vector(&basin.query("before", (T0 + 1) as f64))[0].1, 42.0);
    let answer = get_json(&basin.url, "/api/v1/series", &[("match[]", "before")]);
    assert_eq!(answer["status"], "success", "{answer}");
    assert_eq!(answer["data"].as_array().map(Vec::len), Some(1), "{answer}");
    let answer = get_json(&basin.url, "/api/v1/labels", &[]);
    assert_eq!(answer["status"], "success", "{answer}");
    assert!(answer["data"].as_array().expect("labels").iter().any(|l| l == "job"), "{answer}");
    ledger.assert_stored(&basin);
    let health = http().get(format!("{}/health", basin.url)).send().expect("/health");
    assert!(health.status().is_success(), "/health answered {}", health.status());
    let ready = http().get(format!("{}/ready", basin.url)).send().expect("/ready");
    assert!(ready.status().is_success(), "/ready answered {}", ready.status());

    // Free space: writes resume without a restart (RocksDB polls the free space every 5 s).
    fs.resize(LARGE);
    let freed = Instant::now();
    let mut req = 1001;
    loop {
        let (code, text) = ledger.send(&basin, req, 1);
        req += 1;
        if code == 204 {
            break;
        }
        assert_disk_full_refusal(code, &text);
        assert!(
            freed.elapsed() < Duration::from_secs(15),
            "writes did not resume within 15 s of freeing space: {code} {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("writes resumed {:?} after freeing space", freed.elapsed());
    for _ in 0..5 {
        let (code, text) = ledger.send(&basin, req, 100);
        req += 1;
        assert_eq!(code, 204, "write after recovery: {text}");
    }
    ledger.assert_stored(&basin);

    // And everything acknowledged survives a crash: kill -9, restart, read back.
    basin.kill9();
    basin.restart();
    ledger.assert_stored(&basin);
    eprintln!(
        "{} requests acknowledged, {} refused; {:?} in all",
        ledger.acked.len(),
        ledger.sent.len() - ledger.acked.len(),
        started.elapsed()
    );
}

#[test]
fn a_crash_while_the_disk_is_full_loses_nothing_acknowledged() {
    let (fs, mut basin, ledger) = start_and_fill();
    // kill -9 while full. RocksDB cannot open a database on a full disk (it writes files at
    // open), so space is freed before the restart, as an operator would.
    basin.kill9();
    fs.resize(LARGE);
    basin.restart();
    ledger.assert_stored(&basin);
    let (code, text) = post(&basin.url, filler(2000, 1), None);
    assert_eq!(code, 204, "write after the restart: {text}");
}
