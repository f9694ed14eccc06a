//! `trace convert FORMAT INPUT... -o OUT.parquet`

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use converters::{CommonOptions, Report, SessionSource};

use crate::cli::{ConvertArgs, ConvertFormat, Input, OutputArgs};

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    macro_rules! dispatch {
        ($input:expr, $module:ident, $name:literal) => {{
            let input = $input;
            check_inputs(&input.inputs, $name)?;
            let mut source = converters::$module::open(&input.inputs, &input.format)?;
            finish(
                source.as_mut(),
                $name,
                &input,
                serde_json::to_value(&input.format)?,
            )
        }};
    }
    match args.format {
        ConvertFormat::Sharegpt(i) => dispatch!(i, sharegpt, "sharegpt"),
        ConvertFormat::Longbench(i) => dispatch!(i, longbench, "longbench"),
        ConvertFormat::Conversations(i) => dispatch!(i, conversations, "conversations"),
        ConvertFormat::Openai(i) => dispatch!(i, openai, "openai"),
        ConvertFormat::SweAgent(i) => dispatch!(i, swe_agent, "swe-agent"),
        ConvertFormat::Prompts(i) => dispatch!(i, prompts, "prompts"),
        ConvertFormat::Mooncake(i) => dispatch!(i, mooncake, "mooncake"),
        ConvertFormat::Azure(i) => dispatch!(i, azure, "azure"),
        ConvertFormat::Burstgpt(i) => dispatch!(i, burstgpt, "burstgpt"),
        ConvertFormat::Bailian(i) => dispatch!(i, bailian, "bailian"),
    }
}

fn check_inputs(inputs: &[PathBuf], format: &str) -> anyhow::Result<()> {
    // LongBench can download instead of reading files; it checks for itself.
    if inputs.is_empty() && format != "longbench" {
        bail!("trace convert {format}: give at least one input file");
    }
    Ok(())
}

pub(crate) fn common_options(o: &OutputArgs) -> CommonOptions {
    CommonOptions {
        limit: o.limit,
        sample: o.sample,
        seed: o.seed,
        max_input_tokens: o.max_input_tokens,
        max_output_tokens: o.max_output_tokens,
        skip_bad: o.skip_bad,
        compression: o.write.compression,
    }
}

fn finish<O: clap::Args>(
    source: &mut dyn SessionSource,
    format: &str,
    input: &Input<O>,
    format_options: serde_json::Value,
) -> anyhow::Result<()> {
    let out = &input.output;
    let producer = serde_json::json!({
        "command": "convert",
        "format": format,
        "inputs": input.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "format_options": format_options,
        "limit": out.limit,
        "sample": out.sample,
        "seed": out.seed,
        "max_input_tokens": out.max_input_tokens,
        "max_output_tokens": out.max_output_tokens,
        "skip_bad": out.skip_bad,
        "compression": out.write.compression.name(),
        "trace_version": env!("CARGO_PKG_VERSION"),
    });
    let report = converters::pipeline::run(source, &common_options(out), &out.output, producer)
        .with_context(|| {
            format!(
                "trace convert {format} failed; {} was not written",
                out.output.display()
            )
        })?;
    print_report(&report, &out.output, out.json)
}

pub(crate) fn print_report(report: &Report, output: &Path, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(report)?;
        v["output"] = serde_json::Value::String(output.display().to_string());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for line in report.lines() {
            println!("{line}");
        }
        println!("wrote {}", output.display());
        if report.rows_written == 0 {
            eprintln!("warning: the trace is empty: no record had anything to send");
        }
    }
    Ok(())
}
