//! Per-level statistics of a run: what the console table, `summary.json`
//! and `summary.csv` show. Percentiles interpolate linearly between closest
//! ranks (DuckDB's `quantile_cont`, NumPy's default), computed by the same
//! code as `trace report`'s (`analysis::compute::stats::quantiles_of`).

use std::collections::BTreeMap;

use analysis::compute::stats::{
    achieved_rate, quantiles_of, rate_short_of_target, rate_standard_error,
};
use analysis::notes::{TtftTrend, fell_behind, fell_behind_reason, is_open_loop};
use serde::Serialize;
use traces::results::Status;

use super::config::Slo;
use super::recorder::{Compact, LevelKey};

/// Distribution of one latency metric.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Dist {
    pub count: usize,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Percentile label (`p50`) → value.
    pub percentiles: BTreeMap<String, f64>,
}

fn label(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("p{}", p as u64)
    } else {
        format!("p{p}")
    }
}

/// The distribution of the finite values of `v`; `ps` (in 0..=100) rising.
fn dist(mut v: Vec<f64>, ps: &[f64]) -> Dist {
    v.retain(|x| x.is_finite());
    let n = v.len();
    let mean = (n > 0).then(|| v.iter().sum::<f64>() / n as f64);
    let min = v.iter().copied().reduce(f64::min);
    let max = v.iter().copied().reduce(f64::max);
    let fractions: Vec<f64> = ps.iter().map(|p| p / 100.0).collect();
    let quantiles = quantiles_of(&mut v, &fractions);
    Dist {
        count: n,
        mean,
        min,
        max,
        percentiles: ps
            .iter()
            .zip(quantiles)
            .filter_map(|(&p, q)| q.map(|x| (label(p), x)))
            .collect(),
    }
}

/// The summary of one level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelSummary {
    pub load_mode: String,
    #[serde(serialize_with = "analysis::model::ser_load_value")]
    pub load_value: f64,
    pub round: u32,
    pub requests: usize,
    pub ok: usize,
    pub warmup_requests: usize,
    /// `status` → count, for requests that were not ok.
    pub errors: BTreeMap<String, usize>,
    /// `status http_code` → count (e.g. `http_error 503`).
    pub errors_detail: BTreeMap<String, usize>,
    pub success_pct: f64,
    pub duration_s: f64,
    pub target_rate: Option<f64>,
    /// Arrivals per second actually sent (session starts; requests for single-turn traces).
    pub achieved_rate: f64,
    /// The arrivals (session starts) the achieved rate counts.
    pub arrivals: usize,
    /// All requests per second over the level (later turns included).
    pub request_rate: f64,
    pub output_tokens_per_s: f64,
    pub input_tokens_per_s: f64,
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub itl_ms: Dist,
    pub e2e_ms: Dist,
    /// Lateness of every request (later turns included).
    pub lateness_ms: Dist,
    /// Lateness of the schedule's arrivals (first turns): the client's own precision.
    pub arrival_lateness_ms: Dist,
    pub cached_token_ratio: Option<f64>,
    /// Ok requests without usage whose `completion_tokens` is a count of
    /// chunks (short by the tokens per chunk; `--tokenizer` counts them).
    pub tokens_counted_locally: usize,
    /// Ok requests without usage whose output tokens `--tokenizer` counted.
    pub tokens_tokenized: usize,
    /// Ok requests without usage and with no token count at all (whole
    /// replies, `--no-stream`, without `--tokenizer`).
    pub tokens_unknown: usize,
    /// Ok requests by the `finish_reason` of their reply (`length`: the
    /// `max_tokens` asked; `stop`: the model's end of sequence; ...).
    pub finish_reasons: BTreeMap<String, usize>,
    /// Ok requests whose reported completion tokens fell short of the
    /// `max_tokens` they asked for: the model ended its reply first.
    pub stopped_short: usize,
    /// Σ completion_tokens / Σ max_tokens over ok requests with both
    /// (from the server's usage), %: how much of the asked output came back.
    pub output_fill_pct: Option<f64>,
    /// Σ completion_tokens / Σ token-bearing chunks (the first token and
    /// one per ITL gap) over ok requests with the server's usage: above 1
    /// when the server streams several tokens a chunk.
    pub tokens_per_chunk: Option<f64>,
    /// Requests of sessions sent a second time or more in the level (the
    /// trace held fewer sessions than it needed): their prompts repeat.
    pub repeated_requests: usize,
    /// Requests per second that were ok and met every SLO.
    pub goodput: Option<f64>,
    pub slo_attainment_pct: Option<f64>,
    pub slo_met: Option<bool>,
    /// The client could not keep the schedule.
    pub client_behind: bool,
    /// Open loop: how much the fitted TTFT of the level's arrivals (first
    /// turns, ok) rose from its first arrival to its last, ms.
    pub ttft_rise_ms: Option<f64>,
    /// Open loop: the rise says a queue grew (`analysis::notes::fell_behind`).
    pub fell_behind: bool,
    /// With several `--endpoint`s: the level's requests on each server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<ServerSummary>,
    /// With several `--model`s: the level's requests naming each model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelSummary>,
    pub verdict: String,
}

