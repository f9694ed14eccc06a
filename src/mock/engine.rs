//! The engine model: a FIFO waiting queue in front of at most
//! `--max-running` running requests; a single prefill lane that computes
//! the uncached prompt tokens of one request after another; decode steps
//! whose length grows with the number of running requests; the prefix
//! cache consulted at admission. Every request computes its own absolute
//! token deadlines from these, so there is no global step loop to wake.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::args::Config;
use super::cache::PrefixCache;
use super::log::Log;
use super::metrics::Metrics;
use super::tokens::{Counter, PromptInfo};

/// Maps monotonic instants to Unix-epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix_ms: f64,
}

impl Clock {
    fn new() -> Clock {
        let start = Instant::now();
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            start,
            start_unix_ms: since.as_secs_f64() * 1000.0,
        }
    }

    /// `t` in milliseconds since the Unix epoch, rounded to microseconds.
    pub fn unix_ms(&self, t: Instant) -> f64 {
        let offset = if t >= self.start {
            t.duration_since(self.start).as_secs_f64()
        } else {
            -self.start.duration_since(t).as_secs_f64()
        };
        ((self.start_unix_ms + offset * 1000.0) * 1000.0).round() / 1000.0
    }

    pub fn unix_secs(&self, t: Instant) -> u64 {
        (self.unix_ms(t) / 1000.0).max(0.0) as u64
    }
}

/// Shared state of the mock server.
pub struct Engine {
    pub cfg: Config,
    pub counter: Counter,
    pub metrics: Metrics,
    pub log: Log,
    pub clock: Clock,
    permits: Arc<Semaphore>,
    cache: Mutex<PrefixCache>,
    prefill_free_at: Mutex<Instant>,
    next_seq: AtomicU64,
}

/// A request holding one of the `--max-running` places. Dropping it frees
/// the place and its KV blocks.
pub struct Running {
    engine: Arc<Engine>,
    _permit: OwnedSemaphorePermit,
    kv_blocks: i64,
    pub admitted: Instant,
    /// When the first token is due.
    pub first_due: Instant,
    pub cached_tokens: u32,
    pub external_cached_tokens: u32,
    /// Its reservation of the prefill lane (start, end), when prefill is
    /// modelled (no `--ttft-ms`).
    prefill: Option<(Instant, Instant)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let m = &self.engine.metrics;
        m.running.fetch_sub(1, Relaxed);
        m.kv_blocks_in_use.fetch_sub(self.kv_blocks, Relaxed);
        // A request aborted before its prefill ended (the client went
        // away) gives the lane the time it did not use, as an engine drops
        // an aborted request's prefill: later arrivals do not queue behind
        // work nobody waits for.
        if let Some((start, end)) = self.prefill {
            let now = Instant::now();
            if now < end {
                let unused = end - start.max(now);
                if let Ok(mut free_at) = self.engine.prefill_free_at.lock() {
                    *free_at = free_at.checked_sub(unused).unwrap_or(now).max(now);
                }
            }
        }
    }
}

/// Counts a request as waiting while it exists.
struct Waiting(Arc<Engine>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.metrics.waiting.fetch_sub(1, Relaxed);
    }
}

/// An admission in progress (boxed so a response body can hold it).
pub type Admission = Pin<Box<dyn Future<Output = Option<Running>> + Send>>;

/// Either admitted at once or waiting in the queue.
pub enum Admit {
    Now(Running),
    Queued(Admission),
}

impl Engine {
    pub fn new(cfg: Config, counter: Counter, log: Log) -> Engine {
        let metrics = Metrics::new(cfg.gpu_blocks, cfg.block_size);
        Engine {
            permits: Arc::new(Semaphore::new(cfg.max_running as usize)),
            cache: Mutex::new(PrefixCache::new(cfg.gpu_blocks, cfg.cpu_blocks)),
            prefill_free_at: Mutex::new(Instant::now()),
            next_seq: AtomicU64::new(0),
            clock: Clock::new(),
            metrics,
            counter,
            log,
            cfg,
        }
    }

