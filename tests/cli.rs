//! Integration tests: `inspect`, `mix`, `demo`, and the trace reader's
//! refusals (not a trace, unknown version, missing file).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::util::*;

fn convert_fastchat(out: &Path, extra: &[&str]) {
    let input = shared_data("sharegpt/fastchat_dummy_conversation.json");
    let mut args: Vec<std::ffi::OsString> = vec![
        "convert".into(),
        "sharegpt".into(),
        input.into(),
        "-o".into(),
        out.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    trace_ok(args);
}

#[test]
fn inspect_reports_counts_and_metadata() {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    convert_fastchat(&out, &[]);
    let rows = read_rows(&out);
    let v: serde_json::Value = serde_json::from_str(&trace_ok([
        "inspect".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]))
    .expect("json");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["rows"], rows.len());
    assert_eq!(v["sessions"], 500);
    assert_eq!(v["sources"]["sharegpt"], rows.len());
    assert_eq!(v["source"]["format"], "sharegpt");
    // The format's options as JSON fields, for scripts to read.
    assert_eq!(v["source"]["format_options"]["first_turn_only"], false);
    assert_eq!(v["stats"]["records"], 500);
    let max_turns = v["turns_per_session"]["max"].as_f64().expect("max");
    assert!((1.0..=3.0).contains(&max_turns), "{max_turns}");
    let text = trace_ok(["inspect".as_ref(), out.as_os_str()]);
    assert!(text.contains("sessions     500"), "{text}");
}

/// Sessions that all arrive at once have no rate to show: the text says
/// so instead of "null req/s".
#[test]
fn inspect_says_a_burst_when_every_arrival_is_at_one_time() {
    let dir = tempdir();
    let out = dir.path().join("burst.parquet");
    trace_ok([
        "synth".as_ref(),
        "agent".as_ref(),
        "--users".as_ref(),
        "3".as_ref(),
        "--turns".as_ref(),
        "2".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let text = trace_ok(["inspect".as_ref(), out.as_os_str()]);
    assert!(
        text.contains("arrivals     3 rows, all at 0.0 ms (a burst)"),
        "{text}"
    );
    assert!(!text.contains("null req/s"), "{text}");
}

#[test]
fn mix_draws_sessions_by_weight_without_repeats() {
    let dir = tempdir();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    convert_fastchat(&a, &["--limit", "100"]);
    let glaive = shared_data("sharegpt/llamafactory_glaive_toolcall_en_demo.json");
    trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        glaive.as_os_str(),
        "-o".as_ref(),
        b.as_os_str(),
        "--first-turn-only".as_ref(),
    ]);
    let out = dir.path().join("mix.parquet");
    trace_ok([
        "mix".to_string(),
        format!("{}:0.75", a.display()),
        format!("{}:0.25", b.display()),
        "-o".into(),
        out.display().to_string(),
        "--sessions".into(),
        "80".into(),
        "--seed".into(),
        "1".into(),
    ]);
    let rows = read_rows(&out);
    let mut sessions = std::collections::HashMap::<String, String>::new();
    for r in &rows {
        sessions.insert(r.session_id.clone(), r.source.clone());
        assert_eq!(r.request_id, format!("{}#{}", r.session_id, r.turn));
    }
    assert_eq!(sessions.len(), 80);
    let from_a = rows
        .iter()
        .filter(|r| r.session_id.starts_with("identity_") && r.turn == 0)
        .count();
    assert_eq!(from_a, 60);
    // Asking for more than the inputs hold is an error, not a repeat.
    let err = trace_err([
        "mix".to_string(),
        format!("{}:0.5", a.display()),
        format!("{}:0.5", b.display()),
        "-o".into(),
        out.display().to_string(),
        "--sessions".into(),
        "1000".into(),
    ]);
    assert!(err.contains("lower --sessions"), "{err}");
    let err = trace_err(["mix", "nocolon", "-o", "x.parquet"]);
    assert!(err.contains("PATH:WEIGHT"), "{err}");
}

