//! Where the Hugging Face hub is and where its cache lives, read from the
//! environment as the hub's own tools read it: `HF_ENDPOINT` (the hub's URL),
//! `HF_HOME` (the cache root, `$XDG_CACHE_HOME/huggingface` or
//! `~/.cache/huggingface` by default), `HF_HUB_CACHE` (the file cache itself,
//! `$HF_HOME/hub` by default), `HF_TOKEN` (else the token file
//! `$HF_HOME/token`) and `HF_HUB_OFFLINE` (use only the cache).
//!
//! Shared by `convert longbench --hub` and `tokenize --tokenizer ORG/NAME`.

use std::path::{Path, PathBuf};

/// The hub's URL when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Hub settings, as read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct HubEnv {
    /// The hub's URL, without a trailing `/`.
    pub endpoint: String,
    /// The file cache (`.../huggingface/hub`).
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    pub offline: bool,
}

impl HubEnv {
    /// The settings of this process's environment; `None` when nothing
    /// (`HF_HOME`, `XDG_CACHE_HOME`, `HOME`) tells where the cache is.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// The settings read through `var` (an environment lookup); a variable
    /// set to blanks counts as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |key: &str| var(key).filter(|v| !v.trim().is_empty());
        let home = match (set("HF_HOME"), set("XDG_CACHE_HOME"), set("HOME")) {
            (Some(hf), _, _) => PathBuf::from(hf),
            (None, Some(xdg), _) => Path::new(&xdg).join("huggingface"),
            (None, None, Some(home)) => Path::new(&home).join(".cache/huggingface"),
            (None, None, None) => return None,
        };
        let cache_dir = set("HF_HUB_CACHE").map_or_else(|| home.join("hub"), PathBuf::from);
        let token = set("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(home.join("token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let endpoint = set("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let offline = set("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        Some(HubEnv {
            endpoint,
            cache_dir,
            token,
            offline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> HubEnv {
        HubEnv::from_vars(|key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
        .expect("env")
    }

    #[test]
    fn environment_is_read_like_the_hub_tools() {
        let e = env(&[("HOME", "/h")]);
        assert_eq!(e.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
        assert_eq!(e.endpoint, DEFAULT_ENDPOINT);
        assert!(!e.offline && e.token.is_none());
        let e = env(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(e.cache_dir, PathBuf::from("/x/huggingface/hub"));
        let e = env(&[
            ("HOME", "/h"),
            ("HF_HOME", "/hf"),
            ("HF_ENDPOINT", " http://127.0.0.1:9/ "),
            ("HF_TOKEN", "tok"),
            ("HF_HUB_OFFLINE", "True"),
        ]);
        assert_eq!(e.cache_dir, PathBuf::from("/hf/hub"));
        assert_eq!(e.endpoint, "http://127.0.0.1:9");
        assert_eq!(e.token.as_deref(), Some("tok"));
        assert!(e.offline);
        let e = env(&[
            ("HF_HOME", "/hf"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_HUB_OFFLINE", "0"),
            ("HF_TOKEN", "  "),
        ]);
        assert_eq!(e.cache_dir, PathBuf::from("/c"));
        assert!(!e.offline && e.token.is_none());
        assert!(HubEnv::from_vars(|_| None).is_none());
    }

    #[test]
    fn token_file_is_used_without_hf_token() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("token"), "  secret\n").expect("write");
        let home = dir.path().to_string_lossy().into_owned();
        assert_eq!(env(&[("HF_HOME", &home)]).token.as_deref(), Some("secret"));
        assert_eq!(
            env(&[("HF_HOME", &home), ("HF_TOKEN", "t")])
                .token
                .as_deref(),
            Some("t")
        );
    }
}
