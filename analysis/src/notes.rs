//! Sentences about how a run's figures should be read, shared by
//! `trace replay`'s console summary and `trace report` / `trace compare`,
//! so that both say the same thing in the same words.

/// Cached-token ratio rise over a run's first level, in points of %, from
/// which a later level is taken to have found earlier levels' prompts.
pub const REUSE_POINTS: f64 = 20.0;

/// `41%`, or `38-45%` when the values spread; `None` for no values.
pub fn pct_range(values: &[f64]) -> Option<String> {
    let lo = values.iter().copied().reduce(f64::min)?;
    let hi = values.iter().copied().reduce(f64::max)?;
    Some(if hi - lo < 0.5 {
        format!("{lo:.0}%")
    } else {
        format!("{lo:.0}-{hi:.0}%")
    })
}

/// When replies ended before the `max_tokens` they asked for: `short` of
/// `ok` requests, `fills` the levels' `output_fill_pct`; `ignore_eos`
/// whether the run asked the server to ignore the end of sequence.
pub fn stopped_short(short: u64, ok: u64, fills: &[f64], ignore_eos: bool) -> Option<String> {
    if short == 0 {
        return None;
    }
    let fill = match pct_range(fills) {
        Some(r) if fills.len() > 1 && r.contains('-') => {
            format!(" ({r} of the output tokens asked came back, by level)")
        }
        Some(r) => format!(" ({r} of the output tokens asked came back)"),
        None => String::new(),
    };
    let why = if ignore_eos {
        "the server ignores ignore_eos and min_tokens, or caps max_tokens: output lengths follow \
         the model, not the trace, so output tokens/s, TPOT and E2E are not comparable with a \
         server that honours them"
    } else {
        "with --no-ignore-eos the model ends its replies where it likes: output lengths follow \
         the model, not the trace"
    };
    Some(format!(
        "{short} of {ok} ok requests ended before the max_tokens they asked for{fill}; {why}"
    ))
}

/// A run whose replies came whole (`replay --no-stream`).
pub const NOT_STREAMED: &str = "the replies were not streamed (--no-stream): each request's E2E \
     is measured, its TTFT, TPOT and ITL are not, as a client that waits for whole replies sees \
     the server";

/// Ok requests without usage from the server, by how their tokens were
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoUsage {
    /// `completion_tokens` counts the chunks that carried text.
    pub counted: u64,
    /// `replay --tokenizer` counted the prompt and the reply.
    pub tokenized: u64,
    /// Nothing counted (a whole reply without `--tokenizer`).
    pub unknown: u64,
}

/// When the server reported no usage for some of `ok` requests: how their
/// tokens were counted, and what that leaves out. `asked` is whether the
/// run asked for usage (false under `--no-usage`).
pub fn no_usage(n: NoUsage, ok: u64, asked: Option<bool>) -> Option<String> {
    let without = n.counted + n.tokenized + n.unknown;
    if without == 0 {
        return None;
    }
    let which = |k: u64| {
        if k == without {
            "all of them".to_string()
        } else {
            format!("{k} of them")
        }
    };
    let mut parts = Vec::new();
    if n.tokenized > 0 {
        parts.push(format!(
            "for {} --tokenizer counted the prompt and output tokens from the text sent and \
             received",
            which(n.tokenized)
        ));
    }
    if n.counted > 0 {
        parts.push(format!(
            "for {} the prompt tokens are unknown, so input tokens/s leaves them out \
             (input_tokens_target holds the lengths the trace asked for), and completion_tokens \
             count the chunks that carried text (tokens_source = 'counted'): short when a chunk \
             carries several tokens, and TPOT and output tokens/s with them",
            which(n.counted)
        ));
    }
    if n.unknown > 0 {
        parts.push(format!(
            "for {} no token is known (whole replies): input and output tokens/s leave them out",
            which(n.unknown)
        ));
    }
    let mut note = format!(
        "the server reported no usage for {without} of {ok} ok requests: {}",
        parts.join("; ")
    );
    if n.counted + n.unknown > 0 {
        note.push_str(". Replay with --tokenizer (the served model's) to count the text's tokens");
    }
    note.push_str(match asked {
        Some(false) => " (the run did not ask for usage: replay without --no-usage)",
        Some(true) => "",
        None => " (or replay without --no-usage if it was given)",
    });
    Some(note)
}

