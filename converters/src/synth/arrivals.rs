//! When synthetic users start their sessions.

use rand::Rng;
use rand_distr::{Distribution, Exp};

use crate::{Error, Result};

/// How user sessions are spread over time (`--user-arrival`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Every user starts at 0.
    Burst,
    /// User `k` starts at `k * seconds`.
    Steady { seconds: f64 },
    /// Exponential gaps with `rate` users per second; the first user starts at 0.
    Poisson { rate: f64 },
}

impl Arrival {
    /// Parses `burst`, `steady:SECONDS` or `poisson:RATE`.
    pub fn parse(text: &str) -> Result<Self> {
        let usage = |why: &str| {
            Error::Usage(format!(
                "--user-arrival: {why} in {text:?} (expected burst, steady:SECONDS or poisson:RATE)"
            ))
        };
        let (kind, value) = match text.split_once(':') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (text.trim(), None),
        };
        let number = || -> Result<f64> {
            let v = value.ok_or_else(|| usage("missing number"))?;
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
                _ => Err(usage("not a non-negative number")),
            }
        };
        match kind.to_ascii_lowercase().as_str() {
            "burst" if value.is_none() => Ok(Arrival::Burst),
            "burst" => Err(usage("burst takes no number")),
            "steady" => Ok(Arrival::Steady { seconds: number()? }),
            "poisson" => {
                let rate = number()?;
                if rate <= 0.0 {
                    return Err(usage("the rate must be above 0"));
                }
                Ok(Arrival::Poisson { rate })
            }
            _ => Err(usage("unknown pattern")),
        }
    }

    /// A generator of start times (ms), one per user in order.
    pub fn clock(self) -> Clock {
        Clock {
            arrival: self,
            next_user: 0,
            last_ms: 0.0,
        }
    }
}

/// Start times of successive users.
#[derive(Debug, Clone)]
pub struct Clock {
    arrival: Arrival,
    next_user: u64,
    last_ms: f64,
}

impl Clock {
    /// The next user's start time in milliseconds.
    pub fn next_ms(&mut self, rng: &mut impl Rng) -> f64 {
        let k = self.next_user;
        self.next_user += 1;
        let ms = match self.arrival {
            Arrival::Burst => 0.0,
            Arrival::Steady { seconds } => k as f64 * seconds * 1000.0,
            Arrival::Poisson { rate } if k > 0 => match Exp::new(rate) {
                Ok(exp) => self.last_ms + exp.sample(rng) * 1000.0,
                // `parse` refuses rates where this fails.
                Err(_) => self.last_ms,
            },
            Arrival::Poisson { .. } => 0.0,
        };
        self.last_ms = ms;
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn times(a: Arrival, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut c = a.clock();
        (0..n).map(|_| c.next_ms(&mut rng)).collect()
    }

    #[test]
    fn parses_patterns() {
        assert_eq!(Arrival::parse("burst").expect("ok"), Arrival::Burst);
        assert_eq!(
            Arrival::parse("steady:2.5").expect("ok"),
            Arrival::Steady { seconds: 2.5 }
        );
        assert_eq!(
            Arrival::parse("Poisson:4").expect("ok"),
            Arrival::Poisson { rate: 4.0 }
        );
        for bad in [
            "",
            "burst:3",
            "steady",
            "steady:",
            "steady:-1",
            "poisson:0",
            "poisson:x",
            "uniform:3",
            "poisson:inf",
        ] {
            let e = Arrival::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("--user-arrival"), "{e}");
        }
    }

    #[test]
    fn burst_and_steady() {
        assert_eq!(times(Arrival::Burst, 3, 0), vec![0.0; 3]);
        assert_eq!(
            times(Arrival::Steady { seconds: 1.5 }, 4, 0),
            vec![0.0, 1500.0, 3000.0, 4500.0]
        );
    }

    #[test]
    fn poisson_mean_gap_is_one_over_rate() {
        let rate = 4.0;
        let n = 20_000;
        let t = times(Arrival::Poisson { rate }, n, 7);
        assert_eq!(t[0], 0.0);
        assert!(t.windows(2).all(|w| w[1] >= w[0]));
        let mean_gap_s = t[n - 1] / 1000.0 / (n - 1) as f64;
        assert!(
            (mean_gap_s - 1.0 / rate).abs() < 0.02 * (1.0 / rate),
            "mean gap {mean_gap_s}"
        );
        // Not evenly spaced: the gaps vary like an exponential's.
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let short = gaps.iter().filter(|&&g| g < 250.0).count() as f64 / gaps.len() as f64;
        // P(gap < mean) = 1 - 1/e for an exponential.
        assert!((short - 0.632).abs() < 0.02, "{short}");
        assert_ne!(t, times(Arrival::Poisson { rate }, n, 8));
    }
}
