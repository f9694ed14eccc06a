//! A parser for the Prometheus text exposition format, version 0.0.4.
//!
//! The format is line based: `# HELP name text`, `# TYPE name kind`, other
//! `#` lines are comments, and every other non-blank line is one sample,
//! `name{label="value",...} value [timestamp]`. Label values escape `\\`,
//! `\"` and `\n`; values may be `NaN`, `+Inf` or `-Inf`. Lines may end in
//! CRLF. OpenMetrics additions that servers sometimes send anyway (`# EOF`,
//! an exemplar after ` # `) are tolerated.
//!
//! A line that does not parse is skipped and counted, never fatal: one odd
//! series must not cost a run its server metrics.

use std::collections::HashMap;

/// The declared kind of a metric family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// `untyped`, or an OpenMetrics kind the 0.0.4 format does not have.
    Untyped,
}

impl MetricType {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" | "gaugehistogram" | "info" | "stateset" => MetricType::Untyped,
            _ => return None,
        })
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name as exposed, e.g. `vllm:e2e_request_latency_seconds_bucket`.
    pub name: String,
    /// Labels in the order they were written, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// The optional timestamp of the line (ms since the Unix epoch).
    pub timestamp_ms: Option<i64>,
}

/// The first line that did not parse, for a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// 1-based line number.
    pub line: usize,
    pub reason: &'static str,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → declared type.
    pub types: HashMap<String, MetricType>,
    /// Lines skipped because they did not parse.
    pub malformed: u64,
    pub first_malformed: Option<Malformed>,
}

impl Exposition {
    /// The family a series belongs to: the series name itself if a `# TYPE`
    /// declared it, else the declared family it is a `_bucket`, `_sum`,
    /// `_count`, `_total` or `_created` series of, else `None`.
    pub fn declared_family<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.types.contains_key(name) {
            return Some(name);
        }
        SERIES_SUFFIXES.iter().find_map(|suffix| {
            let family = name.strip_suffix(suffix)?;
            self.types.contains_key(family).then_some(family)
        })
    }
}

/// Suffixes that histogram, summary and counter families add to their
/// series names.
pub const SERIES_SUFFIXES: [&str; 5] = ["_bucket", "_sum", "_count", "_total", "_created"];

/// Parses a whole exposition. Never fails: malformed lines are counted.
pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches([' ', '\t']);
        let result = if line.trim_end_matches([' ', '\t']).is_empty() {
            Ok(())
        } else if let Some(comment) = line.strip_prefix('#') {
            parse_comment(comment, &mut out.types)
        } else {
            parse_sample(line).map(|sample| out.samples.push(sample))
        };
        if let Err(reason) = result {
            out.malformed += 1;
            if out.first_malformed.is_none() {
                out.first_malformed = Some(Malformed {
                    line: index + 1,
                    reason,
                });
            }
        }
    }
    out
}

type LineResult<T> = Result<T, &'static str>;

