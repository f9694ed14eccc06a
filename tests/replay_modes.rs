//! `trace replay` load modes, sessions, run files, SLOs and error messages,
//! each checked from the rows the real binary wrote against `trace mock`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use traces::TraceRow;
use traces::results::{RequestRecord, Status};

use crate::util::*;

/// The most requests in flight at once, from their `[sent_ms, end_ms]`
/// intervals (an end and a start at the same instant do not overlap).
fn max_in_flight<'a>(rows: impl IntoIterator<Item = &'a RequestRecord>) -> usize {
    let mut events: Vec<(f64, i32)> = rows
        .into_iter()
        .flat_map(|r| [(r.sent_ms, 1), (r.end_ms, -1)])
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut now = 0i32;
    let mut max = 0i32;
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn level(rows: &[RequestRecord], value: f64, round: u32) -> Vec<&RequestRecord> {
    rows.iter()
        .filter(|r| r.load_value == value && r.round == round)
        .collect()
}

fn assert_all_ok(rows: &[RequestRecord]) {
    assert!(
        rows.iter().all(|r| r.status == Some(Status::Ok)),
        "{:?}",
        rows.iter().find(|r| r.status != Some(Status::Ok))
    );
}

/// Rows sorted by when they were scheduled.
fn by_schedule(rows: &[RequestRecord]) -> Vec<&RequestRecord> {
    let mut v: Vec<&RequestRecord> = rows.iter().collect();
    v.sort_by(|a, b| a.scheduled_ms.total_cmp(&b.scheduled_ms));
    v
}

/// The start of the `i`-th level on the run clock, from `run.json`.
fn level_start_ms(run: &Path, i: usize) -> f64 {
    read_json(&run.join("run.json"))["levels"][i]["start_ms"]
        .as_f64()
        .expect("start_ms")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---- closed and open loop ----

#[test]
fn concurrency_levels_never_exceed_their_limit() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 24, 64, 8, &[]);
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "5", "--itl-ms", "2"],
        &["--concurrency", "1,3", "--no-metrics"],
    );
    assert_eq!(rows.len(), 48);
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    // run.json counts the sessions each level started, not the workers' last look.
    let runj = read_json(&run.join("run.json"));
    for level in runj["levels"].as_array().expect("levels") {
        assert_eq!(level["sessions_started"], 24, "{level}");
    }
    let one = level(&rows, 1.0, 1);
    let three = level(&rows, 3.0, 1);
    assert_eq!((one.len(), three.len()), (24, 24));
    assert!(rows.iter().all(|r| r.load_mode == "concurrency"));
    assert_eq!(max_in_flight(one.iter().copied()), 1);
    // A closed loop keeps its N requests busy: exactly 3 at the peak.
    assert_eq!(max_in_flight(three.iter().copied()), 3);
    // At concurrency 1 each request is sent after the previous one ended.
    let mut seq = one.clone();
    seq.sort_by(|a, b| a.sent_ms.total_cmp(&b.sent_ms));
    for w in seq.windows(2) {
        assert!(
            w[1].sent_ms >= w[0].end_ms,
            "{:?} overlaps {:?}",
            w[1],
            w[0]
        );
    }
}

#[test]
fn qps_with_max_concurrency_waits_for_a_slot_and_records_the_wait() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 20, 64, 8, &[]);
    // About 55 ms per request, arrivals every 10 ms: the cap of 2 queues them.
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "20", "--itl-ms", "5"],
        &[
            "--qps",
            "100",
            "--arrival",
            "constant",
            "--max-concurrency",
            "2",
            "--no-metrics",
        ],
    );
    assert_eq!(rows.len(), 20);
    assert_all_ok(&rows);
    assert!(max_in_flight(&rows) <= 2, "more than 2 in flight");
    for r in &rows {
        assert!(
            (r.lateness_ms - (r.sent_ms - r.scheduled_ms)).abs() < 1e-6,
            "{r:?}"
        );
    }
    let waited = rows.iter().filter(|r| r.lateness_ms > 20.0).count();
    assert!(waited >= 10, "only {waited} requests waited for a slot");
    let summary = read_json(&run.join("summary.json"));
    let l = &summary["levels"][0];
    assert!(
        l["lateness_ms"]["percentiles"]["p99"]
            .as_f64()
            .expect("p99")
            > 20.0
    );
    assert_eq!(
        l["client_behind"], false,
        "waiting for a capped slot is the server's slowness"
    );
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["config"]["levels"][0]["max_concurrency"], 2);
}

#[test]
fn constant_arrivals_are_evenly_spaced() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 20, 64, 4, &[]);
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "2", "--itl-ms", "1"],
        &["--qps", "50", "--arrival", "constant", "--no-metrics"],
    );
    assert_eq!(rows.len(), 20);
    assert_all_ok(&rows);
    let sorted = by_schedule(&rows);
    assert!((sorted[0].scheduled_ms - level_start_ms(&run, 0)).abs() < 0.01);
    for w in sorted.windows(2) {
        let gap = w[1].scheduled_ms - w[0].scheduled_ms;
        assert!((gap - 20.0).abs() < 0.01, "gap {gap} ms, expected 20");
    }
    let cfg = read_json(&run.join("run.json"));
    assert_eq!(cfg["config"]["levels"][0]["arrival"]["kind"], "constant");
}

#[test]
fn gamma_arrivals_with_low_burstiness_are_burstier_than_poisson() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 80, 64, 2, &[]);
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "1", "--itl-ms", "1"],
        &[
            "--qps",
            "200",
            "--arrival",
            "gamma",
            "--burstiness",
            "0.1",
            "--seed",
            "3",
            "--no-metrics",
        ],
    );
    assert_eq!(rows.len(), 80);
    assert_all_ok(&rows);
    let sorted = by_schedule(&rows);
    let gaps: Vec<f64> = sorted
        .windows(2)
        .map(|w| w[1].scheduled_ms - w[0].scheduled_ms)
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    // Gamma gaps of shape k have a coefficient of variation of 1/sqrt(k):
    // 3.2 at k = 0.1, against 1 for Poisson and 0 for constant arrivals
    // (the distribution itself is checked by the schedule's unit tests).
    let cv = var.sqrt() / mean;
    assert!(cv > 1.5, "coefficient of variation {cv}");
    let arrival = &read_json(&run.join("run.json"))["config"]["levels"][0]["arrival"];
    assert_eq!(arrival["kind"], "gamma");
    assert_eq!(arrival["burstiness"], 0.1);
}

#[test]
fn burst_arrivals_send_groups_at_once_at_the_mean_rate() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 12, 64, 2, &[]);
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "1", "--itl-ms", "1"],
        &["--qps", "40", "--arrival", "burst:4", "--no-metrics"],
    );
    assert_eq!(rows.len(), 12);
    assert_all_ok(&rows);
    let sorted = by_schedule(&rows);
    let start = level_start_ms(&run, 0);
    // 40/s in groups of 4: a group every 100 ms, all four of a group at
    // the same instant.
    for (i, r) in sorted.iter().enumerate() {
        let want = start + (i / 4) as f64 * 100.0;
        assert!(
            (r.scheduled_ms - want).abs() < 0.01,
            "arrival {i} scheduled at {} ms, expected {want}",
            r.scheduled_ms
        );
    }
    let arrival = &read_json(&run.join("run.json"))["config"]["levels"][0]["arrival"];
    assert_eq!(arrival["kind"], "burst");
    assert_eq!(arrival["size"], 4);
    // Three groups span 200 ms; the achieved rate adds back a group's gap
    // (12 / 0.3 s = 40/s), not one arrival's (12 / 0.225 s = 53/s), in the
    // summary and in the report alike.
    let summary = &read_json(&run.join("summary.json"))["levels"][0];
    let achieved = summary["achieved_rate"].as_f64().expect("achieved_rate");
    assert!((achieved - 40.0).abs() < 2.0, "achieved {achieved}/s");
    let report = &report_of_run(&run)["levels"][0];
    let reported = report["achieved_rate"].as_f64().expect("achieved_rate");
    assert!(
        (reported - achieved).abs() < 1e-9,
        "{reported} vs {achieved}"
    );
}

