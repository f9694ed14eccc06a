use super::sample::{self, HOSTILE_RUN, LOADS_A};
use super::spec::{self, Panel, Series};
use super::*;

fn chart<'a>(charts: &'a [ChartSpec], name: &str) -> &'a ChartSpec {
    match charts.iter().find(|c| c.name == name) {
        Some(c) => c,
        None => panic!("no chart {name} among {:?}", names(charts)),
    }
}

fn names(charts: &[ChartSpec]) -> Vec<&'static str> {
    charts.iter().map(|c| c.name).collect()
}

fn panel<'a>(chart: &'a ChartSpec, title: &str) -> &'a Panel {
    match chart.panels.iter().find(|p| p.title == title) {
        Some(p) => p,
        None => panic!("chart {} has no panel {title}", chart.name),
    }
}

const ALL: [&str; 7] = [
    "rate",
    "latency",
    "throughput_latency",
    "context",
    "lateness",
    "timeline",
    "server",
];

#[test]
fn a_full_report_has_every_chart() {
    let charts = spec::charts(&sample::report());
    assert_eq!(names(&charts), ALL);
}

#[test]
fn series_per_run_and_round_with_p50_and_p99() {
    let charts = spec::charts(&sample::report());
    let latency = chart(&charts, "latency");
    assert_eq!(latency.panels.len(), 3);
    for p in &latency.panels {
        // run-a round 1, run-a round 2, the hostile run: p50 and p99 each.
        assert_eq!(p.series.len(), 6, "{}", p.title);
        assert!(p.x_log, "1..32 spans more than 20x: {}", p.title);
    }
    let ttft = panel(latency, "Time to first token");
    let groups: Vec<&str> = ttft.series.iter().map(|s| s.group.as_str()).collect();
    assert_eq!(
        groups,
        [
            "run-a round 1",
            "run-a round 1",
            "run-a round 2",
            "run-a round 2",
            &format!("{HOSTILE_RUN} round 1"),
            &format!("{HOSTILE_RUN} round 1"),
        ]
    );
    let p99 = &ttft.series[1];
    assert_eq!((p99.stat.as_str(), p99.dashed), ("p99", true));
    // Points in load order, p99 of the sample's distributions.
    let xs: Vec<f64> = p99.points.iter().map(|p| p.0).collect();
    assert_eq!(xs, LOADS_A);
    assert_eq!(p99.points[0].1, (40.0 + 2.0) * 2.5);
}

#[test]
fn rate_chart_draws_target_against_achieved_with_the_diagonal() {
    let charts = spec::charts(&sample::report());
    let rate = chart(&charts, "rate");
    let achieved = panel(rate, "Achieved vs target arrival rate");
    assert!(achieved.diagonal);
    let success = panel(rate, "Success rate");
    assert_eq!(success.y_max, Some(105.0));
    assert!(success.series[0].points.iter().all(|p| p.1 <= 100.0));
}

#[test]
fn charts_without_data_are_left_out() {
    let mut r = sample::report();
    r.turns.clear();
    r.prompt_buckets.clear();
    r.timeline.clear();
    for l in &mut r.levels {
        l.server = None;
        l.lateness_p50_ms = None;
        l.lateness_p99_ms = None;
    }
    assert_eq!(
        names(&spec::charts(&r)),
        ["rate", "latency", "throughput_latency"]
    );
    r.levels.clear();
    assert!(spec::charts(&r).is_empty());
    assert!(svg_charts(&r).map(|c| c.is_empty()).unwrap_or(false));
}

#[test]
fn one_run_one_round_names_series_by_figure_only() {
    let mut r = sample::report();
    r.levels
        .retain(|l| l.key.run_id == "run-a" && l.key.round == 1);
    let charts = spec::charts(&r);
    let ttft = panel(chart(&charts, "latency"), "Time to first token");
    let labels: Vec<(&str, &str)> = ttft
        .series
        .iter()
        .map(|s| (s.group.as_str(), s.stat.as_str()))
        .collect();
    assert_eq!(labels, [("", "p50"), ("", "p99")]);
}

