//! Finding a run's files: the `requests/` and `server_metrics/` Parquet
//! parts and `run.json`, with the results format version of every part
//! checked before any query runs.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;
use traces::results::{KEY_RESULTS_VERSION, RESULTS_SCHEMA_VERSION};

use crate::error::{Error, Result};
use crate::model::{RunInfo, Slo, SweepInfo};

/// One run folder, as found on disk.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub path: PathBuf,
    pub run_id: String,
    pub request_parts: Vec<PathBuf>,
    pub metric_parts: Vec<PathBuf>,
    pub run_json: Option<RunJson>,
    /// Results format version of the `requests` parts.
    pub version: u32,
}

/// The oldest results version still read: version 1 lacks `source`.
pub const OLDEST_VERSION: u32 = 1;

/// What the report uses from run.json.
#[derive(Debug, Clone, Default)]
pub struct RunJson {
    pub started_at: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub trace: Option<String>,
    pub interrupted: Option<bool>,
    pub slo: Slo,
    pub windows: Vec<LevelWindow>,
    /// `(load_mode, load_value)` of levels run with `--max-concurrency`.
    pub capped_levels: Vec<(String, f64)>,
    /// `(rate, group size)` of `qps` levels run with burst arrivals.
    pub burst_levels: Vec<(f64, usize)>,
    pub sweep: Option<SweepInfo>,
    /// The replayed trace had more turns than sessions (`trace.turns` >
    /// `trace.sessions`); `None` when run.json does not say.
    pub multi_turn: Option<bool>,
    /// The run asked the server to ignore end of sequence (`config.ignore_eos`).
    pub ignore_eos: Option<bool>,
    /// The run asked for the usage chunk (`config.include_usage`; false
    /// under `--no-usage`).
    pub include_usage: Option<bool>,
    /// The run streamed its replies (`config.stream`; false under
    /// `--no-stream`, absent before it existed).
    pub stream: Option<bool>,
    /// The run kept its levels from finding each other's prompts cached:
    /// it emptied the server's prefix cache before each level
    /// (`config.cache_reset` set) or tagged each level's prompts
    /// (`config.isolate_levels`).
    pub cache_reset: bool,
}

/// A level's start and end on the run clock.
#[derive(Debug, Clone)]
pub struct LevelWindow {
    pub load_mode: String,
    pub load_value: f64,
    pub round: u32,
    pub start_ms: f64,
    pub end_ms: f64,
    /// The replayer's share of its machine's CPU during the level, %.
    pub client_cpu_pct: Option<f64>,
    /// How busy the replayer's whole machine was during the level, %.
    pub machine_cpu_pct: Option<f64>,
}

impl RunFiles {
    /// Open a run folder. A folder of runs (such as `results/`) gets a
    /// message naming the runs inside it.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such run folder (give the folder that holds requests/ and run.json)",
                ),
            });
        }
        let request_parts = parquet_parts(&path.join("requests"))?;
        let metric_parts = parquet_parts(&path.join("server_metrics"))?;
        let run_json_path = path.join("run.json");
        let run_json = if run_json_path.is_file() {
            Some(read_run_json(&run_json_path)?)
        } else {
            None
        };
        if request_parts.is_empty() {
            if run_json.is_none() && !path.join("requests").is_dir() {
                return Err(not_a_run(path));
            }
            return Err(Error::NoRequests {
                path: path.to_path_buf(),
            });
        }
        let mut version = RESULTS_SCHEMA_VERSION;
        for (i, part) in request_parts.iter().chain(&metric_parts).enumerate() {
            let v = check_version(part)?;
            if i == 0 {
                version = v;
            }
        }
        let run_id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self {
            path: path.to_path_buf(),
            run_id,
            request_parts,
            metric_parts,
            run_json,
            version,
        })
    }

    pub fn info(&self, rows: u64) -> RunInfo {
        let j = self.run_json.clone().unwrap_or_default();
        RunInfo {
            run_id: self.run_id.clone(),
            path: self.path.display().to_string(),
            request_parts: self.request_parts.len(),
            server_metric_parts: self.metric_parts.len(),
            has_run_json: self.run_json.is_some(),
            interrupted: j.interrupted,
            started_at: j.started_at,
            endpoint: j.endpoint,
            model: j.model,
            trace: j.trace,
            rows,
            sweep: j.sweep,
        }
    }
}

