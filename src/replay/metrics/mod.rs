//! The server metrics scraper of `trace replay`.
//!
//! While a replay runs, [`spawn_scraper`] fetches every Prometheus
//! `/metrics` endpoint on a fixed grid of times, parses the text exposition
//! ([`parse`]), names the well-known series of the chosen backend by their
//! vLLM equivalent ([`flavor`]) and writes every sample as one row of the
//! `server_metrics` Parquet parts ([`writer`]), on the same clock as the
//! request records. Counters are stored raw; the report takes deltas.
//! docs/server-metrics.md describes the output and the flavor tables.

// The replayer calls this module; until it is wired in, only tests do.

pub mod flavor;
pub mod parse;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::join_all;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub use flavor::Backend;
use writer::{PartsWriter, Row};

/// What to scrape, how often, and which series to keep.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    /// Full URLs of the `/metrics` endpoints.
    pub endpoints: Vec<String>,
    pub interval: Duration,
    /// Keep only these metric names: exact, or a prefix when the pattern
    /// ends in `*`. A pattern matches a series name, its family name (the
    /// name without `_bucket`, `_sum`, `_count`, `_total`, `_created`) or
    /// its canonical name. `None` keeps everything.
    pub names: Option<Vec<String>>,
    pub backend: Backend,
}

/// What a scraper did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrapeStats {
    /// Rows written to `server_metrics`.
    pub samples: u64,
    /// Scrape attempts, over all endpoints.
    pub scrapes: u64,
    /// Attempts that failed (connection, timeout, HTTP status, body).
    pub failures: u64,
    /// Exposition lines skipped because they did not parse.
    pub malformed_lines: u64,
}

/// The smallest interval accepted: scraping faster than this measures the
/// scraper more than the server.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Responses larger than this are refused (a real exposition is far smaller).
const MAX_BODY_BYTES: usize = 64 << 20;

impl ScrapeConfig {
    /// Checks the interval and every endpoint URL; call it before a run
    /// starts so a typo fails fast.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.interval < MIN_INTERVAL {
            bail!(
                "the metrics interval must be at least {} ms (got {:?})",
                MIN_INTERVAL.as_millis(),
                self.interval
            );
        }
        for url in &self.endpoints {
            endpoint_label(url)?;
        }
        Ok(())
    }
}

/// The `endpoint` label of a metrics URL: its `host:port`. Fails on a URL
/// that is not `http://` or `https://`.
pub fn endpoint_label(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("invalid metrics endpoint URL {url:?}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("metrics endpoint {url:?} must be an http:// or https:// URL");
    }
    let host = parsed
        .host_str()
        .with_context(|| format!("metrics endpoint {url:?} has no host"))?;
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("metrics endpoint {url:?} has no port"))?;
    Ok(format!("{host}:{port}"))
}

