//! `trace demo`: the README's first command. Starts the built-in mock
//! server on a free loopback port, generates a small multi-turn agent trace
//! with shared prefixes, replays it at a short QPS sweep in two rounds (cold
//! and warm prefix cache), prints the tables and where the results are.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use converters::CommonOptions;

use crate::cli::DemoArgs;
use crate::mock::{MockArgs, MockServer};
use crate::replay::{ReplayArgs, config, execute};

/// Parses generator flags as the command line would.
#[derive(Parser)]
struct AgentFlags {
    #[command(flatten)]
    options: converters::synth::agent::Options,
}

fn demo_trace(path: &std::path::Path) -> anyhow::Result<()> {
    let flags = AgentFlags::try_parse_from([
        "demo",
        "--users",
        "12",
        "--turns",
        "3:5",
        "--system-prefix-tokens",
        "1024",
        "--user-prefix-tokens",
        "256",
        "--turn-input-tokens",
        "64:192",
        "--turn-output-tokens",
        "24:48",
        "--context-window",
        "8192",
        "--think-ms",
        "50:200",
        "--seed",
        "7",
    ])
    .context("demo trace options")?;
    let mut source = converters::synth::agent::generate(&flags.options)?;
    let producer = serde_json::json!({"command": "demo", "generator": "agent"});
    converters::pipeline::run(source.as_mut(), &CommonOptions::default(), path, producer)?;
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.results_dir)
        .with_context(|| format!("cannot create {}", args.results_dir.display()))?;
    let trace = args.results_dir.join("demo-agent-trace.parquet");
    demo_trace(&trace)?;
    println!(
        "== trace synth agent: 12 users, 3-5 turns each, a shared 1024-token system prefix ==\nwrote {}\n",
        trace.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mock = MockServer::start(MockArgs::default(), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("cannot start the built-in mock server")?;
        println!("== trace mock: listening on {} ==\n", mock.url());
        let replay = ReplayArgs {
            trace: Some(trace.clone()),
            endpoint: Some(vec![mock.url()]),
            qps: Some(vec!["2".into(), "4".into(), "8".into()]),
            rounds: Some(2),
            cache_reset: Some("/reset_prefix_cache".into()),
            results_dir: Some(args.results_dir.clone()),
            name: Some("demo".into()),
            slo: Some("ttft_ms=300,tpot_ms=40".into()),
            metrics_interval: Some("250ms".into()),
            quiet: true,
            ..Default::default()
        };
        println!(
            "== trace replay --qps 2,4,8 --rounds 2 --cache-reset /reset_prefix_cache --slo ttft_ms=300,tpot_ms=40 =="
        );
        let cfg = config::resolve(replay)?;
        let outcome = execute(cfg).await;
        mock.shutdown().await?;
        let outcome = outcome?;
        let dir = outcome.run_dir.display();
        println!(
            "\nEach level starts on an empty prefix cache, and round 2 replays round 1's requests on the cache round 1 left: compare TTFT and the cached-token ratio."
        );
        for l in &outcome.levels {
            if let Some(r) = l.cached_token_ratio {
                println!(
                    "  qps {} round {}: {:.0}% of prompt tokens served from the prefix cache",
                    crate::replay::summary::fmt_value(l.load_value),
                    l.round,
                    r * 100.0
                );
            }
        }
        println!("\nReport on the run (saturation, rounds, turns; --format html --plot DIR for charts):");
        println!("  trace report {dir}");
        println!("\nQuery the results yourself:");
        println!(
            "  duckdb -c \"SELECT load_value, round, count(*) AS n, quantile_cont(ttft_ms, 0.5) AS ttft_p50 FROM '{dir}/requests/*.parquet' WHERE status = 'ok' GROUP BY ALL ORDER BY ALL\""
        );
        println!(
            "  python -c \"import polars as pl; print(pl.read_parquet('{dir}/requests/*.parquet').group_by('load_value', 'round').agg(pl.col('ttft_ms').median()).sort('load_value', 'round'))\""
        );
        Ok(())
    })
}
