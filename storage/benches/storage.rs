//! Hot-path benchmarks: chunk encode/decode, write and select against real RocksDB.
//!
//! `cargo bench -p basin-storage [-- FILTER]`. A minimal harness (warm-up, then the median of
//! timed rounds) instead of criterion: criterion as a dev-dependency changes the feature set
//! of shared crates and makes cargo rebuild RocksDB's C++ (~8 min on 2 cores) for every test
//! build of this crate. On the small shared machines, prefer instruction counts
//! (`valgrind --tool=callgrind`) over wall time when comparing changes.

use basin_proto::matcher::wire;
use basin_proto::storage::{Label, MatchType, Sample, SelectRequest, Series, WriteRequest};
use basin_storage::{Storage, StorageConfig, codec};
use std::hint::black_box;
use std::time::{Duration, Instant};

const T0: i64 = 1_700_000_000_000;

/// Runs `f` for about `budget`, in rounds, and prints the median time per element.
fn bench(filter: &Option<String>, name: &str, elements: u64, mut f: impl FnMut()) {
    if filter.as_deref().is_some_and(|p| !name.contains(p)) {
        return;
    }
    let budget = Duration::from_millis(600);
    f();
    let once = {
        let t = Instant::now();
        f();
        t.elapsed().max(Duration::from_nanos(1))
    };
    let per_round = ((budget.as_nanos() / 20) / once.as_nanos()).max(1) as u32;
    let mut rounds: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed() / per_round
        })
        .collect();
    rounds.sort();
    let median = rounds[rounds.len() / 2];
    let per_elem = median.as_nanos() as f64 / elements as f64;
    println!(
        "{name:40} {median:>12.2?}/iter {per_elem:>10.1} ns/elem {:>12.0} elem/s",
        1e9 / per_elem
    );
}

fn counter(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample { timestamp_ms: T0 + i as i64 * 15_000, value: (i * 17 + i % 3) as f64 })
        .collect()
}

fn gauge(n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            timestamp_ms: T0 + i as i64 * 15_000 + (i % 5) as i64,
            value: 0.5 + (i as f64 * 0.37).sin() * 0.1,
        })
        .collect()
}

fn request(series: usize, t: i64) -> WriteRequest {
    WriteRequest {
        tenant: String::new(),
        series: (0..series)
            .map(|i| Series {
                labels: vec![
                    Label { name: "__name__".into(), value: "http_requests_total".into() },
                    Label {
                        name: "instance".into(),
                        value: format!("10.0.{}.{}:9100", i / 250, i % 250),
                    },
                    Label { name: "job".into(), value: "node".into() },
                ],
                samples: vec![Sample { timestamp_ms: t, value: i as f64 }],
            })
            .collect(),
    }
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (name, samples) in [("counter", counter(120)), ("gauge", gauge(120))] {
        let enc = codec::encode(&samples);
        println!("codec {name}: {:.2} bytes/sample", enc.len() as f64 / 120.0);
        bench(&filter, &format!("codec/encode_{name}_120"), 120, || {
            black_box(codec::encode(black_box(&samples)));
        });
        bench(&filter, &format!("codec/decode_{name}_120"), 120, || {
            black_box(codec::decode(black_box(&enc)).ok());
        });
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(StorageConfig {
        data_dir: dir.path().to_path_buf(),
        maintenance_interval: None,
        ..Default::default()
    })
    .expect("open");
    let mut t = T0;
    for _ in 0..120 {
        storage.write(&request(1000, t)).expect("write");
        t += 15_000;
    }
    let reqs: Vec<WriteRequest> = (0..4000).map(|k| request(1000, t + k * 15_000)).collect();
    let mut next = reqs.iter().cycle();
    bench(&filter, "engine/write_1000_existing_series", 1000, || {
        if let Some(r) = next.next() {
            storage.write(r).expect("write");
        }
    });
    let req = SelectRequest {
        tenant: String::new(),
        matchers: vec![
            wire(MatchType::Equal, "__name__", "http_requests_total"),
            wire(MatchType::Regex, "instance", "10\\.0\\.1\\..*"),
        ],
        start_ms: T0,
        end_ms: T0 + 1_800_000,
        ..Default::default()
    };
    let n = storage.select(&req).expect("select").iter().map(|s| s.samples.len()).sum::<usize>();
    bench(&filter, "engine/select_250_series_head", n as u64, || {
        black_box(storage.select(&req).expect("select"));
    });
    storage.flush().expect("flush");
    bench(&filter, "engine/select_250_series_chunks", n as u64, || {
        black_box(storage.select(&req).expect("select"));
    });
}
