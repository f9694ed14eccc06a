//! Drawing a [`ChartSpec`] on any plotters backend: a title, the panels in a
//! grid, and one legend strip under them shared by every panel.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::spec::{ChartSpec, Panel, Series, tick};

/// Tableau 10: distinguishable, and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const REFERENCE: RGBColor = RGBColor(150, 150, 150);
/// Legend samples of line styles, which apply to every color.
const STYLE_SAMPLE: RGBColor = RGBColor(70, 70, 70);
const FONT: &str = "sans-serif";
const TITLE_SIZE: u32 = 24;
const PANEL_TITLE_SIZE: u32 = 18;
const LABEL_SIZE: u32 = 14;
const LEGEND_SIZE: u32 = 14;
const LEGEND_ROW: u32 = 22;
const LEGEND_SAMPLE: i32 = 34;
const DIAGONAL_LABEL: &str = "y = x (target met)";

/// Width and height of a chart with `panels` panels.
pub fn size(panels: usize) -> (u32, u32) {
    match panels {
        0 | 1 => (900, 560),
        2 => (1300, 560),
        3 => (1600, 540),
        _ => (1300, 980),
    }
}

fn grid(panels: usize) -> (usize, usize) {
    match panels {
        0 | 1 => (1, 1),
        2 => (1, 2),
        3 => (1, 3),
        n => (n.div_ceil(2), 2),
    }
}

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Draw the whole chart on `root` (already sized with [`size`]).
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartSpec,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = root
        .titled(&chart.title, (FONT, TITLE_SIZE).into_font())
        .map_err(|e| e.to_string())?;
    let entries = legend_entries(chart);
    let rows = legend_layout(&body, &entries)?;
    let legend_h = rows.len() as u32 * LEGEND_ROW + 12;
    let (_, body_h) = body.dim_in_pixel();
    let (plots, legend) = body.split_vertically(body_h.saturating_sub(legend_h));
    let (r, c) = grid(chart.panels.len());
    let captions = chart.panels.len() > 1;
    for (area, panel) in plots.split_evenly((r, c)).iter().zip(&chart.panels) {
        draw_panel(area, panel, captions)?;
    }
    draw_legend(&legend, &entries, &rows)
}

/// One panel; its caption only when the chart has several (a single panel's
/// title would repeat the chart's).
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    caption: bool,
) -> Result<(), String> {
    let x = x_range(panel);
    let y = y_range(panel);
    if panel.x_log {
        // Powers of two suit load sweeps that double; wide spans use 10.
        let base = if x.end / x.start > 2048.0 { 10.0 } else { 2.0 };
        draw_axes(area, panel, caption, x.log_scale().base(base), y)
    } else {
        draw_axes(area, panel, caption, x, y)
    }
}

fn draw_axes<DB, X>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    caption: bool,
    x: X,
    y: Range<f64>,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    if caption {
        builder.caption(&panel.title, (FONT, PANEL_TITLE_SIZE));
    }
    let mut chart = builder
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y.clone())
        .map_err(|e| e.to_string())?;
    let fmt = |v: &f64| tick(*v);
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .x_labels(8)
        .y_labels(8)
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, LABEL_SIZE + 1))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(|e| e.to_string())?;
    if panel.diagonal {
        chart
            .draw_series(DashedLineSeries::new(
                diagonal(panel, &y),
                6,
                4,
                REFERENCE.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
    }
    for s in &panel.series {
        draw_series(&mut chart, s)?;
    }
    Ok(())
}

fn draw_series<DB, X>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    s: &Series,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    let c = color(s.color);
    let line = c.stroke_width(2);
    let points = s.points.clone();
    if s.dashed {
        chart
            .draw_series(DashedLineSeries::new(points.clone(), 8, 5, line))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 5, c.filled())),
            )
            .map_err(|e| e.to_string())?;
    } else {
        chart
            .draw_series(LineSeries::new(points.clone(), line))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The x range with a margin, positive for log scales, never empty.
fn x_range(panel: &Panel) -> Range<f64> {
    let (lo, hi) = bounds(
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0)),
    );
    if panel.x_log {
        return lo / 1.25..hi * 1.25;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else {
        lo.abs().max(1.0) * 0.5
    };
    let start = if lo >= 0.0 && lo - pad < 0.0 {
        0.0
    } else {
        lo - pad
    };
    start..hi + pad
}

/// From zero (or below, for negative values) to the top of the data.
fn y_range(panel: &Panel) -> Range<f64> {
    let (lo, hi) = bounds(
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1)),
    );
    let hi = if panel.diagonal {
        let (_, x_hi) = bounds(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        hi.max(x_hi)
    } else {
        hi
    };
    let top = match panel.y_max {
        Some(m) if hi <= m => m,
        _ if hi > 0.0 => hi * 1.1,
        _ => 1.0,
    };
    let bottom = if lo < 0.0 { lo * 1.1 } else { 0.0 };
    bottom..top
}

