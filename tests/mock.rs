//! Integration tests: `trace mock`, the real binary on 127.0.0.1 driven by a
//! real HTTP client (reqwest).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::util::{tempdir, trace_bin};

/// A `trace mock` process listening on a free port; killed when dropped.
pub struct MockProcess {
    child: Child,
    pub url: String,
}

impl MockProcess {
    /// Starts `trace mock --port 0 ARGS...` and waits for its address.
    pub fn start(args: &[&str]) -> MockProcess {
        let mut child = Command::new(trace_bin())
            .arg("mock")
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("trace mock starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the address line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        MockProcess { child, url }
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(self) {
        self.stop_with("TERM");
    }

    /// Sends the signal (`TERM`, `INT`) and waits for a clean exit.
    pub fn stop_with(mut self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("mock exits");
        assert!(exit.success(), "trace mock exited with {exit}");
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn chat(prompt: &str, max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": "mock",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

/// The `data:` payloads of an SSE body, in order.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {e:?}"))
                .to_string()
        })
        .collect()
}

/// A parsed stream: content pieces, finish reason, usage, whether [DONE] came.
#[derive(Debug, Default)]
struct Parsed {
    content: Vec<String>,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
    bad_lines: usize,
}

fn parse_stream(body: &str, chat: bool) -> Parsed {
    let mut p = Parsed::default();
    for e in events(body) {
        if e == "[DONE]" {
            p.done = true;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e) else {
            p.bad_lines += 1;
            continue;
        };
        if !v["usage"].is_null() {
            p.usage = Some(v["usage"].clone());
        }
        if let Some(choice) = v["choices"].get(0) {
            let text = if chat {
                &choice["delta"]["content"]
            } else {
                &choice["text"]
            };
            if let Some(t) = text.as_str()
                && !t.is_empty()
            {
                p.content.push(t.to_string());
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                p.finish = Some(f.to_string());
            }
        }
    }
    p
}

/// Prometheus text → sample name with labels → value; fails on a bad line.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(key.to_string(), value);
    }
    out
}