#[test]
fn duration_bounds_the_schedule_and_cycles_a_short_trace() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 10, 64, 4, &[]);
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "2", "--itl-ms", "1"],
        &[
            "--qps",
            "40",
            "--arrival",
            "constant",
            "--duration",
            "1s",
            "--no-metrics",
        ],
    );
    // Arrivals at 0, 25, ..., 975 ms: 40 of them, the 10-request trace 4 times.
    assert_eq!(rows.len(), 40);
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    let start = level_start_ms(&run, 0);
    for r in &rows {
        assert!(
            r.scheduled_ms - start < 1000.0,
            "{} scheduled {} ms into a 1 s level",
            r.request_id,
            r.scheduled_ms - start
        );
    }
    let cycled = rows.iter().filter(|r| r.request_id.contains("~c")).count();
    assert_eq!(cycled, 30, "three repeats of the trace carry ~cN");
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["levels"][0]["sessions_started"], 40);
}

/// `--dry-run` says what each level would send, from the trace and the
/// schedule alone: nothing is sent (the endpoint is a closed port) and
/// nothing is written.
#[test]
fn dry_run_plans_the_levels_without_sending() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 10, 32, 8, &[]);
    let results = dir.path().join("results");
    let dry = |flags: &[&str]| {
        let mut args = vec![
            "replay",
            trace.to_str().expect("utf8"),
            "--endpoint",
            "http://127.0.0.1:9",
            "--results-dir",
            results.to_str().expect("utf8"),
            "--dry-run",
        ];
        args.extend_from_slice(flags);
        trace_ok(args)
    };
    let line = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line: {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Ten sessions 200 ms apart: arrivals over 1.8 s; 32 + 8 tokens each.
    let text = dry(&["--qps", "5,10", "--arrival", "constant", "--rounds", "2"]);
    assert_eq!(
        line(&text, "qps 5"),
        "qps 5 (constant) 10 10 1.8 s 320 80",
        "{text}"
    );
    assert_eq!(
        line(&text, "qps 10"),
        "qps 10 (constant) 10 10 0.9 s 320 80",
        "{text}"
    );
    assert!(text.contains("40 requests in all"), "{text}");
    // Closed loop under a duration: what it sends depends on the server.
    let text = dry(&["--concurrency", "2", "--duration", "30s"]);
    assert_eq!(
        line(&text, "concurrency 2"),
        "concurrency 2 until 30 s - as the server answers - -",
        "{text}"
    );
    assert!(!text.contains("in all"), "{text}");
    // With a run file too.
    let file = dir.path().join("run.yaml");
    std::fs::write(&file, "qps: [5]\narrival: constant\n").expect("write");
    let text = dry(&["--config", file.to_str().expect("utf8")]);
    assert_eq!(
        line(&text, "qps 5"),
        "qps 5 (constant) 10 10 1.8 s 320 80",
        "{text}"
    );
    assert!(!results.exists(), "a dry run writes nothing");
}

/// `--no-stream` asks for whole replies: each is timed end to end, with its
/// usage and text (a live history goes on from it), and neither the replay
/// nor the report claims a TTFT it did not measure.
#[test]
fn whole_replies_are_timed_end_to_end() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 6, 32, 10, &[]);
    // 20 ms to the first token, then 9 more 5 ms apart: at least 65 ms a reply.
    let mock = MockProcess::start(&["--ttft-ms", "20", "--itl-ms", "5"]);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--concurrency", "2", "--no-stream", "--no-metrics"],
    );
    stop_mock(mock);
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 6);
    assert_all_ok(&rows);
    for r in &rows {
        assert!(r.e2e_ms.is_some_and(|e| e >= 65.0), "{r:?}");
        assert_eq!(r.ttft_ms, None, "{r:?}");
        assert_eq!(r.tpot_ms, None, "{r:?}");
        assert!(r.itl_ms.is_empty(), "{r:?}");
        assert_eq!(r.completion_tokens, Some(10), "{r:?}");
        assert_eq!(r.tokens_source.as_deref(), Some("usage"), "{r:?}");
        assert_eq!(r.finish_reason.as_deref(), Some("length"), "{r:?}");
        assert!(r.output_chars > 0, "{r:?}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the replies were not streamed (--no-stream)"),
        "{stdout}"
    );
    assert_eq!(read_json(&run.join("run.json"))["config"]["stream"], false);
    let report = report_of_run(&run);
    assert!(
        report["notes"].to_string().contains("not streamed"),
        "{:#}",
        report["notes"]
    );
    assert_eq!(report["levels"][0]["e2e_ms"]["count"], 6);
    assert_eq!(report["levels"][0]["ttft_ms"]["count"], 0);

    // Compared with a streamed run of the same trace, only E2E compares.
    let mock = MockProcess::start(&["--ttft-ms", "20", "--itl-ms", "5"]);
    let streamed = dir.path().join("streamed");
    let out = run_replay(
        &trace,
        &mock.url,
        &streamed,
        &["--concurrency", "2", "--no-metrics"],
    );
    stop_mock(mock);
    let (streamed_run, _) = replay_rows(&out, &streamed);
    let cmp = trace_ok([
        "compare",
        streamed_run.to_str().expect("utf8"),
        run.to_str().expect("utf8"),
    ]);
    // Only the run that did not stream is named (two runs of the same
    // second share a folder name; the second is then shown as `#2`).
    let id = |p: &std::path::Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .expect("a run id")
            .to_string()
    };
    let note = cmp
        .lines()
        .find(|l| l.contains(" did not stream (--no-stream)"))
        .unwrap_or_else(|| panic!("no note: {cmp}"));
    let named = note
        .trim_start()
        .split(" did not stream")
        .next()
        .unwrap_or("");
    let want = if id(&run) == id(&streamed_run) {
        format!("{}#2", id(&run))
    } else {
        id(&run)
    };
    assert_eq!(named, want, "{cmp}");

    // Whole replies without usage: no token is known, and the run says
    // so, unless --tokenizer counts the text sent and received.
    let mock = MockProcess::start(&["--faults", "usage-missing=1"]);
    let flags = ["--concurrency", "2", "--no-stream", "--no-metrics"];
    let results = dir.path().join("unknown");
    let out = run_replay(&trace, &mock.url, &results, &flags);
    let (run, rows) = replay_rows(&out, &results);
    assert_all_ok(&rows);
    for r in &rows {
        assert_eq!(
            (r.completion_tokens, r.prompt_tokens),
            (None, None),
            "{r:?}"
        );
        assert_eq!(r.tokens_source, None, "{r:?}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "reported no usage for 6 of 6 ok requests: for all of them no token is known"
        ),
        "{stdout}"
    );
    assert_eq!(report_of_run(&run)["levels"][0]["tokens_unknown"], 6);
    let llama3 = crate::tokenize::llama3();
    let mut with = flags.to_vec();
    with.extend(["--tokenizer", llama3.to_str().expect("utf8")]);
    let results = dir.path().join("counted");
    let out = run_replay(&trace, &mock.url, &results, &with);
    stop_mock(mock);
    let (_, rows) = replay_rows(&out, &results);
    for r in &rows {
        // The mock's words are one Llama 3 token each.
        assert_eq!(r.completion_tokens, Some(10), "{r:?}");
        assert!(r.prompt_tokens.is_some_and(|n| n > 0), "{r:?}");
        assert_eq!(r.tokens_source.as_deref(), Some("tokenized"), "{r:?}");
    }
}

