//! What each chart shows, as plain data: panels of named series of points,
//! built from a [`Report`]. Drawing is in `draw`; keeping the two apart lets
//! the tests check a chart's content without looking at pixels.

use std::collections::BTreeMap;

use crate::model::{GroupStats, LevelKey, LevelStats, Report, ServerFigures, fmt_value};

/// One chart: a title over one or more panels that share one legend.
#[derive(Debug, Clone)]
pub struct ChartSpec {
    /// File stem and HTML anchor (`rate`, `latency`, ...).
    pub name: &'static str,
    pub title: String,
    pub panels: Vec<Panel>,
}

/// One set of axes.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Plot x on a log scale (set when the values span more than 20x).
    pub x_log: bool,
    /// Draw the y = x line (achieved against target).
    pub diagonal: bool,
    /// Fixed top of the y axis (percentages), else fitted to the data.
    pub y_max: Option<f64>,
    pub series: Vec<Series>,
}

/// A line through points, drawn solid (the primary figure: p50, mean) or
/// dashed (the secondary one: p99, max).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The run, round or level the series belongs to; empty when the
    /// chart has one group only.
    pub group: String,
    /// The figure drawn (`p50`, `max`, `achieved`).
    pub stat: String,
    /// Index into the palette: one color per run, round or level.
    pub color: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// Log scale when positive values span more than this factor.
const LOG_SPAN: f64 = 20.0;