#[test]
fn unbounded_levels_stay_off_load_axes_but_not_off_latency_axes() {
    let mut r = sample::report();
    r.levels
        .retain(|l| l.key.run_id == "run-a" && l.key.round == 1);
    let mut inf = r.levels[0].clone();
    inf.key.load_value = f64::INFINITY;
    inf.target_rate = Some(f64::INFINITY);
    r.levels.push(inf);
    let charts = spec::charts(&r);
    let ttft = panel(chart(&charts, "latency"), "Time to first token");
    assert_eq!(ttft.series[0].points.len(), LOADS_A.len());
    let tl = panel(chart(&charts, "throughput_latency"), "Against TTFT p99");
    assert_eq!(tl.series[0].points.len(), LOADS_A.len() + 1);
    let speed = panel(
        chart(&charts, "throughput_latency"),
        "Against per-user speed",
    );
    assert_eq!(speed.series[0].points.len(), LOADS_A.len() + 1);
    for (level, (x, y)) in r.levels.iter().zip(&speed.series[0].points) {
        let tpot = level.tpot_ms.p50.expect("a TPOT p50");
        assert!((x - 1000.0 / tpot).abs() < 1e-9 && *y == level.output_tokens_per_s);
    }
    // And it still draws.
    assert!(svg_charts(&r).is_ok());
}

#[test]
fn narrow_load_ranges_use_a_linear_axis() {
    let mut r = sample::report();
    r.levels.retain(|l| l.key.load_value <= 8.0);
    let charts = spec::charts(&r);
    assert!(!panel(chart(&charts, "latency"), "Inter-token latency").x_log);
}

#[test]
fn a_single_level_still_draws() {
    let mut r = sample::report();
    r.levels.truncate(1);
    let charts = match svg_charts(&r) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert!(!charts.is_empty());
}

/// The legend's text elements, from an SVG.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = match roxmltree::Document::parse(svg) {
        Ok(d) => d,
        Err(e) => panic!("SVG does not parse: {e}"),
    };
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

#[test]
fn svgs_parse_and_carry_titles_axes_and_legends() {
    let report = sample::report();
    let charts = match svg_charts(&report) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        charts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ALL
    );
    for c in &charts {
        let texts = svg_texts(&c.svg);
        assert!(
            texts.contains(&c.title),
            "{}: no title in {texts:?}",
            c.name
        );
    }
    let latency = svg_texts(&charts[1].svg);
    for label in [
        "run-a round 1",
        "run-a round 2",
        &format!("{HOSTILE_RUN} round 1"),
        "p50",
        "p99",
        "latency (ms)",
        "target arrival rate (/s)",
        "Inter-token latency",
    ] {
        assert!(
            latency.iter().any(|t| t == label),
            "no {label:?} in {latency:?}"
        );
    }
    let rate = svg_texts(&charts[0].svg);
    assert!(rate.iter().any(|t| t == "y = x (target met)"));
    // The run id is text in the SVG, not markup.
    assert!(!charts[0].svg.contains("<script>"));
}

fn decode_png(path: &Path) -> image::RgbImage {
    match image::open(path) {
        Ok(img) => img.to_rgb8(),
        Err(e) => panic!("{}: does not decode: {e}", path.display()),
    }
}

#[test]
fn write_all_writes_a_png_and_an_svg_per_chart() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let out = dir.path().join("plots");
    let files = match write_all(&sample::report(), &out) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let expected: Vec<PathBuf> = ALL
        .iter()
        .flat_map(|n| [out.join(format!("{n}.png")), out.join(format!("{n}.svg"))])
        .collect();
    assert_eq!(files, expected);
    for f in &files {
        if f.extension().is_some_and(|e| e == "png") {
            let img = decode_png(f);
            assert!(img.width() >= 900 && img.height() >= 500, "{}", f.display());
            assert!(
                dark_pixels_in_title(&img) > 50,
                "{}: no title text",
                f.display()
            );
        } else {
            let svg = std::fs::read_to_string(f).unwrap_or_default();
            assert!(!svg_texts(&svg).is_empty(), "{}", f.display());
        }
    }
}

