//! Integration test against a real llama.cpp server (`llama-server`, from
//! `../shared/tools/real-server.sh`), a server we did not write: streaming,
//! usage and a metrics scrape with `--backend llamacpp`.
//!
//! It runs when that server has been installed (`real-server.sh install`,
//! a ~20 minute source build); on a machine without it, it says so and
//! passes without checking anything.

use std::path::PathBuf;
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

#[test]
fn replay_against_llama_cpp() {
    if !installed() {
        eprintln!(
            "real llama.cpp server not installed (../shared/tools/real-server.sh install): not run"
        );
        return;
    }
    let port: u16 = 18093;
    let started = Command::new("bash")
        .arg(script())
        .args(["start", &port.to_string()])
        .status()
        .expect("real-server.sh runs");
    assert!(started.success(), "the real server starts");
    let _server = Server(port);
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
    let results = dir.path().join("results");
    trace_ok([
        "replay".to_string(),
        trace.display().to_string(),
        "--endpoint".into(),
        format!("http://127.0.0.1:{port}"),
        "--concurrency".into(),
        "2".into(),
        "--max-tokens".into(),
        "12".into(),
        "--backend".into(),
        "llamacpp".into(),
        "--metrics-interval".into(),
        "200ms".into(),
        "--results-dir".into(),
        results.display().to_string(),
        "--quiet".into(),
    ]);
    let run = only_run_dir(&results);
    let rows = read_parts(run.join("requests")).expect("parts");
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.status, Some(Status::Ok), "{:?}", r.error);
        assert!(r.ttft_ms.is_some_and(|t| t > 0.0));
        assert!(r.completion_tokens.is_some_and(|n| n >= 1));
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
}