/// Every chart the report has data for, in a fixed order.
pub fn charts(report: &Report) -> Vec<ChartSpec> {
    [
        rate(report),
        latency(report),
        throughput_latency(report),
        context(report),
        lateness(report),
        timeline(report),
        server(report),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Achieved against target rate, and the share of requests that succeeded.
fn rate(report: &Report) -> Option<ChartSpec> {
    let groups = Groups::of(&report.levels);
    let has_target = report
        .levels
        .iter()
        .any(|l| l.target_rate.is_some_and(f64::is_finite));
    let achieved = if has_target {
        panel(
            "Achieved vs target arrival rate",
            "target arrival rate (/s)",
            "achieved arrival rate (/s)",
            groups.series(&report.levels, &[("achieved", false)], |l, _| {
                Some((l.target_rate?, l.achieved_rate))
            }),
        )
        .map(|p| Panel {
            diagonal: true,
            ..p
        })
    } else {
        panel(
            "Achieved request rate",
            &groups.load_axis,
            "requests/s",
            groups.series(&report.levels, &[("achieved", false)], |l, _| {
                Some((l.key.load_value, l.request_rate))
            }),
        )
    };
    let success = panel(
        "Success rate",
        &groups.load_axis,
        "successful requests (%)",
        groups.series(&report.levels, &[("success", false)], |l, _| {
            Some((l.key.load_value, l.success_pct))
        }),
    )
    .map(|p| Panel {
        y_max: Some(105.0),
        ..p
    });
    chart("rate", "Request rate and success", vec![achieved, success])
}

/// TTFT, ITL and E2E p50 and p99 against load.
fn latency(report: &Report) -> Option<ChartSpec> {
    let groups = Groups::of(&report.levels);
    let metric = |title: &str, dist: fn(&LevelStats) -> &crate::model::Dist| {
        panel(
            title,
            &groups.load_axis,
            "latency (ms)",
            groups.series(&report.levels, P50_P99, |l, i| {
                let d = dist(l);
                Some((l.key.load_value, if i == 0 { d.p50? } else { d.p99? }))
            }),
        )
    };
    chart(
        "latency",
        "Latency against load",
        vec![
            metric("Time to first token", |l| &l.ttft_ms),
            metric("Inter-token latency", |l| &l.itl_ms),
            metric("End-to-end latency", |l| &l.e2e_ms),
        ],
    )
}

/// Output tokens/s against tail TTFT, median E2E and the speed one user
/// sees (1000 / TPOT p50, tokens/s per request): the throughput a latency
/// budget buys, and the throughput-interactivity trade-off.
fn throughput_latency(report: &Report) -> Option<ChartSpec> {
    let groups = Groups::of(&report.levels).everywhere();
    let against = |title: &str, x_label: &str, x: fn(&LevelStats) -> Option<f64>| {
        panel(
            title,
            x_label,
            "output tokens/s",
            groups.series(&report.levels, &[("throughput", false)], |l, _| {
                Some((x(l)?, l.output_tokens_per_s))
            }),
        )
    };
    chart(
        "throughput_latency",
        "Throughput against latency (one point per load level)",
        vec![
            against("Against TTFT p99", "TTFT p99 (ms)", |l| l.ttft_ms.p99),
            against("Against E2E p50", "E2E p50 (ms)", |l| l.e2e_ms.p50),
            against(
                "Against per-user speed",
                "tokens/s per user (1000 / TPOT p50)",
                |l| l.tpot_ms.p50.filter(|t| *t > 0.0).map(|t| 1000.0 / t),
            ),
        ],
    )
}

/// TTFT against context length, by turn and by prompt-token bucket.
fn context(report: &Report) -> Option<ChartSpec> {
    let by = |title: &str, groups: &[GroupStats]| {
        panel(
            title,
            "prompt tokens (mean of the group)",
            "TTFT (ms)",
            level_series(groups, P50_P99, |g, i| {
                let x = g.prompt_tokens_mean?;
                Some((
                    x,
                    if i == 0 {
                        g.ttft_ms.p50?
                    } else {
                        g.ttft_ms.p99?
                    },
                ))
            }),
        )
    };
    chart(
        "context",
        "Time to first token against context length",
        vec![
            by("By turn", &report.turns),
            by("By prompt-token bucket", &report.prompt_buckets),
        ],
    )
}

/// Each level over its own time: TTFT and E2E per slice of scheduled
/// time, and (when some failed) the share of the slice's requests that
/// succeeded. A queue
/// that grows shows as a rising line, failures that begin mid-level as a
/// falling one.
fn timeline(report: &Report) -> Option<ChartSpec> {
    let slices = &in_percent(&report.timeline);
    let latency = |title: &str, dist: fn(&GroupStats) -> &crate::model::Dist| {
        panel(
            title,
            LEVEL_SHARE,
            "latency (ms)",
            level_series(slices, P50_P99, |g, i| {
                let d = dist(g);
                Some((g.order, if i == 0 { d.p50? } else { d.p99? }))
            }),
        )
        .map(linear_x)
    };
    // Only when some slice had a failure: otherwise a flat line at 100 %.
    let failures = slices.iter().any(|g| g.ok < g.requests);
    let ok = panel(
        "Requests that succeeded",
        LEVEL_SHARE,
        "ok (%)",
        level_series(slices, &[("ok", false)], |g, _| {
            (g.requests > 0).then(|| (g.order, 100.0 * g.ok as f64 / g.requests as f64))
        }),
    )
    .filter(|_| failures)
    .map(|p| Panel {
        y_max: Some(105.0),
        ..linear_x(p)
    });
    chart(
        "timeline",
        "Latency over each level's time (by when requests were scheduled)",
        vec![
            latency("Time to first token", |g| &g.ttft_ms),
            latency("End-to-end latency", |g| &g.e2e_ms),
            ok,
        ],
    )
}

const LEVEL_SHARE: &str = "into the level (% of its scheduled span, slice middles)";

/// The slices with `order` as the slice middle's place in its level, in
/// percent: levels of different lengths (a level of N requests at rate R
/// lasts N / R) share one axis. The report's slices are sorted by level
/// and time, so a level's are consecutive.
fn in_percent(slices: &[GroupStats]) -> Vec<GroupStats> {
    let mut out: Vec<GroupStats> = slices.to_vec();
    let mut start = 0;
    while start < out.len() {
        let n = out[start..]
            .iter()
            .take_while(|g| g.key == out[start].key)
            .count();
        for (k, g) in out[start..start + n].iter_mut().enumerate() {
            g.order = (k as f64 + 0.5) / n as f64 * 100.0;
        }
        start += n;
    }
    out
}

/// Time runs on a linear axis, however far it spans.
fn linear_x(p: Panel) -> Panel {
    Panel { x_log: false, ..p }
}

/// How late the client sent requests against its schedule.
fn lateness(report: &Report) -> Option<ChartSpec> {
    let groups = Groups::of(&report.levels);
    let panel = panel(
        "Client lateness",
        &groups.load_axis,
        "send time after schedule (ms)",
        groups.series(&report.levels, P50_P99, |l, i| {
            let v = if i == 0 {
                l.lateness_p50_ms?
            } else {
                l.lateness_p99_ms?
            };
            Some((l.key.load_value, v))
        }),
    );
    chart("lateness", "Client lateness against load", vec![panel])
}

/// The server's own figures per level, from its /metrics.
fn server(report: &Report) -> Option<ChartSpec> {
    let groups = Groups::of(&report.levels);
    let gauge = |scale: f64, pick: fn(&ServerFigures, usize) -> Option<f64>| {
        groups.series(&report.levels, MEAN_MAX, move |l, i| {
            let v = pick(l.server.as_ref()?, i)?;
            Some((l.key.load_value, v * scale))
        })
    };
    let panels = vec![
        panel(
            "Running requests",
            &groups.load_axis,
            "requests",
            gauge(1.0, |s, i| {
                if i == 0 {
                    s.running_mean
                } else {
                    s.running_max
                }
            }),
        ),
        panel(
            "Waiting requests",
            &groups.load_axis,
            "requests",
            gauge(1.0, |s, i| {
                if i == 0 {
                    s.waiting_mean
                } else {
                    s.waiting_max
                }
            }),
        ),
        panel(
            "KV cache usage",
            &groups.load_axis,
            "KV cache used (%)",
            gauge(100.0, |s, i| {
                if i == 0 {
                    s.kv_usage_mean
                } else {
                    s.kv_usage_max
                }
            }),
        )
        .map(|p| Panel {
            y_max: Some(105.0),
            ..p
        }),
        panel(
            "Prefix cache hit rate",
            &groups.load_axis,
            "hit rate (%)",
            groups.series(&report.levels, &[("hit rate", false)], |l, _| {
                let v = l.server.as_ref()?.prefix_cache_hit_rate?;
                Some((l.key.load_value, v * 100.0))
            }),
        )
        .map(|p| Panel {
            y_max: Some(105.0),
            ..p
        }),
    ];
    chart("server", "Server metrics per load level", panels)
}

const P50_P99: &[(&str, bool)] = &[("p50", false), ("p99", true)];
const MEAN_MAX: &[(&str, bool)] = &[("mean", false), ("max", true)];

/// A panel, or None when no series has a point.
fn panel(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Option<Panel> {
    let series: Vec<Series> = series
        .into_iter()
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return None;
    }
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    Some(Panel {
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: y_label.to_string(),
        x_log: wants_log(&xs),
        diagonal: false,
        y_max: None,
        series,
    })
}

/// A chart, or None when none of its panels has data.
fn chart(name: &'static str, title: &str, panels: Vec<Option<Panel>>) -> Option<ChartSpec> {
    let panels: Vec<Panel> = panels.into_iter().flatten().collect();
    (!panels.is_empty()).then(|| ChartSpec {
        name,
        title: title.to_string(),
        panels,
    })
}

fn wants_log(xs: &[f64]) -> bool {
    let (lo, hi) = xs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    });
    xs.iter().all(|&x| x > 0.0) && hi / lo > LOG_SPAN
}

