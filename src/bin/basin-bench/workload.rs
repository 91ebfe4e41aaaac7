//! The synthetic node-exporter-like workload and its remote_write request bodies.
//!
//! Every "host" exports the same 100 series (the template below): CPU-seconds counters, byte
//! and event counters, memory, filesystem and load gauges, and an HTTP latency histogram with
//! `le` buckets plus `_sum` and `_count`. Values move the way real exporters' do: counters only
//! grow (CPU seconds in 0.01 s ticks, bytes and events as integers), memory gauges in 4 KiB
//! pages, load averages with two decimals, histogram buckets cumulative and consistent with
//! `_count`. Everything is drawn from a seeded generator per host, so two runs with the same
//! flags send byte-identical data whatever the concurrency.
//!
//! Requests are shaped like Prometheus' own: one sample per `TimeSeries`, `batch` series per
//! request, steps in time order; timestamps are spaced by the scrape interval with a fixed
//! per-host scrape offset and a few milliseconds of jitter, the last one at or before `end`.

use std::thread;

/// Series each host exports: the length of [`template`].
pub(crate) const SERIES_PER_HOST: usize = 100;
/// `node_cpu_seconds_total` series per host: the selector that matches half of all series.
pub(crate) const CPU_SERIES_PER_HOST: usize = 50;

const CPU_MODES: [&str; 10] =
    ["guest", "guest_nice", "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
const LE: [&str; 12] =
    ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
const HANDLERS: [&str; 2] = ["/api/v1/query", "/metrics"];
const JOBS: [&str; 4] = ["node-batch", "node-cache", "node-db", "node-web"];

/// How one series' value evolves from step to step.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// CPU seconds: grows by `share` × interval, in 0.01 s ticks.
    CpuSeconds { share: f64 },
    /// An integer counter (bytes, events) growing by about `rate` per second.
    Counter { rate: f64 },
    /// An integer gauge in 4 KiB pages, a random walk around `mean`.
    Memory { mean: f64 },
    /// Free space: slowly shrinking, in 4 KiB blocks.
    FsAvail { start: f64 },
    /// A load average with two decimals around `base`.
    Load { base: f64 },
    /// Cumulative bucket `le` of histogram `handler`.
    Bucket { handler: usize, le: usize },
    /// `_sum` of histogram `handler`.
    HistSum { handler: usize },
    /// `_count` of histogram `handler`.
    HistCount { handler: usize },
}

/// A series of the template: sorted labels (without the host's) and its kind.
struct SeriesDef {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    kind: Kind,
}

