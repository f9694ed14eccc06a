//! How busy the replayer itself was during a level.
//!
//! The replayer times requests on the machine it runs on. When its own
//! threads (sending, reading streams, writing Parquet) keep the cores busy,
//! a chunk that has arrived waits for a thread before it is timestamped,
//! and that wait lands in the TTFT and ITL of the server. The process's CPU
//! time over a level, against the level's wall time and the cores, says
//! when that may have happened.

/// The machine's CPU time counters: busy and total ticks over all cores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineTicks {
    busy: u64,
    total: u64,
}

impl MachineTicks {
    /// Now, from `/proc/stat`; `None` where it is not there.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        parse_machine(&stat)
    }

    /// % of the machine's CPU time that was busy from `self` to `later`.
    pub fn busy_pct_until(&self, later: &MachineTicks) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        (total > 0).then(|| 100.0 * busy as f64 / total as f64)
    }
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal (guest time is already in user); idle and iowait are not busy.
fn parse_machine(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some(MachineTicks {
        busy: total - v[3] - v[4],
        total,
    })
}

/// User + system CPU seconds this process has used so far (all its
/// threads, finished ones included); `None` where `/proc` is not there.
pub fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted
/// from the last `)`. Linux reports them in USER_HZ ticks, 100 a second.
fn parse_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The cores this process may run on.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// The replayer's CPU use over a level, % of all the machine's cores.
pub fn share_pct(cpu_s: f64, wall_s: f64) -> Option<f64> {
    (wall_s > 0.0).then(|| 100.0 * cpu_s / (wall_s * cores()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_names_with_spaces() {
        let line =
            "4242 (trace (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 37 0 0 20 0 9 0 100 0";
        assert_eq!(parse_stat(line), Some(2.87));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (a) S 1"), None);
    }

    #[test]
    fn machine_ticks_leave_idle_and_iowait_out() {
        let a =
            parse_machine("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n").expect("a cpu line");
        let b = parse_machine("cpu  160 0 70 900 70 0 0 0 0 0\n").expect("a cpu line");
        // 80 busy ticks of 200.
        assert_eq!(a.busy_pct_until(&b), Some(40.0));
        assert_eq!(b.busy_pct_until(&a), None);
        assert_eq!(parse_machine("intr 1 2 3"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time_that_grows() {
        let Some(before) = process_cpu_s() else {
            return; // not Linux
        };
        // Spin until the counter moves (however loaded the machine is),
        // giving up after 20 s of wall time.
        let start = std::time::Instant::now();
        let mut after = before;
        let mut x = 0u64;
        while after < before + 0.05 && start.elapsed().as_secs() < 20 {
            for _ in 0..1_000_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            after = process_cpu_s().expect("read again");
        }
        std::hint::black_box(x);
        assert!(after >= before + 0.05, "{before} -> {after}");
    }
}
