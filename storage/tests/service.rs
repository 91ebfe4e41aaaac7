//! The node-facing surfaces: `LocalNode`, the gRPC service over loopback, the admin flush
//! endpoint and the metrics registration.

mod common;

use basin_proto::node::{GrpcStorageNode, StorageNode};
use basin_proto::storage::{LabelNamesRequest, SelectRequest, WriteRequest};
use basin_storage::{LocalNode, admin_router, grpc_service, register_metrics};
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn batch(n: usize) -> WriteRequest {
    WriteRequest {
        tenant: "t".into(),
        series: (0..n)
            .map(|i| {
                series(
                    &[("__name__", "m"), ("i", &format!("{i:05}"))],
                    &[(T0, i as f64), (T0 + 1, f64::from_bits(basin_proto::STALE_NAN_BITS))],
                )
            })
            .collect(),
    }
}

fn select_all() -> SelectRequest {
    select_req("t", vec![eq("__name__", "m")], T0, T0 + 1)
}

#[tokio::test]
async fn local_node_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let node = LocalNode::new(open(dir.path()));
    let r = node.write(batch(3)).await.unwrap();
    assert_eq!((r.samples_written, r.series_created), (6, 3));
    let got = node.select(select_all()).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].samples[1].value.to_bits(), basin_proto::STALE_NAN_BITS);
    let names = node
        .label_names(LabelNamesRequest { tenant: "t".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(names, ["__name__", "i"]);
    let err = node.select(select_req("t", vec![re("x", "(")], 0, 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn grpc_service_streams_large_selects() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(grpc_service(storage))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = GrpcStorageNode::new(&addr.to_string(), Duration::from_secs(10)).unwrap();
    // 40k series * 2 samples: more than one streamed message.
    let r = client.write(batch(40_000)).await.unwrap();
    assert_eq!(r.series_created, 40_000);
    let got = client.select(select_all()).await.unwrap();
    assert_eq!(got.len(), 40_000);
    assert_eq!(got[39_999].samples[0].value, 39_999.0);
    let mut bad = batch(1);
    bad.series[0].labels.reverse();
    let err = client.write(bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    server.abort();
}

#[tokio::test]
async fn admin_flush_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    storage.write(&batch(2)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = admin_router(std::sync::Arc::clone(&storage));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"POST /api/v1/admin/flush HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    server.abort();
    assert_eq!(storage.select(&select_all()).unwrap().len(), 2);

    let mut registry = prometheus_client::registry::Registry::default();
    register_metrics(&storage, &mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for want in [
        "basin_storage_samples_written_total 4",
        "basin_storage_series_created_total 2",
        "basin_storage_select_requests_total 1",
        "basin_storage_select_duration_seconds_bucket",
        "basin_storage_series 2",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
}