/// `--level-drain` cancels what is still in flight that long after a
/// `--duration` level's end, level by level: the next level's requests run
/// under a fresh limit, and `--level-drain` without `--duration` is refused.
#[test]
fn level_drain_cancels_requests_still_in_flight_after_the_level() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 10, 32, 200, &[]);
    // 200 tokens 20 ms apart: 4 s a reply, against levels of 0.5 s cut
    // 1 s after their end (time enough for the last arrival's first token
    // however loaded the machine).
    let mock = MockProcess::start(&["--ttft-ms", "2", "--itl-ms", "20"]);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &[
            "--qps",
            "10,20",
            "--arrival",
            "constant",
            "--duration",
            "500ms",
            "--level-drain",
            "1s",
            "--no-metrics",
        ],
    );
    let (run, rows) = replay_rows(&out, &results);
    // 5 and 10 arrivals in the two half-second levels.
    assert_eq!(rows.len(), 15);
    for r in &rows {
        // Their own status, apart from a Ctrl-C's `cancelled`.
        assert_eq!(r.status, Some(Status::LevelDrain), "{r:?}");
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("--level-drain")),
            "{r:?}"
        );
        // Each had begun to stream: the second level was not cut at its start.
        assert!(r.first_token_ms.is_some(), "{r:?}");
    }
    assert_eq!(level(&rows, 10.0, 1).len(), 5);
    assert_eq!(level(&rows, 20.0, 1).len(), 10);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("15 requests still in flight 1 s after their level's end were cancelled"),
        "{stdout}"
    );
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["config"]["level_drain_s"], 1.0);
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["levels"][1]["errors"]["level_drain"], 10);
    let report = report_of_run(&run);
    assert_eq!(report["levels"][0]["errors"]["level_drain"], 5, "{report}");

    // `--levels-from` takes the limit with the levels' duration.
    let again = dir.path().join("again");
    let out = run_replay(
        &trace,
        &mock.url,
        &again,
        &["--levels-from", run.to_str().expect("utf8"), "--no-metrics"],
    );
    let (again_run, again_rows) = replay_rows(&out, &again);
    assert_eq!(again_rows.len(), 15);
    assert!(
        again_rows
            .iter()
            .all(|r| r.status == Some(Status::LevelDrain))
    );
    assert_eq!(
        read_json(&again_run.join("run.json"))["config"]["level_drain_s"],
        1.0
    );

    // Requests still waiting for a `--max-concurrency` slot at the limit
    // are cut the same way: 10 arrivals, 2 slots of 4-second replies.
    let waited = dir.path().join("waited");
    let out = run_replay(
        &trace,
        &mock.url,
        &waited,
        &[
            "--qps",
            "20",
            "--arrival",
            "constant",
            "--max-concurrency",
            "2",
            "--duration",
            "500ms",
            "--level-drain",
            "300ms",
            "--no-metrics",
        ],
    );
    let (_, rows) = replay_rows(&out, &waited);
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().all(|r| r.status == Some(Status::LevelDrain)),
        "{rows:?}"
    );
    let slot = |r: &&RequestRecord| {
        r.error.as_deref().is_some_and(|e| {
            e.contains("waiting for a concurrency slot (still waiting --level-drain")
        })
    };
    assert_eq!(rows.iter().filter(slot).count(), 8, "{rows:?}");

    // Without it, the same level waits for its replies.
    let results = dir.path().join("full");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &[
            "--qps",
            "10",
            "--arrival",
            "constant",
            "--duration",
            "200ms",
            "--no-metrics",
        ],
    );
    stop_mock(mock);
    let (_, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 2);
    assert_all_ok(&rows);

    let e = trace_err([
        "replay",
        trace.to_str().expect("utf8"),
        "--endpoint",
        "http://127.0.0.1:9",
        "--qps",
        "1",
        "--level-drain",
        "1s",
    ]);
    assert!(e.contains("--level-drain needs --duration"), "{e}");
}

/// `--levels-from` repeats an earlier run: its levels, and its length,
/// rounds, warm-up and seed unless given again, so that both send the same
/// schedule; a length given on the command line wins.
#[test]
fn levels_from_repeats_the_earlier_runs_schedule() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 12, 32, 4, &[]);
    let mock = &["--ttft-ms", "2", "--itl-ms", "1"];
    let (first, rows1) = replay_on_mock(
        &trace,
        &dir.path().join("first"),
        mock,
        &[
            "--qps",
            "40",
            "--requests",
            "10",
            "--rounds",
            "2",
            "--warmup",
            "1",
            "--seed",
            "9",
            "--no-metrics",
        ],
    );
    let first_arg = first.display().to_string();
    let (second, rows2) = replay_on_mock(
        &trace,
        &dir.path().join("second"),
        mock,
        &["--levels-from", &first_arg, "--no-metrics"],
    );
    let (c1, c2) = (
        read_json(&first.join("run.json"))["config"].clone(),
        read_json(&second.join("run.json"))["config"].clone(),
    );
    for key in [
        "levels",
        "requests",
        "duration_s",
        "rounds",
        "warmup",
        "seed",
    ] {
        assert_eq!(c1[key], c2[key], "{key}");
    }
    assert_eq!(rows2.len(), rows1.len());
    assert_eq!(rows1.len(), 20, "10 sessions, 2 rounds");
    // The same seed: every request is due at the same offset in its level.
    let offsets = |run: &Path, rows: &[RequestRecord]| {
        let mut o: Vec<(String, u32, i64)> = rows
            .iter()
            .map(|r| {
                let start = level_start_ms(run, r.round as usize - 1);
                let at = ((r.scheduled_ms - start) * 1000.0).round() as i64;
                (r.request_id.clone(), r.round, at)
            })
            .collect();
        o.sort();
        o
    };
    assert_eq!(offsets(&first, &rows1), offsets(&second, &rows2));
    // A length of its own replaces the earlier one's.
    let (third, _) = replay_on_mock(
        &trace,
        &dir.path().join("third"),
        mock,
        &[
            "--levels-from",
            &first_arg,
            "--duration",
            "300ms",
            "--no-metrics",
        ],
    );
    let c3 = read_json(&third.join("run.json"))["config"].clone();
    assert!(c3["requests"].is_null(), "{c3}");
    assert_eq!(c3["duration_s"], 0.3);
    assert_eq!(c3["rounds"], 2);
}

#[test]
fn sweep_probes_the_server_then_runs_rates_between() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 30, 64, 8, &[]);
    // About 55 ms a request: one at a time is far slower than all at once.
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "20", "--itl-ms", "5"],
        &["--sweep", "4", "--arrival", "constant", "--no-metrics"],
    );
    assert_eq!(rows.len(), 120, "four levels of the whole trace");
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    let runj = read_json(&run.join("run.json"));
    let cfg = &runj["config"];
    assert_eq!(cfg["sweep"]["levels"], 4);
    let probed = &cfg["sweep"]["probed"];
    // Each probe's rate is its ok requests over its level's time (run.json).
    let rate_of = |i: usize| {
        let l = &runj["levels"][i];
        let secs =
            (l["end_ms"].as_f64().expect("end") - l["start_ms"].as_f64().expect("start")) / 1000.0;
        let mode = l["load_mode"].as_str().expect("mode");
        // JSON has no infinity: run.json writes an unbounded rate as "inf".
        let value = match &l["load_value"] {
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            v => v.as_f64().expect("a number or \"inf\""),
        };
        let ok = rows
            .iter()
            .filter(|r| r.load_mode == mode && r.load_value == value)
            .count();
        ok as f64 / secs
    };
    let sync = probed["sync_rate"].as_f64().expect("sync_rate");
    let max = probed["max_rate"].as_f64().expect("max_rate");
    assert!(
        (sync - rate_of(0)).abs() < 1e-6 * sync,
        "{sync} {}",
        rate_of(0)
    );
    assert!(
        (max - rate_of(1)).abs() < 1e-6 * max,
        "{max} {}",
        rate_of(1)
    );
    assert!(
        max > 2.0 * sync,
        "all at once {max}/s against one at a time {sync}/s"
    );
    // The rates between: evenly spaced, three significant digits.
    let rates: Vec<f64> = probed["rates"]
        .as_array()
        .expect("rates")
        .iter()
        .map(|r| r.as_f64().expect("rate"))
        .collect();
    assert_eq!(rates.len(), 2);
    for (i, r) in rates.iter().enumerate() {
        let exact = sync + (max - sync) * (i + 1) as f64 / 3.0;
        assert!((r - exact).abs() <= exact * 0.005, "{r} against {exact}");
        assert!(*r > sync && *r < max);
    }
    let levels: Vec<(String, String)> = cfg["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| {
            let v = l.get("rate").or(l.get("concurrency")).expect("value");
            (
                l["load_mode"].as_str().expect("mode").to_string(),
                v.to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("concurrency", "1".to_string()),
        ("qps", "\"inf\"".to_string()),
        ("qps", serde_json::json!(rates[0]).to_string()),
        ("qps", serde_json::json!(rates[1]).to_string()),
    ]
    .into_iter()
    .map(|(m, v)| (m.to_string(), v))
    .collect();
    assert_eq!(levels, expected);
    // The all-at-once probe is capped by default; the chosen levels are not.
    assert_eq!(cfg["levels"][1]["max_concurrency"], 256);
    assert!(cfg["levels"][2]["max_concurrency"].is_null());
    for r in &rates {
        assert_eq!(level(&rows, *r, 1).len(), 30, "level {r}");
    }
    assert_eq!(max_in_flight(level(&rows, 1.0, 1)), 1);
    // The report knows the probes: no saturation line for concurrency 1.
    let report = report_of_run(&run);
    assert_eq!(report["runs"][0]["sweep"]["levels"], 4);
    // JSON has no infinity: the all-at-once level is "inf", not null.
    let values: Vec<&serde_json::Value> = report["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| &l["load_value"])
        .collect();
    assert!(values.contains(&&serde_json::json!("inf")), "{values:?}");
    assert!(values.iter().all(|v| !v.is_null()), "{values:?}");
    assert_eq!(report["runs"][0]["sweep"]["sync_rate"], probed["sync_rate"]);
    let modes: Vec<&str> = report["saturation"]
        .as_array()
        .expect("saturation")
        .iter()
        .map(|s| s["load_mode"].as_str().expect("mode"))
        .collect();
    assert_eq!(modes, ["qps"]);
    assert!(
        report["notes"]
            .to_string()
            .contains("is a sweep of 4 levels")
    );
    // A single-turn trace: run.json says so, and no session spans.
    assert_eq!(runj["trace"]["sessions"], 30);
    assert_eq!(runj["trace"]["turns"], 30);
    assert_eq!(report["session_spans"], serde_json::json!([]));

    // Another run at the same levels: compare matches all of them.
    let mock = MockProcess::start(&["--ttft-ms", "10", "--itl-ms", "5"]);
    let again = dir.path().join("again");
    let run_arg = run.display().to_string();
    let out = run_replay(
        &trace,
        &mock.url,
        &again,
        &["--levels-from", &run_arg, "--no-metrics"],
    );
    let (run2, rows2) = replay_rows(&out, &again);
    assert_eq!(rows2.len(), 120);
    let runj2 = read_json(&run2.join("run.json"));
    assert_eq!(runj2["config"]["levels"], cfg["levels"]);
    assert!(runj2["config"]["sweep"].is_null());
    let cmp = trace_ok([
        "compare",
        &run_arg,
        &run2.display().to_string(),
        "--format",
        "json",
    ]);
    let cmp: serde_json::Value = serde_json::from_str(&cmp).expect("compare json");
    let compared = cmp["levels"].as_array().expect("compared levels");
    assert_eq!(compared.len(), 4, "{cmp}");
    for l in compared {
        let ok = l["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["metric"] == "success_pct")
            .expect("success_pct");
        assert_eq!(ok["values"], serde_json::json!([100.0, 100.0]), "{l}");
    }
}

#[test]
fn a_sweep_whose_probe_completes_nothing_stops_after_it() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 5, 16, 2, &[]);
    let mock = MockProcess::start(&["--ttft-ms", "1", "--itl-ms", "1", "--faults", "500=1"]);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--sweep", "4", "--no-metrics"],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert!(
        stderr(&out).contains("the sweep stops: its concurrency 1 probe completed no request"),
        "{}",
        stderr(&out)
    );
    // Only the first probe ran; what it did is kept.
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.load_mode == "concurrency"));
    let runj = read_json(&run.join("run.json"));
    assert_eq!(runj["levels"].as_array().expect("levels").len(), 1);
    assert!(runj["config"]["sweep"]["probed"].is_null());
}