async fn metrics(mock: &MockProcess) -> HashMap<String, f64> {
    let text = client()
        .get(mock.endpoint("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    parse_metrics(&text)
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("log exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

#[tokio::test]
async fn streams_chat_and_completions_with_usage() {
    let mock = MockProcess::start(&["--ttft-ms", "0", "--itl-ms", "1"]);
    let c = client();
    let r = c
        .post(mock.endpoint("/v1/chat/completions"))
        .json(&chat("Hello, how are you today?", 7, true))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.expect("body");
    let all = events(&body);
    // 7 tokens, the finish chunk, the usage chunk, [DONE].
    assert_eq!(all.len(), 10, "{body}");
    let first: Value = serde_json::from_str(&all[0]).expect("json");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let p = parse_stream(&body, true);
    assert_eq!(p.content.len(), 7);
    assert_eq!(p.finish.as_deref(), Some("length"));
    assert!(p.done);
    let usage = p.usage.expect("usage chunk");
    assert_eq!(usage["completion_tokens"], 7);
    // 25 bytes, ceil(25 / 4) = 7 prompt tokens.
    assert_eq!(usage["prompt_tokens"], 7);
    assert_eq!(usage["total_tokens"], 14);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);

    // Completions, streaming, without include_usage: no usage chunk.
    let body = c
        .post(mock.endpoint("/v1/completions"))
        .json(&json!({"prompt": "Once upon a time", "max_tokens": 5, "stream": true}))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let p = parse_stream(&body, false);
    assert_eq!(p.content.len(), 5);
    assert!(p.usage.is_none());
    assert!(p.done);

    // Non-streaming, both endpoints.
    let v: Value = c
        .post(mock.endpoint("/v1/chat/completions"))
        .json(&chat("Hi", 3, false))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], " the of and");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let v: Value = c
        .post(mock.endpoint("/v1/completions"))
        .json(&json!({"prompt": [1, 2, 3, 4, 5], "max_completion_tokens": 2}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn eos_after_stops_early_unless_ignore_eos() {
    let mock = MockProcess::start(&["--ttft-ms", "0", "--itl-ms", "0", "--eos-after", "4"]);
    let c = client();
    let ask = |body: Value| {
        let c = c.clone();
        let url = mock.endpoint("/v1/completions");
        async move {
            let v: Value = c
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("sent")
                .json()
                .await
                .expect("json");
            (
                v["usage"]["completion_tokens"].as_u64(),
                v["choices"][0]["finish_reason"].clone(),
            )
        }
    };
    let (n, f) = ask(json!({"prompt": "x", "max_tokens": 10})).await;
    assert_eq!((n, f.as_str()), (Some(4), Some("stop")));
    let (n, f) = ask(json!({"prompt": "x", "max_tokens": 10, "ignore_eos": true})).await;
    assert_eq!((n, f.as_str()), (Some(10), Some("length")));
    let (n, _) = ask(json!({"prompt": "x", "max_tokens": 10, "min_tokens": 6})).await;
    assert_eq!(n, Some(6));
    let (n, f) = ask(json!({"prompt": "x", "max_tokens": 3})).await;
    assert_eq!((n, f.as_str()), (Some(3), Some("length")));
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mock = MockProcess::start(&[
        "--model",
        "served",
        "--api-key",
        "sekret",
        "--max-model-len",
        "100",
    ]);
    let c = client();
    let url = mock.endpoint("/v1/chat/completions");
    let send = |body: String, key: Option<&str>| {
        let mut r = c
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move {
            let r = r.send().await.expect("sent");
            let status = r.status().as_u16();
            let v: Value = r.json().await.expect("a JSON body");
            (status, v)
        }
    };
    let ok = json!({"model": "served", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1});
    let (s, v) = send(ok.to_string(), None).await;
    assert_eq!(s, 401);
    assert!(v["error"]["message"].is_string());
    let (s, _) = send(ok.to_string(), Some("wrong")).await;
    assert_eq!(s, 401);
    let (s, v) = send(ok.to_string(), Some("sekret")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = send("{\"messages\": [".into(), Some("sekret")).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (s, v) = send(json!({"model": "served"}).to_string(), Some("sekret")).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("messages")
    );
    let (s, _) = send(
        json!({"model": "served", "messages": [{"content": "x"}], "max_tokens": "many"})
            .to_string(),
        Some("sekret"),
    )
    .await;
    assert_eq!(s, 400);
    let (s, v) = send(
        json!({"model": "other", "messages": [{"content": "x"}]}).to_string(),
        Some("sekret"),
    )
    .await;
    assert_eq!(s, 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("other")
    );
    let (s, _) = send(
        json!({"model": "served", "messages": [{"content": "x"}], "max_tokens": 1000}).to_string(),
        Some("sekret"),
    )
    .await;
    assert_eq!(s, 400, "beyond --max-model-len");
    // Unknown path and wrong method: JSON errors too.
    let r = c
        .get(mock.endpoint("/v2/nothing"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 404);
    let _: Value = r.json().await.expect("json");
    let r = c
        .get(&url)
        .bearer_auth("sekret")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 405);
    // Health and metrics need no key; models does.
    assert_eq!(
        c.get(mock.endpoint("/health"))
            .send()
            .await
            .expect("sent")
            .status(),
        200
    );
    assert_eq!(
        c.get(mock.endpoint("/metrics"))
            .send()
            .await
            .expect("sent")
            .status(),
        200
    );
    assert_eq!(
        c.get(mock.endpoint("/v1/models"))
            .send()
            .await
            .expect("sent")
            .status(),
        401
    );
    let v: Value = c
        .get(mock.endpoint("/v1/models"))
        .bearer_auth("sekret")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(v["data"][0]["id"], "served");
}

#[tokio::test]
async fn metrics_parse_in_every_flavor() {
    for (flavor, names) in [
        (
            "vllm",
            &[
                "vllm:num_requests_running{model_name=\"mock\"}",
                "vllm:num_requests_waiting{model_name=\"mock\"}",
                "vllm:kv_cache_usage_perc{model_name=\"mock\"}",
                "vllm:prefix_cache_queries_total{model_name=\"mock\"}",
                "vllm:prefix_cache_hits_total{model_name=\"mock\"}",
                "vllm:prompt_tokens_total{model_name=\"mock\"}",
                "vllm:generation_tokens_total{model_name=\"mock\"}",
                "vllm:time_to_first_token_seconds_count{model_name=\"mock\"}",
                "vllm:inter_token_latency_seconds_count{model_name=\"mock\"}",
                "vllm:e2e_request_latency_seconds_count{model_name=\"mock\"}",
            ][..],
        ),
        (
            "sglang",
            &[
                "sglang:num_running_reqs{model_name=\"mock\"}",
                "sglang:num_queue_reqs{model_name=\"mock\"}",
                "sglang:token_usage{model_name=\"mock\"}",
                "sglang:cache_hit_rate{model_name=\"mock\"}",
                "sglang:generation_tokens_total{model_name=\"mock\"}",
                "sglang:time_to_first_token_seconds_count{model_name=\"mock\"}",
            ][..],
        ),
        (
            "tgi",
            &[
                "tgi_queue_size",
                "tgi_batch_current_size",
                "tgi_request_count",
                "tgi_request_duration_count",
            ][..],
        ),
        (
            "llamacpp",
            &[
                "llamacpp:prompt_tokens_total",
                "llamacpp:tokens_predicted_total",
                "llamacpp:requests_processing",
                "llamacpp:requests_deferred",
                "llamacpp:kv_cache_usage_ratio",
            ][..],
        ),
    ] {
        let mock = MockProcess::start(&[
            "--metrics-flavor",
            flavor,
            "--ttft-ms",
            "0",
            "--itl-ms",
            "0",
        ]);
        let r = client()
            .post(mock.endpoint("/v1/chat/completions"))
            .json(&chat("count me", 3, true))
            .send()
            .await
            .expect("sent");
        r.text().await.expect("body");
        let m = metrics(&mock).await;
        for name in names {
            assert!(m.contains_key(*name), "{flavor}: no {name} in {m:?}");
        }
        let generated = m
            .iter()
            .find(|(k, _)| {
                k.starts_with("vllm:generation_tokens_total")
                    || k.starts_with("sglang:generation_tokens_total")
                    || k.starts_with("llamacpp:tokens_predicted_total")
                    || k.starts_with("tgi_request_generated_tokens_sum")
            })
            .map(|(_, v)| *v);
        assert_eq!(generated, Some(3.0), "{flavor}");
    }
}

#[tokio::test]
async fn repeated_prompt_hits_the_prefix_cache() {
    let mock = MockProcess::start(&["--ttft-ms", "0", "--itl-ms", "0"]);
    let c = client();
    let prompt = "The quick brown fox jumps over the lazy dog. ".repeat(40); // 1800 bytes, 450 tokens
    let mut cached = Vec::new();
    for _ in 0..2 {
        let v: Value = c
            .post(mock.endpoint("/v1/chat/completions"))
            .json(&chat(&prompt, 2, false))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        cached.push(
            v["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .expect("cached"),
        );
    }
    assert_eq!(cached[0], 0);
    // 450 tokens: 28 full 16-token blocks, all reusable.
    assert_eq!(cached[1], 448);
    let m = metrics(&mock).await;
    assert_eq!(
        m["vllm:prefix_cache_hits_total{model_name=\"mock\"}"],
        448.0
    );
    assert_eq!(
        m["vllm:prefix_cache_queries_total{model_name=\"mock\"}"],
        900.0
    );
}

#[tokio::test]
async fn evicted_prefix_comes_back_from_the_external_tier() {
    // A fast tier of 25 blocks holds one prompt; the external tier holds more.
    let mock = MockProcess::start(&[
        "--gpu-blocks",
        "25",
        "--cpu-blocks",
        "1000",
        "--prefill-tps",
        "1000",
        "--external-tps",
        "100000",
        "--decode-step-ms",
        "1",
        "--decode-ms-per-seq",
        "0",
    ]);
    let c = client();
    let a = "a".repeat(4 * 16 * 25);
    let b = "b".repeat(4 * 16 * 25);
    let mut seen = Vec::new();
    for p in [&a, &b, &a] {
        let t = Instant::now();
        let v: Value = c
            .post(mock.endpoint("/v1/completions"))
            .json(&json!({"prompt": p, "max_tokens": 1}))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        seen.push((
            v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
            t.elapsed(),
        ));
    }
    assert_eq!(seen[0].0, Some(0));
    assert_eq!(seen[1].0, Some(0));
    // Block 25 is the last one (always computed), so 24 blocks come back.
    assert_eq!(seen[2].0, Some(24 * 16));
    // 400 tokens at 1000/s take 400 ms; loading 384 from the external tier is much cheaper.
    assert!(seen[0].1 >= Duration::from_millis(400));
    assert!(seen[2].1 < seen[0].1, "{seen:?}");
    let m = metrics(&mock).await;
    assert_eq!(
        m["vllm:external_prefix_cache_hits_total{model_name=\"mock\"}"],
        384.0
    );
    assert_eq!(m["vllm:prefix_cache_hits_total{model_name=\"mock\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_running_makes_requests_wait() {
    let mock = MockProcess::start(&["--max-running", "2", "--ttft-ms", "0", "--itl-ms", "40"]);
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let c = c.clone();
        let url = mock.endpoint("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let body = c
                .post(url)
                .json(&chat("hi", 10, true))
                .send()
                .await
                .expect("sent")
                .text()
                .await
                .expect("body");
            parse_stream(&body, true).content.len()
        }));
    }
    // Poll /metrics until the queue shows (the six requests take ~1.2 s in all).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while Instant::now() < deadline {
        let m = metrics(&mock).await;
        let running = m["vllm:num_requests_running{model_name=\"mock\"}"];
        let waiting = m["vllm:num_requests_waiting{model_name=\"mock\"}"];
        assert!(running <= 2.0, "more running than --max-running: {running}");
        if waiting >= 1.0 {
            seen = Some((running, waiting));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (running, waiting) = seen.expect("waiting requests visible in /metrics");
    assert_eq!(running, 2.0);
    assert!(waiting >= 1.0);
    for t in tasks {
        assert_eq!(t.await.expect("task"), 10);
    }
    let m = metrics(&mock).await;
    assert_eq!(m["vllm:num_requests_waiting{model_name=\"mock\"}"], 0.0);
    assert_eq!(m["vllm:num_requests_running{model_name=\"mock\"}"], 0.0);
    // Queue time was recorded for the waiters: some observations above 0.3 s.
    assert!(m["vllm:request_queue_time_seconds_bucket{le=\"0.3\",model_name=\"mock\"}"] < 6.0);
}

/// Sends one streaming chat request with `x-mock-fault: KIND`.
async fn faulty(
    mock: &MockProcess,
    kind: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let r = client()
        .post(mock.endpoint("/v1/chat/completions"))
        .header("x-mock-fault", kind)
        .timeout(timeout)
        .json(&chat("fault drill", 8, true))
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| format!("body: {e:?}"))?;
    Ok((status, body))
}

#[tokio::test]
async fn every_fault_kind_reaches_the_client() {
    let dir = tempdir();
    let log = dir.path().join("log.jsonl");
    let log_arg = log.to_str().expect("utf8 path");
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "0",
        "--itl-ms",
        "1",
        "--stall-ms",
        "60000",
        "--log-requests",
        log_arg,
    ]);
    let t = Duration::from_secs(5);
    for (code, kind) in [(429, "429"), (500, "500"), (503, "503")] {
        let (status, body) = faulty(&mock, kind, t).await.expect("answered");
        assert_eq!(status, code);
        let v: Value = serde_json::from_str(&body).expect("JSON error body");
        assert!(v["error"]["message"].is_string());
    }
    let err = faulty(&mock, "reset", t)
        .await
        .expect_err("reset mid-stream");
    assert!(err.starts_with("body"), "{err}");
    let started = Instant::now();
    let err = faulty(&mock, "stall", Duration::from_millis(500))
        .await
        .expect_err("stall");
    assert!(
        err.contains("TimedOut") || err.contains("timed out") || err.contains("Timeout"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let (_, body) = faulty(&mock, "malformed", t).await.expect("answered");
    let p = parse_stream(&body, true);
    assert_eq!(p.bad_lines, 1);
    assert_eq!(p.content.len(), 8);
    assert!(p.done);
    let (_, body) = faulty(&mock, "no-done", t).await.expect("answered");
    let p = parse_stream(&body, true);
    assert!(!p.done);
    assert_eq!(p.content.len(), 8);
    assert!(p.usage.is_some());
    let (_, body) = faulty(&mock, "usage-missing", t).await.expect("answered");
    let p = parse_stream(&body, true);
    assert!(p.usage.is_none() && p.done);
    let (_, body) = faulty(&mock, "usage-wrong", t).await.expect("answered");
    let p = parse_stream(&body, true);
    let usage = p.usage.expect("usage");
    assert_ne!(
        usage["completion_tokens"].as_u64(),
        Some(p.content.len() as u64)
    );
    let (status, _) = faulty(&mock, "teapot", t).await.expect("answered");
    assert_eq!(status, 400);

    let m = metrics(&mock).await;
    for kind in [
        "429",
        "500",
        "503",
        "reset",
        "stall",
        "malformed",
        "no-done",
        "usage-missing",
        "usage-wrong",
    ] {
        assert_eq!(
            m[&format!("trace_mock_faults_total{{kind=\"{kind}\"}}")],
            1.0,
            "{kind}"
        );
    }
    mock.terminate();
    let records = read_jsonl(&log);
    assert_eq!(records.len(), 9, "{records:?}");
    assert!(records.iter().all(|r| r["status"] == "fault"));
    let reset = records
        .iter()
        .find(|r| r["fault"] == "reset")
        .expect("reset record");
    assert_eq!(reset["completion_tokens"], 4);
}

#[tokio::test]
async fn seeded_fault_rates_repeat() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mock = MockProcess::start(&[
            "--ttft-ms",
            "0",
            "--itl-ms",
            "0",
            "--faults",
            "500=0.3,429=0.2",
            "--fault-seed",
            "42",
        ]);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let r = client()
                .post(mock.endpoint("/v1/completions"))
                .json(&json!({"prompt": "x", "max_tokens": 1}))
                .send()
                .await
                .expect("sent");
            statuses.push(r.status().as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    let count = |code| runs[0].iter().filter(|s| **s == code).count();
    assert!(
        count(500) > 3 && count(429) > 1 && count(200) > 10,
        "{:?}",
        runs[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_timing_matches_the_server_log() {
    let dir = tempdir();
    let log = dir.path().join("requests.parquet");
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "150",
        "--itl-ms",
        "30",
        "--log-requests",
        log.to_str().expect("utf8"),
    ]);
    let c = client();
    // Warm the connection so connect time is not in the measurement.
    c.get(mock.endpoint("/health"))
        .send()
        .await
        .expect("health");
    let sent = Instant::now();
    let r = c
        .post(mock.endpoint("/v1/chat/completions"))
        .header("x-request-id", "timed-1")
        .json(&chat("time me", 10, true))
        .send()
        .await
        .expect("sent");
    let mut stream = r.bytes_stream();
    let mut arrivals = Vec::new();
    let mut buf = String::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(std::str::from_utf8(&chunk.expect("chunk")).expect("utf8"));
        let tokens = buf.matches("\"content\"").count();
        while arrivals.len() < tokens {
            arrivals.push(sent.elapsed());
        }
    }
    assert_eq!(arrivals.len(), 10);
    // Client side, generous (a loaded test machine): TTFT 150 ms, gaps 30 ms.
    let ttft = arrivals[0].as_secs_f64() * 1000.0;
    assert!((145.0..300.0).contains(&ttft), "client TTFT {ttft} ms");
    let span = (arrivals[9] - arrivals[0]).as_secs_f64() * 1000.0;
    assert!((240.0..400.0).contains(&span), "client 9 gaps {span} ms");
    mock.terminate();

    // Server side ground truth, read back from Parquet.
    let file = std::fs::File::open(&log).expect("log written on SIGTERM");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut rows = 0;
    for batch in reader {
        let batch = batch.expect("batch");
        let col = |name: &str| -> f64 {
            let a = batch.column_by_name(name).expect(name);
            let a = a
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .expect("f64");
            a.value(0)
        };
        let ids = batch.column_by_name("client_request_id").expect("column");
        let ids = ids
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .expect("utf8");
        assert_eq!(ids.value(0), "timed-1");
        let server_ttft = col("first_token_ms") - col("arrival_ms");
        assert!(
            (150.0..175.0).contains(&server_ttft),
            "server TTFT {server_ttft} ms"
        );
        let server_span = col("last_token_ms") - col("first_token_ms");
        assert!(
            (255.0..300.0).contains(&server_span),
            "server 9 gaps {server_span} ms"
        );
        // Unix-epoch milliseconds.
        assert!(col("arrival_ms") > 1.7e12);
        rows += batch.num_rows();
    }
    assert_eq!(rows, 1);
}

/// A word-level tokenizer.json (the Hugging Face tokenizers format).
fn write_tokenizer(dir: &Path) -> std::path::PathBuf {
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {
            "type": "WordLevel",
            "vocab": {"[UNK]": 0, "hello": 1, "world": 2, ",": 3},
            "unk_token": "[UNK]"
        }
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json.to_string()).expect("write tokenizer");
    path
}

#[tokio::test]
async fn a_real_tokenizer_counts_prompt_tokens() {
    let dir = tempdir();
    let tok = write_tokenizer(dir.path());
    let mock = MockProcess::start(&[
        "--tokenizer",
        tok.to_str().expect("utf8"),
        "--ttft-ms",
        "0",
        "--itl-ms",
        "0",
    ]);
    let v: Value = client()
        .post(mock.endpoint("/v1/completions"))
        .json(&json!({"prompt": "hello, world hello unknownword", "max_tokens": 1}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    // hello , world hello unknownword → 5 tokens (the approximation would say 8).
    assert_eq!(v["usage"]["prompt_tokens"], 5);
}

#[test]
fn bad_options_fail_with_a_message() {
    let err = crate::util::trace_err(["mock", "--port", "0", "--faults", "teapot=0.1"]);
    assert!(err.contains("teapot"), "{err}");
    let err = crate::util::trace_err([
        "mock",
        "--port",
        "0",
        "--tokenizer",
        "/nonexistent/tokenizer.json",
    ]);
    assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    let err = crate::util::trace_err([
        "mock",
        "--port",
        "0",
        "--log-requests",
        "/nonexistent/dir/log.jsonl",
    ]);
    assert!(err.contains("/nonexistent/dir/log.jsonl"), "{err}");
}

/// Ctrl-C stops the mock as SIGTERM does: open requests end, and a Parquet
/// request log is closed whole (a cut Parquet file would be unreadable).
#[tokio::test]
async fn ctrl_c_closes_the_parquet_log() {
    let dir = tempdir();
    let log = dir.path().join("log.parquet");
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "0",
        "--itl-ms",
        "0",
        "--log-requests",
        log.to_str().expect("utf8"),
    ]);
    for i in 0..3 {
        let r = client()
            .post(mock.endpoint("/v1/chat/completions"))
            .header("x-request-id", format!("int-{i}"))
            .json(&chat("hello", 4, false))
            .send()
            .await
            .expect("sent");
        assert!(r.status().is_success());
    }
    mock.stop_with("INT");
    let file = std::fs::File::open(&log).expect("log written on Ctrl-C");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a whole Parquet file")
        .build()
        .expect("reader");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 3);
}

/// A client that goes away during a long prefill aborts its request: the
/// next request is not queued behind the prefill nobody waits for.
#[tokio::test]
async fn an_abandoned_prefill_does_not_delay_the_next_request() {
    // 2,000 tokens/s: the long prompt (about 10,000 tokens) takes ~5 s.
    let mock = MockProcess::start(&["--prefill-tps", "2000", "--itl-ms", "1"]);
    let c = client();
    let long = "lorem ipsum dolor sit amet ".repeat(1500);
    let mut abandoned = c
        .post(mock.endpoint("/v1/chat/completions"))
        .json(&chat(&long, 2, true))
        .send()
        .await
        .expect("sent")
        .bytes_stream();
    // Given up on well before its first token (the stream's headers came
    // at once; a token would end the wait).
    let token = tokio::time::timeout(Duration::from_millis(300), abandoned.next()).await;
    assert!(token.is_err(), "the long prompt streamed within 300 ms");
    drop(abandoned);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let r = c
        .post(mock.endpoint("/v1/chat/completions"))
        .json(&chat("a short one", 2, false))
        .send()
        .await
        .expect("sent");
    r.text().await.expect("body");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "the short request waited {took:?} behind an abandoned prefill"
    );
}
