//! Integration tests: timed_traces (`trace convert mooncake|azure|burstgpt|bailian`).
//!
//! Real samples come from `../shared/data` (see its README for origins);
//! the fixtures under `tests/fixtures/{mooncake,azure,burstgpt,bailian}`
//! were written for these tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use traces::{TraceReader, TraceRow};

use crate::util::{files_in, fixture, read_rows, shared_data, tempdir, trace_err, trace_ok};

/// Converts `inputs` with `format` and extra args; returns the rows.
fn convert(format: &str, inputs: &[PathBuf], extra: &[&str]) -> (Vec<TraceRow>, String) {
    let dir = tempdir();
    let out = dir.path().join("out.parquet");
    let mut args: Vec<String> = vec!["convert".into(), format.into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-o".into(), out.display().to_string()]);
    let stdout = trace_ok(&args);
    (read_rows(&out), stdout)
}

/// Runs a conversion that must fail; returns stderr and checks no file was left.
fn convert_err(format: &str, input: &Path, extra: &[&str]) -> String {
    let dir = tempdir();
    let out = dir.path().join("out.parquet");
    let mut args: Vec<String> = vec!["convert".into(), format.into(), input.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-o".into(), out.display().to_string()]);
    let stderr = trace_err(&args);
    assert!(
        files_in(dir.path()).is_empty(),
        "left {:?}",
        files_in(dir.path())
    );
    stderr
}

fn arrivals(rows: &[TraceRow]) -> Vec<f64> {
    rows.iter()
        .map(|r| r.arrival_ms.expect("arrival"))
        .collect()
}

/// Token-only rows, first at 0, in nondecreasing arrival order, unique request ids.
fn check_timed(rows: &[TraceRow], source_prefix: &str) {
    let a = arrivals(rows);
    assert_eq!(a.first().copied(), Some(0.0));
    assert!(a.windows(2).all(|w| w[0] <= w[1]), "arrivals not monotone");
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids.len(), rows.len());
    for r in rows {
        assert!(r.messages.is_empty());
        assert!(r.input_tokens.is_some_and(|t| t > 0));
        assert!(r.output_tokens.is_some());
        assert!(r.source.starts_with(source_prefix), "{}", r.source);
    }
}

fn data_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("reads");
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

fn block_size(path: &Path) -> Option<u32> {
    TraceReader::open(path)
        .expect("opens")
        .metadata()
        .block_size
}

// ------------------------------------------------------------------ mooncake

#[test]
fn mooncake_samples_convert_whole() {
    for name in ["conversation_trace.jsonl", "synthetic_trace.jsonl"] {
        let input = shared_data(&format!("mooncake/{name}"));
        let (rows, _) = convert("mooncake", std::slice::from_ref(&input), &[]);
        assert_eq!(rows.len(), data_lines(&input), "{name}");
        check_timed(&rows, "mooncake");
        for r in &rows {
            let blocks = r.hash_ids.as_ref().expect("hash_ids").len() as u32;
            assert_eq!(blocks, r.input_tokens.expect("input").div_ceil(512));
        }
    }
    let (rows, _) = convert(
        "mooncake",
        &[shared_data("mooncake/conversation_trace.jsonl")],
        &[],
    );
    assert_eq!(rows[0].session_id, "conversation_trace-000001");
    assert_eq!(rows[0].hash_ids.as_deref().map(|h| h[0]), Some(0));
    // Many rows share one instant in this file: ties keep file order.
    assert_eq!(rows[1].session_id, "conversation_trace-000002");
}

#[test]
fn mooncake_block_size_and_stable_ids() {
    let dir = tempdir();
    let out = dir.path().join("m.parquet");
    let input = fixture("mooncake/unordered.jsonl");
    trace_ok([
        "convert".as_ref(),
        "mooncake".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(block_size(&out), Some(512));
    let first = read_rows(&out);
    let (again, _) = convert("mooncake", &[input], &[]);
    assert_eq!(first, again);
}

#[test]
fn mooncake_unordered_input_is_sorted_and_empty_prompt_skipped() {
    let (rows, stdout) = convert(
        "mooncake",
        &[fixture("mooncake/unordered.jsonl")],
        &["--json"],
    );
    let ids: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "unordered-000002",
            "unordered-000003",
            "unordered-000006",
            "unordered-000001"
        ]
    );
    assert_eq!(arrivals(&rows), [0.0, 0.0, 1500.0, 2000.0]);
    assert!(
        stdout.contains("\"empty prompt (0 input tokens)\": 1"),
        "{stdout}"
    );
    check_timed(&rows, "mooncake");
}

#[test]
fn mooncake_hash_mismatch_is_bad_unless_allowed_or_skipped() {
    let input = fixture("mooncake/bad_hash.jsonl");
    let err = convert_err("mooncake", &input, &[]);
    assert!(err.contains("bad_hash.jsonl:3"), "{err}");
    assert!(err.contains("hash_ids"), "{err}");
    let (rows, stdout) = convert("mooncake", std::slice::from_ref(&input), &["--skip-bad"]);
    assert_eq!(rows.len(), 3);
    assert!(stdout.contains("hash_ids length mismatch"), "{stdout}");
    let (rows, _) = convert("mooncake", &[input], &["--allow-hash-mismatch"]);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2].hash_ids.as_ref().map(Vec::len), Some(2));
}

