//! `trace replay`: replays a trace against an OpenAI-compatible endpoint at
//! the load asked for and records what happened to every request.
//!
//! - `args`: the command line; `config`: merged with the run file and validated.
//! - `schedule`: intended send times (pure); `runner`: levels, sessions, dispatch.
//! - `client` + `sse`: one request and its stream; `workload`: request bodies.
//! - `recorder`: the one writer of the results; `summary`: per-level statistics.
//! - `output`: the run folder, `run.json`, `summary.*`.
//! - `sweep`: `--sweep N`, levels chosen from two probe levels.

mod args;
mod cache_reset;
pub mod client;
mod client_cpu;
pub mod config;
pub mod metrics;
mod output;
pub mod output_tokens;
mod plan;
mod recorder;
mod route;
mod runner;
pub mod schedule;
mod sse;
pub mod summary;
pub mod sweep;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::time::Instant;

pub use args::ReplayArgs;
use client::{Endpoint, build_client};
use config::RunConfig;
use runner::{LevelPlan, Shared};
use workload::RequestOptions;

/// Exit status of a run that finished but missed an SLO under `--fail-on-slo`.
pub const EXIT_SLO_MISSED: u8 = 3;

/// An error that carries its own exit status.
#[derive(Debug)]
pub struct ExitStatus(pub u8, pub String);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for ExitStatus {}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    // Command line only: a run file cannot ask for it, and merging drops it.
    let dry_run = args.dry_run;
    let args = config::merge_run_file(args)?;
    let cfg = config::resolve(args)?;
    if dry_run {
        let (sessions, _) = workload::load_sessions(&cfg.trace)
            .with_context(|| format!("cannot load the trace {}", cfg.trace.display()))?;
        if sessions.is_empty() {
            bail!("{}: the trace has no rows", cfg.trace.display());
        }
        let sessions: Vec<Arc<workload::Session>> = sessions.into_iter().map(Arc::new).collect();
        let levels = plan::plan(&cfg, &sessions)?;
        print!("{}", plan::render(&cfg, sessions.len(), &levels));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(execute(cfg))?;
    if let Some(code) = outcome.exit_code {
        return Err(ExitStatus(code, outcome.message).into());
    }
    Ok(())
}

/// What a finished run returns to its caller.
pub struct RunOutcome {
    pub run_dir: std::path::PathBuf,
    pub levels: Vec<summary::LevelSummary>,
    pub exit_code: Option<u8>,
    pub message: String,
}

/// Lists the server's models and returns the first.
async fn discover_model(client: &reqwest::Client, cfg: &RunConfig) -> anyhow::Result<String> {
    let url = format!("{}/models", cfg.base_url);
    let mut req = client.get(&url);
    if let Some(k) = &cfg.api_key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is the server running? (or give --model)"))?;
    if !resp.status().is_success() {
        bail!(
            "{url} answered HTTP {}; give --model",
            resp.status().as_u16()
        );
    }
    let v: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("{url}: not a JSON model list; give --model"))?;
    v.pointer("/data/0/id")
        .and_then(|x| x.as_str())
        .map(str::to_string)
        .with_context(|| format!("{url} lists no model; give --model"))
}

