//! `trace synth agent`: multi-turn agent sessions whose context grows turn
//! by turn and is compacted when it would overflow the context window.
//!
//! Each turn's prompt is: system prefix (the same for every user) + user
//! prefix (per user) + the session's history since the last compaction
//! (every earlier turn's input and output) + the turn's new input. When a
//! prompt plus its output would exceed the window, the history is dropped
//! and the user prefix grows by the compaction increment (append-mode
//! compaction; `reset_context` is set on that turn). A turn whose base
//! context alone does not fit is marked `overflow` and ends the session.
//! See `docs/formats/synth.md`.

use std::path::PathBuf;

use rand::SeedableRng;
use rand::rngs::StdRng;
use traces::{Message, TraceRow};

use super::arrivals::{Arrival, Clock};
use super::blocks::{BlockTable, Context, Segment, SegmentIds};
use super::spec::{MsSpan, Span, check_ratio, parse_ms_span, parse_span};
use crate::{Error, Outcome, Result, SessionSource, ids};

/// The `source` column of the rows.
pub const SOURCE: &str = "synthetic/agent";

/// System prefix tokens when neither --system-prefix-tokens nor
/// --system-prefix-source is given.
pub const DEFAULT_SYSTEM_PREFIX_TOKENS: u32 = 2000;

/// Options of `trace synth agent`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Options {
    /// Number of users (one session each, `agent-user-<k>`).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub users: u64,
    /// Turns per user: N, or MIN:MAX drawn uniformly per user. A session
    /// ends earlier if a turn overflows the context window.
    #[arg(long, value_name = "N|MIN:MAX", default_value = "10")]
    pub turns: String,
    /// Tokens of the system prefix every user shares [default: 2000, or
    /// the estimate of --system-prefix-source].
    #[arg(long, value_name = "TOKENS")]
    pub system_prefix_tokens: Option<u32>,
    /// Take the system prefix from this text file: turn 0 and each
    /// compaction turn then carry it as a system message. Its length is
    /// estimated as ceil(bytes / 4) tokens unless --system-prefix-tokens is given.
    #[arg(long, value_name = "FILE")]
    pub system_prefix_source: Option<PathBuf>,
    /// Tokens of each user's own prefix (before any compaction).
    #[arg(long, value_name = "TOKENS", default_value_t = 500)]
    pub user_prefix_tokens: u32,
    /// New input tokens per turn: N (spread by --range-ratio) or MIN:MAX.
    #[arg(long, value_name = "N|MIN:MAX", default_value = "500")]
    pub turn_input_tokens: String,
    /// Output tokens per turn: N (spread by --range-ratio) or MIN:MAX.
    #[arg(long, value_name = "N|MIN:MAX", default_value = "300")]
    pub turn_output_tokens: String,
    /// Spread of plain N token counts: uniform in [N*(1-R), N*(1+R)]. In [0, 1).
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub range_ratio: f64,
    /// Context window in tokens: a prompt plus its output must fit.
    #[arg(long, value_name = "TOKENS", default_value_t = 32768)]
    pub context_window: u32,
    /// Tokens the user prefix grows by at each compaction (a summary of the
    /// dropped history).
    #[arg(long, value_name = "TOKENS", default_value_t = 1000)]
    pub compaction_increment: u32,
    /// Pause before each turn after the first: MS or MIN:MAX (uniform).
    /// Without it think_ms is left empty and the replayer decides.
    #[arg(long, value_name = "MS|MIN:MAX")]
    pub think_ms: Option<String>,
    /// When users start: burst (all at 0), steady:SECONDS (user k at
    /// k*SECONDS) or poisson:RATE (exponential gaps, RATE users per second).
    #[arg(long, value_name = "SPEC", default_value = "burst")]
    pub user_arrival: String,
    /// Tokens per hash_ids block (16 is vLLM's default KV-cache block).
    #[arg(long, value_name = "TOKENS", default_value_t = 16)]
    pub block_size: u32,
    /// Seed of every random draw (turns, lengths, think times, arrivals).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: 10,
            turns: "10".into(),
            system_prefix_tokens: None,
            system_prefix_source: None,
            user_prefix_tokens: 500,
            turn_input_tokens: "500".into(),
            turn_output_tokens: "300".into(),
            range_ratio: 0.0,
            context_window: 32768,
            compaction_increment: 1000,
            think_ms: None,
            user_arrival: "burst".into(),
            block_size: 16,
            seed: 0,
        }
    }
}