/// The error for a folder that is not a run, naming runs found below it.
fn not_a_run(path: &Path) -> Error {
    let runs: Vec<String> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("requests").is_dir() || e.path().join("run.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if runs.is_empty() {
        return Error::NotARun {
            path: path.to_path_buf(),
        };
    }
    let mut sorted = runs;
    sorted.sort();
    let shown: Vec<String> = sorted
        .iter()
        .rev()
        .take(5)
        .map(|r| path.join(r).display().to_string())
        .collect();
    Error::Usage(format!(
        "{}: a folder of {} runs, not a run; give one or more run folders, e.g. {}",
        path.display(),
        sorted.len(),
        shown.join(" ")
    ))
}

/// Complete `*.parquet` parts of a folder, sorted; hidden in-progress parts
/// (`.part-00003.parquet.tmp`) are left out.
fn parquet_parts(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && name.ends_with(".parquet") {
            parts.push(entry.path());
        }
    }
    parts.sort();
    Ok(parts)
}

/// The part's results format version; refuses versions this build does
/// not read.
fn check_version(part: &Path) -> Result<u32> {
    let file = File::open(part).map_err(|source| Error::Io {
        path: part.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| Error::Parquet {
        path: part.to_path_buf(),
        source: Box::new(e),
    })?;
    let found = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| {
            kv.iter()
                .find(|k| k.key == KEY_RESULTS_VERSION)
                .and_then(|k| k.value.clone())
        });
    let known = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (OLDEST_VERSION..=RESULTS_SCHEMA_VERSION).contains(n))
    };
    match found {
        Some(v) if known(&v).is_some() => Ok(known(&v).unwrap_or(RESULTS_SCHEMA_VERSION)),
        Some(v) => Err(Error::Version {
            path: part.to_path_buf(),
            found: v,
            expected: RESULTS_SCHEMA_VERSION,
        }),
        None => Err(Error::Version {
            path: part.to_path_buf(),
            found: format!("none (no `{KEY_RESULTS_VERSION}` key: not written by trace replay)"),
            expected: RESULTS_SCHEMA_VERSION,
        }),
    }
}

fn read_run_json(path: &Path) -> Result<RunJson> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|source| Error::RunJson {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_run_json(&v))
}

