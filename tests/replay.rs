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
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
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

/// |client - server| errors of one run, in ms, sorted.
struct TimingErrors {
    ttft: Vec<f64>,
    itl: Vec<f64>,
}

impl TimingErrors {
    fn p(v: &[f64], q: f64) -> f64 {
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    fn within_1ms_at_p99(&self) -> bool {
        Self::p(&self.ttft, 0.99) < 1.0 && Self::p(&self.itl, 0.99) < 1.0
    }
}

impl std::fmt::Debug for TimingErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TTFT p50 {:.3} p99 {:.3}, ITL p50 {:.3} p99 {:.3}",
            Self::p(&self.ttft, 0.5),
            Self::p(&self.ttft, 0.99),
            Self::p(&self.itl, 0.5),
            Self::p(&self.itl, 0.99)
        )
    }
}

/// One replay of 400 requests against the mock, compared request by request
/// with the mock's own log of when it read each request and wrote its first
/// and last token.
fn timing_errors() -> TimingErrors {
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
        &["--concurrency", "1", "--no-metrics"],
    );
    let server = stop_mock_and_read_log(mock, &log);
    assert_eq!(rows.len(), 400);
    let mut ttft = Vec::new();
    let mut itl = Vec::new();
    for r in &rows {
        let s = server
            .get(&r.request_id)
            .expect("the server logged this request");
        let at = |k: &str| s[k].as_f64().expect("a logged time");
        // The client counts from just before it sends, the server from when
        // it read the request: the difference is everything the client adds
        // (its send path, both loopback trips, its read path).
        let s_ttft = at("first_token_ms") - at("arrival_ms");
        ttft.push((r.ttft_ms.expect("ttft") - s_ttft).abs());
        // The server logs when it wrote its first and last token; the client
        // read them `sum(itl_ms)` apart. The mean gap is the ground truth of
        // the client's mean ITL.
        assert_eq!(r.itl_ms.len(), 5);
        let s_span = at("last_token_ms") - at("first_token_ms");
        let c_span: f64 = r.itl_ms.iter().map(|&g| f64::from(g)).sum();
        let gaps = r.itl_ms.len() as f64;
        itl.push((c_span - s_span).abs() / gaps);
    }
    ttft.sort_by(|a, b| a.total_cmp(b));
    itl.sort_by(|a, b| a.total_cmp(b));
    TimingErrors { ttft, itl }
}

#[test]
fn client_timing_matches_the_servers_ground_truth() {
    // The server's log is the ground truth: the client's TTFT and ITL must
    // be within 1 ms of it at p99. A measurement error of the client shows
    // in every attempt; another process taking a core for a few ms of a
    // 2-core machine shows in some (see docs/results-format.md, "How exact
    // the times are"), so one of five attempts must pass. One request at a
    // time: at concurrency 2 the two requests' client and server threads
    // fill both cores, and on this project's VM the p99 then swung 0.5-3.7
    // ms from attempt to attempt (2026-12-04); at concurrency 1 it was
    // 0.51-0.63 ms in five of five.
    let mut attempts = Vec::new();
    for _ in 0..5 {
        let errors = timing_errors();
        eprintln!("client vs server timing errors (ms): {errors:?}");
        if errors.within_1ms_at_p99() {
            return;
        }
        attempts.push(errors);
    }
    panic!("timing errors (ms) of five attempts: {attempts:#?}");
}

