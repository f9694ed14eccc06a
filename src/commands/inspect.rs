//! `trace inspect TRACE`: what a trace holds, streamed batch by batch.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use serde_json::{Value, json};
use traces::TraceReader;

use crate::cli::InspectArgs;

/// Summary statistics of a list of numbers.
fn distribution(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    // Linear interpolation between closest ranks (DuckDB's quantile_cont).
    let q = |p: f64| {
        let pos = p * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    let mean = v.iter().sum::<f64>() / n as f64;
    json!({
        "count": n, "mean": round2(mean), "min": round2(v[0]), "p50": round2(q(0.5)),
        "p90": round2(q(0.9)), "p99": round2(q(0.99)), "max": round2(v[n - 1]),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn inspect(path: &std::path::Path) -> anyhow::Result<Value> {
    let reader = TraceReader::open(path)?;
    let meta = reader.metadata().clone();
    let mut rows = 0u64;
    let mut turns_per_session: HashMap<String, u64> = HashMap::new();
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    let mut chars = Vec::new();
    let mut input_tokens = Vec::new();
    let mut output_tokens = Vec::new();
    let mut prompt_tokens = Vec::new();
    let mut arrivals = Vec::new();
    let mut think = Vec::new();
    let mut with_tool_calls = 0u64;
    let mut resets = 0u64;
    let mut overflows = 0u64;
    let mut with_reference = 0u64;
    let mut with_hash_ids = 0u64;
    for batch in reader.batches()? {
        for row in batch? {
            rows += 1;
            *turns_per_session.entry(row.session_id.clone()).or_default() += 1;
            *sources.entry(row.source.clone()).or_default() += 1;
            if !row.messages.is_empty() {
                chars.push(row.message_chars() as f64);
            }
            if let Some(t) = row.input_tokens {
                input_tokens.push(t as f64);
            }
            if let Some(t) = row.output_tokens {
                output_tokens.push(t as f64);
            }
            if let Some(t) = row.prompt_tokens {
                prompt_tokens.push(t as f64);
            }
            if let Some(a) = row.arrival_ms {
                arrivals.push(a);
            }
            if let Some(t) = row.think_ms.filter(|_| row.turn > 0) {
                think.push(t);
            }
            with_tool_calls += row.reference_tool_calls.is_some() as u64;
            resets += row.reset_context as u64;
            overflows += row.overflow as u64;
            with_reference += row.reference_output.is_some() as u64;
            with_hash_ids += row.hash_ids.is_some() as u64;
        }
    }
    let arrival = if arrivals.is_empty() {
        Value::Null
    } else {
        let first = arrivals.iter().copied().fold(f64::INFINITY, f64::min);
        let last = arrivals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span_s = (last - first) / 1000.0;
        json!({
            "rows_with_arrival": arrivals.len(),
            "first_ms": first,
            "last_ms": last,
            "span_s": round2(span_s),
            "mean_rate_per_s": if span_s > 0.0 { Value::from(round2(arrivals.len() as f64 / span_s)) } else { Value::Null },
        })
    };
    let parse = |s: &Option<String>| -> Value {
        s.as_deref()
            .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())))
            .unwrap_or(Value::Null)
    };
    Ok(json!({
        "path": path.display().to_string(),
        "schema_version": meta.schema_version,
        "rows": rows,
        "sessions": turns_per_session.len(),
        "turns_per_session": distribution(turns_per_session.values().map(|&v| v as f64).collect()),
        "sources": sources,
        "message_chars": distribution(chars),
        "input_tokens": distribution(input_tokens),
        "output_tokens": distribution(output_tokens),
        "prompt_tokens": distribution(prompt_tokens),
        "arrival": arrival,
        "think_ms": distribution(think),
        "rows_with_reference_output": with_reference,
        "rows_with_reference_tool_calls": with_tool_calls,
        "rows_with_hash_ids": with_hash_ids,
        "reset_context_rows": resets,
        "overflow_rows": overflows,
        "block_size": meta.block_size,
        "tokenizer": parse(&meta.tokenizer),
        "source": parse(&meta.source),
        "stats": parse(&meta.stats),
    }))
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let v =
        inspect(&args.trace).with_context(|| format!("cannot inspect {}", args.trace.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print_text(&v);
    Ok(())
}

fn print_text(v: &Value) {
    println!("trace        {}", v["path"].as_str().unwrap_or_default());
    println!("schema       v{}", v["schema_version"]);
    println!("rows         {}", v["rows"]);
    println!("sessions     {}", v["sessions"]);
    let dist = |name: &str, d: &Value| {
        if d.is_null() {
            return;
        }
        println!(
            "{name:<12} n={} mean={} min={} p50={} p90={} p99={} max={}",
            d["count"], d["mean"], d["min"], d["p50"], d["p90"], d["p99"], d["max"]
        );
    };
    dist("turns/sess", &v["turns_per_session"]);
    dist("msg chars", &v["message_chars"]);
    dist("input tok", &v["input_tokens"]);
    dist("prompt tok", &v["prompt_tokens"]);
    dist("output tok", &v["output_tokens"]);
    dist("think ms", &v["think_ms"]);
    if let Some(sources) = v["sources"].as_object() {
        let s: Vec<String> = sources.iter().map(|(k, n)| format!("{k} ({n})")).collect();
        println!("sources      {}", s.join(", "));
    }
    let a = &v["arrival"];
    if !a.is_null() {
        if a["mean_rate_per_s"].is_null() {
            println!(
                "arrivals     {} rows, all at {} ms (a burst)",
                a["rows_with_arrival"], a["first_ms"]
            );
        } else {
            println!(
                "arrivals     {} rows over {} s ({} req/s)",
                a["rows_with_arrival"], a["span_s"], a["mean_rate_per_s"]
            );
        }
    }
    for (label, key) in [
        ("reference", "rows_with_reference_output"),
        ("tool calls", "rows_with_reference_tool_calls"),
        ("hash_ids", "rows_with_hash_ids"),
        ("compactions", "reset_context_rows"),
        ("overflows", "overflow_rows"),
    ] {
        if v[key].as_u64().unwrap_or(0) > 0 {
            println!("{label:<12} {} rows", v[key]);
        }
    }
    if !v["block_size"].is_null() {
        println!("block size   {}", v["block_size"]);
    }
    println!(
        "tokenized    {}",
        if v["tokenizer"].is_null() {
            "no".to_string()
        } else {
            v["tokenizer"].to_string()
        }
    );
    if !v["source"].is_null() {
        println!("made by      {}", v["source"]);
    }
    if !v["stats"].is_null() {
        println!("stats        {}", v["stats"]);
    }
}