/// The 100 series of one host; `node_cpu_seconds_total` first.
fn template() -> Vec<SeriesDef> {
    let mut t = Vec::with_capacity(SERIES_PER_HOST);
    let def = |name, labels: &[(&'static str, &str)], kind| SeriesDef {
        name,
        labels: labels.iter().map(|&(n, v)| (n, v.to_string())).collect(),
        kind,
    };
    for cpu in 0..5 {
        for (m, mode) in CPU_MODES.iter().enumerate() {
            let share = [0.0, 0.0, 0.55, 0.04, 0.01, 0.002, 0.02, 0.001, 0.08, 0.25][m];
            let cpu = cpu.to_string();
            t.push(def(
                "node_cpu_seconds_total",
                &[("cpu", &cpu), ("mode", mode)],
                Kind::CpuSeconds { share },
            ));
        }
    }
    for (h, handler) in HANDLERS.iter().enumerate() {
        for (l, le) in LE.iter().enumerate() {
            t.push(def(
                "http_request_duration_seconds_bucket",
                &[("handler", handler), ("le", le)],
                Kind::Bucket { handler: h, le: l },
            ));
        }
        t.push(def(
            "http_request_duration_seconds_sum",
            &[("handler", handler)],
            Kind::HistSum { handler: h },
        ));
        t.push(def(
            "http_request_duration_seconds_count",
            &[("handler", handler)],
            Kind::HistCount { handler: h },
        ));
    }
    for device in ["eth0", "eth1"] {
        for (name, rate) in [
            ("node_network_receive_bytes_total", 2.0e6),
            ("node_network_transmit_bytes_total", 8.0e5),
        ] {
            t.push(def(name, &[("device", device)], Kind::Counter { rate }));
        }
    }
    for (mountpoint, start) in
        [("/", 2.0e10), ("/data", 4.0e11), ("/home", 5.0e10), ("/var", 1.5e10)]
    {
        t.push(def(
            "node_filesystem_avail_bytes",
            &[("device", "/dev/sda1"), ("fstype", "ext4"), ("mountpoint", mountpoint)],
            Kind::FsAvail { start },
        ));
    }
    for (name, mean) in [
        ("node_memory_Buffers_bytes", 3.0e8),
        ("node_memory_Cached_bytes", 6.0e9),
        ("node_memory_MemAvailable_bytes", 9.0e9),
        ("node_memory_MemFree_bytes", 2.0e9),
    ] {
        t.push(def(name, &[], Kind::Memory { mean }));
    }
    for (name, base) in [("node_load1", 1.2), ("node_load15", 1.0), ("node_load5", 1.1)] {
        t.push(def(name, &[], Kind::Load { base }));
    }
    for device in ["sda", "sdb"] {
        for (name, rate) in
            [("node_disk_read_bytes_total", 4.0e5), ("node_disk_written_bytes_total", 1.2e6)]
        {
            t.push(def(name, &[("device", device)], Kind::Counter { rate }));
        }
    }
    for (name, rate) in [
        ("node_context_switches_total", 9000.0),
        ("node_forks_total", 12.0),
        ("node_intr_total", 7000.0),
    ] {
        t.push(def(name, &[], Kind::Counter { rate }));
    }
    debug_assert_eq!(t.len(), SERIES_PER_HOST);
    t
}

/// SplitMix64: small, fast, and reproducible across platforms.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn gauss(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// Total series.
    pub(crate) series: usize,
    /// Samples per series.
    pub(crate) steps: usize,
    /// Scrape interval.
    pub(crate) interval_ms: i64,
    /// No timestamp is later than this.
    pub(crate) end_ms: i64,
    /// Seed of every random draw.
    pub(crate) seed: u64,
    /// Samples (= series, one sample each) per request.
    pub(crate) batch: usize,
}

impl Workload {
    pub(crate) fn samples(&self) -> usize {
        self.series * self.steps
    }

    /// Series matched by `node_cpu_seconds_total`.
    pub(crate) fn cpu_series(&self) -> usize {
        let full = self.series / SERIES_PER_HOST;
        full * CPU_SERIES_PER_HOST + (self.series % SERIES_PER_HOST).min(CPU_SERIES_PER_HOST)
    }

    /// Requests per time step: the series cut into batches.
    pub(crate) fn blocks_per_step(&self) -> usize {
        self.series.div_ceil(self.batch)
    }
}

/// One host's series: encoded labels and current values.
struct Host {
    /// Per series: the `labels` fields of a `TimeSeries`, already protobuf-encoded.
    labels: Vec<Vec<u8>>,
    kinds: Vec<Kind>,
    values: Vec<f64>,
    /// Cumulative bucket counts, `_sum` per handler.
    buckets: [[f64; LE.len()]; HANDLERS.len()],
    sums: [f64; HANDLERS.len()],
    rng: Rng,
    /// Scrape offset within the interval (ms before the step's nominal time).
    offset_ms: i64,
}

