//! The HTTP server: hyper 1 HTTP/1.1 connections with keep-alive, one task
//! per connection, routing, and graceful shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::api::{self, Endpoint, Finish, Writer};
use super::args::{Config, MockArgs};
use super::engine::{Admit, Engine};
use super::faults::Fault;
use super::log::{self, Log, LogWriter, Record};
use super::reply::{Progress, Reply};
use super::stream::{MockBody, TokenStream};
use super::tokens::Counter;

/// Largest request body accepted.
const MAX_BODY: usize = 64 << 20;
/// Accept queue length asked of the kernel.
const LISTEN_BACKLOG: u32 = 8192;
/// How long shutdown lets open requests finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running mock server. Dropping it without [`MockServer::shutdown`]
/// stops accepting but does not flush the request log.
pub struct MockServer {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    engine: Arc<Engine>,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    connections: mpsc::Receiver<()>,
    log: Option<LogWriter>,
}

impl MockServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving on the
    /// current tokio runtime. `args.host`/`args.port` are not used.
    pub async fn start(args: MockArgs, addr: SocketAddr) -> anyhow::Result<MockServer> {
        let cfg = Config::from_args(&args)?;
        let counter = Counter::new(cfg.tokenizer.as_deref(), cfg.block_size)?;
        let (log, writer) = match &cfg.log {
            Some((path, format)) => {
                let (log, writer) = log::open(path, *format)?;
                (log, Some(writer))
            }
            None => (Log::disabled(), None),
        };
        let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr().context("no local address")?;
        let engine = Arc::new(Engine::new(cfg, counter, log));
        let (stop, stop_rx) = watch::channel(false);
        let (conn_tx, connections) = mpsc::channel(1);
        let accept = tokio::spawn(accept_loop(listener, engine.clone(), stop_rx, conn_tx));
        Ok(MockServer {
            addr,
            engine,
            stop,
            accept,
            connections,
            log: writer,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests admitted or waiting so far (for tests and summaries).
    pub fn requests_seen(&self) -> u64 {
        self.engine.metrics.requests_started.load(Relaxed)
    }

    /// Stops accepting, lets open requests finish for up to two seconds,
    /// cuts the rest, then flushes and closes the request log.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        // Every connection task holds a sender; recv() ends when all are gone.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, self.connections.recv()).await;
        if let Some(writer) = self.log.take() {
            tokio::task::spawn_blocking(move || writer.close())
                .await
                .context("the request log writer panicked")??;
        }
        Ok(())
    }
}

/// Binds with a long accept queue (the kernel caps it at `somaxconn`), so
/// thousands of clients connecting at once are not dropped and retried.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves when shutdown is signalled (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    engine: Arc<Engine>,
    mut stop: watch::Receiver<bool>,
    conn_tx: mpsc::Sender<()>,
) {
    let mut warned = false;
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                if !warned {
                    eprintln!("trace mock: accept failed: {e} (raise `ulimit -n`?)");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let engine = engine.clone();
        let stop = stop.clone();
        let guard = conn_tx.clone();
        tokio::spawn(async move {
            serve_connection(stream, engine, stop).await;
            drop(guard);
        });
    }
}

