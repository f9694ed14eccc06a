//! From Parquet parts to a [`Report`]: the runs' `requests/` parts are read
//! once, a batch of parts at a time and only the columns used, and every
//! batch feeds each section's accumulator (`grouped::GroupedAcc`, grouping
//! by a level number, `frames::LEVEL`, instead of the level's four key
//! columns; `rounds::RoundsAcc` for the round-to-round join). The
//! percentiles come from per-group buffers by selection (`stats::dist_of`).

mod frames;
mod grouped;
mod groups;
mod levels;
mod rounds;
mod saturation;
mod server;
mod session_spans;
pub mod stats;
mod store;
pub mod timeline;
mod users;

pub use users::spans as user_spans;

use crate::error::{PolarsContext, Result};
use crate::model::{PERCENTILE_DEFINITION, REPORT_VERSION, Report, Slo, fmt_value, round_sig};
use crate::run::RunFiles;

pub use frames::requests;
pub use levels::level_stats;

/// Time taken by each section, printed to stderr when the environment
/// sets `TRACE_REPORT_TIMING` (bench/report uses it).
struct Laps {
    start: Option<std::time::Instant>,
}

impl Laps {
    fn new() -> Self {
        Self {
            start: std::env::var_os("TRACE_REPORT_TIMING").map(|_| std::time::Instant::now()),
        }
    }

    fn done(&mut self, what: &str) {
        if let Some(start) = self.start.as_mut() {
            eprintln!("{what}: {:.3} s", start.elapsed().as_secs_f64());
            *start = std::time::Instant::now();
        }
    }
}

/// What the user asked of the report.
#[derive(Debug, Clone)]
pub struct Options {
    /// SLO for goodput and attainment; `None` takes each run's own.
    pub slo: Option<Slo>,
    /// Extra grouping columns (`--by`).
    pub by: Vec<String>,
    /// A level passes when at least this share of requests succeeded (or met the SLO), %.
    pub min_success_pct: f64,
    /// Without an SLO, a level passes while its TTFT p99 and E2E p50 stay
    /// within this factor of the lowest level's.
    pub latency_factor: f64,
    /// Recommended operating point = highest passing level × (1 − headroom).
    pub headroom_pct: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            slo: None,
            by: Vec::new(),
            min_success_pct: 99.0,
            latency_factor: 2.0,
            headroom_pct: 20.0,
        }
    }
}

/// The SLO in force: the user's, else the first run's that has one.
pub fn effective_slo(runs: &[RunFiles], opts: &Options) -> Slo {
    opts.slo.unwrap_or_else(|| {
        runs.iter()
            .filter_map(|r| r.run_json.as_ref())
            .map(|j| j.slo)
            .find(Slo::is_set)
            .unwrap_or_default()
    })
}

