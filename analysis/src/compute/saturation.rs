//! Where the server saturates: per run and load mode, over round 1's
//! levels in rising order, which levels passed, the highest that did, and
//! a recommended operating point below it.
//!
//! A level passes when
//! - with an SLO: at least `min_success_pct` % of its requests were ok and
//!   met the SLO;
//! - without: at least `min_success_pct` % were ok, and its TTFT p99 and
//!   E2E p50 stayed within `latency_factor` × the lowest level's;
//! - and, open loop, it achieved its target rate (within 10 % or three
//!   standard errors of the arrival count, whichever is wider), the
//!   client kept its schedule, and the server kept up with the arrivals
//!   (their TTFT did not rise through the level: `notes::fell_behind`).

use crate::model::{LevelStats, LevelVerdict, Saturation, Slo, fmt_value};

use super::Options;
use super::stats::rate_short_of_target;

/// `skip`: `(run_id, load_mode)` groups left out (a sweep's probe).
pub fn assess(
    levels: &[LevelStats],
    slo: &Slo,
    opts: &Options,
    skip: &[(String, String)],
) -> Vec<Saturation> {
    let mut groups: Vec<(String, String)> = Vec::new();
    for l in levels {
        let g = (l.key.run_id.clone(), l.key.load_mode.clone());
        if l.key.round == 1 && !groups.contains(&g) && !skip.contains(&g) {
            groups.push(g);
        }
    }
    groups
        .into_iter()
        .filter_map(|(run, mode)| {
            let mut ls: Vec<&LevelStats> = levels
                .iter()
                .filter(|l| l.key.run_id == run && l.key.load_mode == mode && l.key.round == 1)
                .filter(|l| l.requests > 0)
                .collect();
            ls.sort_by(|a, b| a.key.load_value.total_cmp(&b.key.load_value));
            (!ls.is_empty()).then(|| assess_group(&run, &mode, &ls, slo, opts))
        })
        .collect()
}

fn verdict(l: &LevelStats, base: &LevelStats, slo: &Slo, opts: &Options) -> LevelVerdict {
    let mut reasons = Vec::new();
    if slo.is_set() {
        let a = l.slo_attainment_pct.unwrap_or(0.0);
        if a < opts.min_success_pct {
            reasons.push(format!(
                "SLO met by {a:.1}% < {}%",
                fmt_value(opts.min_success_pct)
            ));
        }
    } else {
        if l.success_pct < opts.min_success_pct {
            reasons.push(format!(
                "{:.1}% ok < {}%",
                l.success_pct,
                fmt_value(opts.min_success_pct)
            ));
        }
        let checks = [
            ("TTFT p99", l.ttft_ms.p99, base.ttft_ms.p99),
            ("E2E p50", l.e2e_ms.p50, base.e2e_ms.p50),
        ];
        for (name, v, b) in checks {
            if let (Some(v), Some(b)) = (v, b)
                && b > 0.0
                && v > opts.latency_factor * b
            {
                reasons.push(format!(
                    "{name} {v:.1} ms > {}× the lowest level's {b:.1} ms",
                    fmt_value(opts.latency_factor)
                ));
            }
        }
        if l.ok == 0 {
            reasons.push("no request succeeded".into());
        }
    }
    // Arrivals are random: only a shortfall beyond their spread counts.
    if let Some(t) = l.target_rate
        && rate_short_of_target(l.achieved_rate, Some(t), l.arrivals)
    {
        reasons.push(format!(
            "achieved {:.2} of {} req/s",
            l.achieved_rate,
            fmt_value(t)
        ));
    }
    if l.client_behind {
        reasons.push("the client fell behind its schedule (lateness)".into());
    }
    if let Some(r) = l.ttft_rise_ms.filter(|_| l.fell_behind) {
        reasons.push(crate::notes::fell_behind_reason(r));
    }
    LevelVerdict {
        load_value: l.key.load_value,
        passed: reasons.is_empty(),
        reasons,
    }
}

