//! The one task that owns the results files: request tasks send finished
//! records over a channel; this task writes them as Parquet parts (a new
//! part every `PART_ROWS` rows or `FLUSH_EVERY`, so an interrupted run keeps
//! everything but the last moments) and keeps the compact figures the
//! summary needs.

use std::path::PathBuf;
use std::time::Duration;

use traces::results::{PartsWriter, RequestRecord, Status};

use super::output_tokens::{FROM_CHUNKS, FROM_TOKENIZER, OutputCounter};

const PART_ROWS: usize = 5000;
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// What the summary needs of one request.
#[derive(Debug, Clone)]
pub struct Compact {
    pub warmup: bool,
    /// The first turn of a session: an arrival of the load schedule.
    pub session_start: bool,
    pub status: Status,
    pub http_status: Option<u16>,
    pub scheduled_ms: f64,
    pub sent_ms: f64,
    pub end_ms: f64,
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    pub itl_ms: Vec<f32>,
    pub lateness_ms: f64,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub cached_tokens: Option<u32>,
    /// `completion_tokens` is a count of chunks (no usage, no `--tokenizer`).
    pub counted_tokens: bool,
    /// `completion_tokens` was counted by `--tokenizer` (no usage).
    pub tokenized_tokens: bool,
    /// No token count at all (no usage, and no chunk or `--tokenizer`
    /// count: a whole reply).
    pub unknown_tokens: bool,
    /// The reply's `finish_reason`.
    pub finish_reason: Option<String>,
    /// The output length the request asked for.
    pub max_tokens: Option<u32>,
    /// Of a session sent again in the level (`~c1`, `~c2`, ...): the trace
    /// held fewer sessions than the level needed.
    pub repeat: bool,
    /// The server it went to, an index into `Collected::servers`.
    pub server: u16,
    /// The model it named, an index into `Collected::models`.
    pub model: u16,
}

/// Whether a session id is a repeat's: `ID~cN`.
fn is_repeat(session_id: &str) -> bool {
    session_id
        .rsplit_once("~c")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A level of the run: mode, value, round.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelKey {
    pub mode: String,
    pub value: f64,
    pub round: u32,
}

/// Everything recorded, grouped by level in order of appearance.
#[derive(Debug, Default)]
pub struct Collected {
    pub levels: Vec<(LevelKey, Vec<Compact>)>,
    pub rows: u64,
    /// The servers (`endpoint` column) in the order first seen.
    pub servers: Vec<String>,
    /// The models (`model` column) in the order first seen.
    pub models: Vec<String>,
}

/// The index of `name` in `seen`, added if new.
fn number(seen: &mut Vec<String>, name: &str) -> u16 {
    let i = match seen.iter().position(|s| s == name) {
        Some(i) => i,
        None => {
            seen.push(name.to_string());
            seen.len() - 1
        }
    };
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl Collected {
    fn add(&mut self, r: &RequestRecord) {
        let key = LevelKey {
            mode: r.load_mode.clone(),
            value: r.load_value,
            round: r.round,
        };
        let compact = Compact {
            server: number(&mut self.servers, r.endpoint.as_deref().unwrap_or_default()),
            model: number(&mut self.models, r.model.as_deref().unwrap_or_default()),
            warmup: r.warmup,
            session_start: r.turn == 0,
            status: r.status.unwrap_or(Status::Cancelled),
            http_status: r.http_status,
            scheduled_ms: r.scheduled_ms,
            sent_ms: r.sent_ms,
            end_ms: r.end_ms,
            ttft_ms: r.ttft_ms,
            tpot_ms: r.tpot_ms,
            e2e_ms: r.e2e_ms,
            itl_ms: r.itl_ms.clone(),
            lateness_ms: r.lateness_ms,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            counted_tokens: r.tokens_source.as_deref() == Some(FROM_CHUNKS),
            tokenized_tokens: r.tokens_source.as_deref() == Some(FROM_TOKENIZER),
            unknown_tokens: r.tokens_source.is_none(),
            max_tokens: r.max_tokens,
            finish_reason: r.finish_reason.clone(),
            repeat: is_repeat(&r.session_id),
        };
        match self.levels.iter_mut().rev().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(compact),
            None => self.levels.push((key, vec![compact])),
        }
        self.rows += 1;
    }
}

/// A finished request, as a request task hands it over.
pub struct Finished {
    pub rec: RequestRecord,
    /// When its tokens are to be counted with `--tokenizer` (no usage came
    /// back): the reply's text (content, reasoning, tool calls) and the
    /// request body sent.
    pub to_count: Option<(String, bytes::Bytes)>,
}

/// Starts the recorder on its own OS thread, so Parquet encoding (and
/// counting output tokens with `counter`) never stalls the async workers
/// that time requests. Drop every sender to let it finish; join the handle
/// for the collected figures.
pub fn spawn(
    dir: PathBuf,
    counter: Option<OutputCounter>,
) -> anyhow::Result<(
    std::sync::mpsc::Sender<Finished>,
    std::thread::JoinHandle<anyhow::Result<Collected>>,
)> {
    let mut writer = PartsWriter::create(&dir, PART_ROWS)?;
    let (tx, rx) = std::sync::mpsc::channel::<Finished>();
    let handle = std::thread::Builder::new()
        .name("trace-recorder".into())
        .spawn(move || {
            let mut collected = Collected::default();
            let mut last_flush = std::time::Instant::now();
            loop {
                match rx.recv_timeout(FLUSH_EVERY) {
                    Ok(Finished { mut rec, to_count }) => {
                        if let (Some(c), Some((text, body))) = (&counter, &to_count) {
                            c.apply(&mut rec, text, body);
                        }
                        collected.add(&rec);
                        writer.write(rec)?;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if last_flush.elapsed() >= FLUSH_EVERY {
                    writer.flush()?;
                    last_flush = std::time::Instant::now();
                }
            }
            writer.finish()?;
            Ok(collected)
        })?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_told_by_their_suffix() {
        assert!(is_repeat("s1~c1") && is_repeat("a~b~c12"));
        assert!(!is_repeat("s1") && !is_repeat("s1~c") && !is_repeat("s~cat"));
    }
}
