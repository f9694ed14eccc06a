//! Backend flavors: which exposed series of each serving engine mean the
//! same thing as a vLLM series, so a report can compare engines.
//!
//! The canonical name is vLLM's own metric name without the `vllm:` prefix
//! (e.g. `num_requests_running`, `prefix_cache_hits`); histogram series keep
//! their `_bucket`/`_sum`/`_count` suffix (`time_to_first_token_seconds_sum`).
//! Values are never converted: every mapped series already has vLLM's unit.
//! docs/server-metrics.md lists the tables and which rows are uncertain.

/// The serving engine behind a metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Vllm,
    Sglang,
    Tgi,
    Llamacpp,
    Mindie,
    /// Unknown engine: every table is tried, in the order above.
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One exposed series name (a gauge or counter sample).
    Series,
    /// A histogram or summary family: the bare name and its `_bucket`,
    /// `_sum` and `_count` series all map, keeping the suffix.
    Histogram,
}

struct Rule {
    exposed: &'static str,
    canonical: &'static str,
    shape: Shape,
}

const fn series(exposed: &'static str, canonical: &'static str) -> Rule {
    Rule {
        exposed,
        canonical,
        shape: Shape::Series,
    }
}

const fn histogram(exposed: &'static str, canonical: &'static str) -> Rule {
    Rule {
        exposed,
        canonical,
        shape: Shape::Histogram,
    }
}

/// Within a table, earlier rules win when a server exposes two series with
/// the same meaning (e.g. the current and the deprecated name).
const VLLM: &[Rule] = &[
    series("vllm:num_requests_running", "num_requests_running"),
    series("vllm:num_requests_waiting", "num_requests_waiting"),
    series("vllm:kv_cache_usage_perc", "kv_cache_usage_perc"),
    series("vllm:gpu_cache_usage_perc", "kv_cache_usage_perc"),
    series("vllm:prefix_cache_queries_total", "prefix_cache_queries"),
    series("vllm:prefix_cache_queries", "prefix_cache_queries"),
    series(
        "vllm:gpu_prefix_cache_queries_total",
        "prefix_cache_queries",
    ),
    series("vllm:gpu_prefix_cache_queries", "prefix_cache_queries"),
    series("vllm:prefix_cache_hits_total", "prefix_cache_hits"),
    series("vllm:prefix_cache_hits", "prefix_cache_hits"),
    series("vllm:gpu_prefix_cache_hits_total", "prefix_cache_hits"),
    series("vllm:gpu_prefix_cache_hits", "prefix_cache_hits"),
    series("vllm:gpu_prefix_cache_hit_rate", "prefix_cache_hit_rate"),
    series(
        "vllm:external_prefix_cache_queries_total",
        "external_prefix_cache_queries",
    ),
    series(
        "vllm:external_prefix_cache_queries",
        "external_prefix_cache_queries",
    ),
    series(
        "vllm:external_prefix_cache_hits_total",
        "external_prefix_cache_hits",
    ),
    series(
        "vllm:external_prefix_cache_hits",
        "external_prefix_cache_hits",
    ),
    series("vllm:prompt_tokens_total", "prompt_tokens_total"),
    series("vllm:generation_tokens_total", "generation_tokens_total"),
    series("vllm:num_preemptions_total", "num_preemptions_total"),
    series("vllm:request_success_total", "request_success_total"),
    histogram(
        "vllm:time_to_first_token_seconds",
        "time_to_first_token_seconds",
    ),
    histogram(
        "vllm:inter_token_latency_seconds",
        "inter_token_latency_seconds",
    ),
    histogram(
        "vllm:time_per_output_token_seconds",
        "inter_token_latency_seconds",
    ),
    histogram(
        "vllm:request_time_per_output_token_seconds",
        "request_time_per_output_token_seconds",
    ),
    histogram(
        "vllm:e2e_request_latency_seconds",
        "e2e_request_latency_seconds",
    ),
    histogram(
        "vllm:request_queue_time_seconds",
        "request_queue_time_seconds",
    ),
    histogram("vllm:request_prompt_tokens", "request_prompt_tokens"),
    histogram(
        "vllm:request_generation_tokens",
        "request_generation_tokens",
    ),
];