/// Black pixels in the top band, where only the title is: text was drawn,
/// so the embedded font works.
fn dark_pixels_in_title(img: &image::RgbImage) -> usize {
    let band = img.height().min(28);
    (0..band)
        .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 80))
        .count()
}

#[test]
fn write_all_names_the_folder_it_cannot_create() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let file = dir.path().join("a-file");
    if let Err(e) = std::fs::write(&file, "x") {
        panic!("{e}");
    }
    match write_all(&sample::report(), &file.join("plots")) {
        Err(Error::Io { path, .. }) => assert_eq!(path, file.join("plots")),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

#[test]
fn ticks_are_short() {
    assert_eq!(spec::tick(0.0), "0");
    assert_eq!(spec::tick(2.5), "2.5");
    assert_eq!(spec::tick(0.125), "0.125");
    assert_eq!(spec::tick(1000.0), "1000");
    assert_eq!(spec::tick(15000.0), "15k");
    assert_eq!(spec::tick(2_500_000.0), "2.5M");
}

#[test]
fn legends_list_groups_then_line_styles() {
    let charts = spec::charts(&sample::report());
    let labels = |name: &str| -> Vec<String> {
        draw::legend_entries(chart(&charts, name))
            .into_iter()
            .map(|e| e.label)
            .collect()
    };
    let hostile = format!("{HOSTILE_RUN} round 1");
    assert_eq!(
        labels("latency"),
        [
            "run-a round 1",
            "run-a round 2",
            hostile.as_str(),
            "p50",
            "p99"
        ]
    );
    // One figure per panel: no line-style entries.
    assert_eq!(
        labels("rate"),
        [
            "y = x (target met)",
            "run-a round 1",
            "run-a round 2",
            hostile.as_str()
        ]
    );
    assert_eq!(labels("context"), ["qps 2", "qps 8", "p50", "p99"]);
}

#[test]
fn long_legend_labels_are_cut() {
    let long = "x".repeat(100);
    let short = draw::shorten(&long);
    assert_eq!(short.chars().count(), 56);
    assert!(short.ends_with('…'));
    assert_eq!(draw::shorten("run-a"), "run-a");
}

#[test]
fn timeline_draws_each_level_over_its_slices_and_failures_only_when_some() {
    let mut r = sample::report();
    let charts = spec::charts(&r);
    let timeline = chart(&charts, "timeline");
    let titles: Vec<&str> = timeline.panels.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["Time to first token", "End-to-end latency"]);
    let ttft = panel(timeline, "Time to first token");
    assert!(!ttft.x_log);
    // Two levels, p50 solid and p99 dashed, a point per slice at its middle.
    assert_eq!(ttft.series.len(), 4);
    let p50: Vec<&Series> = ttft.series.iter().filter(|s| s.stat == "p50").collect();
    assert_eq!(p50.len(), 2);
    assert_ne!(p50[0].color, p50[1].color);
    let xs: Vec<f64> = p50[1].points.iter().map(|p| p.0).collect();
    // The level's five slices at their middles, in percent of the level.
    assert_eq!(xs, [10.0, 30.0, 50.0, 70.0, 90.0]);
    // The sample's higher load rises slice by slice; its lower load is flat.
    let ys = |s: &Series| s.points.iter().map(|p| p.1).collect::<Vec<f64>>();
    assert!(
        ys(p50[1]).windows(2).all(|w| w[1] > w[0]),
        "{:?}",
        ys(p50[1])
    );
    assert!(
        ys(p50[0]).windows(2).all(|w| w[1] == w[0]),
        "{:?}",
        ys(p50[0])
    );

    // A slice with failures adds the panel of the share that succeeded.
    r.timeline[3].ok = 15;
    let charts = spec::charts(&r);
    let ok = panel(chart(&charts, "timeline"), "Requests that succeeded");
    assert_eq!(ok.y_max, Some(105.0));
    let first = &ok.series[0];
    assert_eq!(first.points[3], (70.0, 75.0));
    assert_eq!(first.points[2], (50.0, 100.0));

    r.timeline.clear();
    assert!(!names(&spec::charts(&r)).contains(&"timeline"));
}