fn assess_group(
    run: &str,
    mode: &str,
    ls: &[&LevelStats],
    slo: &Slo,
    opts: &Options,
) -> Saturation {
    let base = ls[0];
    let verdicts: Vec<LevelVerdict> = ls.iter().map(|l| verdict(l, base, slo, opts)).collect();
    let highest = ls
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.passed)
        .map(|(l, _)| *l)
        .next_back();
    let first_failing = ls
        .iter()
        .zip(&verdicts)
        .find(|(l, v)| !v.passed && highest.is_none_or(|h| l.key.load_value > h.key.load_value))
        .map(|(l, v)| (*l, v));
    let criterion = if slo.is_set() {
        "slo"
    } else {
        "success-and-latency"
    };
    let keep = 1.0 - opts.headroom_pct / 100.0;
    // Open loop: recommend a request rate; closed loop: a concurrency.
    let operating = |l: &LevelStats| match mode {
        "qps" | "trace" => l.achieved_rate,
        _ => l.key.load_value,
    };
    let unit = match mode {
        "qps" | "trace" => "req/s",
        "concurrency" => "in flight",
        _ => "users",
    };
    let recommended = highest.map(|h| {
        let v = operating(h) * keep;
        if mode == "concurrency" || mode == "users" {
            v.floor().max(1.0)
        } else {
            v
        }
    });
    // What the headroom is taken below: a trace level's value is a time
    // scale, not a rate.
    let headroom_of = |l: &LevelStats| {
        if mode == "trace" {
            format!(
                "the {:.2} req/s of time scale {}",
                l.achieved_rate,
                fmt_value(l.key.load_value)
            )
        } else {
            fmt_value(l.key.load_value)
        }
    };
    let evidence = |l: &LevelStats| {
        let mut e = format!("{:.1}% ok", l.success_pct);
        if let Some(a) = l.slo_attainment_pct {
            e.push_str(&format!(", SLO met by {a:.1}%"));
        }
        if let Some(p) = l.ttft_ms.p99 {
            e.push_str(&format!(", TTFT p99 {p:.1} ms"));
        }
        if let Some(p) = l.e2e_ms.p50 {
            e.push_str(&format!(", E2E p50 {p:.1} ms"));
        }
        e.push_str(&format!(", {:.2} req/s", l.achieved_rate));
        e
    };
    let statement = match (highest, first_failing) {
        (None, _) => format!(
            "{run} {mode}: even the lowest level ({}) failed: {}",
            fmt_value(base.key.load_value),
            verdicts[0].reasons.join("; ")
        ),
        (Some(h), None) => format!(
            "{run} {mode}: no saturation within the tested levels; the highest, {}, passed ({}). Recommended: {} {unit} ({}); test higher levels to find the limit",
            fmt_value(h.key.load_value),
            evidence(h),
            fmt_rec(recommended),
            headroom_phrase(recommended, operating(h), opts.headroom_pct, headroom_of(h))
        ),
        (Some(h), Some((f, v))) => format!(
            "{run} {mode}: saturates between {} and {}: {} passed ({}); {} failed ({}). Recommended: {} {unit} ({})",
            fmt_value(h.key.load_value),
            fmt_value(f.key.load_value),
            fmt_value(h.key.load_value),
            evidence(h),
            fmt_value(f.key.load_value),
            v.reasons.join("; "),
            fmt_rec(recommended),
            headroom_phrase(recommended, operating(h), opts.headroom_pct, headroom_of(h))
        ),
    };
    Saturation {
        run_id: run.to_string(),
        load_mode: mode.to_string(),
        criterion: criterion.to_string(),
        highest_passing: highest.map(|h| h.key.load_value),
        first_failing: first_failing.map(|(f, _)| f.key.load_value),
        recommended,
        headroom_pct: opts.headroom_pct,
        statement,
        levels: verdicts,
    }
}

/// What the recommendation leaves below the highest passing level, whose
/// operating value is `top` (its achieved rate, or its concurrency or
/// users, named `level`). A closed-loop recommendation is rounded down to
/// a whole number, which leaves more room than asked, or none when the
/// level is 1.
fn headroom_phrase(recommended: Option<f64>, top: f64, asked_pct: f64, level: String) -> String {
    let asked = fmt_value(asked_pct);
    match recommended {
        Some(r) if r >= top && asked_pct > 0.0 => {
            format!("no headroom: {asked}% below {level} is under 1")
        }
        Some(r) if r.fract() == 0.0 && top > 0.0 && top.fract() == 0.0 => {
            let got = (1.0 - r / top) * 100.0;
            if (got - asked_pct).abs() < 0.05 {
                format!("{asked}% headroom below {level}")
            } else {
                format!(
                    "{}% below {level}: {asked}% headroom, rounded down",
                    fmt_value((got * 10.0).round() / 10.0)
                )
            }
        }
        _ => format!("{asked}% headroom below {level}"),
    }
}

