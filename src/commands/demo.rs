//! `trace demo`: the first command a new user runs. Until the replayer
//! lands it converts the bundled ShareGPT sample and inspects the result.

use anyhow::Context;
use converters::CommonOptions;

use crate::cli::DemoArgs;

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let input = dir.path().join("sharegpt_sample.json");
    std::fs::write(&input, traces::samples::SHAREGPT_SAMPLE)
        .with_context(|| format!("cannot write {}", input.display()))?;
    let mut source = converters::sharegpt::open(std::slice::from_ref(&input), &Default::default())?;
    let producer = serde_json::json!({"command": "demo", "format": "sharegpt", "input": "bundled FastChat sample"});
    let report = converters::pipeline::run(
        source.as_mut(),
        &CommonOptions::default(),
        &args.output,
        producer,
    )?;
    println!("== trace convert sharegpt (bundled sample) ==");
    super::convert::print_report(&report, &args.output, false)?;
    println!("\n== trace inspect {} ==", args.output.display());
    super::inspect::run(crate::cli::InspectArgs {
        trace: args.output,
        json: false,
    })
}
