//! `trace synth random`: single-turn token-only requests of given lengths,
//! optionally opening with one of a few shared prefixes (prefix-cache
//! workloads). See `docs/formats/synth.md`.

use rand::SeedableRng;
use rand::rngs::StdRng;
use traces::TraceRow;

use super::blocks::{BlockTable, Context, Segment, SegmentIds};
use super::spec::{Span, check_ratio};
use crate::{Error, Outcome, Result, SessionSource, ids};

/// The `source` column of the rows.
pub const SOURCE: &str = "synthetic/random";

/// Options of `trace synth random`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Options {
    /// Number of requests (one single-turn session each).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub requests: u64,
    /// Tokens of each prompt after its shared prefix (the prompt is
    /// --prefix-len + this).
    #[arg(long, value_name = "TOKENS", default_value_t = 1024)]
    pub input_len: u32,
    /// Tokens to generate per request.
    #[arg(long, value_name = "TOKENS", default_value_t = 128)]
    pub output_len: u32,
    /// Spread of --input-len and --output-len: each is drawn uniformly from
    /// [L*(1-R), L*(1+R)]. In [0, 1); 0 keeps them fixed.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub range_ratio: f64,
    /// Tokens of shared prefix at the start of every prompt.
    #[arg(long, value_name = "TOKENS", default_value_t = 0)]
    pub prefix_len: u32,
    /// Distinct shared prefixes; request i uses prefix i % K.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub num_prefixes: u32,
    /// Tokens per hash_ids block (16 is vLLM's default KV-cache block).
    #[arg(long, value_name = "TOKENS", default_value_t = 16)]
    pub block_size: u32,
    /// Seed of the random lengths.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            requests: 1000,
            input_len: 1024,
            output_len: 128,
            range_ratio: 0.0,
            prefix_len: 0,
            num_prefixes: 1,
            block_size: 16,
            seed: 0,
        }
    }
}

/// The checked plan of a run.
#[derive(Debug, Clone)]
struct Plan {
    requests: u64,
    input: Span,
    output: Span,
    prefix_len: u32,
    num_prefixes: u32,
}

fn plan(opts: &Options) -> Result<Plan> {
    let usage = |m: String| Err(Error::Usage(m));
    if opts.requests == 0 {
        return usage("--requests must be at least 1".into());
    }
    check_ratio(opts.range_ratio)?;
    if opts.block_size == 0 {
        return usage("--block-size must be at least 1".into());
    }
    if opts.num_prefixes == 0 {
        return usage("--num-prefixes must be at least 1".into());
    }
    if opts.input_len == 0 && opts.prefix_len == 0 {
        return usage("--input-len and --prefix-len are both 0: the prompts would be empty".into());
    }
    if opts.output_len == 0 {
        return usage("--output-len must be at least 1".into());
    }
    let input = Span::around(opts.input_len, opts.range_ratio)?;
    let mut output = Span::around(opts.output_len, opts.range_ratio)?;
    output.lo = output.lo.max(1);
    if u64::from(input.hi) + u64::from(opts.prefix_len) > u64::from(u32::MAX) {
        return usage("--input-len plus --prefix-len does not fit in 32 bits".into());
    }
    Ok(Plan {
        requests: opts.requests,
        input,
        output,
        prefix_len: opts.prefix_len,
        num_prefixes: opts.num_prefixes,
    })
}

/// A source of the generated sessions.
pub fn generate(opts: &Options) -> Result<Box<dyn SessionSource>> {
    Ok(Box::new(RandomSource::new(opts)?))
}

/// Yields one single-turn session per request.
pub struct RandomSource {
    plan: Plan,
    rng: StdRng,
    table: BlockTable,
    segments: SegmentIds,
    /// Created on first use, so ids follow the order requests use them.
    prefixes: Vec<Option<Segment>>,
    next: u64,
}

impl RandomSource {
    pub fn new(opts: &Options) -> Result<Self> {
        let plan = plan(opts)?;
        Ok(RandomSource {
            prefixes: vec![None; plan.num_prefixes as usize],
            plan,
            rng: StdRng::seed_from_u64(opts.seed),
            table: BlockTable::new(opts.block_size),
            segments: SegmentIds::default(),
            next: 0,
        })
    }

    fn prefix(&mut self, i: u64) -> Option<Segment> {
        if self.plan.prefix_len == 0 {
            return None;
        }
        let k = (i % u64::from(self.plan.num_prefixes)) as usize;
        let slot = self.prefixes.get_mut(k)?;
        Some(*slot.get_or_insert_with(|| self.segments.make(self.plan.prefix_len, true)))
    }