/// The checked plan of a run.
#[derive(Debug, Clone)]
struct Plan {
    users: u64,
    turns: Span,
    system_tokens: u32,
    system_text: Option<String>,
    user_prefix: u32,
    input: Span,
    output: Span,
    window: u32,
    increment: u32,
    think: Option<MsSpan>,
    arrival: Arrival,
}

fn usage<T>(message: String) -> Result<T> {
    Err(Error::Usage(message))
}

/// Reads --system-prefix-source; returns its text and token estimate.
fn read_system_prefix(path: &std::path::Path) -> Result<(String, u32)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "--system-prefix-source {}: cannot read it as UTF-8 text: {e}",
            path.display()
        ))
    })?;
    if text.trim().is_empty() {
        return usage(format!(
            "--system-prefix-source {}: the file is empty",
            path.display()
        ));
    }
    let estimate = text.len().div_ceil(4);
    let tokens = u32::try_from(estimate).map_err(|_| {
        Error::Usage(format!(
            "--system-prefix-source {}: the file is too large",
            path.display()
        ))
    })?;
    Ok((text, tokens))
}

/// A span whose low end is raised to 1, refused if it cannot reach 1.
fn at_least_one(flag: &str, mut span: Span) -> Result<Span> {
    if span.hi == 0 {
        return usage(format!("{flag} must be at least 1"));
    }
    span.lo = span.lo.max(1);
    Ok(span)
}

fn plan(opts: &Options) -> Result<Plan> {
    if opts.users == 0 {
        return usage("--users must be at least 1".into());
    }
    check_ratio(opts.range_ratio)?;
    if opts.block_size == 0 {
        return usage("--block-size must be at least 1".into());
    }
    let turns = at_least_one("--turns", parse_span("--turns", &opts.turns, 0.0)?)?;
    let input = parse_span(
        "--turn-input-tokens",
        &opts.turn_input_tokens,
        opts.range_ratio,
    )?;
    let input = at_least_one("--turn-input-tokens", input)?;
    let output = parse_span(
        "--turn-output-tokens",
        &opts.turn_output_tokens,
        opts.range_ratio,
    )?;
    let output = at_least_one("--turn-output-tokens", output)?;
    let think = match &opts.think_ms {
        Some(t) => Some(parse_ms_span("--think-ms", t)?),
        None => None,
    };
    let arrival = Arrival::parse(&opts.user_arrival)?;
    let (system_text, estimate) = match &opts.system_prefix_source {
        Some(path) => {
            let (text, tokens) = read_system_prefix(path)?;
            (Some(text), tokens)
        }
        None => (None, DEFAULT_SYSTEM_PREFIX_TOKENS),
    };
    let system_tokens = opts.system_prefix_tokens.unwrap_or(estimate);
    let plan = Plan {
        users: opts.users,
        turns,
        system_tokens,
        system_text,
        user_prefix: opts.user_prefix_tokens,
        input,
        output,
        window: opts.context_window,
        increment: opts.compaction_increment,
        think,
        arrival,
    };
    check_sizes(&plan)?;
    Ok(plan)
}

