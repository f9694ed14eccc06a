//! `trace convert swe-agent` on the two real SWE-agent trajectories in
//! shared/data/agent_traces (SWE-agent/SWE-agent, MIT; origins in
//! shared/data/README.md): one with only an appended `history` (a GPT-4
//! run), one whose steps record every prompt as sent, with old tool outputs
//! cut short (a function-calling demonstration).

use std::path::{Path, PathBuf};

use serde_json::Value;
use traces::TraceRow;
use traces::results::Status;

use crate::util::*;

const HISTORY_ONLY: &str = "swe-agent_gpt4_pydicom__pydicom-1458";
const WITH_STEPS: &str = "swe-agent_function_calling_marshmallow-1867";

fn traj_path(name: &str) -> PathBuf {
    shared_data(&format!("agent_traces/{name}.traj"))
}

fn convert(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.parquet"));
    trace_ok([
        "convert".to_string(),
        "swe-agent".into(),
        traj_path(name).display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ]);
    out
}

/// A raw message's text as a chat server gets it: a string, or the text
/// parts of a list joined with newlines.
fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn role_of(message: &Value) -> String {
    message["role"].as_str().expect("role").to_string()
}

/// What the replayer sends at each turn under `--history recorded`: the
/// session's context (dropped at `reset_context`), the turn's messages,
/// and after each turn its recorded reply.
fn prompts_sent(rows: &[TraceRow]) -> Vec<Vec<(String, String)>> {
    let mut context: Vec<(String, String)> = Vec::new();
    let mut prompts = Vec::new();
    for r in rows {
        if r.reset_context {
            context.clear();
        }
        context.extend(
            r.messages
                .iter()
                .map(|m| (m.role.clone(), m.content.clone())),
        );
        prompts.push(context.clone());
        context.push((
            "assistant".into(),
            r.reference_output.clone().unwrap_or_default(),
        ));
    }
    prompts
}

#[test]
fn steps_trajectory_replays_every_prompt_as_the_agent_sent_it() {
    let dir = tempdir();
    let trace = convert(dir.path(), WITH_STEPS);
    let rows = read_rows(&trace);
    let raw = read_json(&traj_path(WITH_STEPS));
    let steps = raw["trajectory"].as_array().expect("steps");
    assert_eq!(rows.len(), steps.len(), "one turn per step");
    assert_eq!(
        rows.len() as u64,
        raw["info"]["model_stats"]["api_calls"]
            .as_u64()
            .expect("api_calls")
    );

    // Call k sends the context recorded after step k-1; call 0 the first
    // step's context before its reply.
    let pairs = |ms: &[Value]| -> Vec<(String, String)> {
        ms.iter().map(|m| (role_of(m), text_of(m))).collect()
    };
    let mut expected = Vec::new();
    let first = steps[0]["messages"].as_array().expect("messages");
    let reply0 = first
        .iter()
        .rposition(|m| m["role"] == "assistant")
        .expect("a reply");
    expected.push(pairs(&first[..reply0]));
    for step in &steps[..steps.len() - 1] {
        expected.push(pairs(step["messages"].as_array().expect("messages")));
    }
    let sent = prompts_sent(&rows);
    assert_eq!(sent.len(), expected.len());
    for (k, (got, want)) in sent.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "turn {k}");
    }
    // Old outputs are cut short later on, so some prompts restart whole.
    assert!(rows.iter().any(|r| r.reset_context));
    for (k, r) in rows.iter().enumerate().skip(1) {
        let secs = steps[k - 1]["execution_time"].as_f64().expect("time");
        assert_eq!(r.think_ms, Some(secs * 1000.0), "turn {k}");
    }
    let inspected: Value = serde_json::from_str(&trace_ok([
        "inspect".to_string(),
        trace.display().to_string(),
        "--json".into(),
    ]))
    .expect("inspect --json");
    assert_eq!(inspected["think_ms"]["count"], steps.len() - 1);
    assert_eq!(inspected["rows_with_reference_tool_calls"], rows.len());
    // Tool results keep the id of the call they answer.
    let tool = &rows[1].messages[0];
    assert_eq!(tool.role, "tool");
    let calls: Value =
        serde_json::from_str(rows[0].reference_tool_calls.as_deref().expect("calls"))
            .expect("json");
    assert_eq!(tool.tool_call_id.as_deref(), calls[0]["id"].as_str());

    // Replayed against the mock: every call goes out, each with the whole
    // recorded prompt (the mock counts ceil(bytes / 4) of the joined texts).
    let mock = MockProcess::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--concurrency", "1", "--requests", "1"],
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, mut replayed) = replay_rows(&out, &results);
    replayed.sort_by_key(|r| r.turn);
    assert_eq!(replayed.len(), rows.len());
    for (r, want) in replayed.iter().zip(&expected) {
        assert_eq!(r.status, Some(Status::Ok), "{r:?}");
        let texts: Vec<&str> = want.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            r.prompt_tokens,
            Some(mock_tokens(&texts)),
            "{}",
            r.request_id
        );
    }

    // Live history: the server's text with the recorded tool calls, so
    // every turn's tool results answer calls in its history (the mock, like
    // OpenAI's API, answers 400 to a tool result whose call is missing).
    let live = dir.path().join("live");
    let out = run_replay(
        &trace,
        &mock.url,
        &live,
        &[
            "--concurrency",
            "1",
            "--requests",
            "1",
            "--history",
            "live",
            "--think-scale",
            "0",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("warning"),
        "{stderr}"
    );
    let (_, replayed) = replay_rows(&out, &live);
    assert_eq!(replayed.len(), rows.len());
    for r in &replayed {
        assert_eq!(r.status, Some(Status::Ok), "{:?}", r.error);
    }
}

