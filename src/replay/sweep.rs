//! `--sweep N`: load levels chosen from what the server does rather than
//! guessed. Two probe levels run first: concurrency 1 (one session at a
//! time, the lightest load there is) and `--qps inf` (every session at
//! once, the most the server completes). Then N - 2 open-loop levels run at
//! rates spread evenly between the session rates the two probes sustained,
//! so the curve from idle to saturation is covered whatever the server.

use analysis::model::round_sig;

use super::config::{LoadMode, RunConfig};
use super::schedule::{Arrival, Rate};
use super::summary::fmt_value;

/// Fewest levels a sweep has: the two probes and one rate between them.
pub const MIN_LEVELS: usize = 3;

/// What the probes measured and the rates chosen from it (for `run.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Probed {
    /// Sessions per second at concurrency 1.
    pub sync_rate: f64,
    /// Sessions per second with every session sent at once.
    pub max_rate: f64,
    /// The open-loop rates chosen between them, rising.
    pub rates: Vec<f64>,
}

/// Requests in flight at most in the all-at-once probe without
/// `--max-concurrency`: every session of a large trace at once would open
/// as many connections (thousands) and measure the client's limits, not
/// the server's; 256 is more than a single server batches at a time.
pub const PROBE_MAX_CONCURRENCY: usize = 256;

/// The two probe levels every sweep starts with.
pub fn probes(arrival: Arrival, max_concurrency: Option<usize>) -> Vec<LoadMode> {
    vec![
        LoadMode::Concurrency(1),
        LoadMode::Qps {
            rate: Rate::Infinite,
            arrival,
            max_concurrency: Some(max_concurrency.unwrap_or(PROBE_MAX_CONCURRENCY)),
        },
    ]
}

/// The session rate a probe sustained: its successful requests per second
/// of level time, divided by the trace's mean turns per session (so that
/// the rate is in `--qps`'s unit, sessions started per second). `None`
/// when nothing succeeded.
pub fn probe_rate(ok_requests: u64, seconds: f64, turns_per_session: f64) -> Option<f64> {
    let rate = ok_requests as f64 / seconds / turns_per_session.max(1.0);
    (ok_requests > 0 && rate.is_finite() && rate > 0.0).then_some(rate)
}

/// `n - 2` rates evenly spaced strictly between the two probe rates (in
/// either order), rounded to three significant digits; rising, without
/// repeats (fewer than `n - 2` when the probes are too close for that).
pub fn rates_between(a: f64, b: f64, n: usize) -> Vec<f64> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let steps = n.saturating_sub(1).max(1) as f64;
    let mut rates: Vec<f64> = (1..n.saturating_sub(1))
        .map(|i| round_sig(lo + (hi - lo) * i as f64 / steps, 3))
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    rates.dedup();
    rates
}

/// After a probe level of a `--sweep` run: its session rate (`None` when
/// it completed nothing) joins `probe_rates`; once both probes have run,
/// the chosen rates' levels are appended to `cfg.levels` and recorded in
/// `cfg.probed`. `Err` says why the sweep stops.
pub fn after_probe(
    cfg: &mut RunConfig,
    probe_rates: &mut Vec<f64>,
    probe: &LoadMode,
    rate: Option<f64>,
) -> Result<(), String> {
    let Some(n) = cfg.sweep else {
        return Ok(());
    };
    let Some(rate) = rate else {
        return Err(format!(
            "the sweep stops: its {} {} probe completed no request",
            probe.name(),
            fmt_value(probe.value())
        ));
    };
    probe_rates.push(rate);
    let [sync_rate, max_rate] = probe_rates[..] else {
        return Ok(());
    };
    let rates = rates_between(sync_rate, max_rate, n);
    let shown = |r: f64| fmt_value(round_sig(r, 3));
    if !cfg.quiet {
        let next: Vec<String> = rates.iter().map(|r| fmt_value(*r)).collect();
        eprintln!(
            "sweep: {} sessions/s one at a time, {} all at once; next --qps {}",
            shown(sync_rate),
            shown(max_rate),
            next.join(",")
        );
    }
    if max_rate < sync_rate * 1.1 {
        eprintln!(
            "warning: the server completed about as many sessions at full load as one at a time \
             ({} against {} per second): the sweep's rates lie close together",
            shown(max_rate),
            shown(sync_rate)
        );
    }
    if let Some(LoadMode::Qps { arrival, .. }) = cfg.levels.get(1) {
        let more = levels(&rates, *arrival, cfg.max_concurrency);
        cfg.levels.extend(more);
    }
    cfg.probed = Some(Probed {
        sync_rate,
        max_rate,
        rates,
    });
    Ok(())
}

/// The levels that follow the probes.
pub fn levels(rates: &[f64], arrival: Arrival, max_concurrency: Option<usize>) -> Vec<LoadMode> {
    rates
        .iter()
        .map(|&r| LoadMode::Qps {
            rate: Rate::PerSecond(r),
            arrival,
            max_concurrency,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_spread_evenly_between_the_probes() {
        assert_eq!(rates_between(1.0, 9.0, 6), vec![2.6, 4.2, 5.8, 7.4]);
        // The order of the probes does not matter.
        assert_eq!(rates_between(9.0, 1.0, 6), vec![2.6, 4.2, 5.8, 7.4]);
        assert_eq!(rates_between(2.0, 4.0, 3), vec![3.0]);
        // Three significant digits.
        assert_eq!(rates_between(0.1234, 12.34, 3), vec![6.23]);
        assert_eq!(rates_between(1234.0, 5678.0, 3), vec![3460.0]);
    }

    #[test]
    fn probes_too_close_give_fewer_levels() {
        assert_eq!(rates_between(5.0, 5.0, 6), vec![5.0]);
        assert_eq!(rates_between(5.0, 5.001, 4), vec![5.0]);
    }

    #[test]
    fn probe_rates_are_in_sessions_per_second() {
        assert_eq!(probe_rate(100, 10.0, 1.0), Some(10.0));
        assert_eq!(probe_rate(100, 10.0, 4.0), Some(2.5));
        // Turns below one (an empty trace) count as one.
        assert_eq!(probe_rate(100, 10.0, 0.0), Some(10.0));
        assert_eq!(probe_rate(0, 10.0, 1.0), None);
        assert_eq!(probe_rate(5, 0.0, 1.0), None);
    }
}