#[test]
fn mooncake_non_numeric_length_names_file_and_line() {
    let err = convert_err("mooncake", &fixture("mooncake/bad_length.jsonl"), &[]);
    assert!(err.contains("bad_length.jsonl:2"), "{err}");
}

#[test]
fn mooncake_length_filters_apply() {
    let input = shared_data("mooncake/conversation_trace.jsonl");
    let (all, _) = convert("mooncake", std::slice::from_ref(&input), &[]);
    let (short, stdout) = convert(
        "mooncake",
        &[input],
        &["--max-input-tokens", "8000", "--max-output-tokens", "400"],
    );
    let expected = all
        .iter()
        .filter(|r| r.input_tokens <= Some(8000) && r.output_tokens <= Some(400))
        .count();
    assert!(expected > 0 && expected < all.len());
    assert_eq!(short.len(), expected);
    assert!(stdout.contains("filtered out"), "{stdout}");
}

// ------------------------------------------------------------------ azure

#[test]
fn azure_2023_samples_keep_sub_millisecond_precision() {
    for name in [
        "AzureLLMInferenceTrace_code.csv",
        "AzureLLMInferenceTrace_conv.csv",
    ] {
        let input = shared_data(&format!("azure_llm_2023/{name}"));
        let (rows, _) = convert("azure", std::slice::from_ref(&input), &[]);
        assert_eq!(rows.len(), data_lines(&input) - 1, "{name}");
        check_timed(&rows, "azure");
    }
    // code.csv: 18:17:03.9799600 then 18:17:04.0319600 -> 52 ms apart.
    let (rows, _) = convert(
        "azure",
        &[shared_data(
            "azure_llm_2023/AzureLLMInferenceTrace_code.csv",
        )],
        &[],
    );
    assert!((rows[1].arrival_ms.expect("t") - 52.0).abs() < 1e-6);
    assert_eq!(rows[0].input_tokens, Some(4808));
    assert_eq!(rows[0].output_tokens, Some(10));
    // The last row (no final newline) is read.
    let last = rows.iter().find(|r| r.session_id.ends_with("-008820"));
    assert!(
        last.is_some_and(|r| r.input_tokens == Some(549)),
        "{:?}",
        &rows[rows.len() - 3..]
    );
    let (both, _) = convert("azure", &[shared_data("azure_llm_2023")], &[]);
    assert_eq!(both.len(), 8_819 + 19_366);
    check_timed(&both, "azure");
}

#[test]
fn azure_2024_notebook_rows_convert() {
    let input = shared_data(
        "azure_llm_2024_notebook_rows/AzureLLMInferenceTrace_code_1week.head5_tail5.from_notebook.csv",
    );
    let (rows, _) = convert("azure", &[input], &[]);
    assert_eq!(rows.len(), 10);
    check_timed(&rows, "azure");
    // 00:00:00.009930 -> 00:00:00.017335
    assert!((rows[1].arrival_ms.expect("t") - 7.405).abs() < 1e-9);
    // The last row is 6 days, 23:59:59.929501 after midnight.
    let end = ((6.0 * 86_400.0 + 86_399.0) * 1000.0 + 929.501) - 9.930;
    assert!((rows[9].arrival_ms.expect("t") - end).abs() < 1e-6);
}