#[test]
fn sweep_and_levels_from_refuse_bad_input() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 3, 8, 2, &[]);
    let t = trace.display().to_string();
    let url = "http://127.0.0.1:9";
    let err = trace_err(["replay", &t, "--endpoint", url, "--sweep", "2"]);
    assert!(err.contains("--sweep: 2 levels are too few"), "{err}");
    let err = trace_err([
        "replay",
        &t,
        "--endpoint",
        url,
        "--sweep",
        "5",
        "--qps",
        "1",
    ]);
    assert!(err.contains("choose one load mode"), "{err}");
    // --levels-from needs a run folder with levels.
    let not_a_run = dir.path().display().to_string();
    let err = trace_err(["replay", &t, "--endpoint", url, "--levels-from", &not_a_run]);
    assert!(err.contains("--levels-from: cannot read"), "{err}");
    assert!(err.contains("run.json"), "{err}");
}

#[test]
fn warmup_rows_are_flagged_and_left_out_of_the_summary() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 20, 64, 4, &[]);
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "2", "--itl-ms", "1"],
        &[
            "--qps",
            "100",
            "--arrival",
            "constant",
            "--warmup",
            "5",
            "--no-metrics",
        ],
    );
    assert_eq!(rows.len(), 20);
    assert_all_ok(&rows);
    let sorted = by_schedule(&rows);
    assert!(
        sorted[..5].iter().all(|r| r.warmup),
        "the first 5 are warm-up"
    );
    assert!(sorted[5..].iter().all(|r| !r.warmup));
    let l = &read_json(&run.join("summary.json"))["levels"][0];
    assert_eq!(l["requests"], 15);
    assert_eq!(l["ok"], 15);
    assert_eq!(l["warmup_requests"], 5);
    assert_eq!(l["ttft_ms"]["count"], 15);
}

#[test]
fn second_round_repeats_every_request_and_hits_the_prefix_cache() {
    let dir = tempdir();
    let trace = synth_random_trace(
        &dir.path().join("t.parquet"),
        12,
        256,
        4,
        &["--prefix-len", "128", "--num-prefixes", "2"],
    );
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "2", "--itl-ms", "1"],
        &["--concurrency", "2", "--rounds", "2", "--no-metrics"],
    );
    assert_eq!(rows.len(), 24);
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    let ids = |round: u32| -> HashSet<&str> {
        rows.iter()
            .filter(|r| r.round == round)
            .map(|r| r.request_id.as_str())
            .collect()
    };
    assert_eq!(ids(1).len(), 12);
    assert_eq!(ids(1), ids(2), "the same requests in both rounds");
    let first: HashMap<&str, &RequestRecord> = rows
        .iter()
        .filter(|r| r.round == 1)
        .map(|r| (r.request_id.as_str(), r))
        .collect();
    for r in rows.iter().filter(|r| r.round == 2) {
        let cached = r.cached_tokens.expect("the mock reports cached tokens");
        assert!(cached > 0, "{} missed the cache in round 2", r.request_id);
        let before = first[r.request_id.as_str()];
        assert!(cached >= before.cached_tokens.unwrap_or(0));
        assert_eq!(r.prompt_tokens, before.prompt_tokens, "the same prompt");
    }
    let summary = read_json(&run.join("summary.json"));
    let levels = summary["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[0]["round"], 1);
    assert_eq!(levels[1]["round"], 2);
    let ratio = |i: usize| levels[i]["cached_token_ratio"].as_f64().unwrap_or(0.0);
    assert!(
        ratio(1) > ratio(0),
        "warm round {} vs cold {}",
        ratio(1),
        ratio(0)
    );
}

// ---- sessions ----

/// The first `n` sessions of the ShareGPT sample, as a trace.
fn sharegpt_sessions(dir: &Path) -> PathBuf {
    let out = dir.join("sharegpt.parquet");
    trace_ok([
        "convert".as_ref(),
        "sharegpt".as_ref(),
        shared_data("sharegpt/fastchat_dummy_conversation.json").as_os_str(),
        "--limit".as_ref(),
        "30".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    out
}

/// Rows grouped by session, each session's turns in order.
/// How many sessions have each value of `part` (a server, a model),
/// asserting that every turn of a session has its first turn's.
fn sessions_per<'a>(
    rows: &'a [RequestRecord],
    part: impl Fn(&'a RequestRecord) -> Option<&'a str>,
) -> HashMap<&'a str, usize> {
    let mut per: HashMap<&str, usize> = HashMap::new();
    for (id, turns) in sessions_of(rows) {
        let seen: HashSet<_> = turns.iter().map(|r| part(r)).collect();
        assert_eq!(seen.len(), 1, "session {id} has {seen:?}");
        *per.entry(part(turns[0]).expect("a value")).or_default() += 1;
    }
    per
}

fn sessions_of(rows: &[RequestRecord]) -> BTreeMap<&str, Vec<&RequestRecord>> {
    let mut by: BTreeMap<&str, Vec<&RequestRecord>> = BTreeMap::new();
    for r in rows {
        by.entry(r.session_id.as_str()).or_default().push(r);
    }
    for turns in by.values_mut() {
        turns.sort_by_key(|r| r.turn);
    }
    by
}

/// Checks that turn k+1 of every session went out after turn k ended (the
/// trace has no think times), and that every prompt held the history:
/// the trace's replies (`live` false) or what the server sent (`live` true).
fn check_sessions(trace: &[TraceRow], rows: &[RequestRecord], live: bool) {
    let by_key: HashMap<(&str, u32), &TraceRow> = trace
        .iter()
        .map(|t| ((t.session_id.as_str(), t.turn), t))
        .collect();
    let sessions = sessions_of(rows);
    let mut multi = 0;
    for (sid, turns) in &sessions {
        let expected: Vec<u32> = (0..turns.len() as u32).collect();
        let got: Vec<u32> = turns.iter().map(|r| r.turn).collect();
        assert_eq!(got, expected, "session {sid}: every turn once, in order");
        if turns.len() > 1 {
            multi += 1;
        }
        let mut history: Vec<String> = Vec::new();
        for (k, r) in turns.iter().enumerate() {
            if k > 0 {
                let prev = turns[k - 1];
                assert!(
                    r.sent_ms >= prev.end_ms,
                    "{}: sent at {} before turn {} ended at {}",
                    r.request_id,
                    r.sent_ms,
                    prev.turn,
                    prev.end_ms
                );
                assert!((r.scheduled_ms - prev.end_ms).abs() < 1e-6, "{r:?}");
            }
            let t = by_key[&(*sid, r.turn)];
            history.extend(t.messages.iter().map(|m| m.content.clone()));
            let texts: Vec<&str> = history.iter().map(String::as_str).collect();
            assert_eq!(
                r.prompt_tokens,
                Some(mock_tokens(&texts)),
                "{}: prompt {texts:?}",
                r.request_id
            );
            if live {
                // The mock's words are ASCII: as many bytes as characters.
                history.push("x".repeat(r.output_chars as usize));
            } else {
                history.push(t.reference_output.clone().unwrap_or_default());
            }
        }
    }
    assert!(multi >= 10, "only {multi} multi-turn sessions checked");
}

#[test]
fn multi_turn_turns_follow_their_previous_response_with_recorded_history() {
    let dir = tempdir();
    let trace = sharegpt_sessions(dir.path());
    let trace_rows = read_rows(&trace);
    let (_, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "3", "--itl-ms", "1"],
        &["--concurrency", "4", "--max-tokens", "6", "--no-metrics"],
    );
    assert_eq!(rows.len(), trace_rows.len(), "every turn of every session");
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    check_sessions(&trace_rows, &rows, false);
}

