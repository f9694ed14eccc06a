//! Finding and loading the tokenizer and its chat template: a
//! `tokenizer.json`, a folder, or a hub model id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::args::{TemplateChoice, TokenizeArgs};
use super::hub;
use super::template::ChatTemplate;

/// Version of the counting rules (docs/tokenize.md); stored in the metadata so
/// that a trace counted under other rules is counted again.
pub const COUNTING_RULES: u32 = 1;

/// The files of one tokenizer.
#[derive(Debug, Clone)]
pub struct TokenizerFiles {
    pub tokenizer: PathBuf,
    pub config: Option<PathBuf>,
    pub jinja: Option<PathBuf>,
}

/// A tokenizer ready to count, with what identifies it.
pub struct Loaded {
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    /// The `trace.tokenizer` metadata.
    pub identity: Value,
}

impl Loaded {
    /// A short description for reports.
    pub fn describe(&self) -> String {
        let name = self.identity["tokenizer"].as_str().unwrap_or("?");
        match self.template {
            Some(_) => format!("{name} (chat template)"),
            None => format!("{name} (plain concatenation)"),
        }
    }
}

/// Whether `existing` (a `trace.tokenizer` value) says the trace was counted
/// with the same tokenizer file, template and rules as `ours`.
pub fn same_tokenization(existing: &str, ours: &Value) -> bool {
    let Ok(existing) = serde_json::from_str::<Value>(existing) else {
        return false;
    };
    [
        "tokenizer_sha256",
        "prompt",
        "chat_template_sha256",
        "counting_rules",
    ]
    .iter()
    .all(|k| existing.get(k) == ours.get(k))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `spec` can be a hub model id (`name` or `org/name`).
fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    !spec.ends_with(".json")
        && !spec.ends_with(".jinja")
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Loads what `--tokenizer`, `--revision` and `--chat-template` name.
pub fn load(args: &TokenizeArgs) -> anyhow::Result<Loaded> {
    load_spec(&args.tokenizer, &args.revision, args.template_choice())
}

/// Loads the tokenizer `spec` names (a `tokenizer.json`, a folder, or a hub
/// model id at `revision`) with the chat template `choice` picks.
pub fn load_spec(spec: &str, revision: &str, choice: TemplateChoice) -> anyhow::Result<Loaded> {
    let spec = spec.trim();
    let path = Path::new(spec);
    let mut identity = json!({ "tokenizer": spec });
    let files = if path.is_file() {
        identity["source"] = json!("file");
        TokenizerFiles {
            tokenizer: path.to_path_buf(),
            config: None,
            jinja: None,
        }
    } else if path.is_dir() {
        identity["source"] = json!("folder");
        folder_files(path)?
    } else if looks_like_hub_id(spec) {
        let env = hub::HubEnv::from_env()
            .context("--tokenizer: cannot tell where the Hugging Face cache is: set HF_HOME")?;
        let fetched = hub::fetch(&env, spec, revision.trim())?;
        identity["source"] = json!("hub");
        identity["revision"] = json!(fetched.commit);
        identity["requested_revision"] = json!(revision.trim());
        fetched.files
    } else {
        bail!(
            "--tokenizer {spec}: no such file or folder (and not a hub model id such as org/name)"
        );
    };

    let bytes = std::fs::read(&files.tokenizer)
        .with_context(|| format!("cannot read {}", files.tokenizer.display()))?;
    identity["tokenizer_sha256"] = json!(sha256_hex(&bytes));
    let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a Hugging Face tokenizer.json: {e}",
            files.tokenizer.display()
        )
    })?;
    // Count whole texts: a truncation or padding setting in the file must not cut or pad them.
    tokenizer
        .with_truncation(None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", files.tokenizer.display()))?;
    tokenizer.with_padding(None);

    let config = match &files.config {
        Some(p) => Some((p.clone(), read_json(p)?)),
        None => None,
    };
    let specials = config
        .as_ref()
        .map(|(_, c)| special_tokens(c))
        .unwrap_or_default();

    let (source, origin): (Option<String>, Option<String>) = match choice {
        TemplateChoice::None => (None, None),
        TemplateChoice::File(p) => {
            let text = template_from_file(&p)?;
            (Some(text), Some(p.display().to_string()))
        }
        TemplateChoice::Auto => match (&files.jinja, &config) {
            (Some(j), _) => (
                Some(
                    std::fs::read_to_string(j)
                        .with_context(|| format!("cannot read {}", j.display()))?,
                ),
                Some("chat_template.jinja".into()),
            ),
            (None, Some((p, c))) => match config_template(c, p)? {
                Some(t) => (Some(t), Some("tokenizer_config.json".into())),
                None => (None, None),
            },
            (None, None) => (None, None),
        },
    };
    let template = match &source {
        Some(text) => Some(ChatTemplate::new(text, specials).map_err(|e| {
            anyhow::anyhow!(
                "the chat template from {} does not compile: {e:#}",
                origin.as_deref().unwrap_or("?")
            )
        })?),
        None => None,
    };
    match &source {
        Some(text) => {
            identity["prompt"] = json!("chat_template");
            identity["chat_template"] = json!(origin);
            identity["chat_template_sha256"] = json!(sha256_hex(text.as_bytes()));
            identity["add_generation_prompt"] = json!(true);
            identity["special_tokens"] = json!("as the template writes them; none added");
        }
        None => {
            identity["prompt"] = json!("plain");
            identity["chat_template"] = Value::Null;
            identity["chat_template_sha256"] = Value::Null;
            identity["plain_separator"] = json!("\n");
            identity["special_tokens"] = json!("added by the tokenizer's post-processor");
        }
    }
    identity["counting_rules"] = json!(COUNTING_RULES);
    Ok(Loaded {
        tokenizer,
        template,
        identity,
    })
}

