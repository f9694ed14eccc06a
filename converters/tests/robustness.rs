//! Robustness: every converter, fed thousands of mutated copies of real
//! samples (bytes flipped, cut short, structural characters inserted,
//! chunks duplicated), returns a result or an error and never panics or hangs.
//! A seeded, dependency-free stand-in for a fuzzer that runs in every test run.

use std::path::{Path, PathBuf};

use converters::{CommonOptions, Result, SessionSource};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Opener = fn(&[PathBuf]) -> Result<Box<dyn SessionSource>>;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

/// The first `max` bytes of a sample, cut at a line end.
fn head(path: &Path, max: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("sample reads");
    if bytes.len() <= max {
        return bytes;
    }
    let cut = bytes[..max]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(max, |i| i + 1);
    bytes[..cut].to_vec()
}

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let edits = rng.random_range(1..=4);
    for _ in 0..edits {
        if v.is_empty() {
            v.push(b'{');
            continue;
        }
        let at = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[at] = rng.random(),
            1 => v.truncate(at),
            2 => {
                const STRUCTURAL: &[u8] = b"{}[]\",:\\\n\r0-.e ";
                let b = STRUCTURAL[rng.random_range(0..STRUCTURAL.len())];
                v.insert(at, b);
            }
            3 => {
                let end = (at + rng.random_range(1..200)).min(v.len());
                let chunk = v[at..end].to_vec();
                let to = rng.random_range(0..v.len());
                v.splice(to..to, chunk);
            }
            4 => {
                let end = (at + rng.random_range(1..50)).min(v.len());
                v.drain(at..end);
            }
            _ => {
                // A multi-byte UTF-8 character cut in half.
                v.insert(at, 0xE4);
            }
        }
    }
    v
}

fn hammer(name: &str, samples: &[PathBuf], ext: &str, open: Opener, iterations: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let originals: Vec<Vec<u8>> = samples.iter().map(|p| head(p, 24 * 1024)).collect();
    let mut ok = 0;
    for i in 0..iterations {
        let original = &originals[i % originals.len()];
        let bytes = mutate(&mut rng, original);
        let input = dir.path().join(format!("in-{i}.{ext}"));
        std::fs::write(&input, &bytes).expect("write");
        let out = dir.path().join(format!("out-{i}.parquet"));
        for skip_bad in [false, true] {
            let opts = CommonOptions {
                skip_bad,
                ..Default::default()
            };
            let result = open(std::slice::from_ref(&input)).and_then(|mut source| {
                converters::pipeline::run(source.as_mut(), &opts, &out, serde_json::json!({}))
            });
            ok += result.is_ok() as usize;
            let _ = std::fs::remove_file(&out);
        }
        std::fs::remove_file(&input).expect("remove");
    }
    // Most mutations leave something readable with --skip-bad; a run where
    // every input failed would mean the harness itself is broken.
    assert!(ok > 0, "{name}: no mutated input converted at all");
}

#[test]
fn sharegpt_never_panics() {
    hammer(
        "sharegpt",
        &[
            shared("sharegpt/fastchat_dummy_conversation.json"),
            shared("sharegpt/axolotl_conversation.json"),
            shared("sharegpt/llamafactory_glaive_toolcall_zh_demo.json"),
        ],
        "json",
        |p| converters::sharegpt::open(p, &Default::default()),
        300,
    );
}

#[test]
fn openai_never_panics() {
    hammer(
        "openai",
        &[
            shared("openai_messages/openai_cookbook_toy_chat_fine_tuning.jsonl"),
            shared("openai_messages/mini-swe-agent_github_issue.traj.json"),
            shared("agent_traces/llamafactory_reason_tool_use_demo_50.jsonl"),
        ],
        "jsonl",
        |p| converters::openai::open(p, &Default::default()),
        300,
    );
}

#[test]
fn longbench_never_panics() {
    hammer(
        "longbench",
        &[shared("longbench/qasper_rec0.spectralKV_verbatim.jsonl")],
        "jsonl",
        |p| converters::longbench::open(p, &Default::default()),
        200,
    );
}

#[test]
fn timed_traces_never_panic() {
    hammer(
        "mooncake",
        &[shared("mooncake/synthetic_trace.jsonl")],
        "jsonl",
        |p| converters::mooncake::open(p, &Default::default()),
        200,
    );
    hammer(
        "azure",
        &[
            shared("azure_llm_2023/AzureLLMInferenceTrace_code.csv"),
            shared(
                "azure_llm_2024_notebook_rows/AzureLLMInferenceTrace_conv_1week.head5_tail5.from_notebook.csv",
            ),
        ],
        "csv",
        |p| converters::azure::open(p, &Default::default()),
        200,
    );
    hammer(
        "burstgpt",
        &[
            shared("burstgpt/BurstGPT_1.first400.csv"),
            shared("burstgpt/BurstGPT_3.first400.csv"),
        ],
        "csv",
        |p| converters::burstgpt::open(p, &Default::default()),
        200,
    );
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

#[test]
fn conversations_and_bailian_never_panic() {
    hammer(
        "conversations",
        &[
            fixture("conversations/samples.json"),
            fixture("conversations/samples.jsonl"),
        ],
        "json",
        |p| converters::conversations::open(p, &Default::default()),
        200,
    );
    hammer(
        "bailian",
        &[fixture("bailian/chains.jsonl")],
        "jsonl",
        |p| converters::bailian::open(p, &Default::default()),
        200,
    );
}

#[test]
fn prompts_never_panic() {
    hammer(
        "prompts",
        &[shared("sharegpt/fastchat_dummy_conversation.json")],
        "txt",
        |p| converters::prompts::open(p, &Default::default()),
        150,
    );
}

/// A small but complete copy of a real trajectory: its first steps, their
/// contexts and the history, each text cut to 300 characters, so that the
/// mutations land in every part of it rather than only in one long text.
fn small_trajectory(dir: &Path, name: &str) -> PathBuf {
    use serde_json::Value;
    fn cut_texts(v: &mut Value) {
        match v {
            Value::String(s) if s.len() > 300 => {
                let end = (0..=300)
                    .rev()
                    .find(|&i| s.is_char_boundary(i))
                    .unwrap_or(0);
                s.truncate(end);
            }
            Value::Array(items) => {
                items.truncate(8);
                items.iter_mut().for_each(cut_texts);
            }
            Value::Object(map) => map.values_mut().for_each(cut_texts),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(shared(&format!("agent_traces/{name}.traj"))).expect("read");
    let mut v: Value = serde_json::from_str(&text).expect("a trajectory");
    cut_texts(&mut v);
    let path = dir.join(format!("{name}.traj"));
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    path
}

#[test]
fn swe_agent_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = [
        small_trajectory(dir.path(), "swe-agent_gpt4_pydicom__pydicom-1458"),
        small_trajectory(dir.path(), "swe-agent_function_calling_marshmallow-1867"),
    ];
    hammer(
        "swe-agent",
        &samples,
        "traj",
        |p| converters::swe_agent::open(p, &Default::default()),
        300,
    );
}