#[test]
fn history_trajectory_matches_the_agents_own_token_counts() {
    let dir = tempdir();
    let trace = convert(dir.path(), HISTORY_ONLY);
    let rows = read_rows(&trace);
    let raw = read_json(&traj_path(HISTORY_ONLY));
    let stats = &raw["info"]["model_stats"];
    assert_eq!(
        rows.len() as u64,
        stats["api_calls"].as_u64().expect("api_calls")
    );
    // Turn 0: the system prompt, the demonstration and the issue.
    let roles: Vec<&str> = rows[0].messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "user"]);
    assert!(
        rows.iter()
            .all(|r| !r.reset_context && r.think_ms.is_none())
    );

    // The agent's run recorded what it sent and got (GPT-4's tokenizer);
    // Llama 3's counts of the converted trace land within 2 %.
    let tok = dir.path().join("tok.parquet");
    trace_ok([
        "tokenize".to_string(),
        trace.display().to_string(),
        "-o".into(),
        tok.display().to_string(),
        "--tokenizer".into(),
        crate::tokenize::llama3().display().to_string(),
    ]);
    let tok_rows = read_rows(&tok);
    let sum = |f: fn(&TraceRow) -> Option<u32>| -> f64 {
        tok_rows
            .iter()
            .map(|r| f64::from(f(r).expect("counted")))
            .sum()
    };
    let close = |got: f64, want: f64| (got - want).abs() / want < 0.02;
    let sent = stats["tokens_sent"].as_f64().expect("tokens_sent");
    let received = stats["tokens_received"].as_f64().expect("tokens_received");
    let prompt = sum(|r| r.prompt_tokens);
    let replies = sum(|r| r.reference_output_tokens);
    assert!(close(prompt, sent), "prompt tokens {prompt} vs {sent} sent");
    assert!(
        close(replies, received),
        "reply tokens {replies} vs {received} received"
    );
}