/// A server's or a model's part of a level (runs against several
/// endpoints, or with several models).
#[derive(Debug, Clone, Serialize)]
pub struct Share {
    pub requests: usize,
    pub ok: usize,
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub e2e_ms: Dist,
}

/// One server's share of a level.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    pub endpoint: String,
    #[serde(flatten)]
    pub share: Share,
}

/// One model's share of a level.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub model: String,
    #[serde(flatten)]
    pub share: Share,
}

/// The level's requests split by `part` (an index into `seen`, the
/// recorder's numbering), one share per name of `names` in their order, a
/// name with no request included; nothing when there are fewer than two.
fn shares(
    rows: &[Compact],
    seen: &[String],
    names: &[String],
    part: impl Fn(&Compact) -> u16,
    ps: &[f64],
) -> Vec<Share> {
    if names.len() < 2 {
        return Vec::new();
    }
    names
        .iter()
        .map(|name| {
            let index = seen.iter().position(|s| s == name);
            let mine: Vec<&Compact> = rows
                .iter()
                .filter(|c| !c.warmup && index == Some(usize::from(part(c))))
                .collect();
            let ok: Vec<&&Compact> = mine.iter().filter(|c| c.status == Status::Ok).collect();
            Share {
                requests: mine.len(),
                ok: ok.len(),
                ttft_ms: dist(ok.iter().filter_map(|c| c.ttft_ms).collect(), ps),
                tpot_ms: dist(ok.iter().filter_map(|c| c.tpot_ms).collect(), ps),
                e2e_ms: dist(ok.iter().filter_map(|c| c.e2e_ms).collect(), ps),
            }
        })
        .collect()
}

/// Each server's requests of a level, in `--endpoint` order (`names`),
/// when there are several; `seen` is the recorder's numbering of them.
pub fn by_server(
    rows: &[Compact],
    seen: &[String],
    names: &[String],
    ps: &[f64],
) -> Vec<ServerSummary> {
    let split = shares(rows, seen, names, |c| c.server, ps);
    names
        .iter()
        .zip(split)
        .map(|(name, share)| ServerSummary {
            endpoint: name.clone(),
            share,
        })
        .collect()
}

/// Each model's requests of a level, in `--model` order, when there are several.
pub fn by_model(
    rows: &[Compact],
    seen: &[String],
    names: &[String],
    ps: &[f64],
) -> Vec<ModelSummary> {
    let split = shares(rows, seen, names, |c| c.model, ps);
    names
        .iter()
        .zip(split)
        .map(|(name, share)| ModelSummary {
            model: name.clone(),
            share,
        })
        .collect()
}

impl Share {
    /// `    http://a: 12 requests, 100.0% ok, TTFT p50 276 ms p99 732 ms, E2E p50 613 ms`
    pub fn line(&self, name: &str) -> String {
        let p = |d: &Dist, k: &str| {
            d.percentiles.get(k).map_or("-".to_string(), |v| {
                format!("{} ms", fmt_value(round_ms(*v)))
            })
        };
        format!(
            "    {name}: {} requests, {:.1}% ok, TTFT p50 {} p99 {}, E2E p50 {}",
            self.requests,
            if self.requests == 0 {
                0.0
            } else {
                100.0 * self.ok as f64 / self.requests as f64
            },
            p(&self.ttft_ms, "p50"),
            p(&self.ttft_ms, "p99"),
            p(&self.e2e_ms, "p50"),
        )
    }
}

