//! `trace mock`: an OpenAI-compatible server that behaves like an inference
//! engine, with exactly known timing, a two-tier prefix cache, vLLM-style
//! metrics and faults on purpose. See docs/mock.md.
//!
//! Modules: `args` (options), `api` (request and response text), `tokens`
//! (prompt counting, block hashes), `cache` (prefix cache), `engine`
//! (queue, prefill, decode model), `stream` (the SSE body), `reply` (end of
//! request bookkeeping), `metrics`, `faults`, `log` (request log), `server`.

mod api;
mod args;
mod cache;
mod engine;
mod faults;
mod log;
mod metrics;
mod reply;
mod server;
mod stream;
mod tokens;

#[allow(unused_imports)]
pub use args::{MetricsFlavor, MockArgs};
pub use server::MockServer;

use anyhow::Context;

/// Runs `trace mock` until Ctrl-C or SIGTERM.
pub fn run(args: MockArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("trace-mock")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let addr = args.addr();
        let server = MockServer::start(args, addr).await?;
        println!("listening on {}", server.url());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        wait_for_signal().await;
        eprintln!(
            "trace mock: shutting down after {} requests",
            server.requests_seen()
        );
        server.shutdown().await
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests;
