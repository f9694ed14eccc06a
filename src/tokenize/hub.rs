//! Fetching a model's tokenizer files from the Hugging Face hub into the
//! hub's usual cache, as `huggingface_hub` lays it out:
//!
//! ```text
//! $HF_HUB_CACHE/models--ORG--NAME/blobs/<etag>
//!                                /snapshots/<commit>/<file>  -> ../../blobs/<etag>
//!                                /refs/<revision>            (the commit)
//!                                /.no_exist/<commit>/<file>  (a file the repo lacks)
//! ```
//!
//! The hub's settings come from the environment (`converters::hub_env`,
//! shared with `convert longbench --hub`). Files already cached for the
//! revision are used without asking the hub.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

pub use converters::hub_env::HubEnv;

use super::load::TokenizerFiles;

const TOKENIZER: &str = "tokenizer.json";
const OPTIONAL: [&str; 2] = ["tokenizer_config.json", "chat_template.jinja"];

/// The tokenizer files of a hub model at one commit.
#[derive(Debug)]
pub struct Fetched {
    pub commit: String,
    pub files: TokenizerFiles,
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One model's folder in the cache.
struct RepoCache {
    dir: PathBuf,
}

enum Cached {
    Present(PathBuf),
    Absent,
    Unknown,
}

impl RepoCache {
    fn new(env: &HubEnv, repo_id: &str) -> Self {
        RepoCache {
            dir: env
                .cache_dir
                .join(format!("models--{}", repo_id.replace('/', "--"))),
        }
    }

    fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_string());
        }
        let text = std::fs::read_to_string(self.dir.join("refs").join(revision)).ok()?;
        Some(text.trim().to_string()).filter(|c| is_commit(c))
    }

    fn lookup(&self, commit: &str, file: &str) -> Cached {
        let snap = self.dir.join("snapshots").join(commit).join(file);
        if snap.is_file() {
            Cached::Present(snap)
        } else if self.dir.join(".no_exist").join(commit).join(file).exists() {
            Cached::Absent
        } else {
            Cached::Unknown
        }
    }

    fn io<T>(&self, r: std::io::Result<T>, what: &Path) -> anyhow::Result<T> {
        r.with_context(|| format!("cannot write the Hugging Face cache at {}", what.display()))
    }

    fn store(&self, commit: &str, file: &str, etag: &str, body: &[u8]) -> anyhow::Result<PathBuf> {
        let blobs = self.dir.join("blobs");
        self.io(std::fs::create_dir_all(&blobs), &blobs)?;
        let blob = blobs.join(etag);
        if !blob.is_file() {
            let mut tmp = self.io(tempfile::NamedTempFile::new_in(&blobs), &blobs)?;
            self.io(std::io::Write::write_all(&mut tmp, body), &blob)?;
            self.io(tmp.persist(&blob).map_err(|e| e.error), &blob)?;
        }
        let snap_dir = self.dir.join("snapshots").join(commit);
        self.io(std::fs::create_dir_all(&snap_dir), &snap_dir)?;
        let snap = snap_dir.join(file);
        let _ = std::fs::remove_file(&snap);
        link_or_copy(&blob, &snap, etag)
            .with_context(|| format!("cannot write {}", snap.display()))?;
        Ok(snap)
    }

    fn store_absent(&self, commit: &str, file: &str) -> anyhow::Result<()> {
        let dir = self.dir.join(".no_exist").join(commit);
        self.io(std::fs::create_dir_all(&dir), &dir)?;
        self.io(std::fs::write(dir.join(file), b""), &dir)?;
        Ok(())
    }

    fn store_ref(&self, revision: &str, commit: &str) -> anyhow::Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        if let Some(parent) = path.parent() {
            self.io(std::fs::create_dir_all(parent), parent)?;
        }
        self.io(std::fs::write(&path, commit), &path)
    }
}

#[cfg(unix)]
fn link_or_copy(blob: &Path, snap: &Path, etag: &str) -> std::io::Result<()> {
    std::os::unix::fs::symlink(Path::new("../../blobs").join(etag), snap)
        .or_else(|_| std::fs::copy(blob, snap).map(|_| ()))
}

#[cfg(not(unix))]
fn link_or_copy(blob: &Path, snap: &Path, _etag: &str) -> std::io::Result<()> {
    std::fs::copy(blob, snap).map(|_| ())
}