/// Milliseconds to show: whole above 100, one decimal below.
fn round_ms(v: f64) -> f64 {
    if v.abs() >= 100.0 {
        v.round()
    } else {
        (v * 10.0).round() / 10.0
    }
}

/// Lateness p99 beyond which the client, not the server, is behind.
const CLIENT_BEHIND_MS: f64 = 10.0;

pub fn summarise(
    key: &LevelKey,
    all: &[Compact],
    target_rate: Option<f64>,
    burst: usize,
    max_concurrency: Option<usize>,
    slo: &Slo,
    ps: &[f64],
) -> LevelSummary {
    let rows: Vec<&Compact> = all.iter().filter(|c| !c.warmup).collect();
    let ok: Vec<&Compact> = rows
        .iter()
        .copied()
        .filter(|c| c.status == Status::Ok)
        .collect();
    let mut errors = BTreeMap::new();
    let mut errors_detail = BTreeMap::new();
    for c in rows.iter().filter(|c| c.status != Status::Ok) {
        *errors.entry(c.status.as_str().to_string()).or_insert(0) += 1;
        let detail = match c.http_status {
            Some(code) if c.status == Status::HttpError => format!("{} {code}", c.status.as_str()),
            _ => c.status.as_str().to_string(),
        };
        *errors_detail.entry(detail).or_insert(0) += 1;
    }
    let start = rows
        .iter()
        .map(|c| c.scheduled_ms)
        .fold(f64::INFINITY, f64::min);
    let end = rows
        .iter()
        .map(|c| c.end_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    let duration_s = if rows.is_empty() {
        0.0
    } else {
        ((end - start) / 1000.0).max(1e-9)
    };
    // Achieved rate: arrivals (session starts; requests for single-turn
    // traces) per second, as `trace report` defines it.
    let starts: Vec<&&Compact> = rows.iter().filter(|c| c.session_start).collect();
    let first_scheduled = starts.iter().map(|c| c.scheduled_ms).reduce(f64::min);
    let last_sent = starts.iter().map(|c| c.sent_ms).reduce(f64::max);
    let achieved_rate = achieved_rate(
        &key.mode,
        target_rate,
        burst,
        starts.len() as u64,
        first_scheduled,
        last_sent,
        duration_s,
    );
    let request_rate = if duration_s > 0.0 {
        rows.len() as f64 / duration_s
    } else {
        0.0
    };
    let out_tokens: f64 = ok
        .iter()
        .filter_map(|c| c.completion_tokens)
        .map(f64::from)
        .sum();
    let in_tokens: f64 = ok
        .iter()
        .filter_map(|c| c.prompt_tokens)
        .map(f64::from)
        .sum();
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    let cached: f64 = ok
        .iter()
        .filter_map(|c| c.cached_tokens)
        .map(f64::from)
        .sum();
    let with_cached: f64 = ok
        .iter()
        .filter(|c| c.cached_tokens.is_some())
        .filter_map(|c| c.prompt_tokens)
        .map(f64::from)
        .sum();
    // Output lengths against what was asked, from the server's own counts
    // only (a chunk may carry several tokens, so counted chunks would
    // undercount).
    let asked: Vec<(u32, u32)> = ok
        .iter()
        .filter(|c| !c.counted_tokens)
        .filter_map(|c| Some((c.completion_tokens?, c.max_tokens?)))
        .collect();
    let stopped_short = asked.iter().filter(|(got, max)| got < max).count();
    let asked_sum: f64 = asked.iter().map(|&(_, m)| f64::from(m)).sum();
    let output_fill_pct = (asked_sum > 0.0)
        .then(|| 100.0 * asked.iter().map(|&(g, _)| f64::from(g)).sum::<f64>() / asked_sum);
    // Tokens per chunk: the server's token counts over the chunks timed.
    let (chunk_tokens, chunks) = ok
        .iter()
        .filter(|c| !c.counted_tokens && c.ttft_ms.is_some())
        .filter_map(|c| Some((f64::from(c.completion_tokens?), c.itl_ms.len() as f64 + 1.0)))
        .fold((0.0, 0.0), |(t, n), (ct, cn)| (t + ct, n + cn));
    let tokens_per_chunk = (chunks > 0.0).then(|| chunk_tokens / chunks);
    let meets = |c: &Compact| {
        slo.ttft_ms
            .is_none_or(|t| c.ttft_ms.is_some_and(|x| x <= t))
            && slo.tpot_ms.is_none_or(|t| c.tpot_ms.is_none_or(|x| x <= t))
            && slo.e2e_ms.is_none_or(|t| c.e2e_ms.is_some_and(|x| x <= t))
    };
    let good = ok.iter().filter(|c| meets(c)).count();
    let slo_attainment_pct =
        (slo.is_set() && !rows.is_empty()).then(|| 100.0 * good as f64 / rows.len() as f64);
    let lateness = dist(rows.iter().map(|c| c.lateness_ms).collect(), &[50.0, 99.0]);
    // The schedule's own arrivals (first turns) say whether the client kept
    // up; later turns wait on the server's replies and think times.
    let arrival_lateness = dist(
        rows.iter()
            .filter(|c| c.session_start)
            .map(|c| c.lateness_ms)
            .collect(),
        &[50.0, 99.0],
    );
    let late_p99 = arrival_lateness
        .percentiles
        .get("p99")
        .copied()
        .unwrap_or(0.0);
    // With a concurrency cap, waiting for a slot is the server being slow,
    // not the client: only open-loop lateness without a cap blames the client.
    let client_behind =
        max_concurrency.is_none() && target_rate.is_some() && late_p99 > CLIENT_BEHIND_MS;
    let success_pct = if rows.is_empty() {
        0.0
    } else {
        100.0 * ok.len() as f64 / rows.len() as f64
    };
    let slo_met = slo_attainment_pct.map(|a| a >= 99.0 - 1e-9);
    // Open loop, the server's pace does not slow the arrivals: a queue that
    // grows through the level shows as TTFT rising with arrival time.
    let trend = if is_open_loop(&key.mode) {
        TtftTrend::of(
            ok.iter()
                .filter(|c| c.session_start)
                .filter_map(|c| Some((c.scheduled_ms, c.ttft_ms?))),
        )
    } else {
        TtftTrend::default()
    };
    let ttft_rise_ms = trend.rise_ms();
    let ttft_p50 = {
        let mut v: Vec<f64> = ok.iter().filter_map(|c| c.ttft_ms).collect();
        quantiles_of(&mut v, &[0.5])[0]
    };
    let mut s = LevelSummary {
        load_mode: key.mode.clone(),
        load_value: key.value,
        round: key.round,
        requests: rows.len(),
        ok: ok.len(),
        warmup_requests: all.len() - rows.len(),
        errors,
        errors_detail,
        success_pct,
        duration_s,
        target_rate,
        achieved_rate,
        arrivals: starts.len(),
        request_rate,
        output_tokens_per_s: per_s(out_tokens),
        input_tokens_per_s: per_s(in_tokens),
        ttft_ms: dist(ok.iter().filter_map(|c| c.ttft_ms).collect(), ps),
        tpot_ms: dist(ok.iter().filter_map(|c| c.tpot_ms).collect(), ps),
        itl_ms: dist(
            ok.iter()
                .flat_map(|c| c.itl_ms.iter().map(|&x| f64::from(x)))
                .collect(),
            ps,
        ),
        e2e_ms: dist(ok.iter().filter_map(|c| c.e2e_ms).collect(), ps),
        lateness_ms: lateness,
        arrival_lateness_ms: arrival_lateness,
        cached_token_ratio: (with_cached > 0.0).then(|| cached / with_cached),
        tokens_counted_locally: ok.iter().filter(|c| c.counted_tokens).count(),
        tokens_tokenized: ok.iter().filter(|c| c.tokenized_tokens).count(),
        tokens_unknown: ok.iter().filter(|c| c.unknown_tokens).count(),
        finish_reasons: ok.iter().filter_map(|c| c.finish_reason.clone()).fold(
            BTreeMap::new(),
            |mut m, r| {
                *m.entry(r).or_insert(0) += 1;
                m
            },
        ),
        stopped_short,
        output_fill_pct,
        tokens_per_chunk,
        repeated_requests: rows.iter().filter(|c| c.repeat).count(),
        goodput: slo.is_set().then(|| per_s(good as f64)),
        slo_attainment_pct,
        slo_met,
        client_behind,
        ttft_rise_ms,
        fell_behind: fell_behind(&trend, ttft_p50),
        endpoints: Vec::new(),
        models: Vec::new(),
        verdict: String::new(),
    };
    s.verdict = verdict(&s, late_p99);
    s
}

fn verdict(s: &LevelSummary, late_p99: f64) -> String {
    let level = format!(
        "{} {} (round {})",
        s.load_mode,
        fmt_value(s.load_value),
        s.round
    );
    if s.requests == 0 {
        return format!("{level}: no requests were sent");
    }
    if s.client_behind {
        return format!(
            "{level}: CLIENT BEHIND — lateness p99 {late_p99:.1} ms; the load generator, not the server, limited this level"
        );
    }
    let mut parts = vec![format!("{:.1}% ok", s.success_pct)];
    // Arrivals are random: n of them estimate the rate within about 1/√n.
    let se = rate_standard_error(s.arrivals as u64);
    if let Some(t) = s.target_rate {
        if t.is_finite() {
            parts.push(format!(
                "{:.2}/{t} req/s achieved (±{:.0}% over {} arrivals)",
                s.achieved_rate,
                100.0 * se,
                s.arrivals
            ));
        } else {
            parts.push(format!("{:.2}/{t} req/s achieved", s.achieved_rate));
        }
    } else {
        parts.push(format!("{:.2} req/s", s.achieved_rate));
    }
    if let Some(a) = s.slo_attainment_pct {
        parts.push(format!("SLO met by {a:.1}%"));
    }
    if let Some(r) = s.ttft_rise_ms.filter(|_| s.fell_behind) {
        parts.push(fell_behind_reason(r));
    }
    let bad = s.success_pct < 99.0
        || s.fell_behind
        || s.slo_met == Some(false)
        || rate_short_of_target(s.achieved_rate, s.target_rate, s.arrivals as u64);
    let tag = if bad { "DEGRADED" } else { "OK" };
    format!("{level}: {tag} — {}", parts.join(", "))
}

/// What to tell the user when replies came back shorter than the
/// `max_tokens` they asked for, over all levels; `None` when none did.
/// `ignore_eos` is whether the run asked the server to ignore the end of
/// sequence (the default; `--no-ignore-eos` turns it off).
pub fn stopped_short_note(levels: &[LevelSummary], ignore_eos: bool) -> Option<String> {
    let short = levels.iter().map(|l| l.stopped_short as u64).sum();
    let ok = levels.iter().map(|l| l.ok as u64).sum();
    let fills: Vec<f64> = levels.iter().filter_map(|l| l.output_fill_pct).collect();
    let note = analysis::notes::stopped_short(short, ok, &fills, ignore_eos)?;
    Some(format!(
        "note: {note} (stopped_short and output_fill_pct in summary.json)"
    ))
}

/// What to tell the user when the server streamed several tokens a chunk,
/// so that ITL (per chunk) and TPOT (per token) part.
pub fn chunked_stream_note(levels: &[LevelSummary]) -> Option<String> {
    let p50 = |d: &Dist| d.percentiles.get("p50").copied();
    let named: Vec<_> = levels
        .iter()
        .map(|l| analysis::notes::ChunkedLevel {
            name: format!(
                "{} {} (round {})",
                l.load_mode,
                fmt_value(l.load_value),
                l.round
            ),
            tokens_per_chunk: l.tokens_per_chunk,
            itl_p50_ms: p50(&l.itl_ms),
            tpot_p50_ms: p50(&l.tpot_ms),
        })
        .collect();
    analysis::notes::chunked_stream(&named).map(|n| format!("note: {n}"))
}

/// What to tell the user when prompts were sent more than once, so that a
/// server with a prefix cache answered some from it: sessions repeated
/// within a level (the trace was too small for it), and levels that found
/// the prompts of the levels before them cached (each level starts from
/// the trace's first session) unless `--cache-reset` emptied the cache or
/// `--isolate-levels` gave each level prompts of its own.
pub fn cache_reuse_notes(
    levels: &[LevelSummary],
    trace_sessions: usize,
    cache_reset: bool,
    isolated: bool,
) -> Vec<String> {
    let mut notes = Vec::new();
    let name = |l: &LevelSummary| format!("{} {}", l.load_mode, fmt_value(l.load_value));
    let repeated: Vec<&LevelSummary> = levels.iter().filter(|l| l.repeated_requests > 0).collect();
    if !repeated.is_empty() {
        let n: usize = repeated.iter().map(|l| l.repeated_requests).sum();
        let of: usize = repeated.iter().map(|l| l.requests).sum();
        let mut names: Vec<String> = repeated.iter().map(|l| name(l)).collect();
        names.dedup();
        let effect = if isolated {
            format!(
                "{n} of their {of} requests repeated a prompt, under a tag of its own \
                 (--isolate-levels), so no cache held it, but the level's prompts vary less than \
                 the trace's"
            )
        } else {
            format!(
                "{n} of their {of} requests resent a prompt the server had seen, which a prefix \
                 cache answers in part"
            )
        };
        notes.push(format!(
            "note: the trace holds {trace_sessions} sessions and {} needed more, so sessions ran \
             again (ids ~c1, ~c2, ...): {effect}; replay a larger trace for unseen prompts",
            names.join(", ")
        ));
    }
    if !cache_reset && !isolated {
        let first_round: Vec<(String, Option<f64>)> = levels
            .iter()
            .filter(|l| l.round == 1)
            .map(|l| (name(l), l.cached_token_ratio))
            .collect();
        if let Some(note) = analysis::notes::cache_reuse(&first_round) {
            notes.push(format!("note: {note}"));
        }
    }
    notes
}

/// A load value as people write it: `inf`, `4`, `2.5`.
pub use analysis::model::fmt_value;

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    })
}