/// The strings of the list at `key`, joined, when it holds several.
fn joined(v: &Value, key: &str) -> Option<String> {
    let all = v.get(key)?.as_array()?;
    (all.len() > 1).then(|| {
        all.iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn string_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Lenient: a field of another shape is treated as missing.
fn parse_run_json(v: &Value) -> RunJson {
    let slo_v = v
        .get("slo")
        .filter(|s| s.is_object())
        .or_else(|| v.get("config").and_then(|c| c.get("slo")));
    let slo_field = |k: &str| slo_v.and_then(|s| s.get(k)).and_then(Value::as_f64);
    let windows = v
        .get("levels")
        .and_then(Value::as_array)
        .map(|levels| levels.iter().filter_map(window).collect())
        .unwrap_or_default();
    // The levels as configured (`config.levels`).
    let configured: &[Value] = v
        .get("config")
        .and_then(|c| c.get("levels"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let capped_levels = configured
        .iter()
        .filter(|l| l.get("max_concurrency").is_some_and(|m| !m.is_null()))
        .filter_map(|l| {
            let mode = l.get("load_mode")?.as_str()?.to_string();
            let value = l.get("rate").or_else(|| l.get("load_value"))?;
            Some((mode, json_f64(value)?))
        })
        .collect();
    let burst_levels = configured
        .iter()
        .filter_map(|l| {
            let arrival = l.get("arrival")?;
            if arrival.get("kind")?.as_str()? != "burst" {
                return None;
            }
            let size = usize::try_from(arrival.get("size")?.as_u64()?).ok()?;
            Some((json_f64(l.get("rate")?)?, size))
        })
        .collect();
    let sweep = v.get("config").and_then(|c| c.get("sweep")).and_then(|s| {
        let probed = s.get("probed");
        let rate = |k: &str| probed.and_then(|p| p.get(k)).and_then(Value::as_f64);
        Some(SweepInfo {
            levels: s.get("levels")?.as_u64()?,
            sync_rate: rate("sync_rate"),
            max_rate: rate("max_rate"),
        })
    });
    let count = |k: &str| {
        v.get("trace")
            .and_then(|t| t.get(k))
            .and_then(Value::as_u64)
    };
    let multi_turn = match (count("sessions"), count("turns")) {
        (Some(s), Some(t)) => Some(t > s),
        _ => None,
    };
    RunJson {
        started_at: string_at(v, "started_at"),
        // Several servers: all of them, as `--endpoint` named them.
        endpoint: joined(v, "endpoints").or_else(|| string_at(v, "endpoint")),
        // Several models: all of them, in `--model` order.
        model: joined(v, "models").or_else(|| string_at(v, "model")),
        trace: v
            .get("trace")
            .and_then(|t| t.get("path").and_then(Value::as_str).or(t.as_str()))
            .map(str::to_string),
        interrupted: v.get("interrupted").and_then(Value::as_bool),
        slo: Slo {
            ttft_ms: slo_field("ttft_ms"),
            tpot_ms: slo_field("tpot_ms"),
            e2e_ms: slo_field("e2e_ms"),
        },
        windows,
        capped_levels,
        burst_levels,
        sweep,
        multi_turn,
        ignore_eos: v
            .get("config")
            .and_then(|c| c.get("ignore_eos"))
            .and_then(Value::as_bool),
        include_usage: v
            .get("config")
            .and_then(|c| c.get("include_usage"))
            .and_then(Value::as_bool),
        stream: v
            .get("config")
            .and_then(|c| c.get("stream"))
            .and_then(Value::as_bool),
        cache_reset: v.get("config").is_some_and(|c| {
            // A URL (runs before several endpoints), or the URLs reset.
            c.get("cache_reset")
                .is_some_and(|r| r.is_string() || r.as_array().is_some_and(|a| !a.is_empty()))
                || c.get("isolate_levels").and_then(Value::as_bool) == Some(true)
        }),
    }
}

/// Numbers, and `"inf"` as run.json writes an unbounded rate.
fn json_f64(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| match v.as_str() {
        Some("inf") | Some("Infinity") => Some(f64::INFINITY),
        _ => None,
    })
}

fn window(l: &Value) -> Option<LevelWindow> {
    Some(LevelWindow {
        load_mode: l.get("load_mode")?.as_str()?.to_string(),
        load_value: json_f64(l.get("load_value")?)?,
        round: u32::try_from(l.get("round")?.as_u64()?).ok()?,
        start_ms: l.get("start_ms")?.as_f64()?,
        end_ms: l.get("end_ms")?.as_f64()?,
        client_cpu_pct: l.get("client_cpu_pct").and_then(Value::as_f64),
        machine_cpu_pct: l.get("machine_cpu_pct").and_then(Value::as_f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_json_fields_are_read_leniently() {
        let v: Value = serde_json::json!({
            "started_at": "2026-11-24T22:55:58Z",
            "endpoint": "http://127.0.0.1:1/v1/chat/completions",
            "interrupted": false,
            "slo": {"ttft_ms": 300.0, "tpot_ms": null, "e2e_ms": null},
            "trace": {"path": "t.parquet", "sha256": "x"},
            "levels": [
                {"load_mode": "qps", "load_value": 2.0, "round": 1, "start_ms": 1.0, "end_ms": 9.0},
                {"load_mode": "qps", "load_value": "inf", "round": 1, "start_ms": 9.0, "end_ms": 12.0},
                {"load_mode": "qps", "round": 1}
            ],
            "config": {"levels": [{"load_mode": "qps", "rate": 2.0, "max_concurrency": 4},
                                  {"load_mode": "qps", "rate": 8.0, "max_concurrency": null,
                                   "arrival": {"kind": "burst", "size": 4}},
                                  {"load_mode": "qps", "rate": 9.0, "arrival": {"kind": "poisson"}}]}
        });
        let j = parse_run_json(&v);
        assert_eq!(j.slo.ttft_ms, Some(300.0));
        assert_eq!(j.slo.tpot_ms, None);
        assert_eq!(j.trace.as_deref(), Some("t.parquet"));
        assert_eq!(j.windows.len(), 2);
        assert!(j.windows[1].load_value.is_infinite());
        assert_eq!(j.capped_levels, vec![("qps".to_string(), 2.0)]);
        assert_eq!(j.burst_levels, vec![(8.0, 4)]);
    }
}
