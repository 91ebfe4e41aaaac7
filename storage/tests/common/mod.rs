//! Shared helpers for the storage integration tests (real RocksDB in a temp dir).

#![allow(dead_code, unreachable_pub)]

use basin_proto::matcher::wire;
use basin_proto::storage::{
    Label, MatchType, Matcher, Sample, SelectRequest, Series, WriteRequest,
};
use basin_storage::{Storage, StorageConfig};
use std::path::Path;
use std::sync::Arc;

/// 2023-11-14T22:13:20Z, a fixed time for tests without retention.
pub const T0: i64 = 1_700_000_000_000;
pub const DAY: i64 = 86_400_000;

pub fn config(dir: &Path) -> StorageConfig {
    StorageConfig { data_dir: dir.to_path_buf(), maintenance_interval: None, ..Default::default() }
}

pub fn open(dir: &Path) -> Arc<Storage> {
    Storage::open(config(dir)).expect("open storage")
}

/// Labels from pairs, sorted by name.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    let mut l: Vec<Label> =
        pairs.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect();
    l.sort_by(|a, b| a.name.cmp(&b.name));
    l
}

pub fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series {
        labels: labels(pairs),
        samples: samples.iter().map(|&(t, v)| Sample { timestamp_ms: t, value: v }).collect(),
    }
}

pub fn write(st: &Storage, tenant: &str, s: Vec<Series>) {
    st.write(&WriteRequest { tenant: tenant.into(), series: s }).expect("write");
}

pub fn eq(n: &str, v: &str) -> Matcher {
    wire(MatchType::Equal, n, v)
}
pub fn ne(n: &str, v: &str) -> Matcher {
    wire(MatchType::NotEqual, n, v)
}
pub fn re(n: &str, v: &str) -> Matcher {
    wire(MatchType::Regex, n, v)
}
pub fn nre(n: &str, v: &str) -> Matcher {
    wire(MatchType::NotRegex, n, v)
}

pub fn select_req(tenant: &str, matchers: Vec<Matcher>, start: i64, end: i64) -> SelectRequest {
    SelectRequest {
        tenant: tenant.into(),
        matchers,
        start_ms: start,
        end_ms: end,
        ..Default::default()
    }
}

pub fn select(
    st: &Storage,
    tenant: &str,
    matchers: Vec<Matcher>,
    start: i64,
    end: i64,
) -> Vec<Series> {
    st.select(&select_req(tenant, matchers, start, end)).expect("select")
}

/// `(timestamp, value bits)` of a series' samples, for bit-exact comparisons.
pub fn bits(s: &Series) -> Vec<(i64, u64)> {
    s.samples.iter().map(|x| (x.timestamp_ms, x.value.to_bits())).collect()
}
