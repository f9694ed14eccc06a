//! The programmatic API, in process: what the replayer's tests and `trace
//! demo` use.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{MockArgs, MockServer};

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn starts_serves_and_flushes_its_log_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("requests.jsonl");
    let args = MockArgs {
        ttft_ms: Some(0.0),
        itl_ms: Some(0.0),
        log_requests: Some(log.clone()),
        ..MockArgs::default()
    };
    let server = MockServer::start(args, local()).await.expect("starts");
    assert_ne!(server.addr.port(), 0);
    let body = reqwest::Client::new()
        .post(format!("{}/v1/completions", server.url()))
        .json(&serde_json::json!({"prompt": "hello", "max_tokens": 3, "stream": true}))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(server.requests_seen(), 1);
    server.shutdown().await.expect("shuts down");
    let text = std::fs::read_to_string(&log).expect("log");
    let rec: serde_json::Value = serde_json::from_str(text.trim()).expect("one record");
    assert_eq!(rec["status"], "ok");
    assert_eq!(rec["completion_tokens"], 3);
}

#[tokio::test]
async fn shutdown_cuts_a_stalled_stream() {
    let args = MockArgs {
        ttft_ms: Some(0.0),
        itl_ms: Some(0.0),
        faults: Some("stall=1".into()),
        ..MockArgs::default()
    };
    let server = MockServer::start(args, local()).await.expect("starts");
    let url = format!("{}/v1/completions", server.url());
    let client = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .json(&serde_json::json!({"prompt": "x", "max_tokens": 4, "stream": true}))
            .send()
            .await
            .expect("headers arrive");
        r.text().await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    server.shutdown().await.expect("shuts down");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        client.await.expect("task").is_err(),
        "the stalled body ends in an error"
    );
}
