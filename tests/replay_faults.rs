//! `trace replay` when things go wrong: every fault of `trace mock` ends in
//! the right status with no request lost or counted twice, and the results
//! survive `kill -9` and Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use traces::results::{RequestRecord, Status, read_parts};

use crate::util::*;

/// Requests of each forced-fault run, and their output length.
const N: u32 = 6;
const OUT: u32 = 8;

/// How a fault is forced on every request.
#[derive(Clone, Copy)]
enum Force {
    /// `--header "x-mock-fault: KIND"` on the replay.
    Header,
    /// `trace mock --faults KIND=1`.
    MockRate,
}

/// Replays `N` requests against a mock that fails every one of them with
/// `kind`; checks that every request has exactly one row and that the
/// server saw each exactly once, with that fault. Returns the rows.
fn forced(kind: &str, force: Force, replay_extra: &[&str]) -> Vec<RequestRecord> {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), N, 64, OUT, &[]);
    let rate = format!("{kind}=1");
    let mut mock_args = vec!["--ttft-ms", "5", "--itl-ms", "1"];
    if let Force::MockRate = force {
        mock_args.extend(["--faults", rate.as_str()]);
    }
    let header = format!("x-mock-fault: {kind}");
    let mut extra = vec!["--concurrency", "3", "--no-metrics"];
    if let Force::Header = force {
        extra.extend(["--header", header.as_str()]);
    }
    extra.extend(replay_extra);
    let LoggedReplay { run, rows, log, .. } =
        replay_on_logged_mock(&trace, dir.path(), &mock_args, &extra);
    let server = read_mock_log(&log);

    assert_eq!(rows.len(), N as usize, "one row per request sent");
    assert_unique_requests(&rows);
    assert_eq!(
        server.len(),
        N as usize,
        "the server saw every request once"
    );
    for r in &rows {
        let s = server
            .get(&r.request_id)
            .unwrap_or_else(|| panic!("{} has a row but never reached the server", r.request_id));
        assert_eq!(s["fault"], kind, "{}", r.request_id);
    }
    // The summary counts every request once, under its status.
    let summary = read_json(&run.join("summary.json"));
    let level = &summary["levels"][0];
    assert_eq!(level["requests"], N);
    let errors: u64 = level["errors"]
        .as_object()
        .expect("errors")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(
        level["ok"].as_u64().expect("ok") + errors,
        u64::from(N),
        "{level}"
    );
    rows
}

fn assert_http_error(rows: &[RequestRecord], code: u16) {
    for r in rows {
        assert_eq!(r.status, Some(Status::HttpError), "{r:?}");
        assert_eq!(r.http_status, Some(code));
        let err = r.error.as_deref().expect("an error message");
        assert!(err.contains(&format!("HTTP {code}")), "{err}");
        assert_eq!(r.ttft_ms, None, "no token before an HTTP error");
        assert_eq!(r.completion_tokens, None);
        assert_eq!(r.tpot_ms, None);
    }
}

fn assert_stream_error(rows: &[RequestRecord], says: &str) {
    for r in rows {
        assert_eq!(r.status, Some(Status::StreamError), "{r:?}");
        assert_eq!(r.http_status, Some(200), "the stream had started");
        let err = r.error.as_deref().expect("an error message");
        assert!(err.contains(says), "`{err}` should mention `{says}`");
        assert_eq!(r.tpot_ms, None, "no TPOT for a failed request");
    }
}

#[test]
fn fault_429_is_an_http_error() {
    let rows = forced("429", Force::MockRate, &[]);
    assert_http_error(&rows, 429);
}

#[test]
fn fault_500_is_an_http_error() {
    let rows = forced("500", Force::Header, &[]);
    assert_http_error(&rows, 500);
}

#[test]
fn fault_503_is_an_http_error() {
    let rows = forced("503", Force::Header, &[]);
    assert_http_error(&rows, 503);
}

#[test]
fn fault_reset_is_a_stream_error() {
    let rows = forced("reset", Force::MockRate, &[]);
    assert_stream_error(&rows, "stream broken");
}

