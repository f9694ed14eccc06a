//! Integration test against a real llama.cpp server (`llama-server`, from
//! `../shared/tools/real-server.sh`), a server we did not write: streaming,
//! usage and a metrics scrape whose series the report reads.
//!
//! It runs when that server has been installed (`real-server.sh install`,
//! a ~20 minute source build); on a machine without it, it says so and
//! passes without checking anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use traces::results::{Status, read_parts};

use crate::util::*;

fn script() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/real-server.sh")
}

fn installed() -> bool {
    let venv = std::env::var("RIG_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/trace-real-server")
        });
    venv.join("models/gemma-3-270m-q4_k_m.gguf").is_file() && script().is_file()
}

/// Stops the server this test started (the script stops only what it started, by PID).
struct Server(u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.0.to_string()])
            .status();
    }
}

/// Starts llama-server on `port` with the script's `env` settings, or
/// returns `None` (and says why) when it is not installed here.
fn start_server(port: u16, env: &[(&str, &str)]) -> Option<Server> {
    if !installed() {
        eprintln!(
            "real llama.cpp server not installed (../shared/tools/real-server.sh install): not run"
        );
        return None;
    }
    let started = Command::new("bash")
        .arg(script())
        .args(["start", &port.to_string()])
        .envs(env.iter().copied())
        .status()
        .expect("real-server.sh runs");
    assert!(started.success(), "the real server starts");
    Some(Server(port))
}

/// Replays `trace` against the server on `port` with `args`, into
/// `results`; returns the run's folder and its requests.
fn replay(
    trace: &Path,
    port: u16,
    results: &Path,
    args: &[&str],
) -> (PathBuf, Vec<traces::results::RequestRecord>) {
    let mut all = vec![
        "replay".to_string(),
        trace.display().to_string(),
        "--endpoint".into(),
        format!("http://127.0.0.1:{port}"),
        "--results-dir".into(),
        results.display().to_string(),
        "--quiet".into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    trace_ok(all);
    let run = only_run_dir(results);
    let rows = read_parts(run.join("requests")).expect("parts");
    (run, rows)
}

#[test]
fn replay_against_llama_cpp() {
    let port: u16 = 18093;
    let Some(_server) = start_server(port, &[]) else {
        return;
    };
    let dir = tempdir();
    let trace = dir.path().join("t.parquet");
    let input = shared_data("sharegpt/fastchat_dummy_conversation.json");
    trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "--first-turn-only".as_ref(),
        "--limit".as_ref(),
        "6".as_ref(),
        "-o".as_ref(),
        trace.as_os_str(),
    ]);
    let (run, rows) = replay(
        &trace,
        port,
        &dir.path().join("results"),
        &[
            "--concurrency",
            "2",
            "--max-tokens",
            "12",
            "--metrics-interval",
            "200ms",
        ],
    );
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.status, Some(Status::Ok), "{:?}", r.error);
        assert!(r.ttft_ms.is_some_and(|t| t > 0.0));
        // llama.cpp honours ignore_eos: every reply is as long as asked,
        // and the run does not say otherwise.
        assert_eq!(r.completion_tokens, Some(12), "{}", r.request_id);
        assert_eq!(r.finish_reason.as_deref(), Some("length"), "{r:?}");
        assert!(
            r.prompt_tokens.is_some_and(|n| n > 0),
            "llama.cpp reports usage"
        );
    }
    let metrics: Vec<_> = std::fs::read_dir(run.join("server_metrics"))
        .expect("server_metrics")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(
        !metrics.is_empty(),
        "the llama.cpp /metrics endpoint was scraped"
    );
    let runj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).expect("run.json"))
            .expect("json");
    assert!(
        runj["server_metrics"]["samples"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{runj}"
    );
    // Its series are named without --backend, so the report has its
    // figures: slots busy, and the prompt tokens it reused from the cache
    // (the prompts share the chat template's start at least).
    let report = report_of_run(&run);
    assert_eq!(report["levels"][0]["stopped_short"], 0);
    assert_eq!(report["levels"][0]["output_fill_pct"], 100.0);
    // llama.cpp streams a token a chunk, and reported usage for each.
    assert_eq!(report["levels"][0]["tokens_per_chunk"], 1.0);
    assert_eq!(report["levels"][0]["tokens_counted"], 0);
    let server = &report["levels"][0]["server"];
    assert!(
        server["running_max"].as_f64().is_some_and(|n| n >= 1.0),
        "{server}"
    );
    assert!(
        server["prefix_cache_hit_rate"]
            .as_f64()
            .is_some_and(|h| h > 0.0 && h < 1.0),
        "{server}"
    );
    assert!(
        server["prefix_cache_hit_rate_source"]
            .as_str()
            .is_some_and(|s| s.contains("uncached")),
        "{server}"
    );
}