#[test]
fn history_live_sends_the_servers_own_replies() {
    let dir = tempdir();
    let trace = sharegpt_sessions(dir.path());
    let trace_rows = read_rows(&trace);
    let (_, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "3", "--itl-ms", "1"],
        &[
            "--qps",
            "50",
            "--history",
            "live",
            "--max-tokens",
            "6",
            "--no-metrics",
        ],
    );
    assert_eq!(rows.len(), trace_rows.len());
    assert_all_ok(&rows);
    assert!(rows.iter().all(|r| r.output_chars > 0));
    check_sessions(&trace_rows, &rows, true);
}

#[test]
fn trace_time_follows_the_recorded_arrivals_scaled() {
    let dir = tempdir();
    let trace = dir.path().join("mooncake.parquet");
    trace_ok([
        "convert".as_ref(),
        "mooncake".as_ref(),
        shared_data("mooncake/synthetic_trace.jsonl").as_os_str(),
        "--limit".as_ref(),
        "40".as_ref(),
        "-o".as_ref(),
        trace.as_os_str(),
    ]);
    let trace_rows = read_rows(&trace);
    let arrival: HashMap<&str, f64> = trace_rows
        .iter()
        .map(|t| (t.request_id.as_str(), t.arrival_ms.expect("arrival_ms")))
        .collect();
    let origin = arrival.values().copied().fold(f64::INFINITY, f64::min);
    // Mooncake prompts run to tens of thousands of tokens.
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "2",
        "--itl-ms",
        "1",
        "--max-model-len",
        "10000000",
    ]);
    let scale = 8.0;
    let replay = |results: &str, extra: &[&str]| {
        let results = dir.path().join(results);
        let mut args = vec![
            "--trace-time",
            "--time-scale",
            "8",
            "--max-tokens",
            "4",
            "--no-metrics",
        ];
        args.extend_from_slice(extra);
        let out = run_replay(&trace, &mock.url, &results, &args);
        replay_rows(&out, &results)
    };
    let (run, rows) = replay("results", &[]);
    assert_eq!(rows.len(), 40);
    assert_all_ok(&rows);
    let start = level_start_ms(&run, 0);
    for r in &rows {
        assert_eq!(r.load_mode, "trace");
        assert_eq!(r.load_value, scale);
        let a = arrival
            .get(r.request_id.as_str())
            .unwrap_or_else(|| panic!("{} is the trace's request id", r.request_id));
        let want = (a - origin) / scale;
        let got = r.scheduled_ms - start;
        assert!(
            (got - want).abs() < 0.01,
            "{}: scheduled at {got} ms, the trace says {want} ms",
            r.request_id
        );
        assert!(r.sent_ms >= r.scheduled_ms);
    }
    // --duration ends the level: the arrivals recorded after it are not sent.
    let mut offsets: Vec<f64> = arrival.values().map(|a| (a - origin) / scale).collect();
    offsets.sort_by(f64::total_cmp);
    let cut = (offsets[15] + offsets[16]) / 2.0;
    let before: std::collections::BTreeSet<&str> = arrival
        .iter()
        .filter(|(_, a)| (**a - origin) / scale < cut)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(before.len(), 16);
    let duration = format!("{}ms", cut.round());
    let (run, rows) = replay("results-duration", &["--duration", &duration]);
    let sent: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(sent, before, "exactly the arrivals before {duration}");
    assert_eq!(
        read_json(&run.join("run.json"))["levels"][0]["sessions_started"],
        16
    );
}

/// `--trace-time --requests N` replays the N earliest arrivals, wherever
/// they are in the file.
#[test]
fn trace_time_requests_takes_the_earliest_arrivals() {
    let dir = tempdir();
    let input = dir.path().join("unordered.jsonl");
    let times = [500, 0, 300, 100, 400, 200];
    let lines: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                r#"{{"timestamp": {t}, "input_length": 40, "output_length": 2, "hash_ids": [{i}]}}"#
            )
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).expect("write the trace");
    let sorted = dir.path().join("sorted.parquet");
    trace_ok([
        "convert".as_ref(),
        "mooncake".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        sorted.as_os_str(),
    ]);
    // The converter writes rows in time order; another tool may not.
    let reader = traces::TraceReader::open(&sorted).expect("opens");
    let meta = reader.metadata().clone();
    let mut rows = reader.read_all().expect("rows");
    rows.reverse();
    let trace = dir.path().join("t.parquet");
    let mut w = traces::TraceWriter::create(&trace, &meta).expect("writer");
    for r in rows {
        w.write(r).expect("write");
    }
    w.finish().expect("finish");
    let arrival: HashMap<String, f64> = read_rows(&trace)
        .into_iter()
        .map(|t| (t.request_id, t.arrival_ms.expect("arrival_ms")))
        .collect();
    let (_, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "1", "--itl-ms", "1"],
        &[
            "--trace-time",
            "--time-scale",
            "10",
            "--requests",
            "3",
            "--no-metrics",
        ],
    );
    let mut sent: Vec<f64> = rows.iter().map(|r| arrival[&r.request_id]).collect();
    sent.sort_by(f64::total_cmp);
    assert_eq!(sent, [0.0, 100.0, 200.0]);
}

#[test]
fn users_run_their_session_turns_in_order() {
    users_run_their_turns_after_their_think_times(None);
}

#[test]
fn think_scale_multiplies_the_pauses_between_turns() {
    users_run_their_turns_after_their_think_times(Some(0.0));
    users_run_their_turns_after_their_think_times(Some(2.5));
}

/// Four agent users with 30 ms think times, replayed with `--think-scale`
/// when given: each turn is scheduled exactly at the previous turn's end
/// plus its scaled think time.
fn users_run_their_turns_after_their_think_times(scale: Option<f64>) {
    let dir = tempdir();
    let trace = dir.path().join("agent.parquet");
    trace_ok([
        "synth",
        "agent",
        "--users",
        "4",
        "--turns",
        "3",
        "--system-prefix-tokens",
        "50",
        "--user-prefix-tokens",
        "20",
        "--turn-input-tokens",
        "20",
        "--turn-output-tokens",
        "5",
        "--think-ms",
        "30",
        "-o",
        trace.to_str().expect("utf8"),
    ]);
    let trace_rows = read_rows(&trace);
    let think: HashMap<(String, u32), f64> = trace_rows
        .iter()
        .map(|t| ((t.session_id.clone(), t.turn), t.think_ms.unwrap_or(0.0)))
        .collect();
    let mock = MockProcess::start(&["--ttft-ms", "3", "--itl-ms", "1"]);
    let results = dir.path().join("results");
    let scale_arg = scale.map(|s| s.to_string());
    let mut args = vec![
        "--users",
        "4",
        "--user-arrival",
        "steady:0.2",
        "--no-metrics",
    ];
    if let Some(s) = &scale_arg {
        args.extend(["--think-scale", s.as_str()]);
    }
    let out = run_replay(&trace, &mock.url, &results, &args);
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(
        read_json(&run.join("run.json"))["config"]["think_scale"],
        scale.unwrap_or(1.0)
    );
    assert_eq!(rows.len(), 12);
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    let start = level_start_ms(&run, 0);
    let mut users = HashSet::new();
    for (sid, turns) in sessions_of(&rows) {
        assert_eq!(turns.len(), 3, "{sid}");
        let user = turns[0].user_id.expect("user_id set in --users mode");
        assert!(users.insert(user), "user {user} ran two sessions");
        assert!(turns.iter().all(|r| r.user_id == Some(user)));
        // User k arrives k × 200 ms into the level.
        let first = turns[0].scheduled_ms - start;
        assert!(
            (first - f64::from(user) * 200.0).abs() < 0.01,
            "user {user} arrived at {first} ms"
        );
        for w in turns.windows(2) {
            assert_eq!(w[1].turn, w[0].turn + 1);
            let t = think[&(sid.to_string(), w[1].turn)] * scale.unwrap_or(1.0);
            assert!(w[1].sent_ms >= w[0].end_ms + t, "{:?}", w[1]);
            assert!((w[1].scheduled_ms - (w[0].end_ms + t)).abs() < 1e-6);
        }
    }
    assert_eq!(users, (0..4).collect::<HashSet<u32>>());
}

