//! Integration tests: `trace convert openai`, `conversations` and `prompts`
//! on the real samples in `/work/shared/data` and on the fixtures in
//! `tests/fixtures/{openai,conversations,prompts}`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;
use traces::TraceRow;

use crate::util::*;

/// The arguments of `trace convert FORMAT INPUTS... -o OUT EXTRA...`.
fn args(format: &str, inputs: &[PathBuf], out: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["convert".into(), format.into()];
    v.extend(inputs.iter().map(|p| p.clone().into_os_string()));
    v.push("-o".into());
    v.push(out.into());
    v.extend(extra.iter().map(Into::into));
    v
}

/// Converts and returns the JSON report and the rows written.
fn convert(format: &str, inputs: &[PathBuf], extra: &[&str]) -> (Value, Vec<TraceRow>) {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let mut extra = extra.to_vec();
    extra.push("--json");
    let stdout = trace_ok(args(format, inputs, &out, &extra));
    let report: Value = serde_json::from_str(&stdout).expect("json report");
    let rows = read_rows(&out);
    assert_eq!(Some(rows.len() as u64), report["rows_written"].as_u64());
    (report, rows)
}

/// Runs a conversion that must fail; returns stderr and checks that no
/// output (not even a temporary file) was left behind.
fn convert_fails(format: &str, inputs: &[PathBuf], extra: &[&str]) -> String {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let err = trace_err(args(format, inputs, &out, extra));
    assert!(
        files_in(dir.path()).is_empty(),
        "partial output left behind"
    );
    err
}

fn session<'a>(rows: &'a [TraceRow], id: &str) -> Vec<&'a TraceRow> {
    rows.iter().filter(|r| r.session_id == id).collect()
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

// ---------------------------------------------------------------- openai

#[test]
fn openai_cookbook_sample_skips_the_record_without_user_turn() {
    let input = shared_data("openai_messages/openai_cookbook_toy_chat_fine_tuning.jsonl");
    let (report, rows) = convert("openai", std::slice::from_ref(&input), &[]);
    assert_eq!(report["records"], 5);
    assert_eq!(report["sessions_written"], 4);
    assert_eq!(report["skipped"]["no user turn"], 1, "{report}");
    // 1 + 4 + 1 + 1 turns: every user message has its reply.
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().all(|r| r.reference_output.is_some()));
    assert!(rows.iter().all(|r| r.source == "openai"));

    let raw: Vec<Value> = std::fs::read_to_string(&input)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // Record 1: system + user in turn 0, then one user message per turn.
    let second = session(&rows, &rows[1].session_id);
    assert_eq!(second.len(), 4);
    assert_eq!(second[0].messages.len(), 2);
    assert_eq!(second[0].messages[0].role, "system");
    assert_eq!(
        second[0].messages[1].content,
        raw[1]["messages"][1]["content"]
    );
    assert_eq!(second[3].turn, 3);
    assert_eq!(second[3].messages.len(), 1);
    assert_eq!(
        second[3].reference_output.as_deref(),
        raw[1]["messages"][8]["content"].as_str()
    );
    // Record 2 has no system message: turn 0 starts with the user.
    assert_eq!(rows[5].messages[0].role, "user");
    // Record 4: the 26,000-character reply survives whole.
    let long = rows.last().expect("rows");
    let reply = long.reference_output.as_deref().expect("reply");
    assert_eq!(reply.chars().count(), 26_000);
    assert_eq!(Some(reply), raw[4]["messages"][2]["content"].as_str());
    // Ids are derived from the content, so they repeat across runs.
    let (_, again) = convert("openai", &[input], &[]);
    assert_eq!(again[0].session_id, rows[0].session_id);
    assert!(rows[0].session_id.starts_with("openai-"));
}

#[test]
fn openai_first_turn_only() {
    let input = shared_data("openai_messages/openai_cookbook_toy_chat_fine_tuning.jsonl");
    let (report, rows) = convert("openai", &[input], &["--first-turn-only"]);
    assert_eq!(report["sessions_written"], 4);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.turn == 0));
}

