//! Building and sending remote_write 1.0 requests from tests.

pub use basin_proto::remote::TimeSeries;
use basin_proto::remote::{Label, Sample, WriteRequest};
use prost::Message;

/// A series to send: labels and `(timestamp ms, value)` samples.
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label { name: n.to_string(), value: v.to_string() })
            .collect(),
        samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
    }
}

/// The snappy-compressed body of a WriteRequest.
pub fn body(series: Vec<TimeSeries>) -> Vec<u8> {
    let req = WriteRequest { timeseries: series, metadata: vec![] };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).expect("snappy")
}

/// POSTs a raw body to `<base>/api/v1/write`; returns the status and body text.
pub fn post(base: &str, body: Vec<u8>, tenant: Option<&str>) -> (u16, String) {
    let mut req = super::http()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().expect("POST /api/v1/write");
    let code = resp.status().as_u16();
    (code, resp.text().unwrap_or_default())
}

/// Writes series and asserts a 204.
pub fn write(base: &str, series: Vec<TimeSeries>) {
    let (code, text) = post(base, body(series), None);
    assert_eq!(code, 204, "remote_write answered {code}: {text}");
}