/// How levels fall into series: one per run, round and load mode, named by
/// whatever differs between them.
struct Groups {
    keys: Vec<GroupKey>,
    show_run: bool,
    show_round: bool,
    show_mode: bool,
    /// The x axis label for load levels.
    load_axis: String,
    /// Keep levels whose load value is not finite (`qps inf`): only where the
    /// x axis is not the load.
    keep_unbounded: bool,
}

type GroupKey = (String, u32, String);

fn group_key(k: &LevelKey) -> GroupKey {
    (k.run_id.clone(), k.round, k.load_mode.clone())
}

impl Groups {
    fn of(levels: &[LevelStats]) -> Groups {
        let mut keys: Vec<GroupKey> = Vec::new();
        for l in levels {
            let g = group_key(&l.key);
            if !keys.contains(&g) {
                keys.push(g);
            }
        }
        let distinct = |f: fn(&GroupKey) -> String| {
            let mut v: Vec<String> = keys.iter().map(f).collect();
            v.sort();
            v.dedup();
            v
        };
        let modes = distinct(|k| k.2.clone());
        Groups {
            show_run: distinct(|k| k.0.clone()).len() > 1,
            show_round: distinct(|k| k.1.to_string()).len() > 1,
            show_mode: modes.len() > 1,
            load_axis: match modes.as_slice() {
                [one] => load_axis(one),
                _ => "load level".to_string(),
            },
            keys,
            keep_unbounded: false,
        }
    }

