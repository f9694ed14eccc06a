//! Intended send times, computed up front by pure functions.
//!
//! A level's arrivals are offsets in milliseconds from the level's start;
//! the runner sleeps until `start + offset` (absolute deadlines, so no
//! drift accumulates however long the run).

use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma};

/// How arrivals are spread in time at a given mean rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Exponential gaps (a Poisson process).
    Poisson,
    /// Gamma-distributed gaps with shape `burstiness` and the same mean:
    /// below 1 burstier than Poisson, above 1 more regular (vLLM's meaning).
    Gamma { burstiness: f64 },
    /// Equal gaps.
    Constant,
    /// Groups of `size` arrivals at the same instant, the groups at equal
    /// gaps of `size / rate`: the same mean rate, delivered as spikes.
    Burst { size: usize },
}

impl std::fmt::Display for Arrival {
    /// As `--arrival` takes it (gamma with its `--burstiness`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arrival::Poisson => f.write_str("poisson"),
            Arrival::Constant => f.write_str("constant"),
            Arrival::Gamma { burstiness } => write!(f, "gamma, burstiness {burstiness}"),
            Arrival::Burst { size } => write!(f, "burst:{size}"),
        }
    }
}

/// A target rate of arrivals per second, or all at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    Infinite,
}

impl Rate {
    pub fn value(self) -> f64 {
        match self {
            Rate::PerSecond(r) => r,
            Rate::Infinite => f64::INFINITY,
        }
    }
}

/// Gaps in milliseconds between arrivals, one per call.
pub struct Gaps<'r, R: Rng> {
    arrival: Arrival,
    mean_ms: f64,
    rng: &'r mut R,
    exp: Option<Exp<f64>>,
    gamma: Option<Gamma<f64>>,
    /// Arrivals handed out so far (for bursts).
    handed: usize,
}

impl<'r, R: Rng> Gaps<'r, R> {
    pub fn new(arrival: Arrival, rate: Rate, rng: &'r mut R) -> Self {
        let mean_ms = match rate {
            Rate::PerSecond(r) if r > 0.0 && r.is_finite() => 1000.0 / r,
            _ => 0.0,
        };
        let exp = (mean_ms > 0.0)
            .then(|| Exp::new(1.0 / mean_ms).ok())
            .flatten();
        let gamma = match arrival {
            Arrival::Gamma { burstiness } if mean_ms > 0.0 && burstiness > 0.0 => {
                Gamma::new(burstiness, mean_ms / burstiness).ok()
            }
            _ => None,
        };
        Gaps {
            arrival,
            mean_ms,
            rng,
            exp,
            gamma,
            handed: 0,
        }
    }

    pub fn next_gap(&mut self) -> f64 {
        if self.mean_ms <= 0.0 {
            return 0.0;
        }
        self.handed += 1;
        match self.arrival {
            Arrival::Constant => self.mean_ms,
            // The gap after the last arrival of a group spans the group.
            Arrival::Burst { size } => {
                let size = size.max(1);
                if self.handed.is_multiple_of(size) {
                    self.mean_ms * size as f64
                } else {
                    0.0
                }
            }
            Arrival::Poisson => self.exp.map_or(self.mean_ms, |d| d.sample(self.rng)),
            Arrival::Gamma { .. } => self.gamma.map_or(self.mean_ms, |d| d.sample(self.rng)),
        }
    }
}

/// Offsets (ms) of `count` arrivals; the first is at 0.
pub fn offsets_for_count<R: Rng>(
    arrival: Arrival,
    rate: Rate,
    count: usize,
    rng: &mut R,
) -> Vec<f64> {
    let mut gaps = Gaps::new(arrival, rate, rng);
    let mut t = 0.0;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 {
            t += gaps.next_gap();
        }
        out.push(t);
    }
    out
}

