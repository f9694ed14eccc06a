//! The scraper against a real HTTP server on 127.0.0.1, read back from
//! Parquet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::writer::tests::{ReadRow, read_parts};
use super::*;

/// A tiny `/metrics` server whose values change with every request: the
/// n-th scrape sees `vllm:num_requests_running` = n, and `test_seen_ms` is
/// when the request arrived, in ms since the run's clock.
struct MetricsServer {
    port: u16,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsServer {
    async fn start(clock: Instant) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let seen_ms = ms_since(clock);
                    let (status, body) = if request.starts_with(b"GET /metrics ") {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        ("200 OK", exposition(n, seen_ms))
                    } else {
                        ("404 Not Found", "not here\n".to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        MetricsServer { port, hits, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits (up to 20 s, never asserting on time) until `n` scrapes arrived.
    async fn wait_for_hits(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.hits() < n {
            assert!(Instant::now() < deadline, "the scraper never came back");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn exposition(n: u64, seen_ms: f64) -> String {
    format!(
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
         # TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{model_name=\"m\",engine=\"0\"}} {n}\n\
         # TYPE vllm:prompt_tokens_total counter\n\
         vllm:prompt_tokens_total{{model_name=\"m\",engine=\"0\"}} {}\n\
         # TYPE vllm:e2e_request_latency_seconds histogram\n\
         vllm:e2e_request_latency_seconds_bucket{{model_name=\"m\",le=\"0.5\"}} 0\n\
         vllm:e2e_request_latency_seconds_bucket{{model_name=\"m\",le=\"+Inf\"}} {n}\n\
         vllm:e2e_request_latency_seconds_sum{{model_name=\"m\"}} {}\n\
         vllm:e2e_request_latency_seconds_count{{model_name=\"m\"}} {n}\n\
         # TYPE test_seen_ms gauge\n\
         test_seen_ms {seen_ms}\n\
         this line is not a sample\n",
        n * 100,
        n as f64 * 0.75,
    )
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn config(endpoints: Vec<String>, interval: Duration) -> ScrapeConfig {
    ScrapeConfig {
        endpoints,
        interval,
        names: None,
        backend: Backend::Vllm,
    }
}

/// Rows grouped by scrape (one `ts_ms` per scrape and endpoint), in time order.
fn by_scrape(rows: &[ReadRow]) -> Vec<(f64, Vec<&ReadRow>)> {
    let mut groups: BTreeMap<u64, Vec<&ReadRow>> = BTreeMap::new();
    for row in rows {
        groups.entry(row.0.to_bits()).or_default().push(row);
    }
    let mut out: Vec<(f64, Vec<&ReadRow>)> =
        groups.into_values().map(|rows| (rows[0].0, rows)).collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn value_of(rows: &[&ReadRow], name: &str) -> f64 {
    rows.iter()
        .find(|r| r.2 == name)
        .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
        .4
}

#[tokio::test]
async fn scrapes_on_the_run_clock_until_stopped() {
    // The run started 3 s ago: every timestamp must be counted from then.
    let clock = Instant::now() - Duration::from_secs(3);
    let server = MetricsServer::start(clock).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("server_metrics");
    let dead = format!("http://127.0.0.1:{}/metrics", dead_port());
    let cfg = config(
        vec![server.url("/metrics"), dead, server.url("/nope")],
        Duration::from_millis(40),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = spawn_scraper(reqwest::Client::new(), cfg, clock, out.clone(), stop_rx);
    server.wait_for_hits(4).await;
    stop_tx.send(true).unwrap();
    let stats = handle.await.unwrap().unwrap();
    let end_ms = ms_since(clock);

    let good = server.hits();
    assert!(good >= 5, "4 ticks and the last scrape, got {good}");
    assert_eq!(stats.scrapes, 3 * good, "{stats:?}");
    assert_eq!(stats.failures, 2 * good, "{stats:?}");
    assert_eq!(stats.malformed_lines, good, "{stats:?}");

    let rows = read_parts(&out);
    assert_eq!(stats.samples, rows.len() as u64);
    assert_eq!(rows.len() as u64, 7 * good);
    let label = format!("127.0.0.1:{}", server.port);
    assert!(rows.iter().all(|r| r.1 == label));

    let scrapes = by_scrape(&rows);
    assert_eq!(scrapes.len() as u64, good);
    for (i, (ts_ms, rows)) in scrapes.iter().enumerate() {
        // Values change with every scrape, in scrape order.
        assert_eq!(value_of(rows, "vllm:num_requests_running"), (i + 1) as f64);
        assert_eq!(
            value_of(rows, "vllm:prompt_tokens_total"),
            (i as f64 + 1.0) * 100.0,
            "counters stay raw"
        );
        // ts_ms is on the run's clock, taken when the scrape started: the
        // server saw the request after it, and not long after.
        let seen = value_of(rows, "test_seen_ms");
        assert!(
            *ts_ms >= 3000.0 && *ts_ms <= end_ms,
            "ts {ts_ms} end {end_ms}"
        );
        assert!(seen >= *ts_ms, "seen {seen} before ts {ts_ms}");
        assert!(seen - ts_ms < 5000.0, "seen {seen} long after ts {ts_ms}");
    }

    let find = |name: &str, labels: &str| {
        rows.iter()
            .find(|r| r.2 == name && r.3 == labels)
            .unwrap_or_else(|| panic!("no {name} {{{labels}}}"))
    };
    let running = find("vllm:num_requests_running", "engine=0,model_name=m");
    assert_eq!(running.5.as_deref(), Some("num_requests_running"));
    let bucket = find(
        "vllm:e2e_request_latency_seconds_bucket",
        "le=+Inf,model_name=m",
    );
    assert_eq!(
        bucket.5.as_deref(),
        Some("e2e_request_latency_seconds_bucket")
    );
    let sum = find("vllm:e2e_request_latency_seconds_sum", "model_name=m");
    assert_eq!(sum.5.as_deref(), Some("e2e_request_latency_seconds_sum"));
    assert_eq!(find("test_seen_ms", "").5, None);
}

#[tokio::test]
async fn one_last_scrape_after_stop_keeps_only_the_named_series() {
    let clock = Instant::now();
    let server = MetricsServer::start(clock).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(vec![server.url("/metrics")], Duration::from_secs(3600));
    cfg.names = Some(vec![
        // a family name keeps its _bucket/_sum/_count series
        "vllm:e2e_request_latency_seconds".to_string(),
        // a canonical prefix
        "num_requests_*".to_string(),
    ]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = spawn_scraper(
        reqwest::Client::new(),
        cfg,
        clock,
        dir.path().to_path_buf(),
        stop_rx,
    );
    server.wait_for_hits(1).await;
    stop_tx.send(true).unwrap();
    let stats = handle.await.unwrap().unwrap();
    // The first tick, then the last scrape: the hour-long interval never ran out.
    assert_eq!(server.hits(), 2);
    assert_eq!(stats.scrapes, 2);
    assert_eq!(stats.failures, 0);
    let rows = read_parts(dir.path());
    assert_eq!(stats.samples, rows.len() as u64);
    let mut names: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        [
            "vllm:e2e_request_latency_seconds_bucket",
            "vllm:e2e_request_latency_seconds_count",
            "vllm:e2e_request_latency_seconds_sum",
            "vllm:num_requests_running",
        ]
    );
    assert_eq!(rows.len(), 2 * 5);
}

#[tokio::test]
async fn stopped_before_the_start_or_by_a_dropped_sender_still_scrapes_once_more() {
    let clock = Instant::now();
    let server = MetricsServer::start(clock).await;

    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop_rx) = watch::channel(true);
    let cfg = config(vec![server.url("/metrics")], Duration::from_secs(3600));
    let stats = spawn_scraper(
        reqwest::Client::new(),
        cfg.clone(),
        clock,
        dir.path().into(),
        stop_rx,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((stats.scrapes, server.hits()), (1, 1));
    assert_eq!(read_parts(dir.path()).len(), 7);

    let dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = spawn_scraper(
        reqwest::Client::new(),
        cfg,
        clock,
        dir.path().into(),
        stop_rx,
    );
    server.wait_for_hits(2).await;
    drop(stop_tx);
    let stats = handle.await.unwrap().unwrap();
    assert_eq!((stats.scrapes, server.hits()), (2, 3));
}

#[tokio::test]
async fn parts_are_cut_by_rows_and_by_time() {
    for policy in [
        PartPolicy {
            rows: 5,
            every: Duration::from_secs(3600),
        },
        PartPolicy {
            rows: usize::MAX,
            every: Duration::ZERO,
        },
    ] {
        let clock = Instant::now();
        let server = MetricsServer::start(clock).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(vec![server.url("/metrics")], Duration::from_millis(20));
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(run(
            reqwest::Client::new(),
            cfg,
            clock,
            dir.path().into(),
            stop_rx,
            policy,
        ));
        server.wait_for_hits(3).await;
        stop_tx.send(true).unwrap();
        let stats = handle.await.unwrap().unwrap();
        // Each scrape gives 7 rows, so every round closes a part.
        let parts = std::fs::read_dir(dir.path()).unwrap().count() as u64;
        assert_eq!(parts, server.hits(), "{policy:?}");
        assert_eq!(stats.samples, 7 * server.hits());
        assert_eq!(read_parts(dir.path()).len() as u64, stats.samples);
    }
}

#[tokio::test]
async fn bad_configurations_are_errors_that_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec!["http://127.0.0.1:1/metrics".to_string()],
            0,
            "at least 10 ms",
        ),
        (
            vec!["127.0.0.1:8000/metrics".to_string()],
            1000,
            "127.0.0.1:8000",
        ),
        (vec!["ftp://127.0.0.1/metrics".to_string()], 1000, "ftp://"),
    ];
    for (endpoints, interval_ms, needle) in cases {
        let (_tx, rx) = watch::channel(false);
        let cfg = config(endpoints, Duration::from_millis(interval_ms));
        assert!(cfg.validate().is_err());
        let err = spawn_scraper(
            reqwest::Client::new(),
            cfg,
            Instant::now(),
            dir.path().into(),
            rx,
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(format!("{err:#}").contains(needle), "{err:#}");
    }
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let (_tx, rx) = watch::channel(true);
    let cfg = config(vec![], Duration::from_secs(1));
    let err = spawn_scraper(
        reqwest::Client::new(),
        cfg,
        Instant::now(),
        blocker.join("out"),
        rx,
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(format!("{err:#}").contains("file"), "{err:#}");
}

#[test]
fn endpoint_labels_are_host_and_port() {
    assert_eq!(
        endpoint_label("http://127.0.0.1:8000/metrics").unwrap(),
        "127.0.0.1:8000"
    );
    assert_eq!(
        endpoint_label("http://localhost/metrics").unwrap(),
        "localhost:80"
    );
    assert_eq!(
        endpoint_label("https://Example.COM/m").unwrap(),
        "example.com:443"
    );
    assert_eq!(endpoint_label("http://[::1]:9/metrics").unwrap(), "[::1]:9");
    assert!(endpoint_label("not a url").is_err());
}

#[test]
fn labels_are_sorted_and_quoted_only_when_needed() {
    let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(render_labels(&[]), "");
    assert_eq!(
        render_labels(&labels(&[("model_name", "Qwen/Qwen3-8B"), ("le", "+Inf")])),
        "le=+Inf,model_name=Qwen/Qwen3-8B"
    );
    assert_eq!(
        render_labels(&labels(&[("b", "x,y=z"), ("a", "say \"hi\"\\\n")])),
        "a=\"say \\\"hi\\\"\\\\\\n\",b=\"x,y=z\""
    );
}

#[test]
fn name_patterns_match_series_families_and_canonical_names() {
    let filter = NameFilter::new(Some(&[
        "vllm:prompt_tokens_total".to_string(),
        "vllm:prefix_cache_*".to_string(),
        "time_to_first_token_seconds".to_string(),
        " ".to_string(),
    ]));
    assert!(filter.keeps("vllm:prompt_tokens_total", None, None));
    assert!(filter.keeps("vllm:prefix_cache_hits_total", None, None));
    assert!(filter.keeps(
        "sglang:time_to_first_token_seconds_bucket",
        Some("sglang:time_to_first_token_seconds"),
        Some("time_to_first_token_seconds_bucket"),
    ));
    assert!(!filter.keeps("vllm:generation_tokens_total", None, None));
    assert!(!filter.keeps(
        "vllm:num_requests_running",
        None,
        Some("num_requests_running")
    ));
    // Without TYPE lines, the suffix is stripped by name.
    let filter = NameFilter::new(Some(&["tgi_request_duration".to_string()]));
    assert!(filter.keeps("tgi_request_duration_sum", None, None));
    assert!(!filter.keeps("tgi_request_duration_seconds", None, None));
    assert!(NameFilter::new(None).keeps("anything", None, None));
    // An empty list keeps nothing.
    assert!(!NameFilter::new(Some(&[])).keeps("anything", None, None));
}
