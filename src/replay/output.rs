//! The run folder: `requests/` parts (written by the recorder),
//! `server_metrics/` parts, `run.json`, `summary.json`, `summary.csv`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::config::{LoadMode, RunConfig, json_number};
use super::runner::LevelTimes;
use super::summary::{self, LevelSummary};

pub struct RunDir {
    pub path: PathBuf,
    pub id: String,
}

/// `YYYY-MM-DDTHH-MM-SS` (UTC) of a system time; with `:` for RFC 3339 when `iso`.
pub fn utc_stamp(t: SystemTime, iso: bool) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if iso {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}-{mi:02}-{s:02}")
    }
}

/// How many sessions and turns (requests) the replayed trace holds.
#[derive(Debug, Clone, Copy)]
pub struct TraceShape {
    pub sessions: usize,
    pub turns: usize,
}

fn default_name(cfg: &RunConfig) -> String {
    if let Some(n) = cfg.sweep {
        return format!("sweep-{n}");
    }
    let mode = cfg.levels.first().map_or("run", |m| m.name());
    let values: Vec<String> = cfg
        .levels
        .iter()
        .map(|m| summary::fmt_value(m.value()))
        .collect();
    format!("{mode}-{}", values.join("-"))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl RunDir {
    pub fn create(cfg: &RunConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.results_dir)
            .with_context(|| format!("cannot create {}", cfg.results_dir.display()))?;
        let stamp = utc_stamp(SystemTime::now(), false);
        let name = sanitize(cfg.name.as_deref().unwrap_or(&default_name(cfg)));
        let mut id = format!("{stamp}_{name}");
        let mut n = 1;
        while cfg.results_dir.join(&id).exists() {
            n += 1;
            id = format!("{stamp}_{name}-{n}");
        }
        let path = cfg.results_dir.join(&id);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunDir { path, id })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn write_outputs(
        &self,
        cfg: &RunConfig,
        models: &[String],
        wall_start: SystemTime,
        level_times: &[(LoadMode, u32, LevelTimes)],
        levels: &[LevelSummary],
        interrupted: bool,
        rows: u64,
        metrics: Option<super::metrics::ScrapeStats>,
        shape: TraceShape,
    ) -> anyhow::Result<()> {
        let levels_json: Vec<_> = level_times
            .iter()
            .map(|(m, round, t)| {
                json!({
                    "load_mode": m.name(), "load_value": json_number(m.value()), "round": round,
                    "start_ms": t.start_ms, "end_ms": t.end_ms, "sessions_started": t.arrivals,
                    "requests_resent": t.resent, "cache_reset": t.cache_reset,
                    "client_cpu_s": t.client_cpu_s,
                    "client_cpu_pct": t.client_cpu_pct,
                    "machine_cpu_pct": t.machine_cpu_pct,
                })
            })
            .collect();
        let run = json!({
            "run_id": self.id,
            "tool": "trace",
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": utc_stamp(wall_start, true),
            "trace": {
                "path": cfg.trace.display().to_string(),
                "sha256": sha256_file(&cfg.trace).ok(),
                "sessions": shape.sessions,
                "turns": shape.turns,
            },
            "endpoint": cfg.url,
            "endpoints": cfg.servers.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "model": models.first(),
            "models": models,
            "api": cfg.api,
            "levels": levels_json,
            "requests_recorded": rows,
            "interrupted": interrupted,
            "server_metrics": metrics,
            "slo": cfg.slo,
            "percentiles": cfg.percentiles,
            "config": cfg.describe(),
            "arguments": cfg.arguments,
        });
        write(
            &self.path.join("run.json"),
            &serde_json::to_string_pretty(&run)?,
        )?;
        write(
            &self.path.join("summary.json"),
            &serde_json::to_string_pretty(&json!({"run_id": self.id, "levels": levels}))?,
        )?;
        write(
            &self.path.join("summary.csv"),
            &summary::csv(levels, &cfg.percentiles),
        )?;
        Ok(())
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_021_045);
        assert_eq!(utc_stamp(t, true), "2025-11-24T21:50:45Z");
        assert_eq!(utc_stamp(t, false), "2025-11-24T21-50-45");
        assert_eq!(
            utc_stamp(SystemTime::UNIX_EPOCH, true),
            "1970-01-01T00:00:00Z"
        );
    }
}