/// Asked for no usage, llama.cpp sends none: the replayer counts the chunks
/// that carried text, which is exact for a server that streams a token a
/// chunk, and says how the tokens were counted.
#[test]
fn replies_without_usage_from_llama_cpp_are_counted_by_chunks() {
    let port: u16 = 18096;
    let Some(_server) = start_server(port, &[]) else {
        return;
    };
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 4, 48, 10, &[]);
    let (run, rows) = replay(
        &trace,
        port,
        &dir.path().join("results"),
        &["--concurrency", "2", "--no-metrics", "--no-usage"],
    );
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r.status, Some(Status::Ok), "{:?}", r.error);
        assert_eq!(r.tokens_source.as_deref(), Some("counted"), "{r:?}");
        assert_eq!(r.completion_tokens, Some(10), "{r:?}");
        assert_eq!(r.prompt_tokens, None, "{r:?}");
    }
    let report = report_of_run(&run);
    assert_eq!(report["levels"][0]["tokens_counted"], 4);
    assert!(
        report["notes"]
            .to_string()
            .contains("reported no usage for 4 of 4 ok requests"),
        "{}",
        report["notes"]
    );
}

/// llama.cpp has no endpoint that empties its prompt cache: a later level
/// finds the earlier level's prompts in its slots, unless --isolate-levels
/// gives every level prompts of its own.
#[test]
fn isolated_levels_replay_against_llama_cpp() {
    let port: u16 = 18095;
    let Some(_server) = start_server(port, &[]) else {
        return;
    };
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 6, 200, 4, &[]);
    let cached = |run: &Path| -> Vec<f64> {
        read_json(&run.join("summary.json"))["levels"]
            .as_array()
            .expect("levels")
            .iter()
            .map(|l| {
                l["cached_token_ratio"]
                    .as_f64()
                    .expect("llama.cpp reports cached tokens")
            })
            .collect()
    };
    let levels = ["--concurrency", "1,2", "--no-metrics"];
    let (warm, _) = replay(&trace, port, &dir.path().join("warm"), &levels);
    let r = cached(&warm);
    assert!(r[0] < 0.1 && r[1] > 0.9, "{r:?}");
    let mut args = levels.to_vec();
    args.push("--isolate-levels");
    let (iso, rows) = replay(&trace, port, &dir.path().join("iso"), &args);
    let r = cached(&iso);
    assert!(r[0] < 0.1 && r[1] < 0.1, "{r:?}");
    assert!(rows.iter().all(|r| r.status == Some(Status::Ok)));
}

/// The first steps of the real SWE-agent function-calling trajectory, each
/// text cut to 1,500 characters (alike in every step, so the prompts still
/// grow append-only), small enough for the test server's 4,096-token slots.
fn short_swe_agent_trajectory(dir: &std::path::Path, steps: usize) -> PathBuf {
    use serde_json::Value;
    fn cut(v: &mut Value) {
        match v {
            Value::String(s) if s.len() > 1500 => {
                let end = (0..=1500)
                    .rev()
                    .find(|&i| s.is_char_boundary(i))
                    .unwrap_or(0);
                s.truncate(end);
            }
            Value::Array(items) => items.iter_mut().for_each(cut),
            Value::Object(map) => map.values_mut().for_each(cut),
            _ => {}
        }
    }
    let path = shared_data("agent_traces/swe-agent_function_calling_marshmallow-1867.traj");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    if let Some(t) = v["trajectory"].as_array_mut() {
        t.truncate(steps);
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("history");
        o.remove("info");
    }
    cut(&mut v);
    let out = dir.join("marshmallow.traj");
    std::fs::write(&out, serde_json::to_string(&v).expect("json")).expect("write");
    out
}