#[test]
fn openai_bare_message_arrays_are_one_conversation_per_file() {
    let issue = shared_data("openai_messages/mini-swe-agent_github_issue.traj.json");
    let local = shared_data("openai_messages/mini-swe-agent_local.traj.json");
    let (report, rows) = convert("openai", &[issue.clone(), local], &[]);
    assert_eq!(report["records"], 2);
    assert_eq!(report["sessions_written"], 2);

    let raw: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&issue).expect("read")).expect("json");
    let issue_rows = session(&rows, "mini-swe-agent_github_issue.traj");
    // 22 messages: system, then 11 user messages with 10 replies between.
    assert_eq!(issue_rows.len(), 11);
    assert_eq!(issue_rows[0].messages[0].content, raw[0]["content"]);
    assert_eq!(issue_rows[0].messages[1].content, raw[1]["content"]);
    assert_eq!(
        issue_rows[0].reference_output.as_deref(),
        raw[2]["content"].as_str()
    );
    // It ends on a user message: a last turn with no reference.
    let last = issue_rows.last().expect("last");
    assert_eq!(last.turn, 10);
    assert_eq!(last.reference_output, None);
    assert_eq!(last.messages[0].content, raw[21]["content"]);
    // The one `\r\n` in the sample is kept byte for byte.
    assert!(
        rows.iter()
            .flat_map(|r| r.messages.iter())
            .any(|m| m.content.contains("\r\n"))
    );

    // `local` ends on an empty user message, which sends nothing.
    let local_rows = session(&rows, "mini-swe-agent_local.traj");
    assert_eq!(local_rows.len(), 2);
    assert!(local_rows.iter().all(|r| r.reference_output.is_some()));
}

#[test]
fn openai_folder_mixes_bare_arrays_and_record_files() {
    let (report, rows) = convert("openai", &[shared_data("openai_messages")], &[]);
    // 5 cookbook records + 6 mllm records + 2 bare files.
    assert_eq!(report["records"], 13);
    assert_eq!(report["sessions_written"], 12);
    // mllm_demo: `content` before `role`; the `<image>` placeholders stay.
    assert!(rows.iter().any(|r| {
        r.messages
            .iter()
            .any(|m| m.role == "user" && m.content == "<image>Who are they?")
    }));
    assert!(rows.iter().any(|r| {
        r.reference_output.as_deref() == Some("They're Kane and Gretzka from Bayern Munich.")
    }));
}

#[test]
fn openai_typed_parts_with_reasoning_and_tool_calls() {
    let input = shared_data("agent_traces/llamafactory_reason_tool_use_demo_50.jsonl");
    let (report, rows) = convert("openai", &[input], &[]);
    assert_eq!(report["sessions_written"], 50);
    // One row per assistant message in the file.
    assert_eq!(rows.len(), 112);
    // Record 1: user -> call, tool -> answer, user -> call, tool -> answer.
    let s = session(&rows, &rows[1].session_id);
    assert_eq!(s.len(), 4);
    assert_eq!(s[0].messages[0].role, "system");
    assert_eq!(
        s[0].messages[1].content,
        "Can you tell me about the movie \"Inception\"?"
    );
    assert_eq!(s[0].reference_output, None, "reasoning is not the reply");
    let calls: Value =
        serde_json::from_str(s[0].reference_tool_calls.as_deref().expect("calls")).expect("json");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(calls[0]["function"]["name"], "get_movie_details");
    let arguments: Value = serde_json::from_str(
        calls[0]["function"]["arguments"]
            .as_str()
            .expect("arguments string"),
    )
    .expect("arguments json");
    assert_eq!(arguments["title"], "Inception");
    assert_eq!(s[1].messages[0].role, "tool");
    assert_eq!(s[1].messages[0].tool_call_id.as_deref(), Some("call_1"));
    let answer = s[1].reference_output.as_deref().expect("answer");
    assert!(answer.starts_with("Here are the key details about the movie \"Inception\""));
    assert_eq!(s[3].messages[0].tool_call_id.as_deref(), Some("call_2"));
    // No reasoning text leaks into messages or replies.
    assert!(rows.iter().all(|r| {
        r.messages
            .iter()
            .all(|m| !m.content.starts_with("Alright, the user wants"))
    }));
    // Record 2 makes two calls in one message.
    let s = session(&rows, &rows[5].session_id);
    let calls: Value =
        serde_json::from_str(s[0].reference_tool_calls.as_deref().expect("calls")).expect("json");
    assert_eq!(calls.as_array().map(Vec::len), Some(2));
}

