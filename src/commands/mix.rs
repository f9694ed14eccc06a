//! `trace mix A.parquet:0.7 B.parquet:0.3 -o MIX.parquet`
//!
//! Draws whole sessions from each input, without repeating one, in
//! proportion to the weights, and writes them in a seeded random order.
//! Recorded arrival times are dropped: the inputs' time axes do not mix.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use traces::{TraceMetadata, TraceReader, TraceRow, TraceWriter, WriterOptions};

use crate::cli::MixArgs;

fn parse_input(s: &str) -> anyhow::Result<(PathBuf, f64)> {
    let (path, weight) = s
        .rsplit_once(':')
        .with_context(|| format!("`{s}`: expected PATH:WEIGHT, e.g. sharegpt.parquet:0.7"))?;
    let weight: f64 = weight
        .parse()
        .ok()
        .filter(|w: &f64| w.is_finite() && *w > 0.0)
        .with_context(|| format!("`{s}`: the weight must be a positive number"))?;
    Ok((PathBuf::from(path), weight))
}

/// Reads a trace and groups its rows into sessions, in first-seen order.
fn sessions(path: &PathBuf) -> anyhow::Result<(Vec<Vec<TraceRow>>, TraceMetadata)> {
    let reader = TraceReader::open(path)?;
    let meta = reader.metadata().clone();
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    let mut out: Vec<Vec<TraceRow>> = Vec::new();
    for row in reader.read_all()? {
        let i = *index.entry(row.session_id.clone()).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[i].push(row);
    }
    for s in &mut out {
        s.sort_by_key(|r| r.turn);
    }
    Ok((out, meta))
}

pub fn run(args: MixArgs) -> anyhow::Result<()> {
    let inputs: Vec<(PathBuf, f64)> = args
        .inputs
        .iter()
        .map(|s| parse_input(s))
        .collect::<anyhow::Result<_>>()?;
    let total_weight: f64 = inputs.iter().map(|(_, w)| w).sum();
    let mut pools = Vec::new();
    let mut block_size: Option<u32> = None;
    for (path, w) in &inputs {
        let (s, meta) = sessions(path)?;
        if s.is_empty() {
            bail!("{}: the trace has no rows", path.display());
        }
        if let Some(b) = meta.block_size {
            if block_size.is_some_and(|x| x != b) {
                bail!(
                    "{}: block size {b} differs from another input's {}; hash_ids cannot be mixed",
                    path.display(),
                    block_size.unwrap_or_default()
                );
            }
            block_size = Some(b);
        }
        pools.push((path.clone(), w / total_weight, s));
    }
    // The largest mix that needs no session twice.
    let max_total = pools
        .iter()
        .map(|(_, w, s)| (s.len() as f64 / w).floor() as u64)
        .min()
        .unwrap_or(0);
    let total = args.sessions.unwrap_or(max_total);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut chosen: Vec<Vec<TraceRow>> = Vec::new();
    let mut counts = Vec::new();
    for (path, w, pool) in pools.iter_mut() {
        let want = (*w * total as f64).round() as usize;
        if want > pool.len() {
            bail!(
                "{}: the mix needs {want} sessions from it but it has {}; lower --sessions",
                path.display(),
                pool.len()
            );
        }
        pool.shuffle(&mut rng);
        counts.push(
            serde_json::json!({"input": path.display().to_string(), "weight": w, "sessions": want}),
        );
        chosen.extend(pool.drain(..want));
    }
    chosen.shuffle(&mut rng);

    let producer = serde_json::json!({
        "command": "mix", "inputs": counts, "sessions": total, "seed": args.seed,
    });
    let mut meta = TraceMetadata::with_source(producer.clone());
    meta.block_size = block_size;
    let options = WriterOptions {
        compression: args.write.compression,
        ..WriterOptions::default()
    };
    let mut writer = TraceWriter::with_options(&args.output, &meta, options)?;
    let mut seen = HashSet::new();
    let mut rows = 0u64;
    for (i, mut session) in chosen.into_iter().enumerate() {
        let id = session
            .first()
            .map(|r| r.session_id.clone())
            .unwrap_or_default();
        let id = if seen.contains(&id) {
            format!("{id}~mix{i}")
        } else {
            id
        };
        seen.insert(id.clone());
        for row in session.iter_mut() {
            row.session_id = id.clone();
            row.request_id = format!("{id}#{}", row.turn);
            row.arrival_ms = None;
        }
        for row in session {
            rows += 1;
            writer.write(row)?;
        }
    }
    writer.finish()?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"output": args.output.display().to_string(), "rows": rows, "mix": producer})
        );
    } else {
        for c in &counts {
            println!(
                "{} sessions from {} (weight {:.3})",
                c["sessions"],
                c["input"].as_str().unwrap_or_default(),
                c["weight"].as_f64().unwrap_or_default()
            );
        }
        println!("wrote {} ({rows} rows)", args.output.display());
    }
    Ok(())
}