#[test]
fn a_folder_of_trajectories_and_bad_input() {
    let dir = tempdir();
    let folder = dir.path().join("runs");
    std::fs::create_dir(&folder).expect("mkdir");
    // As SWE-agent lays out a run: a folder per task instance, with the
    // run's other files (here preds.json, not a trajectory) beside them.
    for name in [HISTORY_ONLY, WITH_STEPS] {
        let instance = folder.join(name);
        std::fs::create_dir(&instance).expect("mkdir");
        std::fs::copy(traj_path(name), instance.join(format!("{name}.traj"))).expect("copy");
        std::fs::write(instance.join(format!("{name}.patch")), "diff").expect("write");
    }
    std::fs::write(folder.join("preds.json"), r#"{"x": {"model_patch": ""}}"#).expect("write");
    // A mini-SWE-agent run (its 1.x object, made from the real sample's
    // messages, which were saved as a bare array before 1.0).
    let mini_messages: Value = read_json(&shared_data(
        "openai_messages/mini-swe-agent_github_issue.traj.json",
    ));
    let mini = folder.join("mini").join("github-issue");
    std::fs::create_dir_all(&mini).expect("mkdir");
    let mini_traj = serde_json::json!({
        "info": {"exit_status": "Submitted"},
        "messages": mini_messages,
        "trajectory_format": "mini-swe-agent-1",
    });
    std::fs::write(mini.join("github-issue.traj.json"), mini_traj.to_string()).expect("write");
    std::fs::write(
        folder.join("empty.traj"),
        r#"{"trajectory": [], "history": []}"#,
    )
    .expect("write");
    let out = dir.path().join("all.parquet");
    let report = trace_ok([
        "convert".to_string(),
        "swe-agent".into(),
        folder.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--json".into(),
    ]);
    let report: Value = serde_json::from_str(&report).expect("json report");
    assert_eq!(report["sessions_written"], 3, "{report}");
    assert_eq!(report["skipped"]["no model call"], 1, "{report}");
    // Which layout each trajectory was read from reaches the summary.
    assert_eq!(
        report["notes"]["trajectories read from their steps' prompts as sent"], 1,
        "{report}"
    );
    assert_eq!(
        report["notes"]["trajectories read from their appended history"], 1,
        "{report}"
    );
    assert_eq!(
        report["notes"]["mini-SWE-agent trajectories (one `messages` list)"], 1,
        "{report}"
    );
    let rows = read_rows(&out);
    let sessions: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(
        sessions.into_iter().collect::<Vec<_>>(),
        ["github-issue", WITH_STEPS, HISTORY_ONLY]
    );

    // The mini-SWE-agent run has the turns `trace convert openai` makes of
    // the bare array, but for the last: the final observation after the
    // agent's last reply was never sent.
    let openai = dir.path().join("openai.parquet");
    trace_ok([
        "convert".to_string(),
        "openai".into(),
        shared_data("openai_messages/mini-swe-agent_github_issue.traj.json")
            .display()
            .to_string(),
        "-o".into(),
        openai.display().to_string(),
    ]);
    let as_openai = read_rows(&openai);
    let as_mini: Vec<&TraceRow> = rows
        .iter()
        .filter(|r| r.session_id == "github-issue")
        .collect();
    assert!(as_mini.len() > 5);
    assert_eq!(as_mini.len() + 1, as_openai.len());
    assert_eq!(
        as_openai.last().and_then(|r| r.reference_output.clone()),
        None
    );
    for (m, o) in as_mini.iter().zip(&as_openai) {
        assert_eq!(m.messages, o.messages, "turn {}", m.turn);
        assert_eq!(m.reference_output, o.reference_output, "turn {}", m.turn);
    }

    // A file that is not a trajectory: an error naming it, and no output.
    let bad = dir.path().join("bad.traj");
    std::fs::write(&bad, r#"{"steps": []}"#).expect("write");
    let bad_out = dir.path().join("bad.parquet");
    let err = trace_err([
        "convert".to_string(),
        "swe-agent".into(),
        bad.display().to_string(),
        "-o".into(),
        bad_out.display().to_string(),
    ]);
    assert!(
        err.contains("bad.traj") && err.contains("not a SWE-agent trajectory"),
        "{err}"
    );
    assert!(!bad_out.exists());
}