#[test]
fn fault_malformed_is_a_stream_error() {
    let rows = forced("malformed", Force::Header, &[]);
    assert_stream_error(&rows, "malformed SSE data");
}

#[test]
fn fault_no_done_is_a_stream_error() {
    let rows = forced("no-done", Force::Header, &[]);
    assert_stream_error(&rows, "[DONE]");
    for r in &rows {
        // Every token and the usage chunk came before the missing [DONE].
        assert_eq!(r.completion_tokens, Some(OUT));
        assert_eq!(r.tokens_source.as_deref(), Some("usage"));
    }
}

#[test]
fn fault_stall_ends_in_a_timeout() {
    // The mock stalls for its default 300 s; the replay gives up after 1 s.
    let rows = forced("stall", Force::Header, &["--timeout", "1s"]);
    for r in &rows {
        assert_eq!(r.status, Some(Status::Timeout), "{r:?}");
        assert_eq!(r.http_status, Some(200));
        let err = r.error.as_deref().expect("an error message");
        assert!(err.contains("within"), "{err}");
        let e2e = r.e2e_ms.expect("e2e");
        assert!(
            e2e >= 999.0,
            "timed out after {e2e} ms, before the 1 s timeout"
        );
        assert!(e2e < 30_000.0, "timed out after {e2e} ms");
    }
}

#[test]
fn fault_usage_missing_is_ok_with_counted_tokens() {
    let rows = forced("usage-missing", Force::MockRate, &[]);
    for r in &rows {
        assert_eq!(r.status, Some(Status::Ok), "{r:?}");
        assert_eq!(r.tokens_source.as_deref(), Some("counted"));
        assert_eq!(r.completion_tokens, Some(OUT), "one token per chunk");
        assert_eq!(r.prompt_tokens, None, "nobody reported the prompt length");
        assert!(r.tpot_ms.is_some());
    }
}

#[test]
fn fault_usage_wrong_is_ok_and_keeps_the_servers_count() {
    // Decision: the server's usage report is what the replayer records (the
    // issue: "from the server's usage where given"); the row still shows
    // what arrived, OUT token chunks, in its OUT - 1 inter-token gaps.
    let rows = forced("usage-wrong", Force::Header, &[]);
    for r in &rows {
        assert_eq!(r.status, Some(Status::Ok), "{r:?}");
        assert_eq!(r.tokens_source.as_deref(), Some("usage"));
        assert_eq!(r.completion_tokens, Some(OUT + 1), "the server's claim");
        assert_eq!(r.itl_ms.len(), (OUT - 1) as usize, "what was received");
    }
}

#[test]
fn reset_before_the_first_byte_is_not_a_connect_error() {
    // With zero delays the mock resets the connection as soon as the
    // request arrives: the connection was established (and primed), the
    // request was sent, so this is not a failure to connect.
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 10, 64, 1, &[]);
    let mock = MockProcess::start(&["--ttft-ms", "0", "--itl-ms", "0", "--faults", "reset=1"]);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--concurrency", "2", "--no-metrics"],
    );
    let (_, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 10);
    for r in &rows {
        assert_eq!(r.status, Some(Status::StreamError), "{r:?}");
    }
}