/// Compute every section of the report for these runs.
pub fn report(runs: &[RunFiles], opts: &Options) -> Result<Report> {
    let slo = effective_slo(runs, opts);
    let mut lap = Laps::new();
    let schema = frames::requests(runs)?
        .collect_schema()
        .ctx(|| "reading the requests schema".to_string())?;
    groups::check_by(&schema, &opts.by)?;
    // One pass over the parts feeds every section.
    let mut level_acc = levels::LevelsAcc::new(&slo);
    let mut sessions = groups::SessionsAcc::new();
    let mut users = users::per_user_acc();
    let mut by = (!opts.by.is_empty()).then(|| groups::ByAcc::new(&opts.by));
    let mut rounds = rounds::RoundsAcc::default();
    let mut spans = session_spans::SessionSpansAcc::default();
    let mut timeline = timeline::TimelineAcc::default();
    let mut level_ids = frames::Levels::default();
    let mut store = store::Store::default();
    frames::for_each_batch(runs, &opts.by, true, &mut level_ids, |batch| {
        // The sections are independent: two cores share them.
        let (a, b) = rayon::join(
            || {
                level_acc.add(batch)?;
                store.add(batch)
            },
            || {
                let (s, u) = rayon::join(
                    || sessions.add(batch),
                    || {
                        users.add(batch)?;
                        rounds.add(batch)?;
                        spans.add(batch)?;
                        timeline.add(batch)?;
                        match by.as_mut() {
                            Some(by) => by.add(batch),
                            None => Ok(()),
                        }
                    },
                );
                s.and(u)
            },
        );
        a.and(b)
    })?;
    lap.done("reading and accumulating");
    let mut notes = Vec::new();
    let mut levels = level_acc.finish(runs, &slo, &level_ids, &store)?;
    lap.done("levels");
    for run in runs {
        server::attach(run, &mut levels)?;
    }
    lap.done("server metrics");
    let infos = runs
        .iter()
        .map(|r| r.info(level_ids.run_rows(&r.run_id)))
        .collect::<Vec<_>>();
    for info in &infos {
        if !info.has_run_json {
            notes.push(format!(
                "{}: no run.json (the run was killed or is still running); the report covers the {} finished requests in its parts",
                info.run_id, info.rows
            ));
        } else if info.interrupted == Some(true) {
            notes.push(format!(
                "{}: the run was interrupted; the report covers the requests it finished",
                info.run_id
            ));
        }
    }
    for l in &levels {
        if l.ok == 0 && l.requests > 0 {
            notes.push(format!(
                "{} {}: no request succeeded ({} errors), so it has no latency figures",
                l.key.run_id,
                l.key.label(),
                l.requests
            ));
        }
    }
    for run in runs {
        let ignore_eos = run.run_json.as_ref().and_then(|j| j.ignore_eos);
        if let Some(note) = stopped_short_note(&run.run_id, &levels, ignore_eos) {
            notes.push(note);
        }
        let of_run = || levels.iter().filter(|l| l.key.run_id == run.run_id);
        let counted: u64 = of_run().map(|l| l.tokens_counted).sum();
        let tokenized: u64 = of_run().map(|l| l.tokens_tokenized).sum();
        let unknown: u64 = of_run().map(|l| l.tokens_unknown).sum();
        let ok: u64 = of_run().map(|l| l.ok).sum();
        if run.run_json.as_ref().and_then(|j| j.stream) == Some(false) {
            notes.push(format!("{}: {}", run.run_id, crate::notes::NOT_STREAMED));
        }
        let asked = run.run_json.as_ref().and_then(|j| j.include_usage);
        if let Some(note) = crate::notes::no_usage(
            crate::notes::NoUsage {
                counted,
                tokenized,
                unknown,
            },
            ok,
            asked,
        ) {
            notes.push(format!("{}: {note}", run.run_id));
        }
        if let Some(j) = &run.run_json {
            let busy: Vec<(String, Option<f64>, Option<f64>)> = j
                .windows
                .iter()
                .map(|w| {
                    let key = crate::model::LevelKey {
                        run_id: run.run_id.clone(),
                        load_mode: w.load_mode.clone(),
                        load_value: w.load_value,
                        round: w.round,
                    };
                    (key.label(), w.client_cpu_pct, w.machine_cpu_pct)
                })
                .collect();
            if let Some(note) = crate::notes::client_busy(&busy) {
                notes.push(format!("{}: {note}", run.run_id));
            }
        }
        let chunked: Vec<_> = levels
            .iter()
            .filter(|l| l.key.run_id == run.run_id)
            .map(|l| crate::notes::ChunkedLevel {
                name: l.key.label(),
                tokens_per_chunk: l.tokens_per_chunk,
                itl_p50_ms: l.itl_ms.p50,
                tpot_p50_ms: l.tpot_ms.p50,
            })
            .collect();
        if let Some(note) = crate::notes::chunked_stream(&chunked) {
            notes.push(format!("{}: {note}", run.run_id));
        }
        let cache_reset = run.run_json.as_ref().is_some_and(|j| j.cache_reset);
        if !cache_reset && let Some(note) = cache_reuse_note(&run.run_id, &levels) {
            notes.push(note);
        }
    }
    for info in &infos {
        if let Some(sw) = &info.sweep {
            let rates = match (sw.sync_rate, sw.max_rate) {
                (Some(a), Some(b)) => format!(
                    ": {} sessions/s one at a time, {} all at once",
                    fmt_value(round_sig(a, 3)),
                    fmt_value(round_sig(b, 3))
                ),
                _ => " whose probes did not finish".to_string(),
            };
            notes.push(format!(
                "{} is a sweep of {} levels{rates}; its concurrency 1 and qps inf levels are the probes the qps rates were chosen from, and the saturation line covers its qps levels",
                info.run_id, sw.levels
            ));
        }
    }
    // A sweep's concurrency-1 level is a probe, not a series to assess.
    let probes: Vec<(String, String)> = infos
        .iter()
        .filter(|i| i.sweep.is_some())
        .map(|i| (i.run_id.clone(), "concurrency".to_string()))
        .collect();
    let saturation = saturation::assess(&levels, &slo, opts, &probes);
    let (turns, prompt_buckets) = sessions.finish(&level_ids, &store)?;
    let users = users::per_user(users, &level_ids, &store)?;
    let user_spans = users::spans(&users);
    let by = by.map(|b| b.finish(&level_ids, &store)).transpose()?;
    lap.done("sessions, users, --by");
    let rounds = rounds.finish(&level_ids);
    lap.done("rounds");
    let session_spans = spans.finish(&level_ids);
    lap.done("session spans");
    let timeline = timeline.finish(&level_ids, &store)?;
    lap.done("timeline");
    Ok(Report {
        report_version: REPORT_VERSION,
        percentile_definition: PERCENTILE_DEFINITION.to_string(),
        runs: infos,
        slo,
        levels,
        saturation,
        rounds,
        turns,
        session_spans,
        prompt_buckets,
        timeline,
        users,
        user_spans,
        by,
        notes,
    })
}

/// A note when a run's replies came back shorter than the `max_tokens`
/// they asked for: its output lengths followed the model, not the trace.
fn stopped_short_note(
    run_id: &str,
    levels: &[crate::model::LevelStats],
    ignore_eos: Option<bool>,
) -> Option<String> {
    let of_run: Vec<_> = levels.iter().filter(|l| l.key.run_id == run_id).collect();
    let short: u64 = of_run.iter().map(|l| l.stopped_short).sum();
    let ok: u64 = of_run.iter().map(|l| l.ok).sum();
    let fills: Vec<f64> = of_run.iter().filter_map(|l| l.output_fill_pct).collect();
    let note = crate::notes::stopped_short(short, ok, &fills, ignore_eos != Some(false))?;
    Some(format!("{run_id}: {note}"))
}

/// A note when a run's later levels found the prompts of its earlier ones
/// in the server's prefix cache: every level starts from the trace's first
/// session, and nothing emptied the cache between levels.
fn cache_reuse_note(run_id: &str, levels: &[crate::model::LevelStats]) -> Option<String> {
    let mut first_round: Vec<_> = levels
        .iter()
        .filter(|l| l.key.run_id == run_id && l.key.round == 1)
        .collect();
    first_round.sort_by(|a, b| a.first_scheduled_ms.total_cmp(&b.first_scheduled_ms));
    let named: Vec<(String, Option<f64>)> = first_round
        .iter()
        .map(|l| (l.key.label(), l.cached_token_ratio))
        .collect();
    let note = crate::notes::cache_reuse(&named)?;
    Some(format!("{run_id}: {note}"))
}
