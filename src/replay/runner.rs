//! Running one load level: arrivals at absolute times from a dedicated
//! dispatcher thread (open loop), or a fixed number of workers (closed
//! loop), each session's turns in order, every request recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use traces::results::{RequestRecord, Status};

use super::client::{Endpoint, Exchange, exchange};
use super::config::{LoadMode, UserArrival};
use super::output_tokens::{self, FROM_CHUNKS, FROM_USAGE};
use super::route;
use super::schedule::{Rate, offsets_for_count, offsets_for_duration};
use super::workload::{
    Conversation, History, RequestOptions, Session, max_tokens_for, request_body,
};

/// The longest pause between two turns (~115 days): a wild `think_ms` in a
/// trace must not overflow the clock.
pub const MAX_THINK_MS: f64 = 1e10;

/// What every request task of a run shares.
pub struct Shared {
    pub client: reqwest::Client,
    /// A client without a pool: a request resent after its pooled
    /// connection closed unanswered goes on a new connection.
    pub fresh_client: reqwest::Client,
    pub endpoint: Endpoint,
    pub opts: RequestOptions,
    pub history: History,
    /// Factor on every `think_ms`.
    pub think_scale: f64,
    /// The run's clock: every `*_ms` column counts from here.
    pub clock: Instant,
    pub tx: std::sync::mpsc::Sender<super::recorder::Finished>,
    /// `--tokenizer` was given: replies without usage go to the recorder
    /// with their text, to have their output tokens counted.
    pub count_output: bool,
    pub run_id: String,
    /// Set on the first Ctrl-C: no new arrivals, no new turns.
    pub stop: Arc<AtomicBool>,
    /// Turns `true` with `stop`, for tasks waiting out a think time.
    pub stopping: watch::Receiver<bool>,
    /// Set when in-flight requests must end now.
    pub hard: watch::Receiver<bool>,
    /// Requests recorded so far, and those that were not ok (for progress lines).
    pub done: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    /// Requests sent a second time after their connection closed unanswered.
    pub resent: std::sync::atomic::AtomicU64,
    /// `--route`: which server each session goes to.
    pub router: route::Router,
}

impl Shared {
    fn ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.clock).as_secs_f64() * 1000.0
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The model a session's requests name.
    fn model_of(&self, work: &Work) -> &str {
        self.opts
            .models
            .get(work.model)
            .or(self.opts.models.first())
            .map_or("", String::as_str)
    }

    /// Requests finished ok so far in the run.
    pub fn ok_requests(&self) -> u64 {
        let failed = self.failed.load(Ordering::Relaxed);
        self.done.load(Ordering::Relaxed).saturating_sub(failed)
    }
}

/// One level of the run, as the runner needs it.
#[derive(Debug, Clone)]
pub struct LevelPlan {
    pub mode: LoadMode,
    pub round: u32,
    /// Sessions started in this level (`None`: until the duration ends;
    /// without a duration, the whole trace once, or in `--users` mode one
    /// session per user).
    pub sessions: Option<usize>,
    pub duration: Option<Duration>,
    pub warmup: usize,
    pub seed: u64,
    /// `--isolate-levels`: the seed of this level's prompt tags.
    pub tag_seed: Option<u64>,
    /// `--level-drain`: how long requests in flight at the level's end
    /// (with a duration) may run on before they are cancelled.
    pub drain: Option<Duration>,
}

/// One session to run, possibly a repeat of the trace (`cycle > 0`).
#[derive(Clone)]
struct Work {
    session: Arc<Session>,
    cycle: usize,
    user_id: Option<u32>,
    warmup: bool,
    /// `--isolate-levels`: what starts every prompt of this session.
    tag: Option<Arc<str>>,
    /// The server all its turns go to (an index into `Endpoint::urls`),
    /// chosen by `--route` when the session starts.
    server: usize,
    /// Counts the session as in progress on its server until it ends.
    assigned: Option<Arc<route::Assigned>>,
    /// The model all its turns name (an index into `RequestOptions::models`).
    model: usize,
}

