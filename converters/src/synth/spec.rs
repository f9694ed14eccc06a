//! Parsing and sampling the generators' length and time options.

use rand::Rng;

use crate::{Error, Result};

/// An inclusive range of token counts (or turns) to draw from uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub fn fixed(n: u32) -> Self {
        Span { lo: n, hi: n }
    }

    /// `len` spread by `ratio` as `vllm bench` does: uniform integers in
    /// `[floor(len * (1 - ratio)), floor(len * (1 + ratio))]`.
    pub fn around(len: u32, ratio: f64) -> Result<Self> {
        let lo = (f64::from(len) * (1.0 - ratio)).floor();
        let hi = (f64::from(len) * (1.0 + ratio)).floor();
        if hi > f64::from(u32::MAX) {
            return Err(Error::Usage(format!(
                "a length of {len} spread by --range-ratio {ratio} does not fit in 32 bits"
            )));
        }
        Ok(Span {
            lo: lo as u32,
            hi: hi as u32,
        })
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u32 {
        if self.lo >= self.hi {
            self.lo
        } else {
            rng.random_range(self.lo..=self.hi)
        }
    }
}

/// Checks `--range-ratio`: in `[0, 1)`.
pub fn check_ratio(ratio: f64) -> Result<()> {
    if (0.0..1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--range-ratio must be in [0, 1), got {ratio}"
        )))
    }
}

/// `N` (spread by `ratio`) or `MIN:MAX` (taken as is) for option `flag`.
pub fn parse_span(flag: &str, text: &str, ratio: f64) -> Result<Span> {
    let number = |s: &str| -> Result<u32> {
        s.trim().parse::<u32>().map_err(|_| {
            Error::Usage(format!(
                "{flag}: expected N or MIN:MAX with whole numbers, got {text:?}"
            ))
        })
    };
    match text.split_once(':') {
        None => Span::around(number(text)?, ratio),
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(Error::Usage(format!(
                    "{flag}: MIN is larger than MAX in {text:?}"
                )));
            }
            Ok(Span { lo, hi })
        }
    }
}

/// An inclusive range of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MsSpan {
    pub lo: f64,
    pub hi: f64,
}

impl MsSpan {
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        if self.lo >= self.hi {
            self.lo
        } else {
            rng.random_range(self.lo..=self.hi)
        }
    }
}

/// `MS` or `MIN:MAX` milliseconds (non-negative, finite) for option `flag`.
pub fn parse_ms_span(flag: &str, text: &str) -> Result<MsSpan> {
    let number = |s: &str| -> Result<f64> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(Error::Usage(format!(
                "{flag}: expected MS or MIN:MAX with non-negative numbers, got {text:?}"
            ))),
        }
    };
    let (lo, hi) = match text.split_once(':') {
        None => {
            let v = number(text)?;
            (v, v)
        }
        Some((lo, hi)) => (number(lo)?, number(hi)?),
    };
    if lo > hi {
        return Err(Error::Usage(format!(
            "{flag}: MIN is larger than MAX in {text:?}"
        )));
    }
    Ok(MsSpan { lo, hi })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn spans_parse() {
        assert_eq!(parse_span("--x", "100", 0.0).expect("ok"), Span::fixed(100));
        assert_eq!(
            parse_span("--x", "100", 0.5).expect("ok"),
            Span { lo: 50, hi: 150 }
        );
        assert_eq!(
            parse_span("--x", " 3:7", 0.9).expect("ok"),
            Span { lo: 3, hi: 7 }
        );
        for bad in ["", "x", "-1", "7:3", "1:", "1.5"] {
            let e = parse_span("--turn-input-tokens", bad, 0.0).expect_err(bad);
            assert!(e.to_string().contains("--turn-input-tokens"), "{e}");
        }
    }

    #[test]
    fn ratio_bounds() {
        assert!(check_ratio(0.0).is_ok());
        assert!(check_ratio(0.99).is_ok());
        for bad in [1.0, -0.1, f64::NAN] {
            assert!(check_ratio(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn samples_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let s = Span { lo: 10, hi: 12 };
        let mut seen = [false; 3];
        for _ in 0..200 {
            let v = s.sample(&mut rng);
            assert!((10..=12).contains(&v));
            seen[(v - 10) as usize] = true;
        }
        assert!(seen.iter().all(|&b| b));
    }

    #[test]
    fn ms_spans_parse() {
        assert_eq!(
            parse_ms_span("--think-ms", "250").expect("ok"),
            MsSpan {
                lo: 250.0,
                hi: 250.0
            }
        );
        assert_eq!(
            parse_ms_span("--think-ms", "0.5:2000").expect("ok"),
            MsSpan {
                lo: 0.5,
                hi: 2000.0
            }
        );
        for bad in ["-1", "a", "5:1", "inf", "1:NaN"] {
            assert!(parse_ms_span("--think-ms", bad).is_err(), "{bad}");
        }
    }
}
