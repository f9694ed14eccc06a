//! `trace synth random|agent -o OUT.parquet`

use anyhow::Context;
use converters::CommonOptions;

use crate::cli::{SynthArgs, SynthKind};

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let (mut source, out, json, write, producer) = match args.kind {
        SynthKind::Random(s) => (
            converters::synth::random::generate(&s.generator)?,
            s.output,
            s.json,
            s.write,
            serde_json::json!({"command": "synth", "generator": "random", "options": serde_json::to_value(&s.generator)?}),
        ),
        SynthKind::Agent(s) => (
            converters::synth::agent::generate(&s.generator)?,
            s.output,
            s.json,
            s.write,
            serde_json::json!({"command": "synth", "generator": "agent", "options": serde_json::to_value(&s.generator)?}),
        ),
    };
    let opts = CommonOptions {
        compression: write.compression,
        ..CommonOptions::default()
    };
    let report = converters::pipeline::run(source.as_mut(), &opts, &out, producer)
        .with_context(|| format!("trace synth failed; {} was not written", out.display()))?;
    super::convert::print_report(&report, &out, json)
}