/// The window must hold the smallest base context, and every count must
/// stay within 32 bits.
fn check_sizes(p: &Plan) -> Result<()> {
    let base = u64::from(p.system_tokens)
        + u64::from(p.user_prefix)
        + u64::from(p.input.lo)
        + u64::from(p.output.lo);
    if u64::from(p.window) < base {
        return usage(format!(
            "--context-window {} is smaller than the base context of {base} tokens \
             (system prefix {} + user prefix {} + turn input {} + turn output {})",
            p.window, p.system_tokens, p.user_prefix, p.input.lo, p.output.lo
        ));
    }
    let largest = u64::from(p.system_tokens)
        + u64::from(p.user_prefix)
        + u64::from(p.input.hi)
        + u64::from(p.output.hi)
        + u64::from(p.window)
        + u64::from(p.increment);
    if largest > u64::from(u32::MAX) {
        return usage(
            "token counts too large: --context-window + --compaction-increment + \
             the prefixes and turn lengths must stay below 2^32"
                .into(),
        );
    }
    Ok(())
}

/// A source of the generated sessions.
pub fn generate(opts: &Options) -> Result<Box<dyn SessionSource>> {
    Ok(Box::new(AgentSource::new(opts)?))
}

/// Yields one session per user.
pub struct AgentSource {
    plan: Plan,
    rng: StdRng,
    clock: Clock,
    table: BlockTable,
    segments: SegmentIds,
    system: Segment,
    next_user: u64,
}

/// One user's evolving state.
struct UserState {
    /// The user prefix: the original part plus one part per compaction.
    prefix: Vec<Segment>,
    prefix_len: u64,
    /// System + user prefix + history, as block ids.
    context: Context,
    history_len: u64,
}

impl AgentSource {
    pub fn new(opts: &Options) -> Result<Self> {
        let plan = plan(opts)?;
        let mut segments = SegmentIds::default();
        let system = segments.make(plan.system_tokens, true);
        Ok(AgentSource {
            rng: StdRng::seed_from_u64(opts.seed),
            clock: plan.arrival.clock(),
            table: BlockTable::new(opts.block_size),
            segments,
            system,
            plan,
            next_user: 0,
        })
    }

    /// A context holding the system prefix and the user's prefix parts.
    fn base_context(&mut self, prefix: &[Segment]) -> Context {
        let mut ctx = Context::new();
        ctx.push(&mut self.table, self.system);
        for part in prefix {
            ctx.push(&mut self.table, *part);
        }
        ctx
    }

    /// Drops the history and grows the user prefix by the increment.
    fn compact(&mut self, user: &mut UserState) {
        if self.plan.increment > 0 {
            let summary = self.segments.make(self.plan.increment, true);
            user.prefix.push(summary);
            user.prefix_len += u64::from(self.plan.increment);
        }
        user.context = self.base_context(&user.prefix);
        user.history_len = 0;
    }

    fn session(&mut self, k: u64) -> Vec<TraceRow> {
        let start_ms = self.clock.next_ms(&mut self.rng);
        let turns = self.plan.turns.sample(&mut self.rng);
        let session_id = format!("agent-user-{k}");
        let own = self.segments.make(self.plan.user_prefix, true);
        let mut user = UserState {
            prefix: vec![own],
            prefix_len: u64::from(self.plan.user_prefix),
            context: self.base_context(&[own]),
            history_len: 0,
        };
        let mut rows = Vec::with_capacity(turns as usize);
        for turn in 0..turns {
            let input = self.plan.input.sample(&mut self.rng);
            let output = self.plan.output.sample(&mut self.rng);
            let think_ms = match self.plan.think {
                Some(span) if turn > 0 => Some(span.sample(&mut self.rng)),
                _ => None,
            };
            let step = u64::from(input) + u64::from(output);
            let system = u64::from(self.plan.system_tokens);
            let base = |u: &UserState| system + u.prefix_len + step;
            let window = u64::from(self.plan.window);
            let reset = needs_compaction(base(&user), user.history_len, window);
            if reset {
                self.compact(&mut user);
            }
            let overflow = base(&user) > window;
            let current = self.segments.make(input, false);
            user.context.push(&mut self.table, current);
            let messages = match &self.plan.system_text {
                Some(text) if turn == 0 || reset => vec![Message::new("system", text.clone())],
                _ => Vec::new(),
            };
            rows.push(TraceRow {
                request_id: ids::request_id(&session_id, turn),
                session_id: session_id.clone(),
                turn,
                arrival_ms: (turn == 0).then_some(start_ms),
                think_ms,
                messages,
                reset_context: reset,
                // `check_sizes` keeps every prompt within 32 bits.
                input_tokens: Some(u32::try_from(user.context.len()).unwrap_or(u32::MAX)),
                hash_ids: Some(user.context.hash_ids(&mut self.table)),
                output_tokens: Some(output),
                overflow,
                source: SOURCE.to_string(),
                ..Default::default()
            });
            if overflow {
                break;
            }
            let reply = self.segments.make(output, false);
            user.context.push(&mut self.table, reply);
            user.history_len += step;
        }
        rows
    }
}

