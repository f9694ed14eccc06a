use super::*;
use crate::plots::sample::{self, HOSTILE_RUN, USERS};

fn page() -> String {
    match render(&sample::report()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The text of the `<table class="NAME">` element.
fn table_html<'a>(page: &'a str, name: &str) -> &'a str {
    let open = format!("<table class=\"{name}\">");
    let Some(start) = page.find(&open) else {
        panic!("no table {name}");
    };
    let len = page[start..].find("</table>").unwrap_or(0);
    &page[start..start + len]
}

fn body_rows(table: &str) -> usize {
    table.matches("<tr>").count() - 1
}

#[test]
fn the_page_holds_every_chart_inline() {
    let page = page();
    for name in [
        "rate",
        "latency",
        "throughput_latency",
        "context",
        "lateness",
        "timeline",
        "server",
    ] {
        assert!(
            page.contains(&format!("<figure id=\"chart-{name}\" ")),
            "{name}"
        );
    }
    assert_eq!(page.matches("<svg ").count(), 7);
    assert_eq!(page.matches("</svg>").count(), 7);
    assert!(!page.contains("<?xml"));
    assert!(page.contains("viewBox="));
}

#[test]
fn the_page_holds_every_section() {
    let page = page();
    let report = sample::report();
    let rows = |name| body_rows(table_html(&page, name));
    assert_eq!(rows("levels"), report.levels.len());
    assert_eq!(rows("latency"), report.levels.len() * 4);
    assert_eq!(rows("server"), 12);
    assert_eq!(rows("errors"), 4);
    assert_eq!(rows("saturation"), 2);
    assert_eq!(rows("verdicts"), 9);
    assert_eq!(rows("rounds"), report.rounds.len());
    assert_eq!(rows("turns"), report.turns.len());
    assert_eq!(rows("prompt_buckets"), report.prompt_buckets.len());
    assert_eq!(rows("timeline"), report.timeline.len());
    assert_eq!(rows("by"), 2);
    assert_eq!(rows("runs"), 2);
    // Every distribution figure is there, and the definition of percentiles.
    let latency = table_html(&page, "latency");
    for h in [
        "count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max",
    ] {
        assert!(latency.contains(&format!("<th>{h}</th>")), "{h}");
    }
    assert!(page.contains("quantile_cont"));
    assert!(page.contains("run-a: saturates above qps 8"));
    assert!(table_html(&page, "by").contains("<th>source</th>"));
    assert!(table_html(&page, "errors").contains("http_error 503"));
}

#[test]
fn users_lists_the_20_slowest_and_counts_the_rest() {
    let page = page();
    let users = table_html(&page, "users");
    assert_eq!(body_rows(users), USERS_SHOWN);
    // The slowest (user 23, TTFT p99 159) first; user 24 has no p99.
    let first = users.find("<tr><td>run-a</td>").unwrap_or(usize::MAX);
    assert!(users[first..].starts_with(
        "<tr><td>run-a</td><td>qps</td><td class=\"n\">4</td><td class=\"n\">1</td><td class=\"n\">23</td>"
    ));
    assert!(page.contains(&format!(
        "The 20 slowest of {USERS} users by TTFT p99; 5 more"
    )));
}

#[test]
fn text_from_runs_is_escaped() {
    let page = page();
    assert!(!page.contains(HOSTILE_RUN));
    assert!(!page.to_lowercase().contains("<script"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn the_page_needs_nothing_from_the_network() {
    let page = page();
    for needle in [
        "<link", "<script", "<img", "<iframe", "src=", "@import", "url(",
    ] {
        assert!(!page.contains(needle), "{needle}");
    }
    // The only URLs: the SVG namespace, and the runs' endpoints as text.
    for (i, _) in page.match_indices("://") {
        let i = page[..i].rfind("http").unwrap_or(i);
        let rest = &page[i..];
        assert!(
            rest.starts_with("http://www.w3.org/2000/svg") || rest.starts_with("http://127.0.0.1"),
            "{}",
            &rest[..rest.len().min(60)]
        );
    }
}

#[test]
fn empty_sections_say_so() {
    let mut r = sample::report();
    r.users.clear();
    r.by = None;
    r.levels.clear();
    r.turns.clear();
    r.prompt_buckets.clear();
    r.timeline.clear();
    let page = match render(&r) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert!(!page.contains("<svg"));
    assert!(page.contains("No chart"));
    assert!(!page.contains("<table class=\"users\">"));
    assert!(page.contains("<h2 id=\"users\">Users</h2>\n<p class=\"empty\">"));
}

#[test]
fn numbers_and_escaping() {
    assert_eq!(number(100.0), "100");
    assert_eq!(number(1234.56), "1235");
    assert_eq!(number(12.345), "12.3");
    assert_eq!(number(1.5), "1.50");
    assert_eq!(number(0.1234), "0.123");
    assert_eq!(number(f64::INFINITY), "inf");
    assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

#[test]
fn inline_svg_gains_a_view_box_and_loses_the_declaration() {
    let svg = "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"20\" xmlns=\"x\"></svg>";
    assert_eq!(
        inline_svg(svg),
        "<svg viewBox=\"0 0 10 20\" width=\"10\" height=\"20\" xmlns=\"x\"></svg>"
    );
}
