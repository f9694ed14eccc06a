//! `--hub`: fetching LongBench from the Hugging Face hub into its usual
//! cache, and reading the task files out of v1's `data.zip`.
//!
//! The hub's settings come from the environment ([`crate::hub_env`]). A
//! file already in the cache is used without asking the hub.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use zip::{CompressionMethod, ZipArchive};

use super::Part;
use super::templates::V1_TASKS;
use crate::hub_env::HubEnv;
use crate::{Error, Location, Result};

/// LongBench v1: a dataset repository whose `data.zip` holds `data/<task>.jsonl`.
pub(super) const V1_REPO: &str = "THUDM/LongBench";
pub(super) const V1_FILE: &str = "data.zip";
/// LongBench v2: one JSON array.
pub(super) const V2_REPO: &str = "THUDM/LongBench-v2";
pub(super) const V2_FILE: &str = "data.json";

/// What `--hub TASK...` asks for.
#[derive(Debug, Default, PartialEq)]
struct Selection {
    /// `data/<name>.jsonl` members of v1's zip, in the order asked.
    v1: Vec<V1Pick>,
    v2: bool,
}

#[derive(Debug, PartialEq)]
enum V1Pick {
    /// The 21 LongBench tasks.
    All,
    /// Every LongBench-E file (`*_e.jsonl`).
    AllE,
    Task(String),
}

fn parse_selection(words: &[String]) -> Selection {
    let mut sel = Selection::default();
    if words.is_empty() {
        sel.v1.push(V1Pick::All);
    }
    for word in words.iter().flat_map(|w| w.split(',')) {
        let word = word.trim();
        match word.to_ascii_lowercase().as_str() {
            "" => {}
            "v2" => sel.v2 = true,
            "v1" | "all" => sel.v1.push(V1Pick::All),
            "e" | "v1-e" | "longbench-e" => sel.v1.push(V1Pick::AllE),
            _ => sel.v1.push(V1Pick::Task(word.to_string())),
        }
    }
    sel
}

/// The inputs `--hub TASK...` stands for, downloading what is not cached.
pub(super) fn parts(words: &[String], env: &HubEnv) -> Result<Vec<Part>> {
    let sel = parse_selection(words);
    let mut parts = Vec::new();
    if !sel.v1.is_empty() {
        let zip = fetch(env, V1_REPO, V1_FILE)?;
        let names = member_names(&zip)?;
        for member in pick_members(&sel.v1, &names)? {
            if !parts
                .iter()
                .any(|p| matches!(p, Part::ZipMember { member: m, .. } if *m == member))
            {
                parts.push(Part::ZipMember {
                    zip: zip.clone(),
                    member,
                });
            }
        }
    }
    if sel.v2 {
        parts.push(Part::File(fetch(env, V2_REPO, V2_FILE)?));
    }
    Ok(parts)
}

/// The zip members the picks name (`data/<task>.jsonl`).
fn pick_members(picks: &[V1Pick], names: &[String]) -> Result<Vec<String>> {
    let task_of = |name: &str| -> Option<String> {
        let file = name.rsplit('/').next()?;
        file.strip_suffix(".jsonl").map(str::to_string)
    };
    let available: Vec<String> = names.iter().filter_map(|n| task_of(n)).collect();
    let member = |task: &str| names.iter().find(|n| task_of(n).as_deref() == Some(task));
    let mut out = Vec::new();
    for pick in picks {
        match pick {
            V1Pick::All => out.extend(V1_TASKS.iter().filter_map(|t| member(t.name)).cloned()),
            V1Pick::AllE => out.extend(
                names
                    .iter()
                    .filter(|n| task_of(n).is_some_and(|t| t.ends_with("_e")))
                    .cloned(),
            ),
            V1Pick::Task(task) => match member(task) {
                Some(m) => out.push(m.clone()),
                None => {
                    return Err(Error::Usage(format!(
                        "--hub: {V1_REPO} {V1_FILE} has no task {task:?}; it has: {} (or say v1, e, v2)",
                        available.join(", ")
                    )));
                }
            },
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "--hub: {V1_REPO} {V1_FILE} holds none of the tasks asked for"
        )));
    }
    Ok(out)
}

/// The local path of `file` of the dataset `repo`, downloaded unless cached.
pub(super) fn fetch(env: &HubEnv, repo_id: &str, file: &str) -> Result<PathBuf> {
    let cache = Cache::new(env.cache_dir.clone());
    let repo = Repo::new(repo_id.to_string(), RepoType::Dataset);
    if let Some(path) = cache.repo(repo.clone()).get(file) {
        return Ok(path);
    }
    let url = format!("{}/datasets/{repo_id}/resolve/main/{file}", env.endpoint);
    if env.offline {
        return Err(Error::Usage(format!(
            "--hub: HF_HUB_OFFLINE is set and {repo_id} {file} is not in the Hugging Face cache at {}; \
             run once online to download it, or point HF_HOME/HF_HUB_CACHE at a cache that has it",
            env.cache_dir.display()
        )));
    }
    let api = ApiBuilder::from_cache(cache)
        .with_endpoint(env.endpoint.clone())
        .with_token(env.token.clone())
        .build()
        .map_err(|e| hub_error(&e, &url, repo_id, env))?;
    eprintln!("downloading {repo_id} {file} from {}", env.endpoint);
    // The client may panic on a malformed answer (a redirect without a
    // Location): report that as an error rather than crash.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        api.repo(repo).download(file)
    }));
    match outcome {
        Ok(Ok(path)) => Ok(path),
        Ok(Err(e)) => Err(hub_error(&e, &url, repo_id, env)),
        Err(_) => Err(download_error(
            &url,
            "the download failed on a malformed answer from the hub".into(),
        )),
    }
}