/// The tokenizer files of `repo_id` at `revision`, downloaded unless cached.
pub fn fetch(env: &HubEnv, repo_id: &str, revision: &str) -> anyhow::Result<Fetched> {
    let cache = RepoCache::new(env, repo_id);
    if let Some(commit) = cache.commit_of(revision)
        && let Cached::Present(tokenizer) = cache.lookup(&commit, TOKENIZER)
    {
        let mut found = Vec::new();
        for file in OPTIONAL {
            match cache.lookup(&commit, file) {
                Cached::Present(p) => found.push(Some(p)),
                Cached::Absent => found.push(None),
                Cached::Unknown if env.offline => found.push(None),
                Cached::Unknown => break,
            }
        }
        if found.len() == OPTIONAL.len() {
            return Ok(Fetched {
                commit,
                files: TokenizerFiles {
                    tokenizer,
                    config: found[0].take(),
                    jinja: found[1].take(),
                },
            });
        }
    }
    if env.offline {
        bail!(
            "--tokenizer {repo_id}: HF_HUB_OFFLINE is set and revision {revision} is not in the \
             Hugging Face cache at {}; run once online, or point HF_HOME/HF_HUB_CACHE at a cache \
             that has it",
            env.cache_dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the HTTP client")?;
    runtime.block_on(download_all(env, &cache, repo_id, revision))
}

async fn download_all(
    env: &HubEnv,
    cache: &RepoCache,
    repo_id: &str,
    revision: &str,
) -> anyhow::Result<Fetched> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(600))
        .user_agent(concat!("trace/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    eprintln!(
        "fetching the tokenizer of {repo_id} ({revision}) from {}",
        env.endpoint
    );
    let Some(first) = download(&client, env, repo_id, revision, TOKENIZER).await? else {
        bail!(
            "--tokenizer {repo_id}: the model has no {TOKENIZER} at revision {revision} on {} \
             (trace needs the \"fast\" tokenizer format)",
            env.endpoint
        );
    };
    let commit = first.commit.clone();
    let tokenizer = cache.store(&commit, TOKENIZER, &first.etag, &first.body)?;
    let mut optional = Vec::new();
    for file in OPTIONAL {
        // Ask for the commit just resolved, so all files are of one revision.
        match download(&client, env, repo_id, &commit, file).await? {
            Some(d) => optional.push(Some(cache.store(&commit, file, &d.etag, &d.body)?)),
            None => {
                cache.store_absent(&commit, file)?;
                optional.push(None);
            }
        }
    }
    cache.store_ref(revision, &commit)?;
    Ok(Fetched {
        commit,
        files: TokenizerFiles {
            tokenizer,
            config: optional[0].take(),
            jinja: optional[1].take(),
        },
    })
}

struct Download {
    commit: String,
    etag: String,
    body: Vec<u8>,
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn clean_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// Downloads one file; `None` when the repository exists but lacks the file.
async fn download(
    client: &reqwest::Client,
    env: &HubEnv,
    repo_id: &str,
    revision: &str,
    file: &str,
) -> anyhow::Result<Option<Download>> {
    let url = format!(
        "{}/{repo_id}/resolve/{}/{file}",
        env.endpoint,
        revision.replace('/', "%2F")
    );
    let mut target = url.clone();
    let mut commit: Option<String> = None;
    let mut etag: Option<String> = None;
    for _ in 0..6 {
        let mut req = client.get(&target);
        if let Some(token) = &env.token
            && same_origin(&target, &env.endpoint)
        {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "--tokenizer {repo_id}: {url}: cannot reach the hub at {} ({e}); HF_HUB_OFFLINE=1 \
                 uses only files already in the cache",
                env.endpoint
            )
        })?;
        commit = commit.or_else(|| header(&resp, "x-repo-commit"));
        etag = etag
            .or_else(|| header(&resp, "x-linked-etag"))
            .or_else(|| header(&resp, "etag"));
        let status = resp.status();
        if status.is_redirection() {
            let Some(location) = header(&resp, "location") else {
                bail!("--tokenizer {repo_id}: {url}: the hub redirected without a Location");
            };
            target = if location.starts_with('/') {
                format!("{}{location}", origin_of(&target))
            } else {
                location
            };
            continue;
        }
        if status.is_success() {
            let body = resp
                .bytes()
                .await
                .with_context(|| format!("--tokenizer {repo_id}: {url}: the download broke off"))?;
            let Some(commit) = commit.filter(|c| is_commit(c)) else {
                bail!(
                    "--tokenizer {repo_id}: {url}: the answer lacks the X-Repo-Commit header: is \
                     HF_ENDPOINT ({}) a Hugging Face hub?",
                    env.endpoint
                );
            };
            let etag = etag
                .map(|e| clean_etag(&e))
                .filter(|e| !e.is_empty() && !e.contains('/'))
                .unwrap_or_else(|| super::load::sha256_hex(&body));
            return Ok(Some(Download {
                commit,
                etag,
                body: body.to_vec(),
            }));
        }
        let code = header(&resp, "x-error-code");
        let says = header(&resp, "x-error-message")
            .map(|m| format!(" (the hub says: {m})"))
            .unwrap_or_default();
        let code_num = status.as_u16();
        return match (code_num, code.as_deref()) {
            (404, Some("EntryNotFound")) => Ok(None),
            (404, Some("RevisionNotFound")) => {
                bail!("--tokenizer {repo_id}: revision {revision} does not exist (HTTP 404){says}")
            }
            (401 | 403, _) | (404, Some("GatedRepo")) => bail!(
                "--tokenizer {repo_id}: access refused (HTTP {code_num}){says}: the model is gated \
                 or private, or the token lacks access; accept its terms on the hub and {}",
                if env.token.is_some() {
                    "check the token in HF_TOKEN (or $HF_HOME/token)"
                } else {
                    "set HF_TOKEN"
                }
            ),
            (404, _) => bail!(
                "--tokenizer {repo_id}: model not found on {} (HTTP 404){says}",
                env.endpoint
            ),
            _ => bail!("--tokenizer {repo_id}: {url}: the hub answered HTTP {code_num}{says}"),
        };
    }
    bail!("--tokenizer {repo_id}: {url}: too many redirects")
}

/// `scheme://host:port` of a URL.
fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

fn same_origin(url: &str, endpoint: &str) -> bool {
    origin_of(url) == origin_of(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(origin_of("http://127.0.0.1:5/a/b"), "http://127.0.0.1:5");
        assert!(same_origin("http://h:1/x", "http://h:1"));
        assert!(!same_origin("http://cdn:1/x", "http://h:1"));
        assert_eq!(clean_etag("W/\"abc\""), "abc");
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
        let err = fetch(&e, "org/model", "main").expect_err("not cached");
        assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    }
}
