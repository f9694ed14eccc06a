//! Test helpers: a temporary folder, the `trace` binary, and trace readers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use traces::{TraceReader, TraceRow};

/// The real `trace` executable built by cargo for this test run.
pub fn trace_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trace"))
}

/// `../shared/data/<rel>` (the samples beside the repository).
pub fn shared_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Runs `trace` with `args`; returns its output whatever the exit status.
pub fn run_trace<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(trace_bin())
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the trace binary runs")
}

/// Runs `trace` and asserts success; returns stdout.
pub fn trace_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = run_trace(args);
    assert!(
        out.status.success(),
        "trace failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `trace`, asserts failure, returns stderr.
pub fn trace_err<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = run_trace(args);
    assert!(
        !out.status.success(),
        "trace unexpectedly succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads every row of a trace.
pub fn read_rows(path: &Path) -> Vec<TraceRow> {
    TraceReader::open(path)
        .expect("the trace opens")
        .read_all()
        .expect("the trace reads")
}

/// A temporary folder that lives as long as the value.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Files in `dir` (names), to check that nothing partial was left behind.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A `trace mock` server started as a child process on a free loopback
/// port; killed (by its own PID) when dropped.
pub struct MockProcess {
    pub child: std::process::Child,
    pub url: String,
}

impl MockProcess {
    pub fn start(args: &[&str]) -> MockProcess {
        use std::io::BufRead;
        let mut child = Command::new(trace_bin())
            .args(["mock", "--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("trace mock starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("trace mock printed its address")
                .expect("readable stdout");
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the mock never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        MockProcess { child, url }
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one run folder under `results`.
pub fn only_run_dir(results: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .expect("results folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one run folder in {}", results.display());
    dirs.into_iter().next().expect("run dir")
}

// ---- Replay helpers (used by `replay_faults` and `replay_modes`) ----

/// A token-only `trace synth random` trace of `n` requests written to
/// `path`; `extra` adds synth flags (e.g. `--prefix-len`).
pub fn synth_random_trace(
    path: &Path,
    n: u32,
    input_len: u32,
    output_len: u32,
    extra: &[&str],
) -> PathBuf {
    let mut args: Vec<String> = vec![
        "synth".into(),
        "random".into(),
        "--requests".into(),
        n.to_string(),
        "--input-len".into(),
        input_len.to_string(),
        "--output-len".into(),
        output_len.to_string(),
        "-o".into(),
        path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    trace_ok(args);
    path.to_path_buf()
}

/// A small `trace synth agent` trace written to `path`: `users` sessions
/// of `turns` turns (20-token system prefix, 5-token user prefix and
/// inputs, 3-token outputs) with `think_ms` between turns.
pub fn synth_agent_trace(path: &Path, users: u32, turns: u32, think_ms: &str) -> PathBuf {
    trace_ok([
        "synth".to_string(),
        "agent".into(),
        "--users".into(),
        users.to_string(),
        "--turns".into(),
        turns.to_string(),
        "--system-prefix-tokens".into(),
        "20".into(),
        "--user-prefix-tokens".into(),
        "5".into(),
        "--turn-input-tokens".into(),
        "5".into(),
        "--turn-output-tokens".into(),
        "3".into(),
        "--think-ms".into(),
        think_ms.into(),
        "-o".into(),
        path.display().to_string(),
    ]);
    path.to_path_buf()
}

/// Runs `trace replay TRACE --endpoint URL --results-dir RESULTS --quiet EXTRA...`.
pub fn run_replay(trace: &Path, url: &str, results: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "replay".into(),
        trace.display().to_string(),
        "--endpoint".into(),
        url.into(),
        "--results-dir".into(),
        results.display().to_string(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_trace(args)
}

/// Starts `trace mock MOCK_ARGS`, replays `trace` against it into
/// `dir/results` with `replay_args` (see [`run_replay`]) and asserts that
/// the replay succeeded; returns the run folder and its request rows. The
/// mock is stopped on return.
pub fn replay_on_mock(
    trace: &Path,
    dir: &Path,
    mock_args: &[&str],
    replay_args: &[&str],
) -> (PathBuf, Vec<traces::results::RequestRecord>) {
    let mock = MockProcess::start(mock_args);
    let results = dir.join("results");
    let out = run_replay(trace, &mock.url, &results, replay_args);
    replay_rows(&out, &results)
}

/// A replay against a mock that logged every request it received.
pub struct LoggedReplay {
    pub run: PathBuf,
    pub rows: Vec<traces::results::RequestRecord>,
    /// The mock's JSON-lines request log, complete (the mock has stopped).
    pub log: PathBuf,
    pub stdout: String,
}

/// [`replay_on_mock`] with the mock logging every request it receives to
/// `dir/server.jsonl`; the mock is stopped (SIGTERM) before this returns.
pub fn replay_on_logged_mock(
    trace: &Path,
    dir: &Path,
    mock_args: &[&str],
    replay_args: &[&str],
) -> LoggedReplay {
    let log = dir.join("server.jsonl");
    let log_arg = log.display().to_string();
    let mut args = mock_args.to_vec();
    args.extend(["--log-requests", log_arg.as_str()]);
    let mock = MockProcess::start(&args);
    let results = dir.join("results");
    let out = run_replay(trace, &mock.url, &results, replay_args);
    let (run, rows) = replay_rows(&out, &results);
    stop_mock(mock);
    LoggedReplay {
        run,
        rows,
        log,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Asserts that a replay succeeded; returns its run folder and request rows.
pub fn replay_rows(out: &Output, results: &Path) -> (PathBuf, Vec<traces::results::RequestRecord>) {
    assert!(
        out.status.success(),
        "replay failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = only_run_dir(results);
    let rows = traces::results::read_parts(run.join("requests")).expect("requests parts read");
    (run, rows)
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts that no request is recorded twice within a level and round.
pub fn assert_unique_requests(rows: &[traces::results::RequestRecord]) {
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        let key = (
            r.load_mode.clone(),
            r.load_value.to_bits(),
            r.round,
            r.request_id.clone(),
        );
        assert!(
            seen.insert(key),
            "request {} recorded twice in {} {} round {}",
            r.request_id,
            r.load_mode,
            r.load_value,
            r.round
        );
    }
}

/// Stops a mock with SIGTERM (by its PID), so that it closes its request log.
pub fn stop_mock(mut mock: MockProcess) {
    let pid = mock.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {pid} failed");
    let _ = mock.child.wait();
}

/// Stops a mock with SIGTERM (by its PID) so that it closes its request
/// log, then reads the JSON-lines log keyed by the client's request id,
/// asserting that no id was logged twice (so: single-round runs only).
pub fn stop_mock_and_read_log(
    mock: MockProcess,
    log: &Path,
) -> std::collections::HashMap<String, serde_json::Value> {
    stop_mock(mock);
    read_mock_log(log)
}

/// A mock's JSON-lines request log keyed by the client's request id,
/// asserting that no id was logged twice (so: single-round runs only).
pub fn read_mock_log(log: &Path) -> std::collections::HashMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(log).expect("the mock's request log");
    let mut by_id = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        let id = v["client_request_id"]
            .as_str()
            .expect("the replayer sends x-request-id")
            .to_string();
        assert!(
            by_id.insert(id.clone(), v).is_none(),
            "the server received {id} twice"
        );
    }
    by_id
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A Parquet file with only `request_id` and `session_id` columns (one row)
/// and one key-value metadata entry: a file of another format version.
pub fn write_stub_parquet(path: &Path, key: &str, value: &str) {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let ids: ArrayRef = std::sync::Arc::new(StringArray::from(vec!["s#0"]));
    let sessions: ArrayRef = std::sync::Arc::new(StringArray::from(vec!["s"]));
    let batch =
        RecordBatch::try_from_iter([("request_id", ids), ("session_id", sessions)]).expect("batch");
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            key.to_string(),
            value.to_string(),
        )]))
        .build();
    let file = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// The mock's prompt length without a tokenizer: the messages' texts
/// joined with newlines, ceil(bytes / 4).
pub fn mock_tokens(texts: &[&str]) -> u32 {
    let bytes: usize = texts.iter().map(|t| t.len()).sum::<usize>() + texts.len().saturating_sub(1);
    bytes.div_ceil(4) as u32
}

/// `trace report --format json ARGS...`, parsed.
pub fn report_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["report", "--format", "json"];
    all.extend_from_slice(args);
    let out = trace_ok(all);
    serde_json::from_str(&out).expect("report --format json prints JSON")
}

/// The JSON report of one run folder.
pub fn report_of_run(run: &Path) -> serde_json::Value {
    report_json(&[run.to_str().expect("a UTF-8 run path")])
}

/// Rewrite a `requests` part as an older results version would have
/// written it: without the columns that came later (`endpoint` in 4,
/// `finish_reason` in 3, `source` in 2) and with that version in its metadata.
pub fn downgrade_results_part(path: &Path, version: u32) {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let mut dropped = Vec::new();
    if version < 5 {
        dropped.push("model");
    }
    if version < 4 {
        dropped.push("endpoint");
    }
    if version < 3 {
        dropped.push("finish_reason");
    }
    if version < 2 {
        dropped.push("source");
    }
    let file = std::fs::File::open(path).expect("open part");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut batches = Vec::new();
    for b in reader {
        let b = b.expect("batch");
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|&i| !dropped.contains(&b.schema().field(i).name().as_str()))
            .collect();
        batches.push(b.project(&keep).expect("project"));
    }
    let schema = batches.first().expect("a batch").schema();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            traces::results::KEY_RESULTS_VERSION.to_string(),
            version.to_string(),
        )]))
        .build();
    let out = std::fs::File::create(path).expect("create part");
    let mut w = ArrowWriter::try_new(out, schema, Some(props)).expect("writer");
    for b in &batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
}

/// The venv's Python (`$TRACE_PYTHON`, set by scripts/test.sh), which has
/// Polars, DuckDB (and its `duckdb` command) and PyArrow.
pub fn venv_python() -> PathBuf {
    match std::env::var_os("TRACE_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "TRACE_PYTHON is not set: these tests read results with Polars and DuckDB from the \
             venv that scripts/test.sh sets up"
        ),
    }
}

/// Runs a one-line shell command (such as a `duckdb -c` query the
/// replayer prints) with the venv's commands first on the PATH; returns
/// its standard output, failing the test if it fails.
pub fn venv_sh(command: &str, dir: &Path) -> String {
    let venv_bin = venv_python()
        .parent()
        .expect("the venv's bin folder")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{command}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
