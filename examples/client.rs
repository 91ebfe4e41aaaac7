//! A minimal client of Basin's public gRPC API (`proto/proto/client.proto`): writes a few
//! samples through `basin.client.v1.Ingest` and reads them back through
//! `basin.client.v1.Query`.
//!
//! ```text
//! basin standalone --grpc-listen 127.0.0.1:9301 &
//! cargo run --example client -- http://127.0.0.1:9301 [tenant]
//! ```
//!
//! In a cluster, pass the gateway's and the query node's gRPC addresses:
//! `cargo run --example client -- http://gateway:9301 tenant http://query:9302`.

use basin_proto::client::ingest_client::IngestClient;
use basin_proto::client::query_client::QueryClient;
use basin_proto::client::{
    Label, LabelValuesRequest, QueryRangeRequest, QueryRequest, Sample, TimeSeries, WriteRequest,
};
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Request;
use tonic::metadata::MetadataValue;

/// Adds the tenant to a request when one is given (the gateway's `--tenant-header`,
/// lower-cased, names the metadata entry).
fn with_tenant<T>(msg: T, tenant: Option<&str>) -> anyhow::Result<Request<T>> {
    let mut req = Request::new(msg);
    if let Some(t) = tenant {
        req.metadata_mut().insert("x-scope-orgid", MetadataValue::try_from(t)?);
    }
    Ok(req)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ingest_url = args.next().unwrap_or_else(|| "http://127.0.0.1:9301".into());
    let tenant = args.next().filter(|t| !t.is_empty());
    let query_url = args.next().unwrap_or_else(|| ingest_url.clone());
    let tenant = tenant.as_deref();

    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let label = |n: &str, v: &str| Label { name: n.into(), value: v.into() };
    // Ten samples, 1 s apart, of one counter.
    let series = TimeSeries {
        labels: vec![label("__name__", "example_requests_total"), label("job", "example")],
        samples: (0..10)
            .map(|i| Sample { timestamp_ms: now - (9 - i) * 1000, value: (i * 5) as f64 })
            .collect(),
    };

    let mut ingest = IngestClient::connect(ingest_url).await?;
    // OK means every sample is durable on its replicas; UNAVAILABLE or RESOURCE_EXHAUSTED
    // mean "retry later", INVALID_ARGUMENT means "fix the data".
    let written = ingest.write(with_tenant(WriteRequest { series: vec![series] }, tenant)?).await?;
    println!("wrote {} samples of {} series", written.get_ref().samples, written.get_ref().series);

    let mut query = QueryClient::connect(query_url).await?;
    let instant = query
        .query(with_tenant(
            QueryRequest { query: "example_requests_total".into(), time_ms: now, timeout_ms: 0 },
            tenant,
        )?)
        .await?
        .into_inner();
    for s in &instant.series {
        let labels: Vec<String> =
            s.labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
        println!("{{{}}} = {:?}", labels.join(", "), s.samples.first().map(|p| p.value));
    }
    let range = query
        .query_range(with_tenant(
            QueryRangeRequest {
                query: "rate(example_requests_total[5s])".into(),
                start_ms: now - 4_000,
                end_ms: now,
                step_ms: 1_000,
                timeout_ms: 10_000,
            },
            tenant,
        )?)
        .await?
        .into_inner();
    for s in &range.series {
        let points: Vec<f64> = s.samples.iter().map(|p| p.value).collect();
        println!("rate over the last 4 s: {points:?}");
    }
    let jobs = query
        .label_values(with_tenant(
            LabelValuesRequest { name: "job".into(), ..LabelValuesRequest::default() },
            tenant,
        )?)
        .await?
        .into_inner();
    println!("jobs: {:?}", jobs.values);
    if !instant.warnings.is_empty() {
        println!("warnings: {:?}", instant.warnings);
    }
    Ok(())
}