    fn everywhere(self) -> Groups {
        Groups {
            keep_unbounded: true,
            ..self
        }
    }

    fn name(&self, g: &GroupKey) -> String {
        let mut parts = Vec::new();
        if self.show_run {
            parts.push(g.0.clone());
        }
        if self.show_mode {
            parts.push(g.2.clone());
        }
        if self.show_round {
            parts.push(format!("round {}", g.1));
        }
        parts.join(" ")
    }

    /// For each group and each figure in `stats` (label, dashed), the points
    /// `point(level, figure index)` gives, in load order.
    fn series(
        &self,
        levels: &[LevelStats],
        stats: &[(&str, bool)],
        point: impl Fn(&LevelStats, usize) -> Option<(f64, f64)>,
    ) -> Vec<Series> {
        let mut out = Vec::new();
        for (color, g) in self.keys.iter().enumerate() {
            let mut members: Vec<&LevelStats> = levels
                .iter()
                .filter(|l| group_key(&l.key) == *g)
                .filter(|l| self.keep_unbounded || l.key.load_value.is_finite())
                .collect();
            members.sort_by(|a, b| a.key.load_value.total_cmp(&b.key.load_value));
            for (i, (stat, dashed)) in stats.iter().enumerate() {
                let points = finite_points(members.iter().filter_map(|l| point(l, i)));
                out.push(Series {
                    group: self.name(g),
                    stat: stat.to_string(),
                    color,
                    dashed: *dashed,
                    points,
                });
            }
        }
        out
    }
}

/// Series per level (turns, buckets and slices belong to one level each),
/// one per figure in `stats` (label, dashed), points in group order.
fn level_series(
    groups: &[GroupStats],
    stats: &[(&str, bool)],
    point: impl Fn(&GroupStats, usize) -> Option<(f64, f64)>,
) -> Vec<Series> {
    let mut by_level: BTreeMap<usize, (&LevelKey, Vec<&GroupStats>)> = BTreeMap::new();
    let mut order: Vec<&LevelKey> = Vec::new();
    for g in groups {
        let idx = match order.iter().position(|k| **k == g.key) {
            Some(i) => i,
            None => {
                order.push(&g.key);
                order.len() - 1
            }
        };
        by_level
            .entry(idx)
            .or_insert((&g.key, Vec::new()))
            .1
            .push(g);
    }
    let several_runs = order.iter().any(|k| k.run_id != order[0].run_id);
    let mut out = Vec::new();
    for (color, (key, mut members)) in by_level {
        members.sort_by(|a, b| a.order.total_cmp(&b.order));
        let name = if several_runs {
            format!("{} {}", key.run_id, key.label())
        } else {
            key.label()
        };
        for (i, (stat, dashed)) in stats.iter().enumerate() {
            out.push(Series {
                group: name.clone(),
                stat: stat.to_string(),
                color,
                dashed: *dashed,
                points: finite_points(members.iter().filter_map(|g| point(g, i))),
            });
        }
    }
    out
}

fn finite_points(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

fn load_axis(mode: &str) -> String {
    match mode {
        "qps" => "target arrival rate (/s)".to_string(),
        "concurrency" => "concurrency (requests in flight)".to_string(),
        "users" => "users".to_string(),
        "trace" => "trace time scale (x)".to_string(),
        other => other.to_string(),
    }
}

/// `1.5k`, `12`, `0.25`: short tick labels.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else if s.is_empty() {
        fmt_value(v)
    } else {
        s.to_string()
    }
}