/// `# HELP name text`, `# TYPE name kind`, or any other comment.
fn parse_comment(rest: &str, types: &mut HashMap<String, MetricType>) -> LineResult<()> {
    let mut words = rest.split([' ', '\t']).filter(|w| !w.is_empty());
    match words.next() {
        Some("HELP") => {
            let name = words.next().ok_or("HELP without a metric name")?;
            if !is_metric_name(name) {
                return Err("HELP with an invalid metric name");
            }
            Ok(())
        }
        Some("TYPE") => {
            let name = words.next().ok_or("TYPE without a metric name")?;
            if !is_metric_name(name) {
                return Err("TYPE with an invalid metric name");
            }
            let kind = words
                .next()
                .and_then(MetricType::parse)
                .ok_or("TYPE with an unknown or missing type")?;
            if words.next().is_some() {
                return Err("TYPE with extra words");
            }
            types.insert(name.to_string(), kind);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// A byte cursor over one line. Every byte the grammar looks at is ASCII, so
/// slicing at positions found this way stays on character boundaries.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }
}

fn parse_sample(line: &str) -> LineResult<Sample> {
    let mut cur = Cursor { line, pos: 0 };
    let name = cur.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    if !is_metric_name(name) {
        return Err("invalid metric name");
    }
    let blank_after_name = cur.skip_blanks();
    let labels = if cur.eat(b'{') {
        let labels = parse_labels(&mut cur)?;
        cur.skip_blanks();
        labels
    } else if blank_after_name {
        Vec::new()
    } else if cur.peek().is_none() {
        return Err("missing value");
    } else {
        return Err("invalid character in the metric name");
    };
    let value_word = cur.take_while(|b| b != b' ' && b != b'\t');
    if value_word.is_empty() {
        return Err("missing value");
    }
    let value = parse_value(value_word).ok_or("invalid value")?;
    cur.skip_blanks();
    let mut timestamp_ms = None;
    if cur.peek().is_some_and(|b| b != b'#') {
        let word = cur.take_while(|b| b != b' ' && b != b'\t');
        timestamp_ms = Some(word.parse::<i64>().map_err(|_| "invalid timestamp")?);
        cur.skip_blanks();
    }
    // Anything left must be an OpenMetrics exemplar (` # {...} value`).
    if !cur.rest().is_empty() && !cur.rest().starts_with('#') {
        return Err("unexpected text after the value");
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Parses `name="value",...}` after the opening brace.
fn parse_labels(cur: &mut Cursor<'_>) -> LineResult<Vec<(String, String)>> {
    let mut labels: Vec<(String, String)> = Vec::new();
    loop {
        cur.skip_blanks();
        if cur.eat(b'}') {
            return Ok(labels);
        }
        let key = cur.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        if key.is_empty() || key.as_bytes()[0].is_ascii_digit() {
            return Err("invalid label name");
        }
        cur.skip_blanks();
        if !cur.eat(b'=') {
            return Err("label without '='");
        }
        cur.skip_blanks();
        if !cur.eat(b'"') {
            return Err("label value not quoted");
        }
        let value = parse_label_value(cur)?;
        if labels.iter().any(|(k, _)| k == key) {
            return Err("duplicate label name");
        }
        labels.push((key.to_string(), value));
        cur.skip_blanks();
        if cur.eat(b',') {
            continue;
        }
        if cur.eat(b'}') {
            return Ok(labels);
        }
        return Err("expected ',' or '}' after a label");
    }
}

/// Reads a label value up to its closing quote, unescaping it.
fn parse_label_value(cur: &mut Cursor<'_>) -> LineResult<String> {
    let mut value = String::new();
    loop {
        let chunk = cur.take_while(|b| b != b'"' && b != b'\\');
        value.push_str(chunk);
        match cur.peek() {
            Some(b'"') => {
                cur.pos += 1;
                return Ok(value);
            }
            Some(b'\\') => {
                cur.pos += 1;
                match cur.peek() {
                    Some(b'\\') => value.push('\\'),
                    Some(b'"') => value.push('"'),
                    Some(b'n') => value.push('\n'),
                    _ => return Err("invalid escape in a label value"),
                }
                cur.pos += 1;
            }
            _ => return Err("unterminated label value"),
        }
    }
}

/// A sample value: a Go-style float, `NaN`, `+Inf`, `-Inf`.
fn parse_value(word: &str) -> Option<f64> {
    match word {
        "NaN" | "nan" => return Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    // Rust also accepts words like "infinity"; only digits, signs, dots and
    // exponents are valid here.
    if !word
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    word.parse::<f64>().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn find<'a>(exp: &'a Exposition, name: &str) -> Vec<&'a Sample> {
        exp.samples.iter().filter(|s| s.name == name).collect()
    }

    /// What a vLLM V1 server sends (written for this test, with the names
    /// and layout prometheus_client produces).
    pub(crate) const VLLM: &str = r#"# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12034.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-8B"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-8B"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.4125
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="Qwen/Qwen3-8B"} 183040.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="Qwen/Qwen3-8B"} 96256.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen3-8B"} 183040.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="Qwen/Qwen3-8B"} 25600.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="Qwen/Qwen3-8B"} 150.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="Qwen/Qwen3-8B"} 50.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="Qwen/Qwen3-8B"} 12.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="Qwen/Qwen3-8B"} 140.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-8B"} 200.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen3-8B"} 200.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen3-8B"} 13.25
# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="Qwen/Qwen3-8B"} 20000.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-8B"} 25400.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="Qwen/Qwen3-8B"} 25400.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="Qwen/Qwen3-8B"} 301.5
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="1.0",model_name="Qwen/Qwen3-8B"} 30.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen3-8B"} 200.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="Qwen/Qwen3-8B"} 200.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="Qwen/Qwen3-8B"} 402.0
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",num_gpu_blocks="27001"} 1.0
"#;

    pub(crate) const SGLANG: &str = r#"# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.31
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0625
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.128902e+06
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.557572e+06
# HELP sglang:cached_tokens_total Number of cached prompt tokens.
# TYPE sglang:cached_tokens_total counter
sglang:cached_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 508056.0
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.3518979474117756e+06
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 27.0
sglang:time_to_first_token_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 27.0
# HELP sglang:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE sglang:inter_token_latency_seconds histogram
sglang:inter_token_latency_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.5
sglang:inter_token_latency_seconds_bucket{le="0.002",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
sglang:inter_token_latency_seconds_bucket{le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
sglang:inter_token_latency_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 900.0
"#;

    /// TGI's router exports with the Rust `metrics` crate: no HELP lines,
    /// counters without `_total`.
    pub(crate) const TGI: &str = "# TYPE tgi_queue_size gauge\n\
tgi_queue_size 4\n\
\n\
# TYPE tgi_batch_current_size gauge\n\
tgi_batch_current_size 16\n\
\n\
# TYPE tgi_request_success counter\n\
tgi_request_success 2212\n\
\n\
# TYPE tgi_request_duration histogram\n\
tgi_request_duration_bucket{le=\"0.5\"} 10\n\
tgi_request_duration_bucket{le=\"+Inf\"} 2212\n\
tgi_request_duration_sum 4305.25\n\
tgi_request_duration_count 2212\n\
\n\
# TYPE tgi_request_mean_time_per_token_duration histogram\n\
tgi_request_mean_time_per_token_duration_bucket{le=\"0.01\"} 5\n\
tgi_request_mean_time_per_token_duration_bucket{le=\"+Inf\"} 2212\n\
tgi_request_mean_time_per_token_duration_sum 61.9\n\
tgi_request_mean_time_per_token_duration_count 2212\n\
\n\
# TYPE tgi_request_failure counter\n\
tgi_request_failure{err=\"validation\"} 3\n";

    pub(crate) const LLAMACPP: &str = "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n\
# TYPE llamacpp:prompt_tokens_total counter\n\
llamacpp:prompt_tokens_total 6886\n\
# HELP llamacpp:prompt_tokens_cached_total Number of prompt tokens reused from the cache\n\
# TYPE llamacpp:prompt_tokens_cached_total counter\n\
llamacpp:prompt_tokens_cached_total 12417\n\
# HELP llamacpp:prompt_seconds_total Prompt process time\n\
# TYPE llamacpp:prompt_seconds_total counter\n\
llamacpp:prompt_seconds_total 29.0363\n\
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n\
# TYPE llamacpp:tokens_predicted_total counter\n\
llamacpp:tokens_predicted_total 3469\n\
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.\n\
# TYPE llamacpp:kv_cache_usage_ratio gauge\n\
llamacpp:kv_cache_usage_ratio 0.125\n\
# HELP llamacpp:requests_processing Number of requests processing.\n\
# TYPE llamacpp:requests_processing gauge\n\
llamacpp:requests_processing 2\n\
# HELP llamacpp:requests_deferred Number of requests deferred.\n\
# TYPE llamacpp:requests_deferred gauge\n\
llamacpp:requests_deferred 1\n";

    pub(crate) const MINDIE: &str = "# HELP request_received_total Number of requests received so far.\r\n\
# TYPE request_received_total counter\r\n\
request_received_total{model_name=\"llama2-7b\"} 3188\r\n\
# HELP num_requests_running Number of requests currently running on NPU.\r\n\
# TYPE num_requests_running gauge\r\n\
num_requests_running{model_name=\"llama2-7b\"} 5\r\n\
# HELP num_requests_waiting Number of requests waiting to be processed.\r\n\
# TYPE num_requests_waiting gauge\r\n\
num_requests_waiting{model_name=\"llama2-7b\"} 0\r\n\
# HELP npu_cache_usage_perc NPU KV-cache usage. 1 means 100 percent usage.\r\n\
# TYPE npu_cache_usage_perc gauge\r\n\
npu_cache_usage_perc{model_name=\"llama2-7b\"} 0.25\r\n\
# HELP prompt_tokens_total Number of prefill tokens processed.\r\n\
# TYPE prompt_tokens_total counter\r\n\
prompt_tokens_total{model_name=\"llama2-7b\"} 9564\r\n\
# HELP time_to_first_token_seconds Histogram of time to first token in seconds.\r\n\
# TYPE time_to_first_token_seconds histogram\r\n\
time_to_first_token_seconds_bucket{model_name=\"llama2-7b\",le=\"0.1\"} 3000\r\n\
time_to_first_token_seconds_bucket{model_name=\"llama2-7b\",le=\"+Inf\"} 3188\r\n\
time_to_first_token_seconds_sum{model_name=\"llama2-7b\"} 201.5\r\n\
time_to_first_token_seconds_count{model_name=\"llama2-7b\"} 3188\r\n";

    #[test]
    fn vllm_exposition() {
        let exp = parse(VLLM);
        assert_eq!(exp.malformed, 0, "{:?}", exp.first_malformed);
        assert_eq!(exp.samples.len(), 24);
        let running = find(&exp, "vllm:num_requests_running");
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].value, 7.0);
        assert_eq!(
            running[0].labels,
            labels(&[("engine", "0"), ("model_name", "Qwen/Qwen3-8B")])
        );
        let buckets = find(&exp, "vllm:time_to_first_token_seconds_bucket");
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[2].labels[1], ("le".into(), "+Inf".into()));
        assert_eq!(
            exp.types.get("vllm:time_to_first_token_seconds"),
            Some(&MetricType::Histogram)
        );
        assert_eq!(
            exp.types.get("vllm:prefix_cache_hits_total"),
            Some(&MetricType::Counter)
        );
        assert_eq!(
            exp.declared_family("vllm:time_to_first_token_seconds_sum"),
            Some("vllm:time_to_first_token_seconds")
        );
        assert_eq!(
            exp.declared_family("vllm:prompt_tokens_total"),
            Some("vllm:prompt_tokens_total")
        );
        assert_eq!(exp.declared_family("vllm:not_declared"), None);
        assert_eq!(find(&exp, "vllm:cache_config_info")[0].labels.len(), 5);
    }

    #[test]
    fn sglang_exposition() {
        let exp = parse(SGLANG);
        assert_eq!(exp.malformed, 0, "{:?}", exp.first_malformed);
        assert_eq!(exp.samples.len(), 15);
        assert_eq!(
            find(&exp, "sglang:prompt_tokens_total")[0].value,
            8_128_902.0
        );
        assert_eq!(
            find(&exp, "sglang:time_to_first_token_seconds_sum")[0].value,
            2.351_897_947_411_775_6e6
        );
    }

    #[test]
    fn tgi_exposition_without_help_and_with_blank_lines() {
        let exp = parse(TGI);
        assert_eq!(exp.malformed, 0, "{:?}", exp.first_malformed);
        assert_eq!(exp.samples.len(), 12);
        assert_eq!(find(&exp, "tgi_queue_size")[0].value, 4.0);
        assert!(find(&exp, "tgi_queue_size")[0].labels.is_empty());
        assert_eq!(
            find(&exp, "tgi_request_failure")[0].labels,
            labels(&[("err", "validation")])
        );
    }

    #[test]
    fn llamacpp_exposition() {
        let exp = parse(LLAMACPP);
        assert_eq!(exp.malformed, 0, "{:?}", exp.first_malformed);
        assert_eq!(exp.samples.len(), 7);
        assert_eq!(
            find(&exp, "llamacpp:prompt_seconds_total")[0].value,
            29.0363
        );
        assert_eq!(find(&exp, "llamacpp:requests_deferred")[0].value, 1.0);
    }

    #[test]
    fn mindie_exposition_with_crlf() {
        let exp = parse(MINDIE);
        assert_eq!(exp.malformed, 0, "{:?}", exp.first_malformed);
        assert_eq!(exp.samples.len(), 9);
        let bucket = find(&exp, "time_to_first_token_seconds_bucket");
        assert_eq!(bucket[1].labels[1], ("le".into(), "+Inf".into()));
        assert_eq!(bucket[1].value, 3188.0);
        assert!(exp.samples.iter().all(|s| !s.name.contains('\r')));
    }

    #[test]
    fn escapes_special_values_and_timestamps() {
        let text = "a{path=\"C:\\\\dir\",msg=\"say \\\"hi\\\"\\nbye\",utf=\"héllo ✓\"} 1.5 1700000000000\n\
                    b NaN\n\
                    c +Inf\n\
                    d -Inf\n\
                    e{} 1e-3\n\
                    f{x=\"1\",} -2\n\
                    \t g   7   \n\
                    h{le=\"+Inf\"} 3 # {trace_id=\"abc\"} 1.0\n\
                    # a plain comment\n\
                    # EOF\n";
        let exp = parse(text);
        assert_eq!(exp.malformed, 0, "{:?}", exp.first_malformed);
        let a = &exp.samples[0];
        assert_eq!(
            a.labels,
            labels(&[
                ("path", "C:\\dir"),
                ("msg", "say \"hi\"\nbye"),
                ("utf", "héllo ✓")
            ])
        );
        assert_eq!(a.value, 1.5);
        assert_eq!(a.timestamp_ms, Some(1_700_000_000_000));
        assert!(exp.samples[1].value.is_nan());
        assert_eq!(exp.samples[2].value, f64::INFINITY);
        assert_eq!(exp.samples[3].value, f64::NEG_INFINITY);
        assert_eq!(exp.samples[4].value, 0.001);
        assert!(exp.samples[4].labels.is_empty());
        assert_eq!(exp.samples[5].labels, labels(&[("x", "1")]));
        assert_eq!(exp.samples[6].name, "g");
        assert_eq!(exp.samples[6].value, 7.0);
        assert_eq!(exp.samples[7].value, 3.0);
        assert_eq!(exp.samples.len(), 8);
    }

    #[test]
    fn malformed_lines_are_skipped_and_counted() {
        let text = "good 1\n\
                    9bad 1\n\
                    no_value\n\
                    no_value_braces{a=\"1\"}\n\
                    bad_value abc\n\
                    bad_inf infinity\n\
                    unterminated{a=\"1} 2\n\
                    bad_escape{a=\"\\t\"} 2\n\
                    unquoted{a=1} 2\n\
                    dup{a=\"1\",a=\"2\"} 2\n\
                    extra 1 2 3\n\
                    bad_ts 1 12.5\n\
                    missing_comma{a=\"1\" b=\"2\"} 2\n\
                    # TYPE bogus_type flavour\n\
                    # TYPE\n\
                    # HELP\n\
                    also_good{x=\"y\"} 2\n";
        let exp = parse(text);
        assert_eq!(exp.samples.len(), 2);
        assert_eq!(exp.samples[0].name, "good");
        assert_eq!(exp.samples[1].name, "also_good");
        assert_eq!(exp.malformed, 15);
        assert_eq!(
            exp.first_malformed,
            Some(Malformed {
                line: 2,
                reason: "invalid metric name"
            })
        );
    }

    #[test]
    fn every_truncation_of_a_real_exposition_parses_without_panic() {
        for text in [VLLM, SGLANG, TGI, LLAMACPP, MINDIE] {
            for (cut, _) in text.char_indices() {
                let exp = parse(&text[..cut]);
                // At most the last line is cut short.
                assert!(
                    exp.malformed <= 1,
                    "cut at {cut}: {:?}",
                    exp.first_malformed
                );
            }
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        const ALPHABET: &[char] = &[
            'a', 'z', '_', ':', '{', '}', '=', '"', '\\', ',', ' ', '\t', '\n', '\r', '#', '1',
            '.', 'e', '+', '-', 'I', 'n', 'f', 'N', 'é', '✓',
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            let mut text = String::new();
            let len = (state % 60) as usize;
            for _ in 0..len {
                // xorshift: deterministic, no extra dependency.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(ALPHABET[(state % ALPHABET.len() as u64) as usize]);
            }
            let exp = parse(&text);
            assert!(exp.samples.len() + exp.malformed as usize <= text.split('\n').count());
        }
    }
}