#[test]
fn a_connection_closed_unanswered_is_sent_again_once() {
    let n = 30;
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), n, 64, OUT, &[]);
    let LoggedReplay {
        run,
        rows,
        log,
        stdout,
    } = replay_on_logged_mock(
        &trace,
        dir.path(),
        &[
            "--ttft-ms",
            "5",
            "--itl-ms",
            "1",
            "--faults",
            "close=0.4",
            "--fault-seed",
            "3",
        ],
        &["--concurrency", "1", "--no-metrics"],
    );
    // Every attempt the server received, in order, by request id.
    let mut attempts: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let text = std::fs::read_to_string(&log).expect("the mock's request log");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        let id = v["client_request_id"].as_str().expect("id").to_string();
        attempts
            .entry(id)
            .or_default()
            .push(v["fault"].as_str().map(str::to_string));
    }
    assert_eq!(rows.len(), n as usize);
    assert_eq!(attempts.len(), n as usize);
    let close = Some("close".to_string());
    let (mut resent, mut saved, mut lost) = (0, 0, 0);
    for r in &rows {
        let a = &attempts[&r.request_id];
        if a[0] != close {
            assert_eq!(a.len(), 1, "{}: answered, so sent once", r.request_id);
            assert_eq!(r.status, Some(Status::Ok), "{r:?}");
            continue;
        }
        assert_eq!(a.len(), 2, "{}: sent again once, not more", r.request_id);
        resent += 1;
        if a[1] == close {
            lost += 1;
            assert_eq!(r.status, Some(Status::StreamError), "{r:?}");
            let err = r.error.as_deref().expect("error");
            assert!(err.contains("when sent again too"), "{err}");
        } else {
            saved += 1;
            assert_eq!(r.status, Some(Status::Ok), "{r:?}");
            assert_eq!(r.completion_tokens, Some(OUT));
        }
    }
    // The seed gives both outcomes of a second send.
    assert!(saved > 0 && lost > 0, "saved {saved}, lost {lost}");
    let runj = read_json(&run.join("run.json"));
    assert_eq!(runj["levels"][0]["requests_resent"], resent);
    assert!(stdout.contains(&format!("{resent} requests were sent a second time")));
}

/// What a request must have ended in, given the fault the server logged.
fn expected_status(fault: Option<&str>) -> (Status, Option<u16>) {
    match fault {
        None | Some("usage-missing") | Some("usage-wrong") => (Status::Ok, Some(200)),
        Some("429") => (Status::HttpError, Some(429)),
        Some("500") => (Status::HttpError, Some(500)),
        Some("503") => (Status::HttpError, Some(503)),
        Some("reset") | Some("malformed") | Some("no-done") => (Status::StreamError, Some(200)),
        Some("stall") => (Status::Timeout, Some(200)),
        Some(other) => panic!("unknown fault {other}"),
    }
}

#[test]
fn mixed_faults_every_request_once_and_the_summary_adds_up() {
    let n = 90u32;
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), n, 64, OUT, &[]);
    let LoggedReplay { run, rows, log, .. } = replay_on_logged_mock(
        &trace,
        dir.path(),
        &[
            "--ttft-ms",
            "5",
            "--itl-ms",
            "1",
            "--faults",
            "429=0.08,500=0.08,503=0.08,reset=0.08,stall=0.05,malformed=0.08,no-done=0.08,usage-missing=0.08,usage-wrong=0.08",
            "--fault-seed",
            "11",
            "--stall-ms",
            "1500",
        ],
        &[
            "--qps",
            "150",
            "--seed",
            "5",
            "--timeout",
            "500ms",
            "--no-metrics",
        ],
    );
    let server = read_mock_log(&log);

    assert_eq!(rows.len(), n as usize, "one row per request sent");
    assert_unique_requests(&rows);
    assert_eq!(
        server.len(),
        n as usize,
        "the server saw every request once"
    );
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut faults_seen: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        let s = server
            .get(&r.request_id)
            .unwrap_or_else(|| panic!("{} never reached the server", r.request_id));
        let fault = s["fault"].as_str();
        *faults_seen
            .entry(fault.unwrap_or("none").to_string())
            .or_default() += 1;
        let (status, code) = expected_status(fault);
        assert_eq!(r.status, Some(status), "{fault:?}: {r:?}");
        assert_eq!(r.http_status, code, "{fault:?}: {r:?}");
        match fault {
            Some("usage-missing") => assert_eq!(r.tokens_source.as_deref(), Some("counted")),
            Some("usage-wrong") => assert_eq!(r.completion_tokens, Some(OUT + 1)),
            None => assert_eq!(r.completion_tokens, Some(OUT)),
            _ => {}
        }
        *by_status.entry(r.status_str()).or_default() += 1;
    }
    // The seed spreads the draws over every kind (each ~5-8% of 90).
    assert!(
        faults_seen.len() >= 8,
        "too few fault kinds drawn: {faults_seen:?}"
    );

    let summary = read_json(&run.join("summary.json"));
    let levels = summary["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 1);
    let level = &levels[0];
    assert_eq!(level["requests"], n);
    assert_eq!(level["ok"], by_status.get("ok").copied().unwrap_or(0));
    let errors = level["errors"].as_object().expect("errors");
    let mut total = level["ok"].as_u64().expect("ok");
    for (status, count) in errors {
        assert_eq!(
            Some(count.as_u64().expect("count")),
            by_status.get(status.as_str()).copied(),
            "summary count of {status}"
        );
        total += count.as_u64().expect("count");
    }
    assert_eq!(total, u64::from(n), "ok + errors = requests");
    let detail: u64 = level["errors_detail"]
        .as_object()
        .expect("errors_detail")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(detail + level["ok"].as_u64().expect("ok"), u64::from(n));
    for code in [429, 500, 503] {
        let rows_with = rows.iter().filter(|r| r.http_status == Some(code)).count() as u64;
        let key = format!("http_error {code}");
        assert_eq!(
            level["errors_detail"][&key].as_u64().unwrap_or(0),
            rows_with,
            "{key}"
        );
    }
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["requests_recorded"], n);
    assert_eq!(run_json["interrupted"], false);
}