/// The session that pauses longest between its turns, and its pauses in
/// all (ms), as the replayer would wait them (capped like the replayer).
fn longest_thinking(sessions: &[workload::Session], scale: f64) -> Option<(&str, f64)> {
    sessions
        .iter()
        .map(|s| {
            let ms: f64 = s
                .turns
                .iter()
                .skip(1)
                .map(|t| (t.think_ms.unwrap_or(0.0).max(0.0) * scale).min(runner::MAX_THINK_MS))
                .sum();
            (s.id.as_str(), ms)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Runs a whole replay: every level and round, then the summaries.
pub async fn execute(mut cfg: RunConfig) -> anyhow::Result<RunOutcome> {
    let (sessions, meta) = workload::load_sessions(&cfg.trace)
        .with_context(|| format!("cannot load the trace {}", cfg.trace.display()))?;
    if sessions.is_empty() {
        bail!("{}: the trace has no rows", cfg.trace.display());
    }
    if cfg.duration.is_none()
        && let Some((id, ms)) = longest_thinking(&sessions, cfg.think_scale)
        && ms > 3_600_000.0
    {
        eprintln!(
            "warning: session {id} of {} pauses {:.1} h in all between its turns (think_ms x \
             --think-scale {}), and the run waits for it; --think-scale 0 replays without \
             pauses, --duration ends the run in time",
            cfg.trace.display(),
            ms / 3_600_000.0,
            cfg.think_scale
        );
    }
    let sessions: Vec<Arc<workload::Session>> = sessions.into_iter().map(Arc::new).collect();
    let client = build_client(cfg.fresh_connections)?;
    let models = match cfg.models.as_slice() {
        [] => vec![discover_model(&client, &cfg).await?],
        given => given.to_vec(),
    };
    if let Some(urls) = &cfg.cache_reset {
        cache_reset::reset_all(&client, urls, cfg.api_key.as_deref(), &cfg.headers)
            .await
            .context(
                "--cache-reset: the server did not empty its prefix cache; nothing was sent",
            )?;
    }
    let counter = match cfg.tokenizer.clone() {
        Some((spec, rev)) => {
            let c = tokio::task::spawn_blocking(move || {
                output_tokens::OutputCounter::load(&spec, &rev)
            })
            .await
            .context("loading --tokenizer")??;
            cfg.tokenizer_identity = Some(c.identity.clone());
            Some(c)
        }
        None => None,
    };
    let count_output = counter.is_some();
    let run = output::RunDir::create(&cfg)?;
    let clock = Instant::now();
    let wall_start = std::time::SystemTime::now();
    let (tx, recorder) = recorder::spawn(run.path.join("requests"), counter)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let (hard_tx, hard_rx) = watch::channel(false);
    let hard_tx = Arc::new(hard_tx);
    // The exit code of the signal that interrupted the run, 0 if none did.
    let interrupted = Arc::new(AtomicU8::new(0));
    let signals = spawn_signal_handler(
        stop.clone(),
        stopping_tx,
        hard_tx.clone(),
        interrupted.clone(),
        cfg.drain_timeout,
    );
    let shared = Arc::new(Shared {
        client: client.clone(),
        fresh_client: build_client(true)?,
        endpoint: Endpoint {
            urls: cfg.servers.iter().map(|s| s.url.clone()).collect(),
            names: cfg.servers.iter().map(|s| s.name.clone()).collect(),
            api: cfg.api,
            api_key: cfg.api_key.clone(),
            headers: cfg.headers.clone(),
            timeout: cfg.timeout,
            stream: cfg.stream,
        },
        opts: RequestOptions {
            models: models.clone(),
            api: cfg.api,
            max_tokens: cfg.max_tokens,
            default_max_tokens: cfg.default_max_tokens,
            ignore_eos: cfg.ignore_eos,
            temperature: cfg.temperature,
            extra_body: cfg.extra_body.clone(),
            include_usage: cfg.include_usage,
            stream: cfg.stream,
            block_size: meta.block_size.unwrap_or(16),
        },
        history: cfg.history,
        think_scale: cfg.think_scale,
        clock,
        tx,
        count_output,
        run_id: run.id.clone(),
        stop: stop.clone(),
        stopping: stopping_rx,
        hard: hard_rx,
        done: Default::default(),
        resent: Default::default(),
        failed: Default::default(),
        router: route::Router::new(cfg.route, cfg.servers.len()),
    });
    if !cfg.quiet {
        eprintln!(
            "replaying {} ({} sessions) against {} ({}); results in {}",
            cfg.trace.display(),
            sessions.len(),
            cfg.servers_text(),
            match models.as_slice() {
                [one] => format!("model {one}"),
                many => format!("models {}, in turn by session", many.join(", ")),
            },
            run.path.display()
        );
    }
    let (metrics_stop_tx, metrics_stop_rx) = watch::channel(false);
    let scraper = if cfg.scrape_metrics {
        let scrape = metrics::ScrapeConfig {
            endpoints: cfg.metrics_endpoints.clone(),
            interval: cfg.metrics_interval,
            names: cfg.metrics_names.clone(),
            backend: cfg.backend,
        };
        scrape.validate()?;
        Some(metrics::spawn_scraper(
            client.clone(),
            scrape,
            clock,
            run.path.join("server_metrics"),
            metrics_stop_rx,
        ))
    } else {
        None
    };
    let shape = output::TraceShape {
        sessions: sessions.len(),
        turns: sessions.iter().map(|s| s.turns.len()).sum(),
    };
    let turns_per_session = shape.turns as f64 / shape.sessions as f64;
    let mut probe_rates = Vec::new();
    let mut level_times = Vec::new();
    let mut li = 0;
    'levels: while li < cfg.levels.len() {
        let mode = &cfg.levels[li].clone();
        let ok_before = shared.ok_requests();
        let first_time = level_times.len();
        shared.router.new_level();
        for round in 1..=cfg.rounds {
            if stop.load(Ordering::Relaxed) {
                break 'levels;
            }
            // Later rounds replay the level on the cache it left: that is
            // what rounds are for.
            let cache_reset = match (&cfg.cache_reset, round) {
                (Some(urls), 1) => {
                    let done =
                        cache_reset::reset_all(&client, urls, cfg.api_key.as_deref(), &cfg.headers)
                            .await;
                    if let Err(e) = &done {
                        eprintln!(
                            "warning: level {} {}: the prefix cache was not emptied ({e:#}); \
                             the level runs on what earlier levels left in it",
                            mode.name(),
                            summary::fmt_value(mode.value())
                        );
                    }
                    Some(done.is_ok())
                }
                _ => None,
            };
            let plan = LevelPlan {
                mode: *mode,
                round,
                sessions: cfg.requests,
                duration: cfg.duration,
                warmup: cfg.warmup,
                seed: cfg.seed.wrapping_add(li as u64),
                tag_seed: cfg
                    .isolate_levels
                    .then(|| level_tag_seed(&shared.run_id, li)),
                drain: cfg.level_drain,
            };
            if !cfg.quiet {
                eprintln!(
                    "level {} {} round {round}: started",
                    mode.name(),
                    summary::fmt_value(mode.value())
                );
            }
            if !cfg.fresh_connections {
                // Each server gets its share of the connections.
                let n = runner::expected_connections(mode).div_ceil(cfg.servers.len().max(1));
                for server in &cfg.servers {
                    let models = format!("{}/models", server.base_url);
                    runner::prime_connections(&shared, &models, n).await;
                }
            }
            let progress = (!cfg.quiet).then(|| {
                spawn_progress(
                    shared.clone(),
                    format!(
                        "{} {} round {round}",
                        mode.name(),
                        summary::fmt_value(mode.value())
                    ),
                    cfg.duration,
                )
            });
            let cpu_before = client_cpu::process_cpu_s();
            let machine_before = client_cpu::MachineTicks::now();
            let times = runner::run_level(shared.clone(), &sessions, &plan).await;
            let cpu_after = client_cpu::process_cpu_s();
            let machine_after = client_cpu::MachineTicks::now();
            if let Some(p) = progress {
                p.abort();
                let _ = p.await;
            }
            let mut times = times?;
            times.cache_reset = cache_reset;
            times.client_cpu_s = cpu_before.zip(cpu_after).map(|(a, b)| (b - a).max(0.0));
            times.client_cpu_pct = times
                .client_cpu_s
                .and_then(|c| client_cpu::share_pct(c, (times.end_ms - times.start_ms) / 1000.0));
            times.machine_cpu_pct = machine_before
                .zip(machine_after)
                .and_then(|(a, b)| a.busy_pct_until(&b));
            if !cfg.quiet {
                eprintln!(
                    "level {} {} round {round}: {} sessions started in {:.1} s",
                    mode.name(),
                    summary::fmt_value(mode.value()),
                    times.arrivals,
                    (times.end_ms - times.start_ms) / 1000.0
                );
            }
            level_times.push((*mode, round, times));
        }
        li += 1;
        if cfg.sweep.is_some() && cfg.probed.is_none() && !stop.load(Ordering::Relaxed) {
            let ok = shared.ok_requests() - ok_before;
            let secs: f64 = level_times[first_time..]
                .iter()
                .map(|(_, _, t)| (t.end_ms - t.start_ms) / 1000.0)
                .sum();
            let rate = sweep::probe_rate(ok, secs, turns_per_session);
            if let Err(why) = sweep::after_probe(&mut cfg, &mut probe_rates, mode, rate) {
                eprintln!("{why}");
                break 'levels;
            }
        }
    }
    drop(shared);
    let collected = tokio::task::spawn_blocking(move || recorder.join())
        .await
        .context("the results writer stopped")?
        .map_err(|_| anyhow::anyhow!("the results writer panicked"))??;
    let _ = metrics_stop_tx.send(true);
    let scrape_stats = match scraper {
        Some(h) => match h.await {
            Ok(Ok(stats)) => Some(stats),
            Ok(Err(e)) => {
                eprintln!("warning: the metrics scraper failed: {e:#}");
                None
            }
            Err(e) => {
                eprintln!("warning: the metrics scraper stopped: {e}");
                None
            }
        },
        None => None,
    };
    signals.abort();
    let mut levels = Vec::new();
    let server_names: Vec<String> = cfg.servers.iter().map(|s| s.name.clone()).collect();
    for (key, records) in &collected.levels {
        let mode = cfg
            .levels
            .iter()
            .find(|m| m.name() == key.mode && m.value() == key.value);
        let (target, burst, maxc) = match mode {
            Some(config::LoadMode::Qps {
                max_concurrency,
                arrival,
                ..
            }) => {
                let burst = match arrival {
                    schedule::Arrival::Burst { size } => *size,
                    _ => 1,
                };
                (mode.and_then(|m| m.target_rate()), burst, *max_concurrency)
            }
            _ => (None, 1, None),
        };
        let mut level = summary::summarise(
            key,
            records,
            target,
            burst,
            maxc,
            &cfg.slo,
            &cfg.percentiles,
        );
        level.endpoints =
            summary::by_server(records, &collected.servers, &server_names, &cfg.percentiles);
        level.models = summary::by_model(records, &collected.models, &models, &cfg.percentiles);
        levels.push(level);
    }
    let interrupt_code = interrupted.load(Ordering::Relaxed);
    let was_interrupted = interrupt_code != 0;
    run.write_outputs(
        &cfg,
        &models,
        wall_start,
        &level_times,
        &levels,
        was_interrupted,
        collected.rows,
        scrape_stats,
        shape,
    )?;
    let mut message = String::new();
    {
        println!("{}", summary::table(&levels, &cfg.percentiles));
        for l in &levels {
            println!("{}", l.verdict);
            for (kind, n) in &l.errors_detail {
                println!("    {n} × {kind}");
            }
            for server in &l.endpoints {
                println!("{}", server.share.line(&server.endpoint));
            }
            for model in &l.models {
                println!("{}", model.share.line(&model.model));
            }
        }
        if !cfg.stream {
            println!("\nnote: {}", analysis::notes::NOT_STREAMED);
        }
        if let Some(drain) = cfg.level_drain {
            let cut: usize = levels
                .iter()
                .filter_map(|l| l.errors.get(traces::results::Status::LevelDrain.as_str()))
                .sum();
            if cut > 0 {
                println!(
                    "\nnote: {cut} requests still in flight {} s after their level's end were \
                     cancelled (--level-drain; status level_drain, counted as errors): the \
                     server had not finished them",
                    summary::fmt_value(drain.as_secs_f64())
                );
            }
        }
        if let Some(note) = summary::stopped_short_note(&levels, cfg.ignore_eos) {
            println!("\n{note}");
        }
        for note in summary::cache_reuse_notes(
            &levels,
            shape.sessions,
            cfg.cache_reset.is_some(),
            cfg.isolate_levels,
        ) {
            println!("\n{note}");
        }
        if let Some(note) = client_busy_note(&level_times) {
            println!("\n{note}");
        }
        if let Some(note) = summary::chunked_stream_note(&levels) {
            println!("\n{note}");
        }
        let counted: usize = levels.iter().map(|l| l.tokens_counted_locally).sum();
        let tokenized: usize = levels.iter().map(|l| l.tokens_tokenized).sum();
        let unknown: usize = levels.iter().map(|l| l.tokens_unknown).sum();
        let ok: usize = levels.iter().map(|l| l.ok).sum();
        if let Some(note) = analysis::notes::no_usage(
            analysis::notes::NoUsage {
                counted: counted as u64,
                tokenized: tokenized as u64,
                unknown: unknown as u64,
            },
            ok as u64,
            Some(cfg.include_usage),
        ) {
            println!("\nnote: {note}");
        }
        let resent: u64 = level_times.iter().map(|(_, _, t)| t.resent).sum();
        if resent > 0 {
            let (what, their) = if resent == 1 {
                ("1 request was", "its")
            } else {
                (&*format!("{resent} requests were"), "their")
            };
            println!(
                "\n{what} sent a second time: the server closed {their} kept-alive connection \
                 without answering (requests_resent per level in run.json)"
            );
        }
        println!(
            "\n{} requests recorded in {}",
            collected.rows,
            run.path.display()
        );
        // Several servers or models: the hint splits by them.
        let mut split = Vec::new();
        if cfg.servers.len() > 1 {
            split.push(("endpoint", "server"));
        }
        if models.len() > 1 {
            split.push(("model", "model"));
        }
        let by: String = split.iter().map(|(c, _)| format!("{c}, ")).collect();
        println!(
            "query them: duckdb -c \"SELECT {by}load_value, quantile_cont({}, 0.99) FROM '{}/requests/*.parquet' WHERE status = 'ok' GROUP BY ALL ORDER BY ALL\"",
            if cfg.stream { "ttft_ms" } else { "e2e_ms" },
            run.path.display()
        );
        for (column, what) in split {
            println!(
                "per {what}: trace report {} --by {column}",
                run.path.display()
            );
        }
    }
    let mut exit_code = None;
    if was_interrupted {
        message = "the run was interrupted; what finished is saved".into();
        exit_code = Some(interrupt_code);
    } else if cfg.fail_on_slo && levels.iter().any(|l| l.slo_met == Some(false)) {
        message = "a level missed its SLO (--fail-on-slo)".into();
        exit_code = Some(EXIT_SLO_MISSED);
    }
    Ok(RunOutcome {
        run_dir: run.path,
        levels,
        exit_code,
        message,
    })
}

/// Prints how a level is going: in place on a terminal, every 10 s
/// otherwise; past the level's `duration`, that it is waiting for the
/// requests still in flight (they are measured to their end).
fn spawn_progress(
    shared: Arc<Shared>,
    label: String,
    duration: Option<std::time::Duration>,
) -> tokio::task::JoinHandle<()> {
    use std::io::{IsTerminal, Write};
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            std::time::Duration::from_millis(250)
        } else {
            std::time::Duration::from_secs(10)
        };
        let start = Instant::now();
        let done0 = shared.done.load(Ordering::Relaxed);
        let failed0 = shared.failed.load(Ordering::Relaxed);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let done = shared.done.load(Ordering::Relaxed) - done0;
            let failed = shared.failed.load(Ordering::Relaxed) - failed0;
            let secs = start.elapsed().as_secs_f64();
            let over = duration.is_some_and(|d| secs > d.as_secs_f64());
            let line = format!(
                "  {label}: {done} requests, {:.1} req/s, {failed} not ok, {secs:.0} s{}",
                done as f64 / secs.max(1e-9),
                if over {
                    " (past --duration: finishing the requests in flight; Ctrl-C to stop)"
                } else {
                    ""
                }
            );
            let mut err = std::io::stderr();
            if tty {
                let _ = write!(err, "\r{line}\x1b[K");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        }
    })
}