/// When later levels found earlier levels' prompts in the server's prefix
/// cache: `levels` are a run's first-round levels in the order they ran,
/// each named, with its cached-token ratio (0 to 1).
pub fn cache_reuse(levels: &[(String, Option<f64>)]) -> Option<String> {
    let ((first, base), rest) = levels.split_first()?;
    let base = 100.0 * (*base)?;
    let warm: Vec<(&str, f64)> = rest
        .iter()
        .filter_map(|(name, r)| Some((name.as_str(), 100.0 * (*r)?)))
        .filter(|(_, r)| *r >= base + REUSE_POINTS)
        .collect();
    let share = pct_range(&warm.iter().map(|w| w.1).collect::<Vec<_>>())?;
    let names: Vec<&str> = warm.iter().map(|w| w.0).collect();
    Some(format!(
        "every level starts from the trace's first session, so {} resent prompts that earlier \
         levels had sent: {share} of their prompt tokens were cached, against {base:.0}% in \
         {first}, the first level. Their TTFT is lower than it would be on a cold cache; to \
         compare levels cold, pass --cache-reset (vLLM: /reset_prefix_cache, SGLang: \
         /flush_cache) or, on any server, --isolate-levels",
        names.join(", ")
    ))
}

/// Share of its machine's CPU the replayer's own process used during a
/// level from which its timing is suspect, %.
pub const CLIENT_BUSY_PCT: f64 = 80.0;
/// Busy share of the replayer's whole machine (every process) during a
/// level from which its timing is suspect, %.
pub const MACHINE_BUSY_PCT: f64 = 80.0;

/// When the replayer's machine was too busy for exact timing: `levels`
/// named, each with the replayer's share of the machine's CPU and the
/// machine's busy share (%), as run.json's `client_cpu_pct` and
/// `machine_cpu_pct`.
pub fn client_busy(levels: &[(String, Option<f64>, Option<f64>)]) -> Option<String> {
    let mut own = Vec::new();
    let mut machine = Vec::new();
    for (name, share, busy) in levels {
        if let Some(p) = share.filter(|&p| p >= CLIENT_BUSY_PCT) {
            own.push((name.clone(), p));
        } else if let Some(m) = busy.filter(|&m| m >= MACHINE_BUSY_PCT) {
            let share = share.map_or(String::new(), |s| format!(", the replayer's share {s:.0}%"));
            machine.push((format!("{name}{share}"), m));
        }
    }
    let list = |v: &[(String, f64)]| -> Option<(String, String)> {
        let range = pct_range(&v.iter().map(|b| b.1).collect::<Vec<_>>())?;
        let names: Vec<&str> = v.iter().map(|b| b.0.as_str()).collect();
        Some((range, names.join("; ")))
    };
    let mut parts = Vec::new();
    if let Some((range, names)) = list(&own) {
        parts.push(format!(
            "the replayer itself kept {range} of its machine's CPU busy during {names}"
        ));
    }
    if let Some((range, names)) = list(&machine) {
        parts.push(format!(
            "the replayer's machine was {range} busy during {names}: if the server runs there \
             too, the two competed for its cores"
        ));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "{}. Chunks that had arrived may have waited for a core before they were timed, so TTFT \
         and ITL there may be longer than the server's; give the replayer cores of its own \
         (client_cpu_pct and machine_cpu_pct per level in run.json)",
        parts.join("; ")
    ))
}

/// Tokens per chunk, on average over a level, from which the chunked-stream
/// note is given.
pub const CHUNKED_TOKENS_PER_CHUNK: f64 = 1.2;

/// A level's streaming figures, for [`chunked_stream`].
#[derive(Debug, Clone)]
pub struct ChunkedLevel {
    pub name: String,
    pub tokens_per_chunk: Option<f64>,
    pub itl_p50_ms: Option<f64>,
    pub tpot_p50_ms: Option<f64>,
}

