//! Charts of a report (`trace report --plot DIR`, and inline in the HTML):
//! rate and success, latency against load, throughput against latency,
//! latency against context length, client lateness and the server's own
//! figures. A chart the report has no data for is left out.
//!
//! Text in PNGs is drawn with DejaVu Sans embedded in the binary
//! (`assets/DejaVuSans.ttf`), so charts render on machines without fonts.

mod draw;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::model::Report;
use crate::{Error, Result};

pub use spec::ChartSpec;

/// A chart as SVG text, for embedding.
#[derive(Debug, Clone)]
pub struct Chart {
    pub name: String,
    pub title: String,
    pub svg: String,
}

static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Register the embedded font as `sans-serif`, once. Every backend needs it:
/// plotters measures text with it even when writing SVG.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Plot {
            chart: "(font)".into(),
            message: "the embedded DejaVu Sans font does not load".into(),
        })
    }
}

/// Write every chart as `NAME.png` and `NAME.svg` in `dir` (created if
/// missing); returns the files written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for chart in spec::charts(report) {
        let png = dir.join(format!("{}.png", chart.name));
        write_png(&chart, &png)?;
        written.push(png);
        let svg = dir.join(format!("{}.svg", chart.name));
        std::fs::write(&svg, render_svg(&chart)?).map_err(|source| Error::Io {
            path: svg.clone(),
            source,
        })?;
        written.push(svg);
    }
    Ok(written)
}

/// Every chart as SVG text, in the order `write_all` writes them.
pub fn svg_charts(report: &Report) -> Result<Vec<Chart>> {
    register_font()?;
    spec::charts(report)
        .iter()
        .map(|chart| {
            Ok(Chart {
                name: chart.name.to_string(),
                title: chart.title.clone(),
                svg: render_svg(chart)?,
            })
        })
        .collect()
}

fn render_svg(chart: &ChartSpec) -> Result<String> {
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, draw::size(chart.panels.len())).into_drawing_area();
        draw::draw(&root, chart).map_err(|message| plot_error(chart, message))?;
        root.present()
            .map_err(|e| plot_error(chart, e.to_string()))?;
    }
    Ok(svg)
}

fn write_png(chart: &ChartSpec, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, draw::size(chart.panels.len())).into_drawing_area();
    draw::draw(&root, chart).map_err(|message| plot_error(chart, message))?;
    root.present()
        .map_err(|e| plot_error(chart, format!("cannot write {}: {e}", path.display())))
}

fn plot_error(chart: &ChartSpec, message: String) -> Error {
    Error::Plot {
        chart: chart.name.to_string(),
        message,
    }
}

#[cfg(test)]
pub(crate) mod sample;
#[cfg(test)]
mod tests;