impl Work {
    /// Sends the session to the server `--route` picks for it now.
    fn route(&mut self, router: &route::Router, i: usize) {
        let (server, assigned) = router.assign(i);
        self.server = server;
        self.assigned = Some(assigned);
    }
}

struct Labels {
    mode: &'static str,
    value: f64,
    round: u32,
    /// Turns `true` when this level's requests in flight must end now: the
    /// run's hard stop, or `--level-drain` after a `--duration` level's end.
    cancel: watch::Receiver<bool>,
}

impl Labels {
    /// A request cancelled by the level's drain limit, not by the run's stop.
    fn drain_cut(&self, shared: &Shared) -> bool {
        *self.cancel.borrow() && !*shared.hard.borrow()
    }
}

/// The `i`-th session of a level, not yet sent to a server (see `Work::route`).
/// With several models, sessions take them in turn, every server's sessions
/// alike: (i / servers) mod models, so that round-robin routing does not
/// pair each server with one model.
fn work_item(shared: &Shared, sessions: &[Arc<Session>], i: usize, plan: &LevelPlan) -> Work {
    let n = sessions.len().max(1);
    let servers = shared.endpoint.urls.len().max(1);
    Work {
        server: 0,
        assigned: None,
        model: (i / servers) % shared.opts.models.len().max(1),
        session: sessions[i % n].clone(),
        cycle: i / n,
        user_id: matches!(plan.mode, LoadMode::Users { .. }).then_some(i as u32),
        warmup: i < plan.warmup,
        tag: plan.tag_seed.map(|seed| prompt_tag(seed, i / n)),
    }
}

/// The tag of `--isolate-levels`: 8 hex digits from the level's seed and
/// the session's repeat (`~cN`), so a repeat is not found cached either.
fn prompt_tag(seed: u64, cycle: usize) -> Arc<str> {
    let mut x = seed ^ (cycle as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser: nearby inputs give unrelated tags.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    format!("[{:08x}] ", x as u32).into()
}

/// Sessions run one after another (by a concurrency worker, or by a user
/// under `--duration`), each taking the next number.
struct SessionQueue {
    sessions: Vec<Arc<Session>>,
    plan: LevelPlan,
    next: AtomicUsize,
    limit: Option<usize>,
    deadline: Option<Instant>,
    /// Sessions actually started: the level's arrivals (a number taken
    /// past the limit or the level's end starts none).
    started: AtomicUsize,
}

impl SessionQueue {
    /// Runs sessions until a stop, the level's end or the limit; `user`
    /// labels them as one user's.
    async fn run(
        &self,
        shared: &Shared,
        labels: &Labels,
        user: Option<u32>,
        sem: Option<Arc<Semaphore>>,
    ) {
        loop {
            if shared.stopped() || self.deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if self.limit.is_some_and(|l| i >= l) {
                return;
            }
            let mut work = work_item(shared, &self.sessions, i, &self.plan);
            work.route(&shared.router, i);
            if user.is_some() {
                work.user_id = user;
            }
            let first = prepare_first(shared, &work);
            let at = Instant::now();
            if self.deadline.is_some_and(|d| at >= d) {
                // The level ended while the request was being made.
                return;
            }
            self.started.fetch_add(1, Ordering::Relaxed);
            run_session(
                shared,
                work,
                first,
                at,
                labels,
                sem.clone(),
                None,
                self.deadline,
            )
            .await;
        }
    }
}

/// Intended start offsets (ms from the level start) of the open-loop modes.
pub(super) fn open_loop_offsets(
    plan: &LevelPlan,
    sessions: &[Arc<Session>],
) -> anyhow::Result<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let count = plan.sessions;
    Ok(match plan.mode {
        LoadMode::Qps { rate, arrival, .. } => match (plan.duration, count) {
            (Some(d), _) => offsets_for_duration(
                arrival,
                rate,
                d.as_secs_f64() * 1000.0,
                count.unwrap_or(if rate == Rate::Infinite {
                    sessions.len()
                } else {
                    usize::MAX
                }),
                &mut rng,
            ),
            (None, Some(n)) => offsets_for_count(arrival, rate, n, &mut rng),
            (None, None) => offsets_for_count(arrival, rate, sessions.len(), &mut rng),
        },
        LoadMode::Users { n, arrival } => {
            let mut t = 0.0;
            let exp = match arrival {
                UserArrival::Poisson { rate } => Exp::new(rate / 1000.0).ok(),
                _ => None,
            };
            // Users beyond `--requests` would have no session to run.
            (0..n.min(count.unwrap_or(n)))
                .map(|k| match arrival {
                    UserArrival::Burst => 0.0,
                    UserArrival::Steady { seconds } => k as f64 * seconds * 1000.0,
                    UserArrival::Poisson { .. } => {
                        if k > 0 {
                            t += exp.map_or(0.0, |e| e.sample(&mut rng));
                        }
                        t
                    }
                })
                .collect()
        }
        LoadMode::TraceTime { scale } => {
            let first = sessions
                .iter()
                .filter_map(|s| s.first_arrival_ms())
                .fold(f64::INFINITY, f64::min);
            let mut out = Vec::with_capacity(sessions.len());
            for s in sessions {
                let a = s.first_arrival_ms().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--trace-time: session {} has no arrival_ms; this trace has no recorded times",
                        s.id
                    )
                })?;
                out.push((a - first) / scale);
            }
            // --requests N: the N earliest arrivals, wherever they are in
            // the file (merged traces are not in time order); the others
            // are never due.
            if let Some(n) = count.filter(|&n| n < out.len()) {
                let mut by_time: Vec<usize> = (0..out.len()).collect();
                by_time.sort_by(|&a, &b| out[a].total_cmp(&out[b]).then(a.cmp(&b)));
                for &i in &by_time[n..] {
                    out[i] = f64::INFINITY;
                }
            }
            out
        }
        LoadMode::Concurrency(_) => Vec::new(),
    })
}