/// A `trace mix` of a single-turn random trace and a multi-turn agent
/// trace: every replayed request carries its trace row's `source`, so a
/// report can split the results by dataset.
#[test]
fn mixed_trace_rows_carry_their_source() {
    let dir = tempdir();
    let random = synth_random_trace(&dir.path().join("random.parquet"), 6, 16, 4, &[]);
    let agent = dir.path().join("agent.parquet");
    trace_ok([
        "synth",
        "agent",
        "--users",
        "2",
        "--turns",
        "2",
        "--system-prefix-tokens",
        "20",
        "--user-prefix-tokens",
        "10",
        "--turn-input-tokens",
        "10",
        "--turn-output-tokens",
        "4",
        "--think-ms",
        "0",
        "-o",
        agent.to_str().expect("utf8"),
    ]);
    let mix = dir.path().join("mix.parquet");
    trace_ok([
        "mix".to_string(),
        format!("{}:0.5", random.display()),
        format!("{}:0.5", agent.display()),
        "--sessions".into(),
        "4".into(),
        "-o".into(),
        mix.display().to_string(),
    ]);
    let trace_source: HashMap<String, String> = read_rows(&mix)
        .into_iter()
        .map(|r| (r.request_id, r.source))
        .collect();
    let mock = MockProcess::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let results = dir.path().join("results");
    let (_, rows) = replay_ok(
        &mix,
        &mock.url,
        &results,
        &["--concurrency", "2", "--no-metrics"],
    );
    assert_eq!(rows.len(), trace_source.len());
    let mut per_source: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        let expected = trace_source
            .get(&r.request_id)
            .unwrap_or_else(|| panic!("{} is not in the trace", r.request_id));
        assert_eq!(r.source.as_deref(), Some(expected.as_str()), "{r:?}");
        *per_source.entry(expected.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_source,
        HashMap::from([("synthetic/random", 2), ("synthetic/agent", 4)]),
        "two random requests and two agent sessions of two turns"
    );
}

/// Without `--backend`, the series of any known engine get their canonical
/// names, so the report has the server's figures for a llama.cpp or SGLang
/// server as for vLLM; naming the wrong engine leaves them empty.
#[test]
fn server_metrics_of_any_known_engine_are_named_without_a_backend_flag() {
    let dir = tempdir();
    // A shared prefix: every request after the first finds it cached.
    let trace = synth_random_trace(
        &dir.path().join("t.parquet"),
        12,
        16,
        8,
        &["--prefix-len", "64"],
    );
    for (flavor, backend) in [
        ("llamacpp", None),
        ("sglang", None),
        ("vllm", None),
        ("llamacpp", Some("vllm")),
    ] {
        let work = dir
            .path()
            .join(format!("{flavor}-{}", backend.unwrap_or("none")));
        let mut args = vec!["--concurrency", "4", "--metrics-interval", "50ms"];
        if let Some(b) = backend {
            args.extend(["--backend", b]);
        }
        let mock = MockProcess::start(&[
            "--metrics-flavor",
            flavor,
            "--ttft-ms",
            "40",
            "--itl-ms",
            "10",
        ]);
        let results = work.join("results");
        let out = run_replay(&trace, &mock.url, &results, &args);
        let (run, rows) = replay_rows(&out, &results);
        stop_mock(mock);
        assert_eq!(rows.len(), 12);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = report_of_run(&run);
        let server = &report["levels"][0]["server"];
        let run_json = read_json(&run.join("run.json"));
        match backend {
            None => {
                assert_eq!(
                    run_json["config"]["metrics"]["backend"], "generic",
                    "{run_json}"
                );
                assert!(
                    server["running_max"].as_f64().is_some_and(|n| n >= 1.0),
                    "{flavor}: {server}"
                );
                assert!(
                    server["generation_tokens"]
                        .as_f64()
                        .is_some_and(|n| n > 0.0),
                    "{flavor}: {server}"
                );
                assert!(!stderr.contains("known"), "{flavor}: {stderr}");
                let hit = server["prefix_cache_hit_rate"].as_f64();
                assert!(
                    hit.is_some_and(|h| h > 0.0 && h < 1.0),
                    "{flavor}: {server}"
                );
                if flavor == "llamacpp" {
                    // llama.cpp counts computed and cached prompt tokens apart.
                    let source = server["prefix_cache_hit_rate_source"].as_str();
                    assert!(source.is_some_and(|s| s.contains("uncached")), "{server}");
                    assert!(
                        server["prompt_tokens"].as_f64().is_some_and(|n| n > 0.0),
                        "computed + cached: {server}"
                    );
                }
            }
            Some(b) => {
                assert!(server["running_max"].is_null(), "{flavor} as {b}: {server}");
                assert!(
                    stderr.contains("is a known vllm series; is the backend right?"),
                    "{stderr}"
                );
            }
        }
    }
}