#[test]
fn openai_native_tool_calls_developer_role_and_image_parts() {
    let input = fixture("openai/tools_and_parts.jsonl");
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let output = run_trace(args("openai", &[input], &out, &[]));
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 image/audio/file content parts left out"),
        "{stdout}"
    );
    let rows = read_rows(&out);
    let s = session(&rows, "weather-1");
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].messages[0].role, "system");
    assert_eq!(
        s[0].messages[1].content,
        "What is the weather like where this photo was taken?"
    );
    assert_eq!(s[0].reference_output, None);
    let calls: Value =
        serde_json::from_str(s[0].reference_tool_calls.as_deref().expect("calls")).expect("json");
    assert_eq!(calls[1]["id"], "call_w2");
    let ids: Vec<_> = s[1]
        .messages
        .iter()
        .map(|m| m.tool_call_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("call_w2"), Some("call_w1")]);
    assert_eq!(
        s[1].reference_output.as_deref(),
        Some("It is 14 °C and overcast in Lyon.")
    );
    assert_eq!(s[2].messages[0].content, "And tomorrow?");
    assert_eq!(s[2].reference_output, None);
    // Text parts are joined with a newline.
    assert_eq!(
        rows[3].reference_output.as_deref(),
        Some("The meeting\nis now on Thursday.")
    );
}

#[test]
fn openai_bad_records_name_the_line_and_skip_bad_counts_them() {
    let input = fixture("openai/bad.jsonl");
    let err = convert_fails("openai", std::slice::from_ref(&input), &[]);
    assert!(err.contains("bad.jsonl:2 (record 1)"), "{err}");
    assert!(err.contains("content"), "{err}");
    assert!(err.contains("--skip-bad"), "{err}");

    let (report, rows) = convert("openai", &[input], &["--skip-bad"]);
    assert_eq!(report["bad"]["wrong shape"], 1, "{report}");
    assert_eq!(report["bad"]["invalid JSON"], 1, "{report}");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].messages[0].content, "last good record");
}

#[test]
fn openai_bad_element_of_a_bare_array_names_its_line() {
    let input = fixture("openai/bare_bad_element.json");
    let err = convert_fails("openai", std::slice::from_ref(&input), &[]);
    assert!(err.contains("bare_bad_element.json:4 (record 2)"), "{err}");
    assert!(err.contains("narrator"), "{err}");
    let (report, rows) = convert("openai", &[input], &["--skip-bad"]);
    assert_eq!(report["bad"]["wrong shape"], 1);
    assert!(rows.is_empty());
}

// --------------------------------------------------------- conversations

#[test]
fn conversations_default_sends_the_whole_history_at_once() {
    let (report, rows) = convert(
        "conversations",
        &[fixture("conversations/samples.json")],
        &[],
    );
    assert_eq!(report["records"], 5);
    assert_eq!(report["skipped"]["empty history"], 1, "{report}");
    assert_eq!(report["skipped"]["no user message"], 1, "{report}");
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r.turn == 0 && r.source == "conversations")
    );

    // Chinese sample ending on the user: everything is input, no reference.
    let zh = &rows[0];
    let roles: Vec<_> = zh.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(has_chinese(&zh.messages[0].content));
    assert_eq!(zh.messages[3].content, "订单号是 20240518-7731。");
    assert_eq!(zh.reference_output, None);

    // System role inside the history is dropped; the trailing reply becomes
    // the reference instead of input.
    let travel = &rows[1];
    assert_eq!(travel.request_id, "travel-42#0");
    let roles: Vec<_> = travel.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(
        travel.messages[0].content,
        "You are a travel planning assistant."
    );
    assert!(
        travel
            .reference_output
            .as_deref()
            .expect("reply")
            .starts_with("Day 2:")
    );

    // Empty prompt_content: no system message.
    assert_eq!(rows[2].messages.len(), 1);
    assert_eq!(rows[2].messages[0].role, "user");
}

#[test]
fn conversations_split_turns_makes_sessions() {
    let (report, rows) = convert(
        "conversations",
        &[
            fixture("conversations/samples.json"),
            fixture("conversations/samples.jsonl"),
        ],
        &["--split-turns"],
    );
    assert_eq!(report["records"], 7);
    assert_eq!(report["sessions_written"], 5);
    let travel = session(&rows, "travel-42");
    assert_eq!(travel.len(), 2);
    assert_eq!(travel[0].messages.len(), 2);
    assert_eq!(travel[0].messages[0].role, "system");
    assert!(
        travel[0]
            .reference_output
            .as_deref()
            .expect("r")
            .starts_with("Day 1:")
    );
    assert_eq!(travel[1].messages[0].content, "Add a day trip to Nara.");
    assert!(
        travel[1]
            .reference_output
            .as_deref()
            .expect("r")
            .starts_with("Day 2:")
    );
    // The Chinese sample ends on the user: its last turn has no reference.
    let zh = session(&rows, &rows[0].session_id);
    assert_eq!(zh.len(), 2);
    assert_eq!(zh[1].reference_output, None);
    // JSONL samples: 2 + 1 turns.
    let sql: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.turn == 0
                && r.messages
                    .first()
                    .is_some_and(|m| m.content == "You are a SQL tutor.")
        })
        .collect();
    assert_eq!(sql.len(), 2);
    assert_eq!(rows.len(), 2 + 2 + 1 + 2 + 1);
}