/// An interrupt: Ctrl-C (SIGINT), or SIGTERM as `timeout`, `kill`, a job
/// scheduler or `docker stop` send it.
#[derive(Clone, Copy)]
enum Interrupt {
    CtrlC,
    Term,
}

impl Interrupt {
    /// The exit code of a process killed by this signal.
    fn exit_code(self) -> u8 {
        match self {
            Interrupt::CtrlC => 130,
            Interrupt::Term => 143,
        }
    }
}

/// Waits for the next interrupt; `None` if signals cannot be watched.
async fn next_interrupt(term: &mut Option<tokio::signal::unix::Signal>) -> Option<Interrupt> {
    match term {
        Some(t) => tokio::select! {
            r = tokio::signal::ctrl_c() => r.ok().map(|()| Interrupt::CtrlC),
            r = t.recv() => r.map(|()| Interrupt::Term),
        },
        None => tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| Interrupt::CtrlC),
    }
}

/// A note naming the levels during which the replayer's own process, or
/// its machine as a whole, kept the cores busy (`analysis::notes::client_busy`).
fn client_busy_note(level_times: &[(config::LoadMode, u32, runner::LevelTimes)]) -> Option<String> {
    let levels: Vec<(String, Option<f64>, Option<f64>)> = level_times
        .iter()
        .map(|(mode, round, t)| {
            let name = format!(
                "{} {} (round {round})",
                mode.name(),
                summary::fmt_value(mode.value())
            );
            (name, t.client_cpu_pct, t.machine_cpu_pct)
        })
        .collect();
    analysis::notes::client_busy(&levels).map(|n| format!("note: {n}"))
}