/// Points of y = x across the data, spaced evenly on the x axis's scale
/// (a log x axis bends the line).
fn diagonal(panel: &Panel, y: &Range<f64>) -> Vec<(f64, f64)> {
    let (lo, hi) = bounds(
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0)),
    );
    let (lo, hi) = (lo.max(y.start), hi.min(y.end));
    const STEPS: u32 = 64;
    (0..=STEPS)
        .map(|i| {
            let t = f64::from(i) / f64::from(STEPS);
            let x = if panel.x_log && lo > 0.0 {
                lo * (hi / lo).powf(t)
            } else {
                lo + (hi - lo) * t
            };
            (x, x)
        })
        .collect()
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// One legend item: a line sample in the series' style and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub marker: bool,
}

/// The legend: the y = x line if drawn, one entry per group in its color,
/// then the line styles of panels that draw several figures per group
/// (`p50` solid, `p99` dashed) in a neutral color. A chart with one unnamed
/// group lists its figures in the group's color instead.
pub fn legend_entries(chart: &ChartSpec) -> Vec<LegendEntry> {
    let mut out: Vec<LegendEntry> = Vec::new();
    let mut push = |e: LegendEntry| {
        if !out.iter().any(|o| o.label == e.label) {
            out.push(e);
        }
    };
    if chart.panels.iter().any(|p| p.diagonal) {
        push(LegendEntry {
            label: DIAGONAL_LABEL.to_string(),
            color: REFERENCE,
            dashed: true,
            marker: false,
        });
    }
    let series = || chart.panels.iter().flat_map(|p| &p.series);
    let named = series().any(|s| !s.group.is_empty());
    if named {
        for s in series() {
            push(LegendEntry {
                label: s.group.clone(),
                color: color(s.color),
                dashed: false,
                marker: false,
            });
        }
    }
    for panel in &chart.panels {
        let several = panel.series.iter().any(|s| s.stat != panel.series[0].stat);
        for s in &panel.series {
            if named && several {
                push(LegendEntry {
                    label: s.stat.clone(),
                    color: STYLE_SAMPLE,
                    dashed: s.dashed,
                    marker: true,
                });
            } else if !named {
                push(LegendEntry {
                    label: s.stat.clone(),
                    color: color(s.color),
                    dashed: s.dashed,
                    marker: true,
                });
            }
        }
    }
    out
}

/// Legend labels longer than this many characters are cut with an ellipsis.
const LEGEND_CHARS: usize = 56;

pub(super) fn shorten(label: &str) -> String {
    if label.chars().count() <= LEGEND_CHARS {
        return label.to_string();
    }
    let mut s: String = label.chars().take(LEGEND_CHARS - 1).collect();
    s.push('…');
    s
}

/// Entries split into rows that fit the width: (entry index, x offset).
fn legend_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<Vec<Vec<(usize, i32)>>, String> {
    let (width, _) = area.dim_in_pixel();
    let style: TextStyle = (FONT, LEGEND_SIZE).into();
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut x = 20i32;
    for (i, e) in entries.iter().enumerate() {
        let (tw, _) = area
            .estimate_text_size(&shorten(&e.label), &style)
            .map_err(|e| e.to_string())?;
        let w = LEGEND_SAMPLE + 8 + tw as i32 + 28;
        if x + w > width as i32 - 10 && x > 20 {
            rows.push(Vec::new());
            x = 20;
        }
        if let Some(row) = rows.last_mut() {
            row.push((i, x));
        }
        x += w;
    }
    Ok(rows)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    rows: &[Vec<(usize, i32)>],
) -> Result<(), String> {
    let text: TextStyle = TextStyle::from((FONT, LEGEND_SIZE).into_font())
        .color(&BLACK)
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        ));
    for (r, row) in rows.iter().enumerate() {
        let y = 6 + r as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        for &(i, x) in row {
            let e = &entries[i];
            let line = e.color.stroke_width(2);
            let ends = [(x, y), (x + LEGEND_SAMPLE, y)];
            if e.dashed {
                area.draw(&DashedPathElement::new(ends, 7, 4, line))
            } else {
                area.draw(&PathElement::new(ends, line))
            }
            .map_err(|e| e.to_string())?;
            let mid = (x + LEGEND_SAMPLE / 2, y);
            if e.marker {
                if e.dashed {
                    area.draw(&TriangleMarker::new(mid, 5, e.color.filled()))
                } else {
                    area.draw(&Circle::new(mid, 4, e.color.filled()))
                }
                .map_err(|e| e.to_string())?;
            }
            area.draw(&Text::new(
                shorten(&e.label),
                (x + LEGEND_SAMPLE + 8, y),
                text.clone(),
            ))
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