async fn serve_connection(stream: TcpStream, engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let reset = Arc::new(AtomicBool::new(false));
    let close = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ConnIo {
        inner: stream,
        reset: reset.clone(),
        close: close.clone(),
    });
    let service = service_fn(move |req| {
        let engine = engine.clone();
        let flags = ConnFlags {
            reset: reset.clone(),
            close: close.clone(),
        };
        async move { Ok::<_, Infallible>(route(engine, flags, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
    }
}

/// The TCP stream of one connection. When a fault sets `reset`, the stream
/// refuses further writes and is closed with SO_LINGER 0, so the peer gets
/// an RST rather than an orderly end; when one sets `close`, it refuses
/// further writes and ends in order (FIN), nothing more sent.
struct ConnIo {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
    close: Arc<AtomicBool>,
}

/// What faults can do to the connection a request came on.
struct ConnFlags {
    reset: Arc<AtomicBool>,
    close: Arc<AtomicBool>,
}

impl ConnIo {
    fn check(&self) -> io::Result<()> {
        if self.reset.load(Relaxed) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "fault: reset",
            ));
        }
        if self.close.load(Relaxed) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "fault: close"));
        }
        Ok(())
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.reset.load(Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn json_response(status: StatusCode, body: String) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    let (kind, code) = match status.as_u16() {
        400 | 413 => ("invalid_request_error", "bad_request"),
        401 => ("invalid_request_error", "invalid_api_key"),
        404 => ("invalid_request_error", "not_found"),
        405 => ("invalid_request_error", "method_not_allowed"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        503 => ("server_error", "service_unavailable"),
        _ => ("server_error", "internal_error"),
    };
    json_response(status, api::error_json(message, kind, code))
}

async fn route(
    engine: Arc<Engine>,
    flags: ConnFlags,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let path = req.uri().path().to_string();
    if path.starts_with("/v1/")
        && let Some(key) = &engine.cfg.api_key
    {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong API key");
        }
    }
    let method = req.method().clone();
    match (path.as_str(), method) {
        ("/v1/chat/completions", Method::POST) => {
            completion(engine, flags, Endpoint::Chat, req).await
        }
        ("/v1/completions", Method::POST) => {
            completion(engine, flags, Endpoint::Completions, req).await
        }
        ("/v1/models", Method::GET) => models(&engine),
        ("/reset_prefix_cache" | "/flush_cache", Method::POST) => {
            engine.reset_prefix_cache();
            Response::new(MockBody::Full(None))
        }
        ("/health", Method::GET) => Response::new(MockBody::Full(None)),
        ("/metrics", Method::GET) => {
            let text = engine
                .metrics
                .render(engine.cfg.flavor, engine.cfg.model_name());
            let mut r = Response::new(MockBody::full(text));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (
            "/v1/chat/completions"
            | "/v1/completions"
            | "/v1/models"
            | "/health"
            | "/metrics"
            | "/reset_prefix_cache"
            | "/flush_cache",
            m,
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method {m} is not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    }
}

fn models(engine: &Engine) -> Response<MockBody> {
    let created = engine.clock.unix_secs(Instant::now());
    let base = engine.cfg.model_name();
    let mut data = vec![serde_json::json!({
        "id": base,
        "object": "model",
        "created": created,
        "owned_by": "trace-mock",
        "max_model_len": engine.cfg.max_model_len,
    })];
    // Adapters as vLLM lists them: after the model, with it as parent.
    data.extend(engine.cfg.loras.iter().map(|l| {
        serde_json::json!({
            "id": l,
            "object": "model",
            "created": created,
            "owned_by": "trace-mock",
            "parent": base,
            "max_model_len": engine.cfg.max_model_len,
        })
    }));
    let body = serde_json::json!({"object": "list", "data": data});
    json_response(StatusCode::OK, body.to_string())
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn completion(
    engine: Arc<Engine>,
    flags: ConnFlags,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let arrival = Instant::now();
    let cfg = &engine.cfg;
    let client_request_id = header(&req, "x-request-id");
    let forced = match header(&req, "x-mock-fault") {
        None => None,
        Some(name) if name.is_empty() || name == "none" => None,
        Some(name) => match Fault::from_name(&name) {
            Some(f) => Some(f),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown x-mock-fault `{name}`"),
                );
            }
        },
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return error(status, &format!("cannot read the request body: {e}"));
        }
    };
    let request = match api::parse_request(endpoint, &body) {
        Ok(r) => r,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    if let Some(asked) = &request.model
        && !cfg.serves(asked)
    {
        return error(
            StatusCode::NOT_FOUND,
            &format!("The model `{asked}` does not exist."),
        );
    }
    let info = if engine.counter.is_exact() {
        let counter = engine.counter.clone();
        let prompt = request.prompt.clone();
        match tokio::task::spawn_blocking(move || counter.count(&prompt)).await {
            Ok(r) => r,
            Err(e) => Err(e.to_string()),
        }
    } else {
        engine.counter.count(&request.prompt)
    };
    let info = match info {
        Ok(i) => i,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("tokenizer failed: {e}"),
            );
        }
    };
    let room = cfg.max_model_len.saturating_sub(info.tokens);
    let max_tokens = match request.max_tokens {
        Some(m) if m > room => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the prompt, {m} in the completion).",
                    cfg.max_model_len,
                    info.tokens as u64 + m as u64,
                    info.tokens
                ),
            );
        }
        Some(m) => m,
        None if room == 0 => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "This model's maximum context length is {} tokens; the prompt has {}.",
                    cfg.max_model_len, info.tokens
                ),
            );
        }
        None => cfg.default_max_tokens.min(room),
    };
    let (tokens, finish) = match cfg.eos_after {
        Some(eos) if cfg.eos_always && eos < max_tokens => (eos, Finish::Stop),
        Some(eos) if !request.ignore_eos && eos.max(request.min_tokens) < max_tokens => {
            (eos.max(request.min_tokens), Finish::Stop)
        }
        _ => (max_tokens, Finish::Length),
    };
    let seq = engine.next_seq();
    engine.metrics.requests_started.fetch_add(1, Relaxed);
    let fault = forced.or_else(|| cfg.faults.draw(cfg.fault_seed, seq));
    if let Some(f) = fault {
        engine.metrics.count_fault(f);
    }
    let (prefix, created) = match endpoint {
        Endpoint::Chat => ("chatcmpl", engine.clock.unix_secs(arrival)),
        Endpoint::Completions => ("cmpl", engine.clock.unix_secs(arrival)),
    };
    let writer = Writer::new(
        endpoint,
        format!("{prefix}-mock-{seq}"),
        created,
        cfg.reply_model(request.model.as_deref()),
    );
    if fault == Some(Fault::Close) {
        log_http_fault(
            &engine,
            &writer,
            endpoint,
            request.stream,
            0,
            fault,
            arrival,
            info.tokens,
            client_request_id,
        );
        // Nothing of this response is written: the connection ends here.
        flags.close.store(true, Relaxed);
        return Response::new(MockBody::Full(None));
    }
    let reset = flags.reset;
    if let Some(status) = fault.and_then(Fault::http_status) {
        log_http_fault(
            &engine,
            &writer,
            endpoint,
            request.stream,
            status,
            fault,
            arrival,
            info.tokens,
            client_request_id,
        );
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = error(
            status,
            &format!("fault injected by trace mock: HTTP {}", status.as_u16()),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        return r;
    }
    let prompt = Arc::new(info);
    let admit = engine.admit(arrival, prompt.clone(), tokens);
    let reply = Reply {
        engine: engine.clone(),
        writer,
        endpoint,
        stream: request.stream,
        include_usage: request.include_usage,
        tokens,
        finish,
        fault,
        prompt,
        arrival,
        client_request_id,
    };
    if request.stream {
        let mut r = Response::new(MockBody::Stream(Box::new(TokenStream::new(
            reply, admit, reset,
        ))));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        return r;
    }
    whole(reply, admit, reset).await
}

