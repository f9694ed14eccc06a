//! `trace report --format html`: one self-contained page (inline style and
//! SVG charts, no scripts, nothing fetched) with every table of the report.
//! All text from runs and servers is escaped.

pub(crate) mod typed;

use std::fmt::Write as _;

use typed::{Cell, TypedTable};

use crate::model::Report;
use crate::plots;

/// Users listed in the page; the rest are counted.
const USERS_SHOWN: usize = 20;

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
  margin: 0 auto; max-width: 1600px; padding: 1rem 2rem 3rem; color: #1d2430; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #d8dde6; padding-bottom: .25rem; }
nav { font-size: .9rem; margin: .6rem 0 1rem; }
nav a { margin-right: .9rem; color: #1f5fa8; text-decoration: none; }
.meta { color: #5a6474; font-size: .9rem; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .82rem; margin: .4rem 0 1rem; }
th, td { padding: .25rem .55rem; border-bottom: 1px solid #e6e9ef; white-space: nowrap; }
th { background: #f3f5f9; text-align: left; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.t { white-space: normal; max-width: 40rem; }
tbody tr:hover { background: #f7f9fc; }
figure { margin: 1rem 0 2rem; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e6e9ef; }
.statement { font-size: 1.02rem; margin: .3rem 0; }
.empty { color: #7a8494; font-style: italic; }
ul.notes li { margin: .2rem 0; }
";

/// The whole page.
pub fn render(report: &Report) -> crate::Result<String> {
    let charts = plots::svg_charts(report)?;
    let mut page = String::with_capacity(64 * 1024);
    head(&mut page, report);
    summary(&mut page, report);
    page.push_str("<h2 id=\"charts\">Charts</h2>\n");
    if charts.is_empty() {
        page.push_str("<p class=\"empty\">No chart: the report has no figures to plot.</p>\n");
    }
    for chart in &charts {
        figure(&mut page, chart);
    }
    let (users, hidden_users) = typed::users(report, Some(USERS_SHOWN));
    let tables = [
        (typed::levels(report, false), None),
        (typed::latency(report), None),
        (typed::errors(report), None),
        (typed::finishes(report), None),
        (typed::server(report), None),
        (typed::saturation(report), None),
        (typed::verdicts(report), None),
        (typed::rounds(report), None),
        (typed::turns(report, false), sessions_note(report)),
        (typed::prompt_buckets(report, false), None),
        (typed::timeline(report, false), timeline_note(report)),
        (users, users_note(report, hidden_users)),
        (typed::by(report, false), None),
        (typed::runs(report), None),
    ];
    for (t, note) in &tables {
        table(&mut page, t, note.as_deref());
    }
    method(&mut page, report);
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

fn head(page: &mut String, report: &Report) {
    let ids: Vec<&str> = report.runs.iter().map(|r| r.run_id.as_str()).collect();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>trace report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>trace report</h1>\n<p class=\"meta\">{}</p>\n",
        escape(&ids.join(", ")),
        escape(&run_line(report)),
    );
    page.push_str("<nav>");
    for (id, name) in [
        ("summary", "Summary"),
        ("charts", "Charts"),
        ("levels", "Levels"),
        ("latency", "Latency"),
        ("errors", "Errors"),
        ("finish_reasons", "Finish reasons"),
        ("server", "Server"),
        ("saturation", "Saturation"),
        ("rounds", "Rounds"),
        ("turns", "Turns"),
        ("prompt_buckets", "Prompt tokens"),
        ("timeline", "Over time"),
        ("users", "Users"),
        ("by", "Grouped"),
        ("runs", "Runs"),
        ("method", "Method"),
    ] {
        let _ = write!(page, "<a href=\"#{id}\">{name}</a>");
    }
    page.push_str("</nav>\n");
}

fn run_line(report: &Report) -> String {
    report
        .runs
        .iter()
        .map(|r| {
            let mut s = r.run_id.clone();
            if let Some(m) = &r.model {
                let _ = write!(s, " · {m}");
            }
            if let Some(e) = &r.endpoint {
                let _ = write!(s, " · {e}");
            }
            let _ = write!(s, " · {} requests", r.rows);
            s
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Saturation statements and notes, first thing on the page.
fn summary(page: &mut String, report: &Report) {
    page.push_str("<h2 id=\"summary\">Summary</h2>\n");
    if report.saturation.is_empty() {
        page.push_str(
            "<p class=\"empty\">No saturation verdict (a single level, or no levels).</p>\n",
        );
    }
    for s in &report.saturation {
        let _ = writeln!(page, "<p class=\"statement\">{}</p>", escape(&s.statement));
    }
    if !report.notes.is_empty() {
        page.push_str("<ul class=\"notes\">\n");
        for n in &report.notes {
            let _ = writeln!(page, "<li>{}</li>", escape(n));
        }
        page.push_str("</ul>\n");
    }
}

fn figure(page: &mut String, chart: &plots::Chart) {
    let _ = write!(
        page,
        "<figure id=\"chart-{}\" aria-label=\"{}\">\n{}\n</figure>\n",
        escape(&chart.name),
        escape(&chart.title),
        inline_svg(&chart.svg),
    );
}

/// The SVG as an inline element: no XML declaration, and a viewBox so that
/// it scales down with the page.
fn inline_svg(svg: &str) -> String {
    let body = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    if body.contains("viewBox") {
        return body.to_string();
    }
    let (Some(w), Some(h)) = (attr(body, "width"), attr(body, "height")) else {
        return body.to_string();
    };
    body.replacen("<svg ", &format!("<svg viewBox=\"0 0 {w} {h}\" "), 1)
}

/// The value of `name="..."` in the first tag.
fn attr<'a>(svg: &'a str, name: &str) -> Option<&'a str> {
    let tag = &svg[..svg.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn sessions_note(report: &Report) -> Option<String> {
    let lines = super::sections::session_lines(report);
    (!lines.is_empty()).then(|| lines.join(". "))
}

fn timeline_note(report: &Report) -> Option<String> {
    (!report.timeline.is_empty()).then(|| {
        format!(
            "Each level cut into at most {} slices of equal length by when its requests were scheduled (from its first scheduled request), {} requests a slice at least; a level with fewer than two slices' worth is left out. A slice's latency is that of the requests scheduled in it.",
            crate::compute::timeline::SLICES,
            crate::compute::timeline::MIN_PER_SLICE
        )
    })
}

fn users_note(report: &Report, hidden: usize) -> Option<String> {
    let total = report.users.len();
    let mut lines = super::sections::spans_lines(report);
    if hidden > 0 {
        lines.push(format!(
            "The {} slowest of {total} users by TTFT p99; {hidden} more are in the JSON and spreadsheet reports.",
            total - hidden
        ));
    }
    (!lines.is_empty()).then(|| lines.join(". "))
}

fn table(page: &mut String, t: &TypedTable, note: Option<&str>) {
    let _ = writeln!(page, "<h2 id=\"{}\">{}</h2>", t.name, escape(t.title));
    if t.rows.is_empty() {
        page.push_str("<p class=\"empty\">None in this report.</p>\n");
        return;
    }
    if let Some(n) = note {
        let _ = writeln!(page, "<p class=\"meta\">{}</p>", escape(n));
    }
    let _ = write!(
        page,
        "<div class=\"scroll\"><table class=\"{}\">\n<thead><tr>",
        t.name
    );
    for h in &t.headers {
        let _ = write!(page, "<th>{}</th>", escape(h));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        page.push_str("<tr>");
        for c in row {
            cell(page, c);
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>\n");
}

fn cell(page: &mut String, c: &Cell) {
    let _ = match c {
        Cell::Text(s) if s.chars().count() > 60 => {
            write!(page, "<td class=\"t\">{}</td>", escape(s))
        }
        Cell::Text(s) => write!(page, "<td>{}</td>", escape(s)),
        Cell::Int(n) => write!(page, "<td class=\"n\">{n}</td>"),
        Cell::Num(Some(v)) => write!(page, "<td class=\"n\">{}</td>", number(*v)),
        Cell::Num(None) | Cell::Bool(None) => write!(page, "<td></td>"),
        Cell::Bool(Some(b)) => write!(page, "<td>{}</td>", if *b { "yes" } else { "no" }),
    };
}

/// Whole numbers as such, others with 1-3 decimals by magnitude.
pub(crate) fn number(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() || (v.fract() == 0.0 && a < 1e15) {
        crate::model::fmt_value(v)
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn method(page: &mut String, report: &Report) {
    page.push_str("<h2 id=\"method\">Method</h2>\n");
    let _ = writeln!(
        page,
        "<p>Percentiles: {}.</p>",
        escape(&report.percentile_definition)
    );
    let slo: Vec<String> = [
        ("TTFT", report.slo.ttft_ms),
        ("TPOT", report.slo.tpot_ms),
        ("E2E", report.slo.e2e_ms),
    ]
    .iter()
    .filter_map(|(name, v)| v.map(|v| format!("{name} ≤ {} ms", number(v))))
    .collect();
    let slo = if slo.is_empty() {
        "none set".to_string()
    } else {
        slo.join(", ")
    };
    let _ = writeln!(
        page,
        "<p>SLO for goodput and attainment: {}. Warm-up requests are left out of every figure. Report format version {}.</p>",
        escape(&slo),
        report.report_version
    );
}

/// Text as HTML: safe in element content and in quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