/// Offsets (ms) of the arrivals that fall before `duration_ms`; the first is at 0.
/// With an infinite rate, `max_count` arrivals at 0.
pub fn offsets_for_duration<R: Rng>(
    arrival: Arrival,
    rate: Rate,
    duration_ms: f64,
    max_count: usize,
    rng: &mut R,
) -> Vec<f64> {
    if rate == Rate::Infinite {
        return vec![0.0; max_count];
    }
    let mut gaps = Gaps::new(arrival, rate, rng);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t < duration_ms && out.len() < max_count {
        out.push(t);
        t += gaps.next_gap();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Kolmogorov–Smirnov statistic of a sample against a CDF.
    fn ks(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
        xs.sort_by(|a, b| a.total_cmp(b));
        let n = xs.len() as f64;
        xs.iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max)
    }

    /// Critical value of the KS test at significance 0.001.
    fn critical(n: usize) -> f64 {
        1.95 / (n as f64).sqrt()
    }

    /// Regularised lower incomplete gamma P(a, x), for the gamma CDF.
    fn gamma_p(a: f64, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let ln_gamma_a = ln_gamma(a);
        if x < a + 1.0 {
            let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
            for _ in 0..1000 {
                ap += 1.0;
                term *= x / ap;
                sum += term;
                if term.abs() < sum.abs() * 1e-15 {
                    break;
                }
            }
            sum * (-x + a * x.ln() - ln_gamma_a).exp()
        } else {
            // Continued fraction for Q(a, x) (Lentz).
            let tiny = 1e-300;
            let mut b = x + 1.0 - a;
            let mut c = 1.0 / tiny;
            let mut d = 1.0 / b;
            let mut h = d;
            for i in 1..1000 {
                let an = -(i as f64) * (i as f64 - a);
                b += 2.0;
                d = an * d + b;
                if d.abs() < tiny {
                    d = tiny;
                }
                c = b + an / c;
                if c.abs() < tiny {
                    c = tiny;
                }
                d = 1.0 / d;
                let delta = d * c;
                h *= delta;
                if (delta - 1.0).abs() < 1e-15 {
                    break;
                }
            }
            1.0 - (-x + a * x.ln() - ln_gamma_a).exp() * h
        }
    }

    /// Lanczos approximation of ln Γ(x).
    fn ln_gamma(x: f64) -> f64 {
        const G: [f64; 6] = [
            76.18009172947146,
            -86.50532032941677,
            24.01409824083091,
            -1.231739572450155,
            0.1208650973866179e-2,
            -0.5395239384953e-5,
        ];
        let mut y = x;
        let tmp = x + 5.5;
        let tmp = tmp - (x + 0.5) * tmp.ln();
        let mut ser = 1.000000000190015;
        for g in G {
            y += 1.0;
            ser += g / y;
        }
        -tmp + (2.5066282746310005 * ser / x).ln()
    }

    fn gaps(arrival: Arrival, rate: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let o = offsets_for_count(arrival, Rate::PerSecond(rate), n + 1, &mut rng);
        o.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[test]
    fn poisson_gaps_pass_ks_against_the_exponential() {
        let rate = 20.0;
        let g = gaps(Arrival::Poisson, rate, 20_000, 1);
        let mean_ms = 1000.0 / rate;
        let d = ks(g, |x| 1.0 - (-x / mean_ms).exp());
        assert!(d < critical(20_000), "KS D = {d}");
    }

    #[test]
    fn gamma_gaps_pass_ks_for_several_burstiness_values() {
        for (k, seed) in [(0.5, 2), (1.0, 3), (2.0, 4), (4.0, 5)] {
            let rate = 8.0;
            let g = gaps(Arrival::Gamma { burstiness: k }, rate, 20_000, seed);
            let theta = 1000.0 / rate / k;
            let d = ks(g, |x| gamma_p(k, x / theta));
            assert!(d < critical(20_000), "burstiness {k}: KS D = {d}");
        }
    }

    #[test]
    fn ks_rejects_the_wrong_distribution() {
        // The test must be able to fail: constant gaps are not exponential.
        let rate = 20.0;
        let g = gaps(Arrival::Constant, rate, 20_000, 1);
        let mean_ms = 1000.0 / rate;
        let d = ks(g, |x| 1.0 - (-x / mean_ms).exp());
        assert!(d > critical(20_000));
        // And gamma(0.5) gaps are not exponential either.
        let g = gaps(Arrival::Gamma { burstiness: 0.5 }, rate, 20_000, 1);
        let d = ks(g, |x| 1.0 - (-x / mean_ms).exp());
        assert!(d > critical(20_000));
    }

    #[test]
    fn gamma_cdf_matches_closed_forms() {
        // k = 1 is the exponential; k = 2 has 1 - e^-x (1 + x).
        for x in [0.1, 0.5, 1.0, 2.0, 5.0] {
            assert!((gamma_p(1.0, x) - (1.0 - (-x).exp())).abs() < 1e-9);
            assert!((gamma_p(2.0, x) - (1.0 - (-x).exp() * (1.0 + x))).abs() < 1e-9);
        }
    }

    #[test]
    fn constant_and_duration_and_infinite() {
        let mut rng = StdRng::seed_from_u64(0);
        let o = offsets_for_count(Arrival::Constant, Rate::PerSecond(4.0), 5, &mut rng);
        assert_eq!(o, vec![0.0, 250.0, 500.0, 750.0, 1000.0]);
        let o = offsets_for_duration(
            Arrival::Constant,
            Rate::PerSecond(10.0),
            1000.0,
            1000,
            &mut rng,
        );
        assert_eq!(o.len(), 10);
        let o = offsets_for_duration(Arrival::Poisson, Rate::Infinite, 1000.0, 7, &mut rng);
        assert_eq!(o, vec![0.0; 7]);
        // Same seed, same schedule.
        let a = offsets_for_count(
            Arrival::Poisson,
            Rate::PerSecond(3.0),
            100,
            &mut StdRng::seed_from_u64(9),
        );
        let b = offsets_for_count(
            Arrival::Poisson,
            Rate::PerSecond(3.0),
            100,
            &mut StdRng::seed_from_u64(9),
        );
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn bursts_come_in_groups_at_the_mean_rate() {
        let mut rng = StdRng::seed_from_u64(0);
        let burst = Arrival::Burst { size: 3 };
        // 6/s in groups of 3: a group every 500 ms.
        let o = offsets_for_count(burst, Rate::PerSecond(6.0), 8, &mut rng);
        assert_eq!(o, vec![0.0, 0.0, 0.0, 500.0, 500.0, 500.0, 1000.0, 1000.0]);
        // Over 2 s: 4 groups (0, 500, 1000, 1500 ms), 12 arrivals = 6/s.
        let o = offsets_for_duration(burst, Rate::PerSecond(6.0), 2000.0, 1000, &mut rng);
        assert_eq!(o.len(), 12);
        assert_eq!(o[11], 1500.0);
        // A group is cut by the count cap, not the other way round.
        let o = offsets_for_duration(burst, Rate::PerSecond(6.0), 2000.0, 4, &mut rng);
        assert_eq!(o, vec![0.0, 0.0, 0.0, 500.0]);
        assert_eq!(burst.to_string(), "burst:3");
        assert_eq!(
            Arrival::Gamma { burstiness: 0.5 }.to_string(),
            "gamma, burstiness 0.5"
        );
        // Groups of one are constant arrivals.
        let one = offsets_for_count(
            Arrival::Burst { size: 1 },
            Rate::PerSecond(4.0),
            4,
            &mut rng,
        );
        assert_eq!(one, vec![0.0, 250.0, 500.0, 750.0]);
    }
}