/// Every level starts from the trace's first session, so without
/// `--cache-reset` a level finds the prompts of the levels before it in the
/// server's prefix cache, and the run says so; with it, each level starts
/// cold (its later rounds do not: they are there to see the cache).
#[test]
fn levels_find_earlier_levels_prompts_cached_unless_the_cache_is_reset() {
    let dir = tempdir();
    for sub in ["warm", "cold", "repeat"] {
        std::fs::create_dir(dir.path().join(sub)).expect("a folder");
    }
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 30, 256, 4, &[]);
    let levels = ["--concurrency", "1,4", "--requests", "30", "--no-metrics"];
    let cached = |run: &Path| -> Vec<Option<f64>> {
        read_json(&run.join("summary.json"))["levels"]
            .as_array()
            .expect("levels")
            .iter()
            .map(|l| l["cached_token_ratio"].as_f64())
            .collect()
    };

    let warm = replay_on_logged_mock(&trace, &dir.path().join("warm"), &[], &levels);
    let ratios = cached(&warm.run);
    assert_eq!(ratios[0], Some(0.0), "the first level runs cold");
    assert!(ratios[1].is_some_and(|r| r > 0.9), "{ratios:?}");
    assert!(
        warm.stdout
            .contains("so concurrency 4 resent prompts that earlier levels had sent"),
        "{}",
        warm.stdout
    );
    let notes = report_of_run(&warm.run)["notes"].to_string();
    assert!(
        notes.contains("every level starts from the trace's first session"),
        "{notes}"
    );

    let mut args = levels.to_vec();
    args.extend(["--rounds", "2", "--cache-reset", "/reset_prefix_cache"]);
    let cold = replay_on_logged_mock(&trace, &dir.path().join("cold"), &[], &args);
    let ratios = cached(&cold.run);
    // concurrency 1 rounds 1 and 2, then concurrency 4 rounds 1 and 2.
    assert_eq!(ratios.len(), 4);
    assert_eq!((ratios[0], ratios[2]), (Some(0.0), Some(0.0)), "{ratios:?}");
    assert!(ratios[1].is_some_and(|r| r > 0.9) && ratios[3].is_some_and(|r| r > 0.9));
    let run = read_json(&cold.run.join("run.json"));
    let resets: Vec<&serde_json::Value> = run["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| &l["cache_reset"])
        .collect();
    assert_eq!(
        resets,
        [
            &true.into(),
            &serde_json::Value::Null,
            &true.into(),
            &serde_json::Value::Null
        ]
    );
    // The one server's reset URL.
    let resets = run["config"]["cache_reset"].as_array().expect("a list");
    assert!(
        resets.len() == 1
            && resets[0]
                .as_str()
                .is_some_and(|u| u.ends_with("/reset_prefix_cache")),
        "{resets:?}"
    );
    assert!(
        !cold.stdout.contains("every level starts"),
        "{}",
        cold.stdout
    );
    let notes = report_of_run(&cold.run)["notes"].to_string();
    assert!(!notes.contains("every level starts"), "{notes}");
    let cmp = trace_ok([
        "compare",
        warm.run.to_str().expect("utf8"),
        cold.run.to_str().expect("utf8"),
    ]);
    assert!(
        cmp.contains(
            "different shares of their prompt tokens in the prefix cache at concurrency 4 ("
        ),
        "{cmp}"
    );
    assert!(
        !cmp.contains("at concurrency 1 ("),
        "concurrency 1 ran cold in both: {cmp}"
    );

    // A level that needs more sessions than the trace holds repeats them.
    let repeat = replay_on_logged_mock(
        &trace,
        &dir.path().join("repeat"),
        &[],
        &[
            "--concurrency",
            "2",
            "--requests",
            "45",
            "--no-metrics",
            "--cache-reset",
            "/flush_cache",
        ],
    );
    let summary = read_json(&repeat.run.join("summary.json"));
    assert_eq!(summary["levels"][0]["repeated_requests"], 15);
    let ratio = summary["levels"][0]["cached_token_ratio"]
        .as_f64()
        .expect("a ratio");
    assert!(
        (0.2..0.4).contains(&ratio),
        "15 of 45 prompts seen before: {ratio}"
    );
    assert!(
        repeat
            .stdout
            .contains("the trace holds 30 sessions and concurrency 2 needed more"),
        "{}",
        repeat.stdout
    );

    // A reset the server does not take stops the run before anything is sent.
    let mock = MockProcess::start(&[]);
    let results = dir.path().join("refused");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--concurrency", "1", "--cache-reset", "/nope"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cache-reset") && err.contains("HTTP 404"),
        "{err}"
    );
    assert!(
        !results.exists() || files_in(&results).is_empty(),
        "no run folder"
    );
}