/// Under --duration each user starts another session when one ends, one
/// at a time, and nothing is sent after the level's end.
#[test]
fn users_run_sessions_one_after_another_for_the_duration() {
    let dir = tempdir();
    let trace = synth_agent_trace(&dir.path().join("agent.parquet"), 2, 2, "20");
    let (run, rows) = replay_on_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "2", "--itl-ms", "1"],
        &["--users", "2", "--duration", "1s", "--no-metrics"],
    );
    assert_all_ok(&rows);
    assert_unique_requests(&rows);
    let end = level_start_ms(&run, 0) + 1000.0;
    // Every request was due before the end (it is sent when due, give or
    // take the machine's scheduling: `lateness_ms`).
    assert!(
        rows.iter().all(|r| r.scheduled_ms < end),
        "a request due after the end: {:?}",
        rows.iter().find(|r| r.scheduled_ms >= end)
    );
    // Far more than the trace's two sessions ran, each user's in turn.
    let sessions = sessions_of(&rows);
    assert!(sessions.len() > 6, "{} sessions", sessions.len());
    assert_eq!(
        read_json(&run.join("run.json"))["levels"][0]["sessions_started"],
        sessions.len()
    );
    for user in [0, 1] {
        let n = assert_one_session_at_a_time(&sessions, user);
        assert!(n > 3, "user {user}: {n} sessions");
    }
}

/// Asserts that `user` ran its sessions one after another, every turn
/// labelled as its own; returns how many it ran.
fn assert_one_session_at_a_time(
    sessions: &BTreeMap<&str, Vec<&RequestRecord>>,
    user: u32,
) -> usize {
    let mut spans: Vec<(f64, f64)> = sessions
        .values()
        .filter(|turns| turns[0].user_id == Some(user))
        .map(|turns| {
            assert!(turns.iter().all(|r| r.user_id == Some(user)));
            let first = turns.iter().map(|r| r.sent_ms).fold(f64::MAX, f64::min);
            let last = turns.iter().map(|r| r.end_ms).fold(f64::MIN, f64::max);
            (first, last)
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "user {user} ran two sessions at once");
    }
    spans.len()
}

/// `--requests` counts sessions in `--users` mode too: beyond one per user,
/// users go on to the next session when theirs ends; below, fewer users
/// start.
#[test]
fn users_run_as_many_sessions_as_requests_asks() {
    let dir = tempdir();
    let trace = synth_agent_trace(&dir.path().join("agent.parquet"), 3, 2, "5");
    for (requests, users) in [(5usize, vec![0u32, 1]), (1, vec![0])] {
        let work = dir.path().join(format!("r{requests}"));
        let n = requests.to_string();
        let (run, rows) = replay_on_mock(
            &trace,
            &work,
            &["--ttft-ms", "2", "--itl-ms", "1"],
            &["--users", "2", "--requests", &n, "--no-metrics"],
        );
        assert_all_ok(&rows);
        assert_unique_requests(&rows);
        let sessions = sessions_of(&rows);
        assert_eq!(rows.len(), requests * 2, "two turns a session");
        assert_eq!(sessions.len(), requests);
        assert_eq!(
            read_json(&run.join("run.json"))["levels"][0]["sessions_started"],
            requests
        );
        let mut ran = 0;
        for user in &users {
            let k = assert_one_session_at_a_time(&sessions, *user);
            assert!(k >= 1, "user {user} ran nothing");
            ran += k;
        }
        assert_eq!(ran, requests, "only users {users:?} ran sessions");
    }
}

#[test]
fn completions_api_is_replayed_on_the_completions_endpoint() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 8, 64, 5, &[]);
    let LoggedReplay { run, rows, log, .. } = replay_on_logged_mock(
        &trace,
        dir.path(),
        &["--ttft-ms", "2", "--itl-ms", "1"],
        &["--api", "completions", "--concurrency", "2", "--no-metrics"],
    );
    let server = read_mock_log(&log);
    assert_eq!(rows.len(), 8);
    assert_all_ok(&rows);
    for r in &rows {
        assert_eq!(r.completion_tokens, Some(5));
        assert_eq!(r.itl_ms.len(), 4);
        assert!(r.output_chars > 0, "the completions text was read");
        assert_eq!(server[&r.request_id]["endpoint"], "completions");
    }
    let run_json = read_json(&run.join("run.json"));
    assert!(
        run_json["endpoint"]
            .as_str()
            .expect("endpoint")
            .ends_with("/v1/completions")
    );
}

// ---- run files and SLOs ----

fn replay_with_config(config: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut cmd = Command::new(trace_bin());
    cmd.args(["replay", "--config"])
        .arg(fixture(&format!("replay/{config}")))
        .args(extra)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("OPENAI_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("trace replay runs")
}

#[test]
fn run_file_takes_the_environment_and_flags_override_it() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 20, 64, 8, &[]);
    let key = "s3cret-test-key-991";
    let mock = MockProcess::start(&[
        "--ttft-ms",
        "2",
        "--itl-ms",
        "1",
        "--model",
        "model-from-env",
        "--api-key",
        key,
    ]);
    let results = dir.path().join("results");
    let results_arg = results.display().to_string();
    let trace_arg = trace.display().to_string();
    let out = replay_with_config(
        "run.yaml",
        &[
            ("TRACE_TEST_TRACE", &trace_arg),
            ("TRACE_TEST_ENDPOINT", &mock.url),
            ("TRACE_TEST_MODEL", "model-from-env"),
            ("TRACE_TEST_API_KEY", key),
        ],
        // The file asks for 10 requests of 4 tokens, named from-file.
        &[
            "--requests",
            "6",
            "--name",
            "from-cli",
            "--results-dir",
            &results_arg,
            "--quiet",
        ],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 6, "--requests overrides the file");
    assert_all_ok(&rows);
    // The file's own settings still apply: 4 tokens, constant 100/s.
    assert!(rows.iter().all(|r| r.completion_tokens == Some(4)));
    let sorted = by_schedule(&rows);
    for w in sorted.windows(2) {
        assert!((w[1].scheduled_ms - w[0].scheduled_ms - 10.0).abs() < 0.01);
    }
    let name = run
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.ends_with("_from-cli"), "{name}");
    let text = std::fs::read_to_string(run.join("run.json")).expect("run.json");
    assert!(!text.contains(key), "the API key leaked into run.json");
    let run_json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(run_json["model"], "model-from-env");
    assert_eq!(run_json["config"]["api_key_set"], true);
    assert_eq!(run_json["config"]["requests"], 6);
    assert_eq!(
        run_json["endpoint"],
        format!("{}/v1/chat/completions", mock.url)
    );
}

#[test]
fn a_load_mode_flag_replaces_the_run_files_load_mode() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 6, 64, 4, &[]);
    let mock = MockProcess::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let results = dir.path().join("results");
    let results_arg = results.display().to_string();
    let trace_arg = trace.display().to_string();
    let out = replay_with_config(
        "run-concurrency.yaml",
        &[
            ("TRACE_TEST_TRACE", &trace_arg),
            ("TRACE_TEST_ENDPOINT", &mock.url),
        ],
        &["--qps", "50", "--results-dir", &results_arg, "--quiet"],
    );
    let (_, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r.load_mode == "qps"), "{:?}", rows[0]);
}

