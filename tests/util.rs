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