#[test]
fn isolated_levels_start_cold_without_a_reset_endpoint() {
    let dir = tempdir();
    for sub in ["iso", "again", "repeat"] {
        std::fs::create_dir(dir.path().join(sub)).expect("a folder");
    }
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 30, 256, 4, &[]);
    let cached = |run: &Path| -> Vec<f64> {
        read_json(&run.join("summary.json"))["levels"]
            .as_array()
            .expect("levels")
            .iter()
            .map(|l| l["cached_token_ratio"].as_f64().expect("a ratio"))
            .collect()
    };
    // The mock keeps one cache for both runs, as a server does that is not
    // restarted between them.
    let log = dir.path().join("server.jsonl");
    let log_arg = log.display().to_string();
    let mock = MockProcess::start(&["--log-requests", log_arg.as_str()]);
    let run_in = |sub: &str, args: &[&str]| {
        let results = dir.path().join(sub);
        let out = run_replay(&trace, &mock.url, &results, args);
        let (run, _) = replay_rows(&out, &results);
        (run, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (iso, stdout) = run_in(
        "iso",
        &[
            "--concurrency",
            "1,4",
            "--requests",
            "30",
            "--rounds",
            "2",
            "--no-metrics",
            "--isolate-levels",
        ],
    );
    // concurrency 1 rounds 1 and 2, then concurrency 4 rounds 1 and 2: each
    // level's round 1 cold, its round 2 warm.
    let r = cached(&iso);
    assert_eq!(r.len(), 4);
    assert!(r[0] < 0.02 && r[2] < 0.02, "{r:?}");
    assert!(r[1] > 0.9 && r[3] > 0.9, "{r:?}");
    assert!(!stdout.contains("every level starts"), "{stdout}");
    let notes = report_of_run(&iso)["notes"].to_string();
    assert!(!notes.contains("every level starts"), "{notes}");
    assert_eq!(
        read_json(&iso.join("run.json"))["config"]["isolate_levels"],
        true
    );

    // The same levels again on the same server: the tags are new in every
    // run, so nothing of the first run is found (without them: 90 % and more).
    let (again, _) = run_in("again", &["--levels-from", iso.to_str().expect("utf8")]);
    assert_eq!(
        read_json(&again.join("run.json"))["config"]["isolate_levels"],
        true,
        "--levels-from takes --isolate-levels"
    );
    let r = cached(&again);
    assert!(r[0] < 0.02 && r[2] < 0.02, "{r:?}");

    // Sessions a level runs again get a tag of their own too.
    let (repeat, stdout) = run_in(
        "repeat",
        &[
            "--concurrency",
            "2",
            "--requests",
            "45",
            "--no-metrics",
            "--isolate-levels",
        ],
    );
    let summary = read_json(&repeat.join("summary.json"));
    assert_eq!(summary["levels"][0]["repeated_requests"], 15);
    assert!(cached(&repeat)[0] < 0.02, "{:?}", cached(&repeat));
    assert!(stdout.contains("under a tag of its own"), "{stdout}");
    stop_mock(mock);
}