#[test]
fn azure_mixed_offsets_and_zero_fractions() {
    let (rows, stdout) = convert("azure", &[fixture("azure/mixed_2024.csv")], &["--json"]);
    assert_eq!(arrivals(&rows), [0.0, 0.25, 1000.0, 1500.0, 3000.0]);
    assert_eq!(
        rows.iter()
            .map(|r| r.input_tokens.expect("in"))
            .collect::<Vec<_>>(),
        [100, 200, 300, 400, 500]
    );
    assert!(
        stdout.contains("\"empty prompt (0 input tokens)\": 1"),
        "{stdout}"
    );
}

#[test]
fn azure_columns_are_found_by_name_in_any_case() {
    let (rows, _) = convert("azure", &[fixture("azure/reordered_columns.csv")], &[]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].input_tokens, Some(12));
    assert_eq!(rows[0].output_tokens, Some(4));
    // 100 ns apart, kept.
    let gap = rows[1].arrival_ms.expect("t");
    assert!((gap - 0.0001).abs() < 1e-12, "{gap}");
}

#[test]
fn azure_bad_rows_name_file_and_line() {
    let err = convert_err("azure", &fixture("azure/negative_tokens.csv"), &[]);
    assert!(err.contains("negative_tokens.csv:3"), "{err}");
    assert!(err.contains("ContextTokens"), "{err}");
    // CRLF line ends do not shift the line named.
    let err = convert_err("azure", &fixture("azure/crlf_bad_row.csv"), &[]);
    assert!(err.contains("crlf_bad_row.csv:3"), "{err}");
    let err = convert_err("azure", &fixture("azure/bad_timestamp.csv"), &[]);
    assert!(err.contains("bad_timestamp.csv:3"), "{err}");
    let err = convert_err(
        "azure",
        &fixture("azure/missing_column.csv"),
        &["--skip-bad"],
    );
    assert!(err.contains("missing_column.csv:1"), "{err}");
    assert!(err.contains("GeneratedTokens"), "{err}");
    let (rows, stdout) = convert(
        "azure",
        &[fixture("azure/negative_tokens.csv")],
        &["--skip-bad"],
    );
    assert_eq!(rows.len(), 2);
    assert!(stdout.contains("bad number"), "{stdout}");
}

// ------------------------------------------------------------------ burstgpt

#[test]
fn burstgpt_v1_skips_the_17_failed_rows() {
    let input = shared_data("burstgpt/BurstGPT_1.first400.csv");
    let (rows, stdout) = convert("burstgpt", &[input], &["--json"]);
    assert_eq!(rows.len(), 400 - 17);
    assert!(
        stdout.contains("\"failed request (0 response tokens)\": 17"),
        "{stdout}"
    );
    check_timed(&rows, "burstgpt/");
    assert!(rows.iter().all(|r| r.turn == 0));
    // Timestamp 5 s is the first row; 45 s the second.
    assert_eq!(rows[1].arrival_ms, Some(40_000.0));
    assert_eq!(rows[0].source, "burstgpt/ChatGPT/Conversation log");
    let sources: BTreeSet<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    assert!(
        sources.contains("burstgpt/GPT-4/API log") || sources.len() >= 3,
        "{sources:?}"
    );
}

#[test]
fn burstgpt_v3_groups_135_sessions() {
    let input = shared_data("burstgpt/BurstGPT_3.first400.csv");
    let (rows, _) = convert("burstgpt", std::slice::from_ref(&input), &[]);
    // 135 named sessions in the file; the one whose only row failed is
    // skipped; 6 API-log rows without a session id are single-turn.
    let mut sessions: BTreeMap<&str, Vec<&TraceRow>> = BTreeMap::new();
    for r in &rows {
        sessions.entry(r.session_id.as_str()).or_default().push(r);
    }
    assert_eq!(rows.len(), 399);
    assert_eq!(sessions.len(), 134 + 6);
    assert!(sessions.values().filter(|s| s.len() == 1).count() >= 6);
    let longest = &sessions["313b905a-2252-45ca-bf14-46e87f6233dd"];
    assert_eq!(longest.len(), 24);
    for (turn, r) in longest.iter().enumerate() {
        assert_eq!(r.turn as usize, turn);
    }
    assert!(
        longest
            .windows(2)
            .all(|w| w[0].arrival_ms <= w[1].arrival_ms)
    );
    // Turn 1 arrives 3779 s after turn 0, whose response took 5 s.
    assert_eq!(longest[1].think_ms, Some(3_774_000.0));
    assert_eq!(rows[0].arrival_ms, Some(0.0));
    // Sessions are written by first arrival.
    let mut firsts = Vec::new();
    for r in rows.iter().filter(|r| r.turn == 0) {
        firsts.push(r.arrival_ms.expect("t"));
    }
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]));
    let named: BTreeSet<String> = std::fs::read_to_string(&input)
        .expect("reads")
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split(',')
                .nth(1)
                .filter(|s| !s.is_empty())
                .map(String::from)
        })
        .collect();
    assert_eq!(named.len(), 135);
}