fn slo_run(slo_file: &str, fail_on_slo: bool) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 8, 64, 4, &[]);
    let mock = MockProcess::start(&["--ttft-ms", "30", "--itl-ms", "1"]);
    let results = dir.path().join("results");
    let slo = fixture(&format!("replay/{slo_file}"));
    let slo = slo.to_str().expect("utf8");
    let mut extra = vec!["--concurrency", "2", "--no-metrics", "--slo-file", slo];
    if fail_on_slo {
        extra.push("--fail-on-slo");
    }
    let out = run_replay(&trace, &mock.url, &results, &extra);
    (out, results, dir)
}

#[test]
fn fail_on_slo_exits_3_when_an_slo_is_missed() {
    let (out, results, _dir) = slo_run("slo-missed.yaml", true);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("SLO"), "{}", stderr(&out));
    let run = only_run_dir(&results);
    let l = &read_json(&run.join("summary.json"))["levels"][0];
    assert_eq!(l["slo_met"], false);
    assert_eq!(l["slo_attainment_pct"], 0.0);
    assert_eq!(l["ok"], 8, "the requests themselves succeeded");
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["slo"]["ttft_ms"], 5.0);
}

#[test]
fn missed_slo_without_fail_on_slo_exits_0() {
    let (out, results, _dir) = slo_run("slo-missed.yaml", false);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = only_run_dir(&results);
    assert_eq!(
        read_json(&run.join("summary.json"))["levels"][0]["slo_met"],
        false
    );
}

#[test]
fn fail_on_slo_exits_0_when_every_slo_is_met() {
    let (out, results, _dir) = slo_run("slo-met.yaml", true);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = only_run_dir(&results);
    let l = &read_json(&run.join("summary.json"))["levels"][0];
    assert_eq!(l["slo_met"], true);
    assert_eq!(l["slo_attainment_pct"], 100.0);
    assert!(l["goodput"].as_f64().expect("goodput") > 0.0);
}

// ---- clear errors ----

fn replay_err(trace: &Path, url: &str, dir: &Path, extra: &[&str]) -> String {
    let out = run_replay(trace, url, &dir.join("results"), extra);
    assert!(
        !out.status.success(),
        "replay {extra:?} unexpectedly succeeded"
    );
    assert_ne!(out.status.code(), Some(0));
    stderr(&out)
}