/// When the server streamed several tokens a chunk: the levels where it
/// did, each with its tokens per chunk and its ITL and TPOT p50. ITL is
/// timed between chunks, TPOT per token, so the two part by about that
/// factor.
pub fn chunked_stream(levels: &[ChunkedLevel]) -> Option<String> {
    let ms = |v: &Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.1} ms"));
    let chunked: Vec<String> = levels
        .iter()
        .filter_map(|l| {
            let k = l
                .tokens_per_chunk
                .filter(|&k| k >= CHUNKED_TOKENS_PER_CHUNK)?;
            Some(format!(
                "{}: {k:.2} tokens a chunk, ITL p50 {} against TPOT p50 {}",
                l.name,
                ms(&l.itl_p50_ms),
                ms(&l.tpot_p50_ms)
            ))
        })
        .collect();
    if chunked.is_empty() {
        return None;
    }
    Some(format!(
        "the server streamed several tokens a chunk ({}), as a stream interval or speculative \
         decoding does. ITL is timed between chunks, so it is the gap a reader of the stream \
         waits, not the time per token: compare servers by TPOT (per token, from the server's \
         usage); tokens_per_chunk per level",
        chunked.join("; ")
    ))
}

/// Fewest arrivals whose TTFT trend is judged.
pub const TREND_MIN_ARRIVALS: u64 = 10;
/// A rise below this (ms) is never called falling behind.
pub const TREND_MIN_RISE_MS: f64 = 250.0;

/// Load modes whose arrivals do not wait for the server (`qps`, `trace`):
/// the ones whose TTFT trend is judged.
pub fn is_open_loop(load_mode: &str) -> bool {
    matches!(load_mode, "qps" | "trace")
}

/// The least-squares line of the TTFT of a level's arrivals (first turns,
/// ok) against their scheduled time, from running sums so that it streams.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TtftTrend {
    pub n: u64,
    pub sum_x: f64,
    pub sum_y: f64,
    pub sum_xx: f64,
    pub sum_xy: f64,
    pub sum_yy: f64,
    pub min_x: f64,
    pub max_x: f64,
}

impl TtftTrend {
    /// The trend of `(scheduled_ms, ttft_ms)` points.
    pub fn of(points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let mut t = TtftTrend {
            min_x: f64::INFINITY,
            max_x: f64::NEG_INFINITY,
            ..Default::default()
        };
        for (x, y) in points {
            t.n += 1;
            t.sum_x += x;
            t.sum_y += y;
            t.sum_xx += x * x;
            t.sum_xy += x * y;
            t.sum_yy += y * y;
            t.min_x = t.min_x.min(x);
            t.max_x = t.max_x.max(x);
        }
        t
    }

    /// How much the fitted TTFT rose (ms) from the level's first arrival to
    /// its last; `None` under [`TREND_MIN_ARRIVALS`] or when all arrivals
    /// were at one time.
    pub fn rise_ms(&self) -> Option<f64> {
        let c = self.centred()?;
        Some(c.sxy / c.sxx * (self.max_x - self.min_x))
    }

    /// The slope over its standard error (the t statistic of the fit);
    /// `None` when [`Self::rise_ms`] is.
    pub fn t_statistic(&self) -> Option<f64> {
        let c = self.centred()?;
        let slope = c.sxy / c.sxx;
        let residual = (c.syy - slope * c.sxy).max(0.0) / (self.n as f64 - 2.0);
        let se = (residual / c.sxx).sqrt();
        Some(if se > 0.0 {
            slope / se
        } else {
            f64::INFINITY * slope.signum()
        })
    }