fn fmt_rec(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| {
        if x.fract() == 0.0 {
            fmt_value(x)
        } else {
            format!("{x:.2}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dist, LevelKey};

    fn level(value: f64, success: f64, ttft_p99: f64, achieved: f64) -> LevelStats {
        LevelStats {
            key: LevelKey {
                run_id: "r".into(),
                load_mode: "qps".into(),
                load_value: value,
                round: 1,
            },
            requests: 1000,
            ok: (success * 10.0) as u64,
            warmup_requests: 0,
            errors: Default::default(),
            errors_detail: Default::default(),
            finish_reasons: Default::default(),
            success_pct: success,
            duration_s: 1000.0 / value,
            first_scheduled_ms: 0.0,
            last_end_ms: 0.0,
            target_rate: Some(value),
            arrivals: 1000,
            achieved_rate: achieved,
            request_rate: value,
            input_tokens_per_s: 0.0,
            output_tokens_per_s: 0.0,
            ttft_ms: Dist {
                p99: Some(ttft_p99),
                ..Dist::default()
            },
            tpot_ms: Dist::default(),
            itl_ms: Dist::default(),
            e2e_ms: Dist {
                p50: Some(100.0),
                ..Dist::default()
            },
            lateness_p50_ms: None,
            lateness_p99_ms: None,
            arrival_lateness_p99_ms: None,
            client_behind: false,
            cached_token_ratio: None,
            goodput: None,
            slo_attainment_pct: None,
            stopped_short: 0,
            tokens_counted: 0,
            tokens_tokenized: 0,
            tokens_unknown: 0,
            output_fill_pct: None,
            tokens_per_chunk: None,
            ttft_rise_ms: None,
            fell_behind: false,
            server: None,
            server_by_endpoint: Default::default(),
        }
    }

    #[test]
    fn latency_growth_marks_the_saturation_point() {
        let levels = vec![
            level(1.0, 100.0, 100.0, 1.0),
            level(2.0, 100.0, 150.0, 2.0),
            level(4.0, 100.0, 450.0, 4.0),
        ];
        let s = assess(&levels, &Slo::default(), &Options::default(), &[]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].highest_passing, Some(2.0));
        assert_eq!(s[0].first_failing, Some(4.0));
        assert!((s[0].recommended.expect("rec") - 1.6).abs() < 1e-9);
        assert!(
            s[0].statement.contains("saturates between 2 and 4"),
            "{}",
            s[0].statement
        );
        assert!(s[0].levels[2].reasons[0].contains("TTFT p99"));
    }

    #[test]
    fn slo_attainment_decides_when_an_slo_is_set() {
        let mut a = level(1.0, 100.0, 100.0, 1.0);
        let mut b = level(2.0, 100.0, 100.0, 2.0);
        a.slo_attainment_pct = Some(99.5);
        b.slo_attainment_pct = Some(90.0);
        let slo = Slo {
            ttft_ms: Some(200.0),
            ..Slo::default()
        };
        let s = assess(&[a, b], &slo, &Options::default(), &[]);
        assert_eq!(s[0].criterion, "slo");
        assert_eq!(s[0].highest_passing, Some(1.0));
        assert!(s[0].levels[1].reasons[0].contains("SLO met by 90.0%"));
    }

    #[test]
    fn a_shortfall_in_rate_fails_but_sampling_noise_does_not() {
        let mut few = level(10.0, 100.0, 100.0, 8.0);
        few.arrivals = 20; // 3/sqrt(20) = 67 %: 8 of 10 is noise
        let many = level(20.0, 100.0, 100.0, 15.0); // 1000 arrivals: 25 % short is real
        let s = assess(&[few, many], &Slo::default(), &Options::default(), &[]);
        assert!(s[0].levels[0].passed, "{:?}", s[0].levels[0]);
        assert!(!s[0].levels[1].passed);
        assert!(s[0].levels[1].reasons[0].contains("achieved 15.00 of 20"));
    }

    #[test]
    fn all_passing_and_all_failing_are_said_plainly() {
        let ok = vec![level(1.0, 100.0, 100.0, 1.0), level(2.0, 100.0, 110.0, 2.0)];
        let s = assess(&ok, &Slo::default(), &Options::default(), &[]);
        assert!(
            s[0].statement
                .contains("no saturation within the tested levels")
        );
        let bad = vec![level(1.0, 50.0, 100.0, 1.0)];
        let s = assess(&bad, &Slo::default(), &Options::default(), &[]);
        assert_eq!(s[0].highest_passing, None);
        assert!(s[0].statement.contains("even the lowest level"));
    }

    #[test]
    fn a_rounded_concurrency_states_the_headroom_it_leaves() {
        let conc = |v: f64, ttft: f64| {
            let mut l = level(v, 100.0, ttft, v / 10.0);
            l.key.load_mode = "concurrency".into();
            l.target_rate = None;
            l
        };
        let rec = |levels: Vec<LevelStats>| {
            let s = assess(&levels, &Slo::default(), &Options::default(), &[]);
            (s[0].recommended, s[0].statement.clone())
        };
        let (r, st) = rec(vec![conc(1.0, 100.0), conc(4.0, 900.0)]);
        assert_eq!(r, Some(1.0));
        assert!(
            st.ends_with("Recommended: 1 in flight (no headroom: 20% below 1 is under 1)"),
            "{st}"
        );
        let (r, st) = rec(vec![conc(1.0, 100.0), conc(4.0, 110.0), conc(8.0, 900.0)]);
        assert_eq!(r, Some(3.0));
        assert!(
            st.ends_with("Recommended: 3 in flight (25% below 4: 20% headroom, rounded down)"),
            "{st}"
        );
        let (r, st) = rec(vec![conc(1.0, 100.0), conc(5.0, 110.0)]);
        assert_eq!(r, Some(4.0));
        assert!(
            st.contains("Recommended: 4 in flight (20% headroom below 5)"),
            "{st}"
        );
    }
}
