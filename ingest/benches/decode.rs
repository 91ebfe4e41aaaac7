//! remote_write decoding: the zero-copy reader against the prost baseline.
//!
//! The body is what Prometheus sends: 2,000 node-exporter-like series per request, one
//! sample each, 7–9 labels per series. `cargo bench -p basin-ingest --bench decode`; on the
//! small shared machines compare runs made back to back, or use instruction counts
//! (`valgrind --tool=callgrind`) when wall time is too noisy.

use basin_ingest::decode::{DecodeLimits, decode_write_request, decode_write_request_prost};
use basin_proto::remote::{Label, Sample, TimeSeries, WriteRequest};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::hint::black_box;

const SERIES: usize = 2000;

/// A snappy-compressed request of `SERIES` series with one sample each.
fn request(replica_label: bool) -> Vec<u8> {
    let metrics = ["node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1"];
    let timeseries = (0..SERIES)
        .map(|i| {
            let mut labels = vec![
                ("__name__", metrics[i % metrics.len()].to_string()),
                ("cluster", format!("cluster-{}", i % 3)),
                ("cpu", (i % 16).to_string()),
                ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                ("job", "node-exporter".to_string()),
                ("mode", ["idle", "user", "system", "iowait"][i % 4].to_string()),
                ("namespace", "monitoring".to_string()),
            ];
            if replica_label {
                labels.push(("prometheus_replica", "prometheus-0".to_string()));
            }
            TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| Label { name: name.to_string(), value })
                    .collect(),
                samples: vec![Sample {
                    value: i as f64 * 1.37,
                    timestamp: 1_700_000_000_000 + i as i64,
                }],
            }
        })
        .collect();
    let raw = WriteRequest { timeseries, metadata: vec![] }.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).expect("snappy compression of a small buffer")
}

fn decode_benches(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let drop = ["prometheus_replica".to_string()];
    let mut g = c.benchmark_group("remote_write_decode");
    g.throughput(Throughput::Elements(SERIES as u64));
    for (name, body, drop) in
        [("plain", request(false), &[][..]), ("ha_replica_dropped", request(true), &drop[..])]
    {
        g.bench_function(format!("fast_{name}"), |b| {
            b.iter(|| decode_write_request(black_box(&body), &limits, drop))
        });
        g.bench_function(format!("prost_{name}"), |b| {
            b.iter(|| decode_write_request_prost(black_box(&body), &limits, drop))
        });
    }
    g.finish();
}

criterion_group!(benches, decode_benches);
criterion_main!(benches);