    /// The arrival number of a new request (0, 1, 2, ...).
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a running place now if one is free, else queues (FIFO).
    pub fn admit(
        self: &Arc<Self>,
        arrival: Instant,
        prompt: Arc<PromptInfo>,
        completion_tokens: u32,
    ) -> Admit {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Admit::Now(self.start(permit, arrival, &prompt, completion_tokens));
        }
        self.metrics.waiting.fetch_add(1, Relaxed);
        let waiting = Waiting(self.clone());
        let engine = self.clone();
        Admit::Queued(Box::pin(async move {
            let permit = engine.permits.clone().acquire_owned().await.ok()?;
            drop(waiting);
            let now = Instant::now();
            Some(engine.start(permit, now, &prompt, completion_tokens))
        }))
    }

    /// Empties the prefix cache (vLLM's `/reset_prefix_cache`, SGLang's
    /// `/flush_cache`); requests already admitted keep what they found.
    pub fn reset_prefix_cache(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// Admits a request at `base` (its arrival, or when it left the queue):
    /// consults the prefix cache and schedules its first token.
    fn start(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        base: Instant,
        prompt: &PromptInfo,
        completion_tokens: u32,
    ) -> Running {
        let cfg = &self.cfg;
        let m = &self.metrics;
        let bs = cfg.block_size;
        // An engine always computes the prompt's last token itself.
        let max_blocks = (prompt.tokens.saturating_sub(1) / bs) as usize;
        let hit = match self.cache.lock() {
            Ok(mut cache) => cache.lookup_and_store(&prompt.blocks, max_blocks),
            Err(_) => Default::default(),
        };
        let fast_tokens = hit.fast_blocks * bs;
        let external_tokens = hit.external_blocks * bs;
        let uncached = prompt.tokens - fast_tokens - external_tokens;

        m.running.fetch_add(1, Relaxed);
        m.prompt_tokens.fetch_add(prompt.tokens as u64, Relaxed);
        m.cache_queries.fetch_add(prompt.tokens as u64, Relaxed);
        m.cache_hits.fetch_add(fast_tokens as u64, Relaxed);
        if cfg.cpu_blocks > 0 {
            m.external_queries
                .fetch_add((prompt.tokens - fast_tokens) as u64, Relaxed);
            m.external_hits.fetch_add(external_tokens as u64, Relaxed);
        }
        let kv_blocks =
            (prompt.tokens as u64 + completion_tokens as u64).div_ceil(bs as u64) as i64;
        m.kv_blocks_in_use.fetch_add(kv_blocks, Relaxed);

        let admitted = Instant::now();
        let mut prefill_slot = None;
        let first_due = match cfg.ttft {
            Some(ttft) => base + ttft,
            None => {
                let prefill = Duration::from_secs_f64(
                    uncached as f64 / cfg.prefill_tps + external_tokens as f64 / cfg.external_tps,
                );
                m.prefill_nanos
                    .fetch_add(prefill.as_nanos() as u64, Relaxed);
                let start = match self.prefill_free_at.lock() {
                    Ok(mut free_at) => {
                        let start = (*free_at).max(base);
                        *free_at = start + prefill;
                        start
                    }
                    Err(_) => base,
                };
                prefill_slot = Some((start, start + prefill));
                start + prefill + self.decode_step()
            }
        };
        Running {
            engine: self.clone(),
            _permit: permit,
            kv_blocks,
            admitted,
            first_due,
            cached_tokens: fast_tokens + external_tokens,
            external_cached_tokens: external_tokens,
            prefill: prefill_slot,
        }
    }

    /// The gap before the next token: `--itl-ms`, or the decode step for
    /// the current number of running requests.
    pub fn decode_step(&self) -> Duration {
        if let Some(itl) = self.cfg.itl {
            return itl;
        }
        let running = self.metrics.running.load(Relaxed).max(1) as u32;
        self.cfg.decode_step + self.cfg.decode_per_seq * running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::args::MockArgs;

    fn engine(args: MockArgs) -> Arc<Engine> {
        let cfg = Config::from_args(&args).expect("config");
        let counter = Counter::new(None, cfg.block_size).expect("counter");
        Arc::new(Engine::new(cfg, counter, Log::disabled()))
    }

    /// An engine whose first token comes right after prefill at `tps`.
    fn prefill_engine(tps: f64) -> Arc<Engine> {
        engine(MockArgs {
            prefill_tps: tps,
            decode_step_ms: 0.0,
            decode_ms_per_seq: 0.0,
            ..MockArgs::default()
        })
    }

    fn prompt(tokens: u32, blocks: u32) -> Arc<PromptInfo> {
        Arc::new(PromptInfo {
            tokens,
            blocks: (1..=blocks as u64).collect(),
        })
    }

    #[test]
    fn fixed_ttft_counts_from_arrival() {
        let e = engine(MockArgs {
            ttft_ms: Some(50.0),
            ..MockArgs::default()
        });
        let t0 = Instant::now();
        let Admit::Now(r) = e.admit(t0, prompt(10, 0), 4) else {
            panic!("queued")
        };
        assert_eq!(r.first_due, t0 + Duration::from_millis(50));
        assert_eq!(e.metrics.running.load(Relaxed), 1);
        drop(r);
        assert_eq!(e.metrics.running.load(Relaxed), 0);
        assert_eq!(e.metrics.kv_blocks_in_use.load(Relaxed), 0);
    }

    #[test]
    fn prefill_lane_serialises_and_cache_shortens_it() {
        let e = prefill_engine(1000.0);
        let t0 = Instant::now();
        let Admit::Now(a) = e.admit(t0, prompt(100, 6), 1) else {
            panic!("queued")
        };
        // 100 uncached tokens at 1000/s.
        assert_eq!(a.first_due, t0 + Duration::from_millis(100));
        assert_eq!(a.cached_tokens, 0);
        let Admit::Now(b) = e.admit(t0, prompt(100, 6), 1) else {
            panic!("queued")
        };
        // 96 of 100 tokens cached; waits for the lane to free first.
        assert_eq!(b.cached_tokens, 96);
        assert_eq!(b.first_due, t0 + Duration::from_millis(104));
    }

    #[test]
    fn an_aborted_request_gives_back_the_prefill_it_did_not_use() {
        let e = prefill_engine(1000.0);
        let t0 = Instant::now();
        let admit = |tokens: u32| match e.admit(t0, prompt(tokens, 0), 1) {
            Admit::Now(r) => r,
            Admit::Queued(_) => panic!("queued"),
        };
        // 10 s of prefill reserved, then the client goes away.
        let long = admit(10_000);
        let short = admit(100);
        assert_eq!(short.first_due, t0 + Duration::from_millis(10_100));
        drop(long);
        // The next request waits only for the work still owed, the short
        // one's 100 ms, then does its own 100 ms: the long one's unused
        // time is given back. (The short one keeps the first token it was
        // promised at admission: the lane's total is what later arrivals
        // see.)
        let next = admit(100);
        let owed = next.first_due - Instant::now();
        assert!(owed <= Duration::from_millis(200), "{owed:?}");
        assert!(owed >= Duration::from_millis(100), "{owed:?}");
        // A request that ran its prefill to the end gives nothing back.
        drop((short, next));
        let e2 = prefill_engine(1_000_000.0);
        let Admit::Now(done) = e2.admit(Instant::now(), prompt(10, 0), 1) else {
            panic!("queued")
        };
        std::thread::sleep(Duration::from_millis(2));
        let before = *e2.prefill_free_at.lock().expect("lock");
        drop(done);
        assert_eq!(*e2.prefill_free_at.lock().expect("lock"), before);
    }

    #[tokio::test]
    async fn max_running_queues_in_order() {
        let e = engine(MockArgs {
            max_running: 1,
            ttft_ms: Some(0.0),
            ..MockArgs::default()
        });
        let Admit::Now(first) = e.admit(Instant::now(), prompt(1, 0), 1) else {
            panic!("queued")
        };
        let Admit::Queued(second) = e.admit(Instant::now(), prompt(1, 0), 1) else {
            panic!("admitted past the cap")
        };
        assert_eq!(e.metrics.waiting.load(Relaxed), 1);
        drop(first);
        let second = second.await.expect("admitted");
        assert_eq!(e.metrics.waiting.load(Relaxed), 0);
        assert_eq!(e.metrics.running.load(Relaxed), 1);
        drop(second);
    }
}
