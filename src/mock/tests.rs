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

#[tokio::test]
async fn lora_adapters_are_listed_accepted_and_named_in_replies() {
    let args = MockArgs {
        model: Some("base".into()),
        lora: vec!["sql-lora".into()],
        ttft_ms: Some(0.0),
        itl_ms: Some(0.0),
        ..MockArgs::default()
    };
    let server = MockServer::start(args, local()).await.expect("starts");
    let client = reqwest::Client::new();
    let list: serde_json::Value = client
        .get(format!("{}/v1/models", server.url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["base", "sql-lora"]);
    assert_eq!(list["data"][1]["parent"], "base");
    let ask = |model: &'static str| {
        let client = client.clone();
        let url = format!("{}/v1/chat/completions", server.url());
        async move {
            let r = client
                .post(url)
                .json(&serde_json::json!({
                    "model": model, "max_tokens": 2, "stream": false,
                    "messages": [{"role": "user", "content": "hi"}]
                }))
                .send()
                .await
                .expect("sent");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("json");
            (status, body)
        }
    };
    let (status, body) = ask("sql-lora").await;
    assert_eq!((status, body["model"].as_str()), (200, Some("sql-lora")));
    let (status, body) = ask("base").await;
    assert_eq!((status, body["model"].as_str()), (200, Some("base")));
    let (status, _) = ask("other-lora").await;
    assert_eq!(status, 404);
    server.shutdown().await.expect("shuts down");
}