#[test]
fn demo_runs_with_nothing_but_the_binary() {
    let dir = tempdir();
    let results = dir.path().join("results");
    let stdout = trace_ok([
        "demo".as_ref(),
        "--results-dir".as_ref(),
        results.as_os_str(),
    ]);
    assert!(
        stdout.contains("listening on http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("Query the results yourself"), "{stdout}");
    let trace = results.join("demo-agent-trace.parquet");
    let trace_rows = read_rows(&trace);
    assert!(trace_rows.len() >= 36, "12 users with 3-5 turns");
    let runs: Vec<_> = std::fs::read_dir(&results)
        .expect("results")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1);
    let rows = traces::results::read_parts(runs[0].join("requests")).expect("parts");
    // Three levels, two rounds, every turn of the trace each time.
    assert_eq!(rows.len(), trace_rows.len() * 6);
    assert!(
        rows.iter()
            .all(|r| r.status == Some(traces::results::Status::Ok))
    );
    // Each level starts on an emptied cache (--cache-reset), and its warm
    // round finds what its first round left there.
    let cached = |level: f64, round: u32| -> u64 {
        rows.iter()
            .filter(|r| r.load_value == level && r.round == round)
            .filter_map(|r| r.cached_tokens)
            .map(u64::from)
            .sum()
    };
    for level in [2.0, 4.0, 8.0] {
        assert!(
            cached(level, 2) > cached(level, 1),
            "qps {level}: round 2 reuses round 1's prompts ({} against {})",
            cached(level, 2),
            cached(level, 1)
        );
    }
    assert!(runs[0].join("summary.json").is_file());
    assert!(runs[0].join("server_metrics").is_dir());
}

fn write_parquet_with_version(path: &Path, version: Option<&str>) {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "request_id",
        arrow_schema::DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["a#0"])) as ArrayRef],
    )
    .expect("batch");
    let kv = version.map(|v| vec![KeyValue::new("trace.schema_version".into(), v.to_string())]);
    let props = WriterProperties::builder()
        .set_key_value_metadata(kv)
        .build();
    let file = fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn unknown_schema_version_and_foreign_files_are_refused() {
    let dir = tempdir();
    let future = dir.path().join("future.parquet");
    write_parquet_with_version(&future, Some("99"));
    let err = trace_err(["inspect".as_ref(), future.as_os_str()]);
    assert!(err.contains("future.parquet"), "{err}");
    assert!(err.contains("schema version 99"), "{err}");

    let foreign = dir.path().join("foreign.parquet");
    write_parquet_with_version(&foreign, None);
    let err = trace_err(["inspect".as_ref(), foreign.as_os_str()]);
    assert!(err.contains("not a trace file"), "{err}");

    let text = dir.path().join("notes.parquet");
    fs::write(&text, "hello").expect("write");
    let err = trace_err(["inspect".as_ref(), text.as_os_str()]);
    assert!(err.contains("notes.parquet"), "{err}");

    let err = trace_err(["inspect", "/nonexistent/t.parquet"]);
    assert!(err.contains("/nonexistent/t.parquet"), "{err}");
}

#[test]
fn missing_input_and_output_folder_are_clear_errors() {
    let dir = tempdir();
    let out = dir.path().join("t.parquet");
    let err = trace_err([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        dir.path().join("missing.json").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(err.contains("missing.json"), "{err}");
    let input = shared_data("sharegpt/axolotl_conversation.json");
    let err = trace_err([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        dir.path().join("no/such/dir/t.parquet").as_os_str(),
    ]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn interrupted_conversion_leaves_nothing_behind() {
    conversion_stopped_by_leaves_nothing_behind("-INT");
    // SIGTERM (`timeout`, `kill`, a job scheduler) cleans up the same way.
    conversion_stopped_by_leaves_nothing_behind("-TERM");
}

fn conversion_stopped_by_leaves_nothing_behind(signal: &str) {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let dir = tempdir();
    let fifo = dir.path().join("input.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let out = dir.path().join("t.parquet");
    let mut child = std::process::Command::new(trace_bin())
        .args([
            "convert".as_ref(),
            "sharegpt".as_ref(),
            fifo.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The conversion blocks reading the pipe mid-record: it is running, with
    // its temporary output open, when the interrupt comes.
    let mut writer = fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open fifo");
    writer
        .write_all(
            b"{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}]}\n{\"id\":",
        )
        .expect("write");
    writer.flush().expect("flush");
    let start = Instant::now();
    while !files_in(dir.path()).iter().any(|f| f.ends_with(".tmp")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temporary output appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    drop(writer);
    assert_eq!(status.code(), Some(130), "{signal}");
    assert_eq!(files_in(dir.path()), vec!["input.jsonl"], "{signal}");
}