/// Whether a turn must compact first: it has history to drop and its prompt
/// plus output (`base` + `history`) would not fit in `window`.
fn needs_compaction(base: u64, history: u64, window: u64) -> bool {
    history > 0 && base + history > window
}

impl SessionSource for AgentSource {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        if self.next_user >= self.plan.users {
            return None;
        }
        let k = self.next_user;
        self.next_user += 1;
        Some(Ok(Outcome::Session(self.session(k))))
    }

    fn block_size(&self) -> Option<u32> {
        Some(self.table.block_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Options,
    }

    /// Options as the command line gives them (defaults included).
    fn cli(args: &[&str]) -> Options {
        Cli::parse_from(std::iter::once("agent").chain(args.iter().copied())).opts
    }

    fn sessions(opts: &Options) -> Vec<Vec<TraceRow>> {
        let mut src = AgentSource::new(opts).expect("valid options");
        let mut out = Vec::new();
        while let Some(o) = src.next_outcome() {
            match o.expect("ok") {
                Outcome::Session(rows) => out.push(rows),
                Outcome::Skipped(r) => panic!("skipped {r}"),
            }
        }
        out
    }

    fn ids(row: &TraceRow) -> &[u64] {
        row.hash_ids.as_deref().unwrap_or_default()
    }

    /// Small numbers: block 10, system 20, user 10, input 5, output 5.
    fn small(extra: &[&str]) -> Options {
        let base = [
            ("--users", "3"),
            ("--turns", "4"),
            ("--system-prefix-tokens", "20"),
            ("--user-prefix-tokens", "10"),
            ("--turn-input-tokens", "5"),
            ("--turn-output-tokens", "5"),
            ("--block-size", "10"),
            ("--context-window", "1000"),
            ("--compaction-increment", "10"),
        ];
        let mut args: Vec<&str> = base
            .iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [*flag, *value])
            .collect();
        args.extend_from_slice(extra);
        cli(&args)
    }

    #[test]
    fn defaults_match_the_command_line() {
        let d = Options::default();
        let c = cli(&[]);
        assert_eq!(format!("{d:?}"), format!("{c:?}"));
    }

    #[test]
    fn context_grows_and_shares_prefixes() {
        let s = sessions(&small(&[]));
        assert_eq!(s.len(), 3);
        let rows = &s[0];
        assert_eq!(rows.len(), 4);
        for (t, row) in rows.iter().enumerate() {
            assert_eq!(row.turn as usize, t);
            assert_eq!(row.session_id, "agent-user-0");
            assert_eq!(row.request_id, format!("agent-user-0#{t}"));
            // 20 + 10 + t * (5 + 5) + 5
            assert_eq!(row.input_tokens, Some(35 + 10 * t as u32));
            assert_eq!(row.output_tokens, Some(5));
            assert!(!row.reset_context && !row.overflow);
            assert!(row.messages.is_empty());
            assert_eq!(row.source, SOURCE);
            let n = row.input_tokens.unwrap_or(0).div_ceil(10) as usize;
            assert_eq!(ids(row).len(), n);
        }
        // Each prompt starts with the previous prompt's complete blocks.
        for w in rows.windows(2) {
            let full = (w[0].input_tokens.unwrap_or(0) / 10) as usize;
            assert_eq!(ids(&w[1])[..full], ids(&w[0])[..full]);
        }
        // Users share the 2 system blocks and nothing after them.
        let (a, b) = (ids(&s[0][0]), ids(&s[1][0]));
        assert_eq!(a[..2], b[..2]);
        assert!(a[2..].iter().all(|id| !b.contains(id)));
        // Only the first turn has an arrival; burst puts everyone at 0.
        assert!(s.iter().all(|r| r[0].arrival_ms == Some(0.0)));
        assert!(
            s.iter()
                .all(|r| r[1..].iter().all(|x| x.arrival_ms.is_none()))
        );
    }

    #[test]
    fn compaction_fires_when_prompt_plus_output_exceeds_window() {
        // Base 20 + 10 + 10 = 40; history adds 10 per turn. Window 65:
        // turns 0..2 need 40, 50, 60; turn 3 would need 70 -> compaction.
        let s = sessions(&small(&[
            "--context-window",
            "65",
            "--turns",
            "6",
            "--users",
            "1",
        ]));
        let rows = &s[0];
        let resets: Vec<bool> = rows.iter().map(|r| r.reset_context).collect();
        assert_eq!(resets, [false, false, false, true, false, true]);
        let lens: Vec<u32> = rows.iter().filter_map(|r| r.input_tokens).collect();
        // After compaction: 20 + (10 + 10) + 5 = 45, then 55; the next needs
        // 70 again -> compaction, 20 + (10 + 10 + 10) + 5 = 55.
        assert_eq!(lens, [35, 45, 55, 45, 55, 55]);
        assert!(rows[5].reset_context);
        // The compacted prompt keeps the system and original user prefix
        // blocks (30 tokens = 3 blocks) and drops the history.
        assert_eq!(ids(&rows[3])[..3], ids(&rows[0])[..3]);
        assert_ne!(ids(&rows[3])[3], ids(&rows[2])[3]);
        // Both compactions grow the same prefix: the second keeps the first's summary.
        assert_eq!(ids(&rows[5])[..4], ids(&rows[3])[..4]);
        assert!(rows.iter().all(|r| !r.overflow));
        for r in rows {
            assert!(u64::from(r.input_tokens.unwrap_or(0) + r.output_tokens.unwrap_or(0)) <= 65);
        }
    }

    #[test]
    fn overflow_ends_the_session() {
        // Window 45: base 40 fits; after compaction the prefix grows by 10
        // and the base (50) no longer fits.
        let s = sessions(&small(&[
            "--context-window",
            "45",
            "--turns",
            "10",
            "--users",
            "2",
        ]));
        for rows in &s {
            assert_eq!(rows.len(), 2);
            let last = &rows[1];
            assert!(last.overflow && last.reset_context);
            assert!(rows[..1].iter().all(|r| !r.overflow));
        }
    }

    #[test]
    fn overflow_on_the_first_turn_with_ranges() {
        // The smallest base fits (40 <= 42) but larger inputs do not: such a
        // user gets a single overflow row, with no loop.
        let s = sessions(&small(&[
            "--context-window",
            "42",
            "--turn-input-tokens",
            "1:30",
            "--users",
            "50",
        ]));
        let mut overflowed = 0;
        for rows in &s {
            let first = &rows[0];
            if first.overflow {
                overflowed += 1;
                assert_eq!(rows.len(), 1);
                assert!(!first.reset_context);
            }
        }
        assert!(overflowed > 0);
    }

    #[test]
    fn system_prefix_from_a_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("system.txt");
        std::fs::write(&path, "You are a careful coding agent.\n").expect("write");
        let file = path.to_string_lossy().into_owned();
        let opts = small(&["--context-window", "100"]);
        let opts = Options {
            system_prefix_tokens: None,
            system_prefix_source: Some(path.clone()),
            turns: "12".into(),
            ..opts
        };
        let s = sessions(&opts);
        let rows = &s[0];
        // 32 bytes -> 8 tokens; 8 + 10 + 5 = 23.
        assert_eq!(rows[0].input_tokens, Some(23));
        assert_eq!(rows[0].messages.len(), 1);
        assert_eq!(rows[0].messages[0].role, "system");
        assert!(rows[0].messages[0].content.starts_with("You are"));
        for r in &rows[1..] {
            assert_eq!(r.messages.is_empty(), !r.reset_context, "turn {}", r.turn);
        }
        assert!(rows.iter().any(|r| r.reset_context));
        // An explicit token count wins over the estimate.
        let exact = Options {
            system_prefix_tokens: Some(50),
            ..opts.clone()
        };
        assert_eq!(sessions(&exact)[0][0].input_tokens, Some(65));
        // Unreadable or empty files are usage errors naming the flag.
        for bad in [dir.path().join("missing.txt"), {
            let p = dir.path().join("empty.txt");
            std::fs::write(&p, "  \n").expect("write");
            p
        }] {
            let o = Options {
                system_prefix_source: Some(bad),
                ..opts.clone()
            };
            let e = generate(&o).err().expect("refused");
            assert!(e.to_string().contains("--system-prefix-source"), "{e}");
        }
        assert!(file.ends_with("system.txt"));
    }

    #[test]
    fn think_times_and_arrivals() {
        let s = sessions(&small(&[
            "--think-ms",
            "100:200",
            "--user-arrival",
            "steady:2",
        ]));
        for (k, rows) in s.iter().enumerate() {
            assert_eq!(rows[0].arrival_ms, Some(2000.0 * k as f64));
            assert_eq!(rows[0].think_ms, None);
            for r in &rows[1..] {
                let t = r.think_ms.expect("think time");
                assert!((100.0..=200.0).contains(&t));
            }
        }
    }

    #[test]
    fn turn_ranges_and_determinism() {
        let opts = small(&["--turns", "1:6", "--users", "40", "--range-ratio", "0.4"]);
        let a = sessions(&opts);
        let lens: Vec<usize> = a.iter().map(Vec::len).collect();
        assert!(lens.iter().all(|&n| (1..=6).contains(&n)));
        assert!(lens.contains(&1) && lens.contains(&6));
        assert_eq!(sessions(&opts), a);
        assert_ne!(sessions(&Options { seed: 9, ..opts }), a);
    }

    #[test]
    fn needs_compaction_rule() {
        assert!(!needs_compaction(100, 0, 50));
        assert!(!needs_compaction(40, 10, 50));
        assert!(needs_compaction(40, 11, 50));
    }

    #[test]
    fn bad_options_name_the_flag() {
        for (args, flag) in [
            (&["--users", "0"][..], "--users"),
            (&["--turns", "0"][..], "--turns"),
            (&["--turns", "x"][..], "--turns"),
            (&["--range-ratio", "1"][..], "--range-ratio"),
            (&["--context-window", "39"][..], "--context-window"),
            (&["--user-arrival", "poisson"][..], "--user-arrival"),
            (&["--think-ms", "5:1"][..], "--think-ms"),
            (&["--turn-input-tokens", "0"][..], "--turn-input-tokens"),
            (&["--turn-output-tokens", "3:"][..], "--turn-output-tokens"),
            (&["--block-size", "0"][..], "--block-size"),
            (&["--context-window", "4294967295"][..], "--context-window"),
        ] {
            let e = generate(&small(args)).err().expect("refused");
            assert!(matches!(e, Error::Usage(_)));
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
    }
}
