//! Integration tests: interop.
//!
//! Traces written by the real `trace` binary are read back by other tools
//! (Polars, DuckDB and PyArrow, through `tests/interop/check_trace.py`),
//! which check the column names and exact types, the key-value metadata,
//! row counts and cell values. The cell values expected are those the
//! `traces` reader returns for the same rows, plus a few facts taken from
//! the input files themselves.
//!
//! The Python side runs with `$TRACE_PYTHON`, the venv interpreter that
//! `scripts/test.sh` sets up; without it these tests fail on purpose.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use traces::TraceRow;

use crate::util::{read_rows, shared_data, trace_ok};

/// The Python interpreter that has Polars, DuckDB and PyArrow.
fn python() -> PathBuf {
    match std::env::var_os("TRACE_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "TRACE_PYTHON is not set. The interop tests read traces with Polars and DuckDB \
             from a Python venv: run scripts/test.sh (it creates .venv and sets TRACE_PYTHON), \
             or set TRACE_PYTHON to a python that has polars, duckdb and pyarrow"
        ),
    }
}

fn checker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/check_trace.py")
}

/// Runs `check_trace.py TRACE EXPECTED`.
fn run_checker(trace: &Path, expected: &Value) -> Output {
    let python = python();
    Command::new(&python)
        .arg(checker())
        .arg(trace)
        .arg(expected.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (TRACE_PYTHON): {e}", python.display()))
}

fn assert_checks_pass(trace: &Path, expected: &Value) {
    let out = run_checker(trace, expected);
    assert!(
        out.status.success(),
        "check_trace.py failed ({}) on {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        trace.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `trace convert FORMAT INPUTS... -o DIR/NAME.parquet`; returns the output path.
fn convert(format: &str, inputs: &[PathBuf], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.parquet"));
    let mut args = vec!["convert".into(), format.into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    args.extend(["-o".into(), out.as_os_str().to_owned()]);
    trace_ok(args);
    out
}

/// A row's messages as Python sees them: every struct field present, None as null.
fn messages_json(row: &TraceRow) -> Value {
    row.messages
        .iter()
        .map(|m| {
            json!({
                "role": m.role,
                "content": m.content,
                "tool_calls": m.tool_calls,
                "tool_call_id": m.tool_call_id,
            })
        })
        .collect()
}

/// Every column of row `index`, as cells for `check_trace.py`.
fn row_cells(index: usize, row: &TraceRow) -> Vec<Value> {
    let columns = [
        ("request_id", json!(row.request_id)),
        ("session_id", json!(row.session_id)),
        ("turn", json!(row.turn)),
        ("arrival_ms", json!(row.arrival_ms)),
        ("think_ms", json!(row.think_ms)),
        ("messages", messages_json(row)),
        ("reset_context", json!(row.reset_context)),
        ("reference_output", json!(row.reference_output)),
        ("reference_tool_calls", json!(row.reference_tool_calls)),
        ("input_tokens", json!(row.input_tokens)),
        ("hash_ids", json!(row.hash_ids)),
        ("output_tokens", json!(row.output_tokens)),
        ("overflow", json!(row.overflow)),
        ("source", json!(row.source)),
        ("new_tokens", json!(row.new_tokens)),
        ("prompt_tokens", json!(row.prompt_tokens)),
        (
            "reference_output_tokens",
            json!(row.reference_output_tokens),
        ),
    ];
    columns
        .into_iter()
        .map(|(column, value)| json!({"row": index, "path": [column], "equals": value}))
        .collect()
}

/// Expectations that agree with the `traces` reader: the row count, the
/// number of sessions, and every cell of the first, middle and last rows.
fn expected_from_reader(trace: &Path) -> Value {
    let rows = read_rows(trace);
    assert!(!rows.is_empty(), "{} has no rows", trace.display());
    let sessions: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.session_id.as_str()).collect();
    let mut picks = vec![0, rows.len() / 2, rows.len() - 1];
    picks.dedup();
    let cells: Vec<Value> = picks
        .into_iter()
        .flat_map(|i| row_cells(i, &rows[i]))
        .collect();
    json!({
        "rows": rows.len(),
        "distinct": {"session_id": sessions.len()},
        "cells": cells,
    })
}

/// Appends `more` cells to `expected["cells"]`.
fn with_cells(mut expected: Value, more: Vec<Value>) -> Value {
    if let Some(cells) = expected["cells"].as_array_mut() {
        cells.extend(more);
    }
    expected
}

fn cell(row: usize, path: Value, equals: impl Into<Value>) -> Value {
    json!({"row": row, "path": path, "equals": equals.into()})
}

#[test]
fn sharegpt_fastchat_reads_in_polars_and_duckdb() {
    let dir = crate::util::tempdir();
    let input = shared_data("sharegpt/fastchat_dummy_conversation.json");
    let trace = convert("sharegpt", &[input], dir.path(), "fastchat");
    let mut expected = expected_from_reader(&trace);
    // Facts from the input file: 500 records, `identity_0` asks two questions.
    assert_eq!(expected["distinct"]["session_id"], 500);
    expected["nulls"] = json!({"hash_ids": expected["rows"], "arrival_ms": expected["rows"]});
    let expected = with_cells(
        expected,
        vec![
            cell(0, json!(["request_id"]), "identity_0#0"),
            cell(0, json!(["messages", 0, "role"]), "user"),
            cell(0, json!(["messages", 0, "content"]), "Who are you?"),
            cell(1, json!(["request_id"]), "identity_0#1"),
            cell(1, json!(["messages", 0, "content"]), "Have a nice day!"),
            cell(1, json!(["reference_output"]), "You too!"),
            cell(1, json!(["source"]), "sharegpt"),
        ],
    );
    assert_checks_pass(&trace, &expected);
}

#[test]
fn sharegpt_chinese_tool_calls_read_in_polars_and_duckdb() {
    let dir = crate::util::tempdir();
    let input = shared_data("sharegpt/llamafactory_glaive_toolcall_zh_demo.json");
    let trace = convert("sharegpt", &[input], dir.path(), "glaive_zh");
    let rows = read_rows(&trace);
    let tool_row = rows
        .iter()
        .position(|r| r.reference_tool_calls.is_some())
        .expect("the glaive sample has function calls");
    let tool_result_row = rows
        .iter()
        .position(|r| r.messages.iter().any(|m| m.role == "tool"))
        .expect("the glaive sample has observations");
    let expected = with_cells(
        expected_from_reader(&trace),
        [
            // Non-ASCII text, verbatim from the first record of the input.
            vec![cell(
                0,
                json!(["messages", 0, "content"]),
                "我需要为John Doe生成一张发票。他购买了2个苹果，每个$1，以及3根香蕉，每根$0.5。",
            )],
            row_cells(tool_row, &rows[tool_row]),
            row_cells(tool_result_row, &rows[tool_result_row]),
        ]
        .concat(),
    );
    assert_checks_pass(&trace, &expected);
}

#[test]
fn sharegpt_several_inputs_in_one_trace() {
    let dir = crate::util::tempdir();
    let inputs = [
        shared_data("sharegpt/axolotl_conversation.json"),
        shared_data("sharegpt/axolotl_conversation.missingturns.json"),
        shared_data("sharegpt/llamafactory_glaive_toolcall_en_demo.json"),
    ];
    let trace = convert("sharegpt", &inputs, dir.path(), "mixed");
    let expected = with_cells(
        expected_from_reader(&trace),
        vec![cell(
            0,
            json!(["messages", 0, "content"]),
            "how could i implement a minesweeper algorithm that utilises algebraic topology to solve boards?",
        )],
    );
    assert_checks_pass(&trace, &expected);
}

/// Runs `trace ARGS... -o DIR/NAME.parquet` (any converter or generator).
fn trace_to(args: &[&str], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.parquet"));
    let mut full: Vec<std::ffi::OsString> = args.iter().map(|a| a.into()).collect();
    full.extend(["-o".into(), out.as_os_str().to_owned()]);
    trace_ok(full);
    out
}

fn data(rel: &str) -> String {
    shared_data(rel).display().to_string()
}

#[test]
fn mooncake_hash_ids_and_timestamps_read_in_polars_and_duckdb() {
    let dir = crate::util::tempdir();
    let input = data("mooncake/conversation_trace.jsonl");
    let trace = trace_to(&["convert", "mooncake", &input], dir.path(), "mooncake");
    let mut expected = expected_from_reader(&trace);
    // Facts from the input: 12,031 rows, 512-token blocks, and its first line.
    assert_eq!(expected["rows"], 12031);
    expected["metadata"] = json!({"trace.block_size": "512"});
    expected["nulls"] = json!({"hash_ids": 0, "arrival_ms": 0});
    let expected = with_cells(
        expected,
        vec![
            cell(0, json!(["hash_ids"]), json!((0..14).collect::<Vec<u64>>())),
            cell(0, json!(["input_tokens"]), 6758),
            cell(0, json!(["output_tokens"]), 500),
            cell(0, json!(["arrival_ms"]), 0.0),
            cell(0, json!(["messages"]), json!([])),
        ],
    );
    assert_checks_pass(&trace, &expected);
}

#[test]
fn azure_and_burstgpt_token_traces_read_in_polars_and_duckdb() {
    let dir = crate::util::tempdir();
    let azure = data("azure_llm_2023/AzureLLMInferenceTrace_conv.csv");
    let trace = trace_to(&["convert", "azure", &azure], dir.path(), "azure");
    let mut expected = expected_from_reader(&trace);
    expected["nulls"] = json!({"arrival_ms": 0, "input_tokens": 0, "output_tokens": 0});
    // The first data line of the CSV: `2023-11-16 18:15:46.6805900,374,44`.
    let expected = with_cells(
        expected,
        vec![
            cell(0, json!(["input_tokens"]), 374),
            cell(0, json!(["output_tokens"]), 44),
        ],
    );
    assert_checks_pass(&trace, &expected);

    let burst = data("burstgpt/BurstGPT_3.first400.csv");
    let trace = trace_to(&["convert", "burstgpt", &burst], dir.path(), "burstgpt");
    assert_checks_pass(&trace, &expected_from_reader(&trace));
}

#[test]
fn openai_and_longbench_text_traces_read_in_polars_and_duckdb() {
    let dir = crate::util::tempdir();
    let openai = data("openai_messages/openai_cookbook_toy_chat_fine_tuning.jsonl");
    let trace = trace_to(&["convert", "openai", &openai], dir.path(), "openai");
    let rows = read_rows(&trace);
    let user = rows[0]
        .messages
        .iter()
        .position(|m| m.role == "user")
        .expect("the first record has a user message");
    let expected = with_cells(
        expected_from_reader(&trace),
        vec![cell(
            0,
            json!(["messages", user, "content"]),
            "I fell off my bike today.",
        )],
    );
    assert_checks_pass(&trace, &expected);

    let longbench = data("longbench/qasper_rec0.longbench_canonical.jsonl");
    let trace = trace_to(
        &["convert", "longbench", &longbench],
        dir.path(),
        "longbench",
    );
    assert_checks_pass(&trace, &expected_from_reader(&trace));
}

#[test]
fn swe_agent_trajectories_read_in_polars_and_duckdb() {
    // Tool calls, tool results with their ids, think times and turns
    // written whole with reset_context.
    let dir = crate::util::tempdir();
    let traj = data("agent_traces/swe-agent_function_calling_marshmallow-1867.traj");
    let trace = trace_to(&["convert", "swe-agent", &traj], dir.path(), "swe-agent");
    let rows = read_rows(&trace);
    assert!(rows.iter().any(|r| r.reset_context));
    let expected = with_cells(
        expected_from_reader(&trace),
        vec![
            cell(1, json!(["messages", 0, "role"]), "tool"),
            cell(0, json!(["source"]), "swe-agent"),
        ],
    );
    assert_checks_pass(&trace, &expected);
}

#[test]
fn synthetic_traces_read_in_polars_and_duckdb() {
    let dir = crate::util::tempdir();
    let args = [
        "synth",
        "random",
        "--requests",
        "40",
        "--prefix-len",
        "64",
        "--block-size",
        "16",
    ];
    let trace = trace_to(&args, dir.path(), "random");
    let mut expected = expected_from_reader(&trace);
    assert_eq!(expected["rows"], 40);
    expected["metadata"] = json!({"trace.block_size": "16"});
    assert_checks_pass(&trace, &expected);

    let trace = trace_to(&["synth", "agent"], dir.path(), "agent");
    assert_checks_pass(&trace, &expected_from_reader(&trace));
}

#[test]
fn checker_reports_wrong_expectations() {
    // The checker must be able to fail: a wrong count, a wrong cell and a
    // wrong metadata value are each reported, with exit status 1.
    let dir = crate::util::tempdir();
    let input = shared_data("sharegpt/fastchat_dummy_conversation.json");
    let trace = convert("sharegpt", &[input], dir.path(), "fastchat");
    let expected = json!({
        "rows": 999,
        "metadata": {"trace.block_size": "16"},
        "cells": [cell(0, json!(["request_id"]), "identity_1#0")],
    });
    let out = run_checker(&trace, &expected);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    for needle in [
        "polars row count: got 1000, want 999",
        "duckdb row count: got 1000, want 999",
        "duckdb metadata trace.block_size",
        "pyarrow metadata trace.block_size",
        "polars row 0 ['request_id']: got 'identity_0#0'",
        "duckdb row 0 ['request_id']: got 'identity_0#0'",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn checker_rejects_a_file_that_is_not_a_trace() {
    // A Parquet file with other columns fails the schema checks.
    let dir = crate::util::tempdir();
    let path = dir.path().join("other.parquet");
    let script = "import sys, pyarrow as pa, pyarrow.parquet as pq; \
                  pq.write_table(pa.table({'request_id': ['a'], 'turn': pa.array([0], pa.int64())}), sys.argv[1])";
    let status = Command::new(python())
        .args(["-c", script])
        .arg(&path)
        .status()
        .expect("python runs");
    assert!(status.success());
    let out = run_checker(&path, &json!({"rows": 1}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("polars column names"), "{stderr}");
    assert!(
        stderr.contains("trace.schema_version: got None"),
        "{stderr}"
    );
}

/// The compression codec of every column chunk of a Parquet file (its name
/// only: a file does not record the level).
fn codecs_in(path: &Path) -> std::collections::BTreeSet<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).expect("the trace opens");
    let reader = SerializedFileReader::new(file).expect("the trace is Parquet");
    reader
        .metadata()
        .row_groups()
        .iter()
        .flat_map(|group| group.columns().iter().map(|c| codec_name(c.compression())))
        .collect()
}

fn codec_name(compression: parquet::basic::Compression) -> String {
    let name = compression.to_string();
    name.split('(').next().unwrap_or_default().to_string()
}

/// Just `codec` (as the parquet crate names it) in every column chunk.
pub(crate) fn assert_codec(path: &Path, codec: &str) {
    let found = codecs_in(path);
    assert_eq!(
        found.iter().map(String::as_str).collect::<Vec<_>>(),
        [codec],
        "{}",
        path.display()
    );
}

#[test]
fn every_codec_reads_in_polars_duckdb_and_pyarrow() {
    let dir = crate::util::tempdir();
    let input = data("sharegpt/llamafactory_glaive_toolcall_zh_demo.json");
    let default = trace_to(&["convert", "sharegpt", &input], dir.path(), "default");
    assert_codec(&default, "SNAPPY");
    let expected = expected_from_reader(&default);
    for (flag, codec) in [
        ("snappy", "SNAPPY"),
        ("zstd", "ZSTD"),
        ("lz4", "LZ4_RAW"),
        ("none", "UNCOMPRESSED"),
    ] {
        let args = ["convert", "sharegpt", &input, "--compression", flag];
        let trace = trace_to(&args, dir.path(), flag);
        assert_codec(&trace, codec);
        assert_eq!(read_rows(&trace), read_rows(&default), "{flag}");
        assert_checks_pass(&trace, &expected);
    }
}

#[test]
fn synth_and_mix_take_the_compression_flag() {
    let dir = crate::util::tempdir();
    let args = [
        "synth",
        "random",
        "--requests",
        "30",
        "--compression",
        "zstd",
    ];
    let random = trace_to(&args, dir.path(), "random");
    assert_codec(&random, "ZSTD");
    let agent = trace_to(
        &["synth", "agent", "--compression", "lz4"],
        dir.path(),
        "agent",
    );
    assert_codec(&agent, "LZ4_RAW");
    let a = format!("{}:0.5", random.display());
    let b = format!("{}:0.5", agent.display());
    let mix = trace_to(&["mix", &a, &b, "--compression", "none"], dir.path(), "mix");
    assert_codec(&mix, "UNCOMPRESSED");
    assert_checks_pass(&mix, &expected_from_reader(&mix));
    let err =
        crate::util::trace_err(["synth", "agent", "--compression", "gzip", "-o", "x.parquet"]);
    assert!(
        err.contains("possible values: snappy, zstd, lz4, none"),
        "{err}"
    );
}
