//! Counters, gauges and histograms of the mock engine, rendered in the
//! Prometheus text format under the names of vLLM, SGLang, TGI or llama.cpp.
//! Everything is a relaxed atomic: request tasks never take a lock here.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::args::MetricsFlavor;
use super::faults::Fault;

/// Latency buckets (seconds) of vLLM's TTFT histogram.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// Latency buckets (seconds) of vLLM's inter-token latency histogram.
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// Latency buckets (seconds) of request-level histograms (E2E, queue).
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Token-count buckets (powers of two).
const LENGTH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 32768.0, 65536.0, 131072.0,
];

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((v * 1e6).round() as u64, Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Observes `n` zeros at once.
    pub fn observe_zeros(&self, n: u64) {
        if n > 0 {
            self.counts[0].fetch_add(n, Relaxed);
        }
    }

    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Relaxed) as f64 / 1e6
    }
}

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    pub running: AtomicI64,
    pub waiting: AtomicI64,
    pub kv_blocks_in_use: AtomicI64,
    pub kv_blocks_total: u64,
    pub block_size: u64,
    pub requests_started: AtomicU64,
    pub finished_length: AtomicU64,
    pub finished_stop: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    pub cache_queries: AtomicU64,
    pub cache_hits: AtomicU64,
    pub external_queries: AtomicU64,
    pub external_hits: AtomicU64,
    /// Time spent in (modelled) prefill and decode, nanoseconds.
    pub prefill_nanos: AtomicU64,
    pub decode_nanos: AtomicU64,
    pub faults: [AtomicU64; Fault::ALL.len()],
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub queue: Histogram,
    pub prompt_len: Histogram,
    pub generation_len: Histogram,
}

