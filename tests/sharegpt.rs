//! Integration tests: `trace convert sharegpt` on the real samples and on
//! fixtures for the quirks of raw ShareGPT dumps.

use std::fs;

use crate::util::*;

#[test]
fn fastchat_sample_converts_every_conversation() {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let input = shared_data("sharegpt/fastchat_dummy_conversation.json");
    let stdout = trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["records"], 500);
    assert_eq!(report["sessions_written"], 500);
    let rows = read_rows(&out);
    assert_eq!(
        rows.len() as u64,
        report["rows_written"].as_u64().expect("rows")
    );
    // The source has 2-6 messages per conversation, strictly alternating.
    let raw: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&input).expect("read")).expect("json");
    let expected_turns: usize = raw
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            c["conversations"]
                .as_array()
                .expect("conv")
                .iter()
                .filter(|m| m["from"] == "human")
                .count()
        })
        .sum();
    assert_eq!(rows.len(), expected_turns);
    let first = &rows[0];
    assert_eq!(first.session_id, "identity_0");
    assert_eq!(first.request_id, "identity_0#0");
    assert_eq!(first.turn, 0);
    assert_eq!(first.messages[0].role, "user");
    assert_eq!(
        first.messages[0].content,
        raw[0]["conversations"][0]["value"]
    );
    assert_eq!(
        first.reference_output.as_deref(),
        raw[0]["conversations"][1]["value"].as_str()
    );
    assert!(rows.iter().all(|r| r.source == "sharegpt"));
}

#[test]
fn single_object_file_without_id_and_empty_reply() {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let input = shared_data("sharegpt/axolotl_conversation.missingturns.json");
    trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let rows = read_rows(&out);
    assert!(!rows.is_empty());
    let sessions: std::collections::HashSet<_> = rows.iter().map(|r| &r.session_id).collect();
    assert_eq!(sessions.len(), 1);
    assert!(rows[0].session_id.starts_with("sharegpt-"));
    // The empty gpt value leaves one turn without a reference.
    assert_eq!(
        rows.iter().filter(|r| r.reference_output.is_none()).count(),
        1
    );
    // The id is derived from the content: a second conversion gives the same.
    let out2 = dir.path().join("t2.parquet");
    trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out2.as_os_str(),
    ]);
    assert_eq!(read_rows(&out2)[0].session_id, rows[0].session_id);
}

#[test]
fn glaive_tool_calls_keep_their_structure() {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let input = shared_data("sharegpt/llamafactory_glaive_toolcall_zh_demo.json");
    trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let rows = read_rows(&out);
    let with_calls = rows
        .iter()
        .filter(|r| r.reference_tool_calls.is_some())
        .count();
    assert!(with_calls > 0, "function_call replies become tool calls");
    let tool_msgs: Vec<_> = rows
        .iter()
        .flat_map(|r| r.messages.iter())
        .filter(|m| m.role == "tool")
        .collect();
    assert!(!tool_msgs.is_empty());
    assert!(tool_msgs.iter().any(|m| m.tool_call_id.is_some()));
    // Chinese text survives byte for byte.
    assert!(rows.iter().any(|r| r.messages.iter().any(|m| {
        m.content
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    })));
}

#[test]
fn raw_sharegpt_quirks_are_skipped_and_counted() {
    let dir = tempdir();
    let input = dir.path().join("raw.json");
    fs::write(
        &input,
        r#"[
 {"id": "a", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
 {"id": "b"},
 {"id": "c", "conversations": []},
 {"id": "d", "conversations": [{"from": "gpt", "value": "I start"}, {"from": "human", "value": "ok"}, {"from": "bing", "value": "r"}]},
 {"id": "e", "conversations": [{"from": "system", "value": "be brief"}, {"from": "user", "value": ""}, {"from": "chatgpt", "value": "x"}]},
 {"id": "a", "conversations": [{"from": "human", "value": "dup id"}]},
 {"id": 7, "conversations": [{"from": "human", "value": null}, {"from": "bard", "value": "y"}, {"from": "human", "value": "z"}]}
]"#,
    )
    .expect("write");
    let out = dir.path().join("t.parquet");
    let stdout = trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["records"], 7);
    assert_eq!(report["skipped"]["no conversations key"], 1);
    assert_eq!(report["skipped"]["no user turn"], 2, "{report}");
    assert_eq!(report["renamed_ids"], 1);
    let rows = read_rows(&out);
    let ids: Vec<_> = rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, vec!["a#0", "d#0", "a~2#0", "7#0"]);
    assert_eq!(rows[1].messages[0].role, "assistant");
    assert_eq!(rows[1].reference_output.as_deref(), Some("r"));
    assert_eq!(rows[3].messages.len(), 2);
    assert_eq!(rows[3].messages[0].role, "assistant");
    assert_eq!(rows[3].messages[1].content, "z");
}

