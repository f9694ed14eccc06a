//! Integration tests: `trace replay` against the real `trace mock` server,
//! results read back from their Parquet parts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use traces::results::{RequestRecord, Status};

use crate::util::*;

/// A token-only trace of `n` single-turn requests.
fn random_trace(dir: &Path, n: u32, output_len: u32) -> PathBuf {
    let out = dir.join("random.parquet");
    trace_ok([
        "synth".to_string(),
        "random".into(),
        "--requests".into(),
        n.to_string(),
        "--input-len".into(),
        "64".into(),
        "--output-len".into(),
        output_len.to_string(),
        "--prefix-len".into(),
        "32".into(),
        "--num-prefixes".into(),
        "2".into(),
        "-o".into(),
        out.display().to_string(),
    ]);
    out
}

fn replay_ok(
    trace: &Path,
    url: &str,
    results: &Path,
    extra: &[&str],
) -> (PathBuf, Vec<RequestRecord>) {
    replay_rows(&run_replay(trace, url, results, extra), results)
}

#[test]
fn qps_sweep_records_every_request_and_writes_the_run_files() {
    let dir = tempdir();
    let trace = random_trace(dir.path(), 30, 8);
    let mock = MockProcess::start(&["--ttft-ms", "5", "--itl-ms", "1"]);
    let results = dir.path().join("results");
    let (run, rows) = replay_ok(
        &trace,
        &mock.url,
        &results,
        &[
            "--qps",
            "40,80",
            "--requests",
            "30",
            "--metrics-interval",
            "200ms",
        ],
    );
    assert_eq!(rows.len(), 60);
    assert!(
        rows.iter().all(|r| r.status == Some(Status::Ok)),
        "{:?}",
        rows.iter().find(|r| r.status != Some(Status::Ok))
    );
    let mut per_level: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *per_level.entry(format!("{}", r.load_value)).or_default() += 1;
        assert_eq!(r.load_mode, "qps");
        assert_eq!(
            r.completion_tokens,
            Some(8),
            "the mock returns exactly max_tokens"
        );
        assert_eq!(r.tokens_source.as_deref(), Some("usage"));
        assert_eq!(r.itl_ms.len(), 7);
        assert!(r.ttft_ms.expect("ttft") >= 4.5);
        assert!(r.sent_ms >= r.scheduled_ms);
        assert!(r.end_ms >= r.sent_ms);
        let tpot = r.tpot_ms.expect("tpot");
        let e2e = r.e2e_ms.expect("e2e");
        assert!((tpot - (e2e - r.ttft_ms.expect("ttft")) / 7.0).abs() < 1e-6);
    }
    assert_eq!(per_level.get("40"), Some(&30));
    assert_eq!(per_level.get("80"), Some(&30));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["levels"].as_array().map(Vec::len), Some(2));
    assert_eq!(summary["levels"][0]["requests"], 30);
    assert_eq!(summary["levels"][0]["ok"], 30);
    let csv = std::fs::read_to_string(run.join("summary.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 3);
    let runj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(runj["trace"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(runj["levels"].as_array().map(Vec::len), Some(2));
    assert_eq!(runj["config"]["levels"][0]["rate"], 40.0);
}

/// One measurement of |client - server| errors, in ms: TTFT p95, TTFT p99
/// and the p99 of the per-request mean-ITL error.
fn timing_errors() -> (f64, f64, f64) {
    let dir = tempdir();
    // 400 requests, so that p99 is a percentile (a few scheduler hiccups of
    // a 2-core machine land above it) and not the maximum.
    let trace = random_trace(dir.path(), 400, 6);
    let log = dir.path().join("server.jsonl");
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "20",
        "--itl-ms",
        "3",
        "--log-requests",
        log.to_str().expect("utf8"),
    ]);
    let results = dir.path().join("results");
    let (_, rows) = replay_ok(
        &trace,
        &mock.url,
        &results,
        &["--concurrency", "2", "--no-metrics"],
    );
    drop(mock); // flushes the server's log
    let text = std::fs::read_to_string(&log).expect("server log");
    let server: HashMap<String, serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["client_request_id"].as_str()?.to_string(), v)))
        .collect();
    assert_eq!(rows.len(), 400);
    let mut ttft_err = Vec::new();
    let mut itl_err = Vec::new();
    for r in &rows {
        let s = server
            .get(&r.request_id)
            .expect("the server logged this request");
        let s_ttft = s["first_token_ms"].as_f64().expect("first")
            - s["arrival_ms"].as_f64().expect("arrival");
        ttft_err.push((r.ttft_ms.expect("ttft") - s_ttft).abs());
        // The server logs its first and last token: the mean gap between
        // them is the ground truth of the client's mean ITL.
        let s_span = s["last_token_ms"].as_f64().expect("last")
            - s["first_token_ms"].as_f64().expect("first");
        let c_span: f64 = r.itl_ms.iter().map(|&g| f64::from(g)).sum();
        assert_eq!(r.itl_ms.len(), 5);
        let gaps = r.itl_ms.len() as f64;
        itl_err.push((c_span / gaps - s_span / gaps).abs());
    }
    ttft_err.sort_by(|a, b| a.total_cmp(b));
    itl_err.sort_by(|a, b| a.total_cmp(b));
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(&ttft_err, 0.95), q(&ttft_err, 0.99), q(&itl_err, 0.99))
}

#[test]
fn client_timing_matches_the_servers_ground_truth() {
    // The server's log is the ground truth. A measurement error of the
    // client shows in every attempt; a process descheduled for a few ms on a
    // 2-core machine (both processes, their writer threads and the test
    // share it) does not, so one of three attempts must pass. This debug
    // build needs TTFT within 1 ms at p95 and 2.5 ms at p99, ITL within 1 ms
    // at p99; the release build meets 1 ms at p99 (bench/replay measures
    // it), but the debug build's outliers do not, reliably.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let (ttft95, ttft99, itl99) = timing_errors();
        if ttft95 < 1.0 && ttft99 < 2.5 && itl99 < 1.0 {
            return;
        }
        attempts.push((ttft95, ttft99, itl99));
    }
    panic!("TTFT p95/p99 and ITL p99 errors (ms) of three attempts: {attempts:?}");
}