/// The console table of a run's levels.
pub fn table(levels: &[LevelSummary], ps: &[f64]) -> String {
    let mut headers: Vec<String> = vec![
        "mode".into(),
        "level".into(),
        "round".into(),
        "reqs".into(),
        "ok%".into(),
        "target/s".into(),
        "actual/s".into(),
        "req/s".into(),
        "out tok/s".into(),
    ];
    for m in ["ttft", "tpot", "itl", "e2e"] {
        for &p in ps {
            headers.push(format!("{m} {}", label(p)));
        }
    }
    headers.push("late p99".into());
    let any_cached = levels.iter().any(|l| l.cached_token_ratio.is_some());
    if any_cached {
        headers.push("cached%".into());
    }
    let any_goodput = levels.iter().any(|l| l.goodput.is_some());
    if any_goodput {
        headers.push("goodput/s".into());
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for l in levels {
        let mut r = vec![
            l.load_mode.clone(),
            fmt_value(l.load_value),
            l.round.to_string(),
            l.requests.to_string(),
            format!("{:.1}", l.success_pct),
            l.target_rate.map_or("-".into(), |t| format!("{t}")),
            format!("{:.2}", l.achieved_rate),
            format!("{:.2}", l.request_rate),
            format!("{:.0}", l.output_tokens_per_s),
        ];
        for d in [&l.ttft_ms, &l.tpot_ms, &l.itl_ms, &l.e2e_ms] {
            for &p in ps {
                r.push(cell(d.percentiles.get(&label(p)).copied()));
            }
        }
        r.push(cell(l.lateness_ms.percentiles.get("p99").copied()));
        if any_cached {
            r.push(cell(l.cached_token_ratio.map(|c| 100.0 * c)));
        }
        if any_goodput {
            r.push(cell(l.goodput));
        }
        rows.push(r);
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&headers);
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// `summary.csv`: one row per level, one column per figure.
pub fn csv(levels: &[LevelSummary], ps: &[f64]) -> String {
    let mut header = vec![
        "load_mode",
        "load_value",
        "round",
        "requests",
        "ok",
        "success_pct",
        "duration_s",
        "target_rate",
        "achieved_rate",
        "request_rate",
        "output_tokens_per_s",
        "input_tokens_per_s",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for m in ["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"] {
        header.push(format!("{m}_mean"));
        for &p in ps {
            header.push(format!("{m}_{}", label(p)));
        }
    }
    header.extend(
        [
            "lateness_ms_p50",
            "lateness_ms_p99",
            "cached_token_ratio",
            "goodput",
            "slo_attainment_pct",
            "client_behind",
            "stopped_short",
            "output_fill_pct",
            "tokens_per_chunk",
            "repeated_requests",
            "ttft_rise_ms",
            "fell_behind",
        ]
        .map(String::from),
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    let mut out = header.join(",");
    out.push('\n');
    for l in levels {
        let mut r = vec![
            l.load_mode.clone(),
            format!("{}", l.load_value),
            l.round.to_string(),
            l.requests.to_string(),
            l.ok.to_string(),
            format!("{}", l.success_pct),
            format!("{}", l.duration_s),
            opt(l.target_rate),
            format!("{}", l.achieved_rate),
            format!("{}", l.request_rate),
            format!("{}", l.output_tokens_per_s),
            format!("{}", l.input_tokens_per_s),
        ];
        for d in [&l.ttft_ms, &l.tpot_ms, &l.itl_ms, &l.e2e_ms] {
            r.push(opt(d.mean));
            for &p in ps {
                r.push(opt(d.percentiles.get(&label(p)).copied()));
            }
        }
        r.push(opt(l.lateness_ms.percentiles.get("p50").copied()));
        r.push(opt(l.lateness_ms.percentiles.get("p99").copied()));
        r.push(opt(l.cached_token_ratio));
        r.push(opt(l.goodput));
        r.push(opt(l.slo_attainment_pct));
        r.push(l.client_behind.to_string());
        r.push(l.stopped_short.to_string());
        r.push(opt(l.output_fill_pct));
        r.push(opt(l.tokens_per_chunk));
        r.push(l.repeated_requests.to_string());
        r.push(opt(l.ttft_rise_ms));
        r.push(l.fell_behind.to_string());
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `qps` level of `n` single-turn requests, all ok, whose sends
    /// span `span_ms`.
    fn level(n: usize, span_ms: f64, target: f64) -> LevelSummary {
        let key = LevelKey {
            mode: "qps".into(),
            value: target,
            round: 1,
        };
        summarise(
            &key,
            &rows(n, span_ms),
            Some(target),
            1,
            None,
            &Slo::default(),
            &[50.0],
        )
    }

    fn rows(n: usize, span_ms: f64) -> Vec<Compact> {
        (0..n)
            .map(|i| {
                let at = span_ms * i as f64 / (n - 1) as f64;
                Compact {
                    warmup: false,
                    session_start: true,
                    status: Status::Ok,
                    http_status: Some(200),
                    scheduled_ms: at,
                    sent_ms: at,
                    end_ms: at + 50.0,
                    ttft_ms: Some(10.0),
                    tpot_ms: Some(5.0),
                    e2e_ms: Some(50.0),
                    itl_ms: vec![5.0; 8],
                    lateness_ms: 0.0,
                    prompt_tokens: Some(100),
                    completion_tokens: Some(9),
                    cached_tokens: None,
                    counted_tokens: false,
                    tokenized_tokens: false,
                    unknown_tokens: false,
                    finish_reason: None,
                    max_tokens: Some(9),
                    repeat: false,
                    server: (i % 2) as u16,
                    model: 0,
                }
            })
            .collect()
    }

    /// Several servers: each one's requests in --endpoint order, warm-up
    /// left out, a server that got none listed with none; one server: no
    /// split.
    #[test]
    fn levels_are_split_by_server_in_endpoint_order() {
        let mut r = rows(6, 500.0);
        r[0].warmup = true;
        for c in r.iter_mut().filter(|c| c.server == 1) {
            c.ttft_ms = Some(80.0);
        }
        let seen = ["http://b".to_string(), "http://a".to_string()];
        let names = [
            "http://a".to_string(),
            "http://b".to_string(),
            "http://c".to_string(),
        ];
        let split = by_server(&r, &seen, &names, &[50.0]);
        let got: Vec<(&str, usize, Option<f64>)> = split
            .iter()
            .map(|s| {
                (
                    s.endpoint.as_str(),
                    s.share.requests,
                    s.share.ttft_ms.percentiles.get("p50").copied(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("http://a", 3, Some(80.0)),
                ("http://b", 2, Some(10.0)),
                ("http://c", 0, None)
            ]
        );
        assert!(
            split[0]
                .share
                .line(&split[0].endpoint)
                .contains("http://a: 3 requests, 100.0% ok, TTFT p50 80 ms")
        );
        assert!(by_server(&r, &seen, &names[..1], &[50.0]).is_empty());
    }

    /// Open loop, a TTFT that grows with arrival time is a server falling
    /// behind, whatever the rate achieved; closed loop it is not judged.
    #[test]
    fn a_queue_growing_through_an_open_loop_level_is_degraded() {
        let mut r = rows(30, 29_000.0);
        for (i, c) in r.iter_mut().enumerate() {
            // 0.2 s at the first arrival, 1 s more per arrival after.
            c.ttft_ms = Some(200.0 + 1000.0 * i as f64);
            c.end_ms = c.sent_ms + c.ttft_ms.unwrap_or(0.0) + 50.0;
        }
        let key = |mode: &str| LevelKey {
            mode: mode.into(),
            value: 1.0,
            round: 1,
        };
        let s = summarise(
            &key("qps"),
            &r,
            Some(1.0),
            1,
            None,
            &Slo::default(),
            &[99.0],
        );
        assert!((s.ttft_rise_ms.expect("a rise") - 29_000.0).abs() < 1e-6);
        assert!(s.fell_behind);
        assert!(
            s.verdict.contains(": DEGRADED —") && s.verdict.contains("TTFT rose by 29.0 s"),
            "{}",
            s.verdict
        );
        let t = summarise(&key("trace"), &r, None, 1, None, &Slo::default(), &[99.0]);
        assert!(t.fell_behind && t.verdict.contains(": DEGRADED —"));
        // Recorded timestamps, one a second: the rate they were sent at,
        // not their number over the level with its 29 s drain.
        assert!((t.achieved_rate - 1.0).abs() < 1e-9, "{}", t.achieved_rate);
        assert!(t.request_rate < 0.6, "{}", t.request_rate);
        let c = summarise(
            &key("concurrency"),
            &r,
            None,
            1,
            None,
            &Slo::default(),
            &[99.0],
        );
        assert_eq!((c.ttft_rise_ms, c.fell_behind), (None, false));
        assert!(c.verdict.contains(": OK —"), "{}", c.verdict);
        // A constant TTFT: no trend.
        let flat = level(30, 29_000.0, 1.0);
        assert!(!flat.fell_behind && flat.ttft_rise_ms.is_some_and(|x| x.abs() < 1e-6));
    }

    /// 20 arrivals at 8/s for a target of 10/s are within the Poisson
    /// spread of so few (3 standard errors: 67 %); 400 arrivals are not.
    #[test]
    fn a_short_level_is_not_degraded_by_the_spread_of_its_arrivals() {
        // n / (span + 1 / target) = 8/s.
        let few = level(20, 2400.0, 10.0);
        assert!((few.achieved_rate - 8.0).abs() < 1e-9);
        assert!(few.verdict.contains(": OK —"), "{}", few.verdict);
        assert!(
            few.verdict.contains("(±22% over 20 arrivals)"),
            "{}",
            few.verdict
        );
        let many = level(400, 49_900.0, 10.0);
        assert!((many.achieved_rate - 8.0).abs() < 1e-9);
        assert!(many.verdict.contains(": DEGRADED —"), "{}", many.verdict);
    }

    #[test]
    fn dist_matches_quantile_cont() {
        // Unsorted, with a value that is not finite (left out).
        let d = dist(
            vec![4.0, f64::NAN, 1.0, 3.0, 2.0],
            &[0.0, 50.0, 90.0, 100.0],
        );
        assert_eq!(d.count, 4);
        assert_eq!((d.min, d.max, d.mean), (Some(1.0), Some(4.0), Some(2.5)));
        assert_eq!(d.percentiles["p0"], 1.0);
        assert_eq!(d.percentiles["p50"], 2.5);
        assert!((d.percentiles["p90"] - 3.7).abs() < 1e-12);
        assert_eq!(d.percentiles["p100"], 4.0);
        let empty = dist(vec![f64::INFINITY], &[50.0]);
        assert_eq!((empty.count, empty.mean, empty.min), (0, None, None));
        assert!(empty.percentiles.is_empty());
    }
}