/// A recorded agent run (assistant tool calls, tool results with their
/// ids) is accepted by a server we did not write, and its prompts grow so
/// that the server's prefix cache serves each turn's history.
#[test]
fn swe_agent_tool_calls_replay_against_llama_cpp() {
    let port: u16 = 18094;
    let Some(_server) = start_server(port, &[("RIG_NP", "1")]) else {
        return;
    };
    let dir = tempdir();
    let traj = short_swe_agent_trajectory(dir.path(), 3);
    let trace = dir.path().join("swe.parquet");
    trace_ok([
        "convert".as_ref(),
        "swe-agent".as_ref(),
        traj.as_os_str(),
        "-o".as_ref(),
        trace.as_os_str(),
    ]);
    // Under live history the server's own text replaces each reply and the
    // recorded tool calls stay on it, so the tool results still answer them.
    for history in ["recorded", "live"] {
        let (_, mut rows) = replay(
            &trace,
            port,
            &dir.path().join(format!("results-{history}")),
            &[
                "--concurrency",
                "1",
                "--requests",
                "1",
                "--history",
                history,
                "--think-scale",
                "0",
                "--max-tokens",
                "8",
                "--no-metrics",
            ],
        );
        rows.sort_by_key(|r| r.turn);
        assert_eq!(rows.len(), 3, "{history}");
        for r in &rows {
            assert_eq!(r.status, Some(Status::Ok), "{history}: {:?}", r.error);
        }
        for w in rows.windows(2) {
            let (before, now) = (&w[0], &w[1]);
            assert!(
                now.prompt_tokens > before.prompt_tokens,
                "{history}: the context grows: {before:?} {now:?}"
            );
            assert!(
                now.cached_tokens.is_some_and(|c| c > 0),
                "{history}: the history came from the prefix cache: {now:?}"
            );
        }
    }
}

/// `--sweep` against a server we did not write: the probes, the rate
/// chosen between them, and every request answered although llama.cpp
/// closes its connection after each stream while it announces keep-alive
/// (a request that meets such a closed connection is sent once more).
#[test]
fn sweep_against_llama_cpp() {
    let port: u16 = 18094;
    let Some(_server) = start_server(port, &[]) else {
        return;
    };
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 12, 32, 4, &[]);
    let (run, rows) = replay(
        &trace,
        port,
        &dir.path().join("results"),
        &["--sweep", "3", "--no-metrics"],
    );
    assert_eq!(rows.len(), 36, "three levels of 12 requests");
    for r in &rows {
        assert_eq!(r.status, Some(Status::Ok), "{:?}", r.error);
        assert_eq!(r.completion_tokens, Some(4));
    }
    let runj = read_json(&run.join("run.json"));
    let probed = &runj["config"]["sweep"]["probed"];
    let sync = probed["sync_rate"].as_f64().expect("sync_rate");
    let max = probed["max_rate"].as_f64().expect("max_rate");
    let rate = probed["rates"][0].as_f64().expect("one rate between");
    assert!(sync > 0.0 && max > 0.0, "{probed}");
    assert!(
        rate >= sync.min(max) && rate <= sync.max(max),
        "{rate} between {sync} and {max}"
    );
    let modes: Vec<(String, f64)> = runj["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| {
            (
                l["load_mode"].as_str().expect("mode").to_string(),
                match &l["load_value"] {
                    serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
                    v => v.as_f64().expect("a number or \"inf\""),
                },
            )
        })
        .collect();
    assert_eq!(modes[0], ("concurrency".to_string(), 1.0));
    assert_eq!(modes[1].0, "qps");
    assert!(modes[1].1.is_infinite(), "{modes:?}");
    assert_eq!(modes[2], ("qps".to_string(), rate));
    assert!(runj["levels"][0]["requests_resent"].is_u64());
}