#[test]
fn conversations_non_string_content_is_a_bad_record() {
    let input = fixture("conversations/bad.json");
    let err = convert_fails("conversations", std::slice::from_ref(&input), &[]);
    assert!(err.contains("bad.json:3 (record 1)"), "{err}");
    assert!(err.contains("cut_chat_history[0]"), "{err}");
    let (report, rows) = convert("conversations", &[input], &["--skip-bad"]);
    assert_eq!(report["bad"]["wrong shape"], 1);
    assert_eq!(rows.len(), 2);
}

// --------------------------------------------------------------- prompts

#[test]
fn prompts_text_file_one_per_line() {
    let (report, rows) = convert("prompts", &[fixture("prompts/prompts.txt")], &[]);
    assert_eq!(report["records"], 6, "blank lines are not records");
    let texts: Vec<_> = rows
        .iter()
        .map(|r| r.messages[0].content.as_str())
        .collect();
    assert_eq!(texts[0], "Write a haiku about autumn rain.");
    assert!(has_chinese(texts[2]));
    assert_eq!(texts[4], "What is the capital of Australia?", "CR removed");
    assert_eq!(texts[5], "Name three prime numbers above 100.");
    assert!(rows.iter().all(|r| {
        r.turn == 0
            && r.messages.len() == 1
            && r.messages[0].role == "user"
            && r.reference_output.is_none()
            && r.session_id.starts_with("prompts-")
            && r.source == "prompts"
    }));
}

#[test]
fn prompts_json_lines_and_arrays() {
    let (report, rows) = convert(
        "prompts",
        &[
            fixture("prompts/prompts.jsonl"),
            fixture("prompts/prompts.json"),
        ],
        &[],
    );
    assert_eq!(report["records"], 8);
    assert_eq!(report["skipped"]["empty prompt"], 1, "{report}");
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0].request_id, "p-001#0");
    assert_eq!(
        rows[0].messages[0].content,
        "Summarise the plot of Hamlet in one paragraph."
    );
    assert_eq!(
        rows[1].messages[0].content,
        "List five uses of baking soda."
    );
    assert_eq!(
        rows[2].messages[0].content,
        "Give me a regular expression that matches an IPv4 address."
    );
    assert!(has_chinese(&rows[3].messages[0].content));
    assert_eq!(rows[6].session_id, "17");
}

#[test]
fn prompts_file_without_extension_is_sniffed_as_text() {
    let (_, rows) = convert("prompts", &[fixture("prompts/plain_list")], &[]);
    assert_eq!(rows.len(), 2);
    assert!(rows[1].messages[0].content.starts_with("{curly}"));
}

#[test]
fn prompts_same_text_gets_the_same_id_and_repeats_are_renamed() {
    let dir = tempdir();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.json");
    std::fs::write(&a, "Tell me a joke.\n").expect("write");
    std::fs::write(&b, r#"["Tell me a joke."]"#).expect("write");
    let (report, rows) = convert("prompts", &[a, b], &[]);
    assert_eq!(report["renamed_ids"], 1);
    assert_eq!(rows[1].session_id, format!("{}~2", rows[0].session_id));
}

#[test]
fn prompts_object_without_text_is_a_bad_record() {
    let input = fixture("prompts/bad.jsonl");
    let err = convert_fails("prompts", std::slice::from_ref(&input), &[]);
    assert!(err.contains("bad.jsonl:3 (record 2)"), "{err}");
    assert!(err.contains("neither a `text` nor a `prompt`"), "{err}");
    let (report, rows) = convert("prompts", &[input], &["--skip-bad"]);
    assert_eq!(report["bad"]["wrong shape"], 1);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].messages[0].content, "The last prompt.");
}