/// A failed download, naming the URL.
fn download_error(url: &str, message: String) -> Error {
    Error::Usage(format!("--hub: {url}: {message}"))
}

/// A clear error for a failed hub request.
fn hub_error(err: &ApiError, url: &str, repo_id: &str, env: &HubEnv) -> Error {
    let message = match err {
        ApiError::RequestError(e) => match e.as_ref() {
            ureq::Error::Status(code, response) => {
                status_message(*code, response.header("x-error-message"), repo_id, env)
            }
            ureq::Error::Transport(t) => {
                let why = std::error::Error::source(t)
                    .map(|s| s.to_string())
                    .or_else(|| t.message().map(str::to_string))
                    .unwrap_or_default();
                format!(
                    "cannot reach the hub at {} ({}: {why}); HF_HUB_OFFLINE=1 uses only files already in the cache",
                    env.endpoint,
                    t.kind()
                )
            }
        },
        ApiError::MissingHeader(h) => format!(
            "the hub's answer lacks the {h} header: is HF_ENDPOINT ({}) a Hugging Face hub?",
            env.endpoint
        ),
        other => format!("download failed: {other}"),
    };
    download_error(url, message)
}

fn status_message(code: u16, hub_says: Option<&str>, repo_id: &str, env: &HubEnv) -> String {
    let detail = hub_says
        .map(|m| format!(" (the hub says: {m})"))
        .unwrap_or_default();
    match code {
        401 | 403 => {
            let token = if env.token.is_some() {
                "the token in use (HF_TOKEN or $HF_HOME/token) was refused"
            } else {
                "no token was given: set HF_TOKEN"
            };
            format!(
                "access to dataset {repo_id} was refused (HTTP {code}){detail}: it is gated or private, \
                 or the token lacks access; accept its terms on the hub; {token}"
            )
        }
        404 => format!(
            "dataset {repo_id} or its file was not found on {} (HTTP 404){detail}",
            env.endpoint
        ),
        _ => format!("the hub answered HTTP {code}{detail}"),
    }
}

fn zip_error(zip: &Path, e: impl std::fmt::Display) -> Error {
    Error::Fatal {
        location: Location::file(zip),
        message: format!("not a readable zip archive: {e}"),
    }
}

fn open_archive(zip: &Path) -> Result<ZipArchive<File>> {
    let file = File::open(zip).map_err(|source| Error::Io {
        path: zip.to_path_buf(),
        source,
    })?;
    ZipArchive::new(file).map_err(|e| zip_error(zip, e))
}

/// The names of the `.jsonl` files in `zip`, in archive order.
pub(super) fn member_names(zip: &Path) -> Result<Vec<String>> {
    let archive = open_archive(zip)?;
    let mut names = Vec::new();
    for name in archive.file_names() {
        let name = name.map_err(|e| zip_error(zip, e))?;
        if name.ends_with(".jsonl") {
            names.push(name.into_owned());
        }
    }
    Ok(names)
}

/// A streaming reader of one member of `zip` (stored or deflated).
pub(super) fn open_member(zip: &Path, name: &str) -> Result<Box<dyn BufRead>> {
    let mut archive = open_archive(zip)?;
    let (start, size, method) = {
        let entry = archive.by_name(name).map_err(|e| zip_error(zip, e))?;
        let start = entry
            .data_start()
            .ok_or_else(|| zip_error(zip, format!("{name}: no data offset")))?;
        (start, entry.compressed_size(), entry.compression())
    };
    let mut file = archive.into_inner();
    file.seek(SeekFrom::Start(start))
        .map_err(|source| Error::Io {
            path: zip.to_path_buf(),
            source,
        })?;
    let raw = file.take(size);
    match method {
        CompressionMethod::Stored => Ok(Box::new(BufReader::with_capacity(1 << 20, raw))),
        CompressionMethod::Deflated => Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::DeflateDecoder::new(raw),
        ))),
        other => Err(zip_error(
            zip,
            format!("{name} is compressed with {other}, which this reader does not support"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_words() {
        let words =
            |w: &[&str]| parse_selection(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(words(&[]).v1, vec![V1Pick::All]);
        let s = words(&["v2"]);
        assert!(s.v2 && s.v1.is_empty());
        let s = words(&["qasper,V2", "e"]);
        assert_eq!(s.v1, vec![V1Pick::Task("qasper".into()), V1Pick::AllE]);
        assert!(s.v2);
    }

    #[test]
    fn picking_members() {
        let names: Vec<String> = [
            "data/qasper.jsonl",
            "data/qasper_e.jsonl",
            "data/trec.jsonl",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let all = pick_members(&[V1Pick::All], &names).expect("all");
        assert_eq!(all, vec!["data/qasper.jsonl", "data/trec.jsonl"]);
        let e = pick_members(&[V1Pick::AllE], &names).expect("e");
        assert_eq!(e, vec!["data/qasper_e.jsonl"]);
        let err = pick_members(&[V1Pick::Task("nope".into())], &names).expect_err("unknown");
        assert!(err.to_string().contains("qasper_e"), "{err}");
    }

    #[test]
    fn offline_without_cache_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = HubEnv {
            endpoint: "http://127.0.0.1:9".into(),
            cache_dir: dir.path().to_path_buf(),
            token: None,
            offline: true,
        };
        let err = fetch(&e, V2_REPO, V2_FILE).expect_err("not cached");
        assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    }
}