const SGLANG: &[Rule] = &[
    series("sglang:num_running_reqs", "num_requests_running"),
    series("sglang:num_queue_reqs", "num_requests_waiting"),
    series("sglang:token_usage", "kv_cache_usage_perc"),
    series("sglang:cache_hit_rate", "prefix_cache_hit_rate"),
    series("sglang:cached_tokens_total", "prefix_cache_hits"),
    series("sglang:prompt_tokens_total", "prompt_tokens_total"),
    series("sglang:generation_tokens_total", "generation_tokens_total"),
    series(
        "sglang:num_retracted_requests_total",
        "num_preemptions_total",
    ),
    histogram(
        "sglang:time_to_first_token_seconds",
        "time_to_first_token_seconds",
    ),
    histogram(
        "sglang:inter_token_latency_seconds",
        "inter_token_latency_seconds",
    ),
    histogram(
        "sglang:time_per_output_token_seconds",
        "inter_token_latency_seconds",
    ),
    histogram(
        "sglang:e2e_request_latency_seconds",
        "e2e_request_latency_seconds",
    ),
    histogram("sglang:queue_time_seconds", "request_queue_time_seconds"),
    histogram("sglang:prompt_tokens_histogram", "request_prompt_tokens"),
    histogram(
        "sglang:generation_tokens_histogram",
        "request_generation_tokens",
    ),
];

const TGI: &[Rule] = &[
    series("tgi_batch_current_size", "num_requests_running"),
    series("tgi_queue_size", "num_requests_waiting"),
    series("tgi_request_success", "request_success_total"),
    histogram("tgi_request_duration", "e2e_request_latency_seconds"),
    histogram("tgi_request_queue_duration", "request_queue_time_seconds"),
    histogram(
        "tgi_request_mean_time_per_token_duration",
        "request_time_per_output_token_seconds",
    ),
    histogram("tgi_request_input_length", "request_prompt_tokens"),
    histogram("tgi_request_generated_tokens", "request_generation_tokens"),
];

const LLAMACPP: &[Rule] = &[
    series("llamacpp:requests_processing", "num_requests_running"),
    series("llamacpp:requests_deferred", "num_requests_waiting"),
    series("llamacpp:kv_cache_usage_ratio", "kv_cache_usage_perc"),
    // llama.cpp counts the prompt tokens it computed and those it reused
    // from the cache apart; vLLM's prompt_tokens_total is their sum.
    series(
        "llamacpp:prompt_tokens_total",
        "prompt_tokens_uncached_total",
    ),
    series("llamacpp:prompt_tokens_cached_total", "prefix_cache_hits"),
    series("llamacpp:tokens_predicted_total", "generation_tokens_total"),
];

/// MindIE Service exposes vLLM-0.x names without a prefix, with `npu_` in
/// place of `gpu_`.
const MINDIE: &[Rule] = &[
    series("num_requests_running", "num_requests_running"),
    series("num_requests_waiting", "num_requests_waiting"),
    series("npu_cache_usage_perc", "kv_cache_usage_perc"),
    series("npu_prefix_cache_hit_rate", "prefix_cache_hit_rate"),
    series("prompt_tokens_total", "prompt_tokens_total"),
    series("generation_tokens_total", "generation_tokens_total"),
    series("num_preemptions_total", "num_preemptions_total"),
    series("request_success_total", "request_success_total"),
    histogram("time_to_first_token_seconds", "time_to_first_token_seconds"),
    histogram(
        "time_per_output_token_seconds",
        "inter_token_latency_seconds",
    ),
    histogram("e2e_request_latency_seconds", "e2e_request_latency_seconds"),
    histogram("request_prompt_tokens", "request_prompt_tokens"),
    histogram("request_generation_tokens", "request_generation_tokens"),
];

const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// A series' canonical name, with what is needed to pick one source when
/// two series of one scrape claim the same meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// The canonical name of this series (suffix included).
    pub name: String,
    /// The canonical family (suffix excluded).
    pub family: &'static str,
    /// Lower is preferred.
    pub rank: usize,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Vllm => "vllm",
            Backend::Sglang => "sglang",
            Backend::Tgi => "tgi",
            Backend::Llamacpp => "llamacpp",
            Backend::Mindie => "mindie",
            Backend::Generic => "generic",
        }
    }

    fn tables(self) -> &'static [&'static [Rule]] {
        match self {
            Backend::Vllm => &[VLLM],
            Backend::Sglang => &[SGLANG],
            Backend::Tgi => &[TGI],
            Backend::Llamacpp => &[LLAMACPP],
            Backend::Mindie => &[MINDIE],
            Backend::Generic => &[VLLM, SGLANG, TGI, LLAMACPP, MINDIE],
        }
    }

    /// The canonical name of an exposed series, if this flavor knows it.
    pub fn canonical(self, series: &str) -> Option<Canonical> {
        let rules = self.tables().iter().flat_map(|table| table.iter());
        for (rank, rule) in rules.enumerate() {
            let suffix = match rule.shape {
                _ if series == rule.exposed => "",
                Shape::Series => continue,
                Shape::Histogram => {
                    let Some(rest) = series.strip_prefix(rule.exposed) else {
                        continue;
                    };
                    match HISTOGRAM_SUFFIXES.iter().find(|s| **s == rest) {
                        Some(suffix) => suffix,
                        None => continue,
                    }
                }
            };
            return Some(Canonical {
                name: format!("{}{suffix}", rule.canonical),
                family: rule.canonical,
                rank,
            });
        }
        None
    }
}