impl Metrics {
    pub fn new(kv_blocks_total: u32, block_size: u32) -> Metrics {
        Metrics {
            running: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
            kv_blocks_in_use: AtomicI64::new(0),
            kv_blocks_total: kv_blocks_total as u64,
            block_size: block_size as u64,
            requests_started: AtomicU64::new(0),
            finished_length: AtomicU64::new(0),
            finished_stop: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            cache_queries: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            external_queries: AtomicU64::new(0),
            external_hits: AtomicU64::new(0),
            prefill_nanos: AtomicU64::new(0),
            decode_nanos: AtomicU64::new(0),
            faults: std::array::from_fn(|_| AtomicU64::new(0)),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_BUCKETS),
            queue: Histogram::new(REQUEST_BUCKETS),
            prompt_len: Histogram::new(LENGTH_BUCKETS),
            generation_len: Histogram::new(LENGTH_BUCKETS),
        }
    }

    pub fn count_fault(&self, fault: Fault) {
        if let Some(i) = Fault::ALL.iter().position(|f| *f == fault) {
            self.faults[i].fetch_add(1, Relaxed);
        }
    }

    /// Fraction of the KV cache held by running requests, 0 to 1.
    pub fn kv_usage(&self) -> f64 {
        if self.kv_blocks_total == 0 {
            return 0.0;
        }
        let used = self.kv_blocks_in_use.load(Relaxed).max(0) as f64;
        (used / self.kv_blocks_total as f64).min(1.0)
    }

    /// The Prometheus text exposition of every metric, named per `flavor`.
    pub fn render(&self, flavor: MetricsFlavor, model: &str) -> String {
        let label = format!("model_name=\"{}\"", escape_label(model));
        let mut out = Text {
            s: String::with_capacity(16 * 1024),
        };
        match flavor {
            MetricsFlavor::Vllm => self.render_vllm(&mut out, &label),
            MetricsFlavor::Sglang => self.render_sglang(&mut out, &label),
            MetricsFlavor::Tgi => self.render_tgi(&mut out),
            MetricsFlavor::Llamacpp => self.render_llamacpp(&mut out),
        }
        // The mock's own: how many of each fault it injected.
        out.head(
            "trace_mock_faults_total",
            "counter",
            "Faults injected on purpose.",
        );
        for (i, fault) in Fault::ALL.iter().enumerate() {
            let l = format!("kind=\"{}\"", fault.name());
            out.sample(
                "trace_mock_faults_total",
                &l,
                self.faults[i].load(Relaxed) as f64,
            );
        }
        out.s
    }

    fn render_vllm(&self, out: &mut Text, l: &str) {
        let g = |v: &AtomicI64| v.load(Relaxed).max(0) as f64;
        let c = |v: &AtomicU64| v.load(Relaxed) as f64;
        out.gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            l,
            g(&self.running),
        );
        out.gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            l,
            g(&self.waiting),
        );
        out.gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            l,
            self.kv_usage(),
        );
        out.counter(
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in tokens.",
            l,
            c(&self.cache_queries),
        );
        out.counter(
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in tokens.",
            l,
            c(&self.cache_hits),
        );
        out.counter(
            "vllm:external_prefix_cache_queries_total",
            "External prefix cache queries, in tokens.",
            l,
            c(&self.external_queries),
        );
        out.counter(
            "vllm:external_prefix_cache_hits_total",
            "External prefix cache hits, in tokens.",
            l,
            c(&self.external_hits),
        );
        out.counter(
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            l,
            c(&self.prompt_tokens),
        );
        out.counter(
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            l,
            c(&self.generation_tokens),
        );
        out.head(
            "vllm:request_success_total",
            "counter",
            "Count of successfully processed requests.",
        );
        out.sample(
            "vllm:request_success_total",
            &format!("finished_reason=\"length\",{l}"),
            c(&self.finished_length),
        );
        out.sample(
            "vllm:request_success_total",
            &format!("finished_reason=\"stop\",{l}"),
            c(&self.finished_stop),
        );
        out.histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            l,
            &self.ttft,
        );
        out.histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            l,
            &self.itl,
        );
        out.histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            l,
            &self.e2e,
        );
        out.histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            l,
            &self.queue,
        );
        out.histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            l,
            &self.prompt_len,
        );
        out.histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            l,
            &self.generation_len,
        );
    }

    fn render_sglang(&self, out: &mut Text, l: &str) {
        let g = |v: &AtomicI64| v.load(Relaxed).max(0) as f64;
        let c = |v: &AtomicU64| v.load(Relaxed) as f64;
        let queries = c(&self.cache_queries);
        let hits = c(&self.cache_hits) + c(&self.external_hits);
        let hit_rate = if queries > 0.0 { hits / queries } else { 0.0 };
        out.gauge(
            "sglang:num_running_reqs",
            "The number of running requests.",
            l,
            g(&self.running),
        );
        out.gauge(
            "sglang:num_queue_reqs",
            "The number of requests in the waiting queue.",
            l,
            g(&self.waiting),
        );
        out.gauge("sglang:token_usage", "The token usage.", l, self.kv_usage());
        out.gauge(
            "sglang:cache_hit_rate",
            "The prefix cache hit rate.",
            l,
            hit_rate,
        );
        out.counter(
            "sglang:prompt_tokens_total",
            "Number of prefill tokens processed.",
            l,
            c(&self.prompt_tokens),
        );
        out.counter(
            "sglang:generation_tokens_total",
            "Number of generation tokens processed.",
            l,
            c(&self.generation_tokens),
        );
        out.head(
            "sglang:cached_tokens_total",
            "counter",
            "Number of cached prompt tokens.",
        );
        out.sample(
            "sglang:cached_tokens_total",
            &format!("cache_source=\"device\",{l}"),
            c(&self.cache_hits),
        );
        out.sample(
            "sglang:cached_tokens_total",
            &format!("cache_source=\"host\",{l}"),
            c(&self.external_hits),
        );
        out.counter(
            "sglang:num_requests_total",
            "Number of requests processed.",
            l,
            c(&self.requests_started),
        );
        out.histogram(
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            l,
            &self.ttft,
        );
        out.histogram(
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            l,
            &self.itl,
        );
        out.histogram(
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds.",
            l,
            &self.e2e,
        );
        out.histogram(
            "sglang:queue_time_seconds",
            "Histogram of queueing time in seconds.",
            l,
            &self.queue,
        );
    }

    fn render_tgi(&self, out: &mut Text) {
        let g = |v: &AtomicI64| v.load(Relaxed).max(0) as f64;
        let c = |v: &AtomicU64| v.load(Relaxed) as f64;
        let success = c(&self.finished_length) + c(&self.finished_stop);
        out.gauge(
            "tgi_queue_size",
            "Current queue size.",
            "",
            g(&self.waiting),
        );
        out.gauge(
            "tgi_batch_current_size",
            "Current batch size.",
            "",
            g(&self.running),
        );
        out.gauge(
            "tgi_batch_current_max_tokens",
            "Maximum tokens for the current batch.",
            "",
            (self.kv_blocks_in_use.load(Relaxed).max(0) as u64 * self.block_size) as f64,
        );
        out.counter(
            "tgi_request_count",
            "Total number of requests.",
            "",
            c(&self.requests_started),
        );
        out.counter(
            "tgi_request_success",
            "Number of successful requests.",
            "",
            success,
        );
        out.histogram(
            "tgi_request_duration",
            "End-to-end request latency in seconds.",
            "",
            &self.e2e,
        );
        out.histogram(
            "tgi_request_queue_duration",
            "Time spent in the queue in seconds.",
            "",
            &self.queue,
        );
        out.histogram(
            "tgi_request_inference_duration",
            "Time to first token in seconds.",
            "",
            &self.ttft,
        );
        out.histogram(
            "tgi_request_mean_time_per_token_duration",
            "Time between tokens in seconds.",
            "",
            &self.itl,
        );
        out.histogram(
            "tgi_request_input_length",
            "Input tokens per request.",
            "",
            &self.prompt_len,
        );
        out.histogram(
            "tgi_request_generated_tokens",
            "Generated tokens per request.",
            "",
            &self.generation_len,
        );
    }

    fn render_llamacpp(&self, out: &mut Text) {
        let g = |v: &AtomicI64| v.load(Relaxed).max(0) as f64;
        let c = |v: &AtomicU64| v.load(Relaxed) as f64;
        let prompt_s = c(&self.prefill_nanos) / 1e9;
        let decode_s = c(&self.decode_nanos) / 1e9;
        let per_s = |tokens: f64, secs: f64| if secs > 0.0 { tokens / secs } else { 0.0 };
        let kv_tokens =
            (self.kv_blocks_in_use.load(Relaxed).max(0) as u64 * self.block_size) as f64;
        // As llama.cpp counts them: prompt tokens computed, and those
        // reused from the cache, apart.
        let cached = c(&self.cache_hits) + c(&self.external_hits);
        out.counter(
            "llamacpp:prompt_tokens_total",
            "Number of prompt tokens processed, excluding cached tokens.",
            "",
            (c(&self.prompt_tokens) - cached).max(0.0),
        );
        out.counter(
            "llamacpp:prompt_tokens_cached_total",
            "Number of prompt tokens reused from the cache.",
            "",
            cached,
        );
        out.counter(
            "llamacpp:prompt_seconds_total",
            "Prompt process time.",
            "",
            prompt_s,
        );
        out.counter(
            "llamacpp:tokens_predicted_total",
            "Number of generation tokens processed.",
            "",
            c(&self.generation_tokens),
        );
        out.counter(
            "llamacpp:tokens_predicted_seconds_total",
            "Predict process time.",
            "",
            decode_s,
        );
        out.counter(
            "llamacpp:n_decode_total",
            "Total number of llama_decode() calls.",
            "",
            c(&self.generation_tokens),
        );
        out.gauge(
            "llamacpp:prompt_tokens_seconds",
            "Average prompt throughput in tokens/s.",
            "",
            per_s(c(&self.prompt_tokens), prompt_s),
        );
        out.gauge(
            "llamacpp:predicted_tokens_seconds",
            "Average generation throughput in tokens/s.",
            "",
            per_s(c(&self.generation_tokens), decode_s),
        );
        out.gauge(
            "llamacpp:kv_cache_usage_ratio",
            "KV-cache usage. 1 means 100 percent usage.",
            "",
            self.kv_usage(),
        );
        out.gauge(
            "llamacpp:kv_cache_tokens",
            "KV-cache tokens.",
            "",
            kv_tokens,
        );
        out.gauge(
            "llamacpp:requests_processing",
            "Number of requests processing.",
            "",
            g(&self.running),
        );
        out.gauge(
            "llamacpp:requests_deferred",
            "Number of requests deferred.",
            "",
            g(&self.waiting),
        );
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition being written.
struct Text {
    s: String,
}

impl Text {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, v: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.s, "{name} {}", number(v));
        } else {
            let _ = writeln!(self.s, "{name}{{{labels}}} {}", number(v));
        }
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &str, v: f64) {
        self.head(name, "gauge", help);
        self.sample(name, labels, v);
    }

    fn counter(&mut self, name: &str, help: &str, labels: &str, v: f64) {
        self.head(name, "counter", help);
        self.sample(name, labels, v);
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &str, h: &Histogram) {
        self.head(name, "histogram", help);
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += h.counts[i].load(Relaxed);
            let l = format!("le=\"{}\"{sep}{labels}", number(*bound));
            self.sample(&format!("{name}_bucket"), &l, cumulative as f64);
        }
        cumulative += h.counts[h.bounds.len()].load(Relaxed);
        let l = format!("le=\"+Inf\"{sep}{labels}");
        self.sample(&format!("{name}_bucket"), &l, cumulative as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum());
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }
}