/// The seed of a level's `--isolate-levels` tags: FNV-1a of the run id
/// (new in every run) and the level's index (the same in all its rounds).
fn level_tag_seed(run_id: &str, level: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id.bytes().chain((level as u64).to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// First Ctrl-C or SIGTERM: stop scheduling, let in-flight requests drain
/// for the grace period, then cancel them; the run exits with the signal's
/// code (130 or 143) in `interrupted`. A second one: exit at once (every
/// part already written stays intact).
fn spawn_signal_handler(
    stop: Arc<AtomicBool>,
    stopping: watch::Sender<bool>,
    hard: Arc<watch::Sender<bool>>,
    interrupted: Arc<AtomicU8>,
    grace: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::spawn(async move {
        let Some(first) = next_interrupt(&mut term).await else {
            return;
        };
        interrupted.store(first.exit_code(), Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let _ = stopping.send(true);
        let what = match first {
            Interrupt::CtrlC => "interrupted",
            Interrupt::Term => "terminated (SIGTERM)",
        };
        eprintln!(
            "\n{what}: no new requests; waiting up to {:.0} s for those in flight (Ctrl-C again to quit now)",
            grace.as_secs_f64()
        );
        let hard2 = hard.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = hard2.send(true);
        });
        if let Some(again) = next_interrupt(&mut term).await {
            eprintln!("interrupted again: exiting now; the parts written so far are intact");
            std::process::exit(i32::from(again.exit_code()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(n: usize, cpu_s: f64, machine: f64) -> (config::LoadMode, u32, runner::LevelTimes) {
        let times = runner::LevelTimes {
            start_ms: 0.0,
            end_ms: 10_000.0,
            arrivals: 1,
            resent: 0,
            cache_reset: None,
            client_cpu_s: Some(cpu_s),
            client_cpu_pct: client_cpu::share_pct(cpu_s, 10.0),
            machine_cpu_pct: Some(machine),
        };
        (config::LoadMode::Concurrency(n), 1, times)
    }

    #[test]
    fn busy_levels_are_named_with_what_was_busy() {
        let cores = client_cpu::cores();
        // 10 s levels: the replayer's share is cpu_s / (10 s x cores).
        let calm = level(1, 0.1 * cores, 30.0);
        assert_eq!(client_busy_note(std::slice::from_ref(&calm)), None);
        let own = level(4, 9.0 * cores, 95.0);
        let shared = level(16, 2.0 * cores, 85.0);
        let note = client_busy_note(&[calm, own, shared]).expect("a note");
        assert!(
            note.starts_with("note: the replayer itself kept 90% of its machine's CPU busy during concurrency 4 (round 1);"),
            "{note}"
        );
        assert!(
            note.contains(
                "machine was 85% busy during concurrency 16 (round 1), the replayer's share 20%"
            ),
            "{note}"
        );
        assert!(!note.contains("concurrency 1 "), "{note}");
    }
}