#[test]
fn burstgpt_sessions_think_time_and_failed_rows() {
    let input = fixture("burstgpt/v3_sessions.csv");
    let (rows, stdout) = convert("burstgpt", std::slice::from_ref(&input), &["--json"]);
    let view: Vec<(&str, u32, f64, Option<f64>)> = rows
        .iter()
        .map(|r| {
            (
                r.session_id.as_str(),
                r.turn,
                r.arrival_ms.expect("t"),
                r.think_ms,
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("s-a", 0, 0.0, None),
            ("s-a", 1, 9500.0, Some(7500.0)),
            ("s-a", 2, 79_500.0, Some(69_000.0)),
            ("v3_sessions-000004", 0, 29_500.0, None),
            ("s-b", 0, 89_500.0, None),
        ]
    );
    assert!(
        stdout.contains("\"failed request (0 response tokens)\": 2"),
        "{stdout}"
    );
    assert_eq!(rows[3].source, "burstgpt/ChatGPT/API log");
    let (rows, stdout) = convert("burstgpt", &[input], &["--include-failed", "--json"]);
    let s_a: Vec<(u32, Option<u32>, Option<f64>)> = rows
        .iter()
        .filter(|r| r.session_id == "s-a")
        .map(|r| (r.turn, r.output_tokens, r.think_ms))
        .collect();
    assert_eq!(
        s_a,
        [
            (0, Some(10), None),
            (1, Some(12), Some(7500.0)),
            (2, Some(0), Some(4000.0)),
            (3, Some(15), Some(65_000.0)),
        ]
    );
    assert!(
        stdout.contains("\"empty prompt (0 input tokens)\": 1"),
        "{stdout}"
    );
}

#[test]
fn burstgpt_bad_input() {
    let err = convert_err("burstgpt", &fixture("burstgpt/bad_tokens.csv"), &[]);
    assert!(err.contains("bad_tokens.csv:3"), "{err}");
    assert!(err.contains("Request tokens"), "{err}");
    let (rows, _) = convert(
        "burstgpt",
        &[fixture("burstgpt/bad_tokens.csv")],
        &["--skip-bad"],
    );
    assert_eq!(rows.len(), 2);
    let err = convert_err("burstgpt", &fixture("burstgpt/no_timestamp.csv"), &[]);
    assert!(
        err.contains("no_timestamp.csv:1") && err.contains("Timestamp"),
        "{err}"
    );
}

// ------------------------------------------------------------------ bailian

#[test]
fn bailian_chains_become_sessions() {
    let dir = tempdir();
    let out = dir.path().join("b.parquet");
    let input = fixture("bailian/chains.jsonl");
    let stdout = trace_ok([
        "convert".as_ref(),
        "bailian".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(block_size(&out), Some(16));
    let rows = read_rows(&out);
    let view: Vec<(&str, u32, f64, Option<f64>, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.session_id.as_str(),
                r.turn,
                r.arrival_ms.expect("t"),
                r.think_ms,
                r.source.as_str(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("10", 0, 0.0, None, "bailian/text"),
            ("10", 1, 10_250.0, Some(10_250.0), "bailian/text"),
            ("10", 2, 29_750.0, Some(19_500.0), "bailian/search"),
            ("20", 0, 750.0, None, "bailian/image"),
            ("30", 0, 4750.0, None, "bailian/file"),
            ("13", 0, 39_750.0, None, "bailian/text"),
        ]
    );
    assert_eq!(rows[2].hash_ids, Some(vec![1, 2, 3, 4, 5, 7]));
    assert_eq!(rows[2].input_tokens, Some(90));
    assert!(
        stdout.contains("\"empty prompt (0 input tokens)\": 1"),
        "{stdout}"
    );
}

#[test]
fn bailian_bad_record_names_file_and_line() {
    let input = fixture("bailian/bad_length.jsonl");
    let err = convert_err("bailian", &input, &[]);
    assert!(err.contains("bad_length.jsonl:2"), "{err}");
    // Skipping the bad middle record orphans its child, which starts a session.
    let (rows, _) = convert("bailian", &[input], &["--skip-bad"]);
    let ids: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(ids, ["1", "3"]);
}
