//! The ingest phase: concurrent remote_write senders.
//!
//! Senders take requests from one queue in time order. Like Prometheus' shards, they keep
//! every series in order: request `i` waits until request `i - blocks_per_step` (the same
//! series, one step earlier) has been acknowledged, so even a store that rejects out-of-order
//! samples (Prometheus) accepts the whole run. Failed requests are retried the way
//! Prometheus retries them: 5xx, 429 and connection errors with backoff, 4xx never.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Retries of one request before the run is declared failed.
const MAX_RETRIES: u32 = 10;

/// Outcome of the ingest phase.
#[derive(Debug, Default)]
pub(crate) struct SendStats {
    /// From the first request sent to the last one acknowledged.
    pub(crate) wall: Duration,
    /// Requests answered with a non-retryable error (4xx).
    pub(crate) rejected: usize,
    /// Retries made (5xx, 429, connection errors).
    pub(crate) retries: usize,
    /// The first error seen, for the report.
    pub(crate) first_error: Option<String>,
}

/// Sends every body to `url` with `concurrency` senders.
pub(crate) fn send_all(
    url: &str,
    bodies: &[Vec<u8>],
    blocks_per_step: usize,
    concurrency: usize,
) -> anyhow::Result<SendStats> {
    let next = AtomicUsize::new(0);
    let done: Vec<AtomicBool> = bodies.iter().map(|_| AtomicBool::new(false)).collect();
    let stats = Mutex::new(SendStats::default());
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    thread::scope(|s| -> anyhow::Result<()> {
        let senders: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(120))
                        .build()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bodies.len() || failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        if let Some(prev) = i.checked_sub(blocks_per_step) {
                            while !done[prev].load(Ordering::Acquire) {
                                if failed.load(Ordering::Relaxed) {
                                    return Ok(());
                                }
                                thread::sleep(Duration::from_micros(200));
                            }
                        }
                        let result = send_one(&client, url, &bodies[i], &stats);
                        done[i].store(true, Ordering::Release);
                        if let Err(e) = result {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
        }
        Ok(())
    })?;
    let mut stats = stats.into_inner().map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
    stats.wall = start.elapsed();
    Ok(stats)
}

/// Sends one request, retrying what a retry can fix. A 4xx is counted, not fatal.
fn send_one(
    client: &reqwest::blocking::Client,
    url: &str,
    body: &[u8],
    stats: &Mutex<SendStats>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(50);
    for attempt in 0..=MAX_RETRIES {
        let response = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("User-Agent", "basin-bench")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.to_vec())
            .send();
        let error = match response {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                let status = r.status();
                let text = r.text().unwrap_or_default();
                record(stats, |s| {
                    s.rejected += 1;
                    s.first_error.get_or_insert_with(|| format!("{status}: {}", text.trim()));
                });
                return Ok(());
            }
            Ok(r) => format!("{}: {}", r.status(), r.text().unwrap_or_default().trim()),
            Err(e) => e.to_string(),
        };
        if attempt == MAX_RETRIES {
            anyhow::bail!("POST {url} failed {} times, last: {error}", MAX_RETRIES + 1);
        }
        record(stats, |s| {
            s.retries += 1;
            s.first_error.get_or_insert(error);
        });
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    Ok(())
}

fn record(stats: &Mutex<SendStats>, f: impl FnOnce(&mut SendStats)) {
    // A poisoned lock only means another sender panicked; its counts are still usable.
    let mut guard = stats.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard);
}