/// Canonical names for the series of one scrape, in order. When two
/// different exposed families claim the same canonical family (a server
/// exposing both a metric and its deprecated alias), only the preferred
/// one keeps the canonical name, so a report never counts twice.
pub fn assign<'a>(backend: Backend, names: impl Iterator<Item = &'a str>) -> Vec<Option<String>> {
    let found: Vec<Option<Canonical>> = names.map(|name| backend.canonical(name)).collect();
    let mut best: std::collections::HashMap<&'static str, usize> = Default::default();
    for c in found.iter().flatten() {
        best.entry(c.family)
            .and_modify(|rank| *rank = (*rank).min(c.rank))
            .or_insert(c.rank);
    }
    found
        .into_iter()
        .map(|c| c.and_then(|c| (best.get(c.family) == Some(&c.rank)).then_some(c.name)))
        .collect()
}

/// Every canonical family some flavor maps to.
#[cfg(test)]
fn all_rules() -> impl Iterator<Item = (&'static str, &'static Rule)> {
    [
        ("vllm", VLLM),
        ("sglang", SGLANG),
        ("tgi", TGI),
        ("llamacpp", LLAMACPP),
        ("mindie", MINDIE),
    ]
    .into_iter()
    .flat_map(|(flavor, table)| table.iter().map(move |rule| (flavor, rule)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn mapped(backend: Backend, text: &str) -> Vec<(String, String)> {
        let exp = parse(text);
        let names = assign(backend, exp.samples.iter().map(|s| s.name.as_str()));
        exp.samples
            .iter()
            .zip(names)
            .filter_map(|(s, c)| c.map(|c| (s.name.clone(), c)))
            .collect()
    }

    fn has(map: &[(String, String)], exposed: &str, canonical: &str) -> bool {
        map.iter().any(|(e, c)| e == exposed && c == canonical)
    }

    #[test]
    fn vllm_series_map_to_themselves_without_prefix() {
        let map = mapped(Backend::Vllm, super::super::parse::tests::VLLM);
        for (exposed, canonical) in [
            ("vllm:num_requests_running", "num_requests_running"),
            ("vllm:num_requests_waiting", "num_requests_waiting"),
            ("vllm:kv_cache_usage_perc", "kv_cache_usage_perc"),
            ("vllm:prefix_cache_queries_total", "prefix_cache_queries"),
            ("vllm:prefix_cache_hits_total", "prefix_cache_hits"),
            ("vllm:prompt_tokens_total", "prompt_tokens_total"),
            ("vllm:generation_tokens_total", "generation_tokens_total"),
            (
                "vllm:time_to_first_token_seconds_bucket",
                "time_to_first_token_seconds_bucket",
            ),
            (
                "vllm:inter_token_latency_seconds_sum",
                "inter_token_latency_seconds_sum",
            ),
            (
                "vllm:e2e_request_latency_seconds_count",
                "e2e_request_latency_seconds_count",
            ),
        ] {
            assert!(has(&map, exposed, canonical), "{exposed} → {canonical}");
        }
        // Python's runtime series and info gauges have no vLLM meaning.
        assert!(!map.iter().any(|(e, _)| e.starts_with("python_")));
        assert!(!map.iter().any(|(e, _)| e == "vllm:cache_config_info"));
        // request_success_total keeps both finished_reason series.
        assert_eq!(
            map.iter()
                .filter(|(_, c)| c == "request_success_total")
                .count(),
            2
        );
    }

    #[test]
    fn sglang_tgi_llamacpp_mindie_map_to_vllm_names() {
        let sglang = mapped(Backend::Sglang, super::super::parse::tests::SGLANG);
        assert!(has(
            &sglang,
            "sglang:num_running_reqs",
            "num_requests_running"
        ));
        assert!(has(
            &sglang,
            "sglang:num_queue_reqs",
            "num_requests_waiting"
        ));
        assert!(has(&sglang, "sglang:token_usage", "kv_cache_usage_perc"));
        assert!(has(
            &sglang,
            "sglang:cache_hit_rate",
            "prefix_cache_hit_rate"
        ));
        assert!(has(
            &sglang,
            "sglang:cached_tokens_total",
            "prefix_cache_hits"
        ));
        assert!(has(
            &sglang,
            "sglang:inter_token_latency_seconds_bucket",
            "inter_token_latency_seconds_bucket"
        ));

        let tgi = mapped(Backend::Tgi, super::super::parse::tests::TGI);
        assert!(has(&tgi, "tgi_queue_size", "num_requests_waiting"));
        assert!(has(&tgi, "tgi_batch_current_size", "num_requests_running"));
        assert!(has(
            &tgi,
            "tgi_request_duration_sum",
            "e2e_request_latency_seconds_sum"
        ));
        assert!(!tgi.iter().any(|(e, _)| e == "tgi_request_failure"));

        let llama = mapped(Backend::Llamacpp, super::super::parse::tests::LLAMACPP);
        assert!(has(
            &llama,
            "llamacpp:requests_processing",
            "num_requests_running"
        ));
        assert!(has(
            &llama,
            "llamacpp:requests_deferred",
            "num_requests_waiting"
        ));
        assert!(has(
            &llama,
            "llamacpp:kv_cache_usage_ratio",
            "kv_cache_usage_perc"
        ));
        assert!(has(
            &llama,
            "llamacpp:prompt_tokens_total",
            "prompt_tokens_uncached_total"
        ));
        assert!(has(
            &llama,
            "llamacpp:prompt_tokens_cached_total",
            "prefix_cache_hits"
        ));
        assert!(has(
            &llama,
            "llamacpp:tokens_predicted_total",
            "generation_tokens_total"
        ));
        assert_eq!(llama.len(), 6, "{llama:?}");

        let mindie = mapped(Backend::Mindie, super::super::parse::tests::MINDIE);
        assert!(has(&mindie, "npu_cache_usage_perc", "kv_cache_usage_perc"));
        assert!(has(
            &mindie,
            "time_to_first_token_seconds_bucket",
            "time_to_first_token_seconds_bucket"
        ));
    }

    #[test]
    fn a_flavor_only_knows_its_own_names_and_generic_knows_all() {
        assert_eq!(Backend::Sglang.canonical("vllm:num_requests_running"), None);
        assert_eq!(Backend::Vllm.canonical("sglang:num_running_reqs"), None);
        for backend in [Backend::Generic, Backend::Sglang] {
            assert_eq!(
                backend.canonical("sglang:num_running_reqs").map(|c| c.name),
                Some("num_requests_running".to_string())
            );
        }
        // Suffixes only apply to histogram families, and only these three.
        assert_eq!(
            Backend::Vllm.canonical("vllm:num_requests_running_sum"),
            None
        );
        assert_eq!(
            Backend::Vllm.canonical("vllm:e2e_request_latency_seconds_created"),
            None
        );
        assert_eq!(
            Backend::Vllm
                .canonical("vllm:e2e_request_latency_seconds")
                .map(|c| c.name),
            Some("e2e_request_latency_seconds".to_string())
        );
    }

    #[test]
    fn a_deprecated_alias_loses_to_the_current_name_in_one_scrape() {
        let names = [
            "vllm:gpu_cache_usage_perc",
            "vllm:kv_cache_usage_perc",
            "vllm:time_per_output_token_seconds_sum",
            "vllm:inter_token_latency_seconds_sum",
            "vllm:inter_token_latency_seconds_count",
        ];
        assert_eq!(
            assign(Backend::Vllm, names.into_iter()),
            vec![
                None,
                Some("kv_cache_usage_perc".to_string()),
                None,
                Some("inter_token_latency_seconds_sum".to_string()),
                Some("inter_token_latency_seconds_count".to_string()),
            ]
        );
        // Alone, the older name is the source.
        assert_eq!(
            assign(Backend::Vllm, ["vllm:gpu_cache_usage_perc"].into_iter()),
            vec![Some("kv_cache_usage_perc".to_string())]
        );
    }

    #[test]
    fn the_documentation_lists_every_mapping() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/server-metrics.md"
        ))
        .expect("docs/server-metrics.md");
        for (flavor, rule) in all_rules() {
            assert!(
                doc.contains(&format!("`{}`", rule.exposed)),
                "docs/server-metrics.md does not list {flavor} series {}",
                rule.exposed
            );
            assert!(
                doc.contains(&format!("`{}`", rule.canonical)),
                "docs/server-metrics.md does not list canonical {}",
                rule.canonical
            );
        }
    }
}