#[allow(clippy::too_many_arguments)]
fn log_http_fault(
    engine: &Engine,
    writer: &Writer,
    endpoint: Endpoint,
    stream: bool,
    status: u16,
    fault: Option<Fault>,
    arrival: Instant,
    prompt_tokens: u32,
    client_request_id: Option<String>,
) {
    engine.log.write(Record {
        request_id: writer.id().to_string(),
        client_request_id,
        endpoint: endpoint.name(),
        stream,
        status: "fault",
        http_status: status,
        fault: fault.map(Fault::name),
        arrival_ms: engine.clock.unix_ms(arrival),
        admitted_ms: None,
        first_token_ms: None,
        last_token_ms: None,
        prompt_tokens,
        completion_tokens: 0,
        cached_tokens: 0,
        external_cached_tokens: 0,
    });
}

/// Records the reply's progress when dropped (the client may go away mid-wait).
struct Finishing {
    reply: Reply,
    progress: Progress,
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.reply.finish(&self.progress);
    }
}

/// A non-streaming reply: wait as long as the tokens would take, then
/// answer with the whole completion.
async fn whole(reply: Reply, admit: Admit, reset: Arc<AtomicBool>) -> Response<MockBody> {
    let running = match admit {
        Admit::Now(r) => r,
        Admit::Queued(f) => match f.await {
            Some(r) => r,
            None => return error(StatusCode::SERVICE_UNAVAILABLE, "engine closed"),
        },
    };
    let engine = reply.engine.clone();
    let mut f = Finishing {
        progress: Progress {
            admitted: Some(running.admitted),
            cached: running.cached_tokens,
            external_cached: running.external_cached_tokens,
            ..Progress::default()
        },
        reply,
    };
    let tokens = f.reply.tokens;
    let mut due = running.first_due;
    f.progress.first_token = Some(due);
    for _ in 1..tokens {
        let step = engine.decode_step();
        engine.metrics.itl.observe_duration(step);
        due += step;
    }
    match f.reply.fault {
        Some(Fault::Stall) => {
            tokio::time::sleep_until((due + engine.cfg.stall).into()).await;
            return Response::new(MockBody::Reset(reset));
        }
        Some(Fault::Reset) => {
            tokio::time::sleep_until(running.first_due.into()).await;
            return Response::new(MockBody::Reset(reset));
        }
        _ => {}
    }
    tokio::time::sleep_until(due.into()).await;
    drop(running);
    let now = Instant::now();
    f.progress.sent = tokens;
    f.progress.last_token = Some(now);
    f.progress.complete = true;
    engine
        .metrics
        .generation_tokens
        .fetch_add(tokens as u64, Relaxed);
    let mut body = f
        .reply
        .writer
        .full(tokens, f.reply.finish, f.reply.usage(f.progress.cached));
    if f.reply.fault == Some(Fault::Malformed) {
        body.truncate(body.len() / 2);
    }
    json_response(StatusCode::OK, body)
}
