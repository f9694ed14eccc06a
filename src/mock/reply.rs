//! One reply being produced: what it must contain, and the record and
//! metrics written when it ends (however it ends).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::api::{Endpoint, Finish, Usage, Writer};
use super::engine::Engine;
use super::faults::Fault;
use super::log::Record;
use super::tokens::PromptInfo;

/// A validated, admitted-or-queued completion request.
pub struct Reply {
    pub engine: Arc<Engine>,
    pub writer: Writer,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub include_usage: bool,
    /// Completion tokens to send.
    pub tokens: u32,
    pub finish: Finish,
    pub fault: Option<Fault>,
    pub prompt: Arc<PromptInfo>,
    pub arrival: Instant,
    pub client_request_id: Option<String>,
}

/// How far a reply got.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub admitted: Option<Instant>,
    pub first_token: Option<Instant>,
    pub last_token: Option<Instant>,
    pub sent: u32,
    pub cached: u32,
    pub external_cached: u32,
    /// Every token (and the end of the stream) was written.
    pub complete: bool,
}

impl Reply {
    /// The usage a reply reports (wrong on purpose under `usage-wrong`).
    pub fn usage(&self, cached: u32) -> Option<Usage> {
        match self.fault {
            Some(Fault::UsageMissing) => None,
            Some(Fault::UsageWrong) => Some(Usage {
                prompt: self.prompt.tokens,
                completion: self.tokens + 1,
                cached,
            }),
            _ => Some(Usage {
                prompt: self.prompt.tokens,
                completion: self.tokens,
                cached,
            }),
        }
    }

    /// Writes the log record and the end-of-request metrics.
    pub fn finish(&self, p: &Progress) {
        let e = &self.engine;
        let m = &e.metrics;
        if p.complete {
            match self.finish {
                Finish::Length => m.finished_length.fetch_add(1, Relaxed),
                Finish::Stop => m.finished_stop.fetch_add(1, Relaxed),
            };
            m.prompt_len.observe(self.prompt.tokens as f64);
            m.generation_len.observe(p.sent as f64);
            if let Some(last) = p.last_token {
                m.e2e
                    .observe_duration(last.saturating_duration_since(self.arrival));
                if let Some(first) = p.first_token {
                    m.decode_nanos.fetch_add(
                        last.saturating_duration_since(first).as_nanos() as u64,
                        Relaxed,
                    );
                }
            }
        }
        if let Some(first) = p.first_token {
            m.ttft
                .observe_duration(first.saturating_duration_since(self.arrival));
        }
        if let Some(admitted) = p.admitted {
            m.queue
                .observe_duration(admitted.saturating_duration_since(self.arrival));
        }
        if !e.log.enabled() {
            return;
        }
        let status = match (self.fault, p.complete) {
            (Some(_), _) => "fault",
            (None, true) => "ok",
            (None, false) => "cancelled",
        };
        let ms = |t: Option<Instant>| t.map(|t| e.clock.unix_ms(t));
        e.log.write(Record {
            request_id: self.writer.id().to_string(),
            client_request_id: self.client_request_id.clone(),
            endpoint: self.endpoint.name(),
            stream: self.stream,
            status,
            http_status: 200,
            fault: self.fault.map(Fault::name),
            arrival_ms: e.clock.unix_ms(self.arrival),
            admitted_ms: ms(p.admitted),
            first_token_ms: ms(p.first_token),
            last_token_ms: ms(p.last_token),
            prompt_tokens: self.prompt.tokens,
            completion_tokens: p.sent,
            cached_tokens: p.cached,
            external_cached_tokens: p.external_cached,
        });
    }
}
