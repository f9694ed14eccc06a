//! `replay --dry-run`: what a run would send, level by level, from the
//! trace and the arrival schedules alone, without contacting the server.

use std::sync::Arc;

use super::config::{LoadMode, RunConfig};
use super::runner::{self, LevelPlan};
use super::schedule::Rate;
use super::summary::fmt_value;
use super::workload::{self, RequestOptions, Session};

/// One level as it would run (each of its rounds sends the same).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLevel {
    pub name: String,
    /// Sessions started; `None` when that depends on the server (closed
    /// loop, or users starting sessions until the level's end).
    pub sessions: Option<usize>,
    /// Requests (turns) of those sessions.
    pub requests: Option<usize>,
    /// From the first arrival to the last, seconds (open loop).
    pub arrivals_s: Option<f64>,
    /// Prompt tokens of those requests, where the trace knows them all.
    pub prompt_tokens: Option<u64>,
    /// Output tokens asked (`max_tokens`) of those requests.
    pub output_tokens: Option<u64>,
}

/// The levels of `cfg` over `sessions`.
pub fn plan(cfg: &RunConfig, sessions: &[Arc<Session>]) -> anyhow::Result<Vec<PlannedLevel>> {
    let opts = RequestOptions {
        models: Vec::new(),
        api: cfg.api,
        max_tokens: cfg.max_tokens,
        default_max_tokens: cfg.default_max_tokens,
        ignore_eos: cfg.ignore_eos,
        temperature: None,
        extra_body: None,
        include_usage: cfg.include_usage,
        stream: cfg.stream,
        block_size: 16,
    };
    let mut out = Vec::with_capacity(cfg.levels.len());
    for (li, mode) in cfg.levels.iter().enumerate() {
        let level = LevelPlan {
            mode: *mode,
            round: 1,
            sessions: cfg.requests,
            duration: cfg.duration,
            warmup: cfg.warmup,
            seed: cfg.seed.wrapping_add(li as u64),
            tag_seed: None,
            drain: cfg.level_drain,
        };
        let duration_ms = cfg.duration.map(|d| d.as_secs_f64() * 1000.0);
        let (count, arrivals_s) = match mode {
            LoadMode::Qps { .. } | LoadMode::TraceTime { .. } => {
                let offsets: Vec<f64> = runner::open_loop_offsets(&level, sessions)?
                    .into_iter()
                    .filter(|o| o.is_finite() && duration_ms.is_none_or(|d| *o < d))
                    .collect();
                let span = offsets.iter().copied().fold(0.0f64, f64::max) / 1000.0;
                (Some(offsets.len()), Some(span))
            }
            LoadMode::Concurrency(_) => (
                match (cfg.requests, cfg.duration) {
                    (Some(n), _) => Some(n),
                    (None, Some(_)) => None,
                    (None, None) => Some(sessions.len()),
                },
                None,
            ),
            LoadMode::Users { n, .. } => (
                match (cfg.requests, cfg.duration) {
                    (Some(r), _) => Some(r),
                    (None, Some(_)) => None,
                    (None, None) => Some(*n),
                },
                None,
            ),
        };
        let (mut requests, mut prompt, mut output) = (0usize, Some(0u64), 0u64);
        for i in 0..count.unwrap_or(0) {
            let s = &sessions[i % sessions.len().max(1)];
            requests += s.turns.len();
            for row in &s.turns {
                prompt = prompt.and_then(|p| {
                    row.prompt_tokens
                        .or(row.input_tokens)
                        .map(|t| p + u64::from(t))
                });
                output += u64::from(workload::max_tokens_for(row, &opts));
            }
        }
        let mut name = format!("{} {}", mode.name(), fmt_value(mode.value()));
        if let LoadMode::Qps {
            rate: Rate::PerSecond(_),
            arrival,
            ..
        } = mode
        {
            name.push_str(&format!(" ({arrival})"));
        }
        out.push(PlannedLevel {
            name,
            sessions: count,
            requests: count.map(|_| requests),
            arrivals_s,
            prompt_tokens: count.and(prompt),
            output_tokens: count.map(|_| output),
        });
    }
    Ok(out)
}

/// The plan as a table, with what depends on the server said so.
pub fn render(cfg: &RunConfig, trace_sessions: usize, levels: &[PlannedLevel]) -> String {
    let num = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
    let tok = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    let until = match cfg.duration {
        Some(d) => format!("until {} s", fmt_value(d.as_secs_f64())),
        None => "-".to_string(),
    };
    let mut rows = vec![[
        "level".to_string(),
        "sessions".into(),
        "requests".into(),
        "arrivals over".into(),
        "prompt tok".into(),
        "output tok".into(),
    ]];
    for l in levels {
        rows.push([
            l.name.clone(),
            l.sessions.map_or_else(|| until.clone(), |n| n.to_string()),
            num(l.requests),
            l.arrivals_s.map_or_else(
                || "as the server answers".to_string(),
                |s| format!("{} s", fmt_value((s * 100.0).round() / 100.0)),
            ),
            tok(l.prompt_tokens),
            tok(l.output_tokens),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "dry run: nothing is sent. {} ({trace_sessions} sessions) against {}, {} round{} per level:\n",
        cfg.trace.display(),
        cfg.servers_text(),
        cfg.rounds,
        if cfg.rounds == 1 { "" } else { "s" }
    );
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 || c == 3 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let known: Vec<usize> = levels.iter().filter_map(|l| l.requests).collect();
    if known.len() == levels.len() {
        let total: usize = known.iter().sum::<usize>() * cfg.rounds as usize;
        out.push_str(&format!(
            "{total} requests {}",
            if cfg.sweep.is_some() {
                "in the probes"
            } else {
                "in all"
            }
        ));
        if cfg.warmup > 0 {
            out.push_str(&format!(
                " (the first {} sessions of each level are warm-up)",
                cfg.warmup
            ));
        }
        out.push('\n');
    }
    if let Some(n) = cfg.sweep {
        out.push_str(&format!(
            "--sweep {n}: the {} rates after these probes are chosen from what the probes \
             sustain\n",
            n.saturating_sub(2)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_counts_are_shown_as_depending_on_the_server() {
        let cfg = crate::replay::config::resolve(crate::replay::ReplayArgs {
            trace: Some("t.parquet".into()),
            endpoint: Some(vec!["http://127.0.0.1:9".into()]),
            concurrency: Some(vec![4]),
            duration: Some("30s".into()),
            ..Default::default()
        })
        .expect("a config");
        let text = render(
            &cfg,
            3,
            &[PlannedLevel {
                name: "concurrency 4".into(),
                sessions: None,
                requests: None,
                arrivals_s: None,
                prompt_tokens: None,
                output_tokens: None,
            }],
        );
        assert!(text.contains("concurrency 4  until 30 s"), "{text}");
        assert!(text.contains("as the server answers"), "{text}");
        assert!(!text.contains("requests in all"), "{text}");
    }
}