/// Start and end of a level, in ms on the run's clock.
pub struct LevelTimes {
    pub start_ms: f64,
    pub end_ms: f64,
    pub arrivals: usize,
    /// Requests sent again after the server closed their connection unanswered.
    pub resent: u64,
    /// Whether `--cache-reset` emptied the server's prefix cache before
    /// the level (`None`: not asked, or a later round).
    pub cache_reset: Option<bool>,
    /// CPU seconds the replayer's process used during the level, and that
    /// as a share of all the machine's cores over the level, %.
    pub client_cpu_s: Option<f64>,
    pub client_cpu_pct: Option<f64>,
    /// % of the whole machine's CPU time that was busy during the level.
    pub machine_cpu_pct: Option<f64>,
}

/// Opens `n` pooled connections before a level starts, so connection
/// setup lands in no request's TTFT (unless `--fresh-connections`).
pub async fn prime_connections(shared: &Shared, models_url: &str, n: usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut req = shared
            .client
            .get(models_url)
            .timeout(Duration::from_secs(5));
        if let Some(k) = &shared.endpoint.api_key {
            req = req.bearer_auth(k);
        }
        tasks.push(tokio::spawn(async move {
            if let Ok(resp) = req.send().await {
                let _ = resp.bytes().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Connections a level is likely to hold open at once.
pub fn expected_connections(mode: &LoadMode) -> usize {
    match *mode {
        LoadMode::Concurrency(n) => n,
        LoadMode::Qps {
            max_concurrency: Some(m),
            ..
        } => m,
        LoadMode::Qps { rate, .. } => match rate {
            Rate::PerSecond(r) => (r.ceil() as usize).clamp(1, 64),
            Rate::Infinite => 64,
        },
        LoadMode::Users { n, .. } => n.min(64),
        LoadMode::TraceTime { .. } => 16,
    }
}

/// Runs one level to its end (or until stopped).
pub async fn run_level(
    shared: Arc<Shared>,
    sessions: &[Arc<Session>],
    plan: &LevelPlan,
) -> anyhow::Result<LevelTimes> {
    let resent_before = shared.resent.load(Ordering::Relaxed);
    let lead = Duration::from_millis(20);
    let level_start = Instant::now() + lead;
    let start_ms = shared.ms(level_start);
    let deadline = plan.duration.map(|d| level_start + d);
    // The level's cancel signal: the run's hard stop, or the drain limit.
    let (cut_tx, cancel) = watch::channel(false);
    let cut_at = deadline.zip(plan.drain).map(|(end, drain)| end + drain);
    let mut run_hard = shared.hard.clone();
    // Aborted when the level returns, early errors included.
    let _cutter = AbortOnDrop(tokio::spawn(async move {
        match cut_at {
            Some(at) => tokio::select! {
                () = wait_true(&mut run_hard) => {}
                () = tokio::time::sleep_until(at) => {}
            },
            None => wait_true(&mut run_hard).await,
        }
        let _ = cut_tx.send(true);
        // Keep the sender: a dropped one would read as "never cancelled".
        std::future::pending::<()>().await;
    }));
    let labels = Arc::new(Labels {
        mode: plan.mode.name(),
        value: plan.mode.value(),
        round: plan.round,
        cancel,
    });
    let trace_scale = match plan.mode {
        LoadMode::TraceTime { scale } => Some(scale),
        _ => None,
    };
    let trace_origin = sessions
        .iter()
        .filter_map(|s| s.first_arrival_ms())
        .fold(f64::INFINITY, f64::min);
    let mut arrivals = 0;
    if let LoadMode::Concurrency(n) = plan.mode {
        tokio::time::sleep_until(level_start).await;
        let limit = plan.sessions.or(if plan.duration.is_some() {
            None
        } else {
            Some(sessions.len())
        });
        let queue = Arc::new(SessionQueue {
            sessions: sessions.to_vec(),
            plan: plan.clone(),
            next: AtomicUsize::new(0),
            limit,
            deadline,
            started: AtomicUsize::new(0),
        });
        let mut workers = Vec::new();
        for _ in 0..n {
            let shared = shared.clone();
            let queue = queue.clone();
            let labels = labels.clone();
            workers.push(tokio::spawn(async move {
                queue.run(&shared, &labels, None, None).await;
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        arrivals = queue.started.load(Ordering::Relaxed);
    } else {
        let offsets = open_loop_offsets(plan, sessions)?;
        let mut order: Vec<usize> = (0..offsets.len()).collect();
        order.sort_by(|&a, &b| offsets[a].total_cmp(&offsets[b]));
        let sem = match plan.mode {
            LoadMode::Qps {
                max_concurrency: Some(m),
                ..
            } => Some(Arc::new(Semaphore::new(m))),
            _ => None,
        };
        let duration_ms = plan.duration.map(|d| d.as_secs_f64() * 1000.0);
        let (jh_tx, mut jh_rx) = mpsc::unbounded_channel::<tokio::task::JoinHandle<()>>();
        let handle = tokio::runtime::Handle::current();
        let std_start = level_start.into_std();
        let shared_d = shared.clone();
        let sessions_d: Vec<Arc<Session>> = sessions.to_vec();
        let plan_d = plan.clone();
        let labels_d = labels.clone();
        // Under --duration, or --requests beyond one session per user, a
        // user starts another session whenever one ends, until the level's
        // end or the count: the sessions after the first N.
        let more_sessions = match plan.mode {
            LoadMode::Users { n, .. }
                if deadline.is_some() || plan.sessions.is_some_and(|s| s > n) =>
            {
                Some(Arc::new(SessionQueue {
                    sessions: sessions.to_vec(),
                    plan: plan.clone(),
                    next: AtomicUsize::new(n),
                    limit: plan.sessions,
                    deadline,
                    started: AtomicUsize::new(0),
                }))
            }
            _ => None,
        };
        let started_more = more_sessions.clone();
        let dispatcher = std::thread::Builder::new()
            .name("trace-dispatch".into())
            .spawn(move || {
                let mut sent = 0usize;
                for i in order {
                    // Recorded arrivals and user arrivals may go on past
                    // --duration: none starts after the level's end (nor
                    // one never due: past --requests).
                    if !offsets[i].is_finite() || duration_ms.is_some_and(|d| offsets[i] >= d) {
                        break;
                    }
                    let due_std = std_start + Duration::from_secs_f64(offsets[i].max(0.0) / 1000.0);
                    // Build the request while waiting for its time.
                    let mut work = work_item(&shared_d, &sessions_d, i, &plan_d);
                    let first = prepare_first(&shared_d, &work);
                    // Absolute-time sleep on a dedicated thread: sub-millisecond
                    // precision, and no drift however long the level.
                    loop {
                        if shared_d.stopped() {
                            return sent;
                        }
                        let now = std::time::Instant::now();
                        if now >= due_std {
                            break;
                        }
                        std::thread::sleep((due_std - now).min(Duration::from_millis(50)));
                    }
                    let due = Instant::from_std(due_std);
                    // The server is chosen when the session is due, as the
                    // servers' load then is what --route least-busy reads.
                    work.route(&shared_d.router, i);
                    let shared = shared_d.clone();
                    let labels = labels_d.clone();
                    let sem = sem.clone();
                    let trace_time = trace_scale.map(|s| (level_start, trace_origin, s));
                    let more = more_sessions.clone();
                    let jh = handle.spawn(async move {
                        let user = work.user_id;
                        run_session(
                            &shared,
                            work,
                            first,
                            due,
                            &labels,
                            sem.clone(),
                            trace_time,
                            deadline,
                        )
                        .await;
                        if let Some(more) = more {
                            more.run(&shared, &labels, user, sem).await;
                        }
                    });
                    sent += 1;
                    if jh_tx.send(jh).is_err() {
                        return sent;
                    }
                }
                sent
            })?;
        while let Some(jh) = jh_rx.recv().await {
            let _ = jh.await;
        }
        arrivals = tokio::task::spawn_blocking(move || dispatcher.join())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(arrivals);
        if let Some(more) = started_more {
            // The sessions users started after their first.
            arrivals += more.started.load(Ordering::Relaxed);
        }
    }
    Ok(LevelTimes {
        start_ms,
        end_ms: shared.ms(Instant::now()),
        arrivals,
        resent: shared.resent.load(Ordering::Relaxed) - resent_before,
        cache_reset: None,
        client_cpu_s: None,
        client_cpu_pct: None,
        machine_cpu_pct: None,
    })
}

/// A task that ends with its owner, however the owner returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A turn's request, built ahead of its send time so that building it
/// (history, synthetic text, JSON) never counts as lateness.
struct Prepared {
    ctx: Conversation,
    body: bytes::Bytes,
    max_tokens: u32,
}

fn prepare_turn(
    shared: &Shared,
    ctx: &mut Conversation,
    row: &traces::TraceRow,
    work: &Work,
) -> (bytes::Bytes, u32) {
    ctx.begin_turn(row, shared.opts.block_size);
    let max_tokens = max_tokens_for(row, &shared.opts);
    let model = shared.model_of(work);
    (
        request_body(
            &ctx.messages,
            max_tokens,
            &shared.opts,
            model,
            work.tag.as_deref(),
        ),
        max_tokens,
    )
}

/// The first turn of a session, prepared.
fn prepare_first(shared: &Shared, work: &Work) -> Option<Prepared> {
    let row = work.session.turns.first()?;
    let mut ctx = Conversation::default();
    let (body, max_tokens) = prepare_turn(shared, &mut ctx, row, work);
    Some(Prepared {
        ctx,
        body,
        max_tokens,
    })
}

fn suffixed(id: &str, cycle: usize) -> String {
    if cycle == 0 {
        id.to_string()
    } else {
        format!("{id}~c{cycle}")
    }
}

/// Runs a session's turns in order, each after the previous one's response
/// (plus its think time); a failed turn ends the session.
#[allow(clippy::too_many_arguments)]
async fn run_session(
    shared: &Shared,
    work: Work,
    mut first: Option<Prepared>,
    first_due: Instant,
    labels: &Labels,
    sem: Option<Arc<Semaphore>>,
    trace_time: Option<(Instant, f64, f64)>,
    deadline: Option<Instant>,
) {
    let mut ctx = Conversation::default();
    let mut prev_end: Option<Instant> = None;
    let session_id = suffixed(&work.session.id, work.cycle);
    for (k, row) in work.session.turns.iter().enumerate() {
        let (scheduled, send_at) = match prev_end {
            None => (first_due, first_due),
            Some(end) => {
                if shared.stopped() || deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                let think_ms =
                    (row.think_ms.unwrap_or(0.0).max(0.0) * shared.think_scale).min(MAX_THINK_MS);
                let think = Duration::from_secs_f64(think_ms / 1000.0);
                match (trace_time, row.arrival_ms) {
                    (Some((start, origin, scale)), Some(a)) => {
                        let at = start
                            + Duration::from_secs_f64(((a - origin) / scale).max(0.0) / 1000.0);
                        (at, at.max(end))
                    }
                    _ => (end + think, end + think),
                }
            }
        };
        let (body, max_tokens) = match first.take().filter(|_| k == 0) {
            Some(p) => {
                ctx = p.ctx;
                (p.body, p.max_tokens)
            }
            None => prepare_turn(shared, &mut ctx, row, &work),
        };
        if k > 0 {
            // No turn after the level's end; a stop ends the wait at once
            // (a think time can be minutes long), and nothing is in flight.
            let mut stopping = shared.stopping.clone();
            if let Some(end) = deadline.filter(|&d| send_at >= d) {
                // The session's time is up: it waits out the level (so that
                // a --users user does not start another session early).
                tokio::select! {
                    () = tokio::time::sleep_until(end) => {}
                    () = wait_true(&mut stopping) => {}
                }
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(send_at) => {}
                () = wait_true(&mut stopping) => return,
            }
            if shared.stopped() {
                return;
            }
        }
        let mut hard = labels.cancel.clone();
        let permit = match &sem {
            None => None,
            Some(s) => {
                // The cancel first: a slot freed by the cancel itself (a
                // request in flight cut at the same instant) must not send
                // a request that is cut as soon as it is sent.
                tokio::select! {
                    biased;
                    _ = wait_true(&mut hard) => {
                        let now = Instant::now();
                        let mut ex = Exchange::cancelled_at(now);
                        ex.error = Some(if labels.drain_cut(shared) {
                            ex.status = Status::LevelDrain;
                            "cancelled while waiting for a concurrency slot (still waiting \
                             --level-drain after the level's end)"
                                .into()
                        } else {
                            "cancelled while waiting for a concurrency slot".into()
                        });
                        record(
                            shared,
                            &work,
                            &session_id,
                            row,
                            labels,
                            scheduled,
                            &ex,
                            None,
                            None,
                        );
                        return;
                    }
                    p = s.clone().acquire_owned() => p.ok(),
                }
            }
        };
        let request_id = suffixed(&row.request_id, work.cycle);
        // Kept for --tokenizer, which counts the prompt of a reply without usage.
        let sent_body = shared.count_output.then(|| body.clone());
        let mut ex = exchange(
            &shared.client,
            &shared.fresh_client,
            &shared.endpoint,
            work.server,
            body,
            &request_id,
            labels.cancel.clone(),
        )
        .await;
        if ex.status == Status::Cancelled && labels.drain_cut(shared) {
            ex.status = Status::LevelDrain;
            ex.error = Some(format!(
                "{} (still in flight --level-drain after the level's end)",
                ex.error.as_deref().unwrap_or("cancelled")
            ));
        }
        drop(permit);
        record(
            shared,
            &work,
            &session_id,
            row,
            labels,
            scheduled,
            &ex,
            Some(max_tokens),
            sent_body.as_ref(),
        );
        if ex.status != Status::Ok {
            return;
        }
        ctx.end_turn(row, shared.history, &ex.text);
        prev_end = Some(ex.end);
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    work: &Work,
    session_id: &str,
    row: &traces::TraceRow,
    labels: &Labels,
    scheduled: Instant,
    ex: &Exchange,
    max_tokens: Option<u32>,
    body: Option<&bytes::Bytes>,
) {
    let ms = |t: Instant| shared.ms(t);
    let scheduled_ms = ms(scheduled);
    let sent_ms = ms(ex.sent);
    let end_ms = ms(ex.end);
    let first = ex.first_token.map(ms);
    let ok = ex.status == Status::Ok;
    let (completion, source) = match ex.completion_tokens {
        Some(n) => (Some(n), Some(FROM_USAGE)),
        None if ex.chunks > 0 => (Some(ex.chunks), Some(FROM_CHUNKS)),
        None => (None, None),
    };
    let ttft = first.map(|f| f - sent_ms);
    let e2e = end_ms - sent_ms;
    let tpot = output_tokens::tpot(Some(ex.status), ttft, Some(e2e), completion);
    // The recorder counts these with the tokenizer.
    let to_count = (shared.count_output && source != Some(FROM_USAGE)).then(|| {
        (
            format!("{}{}", ex.text, ex.other_text),
            body.cloned().unwrap_or_default(),
        )
    });
    let rec = RequestRecord {
        run_id: shared.run_id.clone(),
        load_mode: labels.mode.to_string(),
        load_value: labels.value,
        round: labels.round,
        warmup: work.warmup,
        request_id: suffixed(&row.request_id, work.cycle),
        session_id: session_id.to_string(),
        turn: row.turn,
        source: (!row.source.is_empty()).then(|| row.source.clone()),
        user_id: work.user_id,
        endpoint: shared.endpoint.names.get(work.server).cloned(),
        model: Some(shared.model_of(work).to_string()),
        scheduled_ms,
        sent_ms,
        first_token_ms: first,
        first_reasoning_ms: ex.first_reasoning.map(ms),
        first_content_ms: ex.first_content.map(ms),
        end_ms,
        ttft_ms: ttft,
        ttft_intended_ms: first.map(|f| f - scheduled_ms),
        e2e_ms: Some(e2e),
        e2e_intended_ms: Some(end_ms - scheduled_ms),
        tpot_ms: tpot,
        itl_ms: ex.itl_ms.clone(),
        lateness_ms: (sent_ms - scheduled_ms).max(0.0),
        prompt_tokens: ex.prompt_tokens,
        completion_tokens: completion,
        reasoning_tokens: ex.reasoning_tokens,
        cached_tokens: ex.cached_tokens,
        tokens_source: source.map(str::to_string),
        input_tokens_target: row.input_tokens.or(row.prompt_tokens),
        max_tokens,
        output_chars: ex.text.chars().count() as u32,
        finish_reason: ex.finish_reason.clone(),
        status: Some(ex.status),
        http_status: ex.http_status,
        error: ex.error.clone(),
        compaction: row.reset_context,
    };
    if ex.resent {
        shared.resent.fetch_add(1, Ordering::Relaxed);
    }
    shared.done.fetch_add(1, Ordering::Relaxed);
    if !ok {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
    // The recorder outlives every request task; a send error means the run is being torn down.
    let _ = shared.tx.send(super::recorder::Finished { rec, to_count });
}