// ---- kill -9 and Ctrl-C ----

/// A replay running as a child process, its output going to files.
struct Running {
    child: Child,
    results: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn start(trace: &Path, url: &str, dir: &Path, extra: &[&str]) -> Running {
        let results = dir.join("results");
        let stderr = dir.join("replay.stderr");
        let child = Command::new(trace_bin())
            .arg("replay")
            .arg(trace)
            .args(["--endpoint", url, "--results-dir"])
            .arg(&results)
            .args(extra)
            .stdout(std::fs::File::create(dir.join("replay.stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("trace replay starts");
        Running {
            child,
            results,
            stderr,
        }
    }

    /// Waits until the run has written its first complete requests part.
    fn wait_for_a_part(&mut self) -> PathBuf {
        let limit = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(entries) = std::fs::read_dir(&self.results)
                && let Some(run) = entries.filter_map(Result::ok).map(|e| e.path()).next()
            {
                let parts = std::fs::read_dir(run.join("requests"))
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
                            .count()
                    })
                    .unwrap_or(0);
                if parts > 0 {
                    return run;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the replay ended ({status}) before writing a part:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            assert!(Instant::now() < limit, "no requests part after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal to the replay, by its PID.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the exit, at most `limit` (then kills it and fails).
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the replay did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every file in `requests/` is either a complete part or a hidden temporary one.
fn assert_only_complete_parts(run: &Path) {
    for name in files_in(&run.join("requests")) {
        assert!(
            (name.starts_with("part-") && name.ends_with(".parquet"))
                || (name.starts_with('.') && name.ends_with(".tmp")),
            "unexpected file {name} in requests/"
        );
    }
}

#[test]
fn kill_9_mid_run_keeps_every_written_part_readable() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 40, 64, 8, &[]);
    let mock = MockProcess::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let mut replay = Running::start(
        &trace,
        &mock.url,
        dir.path(),
        &[
            "--qps",
            "50",
            "--duration",
            "30s",
            "--no-metrics",
            "--quiet",
        ],
    );
    let run = replay.wait_for_a_part();
    // SIGKILL, by the child's PID.
    replay.child.kill().expect("kill -9");
    let status = replay.child.wait().expect("wait");
    assert!(!status.success(), "killed, not finished: {status}");

    assert_only_complete_parts(&run);
    let parts: Vec<String> = files_in(&run.join("requests"))
        .into_iter()
        .filter(|n| n.starts_with("part-"))
        .collect();
    assert!(!parts.is_empty());
    for p in &parts {
        // Every part on its own is a readable Parquet file.
        let one = dir.path().join(format!("one-{p}"));
        std::fs::create_dir_all(&one).expect("mkdir");
        std::fs::copy(run.join("requests").join(p), one.join(p)).expect("copy part");
        let rows = read_parts(&one).unwrap_or_else(|e| panic!("part {p} unreadable: {e}"));
        assert!(!rows.is_empty(), "part {p} is empty");
    }
    let rows = read_parts(run.join("requests")).expect("parts read");
    assert!(!rows.is_empty());
    assert_unique_requests(&rows);
    assert!(
        rows.iter().all(|r| r.status == Some(Status::Ok)),
        "{:?}",
        rows.iter().find(|r| r.status != Some(Status::Ok))
    );
    assert!(
        !run.join("summary.json").exists(),
        "the run was killed before its summary"
    );
}

#[test]
fn ctrl_c_drains_cancels_and_writes_the_summary() {
    interrupt_drains_cancels_and_writes_the_summary("INT", 130, "interrupted");
}

/// `timeout`, `kill` and `docker stop` send SIGTERM: the same drain, and
/// the exit code of a process it killed.
#[test]
fn sigterm_drains_cancels_and_writes_the_summary() {
    interrupt_drains_cancels_and_writes_the_summary("TERM", 143, "terminated (SIGTERM)");
}

fn interrupt_drains_cancels_and_writes_the_summary(signal: &str, code: i32, says: &str) {
    let dir = tempdir();
    // 20 tokens 100 ms apart: every request is in flight for about 2 s.
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 40, 64, 20, &[]);
    let mock = MockProcess::start(&["--ttft-ms", "10", "--itl-ms", "100"]);
    let mut replay = Running::start(
        &trace,
        &mock.url,
        dir.path(),
        &[
            "--qps",
            "20",
            "--duration",
            "30s",
            "--drain-timeout",
            "300ms",
            "--no-metrics",
            "--quiet",
        ],
    );
    let run = replay.wait_for_a_part();
    replay.signal(signal);
    let status = replay.wait(Duration::from_secs(20));
    let stderr = std::fs::read_to_string(&replay.stderr).unwrap_or_default();
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");

    assert_only_complete_parts(&run);
    let rows = read_parts(run.join("requests")).expect("parts read");
    assert!(!rows.is_empty());
    assert_unique_requests(&rows);
    let mut ok = 0;
    let mut cancelled = 0;
    for r in &rows {
        match r.status {
            Some(Status::Ok) => ok += 1,
            Some(Status::Cancelled) => {
                cancelled += 1;
                assert!(r.error.is_some(), "{r:?}");
            }
            other => panic!("a request ended {other:?} after Ctrl-C: {r:?}"),
        }
    }
    assert!(ok > 0, "requests finished before the interrupt");
    assert!(
        cancelled > 0,
        "2-second requests in flight were cut after the 300 ms drain"
    );
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["interrupted"], true);
    assert_eq!(run_json["requests_recorded"], rows.len());
    let summary = read_json(&run.join("summary.json"));
    let level = &summary["levels"][0];
    assert_eq!(level["requests"], rows.len());
    assert_eq!(level["ok"], ok);
    assert_eq!(level["errors"]["cancelled"], cancelled);
    // Nothing was scheduled after the interrupt: far fewer than 30 s × 20/s.
    assert!(rows.len() < 300, "{} rows", rows.len());
}

#[test]
fn second_ctrl_c_exits_at_once_with_the_parts_intact() {
    let dir = tempdir();
    // Outputs of 2..38 tokens 200 ms apart: some requests end within the
    // first seconds (and reach a part), others stream for several seconds.
    let trace = synth_random_trace(
        &dir.path().join("t.parquet"),
        40,
        64,
        20,
        &["--range-ratio", "0.9"],
    );
    let mock = MockProcess::start(&["--ttft-ms", "10", "--itl-ms", "200"]);
    let mut replay = Running::start(
        &trace,
        &mock.url,
        dir.path(),
        &[
            "--qps",
            "20",
            "--duration",
            "30s",
            "--drain-timeout",
            "120s",
            "--no-metrics",
            "--quiet",
        ],
    );
    let run = replay.wait_for_a_part();
    replay.signal("INT");
    // Let the first interrupt be handled (it then waits on a second one).
    let limit = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&replay.stderr)
        .unwrap_or_default()
        .contains("interrupted")
    {
        assert!(Instant::now() < limit, "the first Ctrl-C was not reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    replay.signal("INT");
    // The drain would last up to 120 s; the second Ctrl-C must not wait for it.
    let status = replay.wait(Duration::from_secs(20));
    let stderr = std::fs::read_to_string(&replay.stderr).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted again"), "{stderr}");

    assert_only_complete_parts(&run);
    let rows = read_parts(run.join("requests")).expect("parts read");
    assert!(!rows.is_empty(), "the part written before the interrupts");
    assert_unique_requests(&rows);
    assert!(rows.iter().all(|r| r.status == Some(Status::Ok)));
}

/// Two agent users whose second turn is due ~115 days after their first
/// (a wild `think_ms`, capped by the replayer).
fn agent_trace_with_endless_think(dir: &Path) -> PathBuf {
    synth_agent_trace(&dir.join("agent.parquet"), 2, 2, "1e300")
}

#[test]
fn ctrl_c_ends_a_think_time_at_once() {
    let dir = tempdir();
    let trace = agent_trace_with_endless_think(dir.path());
    let log = dir.path().join("server.jsonl");
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "2",
        "--itl-ms",
        "1",
        "--log-requests",
        log.to_str().expect("utf8"),
    ]);
    let mut replay = Running::start(
        &trace,
        &mock.url,
        dir.path(),
        // A drain far longer than the test waits: only the think times are
        // pending when the interrupt comes, and they must not be waited out.
        &["--users", "2", "--drain-timeout", "10m", "--no-metrics"],
    );
    let limit = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&log).map_or(0, |s| s.lines().count()) < 2 {
        assert!(Instant::now() < limit, "the first turns were not served");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Both users are now between their turns.
    std::thread::sleep(Duration::from_millis(300));
    let stderr = std::fs::read_to_string(&replay.stderr).unwrap_or_default();
    assert!(
        stderr.contains("warning: session") && stderr.contains("--think-scale 0"),
        "the endless pause was announced: {stderr}"
    );
    replay.signal("INT");
    let status = replay.wait(Duration::from_secs(60));
    let stderr = std::fs::read_to_string(&replay.stderr).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let run = only_run_dir(&dir.path().join("results"));
    let rows = read_parts(run.join("requests")).expect("parts read");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.turn == 0 && r.status == Some(Status::Ok))
    );
    assert_eq!(read_json(&run.join("run.json"))["interrupted"], true);
    assert_eq!(read_json(&run.join("summary.json"))["levels"][0]["ok"], 2);
}

#[test]
fn duration_ends_a_level_whose_next_turns_are_due_later() {
    let dir = tempdir();
    let trace = agent_trace_with_endless_think(dir.path());
    let mock = MockProcess::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let mut replay = Running::start(
        &trace,
        &mock.url,
        dir.path(),
        &["--users", "2", "--duration", "1s", "--no-metrics"],
    );
    let status = replay.wait(Duration::from_secs(60));
    let stderr = std::fs::read_to_string(&replay.stderr).unwrap_or_default();
    assert!(status.success(), "{stderr}");
    // With --duration the run ends in time: no warning about the pauses.
    assert!(!stderr.contains("warning"), "{stderr}");
    let run = only_run_dir(&dir.path().join("results"));
    let rows = read_parts(run.join("requests")).expect("parts read");
    assert_eq!(rows.len(), 2, "only the first turns: {rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.turn == 0 && r.status == Some(Status::Ok))
    );
}
