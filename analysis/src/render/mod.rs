//! Laying a report out: every section becomes a [`Table`] of text cells,
//! which the console, Markdown and CSV renderers print; JSON is the
//! report itself; HTML and xlsx have their own modules.

pub mod html;
mod sections;
pub mod xlsx;

use std::fmt::Write as _;

use crate::model::{Comparison, Report};

pub use sections::{comparison_tables, levels_csv, report_tables};

/// The output formats of `trace report` and `trace compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
    Md,
    Html,
    Xlsx,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "table" | "text" => Self::Table,
            "json" => Self::Json,
            "csv" => Self::Csv,
            "md" | "markdown" => Self::Md,
            "html" => Self::Html,
            "xlsx" | "excel" => Self::Xlsx,
            other => {
                return Err(format!(
                    "unknown format {other:?}: use table, json, csv, md, html or xlsx"
                ));
            }
        })
    }
}

/// A titled table of text cells, with an optional line under it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub footer: Option<String>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Self {
        Self {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            ..Self::default()
        }
    }
}

/// Aligned plain-text tables for the console; text columns left-aligned,
/// numbers right-aligned.
pub fn text(tables: &[Table]) -> String {
    let mut out = String::new();
    for t in tables {
        let _ = writeln!(out, "{}", t.title);
        if !t.columns.is_empty() {
            let widths: Vec<usize> = (0..t.columns.len())
                .map(|i| {
                    t.rows
                        .iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| c.chars().count())
                        .chain([t.columns[i].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let numeric: Vec<bool> = (0..t.columns.len())
                .map(|i| {
                    t.rows
                        .iter()
                        .filter_map(|r| r.get(i))
                        .all(|c| c == "-" || c.parse::<f64>().is_ok())
                })
                .collect();
            let line = |cells: &[String]| {
                let parts: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let w = widths.get(i).copied().unwrap_or(0);
                        if numeric.get(i).copied().unwrap_or(false) {
                            format!("{c:>w$}")
                        } else {
                            format!("{c:<w$}")
                        }
                    })
                    .collect();
                format!("  {}", parts.join("  ").trim_end())
            };
            let _ = writeln!(out, "{}", line(&t.columns));
            for r in &t.rows {
                let _ = writeln!(out, "{}", line(r));
            }
        }
        if let Some(f) = &t.footer {
            let _ = writeln!(out, "  {f}");
        }
        out.push('\n');
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// GitHub-flavoured Markdown.
pub fn markdown(title: &str, tables: &[Table]) -> String {
    let mut out = format!("# {title}\n\n");
    for t in tables {
        let _ = writeln!(out, "## {}\n", md_cell(&t.title));
        if !t.columns.is_empty() {
            let head: Vec<String> = t.columns.iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(out, "| {} |", head.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(t.columns.len()));
            for r in &t.rows {
                let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            out.push('\n');
        }
        if let Some(f) = &t.footer {
            for line in f.lines() {
                let _ = writeln!(out, "{}\n", md_cell(line.trim()));
            }
        }
    }
    out
}

/// RFC 4180 quoting.
pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn report_text(report: &Report) -> String {
    text(&report_tables(report))
}

pub fn report_markdown(report: &Report) -> String {
    markdown("trace report", &report_tables(report))
}

pub fn comparison_text(c: &Comparison) -> String {
    text(&comparison_tables(c))
}

pub fn comparison_markdown(c: &Comparison) -> String {
    markdown("trace compare", &comparison_tables(c))
}

/// One CSV row per level and metric of a comparison.
pub fn comparison_csv(c: &Comparison) -> String {
    let mut header = vec![
        "load_mode".to_string(),
        "load_value".into(),
        "round".into(),
        "metric".into(),
    ];
    for r in &c.runs {
        for f in ["value", "noise", "delta", "delta_pct", "flag"] {
            header.push(format!("{}:{f}", r.run_id));
        }
    }
    let mut out = header
        .iter()
        .map(|h| csv_cell(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    let num = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for l in &c.levels {
        for m in &l.metrics {
            let mut row = vec![
                csv_cell(&l.load_mode),
                l.load_value.to_string(),
                l.round.to_string(),
                m.metric.clone(),
            ];
            for i in 0..c.runs.len() {
                row.push(num(m.values.get(i).copied().flatten()));
                row.push(num(m.noise.get(i).copied().flatten()));
                row.push(num(m.delta.get(i).copied().flatten()));
                row.push(num(m.delta_pct.get(i).copied().flatten()));
                row.push(m.flag.get(i).cloned().unwrap_or_default());
            }
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out
}