impl Host {
    fn new(index: usize, series: usize, template: &[SeriesDef], w: &Workload) -> Self {
        let mut rng = Rng(w.seed ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        let instance = format!("10.{}.{}.{}:9100", index >> 16, (index >> 8) & 255, index & 255);
        let cluster = format!("cluster-{}", index % 3);
        let job = JOBS[index % JOBS.len()];
        let mut labels = Vec::with_capacity(series);
        let mut kinds = Vec::with_capacity(series);
        let mut values = Vec::with_capacity(series);
        for def in &template[..series] {
            let mut set: Vec<(&str, &str)> = vec![
                ("__name__", def.name),
                ("cluster", &cluster),
                ("instance", &instance),
                ("job", job),
            ];
            set.extend(def.labels.iter().map(|(n, v)| (*n, v.as_str())));
            set.sort_unstable();
            let mut enc = Vec::with_capacity(128);
            for (name, value) in set {
                let mut label = Vec::with_capacity(name.len() + value.len() + 4);
                put_len_field(&mut label, 1, name.as_bytes());
                put_len_field(&mut label, 2, value.as_bytes());
                put_len_field(&mut enc, 1, &label);
            }
            labels.push(enc);
            kinds.push(def.kind);
            let start = match def.kind {
                Kind::CpuSeconds { share } => {
                    (share * 86_400.0 * rng.unit() * 30.0 * 100.0).round() / 100.0
                }
                Kind::Counter { rate } => (rate * 86_400.0 * rng.unit() * 10.0).round(),
                Kind::Memory { mean } => {
                    (mean * (0.8 + 0.4 * rng.unit()) / 4096.0).round() * 4096.0
                }
                Kind::FsAvail { start } => (start * (0.5 + rng.unit()) / 4096.0).round() * 4096.0,
                Kind::Load { base } => base,
                Kind::Bucket { .. } | Kind::HistSum { .. } | Kind::HistCount { .. } => 0.0,
            };
            values.push(start);
        }
        let offset_ms = 3 + (rng.next_u64() % (w.interval_ms as u64 - 3)) as i64;
        Self {
            labels,
            kinds,
            values,
            buckets: [[0.0; LE.len()]; HANDLERS.len()],
            sums: [0.0; HANDLERS.len()],
            rng,
            offset_ms,
        }
    }

    /// Advances every series by one scrape interval.
    fn step(&mut self, interval_s: f64) {
        self.step_histograms(interval_s);
        let rng = &mut self.rng;
        for (value, kind) in self.values.iter_mut().zip(&self.kinds) {
            *value = match *kind {
                Kind::CpuSeconds { share } => {
                    let used = share * interval_s * (1.0 + 0.3 * rng.gauss()).max(0.0);
                    ((*value + used) * 100.0).round() / 100.0
                }
                Kind::Counter { rate } => {
                    *value + (rate * interval_s * (1.0 + 0.4 * rng.gauss()).max(0.0)).round()
                }
                Kind::Memory { mean } => {
                    let pages =
                        (mean / 4096.0) * 0.002 * rng.gauss() + (mean - *value) / 4096.0 * 0.05;
                    (*value + pages.round() * 4096.0).max(4096.0)
                }
                Kind::FsAvail { .. } => {
                    let blocks = (rng.unit() * 30.0 - 20.0).round();
                    (*value + blocks * 4096.0).max(0.0)
                }
                Kind::Load { base } => {
                    let next = *value + 0.15 * rng.gauss() + (base - *value) * 0.1;
                    (next.max(0.0) * 100.0).round() / 100.0
                }
                Kind::Bucket { handler, le } => self.buckets[handler][le],
                Kind::HistSum { handler } => self.sums[handler],
                Kind::HistCount { handler } => self.buckets[handler][LE.len() - 1],
            };
        }
    }

    /// New requests for each histogram: latencies log-logistic around a per-handler median.
    fn step_histograms(&mut self, interval_s: f64) {
        for h in 0..HANDLERS.len() {
            let (rate, median) = [(40.0, 0.08), (0.2, 0.004)][h];
            let n = (rate * interval_s * (1.0 + 0.25 * self.rng.gauss()).max(0.0)).round();
            let median = median * (1.0 + 0.1 * self.rng.gauss()).max(0.2);
            for (l, le) in LE.iter().enumerate() {
                let fraction = match le.parse::<f64>() {
                    Ok(bound) => 1.0 / (1.0 + (-(bound / median).ln() / 0.6).exp()),
                    Err(_) => 1.0, // +Inf
                };
                self.buckets[h][l] += (n * fraction).round();
            }
            self.sums[h] += n * median * (1.0 + 0.05 * self.rng.gauss()).max(0.5);
        }
    }
}

/// Generates every request body (snappy-compressed `WriteRequest`s), in send order: steps in
/// time order, within a step the series in order, `batch` series per request.
pub(crate) fn generate(w: &Workload) -> Vec<Vec<u8>> {
    let template = template();
    let mut hosts: Vec<Host> = (0..w.series.div_ceil(SERIES_PER_HOST))
        .map(|i| {
            let series = (w.series - i * SERIES_PER_HOST).min(SERIES_PER_HOST);
            Host::new(i, series, &template, w)
        })
        .collect();
    let interval_s = w.interval_ms as f64 / 1000.0;
    let mut raw_bodies = Vec::with_capacity(w.steps * w.blocks_per_step());
    let mut body = Vec::new();
    let mut in_body = 0;
    let mut series_buf = Vec::with_capacity(256);
    for step in 0..w.steps {
        let nominal = w.end_ms - (w.steps - 1 - step) as i64 * w.interval_ms;
        for host in &mut hosts {
            host.step(interval_s);
            let jitter = (host.rng.next_u64() % 3) as i64;
            let ts = nominal - host.offset_ms + jitter;
            for (labels, &value) in host.labels.iter().zip(&host.values) {
                series_buf.clear();
                series_buf.extend_from_slice(labels);
                put_sample(&mut series_buf, value, ts);
                put_len_field(&mut body, 1, &series_buf);
                in_body += 1;
                if in_body == w.batch {
                    raw_bodies.push(std::mem::take(&mut body));
                    in_body = 0;
                }
            }
        }
        // A request never spans two steps, so a series' samples arrive in time order.
        if in_body > 0 {
            raw_bodies.push(std::mem::take(&mut body));
            in_body = 0;
        }
    }
    compress_all(raw_bodies)
}

/// Snappy-compresses the bodies on every core, keeping their order.
fn compress_all(raw: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = raw.len().div_ceil(threads).max(1);
    thread::scope(|s| {
        let handles: Vec<_> = raw
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut enc = snap::raw::Encoder::new();
                    part.iter()
                        .map(|b| enc.compress_vec(b).expect("snappy input under 4 GiB"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("compression thread panicked")).collect()
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, field: u64, payload: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Appends a `samples` field: `Sample { value = 1 (double), timestamp = 2 (int64) }`.
fn put_sample(out: &mut Vec<u8>, value: f64, ts: i64) {
    let mut sample = [0u8; 20];
    sample[0] = 1 << 3 | 1;
    sample[1..9].copy_from_slice(&value.to_le_bytes());
    sample[9] = 2 << 3;
    let mut len = 10;
    let mut v = ts as u64;
    while v >= 0x80 {
        sample[len] = (v as u8) | 0x80;
        v >>= 7;
        len += 1;
    }
    sample[len] = v as u8;
    put_len_field(out, 2, &sample[..=len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use basin_proto::remote::WriteRequest;
    use prost::Message;

    fn small() -> Workload {
        Workload {
            series: 250,
            steps: 3,
            interval_ms: 15_000,
            end_ms: 1_700_000_000_000,
            seed: 7,
            batch: 100,
        }
    }

    #[test]
    fn bodies_decode_with_prost_and_follow_the_template() {
        let w = small();
        let bodies = generate(&w);
        assert_eq!(bodies.len(), w.steps * w.blocks_per_step());
        let mut samples = 0;
        let mut cpu = 0;
        for b in &bodies {
            let raw = snap::raw::Decoder::new().decompress_vec(b).unwrap();
            let req = WriteRequest::decode(raw.as_slice()).unwrap();
            for ts in &req.timeseries {
                assert_eq!(ts.samples.len(), 1);
                assert!(ts.samples[0].timestamp <= w.end_ms);
                let names: Vec<_> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                let mut sorted = names.clone();
                sorted.sort_unstable();
                assert_eq!(names, sorted);
                cpu += usize::from(ts.labels[0].value == "node_cpu_seconds_total");
            }
            samples += req.timeseries.len();
        }
        assert_eq!(samples, w.samples());
        assert_eq!(cpu, w.cpu_series() * w.steps);
        assert_eq!(bodies, generate(&w), "same flags, same bytes");
    }
}