#[test]
fn usage_errors_say_what_is_wrong() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 4, 64, 4, &[]);
    let url = format!("http://127.0.0.1:{}", closed_port());
    let d = dir.path();
    let e = replay_err(&trace, &url, d, &[]);
    assert!(e.contains("choose a load"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--concurrency", "2"]);
    assert!(e.contains("choose one load mode"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "fast"]);
    assert!(e.contains("--qps") && e.contains("fast"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "0"]);
    assert!(e.contains("--qps") && e.contains("positive"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--arrival", "gamma"]);
    assert!(e.contains("--burstiness"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--burstiness", "0.5"]);
    assert!(e.contains("--arrival gamma"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--arrival", "burst"]);
    assert!(e.contains("burst:8"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--arrival", "burst:0"]);
    assert!(e.contains("group size"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--route", "random"]);
    assert!(e.contains("--route") && e.contains("least-busy"), "{e}");
    let e = replay_err(&trace, "127.0.0.1:8000", d, &["--qps", "5"]);
    assert!(e.contains("--endpoint") && e.contains("http://"), "{e}");
    let e = replay_err(&trace, &url, d, &["--qps", "5", "--think-scale=-1"]);
    assert!(e.contains("--think-scale") && e.contains(">= 0"), "{e}");
    // None of these created a run folder.
    assert!(!d.join("results").exists());
}

#[test]
fn a_missing_trace_is_named() {
    let dir = tempdir();
    let missing = dir.path().join("no-such-trace.parquet");
    let url = format!("http://127.0.0.1:{}", closed_port());
    let e = replay_err(&missing, &url, dir.path(), &["--qps", "5", "--model", "m"]);
    assert!(e.contains("no-such-trace.parquet"), "{e}");
    assert!(!dir.path().join("results").exists());
}

#[test]
fn an_unset_variable_in_the_run_file_is_named() {
    let out = replay_with_config("run-unset-var.yaml", &[], &["--quiet"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("TRACE_TEST_NEVER_SET_ENDPOINT"), "{e}");
    assert!(e.contains("run-unset-var.yaml"), "{e}");
}

#[test]
fn unreachable_endpoint_fails_before_starting_without_a_model() {
    // Without --model the replayer asks the server for its model first.
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 4, 64, 4, &[]);
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let e = replay_err(&trace, &url, dir.path(), &["--qps", "5", "--no-metrics"]);
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("is the server running"), "{e}");
    assert!(!dir.path().join("results").exists(), "no run folder");
}

#[test]
fn unreachable_endpoint_with_a_model_records_connect_errors() {
    // With --model the run goes ahead: every request becomes a
    // connect_error row, none is lost, and the summary says 0% ok.
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 6, 64, 4, &[]);
    let url = format!("http://127.0.0.1:{}", closed_port());
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &url,
        &results,
        &["--qps", "50", "--model", "m", "--no-metrics"],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.status, Some(Status::ConnectError), "{r:?}");
        assert_eq!(r.http_status, None);
        let err = r.error.as_deref().expect("error");
        assert!(err.contains("refused"), "{err}");
    }
    let l = &read_json(&run.join("summary.json"))["levels"][0];
    assert_eq!(l["errors"]["connect_error"], 6);
    assert_eq!(l["ok"], 0);
    assert_eq!(l["success_pct"], 0.0);
}

// ---- several models ----

/// `--model base,lora-a` against a server with a LoRA adapter: sessions
/// take the models in turn, every turn of a session naming the same one;
/// each row says which (`model`), run.json lists them, and the report
/// splits by them. A model the server does not serve fails its own rows.
#[test]
fn sessions_take_several_models_in_turn() {
    let dir = tempdir();
    let trace = synth_agent_trace(&dir.path().join("agent.parquet"), 6, 3, "0");
    let mock = MockProcess::start(&["--model", "base", "--lora", "lora-a", "--ttft-ms", "1"]);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &[
            "--concurrency",
            "2",
            "--model",
            "base,lora-a",
            "--no-metrics",
        ],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert_all_ok(&rows);
    assert_eq!(rows.len(), 18);
    let per_model = sessions_per(&rows, |r| r.model.as_deref());
    assert_eq!(per_model, HashMap::from([("base", 3), ("lora-a", 3)]));
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(run_json["models"], serde_json::json!(["base", "lora-a"]));
    assert_eq!(run_json["model"], "base");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--by model"), "{stdout}");
    assert!(
        stdout.contains("    lora-a: 9 requests, 100.0% ok, TTFT p50 "),
        "{stdout}"
    );
    let split = &read_json(&run.join("summary.json"))["levels"][0]["models"];
    assert_eq!(split[0]["model"], "base");
    assert_eq!(
        (split[0]["requests"].as_u64(), split[1]["ok"].as_u64()),
        (Some(9), Some(9))
    );
    let query = stdout
        .lines()
        .find_map(|l| l.strip_prefix("query them: "))
        .unwrap_or_else(|| panic!("no query hint: {stdout}"));
    let answer = venv_sh(query, dir.path());
    assert!(
        answer.contains("base") && answer.contains("lora-a"),
        "{query}\n{answer}"
    );
    let report = report_json(&[run.to_str().expect("utf8"), "--by", "model"]);
    assert_eq!(report["runs"][0]["model"], "base, lora-a");
    let groups = report["by"]["groups"].as_array().expect("by groups");
    let requests: HashMap<&str, u64> = groups
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap_or("?"),
                g["requests"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        requests,
        HashMap::from([("model=base", 9), ("model=lora-a", 9)])
    );

    // An adapter the server does not have: its sessions' first turns fail
    // with the server's 404; the others run.
    let results = dir.path().join("results-missing");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &[
            "--concurrency",
            "2",
            "--model",
            "base,lora-x",
            "--no-metrics",
        ],
    );
    let (_, rows) = replay_rows(&out, &results);
    for r in &rows {
        match r.model.as_deref() {
            Some("lora-x") => assert_eq!(r.http_status, Some(404), "{r:?}"),
            _ => assert_eq!(r.status, Some(Status::Ok), "{r:?}"),
        }
    }
    assert_eq!(
        rows.iter()
            .filter(|r| r.model.as_deref() == Some("lora-x"))
            .count(),
        3
    );
}

// ---- several endpoints ----

/// `--route least-busy`: a session goes to the server with the fewest
/// sessions in progress, so a fast server takes more of them than a slow
/// one; round 2 sends each request where round 1 sent it.
#[test]
fn least_busy_routing_follows_the_servers_speed() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 24, 64, 4, &[]);
    let fast = MockProcess::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let slow = MockProcess::start(&["--ttft-ms", "150", "--itl-ms", "1"]);
    let endpoints = format!("{},{}", fast.url, slow.url);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &endpoints,
        &results,
        &[
            "--concurrency",
            "2",
            "--route",
            "least-busy",
            "--rounds",
            "2",
            "--no-metrics",
        ],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert_all_ok(&rows);
    assert_eq!(rows.len(), 48);
    let on = |server: &str, round: u32| {
        rows.iter()
            .filter(|r| r.round == round && r.endpoint.as_deref() == Some(server))
            .count()
    };
    let (fast_n, slow_n) = (on(&fast.url, 1), on(&slow.url, 1));
    assert_eq!(fast_n + slow_n, 24);
    // While the slow server answers one session (150 ms), the fast one
    // answers dozens: round-robin would have given each 12.
    assert!(
        slow_n >= 1 && fast_n >= 3 * slow_n,
        "fast {fast_n}, slow {slow_n}"
    );
    let round1: HashMap<&str, Option<&str>> = rows
        .iter()
        .filter(|r| r.round == 1)
        .map(|r| (r.request_id.as_str(), r.endpoint.as_deref()))
        .collect();
    for r in rows.iter().filter(|r| r.round == 2) {
        assert_eq!(
            round1.get(r.request_id.as_str()),
            Some(&r.endpoint.as_deref()),
            "{} moved server in round 2",
            r.request_id
        );
    }
    assert_eq!(
        read_json(&run.join("run.json"))["config"]["route"],
        "least-busy"
    );
    let plan = trace_ok([
        "replay",
        trace.to_str().expect("utf8"),
        "--endpoint",
        &endpoints,
        "--concurrency",
        "2",
        "--route",
        "least-busy",
        "--model",
        "m",
        "--dry-run",
    ]);
    assert!(plan.contains("each session to the least busy"), "{plan}");
}

/// `--endpoint A,B`: sessions go to the servers in turn, every turn of a
/// session to the same one; each row names its server, the slow server's
/// TTFT shows in its own rows and in `report --by endpoint`, both servers'
/// metrics are scraped, and a path given to `--cache-reset` empties both
/// caches.
#[test]
fn sessions_are_spread_over_several_endpoints() {
    let dir = tempdir();
    let trace = synth_agent_trace(&dir.path().join("agent.parquet"), 8, 3, "0");
    let fast = MockProcess::start(&["--ttft-ms", "2", "--itl-ms", "1"]);
    let slow = MockProcess::start(&["--ttft-ms", "60", "--itl-ms", "1"]);
    let endpoints = format!("{},{}/", fast.url, slow.url);
    let results = dir.path().join("results");
    let out = run_replay(
        &trace,
        &endpoints,
        &results,
        &[
            "--concurrency",
            "4",
            "--metrics-interval",
            "100ms",
            "--cache-reset",
            "/reset_prefix_cache",
        ],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert_all_ok(&rows);
    assert_eq!(rows.len(), 24);
    // Each session on one server; four sessions on each.
    let per_server = sessions_per(&rows, |r| r.endpoint.as_deref());
    let slow_name = slow.url.trim_end_matches('/');
    assert_eq!(
        per_server.get(fast.url.as_str()),
        Some(&4),
        "{per_server:?}"
    );
    assert_eq!(per_server.get(slow_name), Some(&4), "{per_server:?}");
    for r in &rows {
        let ttft = r.ttft_ms.expect("ttft");
        match r.endpoint.as_deref() {
            Some(e) if e == slow_name => assert!(ttft >= 60.0, "{r:?}"),
            _ => assert!(ttft < 60.0, "{r:?}"),
        }
    }
    let run_json = read_json(&run.join("run.json"));
    assert_eq!(
        run_json["endpoints"],
        serde_json::json!([fast.url, slow_name])
    );
    assert_eq!(
        run_json["config"]["cache_reset"],
        serde_json::json!([
            format!("{}/reset_prefix_cache", fast.url),
            format!("{slow_name}/reset_prefix_cache")
        ])
    );
    assert_eq!(run_json["levels"][0]["cache_reset"], true);
    // Both servers' metrics, each under its own endpoint.
    let metrics = run_json["config"]["metrics"]["endpoints"].clone();
    assert_eq!(
        metrics,
        serde_json::json!([
            format!("{}/metrics", fast.url),
            format!("{slow_name}/metrics")
        ])
    );

    // The summary splits the level by server, in --endpoint order.
    let summary = read_json(&run.join("summary.json"));
    let split = summary["levels"][0]["endpoints"]
        .as_array()
        .expect("endpoints");
    assert_eq!(split.len(), 2, "{split:?}");
    assert_eq!(split[0]["endpoint"], fast.url.as_str());
    assert_eq!(split[1]["endpoint"], slow_name);
    for (s, slow) in split.iter().zip([false, true]) {
        assert_eq!(
            (s["requests"].as_u64(), s["ok"].as_u64()),
            (Some(12), Some(12))
        );
        let p50 = s["ttft_ms"]["percentiles"]["p50"].as_f64().expect("p50");
        assert_eq!(p50 >= 60.0, slow, "{s}");
    }
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(
        console.contains(&format!(
            "    {slow_name}: 12 requests, 100.0% ok, TTFT p50 "
        )),
        "{console}"
    );

    // The query the replay prints runs as printed, one row per server.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let query = stdout
        .lines()
        .find_map(|l| l.strip_prefix("query them: "))
        .unwrap_or_else(|| panic!("no query hint: {stdout}"));
    let answer = venv_sh(query, dir.path());
    assert!(
        answer.contains(fast.url.as_str()) && answer.contains(slow_name),
        "{query}\n{answer}"
    );
    assert!(stdout.contains("--by endpoint"), "{stdout}");

    // The report groups by server like any column.
    let report = report_json(&[run.to_str().expect("utf8"), "--by", "endpoint"]);
    assert_eq!(
        report["runs"][0]["endpoint"],
        format!("{}, {slow_name}", fast.url)
    );
    // The server figures: all servers, and each one by its metrics URL.
    let by_server = report["levels"][0]["server_by_endpoint"]
        .as_object()
        .expect("server_by_endpoint");
    // Named as server_metrics names them: host and port.
    let hosts: HashSet<&str> = by_server.keys().map(String::as_str).collect();
    let host = |url: &str| url.trim_start_matches("http://").to_string();
    let (fast_host, slow_host) = (host(&fast.url), host(slow_name));
    assert_eq!(
        hosts,
        HashSet::from([fast_host.as_str(), slow_host.as_str()])
    );
    for (url, f) in by_server {
        assert!(f["samples"].as_u64().is_some_and(|n| n > 0), "{url}: {f}");
    }
    let all = report["levels"][0]["server"]["samples"].as_u64();
    let each: u64 = by_server
        .values()
        .filter_map(|f| f["samples"].as_u64())
        .sum();
    assert_eq!(all, Some(each));
    let text = trace_ok(["report", run.to_str().expect("utf8")]);
    assert!(
        text.contains(&format!("  {slow_host}  ")) && text.contains("  all  "),
        "{text}"
    );
    let groups = report["by"]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{groups:?}");
    for g in groups {
        let p50 = g["ttft_ms"]["p50"].as_f64().expect("p50");
        let label = g["group"].as_str().expect("label");
        assert_eq!(g["requests"], 12, "{g}");
        if label == format!("endpoint={slow_name}") {
            assert!(p50 >= 60.0, "{g}");
        } else {
            assert_eq!(label, format!("endpoint={}", fast.url));
            assert!(p50 < 60.0, "{g}");
        }
    }

    // The dry run names them; a server named twice is refused.
    let plan = trace_ok([
        "replay",
        trace.to_str().expect("utf8"),
        "--endpoint",
        &endpoints,
        "--concurrency",
        "2",
        "--model",
        "m",
        "--dry-run",
    ]);
    assert!(plan.contains("2 endpoints"), "{plan}");
    let e = trace_err([
        "replay",
        trace.to_str().expect("utf8"),
        "--endpoint",
        &format!("{},{}", fast.url, fast.url),
        "--concurrency",
        "1",
    ]);
    assert!(e.contains("given twice"), "{e}");
}
