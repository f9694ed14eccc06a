//! Faults on purpose: which kinds exist, their rates, and the seeded draw.

use anyhow::bail;

/// One way a request can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// HTTP 429 with an OpenAI-style JSON error, before any stream.
    Http429,
    /// HTTP 500, before any stream.
    Http500,
    /// HTTP 503, before any stream.
    Http503,
    /// Half the tokens, then the TCP connection is reset (RST).
    Reset,
    /// Half the tokens, then nothing for `--stall-ms`, then a reset.
    Stall,
    /// A `data:` line that is not JSON in the middle of the stream.
    Malformed,
    /// The stream ends cleanly but without `data: [DONE]`.
    NoDone,
    /// No usage chunk (or usage field), even when asked for.
    UsageMissing,
    /// A usage report whose completion_tokens is one more than was sent.
    UsageWrong,
    /// The connection is closed (FIN) without an answer, as a server does
    /// that closes a kept-alive connection just as the client reuses it.
    Close,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Http429,
        Fault::Http500,
        Fault::Http503,
        Fault::Reset,
        Fault::Stall,
        Fault::Malformed,
        Fault::NoDone,
        Fault::UsageMissing,
        Fault::UsageWrong,
        Fault::Close,
    ];

    /// The name used in `--faults`, the `x-mock-fault` header and the request log.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Http429 => "429",
            Fault::Http500 => "500",
            Fault::Http503 => "503",
            Fault::Reset => "reset",
            Fault::Stall => "stall",
            Fault::Malformed => "malformed",
            Fault::NoDone => "no-done",
            Fault::UsageMissing => "usage-missing",
            Fault::UsageWrong => "usage-wrong",
            Fault::Close => "close",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The HTTP status of a fault that answers before the stream.
    pub fn http_status(self) -> Option<u16> {
        match self {
            Fault::Http429 => Some(429),
            Fault::Http500 => Some(500),
            Fault::Http503 => Some(503),
            _ => None,
        }
    }
}

/// Probability of each fault per request (they add up to at most 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultRates {
    rates: Vec<(Fault, f64)>,
}

impl FaultRates {
    /// Parses `KIND=RATE,KIND=RATE`, rates in [0, 1] summing to at most 1.
    pub fn parse(spec: &str) -> anyhow::Result<FaultRates> {
        let mut rates: Vec<(Fault, f64)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((kind, rate)) = part.split_once('=') else {
                bail!("`{part}` is not KIND=RATE");
            };
            let Some(fault) = Fault::from_name(kind.trim()) else {
                let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                bail!("unknown fault `{kind}` (known: {})", known.join(", "));
            };
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("rate of `{kind}` is not a number: `{rate}`"))?;
            if !(0.0..=1.0).contains(&rate) {
                bail!("rate of `{kind}` must be between 0 and 1, got {rate}");
            }
            if rates.iter().any(|(f, _)| *f == fault) {
                bail!("fault `{kind}` is given twice");
            }
            rates.push((fault, rate));
        }
        let total: f64 = rates.iter().map(|(_, r)| r).sum();
        if total > 1.0 + 1e-9 {
            bail!("fault rates add up to {total}, more than 1");
        }
        Ok(FaultRates { rates })
    }

    pub fn is_empty(&self) -> bool {
        self.rates.iter().all(|(_, r)| *r == 0.0)
    }

    /// The fault of request number `n` (0, 1, 2, ... in arrival order) under
    /// `seed`: the same seed and order give the same faults.
    pub fn draw(&self, seed: u64, n: u64) -> Option<Fault> {
        if self.is_empty() {
            return None;
        }
        let u = unit(splitmix64(seed ^ splitmix64(n)));
        let mut acc = 0.0;
        for (fault, rate) in &self.rates {
            acc += rate;
            if u < acc {
                return Some(*fault);
            }
        }
        None
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1) from the top 53 bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let r = FaultRates::parse("429=0.5, reset=0.25").expect("parses");
        assert!(!r.is_empty());
        assert!(FaultRates::parse("teapot=0.1").is_err());
        assert!(FaultRates::parse("429=2").is_err());
        assert!(FaultRates::parse("429=0.6,500=0.6").is_err());
        assert!(FaultRates::parse("429").is_err());
        assert!(FaultRates::parse("429=0.1,429=0.1").is_err());
        assert!(FaultRates::parse("").expect("empty is fine").is_empty());
    }

    #[test]
    fn draws_follow_the_rates_and_the_seed() {
        let r = FaultRates::parse("429=0.5,reset=0.25").expect("parses");
        let n = 20_000;
        let draws: Vec<_> = (0..n).map(|i| r.draw(7, i)).collect();
        let count = |f| draws.iter().filter(|d| **d == Some(f)).count() as f64 / n as f64;
        assert!((count(Fault::Http429) - 0.5).abs() < 0.02);
        assert!((count(Fault::Reset) - 0.25).abs() < 0.02);
        let again: Vec<_> = (0..n).map(|i| r.draw(7, i)).collect();
        assert_eq!(draws, again);
        let other: Vec<_> = (0..n).map(|i| r.draw(8, i)).collect();
        assert_ne!(draws, other);
        let all = FaultRates::parse("stall=1").expect("parses");
        assert!((0..100).all(|i| all.draw(0, i) == Some(Fault::Stall)));
    }
}