#[test]
fn bad_record_names_the_place_and_skip_bad_counts_it() {
    let dir = tempdir();
    let input = dir.path().join("bad.jsonl");
    fs::write(
        &input,
        "{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}]}\n\
         {\"id\":\"b\",\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}\n\
         {\"id\":\"c\",\"conversations\":\"not a list\"}\n\
         {\"id\":\"d\",\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}]}\n",
    )
    .expect("write");
    let out = dir.path().join("t.parquet");
    let args = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = vec![
            "convert".into(),
            "sharegpt".into(),
            input.clone().into(),
            "-o".into(),
            out.clone().into(),
        ];
        v.extend(extra.iter().map(Into::into));
        v
    };
    let err = trace_err(args(&[]));
    assert!(err.contains("bad.jsonl:2"), "{err}");
    assert!(err.contains("--skip-bad"), "{err}");
    assert_eq!(files_in(dir.path()), vec!["bad.jsonl"], "no partial output");

    let stdout = trace_ok(args(&["--skip-bad", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["bad"]["invalid JSON"], 1);
    assert_eq!(report["bad"]["wrong shape"], 1);
    assert_eq!(read_rows(&out).len(), 2);
}

#[test]
fn truncated_array_fails_even_with_skip_bad_and_keeps_old_output() {
    let dir = tempdir();
    let input = dir.path().join("cut.json");
    fs::write(
        &input,
        r#"[{"id":"a","conversations":[{"from":"human","value":"q"}]}, {"id":"b","conv"#,
    )
    .expect("write");
    let out = dir.path().join("t.parquet");
    fs::write(&out, b"previous output").expect("write");
    let err = trace_err([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--skip-bad".as_ref(),
    ]);
    assert!(err.contains("cut.json:1 (record 1)"), "{err}");
    assert_eq!(fs::read(&out).expect("read"), b"previous output");
    assert_eq!(files_in(dir.path()), vec!["cut.json", "t.parquet"]);
}

#[test]
fn first_turn_only_limit_and_sample() {
    let dir = tempdir();
    let input = shared_data("sharegpt/fastchat_dummy_conversation.json");
    let out = dir.path().join("t.parquet");
    let run = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = vec![
            "convert".into(),
            "sharegpt".into(),
            input.clone().into(),
            "-o".into(),
            out.clone().into(),
        ];
        v.extend(extra.iter().map(Into::into));
        trace_ok(v);
        read_rows(&out)
    };
    let rows = run(&["--first-turn-only"]);
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|r| r.turn == 0));

    let rows = run(&["--limit", "10", "--first-turn-only"]);
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9].session_id, "identity_9");

    let a = run(&["--sample", "25", "--seed", "3", "--first-turn-only"]);
    let b = run(&["--sample", "25", "--seed", "3", "--first-turn-only"]);
    let c = run(&["--sample", "25", "--seed", "4", "--first-turn-only"]);
    assert_eq!(a.len(), 25);
    assert_eq!(a, b, "same seed, same sample");
    assert_ne!(a, c, "another seed, another sample");
    let ids: std::collections::HashSet<_> = a.iter().map(|r| &r.session_id).collect();
    assert_eq!(ids.len(), 25, "no record twice");
    // Sampled sessions stay in input order.
    let idx: Vec<u32> = a
        .iter()
        .map(|r| {
            r.session_id
                .trim_start_matches("identity_")
                .parse()
                .expect("n")
        })
        .collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]));
}
