//! `--cache-reset URL`: empty the server's prefix cache before each level,
//! so that a level does not find the prompts of the levels before it
//! cached (every level starts from the trace's first session).

use std::time::Duration;

use anyhow::{Context, bail};

/// How long one reset may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The reset URL of `--cache-reset`: a full URL, or a path from the
/// server's root (`/reset_prefix_cache`).
pub fn resolve(given: &str, root: &str) -> anyhow::Result<String> {
    if given.starts_with('/') {
        return Ok(format!("{}{given}", root.trim_end_matches('/')));
    }
    if given.starts_with("http://") || given.starts_with("https://") {
        return Ok(given.to_string());
    }
    bail!(
        "--cache-reset: `{given}` is neither a URL nor a path such as /reset_prefix_cache (vLLM) or /flush_cache (SGLang)"
    )
}

/// POSTs the reset; an answer other than 2xx is an error that carries the
/// server's reply.
pub async fn reset(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    headers: &[(String, String)],
) -> anyhow::Result<()> {
    let mut req = client.post(url).timeout(TIMEOUT);
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let response = req
        .send()
        .await
        .with_context(|| format!("POST {url} failed"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.trim().chars().take(300).collect();
        bail!("POST {url}: HTTP {}: {body}", status.as_u16());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_from_the_root_and_urls_as_given() {
        let root = "http://127.0.0.1:8000";
        assert_eq!(
            resolve("/flush_cache", root).expect("a path"),
            "http://127.0.0.1:8000/flush_cache"
        );
        assert_eq!(
            resolve("http://other:1/reset_prefix_cache", root).expect("a URL"),
            "http://other:1/reset_prefix_cache"
        );
        let e = resolve("reset_prefix_cache", root).expect_err("neither");
        assert!(e.to_string().contains("/reset_prefix_cache"), "{e}");
    }
}
