//! Response bodies. [`TokenStream`] is the SSE body: it waits for
//! admission, then hands hyper every token whose deadline has passed in one
//! frame, and sleeps until the next deadline. No task or channel per request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Sleep, sleep_until};

use super::api::Writer;
use super::engine::{Admission, Admit, Running};
use super::faults::Fault;
use super::reply::{Progress, Reply};

/// Every body the server sends.
pub enum MockBody {
    /// A complete body (JSON, metrics text).
    Full(Option<Bytes>),
    /// A streamed reply.
    Stream(Box<TokenStream>),
    /// Ends the connection with a reset once the headers are out.
    Reset(Arc<AtomicBool>),
}

impl MockBody {
    pub fn full(b: impl Into<Bytes>) -> MockBody {
        MockBody::Full(Some(b.into()))
    }
}

fn reset_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "fault: connection reset",
    )
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Stream(s) => s.poll_next(cx),
            MockBody::Reset(flag) => {
                flag.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(reset_error())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

enum State {
    Queued(Admission),
    Streaming,
    /// A `stall` fault: silent until the sleep ends, then a reset.
    Stalled,
    Done,
}

/// The SSE body of one streamed reply.
pub struct TokenStream {
    reply: Reply,
    state: State,
    running: Option<Running>,
    progress: Progress,
    next_due: Instant,
    /// When the previous frame with tokens went out (for inter-token latency).
    last_emit: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where `reset`/`stall` cut the stream and `malformed` inserts its line.
    break_at: Option<u32>,
    /// Tokens written to the stream; `progress.sent - written` are decoded
    /// and wait for their chunk (`--tokens-per-chunk`).
    written: u32,
    reset: Arc<AtomicBool>,
}

impl TokenStream {
    pub fn new(reply: Reply, admit: Admit, reset: Arc<AtomicBool>) -> TokenStream {
        let break_at = match reply.fault {
            Some(Fault::Reset | Fault::Stall | Fault::Malformed) => Some(reply.tokens / 2),
            _ => None,
        };
        let mut s = TokenStream {
            state: State::Streaming,
            running: None,
            progress: Progress::default(),
            next_due: reply.arrival,
            last_emit: None,
            sleep: None,
            break_at,
            written: 0,
            reset,
            reply,
        };
        match admit {
            Admit::Now(r) => s.started(r),
            Admit::Queued(f) => s.state = State::Queued(f),
        }
        s
    }

    fn started(&mut self, r: Running) {
        self.progress.admitted = Some(r.admitted);
        self.progress.cached = r.cached_tokens;
        self.progress.external_cached = r.external_cached_tokens;
        self.next_due = r.first_due;
        self.running = Some(r);
        self.state = State::Streaming;
    }

    /// Sleeps until `deadline`; Ready when it has passed.
    fn wait_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = tokio::time::Instant::from_std(deadline);
        match &mut self.sleep {
            Some(s) => s.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(sleep_until(deadline))),
        }
        match &mut self.sleep {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }

    fn cut(&mut self) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.reset.store(true, Relaxed);
        self.state = State::Done;
        Poll::Ready(Some(Err(reset_error())))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Queued(admission) => match ready!(admission.as_mut().poll(cx)) {
                    Some(r) => self.started(r),
                    None => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(std::io::Error::other("engine closed"))));
                    }
                },
                State::Stalled => {
                    let until = self.next_due + self.reply.engine.cfg.stall;
                    ready!(self.wait_until(until, cx));
                    return self.cut();
                }
                State::Streaming => {
                    let n = self.reply.tokens;
                    let now = Instant::now();
                    if self.progress.sent < n && now < self.next_due {
                        ready!(self.wait_until(self.next_due, cx));
                        continue;
                    }
                    let sent = self.progress.sent;
                    if self.break_at == Some(sent) {
                        match self.reply.fault {
                            Some(Fault::Reset) => return self.cut(),
                            Some(Fault::Stall) => {
                                self.state = State::Stalled;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    let frame = self.emit(now);
                    if frame.is_empty() && matches!(self.state, State::Streaming) {
                        // Decoded tokens wait for the rest of their chunk.
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
            }
        }
    }

    /// Every token due by `now` (stopping at a cut), in chunks of
    /// `--tokens-per-chunk` after the first token, which goes out alone,
    /// and the end of the stream once the last token is out. Empty when
    /// the tokens due wait for the rest of their chunk.
    fn emit(&mut self, now: Instant) -> Bytes {
        let n = self.reply.tokens;
        let engine = self.reply.engine.clone();
        let m = &engine.metrics;
        let per_chunk = engine.cfg.tokens_per_chunk.max(1);
        let mut out = Vec::with_capacity(256);
        let first_sent = self.progress.sent;
        let first_written = self.written;
        while self.progress.sent < n && self.next_due <= now {
            let i = self.progress.sent;
            if self.break_at == Some(i)
                && i > first_sent
                && matches!(self.reply.fault, Some(Fault::Reset | Fault::Stall))
            {
                break;
            }
            if self.break_at == Some(i) && self.reply.fault == Some(Fault::Malformed) {
                Writer::malformed(&mut out);
                self.break_at = None;
            }
            self.progress.sent += 1;
            let sent = self.progress.sent;
            if self.written == 0 || sent - self.written >= per_chunk || sent == n {
                self.reply.writer.tokens(&mut out, self.written..sent);
                self.written = sent;
            }
            if self.progress.sent < n {
                self.next_due += engine.decode_step();
            }
        }
        let count = self.written - first_written;
        if count > 0 {
            match self.last_emit {
                Some(prev) => m.itl.observe_duration(now.saturating_duration_since(prev)),
                None => self.progress.first_token = Some(now),
            }
            // Tokens written together are zero apart.
            m.itl.observe_zeros(count as u64 - 1);
            self.last_emit = Some(now);
            self.progress.last_token = Some(now);
            m.generation_tokens.fetch_add(count as u64, Relaxed);
        }
        if self.progress.sent == n {
            self.reply.writer.finish(&mut out, self.reply.finish);
            if self.reply.include_usage
                && let Some(usage) = self.reply.usage(self.progress.cached)
            {
                self.reply.writer.usage(&mut out, usage);
            }
            if self.reply.fault != Some(Fault::NoDone) {
                Writer::done(&mut out);
            }
            self.progress.complete = true;
            self.state = State::Done;
            // Free the running place as soon as the last token is out.
            self.running = None;
        }
        Bytes::from(out)
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        self.running = None;
        self.reply.finish(&self.progress);
    }
}