    /// The centred sums of squares and products; `None` under
    /// [`TREND_MIN_ARRIVALS`] or when all arrivals were at one time.
    fn centred(&self) -> Option<Centred> {
        if self.n < TREND_MIN_ARRIVALS || self.max_x <= self.min_x {
            return None;
        }
        let n = self.n as f64;
        // Centred: the run clock's offsets would cancel otherwise.
        let (mean_x, mean_y) = (self.sum_x / n, self.sum_y / n);
        let c = Centred {
            sxx: self.sum_xx - n * mean_x * mean_x,
            sxy: self.sum_xy - mean_x * self.sum_y,
            syy: self.sum_yy - n * mean_y * mean_y,
        };
        (c.sxx > 0.0).then_some(c)
    }
}

struct Centred {
    sxx: f64,
    sxy: f64,
    syy: f64,
}

/// The t statistic from which a rise is taken as a trend, not chance.
pub const TREND_MIN_T: f64 = 3.0;

/// Whether an open-loop level's TTFT rose so much through it that the
/// server was falling behind its arrivals (a queue grew): the fitted rise
/// is over the level's median TTFT and over [`TREND_MIN_RISE_MS`], and the
/// slope is [`TREND_MIN_T`] standard errors above zero (a burst of
/// arrivals near the level's end is not a trend). A queue that grows from
/// empty at a steady pace rises by twice its median.
pub fn fell_behind(trend: &TtftTrend, ttft_p50: Option<f64>) -> bool {
    match (trend.rise_ms(), trend.t_statistic(), ttft_p50) {
        (Some(r), Some(t), Some(p)) => r > TREND_MIN_RISE_MS && r > p && t >= TREND_MIN_T,
        _ => false,
    }
}