    fn request(&mut self, i: u64) -> TraceRow {
        let body_len = self.plan.input.sample(&mut self.rng);
        let output = self.plan.output.sample(&mut self.rng);
        // Keep at least one token in the prompt when the spread reaches 0.
        let body_len = if self.plan.prefix_len == 0 {
            body_len.max(1)
        } else {
            body_len
        };
        let mut ctx = Context::new();
        if let Some(prefix) = self.prefix(i) {
            ctx.push(&mut self.table, prefix);
        }
        let body = self.segments.make(body_len, false);
        ctx.push(&mut self.table, body);
        let session_id = format!("random-{i}");
        TraceRow {
            request_id: ids::request_id(&session_id, 0),
            session_id,
            turn: 0,
            input_tokens: Some(self.plan.prefix_len + body_len),
            hash_ids: Some(ctx.hash_ids(&mut self.table)),
            output_tokens: Some(output),
            source: SOURCE.to_string(),
            ..Default::default()
        }
    }
}

impl SessionSource for RandomSource {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        if self.next >= self.plan.requests {
            return None;
        }
        let i = self.next;
        self.next += 1;
        Some(Ok(Outcome::Session(vec![self.request(i)])))
    }

    fn block_size(&self) -> Option<u32> {
        Some(self.table.block_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(opts: &Options) -> Vec<TraceRow> {
        let mut src = RandomSource::new(opts).expect("valid options");
        let mut out = Vec::new();
        while let Some(o) = src.next_outcome() {
            match o.expect("ok") {
                Outcome::Session(rows) => out.extend(rows),
                Outcome::Skipped(r) => panic!("skipped {r}"),
            }
        }
        out
    }

    fn small() -> Options {
        Options {
            requests: 6,
            input_len: 40,
            output_len: 10,
            block_size: 16,
            ..Options::default()
        }
    }

    #[test]
    fn fixed_lengths_and_shape() {
        let r = rows(&small());
        assert_eq!(r.len(), 6);
        for (i, row) in r.iter().enumerate() {
            assert_eq!(row.session_id, format!("random-{i}"));
            assert_eq!(row.request_id, format!("random-{i}#0"));
            assert_eq!(row.input_tokens, Some(40));
            assert_eq!(row.output_tokens, Some(10));
            assert_eq!(row.hash_ids.as_ref().map(Vec::len), Some(3));
            assert!(row.messages.is_empty() && row.arrival_ms.is_none());
            assert_eq!(row.source, SOURCE);
        }
        // No prefix: no block is shared, ids are dense in order.
        let all: Vec<u64> = r
            .iter()
            .flat_map(|x| x.hash_ids.clone().unwrap_or_default())
            .collect();
        assert_eq!(all, (0..18).collect::<Vec<u64>>());
    }

    #[test]
    fn prefixes_are_shared_round_robin() {
        let opts = Options {
            prefix_len: 35,
            num_prefixes: 2,
            ..small()
        };
        let r = rows(&opts);
        let h: Vec<Vec<u64>> = r
            .iter()
            .map(|x| x.hash_ids.clone().unwrap_or_default())
            .collect();
        assert_eq!(r[0].input_tokens, Some(75));
        // 35 prefix tokens = 2 full blocks shared; the third mixes in the body.
        for i in 2..6 {
            let same = &h[i - 2];
            assert_eq!(h[i][..2], same[..2], "request {i}");
            assert_ne!(h[i][2], same[2]);
        }
        assert_ne!(h[0][0], h[1][0]);
    }

    #[test]
    fn range_ratio_spreads_lengths_like_vllm() {
        let opts = Options {
            requests: 400,
            input_len: 100,
            output_len: 20,
            range_ratio: 0.5,
            ..small()
        };
        let r = rows(&opts);
        let ins: Vec<u32> = r.iter().filter_map(|x| x.input_tokens).collect();
        let outs: Vec<u32> = r.iter().filter_map(|x| x.output_tokens).collect();
        assert!(ins.iter().all(|&v| (50..=150).contains(&v)));
        assert!(outs.iter().all(|&v| (10..=30).contains(&v)));
        assert!(ins.iter().min() < Some(&60) && ins.iter().max() > Some(&140));
        assert_eq!(rows(&opts), r);
        assert_ne!(rows(&Options { seed: 1, ..opts }), r);
    }

    #[test]
    fn bad_options_name_the_flag() {
        for (opts, flag) in [
            (
                Options {
                    requests: 0,
                    ..small()
                },
                "--requests",
            ),
            (
                Options {
                    range_ratio: 1.0,
                    ..small()
                },
                "--range-ratio",
            ),
            (
                Options {
                    range_ratio: -0.5,
                    ..small()
                },
                "--range-ratio",
            ),
            (
                Options {
                    num_prefixes: 0,
                    ..small()
                },
                "--num-prefixes",
            ),
            (
                Options {
                    block_size: 0,
                    ..small()
                },
                "--block-size",
            ),
            (
                Options {
                    output_len: 0,
                    ..small()
                },
                "--output-len",
            ),
            (
                Options {
                    input_len: 0,
                    ..small()
                },
                "--input-len",
            ),
            (
                Options {
                    input_len: u32::MAX,
                    prefix_len: 5,
                    ..small()
                },
                "--prefix-len",
            ),
        ] {
            let e = generate(&opts).err().expect("refused");
            assert!(matches!(e, Error::Usage(_)));
            assert!(e.to_string().contains(flag), "{e}");
        }
    }
}