/// The tokenizer files of a local folder (a model snapshot).
fn folder_files(dir: &Path) -> anyhow::Result<TokenizerFiles> {
    let tokenizer = dir.join("tokenizer.json");
    if !tokenizer.is_file() {
        bail!(
            "{}: the folder has no tokenizer.json (trace needs a Hugging Face \
             tokenizer.json, the \"fast\" tokenizer format)",
            dir.display()
        );
    }
    let present = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    Ok(TokenizerFiles {
        tokenizer,
        config: present("tokenizer_config.json"),
        jinja: present("chat_template.jinja"),
    })
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// The `chat_template` of a tokenizer config: a string, or a list of named
/// templates of which the one called `default` is used.
fn config_template(config: &Value, path: &Path) -> anyhow::Result<Option<String>> {
    match config.get("chat_template") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(list)) => {
            let named = |want: &str| {
                list.iter().find_map(|t| {
                    (t.get("name")?.as_str()? == want)
                        .then(|| t.get("template")?.as_str().map(str::to_string))
                        .flatten()
                })
            };
            match named("default") {
                Some(t) => Ok(Some(t)),
                None => bail!(
                    "{}: chat_template is a list without a template named \"default\"",
                    path.display()
                ),
            }
        }
        Some(_) => bail!(
            "{}: chat_template is neither a string nor a list of named templates",
            path.display()
        ),
    }
}

/// `--chat-template PATH`: a Jinja file, or a JSON file with `chat_template`.
fn template_from_file(path: &Path) -> anyhow::Result<String> {
    if path.extension().is_some_and(|e| e == "json") {
        let config = read_json(path)?;
        return config_template(&config, path)?
            .ok_or_else(|| anyhow::anyhow!("{}: has no chat_template", path.display()));
    }
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "--chat-template {}: cannot read the template file (say `auto` or `none` for no file)",
            path.display()
        )
    })
}

/// The config's special tokens (`bos_token`, `eos_token`, ...), as strings
/// or, where the config has null, none.
fn special_tokens(config: &Value) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let Some(obj) = config.as_object() else {
        return out;
    };
    for (key, value) in obj {
        if !key.ends_with("_token") {
            continue;
        }
        let token = match value {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => match o.get("content").and_then(Value::as_str) {
                Some(s) => Some(s.to_string()),
                None => continue,
            },
            Value::Null => None,
            _ => continue,
        };
        out.insert(key.clone(), token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        assert!(looks_like_hub_id("Qwen/Qwen2.5-0.5B-Instruct"));
        assert!(looks_like_hub_id("gpt2"));
        assert!(!looks_like_hub_id("./tok"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("missing/tokenizer.json"));
        assert!(!looks_like_hub_id("/abs/path"));
    }

    #[test]
    fn specials_from_config() {
        let c = json!({
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>",
            "unk_token": null,
            "add_bos_token": true,
            "model_max_length": 5
        });
        let s = special_tokens(&c);
        assert_eq!(s.len(), 3);
        assert_eq!(s["bos_token"].as_deref(), Some("<s>"));
        assert_eq!(s["eos_token"].as_deref(), Some("</s>"));
        assert_eq!(s["unk_token"], None);
    }

    #[test]
    fn template_lists() {
        let p = Path::new("cfg.json");
        let c = json!({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]});
        assert_eq!(config_template(&c, p).expect("ok").as_deref(), Some("D"));
        let c = json!({"chat_template": [{"name": "tool_use", "template": "T"}]});
        assert!(config_template(&c, p).is_err());
        assert_eq!(config_template(&json!({}), p).expect("ok"), None);
    }

    #[test]
    fn same_tokenization_compares_the_identity() {
        let ours = json!({"tokenizer": "a", "tokenizer_sha256": "x", "prompt": "plain", "chat_template_sha256": null, "counting_rules": 1});
        let mut moved = ours.clone();
        moved["tokenizer"] = json!("elsewhere/tokenizer.json");
        assert!(same_tokenization(&moved.to_string(), &ours));
        let mut other = ours.clone();
        other["tokenizer_sha256"] = json!("y");
        assert!(!same_tokenization(&other.to_string(), &ours));
        assert!(!same_tokenization("not json", &ours));
    }
}