/// A float as Prometheus writes it (`1.0` for whole numbers, like prometheus_client).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::new(10, 16);
        m.ttft.observe(0.003);
        m.ttft.observe(0.05);
        m.ttft.observe(10_000.0);
        let text = m.render(MetricsFlavor::Vllm, "m\"x");
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{le=\"0.001\",model_name=\"m\\\"x\"} 0.0"
        ));
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{le=\"0.005\",model_name=\"m\\\"x\"} 1.0"
        ));
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{le=\"0.06\",model_name=\"m\\\"x\"} 2.0"
        ));
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\\\"x\"} 3.0"
        ));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{model_name=\"m\\\"x\"} 3.0"));
        assert!((m.ttft.sum() - 10_000.053).abs() < 1e-6);
    }

    #[test]
    fn every_flavor_renders_its_names() {
        let m = Metrics::new(10, 16);
        m.running.store(3, Relaxed);
        for (flavor, name) in [
            (
                MetricsFlavor::Vllm,
                "vllm:num_requests_running{model_name=\"m\"} 3.0",
            ),
            (
                MetricsFlavor::Sglang,
                "sglang:num_running_reqs{model_name=\"m\"} 3.0",
            ),
            (MetricsFlavor::Tgi, "tgi_batch_current_size 3.0"),
            (MetricsFlavor::Llamacpp, "llamacpp:requests_processing 3.0"),
        ] {
            let text = m.render(flavor, "m");
            assert!(text.contains(name), "{flavor:?}:\n{text}");
        }
    }
}