/// The reason given when [`fell_behind`] holds.
pub fn fell_behind_reason(rise_ms: f64) -> String {
    format!(
        "TTFT rose by {:.1} s from the first arrivals to the last: the server fell behind them \
         (a queue grew), so this rate is above what it sustains",
        rise_ms / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_without_usage_are_noted_by_how_their_tokens_were_counted() {
        let n = |counted, tokenized, unknown| NoUsage {
            counted,
            tokenized,
            unknown,
        };
        assert_eq!(no_usage(n(0, 0, 0), 10, None), None);
        let all = no_usage(n(4, 0, 0), 10, Some(true)).expect("a note");
        assert!(
            all.contains("no usage for 4 of 10 ok requests: for all of them"),
            "{all}"
        );
        assert!(all.contains("completion_tokens count the chunks"), "{all}");
        assert!(all.contains("Replay with --tokenizer"), "{all}");
        assert!(!all.contains("--no-usage"), "{all}");
        let some = no_usage(n(1, 3, 0), 10, Some(false)).expect("a note");
        assert!(
            some.contains("no usage for 4 of 10 ok requests: for 3 of them --tokenizer counted"),
            "{some}"
        );
        assert!(
            some.contains("; for 1 of them the prompt tokens are unknown"),
            "{some}"
        );
        assert!(some.contains("replay without --no-usage"), "{some}");
        let counted = no_usage(n(0, 4, 0), 10, None).expect("a note");
        assert!(
            counted.contains("for all of them --tokenizer counted the prompt and output tokens"),
            "{counted}"
        );
        assert!(
            !counted.contains("chunks") && !counted.contains("Replay with"),
            "{counted}"
        );
        let whole = no_usage(n(0, 0, 2), 2, Some(true)).expect("a note");
        assert!(
            whole.contains("for all of them no token is known"),
            "{whole}"
        );
    }

    #[test]
    fn a_steady_queue_growth_is_told_from_noise() {
        // TTFT growing 1 s per second of arrivals, from 0.1 s.
        let growing = TtftTrend::of(
            (0..30).map(|i| (1e7 + 1000.0 * f64::from(i), 100.0 + 1000.0 * f64::from(i))),
        );
        let rise = growing.rise_ms().expect("a rise");
        assert!((rise - 29_000.0).abs() < 1e-3, "{rise}");
        assert!(fell_behind(&growing, Some(14_600.0)));
        // Noise around 200 ms, no trend.
        let flat = TtftTrend::of(
            (0..30).map(|i| (f64::from(i) * 100.0, if i % 2 == 0 { 150.0 } else { 250.0 })),
        );
        let rise = flat.rise_ms().expect("a rise");
        assert!(rise.abs() < 50.0, "{rise}");
        assert!(!fell_behind(&flat, Some(200.0)));
        // Too few arrivals, or all at once.
        assert_eq!(
            TtftTrend::of((0..9).map(|i| (f64::from(i), f64::from(i)))).rise_ms(),
            None
        );
        assert_eq!(
            TtftTrend::of((0..20).map(|i| (5.0, f64::from(i)))).rise_ms(),
            None
        );
        // A fast server whose TTFT doubles by a little is not called behind.
        let small =
            TtftTrend::of((0..30).map(|i| (f64::from(i) * 100.0, 30.0 + 2.0 * f64::from(i))));
        assert!(!fell_behind(&small, Some(60.0)));
        // Flat, then one late burst: a large fitted rise, but no trend.
        let burst = TtftTrend::of((0..30).map(|i| {
            (
                f64::from(i) * 1000.0,
                if i == 28 { 40_000.0 } else { 500.0 },
            )
        }));
        assert!(burst.rise_ms().is_some_and(|r| r > 1000.0));
        assert!(burst.t_statistic().is_some_and(|t| t < TREND_MIN_T));
        assert!(!fell_behind(&burst, Some(500.0)));
    }

    #[test]
    fn ranges_collapse_when_close() {
        assert_eq!(pct_range(&[]), None);
        assert_eq!(pct_range(&[41.2, 41.4]).as_deref(), Some("41%"));
        assert_eq!(pct_range(&[45.0, 38.0]).as_deref(), Some("38-45%"));
    }

    #[test]
    fn short_replies_are_told_with_their_cause() {
        assert_eq!(stopped_short(0, 10, &[100.0], true), None);
        let s = stopped_short(3, 10, &[70.0], true).expect("a note");
        assert!(s.starts_with("3 of 10 ok requests ended before") && s.contains("(70% of"));
        assert!(s.contains("ignores ignore_eos"), "{s}");
        let s = stopped_short(3, 10, &[60.0, 80.0], false).expect("a note");
        assert!(
            s.contains("60-80% of the output tokens asked came back, by level"),
            "{s}"
        );
        assert!(s.contains("--no-ignore-eos"), "{s}");
    }

    #[test]
    fn only_levels_well_above_the_first_are_named() {
        let l = |n: &str, r: Option<f64>| (n.to_string(), r);
        assert_eq!(
            cache_reuse(&[l("c 1", Some(0.5)), l("c 4", Some(0.69))]),
            None
        );
        assert_eq!(cache_reuse(&[l("c 1", None), l("c 4", Some(0.9))]), None);
        let s = cache_reuse(&[
            l("c 1", Some(0.0)),
            l("c 4", Some(0.9)),
            l("c 8", Some(0.1)),
        ])
        .expect("a note");
        assert!(
            s.contains("so c 4 resent") && s.contains("against 0% in c 1"),
            "{s}"
        );
        assert!(!s.contains("c 8"), "{s}");
    }

    #[test]
    fn chunked_streams_are_named_from_1_2_tokens_a_chunk() {
        let level = |name: &str, k, itl, tpot| ChunkedLevel {
            name: name.to_string(),
            tokens_per_chunk: k,
            itl_p50_ms: itl,
            tpot_p50_ms: tpot,
        };
        let one = level("qps 1", Some(1.0), Some(10.0), Some(10.0));
        let near = level("qps 2", Some(1.19), Some(12.0), Some(10.0));
        let unknown = level("qps 3", None, None, Some(10.0));
        assert_eq!(chunked_stream(&[one.clone(), near, unknown]), None);
        let spec = level("qps 4", Some(3.4), Some(40.5), None);
        let s = chunked_stream(&[one, spec]).expect("a note");
        assert!(
            s.contains("(qps 4: 3.40 tokens a chunk, ITL p50 40.5 ms against TPOT p50 -)"),
            "{s}"
        );
        assert!(!s.contains("qps 1"), "{s}");
        assert!(s.contains("compare servers by TPOT"), "{s}");
    }
}