/// Scrapes every endpoint every `interval` until `stop` becomes true (or
/// its sender is dropped), then once more, writing rows to `out_dir`
/// (created) as numbered Parquet parts: `part-00000.parquet`, ... Each part
/// is written under a hidden temporary name and renamed, so a killed run
/// leaves only complete parts; a new part starts every ~10 s or 5000 rows.
/// `ts_ms` is the time a scrape started, in milliseconds since `clock` (the
/// run's start, the clock of the request records). A failed scrape is
/// counted, with a warning on stderr the first time per endpoint; only a
/// bad configuration or a failure to write the files ends the task with an
/// error.
pub fn spawn_scraper(
    client: reqwest::Client,
    cfg: ScrapeConfig,
    clock: Instant,
    out_dir: PathBuf,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<ScrapeStats>> {
    tokio::spawn(run(client, cfg, clock, out_dir, stop, PartPolicy::DEFAULT))
}

/// When to close a part.
#[derive(Debug, Clone, Copy)]
struct PartPolicy {
    rows: usize,
    every: Duration,
}

impl PartPolicy {
    const DEFAULT: PartPolicy = PartPolicy {
        rows: 5000,
        every: Duration::from_secs(10),
    };
}

/// One endpoint and what has been said about it.
struct Target {
    url: String,
    label: String,
    warned_failure: bool,
    warned_malformed: bool,
    checked_flavor: bool,
}

async fn run(
    client: reqwest::Client,
    cfg: ScrapeConfig,
    clock: Instant,
    out_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
    policy: PartPolicy,
) -> anyhow::Result<ScrapeStats> {
    cfg.validate()?;
    let mut targets = cfg
        .endpoints
        .iter()
        .map(|url| {
            Ok(Target {
                url: url.clone(),
                label: endpoint_label(url)?,
                warned_failure: false,
                warned_malformed: false,
                checked_flavor: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut scraper = Scraper {
        client,
        clock,
        timeout: cfg
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(10)),
        filter: NameFilter::new(cfg.names.as_deref()),
        backend: cfg.backend,
        writer: PartsWriter::create(&out_dir)?,
        stats: ScrapeStats::default(),
    };
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_part = Instant::now();
    let mut stopping = *stop.borrow_and_update();
    while !stopping {
        tokio::select! {
            _ = ticker.tick() => {
                scraper.round(&mut targets).await;
                let due = scraper.writer.buffered() >= policy.rows
                    || last_part.elapsed() >= policy.every;
                if due {
                    scraper.write_part().await?;
                    last_part = Instant::now();
                }
            }
            changed = stop.changed() => {
                stopping = changed.is_err() || *stop.borrow_and_update();
            }
        }
    }
    scraper.round(&mut targets).await;
    scraper.write_part().await?;
    Ok(scraper.stats)
}

struct Scraper {
    client: reqwest::Client,
    clock: Instant,
    timeout: Duration,
    filter: NameFilter,
    backend: Backend,
    writer: PartsWriter,
    stats: ScrapeStats,
}

impl Scraper {
    /// Scrapes all endpoints at once and buffers their samples.
    async fn round(&mut self, targets: &mut [Target]) {
        let fetches = targets.iter().map(|t| {
            let ts_ms = ms_since(self.clock);
            let fetched = fetch(&self.client, &t.url, self.timeout);
            async move { (ts_ms, fetched.await) }
        });
        let results = join_all(fetches).await;
        for (target, (ts_ms, result)) in targets.iter_mut().zip(results) {
            self.stats.scrapes += 1;
            match result {
                Ok(text) => self.record(target, ts_ms, &text),
                Err(err) => {
                    self.stats.failures += 1;
                    if !target.warned_failure {
                        target.warned_failure = true;
                        eprintln!(
                            "warning: cannot scrape metrics from {}: {err:#} \
                             (further failures of this endpoint are only counted)",
                            target.url
                        );
                    }
                }
            }
        }
    }

    fn record(&mut self, target: &mut Target, ts_ms: f64, text: &str) {
        let exposition = parse::parse(text);
        self.stats.malformed_lines += exposition.malformed;
        if let Some(first) = &exposition.first_malformed
            && !target.warned_malformed
        {
            target.warned_malformed = true;
            eprintln!(
                "warning: skipped {} malformed line(s) of the metrics from {} \
                 (first: line {}: {})",
                exposition.malformed, target.url, first.line, first.reason
            );
        }
        let canonical = flavor::assign(
            self.backend,
            exposition.samples.iter().map(|s| s.name.as_str()),
        );
        if !target.checked_flavor && !exposition.samples.is_empty() {
            target.checked_flavor = true;
            if canonical.iter().all(Option::is_none) {
                if self.backend == Backend::Generic {
                    eprintln!(
                        "warning: none of the metrics from {} is a known series of \
                         vllm, sglang, tgi, llamacpp or mindie; they are kept raw, \
                         and the report will have no server figures",
                        target.url
                    );
                } else {
                    eprintln!(
                        "warning: none of the metrics from {} is a known {} series; \
                         is the backend right?",
                        target.url,
                        self.backend.as_str()
                    );
                }
            }
        }
        for (sample, canonical) in exposition.samples.iter().zip(&canonical) {
            let family = exposition.declared_family(&sample.name);
            if !self
                .filter
                .keeps(&sample.name, family, canonical.as_deref())
            {
                continue;
            }
            self.writer.push(Row {
                ts_ms,
                endpoint: &target.label,
                name: &sample.name,
                labels: &render_labels(&sample.labels),
                value: sample.value,
                canonical: canonical.as_deref(),
            });
        }
    }

    /// Writes the buffered rows as a part, off the async threads.
    async fn write_part(&mut self) -> anyhow::Result<()> {
        let Some(part) = self.writer.take_part()? else {
            return Ok(());
        };
        let rows = tokio::task::spawn_blocking(move || part.write())
            .await
            .context("the metrics part writer stopped")??;
        self.stats.samples += rows;
        Ok(())
    }
}

/// Milliseconds from `clock` to now (negative if `clock` is in the future).
fn ms_since(clock: Instant) -> f64 {
    let now = Instant::now();
    match now.checked_duration_since(clock) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(clock.duration_since(now).as_secs_f64() * 1000.0),
    }
}

/// GETs one exposition as text.
async fn fetch(client: &reqwest::Client, url: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut response = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        )
        .timeout(timeout)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("HTTP {status}");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            bail!("the response is larger than {} MiB", MAX_BODY_BYTES >> 20);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Labels as `k=v,k=v`, sorted by key. A value containing `,`, `=`, `"`,
/// `\` or a newline is written in double quotes with `\"`, `\\` and `\n`
/// escaped, so the string always splits back unambiguously.
fn render_labels(labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        if value.contains([',', '=', '"', '\\', '\n']) {
            out.push('"');
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    out
}

/// `--metrics-names`: exact names, or prefixes ending in `*`.
#[derive(Debug)]
struct NameFilter {
    patterns: Option<Vec<Pattern>>,
}

#[derive(Debug)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(p) => name == p,
            Pattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

impl NameFilter {
    fn new(names: Option<&[String]>) -> Self {
        let patterns = names.map(|names| {
            names
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty())
                .map(|n| match n.strip_suffix('*') {
                    Some(prefix) => Pattern::Prefix(prefix.to_string()),
                    None => Pattern::Exact(n.to_string()),
                })
                .collect()
        });
        NameFilter { patterns }
    }

    /// Whether to keep a series, given its name, the family a `# TYPE`
    /// declared for it, and its canonical name.
    fn keeps(&self, name: &str, declared: Option<&str>, canonical: Option<&str>) -> bool {
        let Some(patterns) = &self.patterns else {
            return true;
        };
        let stripped = parse::SERIES_SUFFIXES
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix));
        let canonical_family = canonical.map(|c| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| c.strip_suffix(suffix))
                .unwrap_or(c)
        });
        let candidates = [Some(name), declared, stripped, canonical, canonical_family];
        patterns
            .iter()
            .any(|p| candidates.iter().flatten().any(|c| p.matches(c)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
