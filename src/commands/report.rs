//! `trace report` and `trace compare`: analysis of replay results.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use analysis::compute::Options;
use analysis::model::Slo;
use analysis::render::{self, Format};
use analysis::run::RunFiles;
use anyhow::{Context, bail};
use clap::Args;

use crate::replay::config::parse_slo;

/// Summarise replay runs: per level throughput, latency distributions,
/// errors, goodput, saturation, rounds, sessions and users.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folders written by `trace replay` (results/<timestamp>_<name>).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// table (console), json, csv (one row per level), md, html (one
    /// self-contained file with charts), xlsx (needs -o).
    #[arg(long, short = 'f', default_value = "table", value_name = "FORMAT")]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also group each level by these request columns, e.g. `source` or
    /// `turn,source` (comma-separated).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub by: Vec<String>,
    #[command(flatten)]
    pub judge: JudgeArgs,
    /// Write charts (PNG and SVG) into this folder.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
}

/// How levels are judged.
#[derive(Debug, Clone, Args)]
pub struct JudgeArgs {
    /// SLOs for goodput and attainment, e.g. `ttft_ms=500,tpot_ms=50,e2e_ms=10000`;
    /// default: the SLO the run was made with (run.json).
    #[arg(long, value_name = "SPEC")]
    pub slo: Option<String>,
    /// SLOs in a YAML file (ttft_ms, tpot_ms, e2e_ms).
    #[arg(long, value_name = "FILE")]
    pub slo_file: Option<PathBuf>,
    /// A level passes when at least this % of requests succeeded (met the SLO).
    #[arg(long, default_value_t = 99.0, value_name = "PCT")]
    pub min_success: f64,
    /// Without an SLO, a level passes while its TTFT p99 and E2E p50 stay
    /// within this factor of the lowest level's.
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    pub latency_factor: f64,
    /// Headroom below the highest passing level for the recommended operating point, %.
    #[arg(long, default_value_t = 20.0, value_name = "PCT")]
    pub headroom: f64,
}

impl JudgeArgs {
    fn options(&self, by: Vec<String>) -> anyhow::Result<Options> {
        let slo = if self.slo.is_some() || self.slo_file.is_some() {
            let s = parse_slo(self.slo.as_deref(), self.slo_file.as_deref())?;
            Some(Slo {
                ttft_ms: s.ttft_ms,
                tpot_ms: s.tpot_ms,
                e2e_ms: s.e2e_ms,
            })
        } else {
            None
        };
        if !(0.0..=100.0).contains(&self.min_success) {
            bail!("--min-success must be a percentage between 0 and 100");
        }
        if !(self.latency_factor.is_finite() && self.latency_factor >= 1.0) {
            bail!("--latency-factor must be a number ≥ 1");
        }
        if !(0.0..100.0).contains(&self.headroom) {
            bail!("--headroom must be a percentage between 0 and 100");
        }
        Ok(Options {
            slo,
            by,
            min_success_pct: self.min_success,
            latency_factor: self.latency_factor,
            headroom_pct: self.headroom,
        })
    }
}

/// Compare runs level by level: absolute and relative deltas against the
/// first run, flagged where larger than the runs' own noise.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two or more run folders; the first is the baseline.
    #[arg(value_name = "RUN_DIR", num_args = 2.., required = true)]
    pub runs: Vec<PathBuf>,
    /// table, json, csv or md.
    #[arg(long, short = 'f', default_value = "table", value_name = "FORMAT")]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub judge: JudgeArgs,
}

/// Opens the runs; two runs with the same folder name (from different
/// results folders) are told apart as `NAME#2`, `NAME#3`, ...
fn open_runs(paths: &[PathBuf]) -> anyhow::Result<Vec<RunFiles>> {
    let mut runs = paths
        .iter()
        .map(|p| RunFiles::open(p).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for i in 1..runs.len() {
        let name = runs[i].run_id.clone();
        let mut n = 1;
        while runs[..i].iter().any(|b| b.run_id == runs[i].run_id) {
            n += 1;
            runs[i].run_id = format!("{name}#{n}");
        }
    }
    Ok(runs)
}

/// Transparent huge pages off for this process. The analysis allocates
/// and frees many buffers of a few MB; with THP set to `always` each fresh
/// 2 MB region is zeroed whole on first touch, which took about a third of
/// the CPU time of a 10-million-request report (bench/report/README.md).
/// A failure (an old kernel) only costs speed, so it is ignored.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    no_huge_pages();
    let opts = args.judge.options(args.by.clone())?;
    let runs = open_runs(&args.runs)?;
    let report = analysis::compute::report(&runs, &opts)?;
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the chart folder {}", dir.display()))?;
        let files = analysis::plots::write_all(&report, dir)?;
        eprintln!("wrote {} charts to {}", files.len(), dir.display());
    }
    match args.format {
        Format::Xlsx => {
            let out = args
                .output
                .as_deref()
                .context("--format xlsx writes a file: give -o REPORT.xlsx")?;
            let tmp = temp_path(out);
            analysis::render::xlsx::write(&report, &tmp)?;
            commit(&tmp, out)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        format => {
            let text = match format {
                Format::Table => render::report_text(&report),
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
                Format::Csv => render::levels_csv(&report),
                Format::Md => render::report_markdown(&report),
                Format::Html => analysis::render::html::render(&report)?,
                Format::Xlsx => unreachable!("handled above"),
            };
            emit(&text, args.output.as_deref())
        }
    }
}

pub fn run_compare(args: CompareArgs) -> anyhow::Result<()> {
    no_huge_pages();
    let opts = args.judge.options(Vec::new())?;
    let runs = open_runs(&args.runs)?;
    let cmp = analysis::compare::compare(&runs, &opts)?;
    let text = match args.format {
        Format::Table => render::comparison_text(&cmp),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&cmp)?),
        Format::Csv => render::comparison_csv(&cmp),
        Format::Md => render::comparison_markdown(&cmp),
        Format::Html | Format::Xlsx => {
            bail!("trace compare writes table, json, csv or md")
        }
    };
    emit(&text, args.output.as_deref())
}

/// Print, or write to a file through a temporary name.
fn emit(text: &str, output: Option<&Path>) -> anyhow::Result<()> {
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
        Some(path) => {
            let tmp = temp_path(path);
            std::fs::write(&tmp, text)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            commit(&tmp, path)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn commit(tmp: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::rename(tmp, path).with_context(|| {
        let _ = std::fs::remove_file(tmp);
        format!("cannot write {}", path.display())
    })
}
