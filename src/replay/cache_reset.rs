//! `--cache-reset URL`: empty the server's prefix cache before each level,
//! so that a level does not find the prompts of the levels before it
//! cached (every level starts from the trace's first session).

use std::time::Duration;

use anyhow::{Context, bail};

use super::config::Server;

/// How long one reset may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The reset URLs of `--cache-reset`: a full URL, or a path from each
/// server's root (`/reset_prefix_cache`), one per `--endpoint`.
pub fn resolve(given: &str, servers: &[Server]) -> anyhow::Result<Vec<String>> {
    if given.starts_with('/') {
        return Ok(servers
            .iter()
            .map(|s| format!("{}{given}", s.base_url.trim_end_matches("/v1")))
            .collect());
    }
    if given.starts_with("http://") || given.starts_with("https://") {
        return Ok(vec![given.to_string()]);
    }
    bail!(
        "--cache-reset: `{given}` is neither a URL nor a path such as /reset_prefix_cache (vLLM) or /flush_cache (SGLang)"
    )
}

/// Resets every URL in turn; the first that fails is the error.
pub async fn reset_all(
    client: &reqwest::Client,
    urls: &[String],
    api_key: Option<&str>,
    headers: &[(String, String)],
) -> anyhow::Result<()> {
    for url in urls {
        reset(client, url, api_key, headers).await?;
    }
    Ok(())
}

/// POSTs the reset; an answer other than 2xx is an error that carries the
/// server's reply.
async fn reset(
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
    fn paths_are_taken_from_each_root_and_urls_as_given() {
        let server = |port: u16| Server {
            name: format!("http://127.0.0.1:{port}"),
            base_url: format!("http://127.0.0.1:{port}/v1"),
            url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        };
        let servers = [server(8000), server(8001)];
        assert_eq!(
            resolve("/flush_cache", &servers).expect("a path"),
            [
                "http://127.0.0.1:8000/flush_cache",
                "http://127.0.0.1:8001/flush_cache"
            ]
        );
        assert_eq!(
            resolve("http://other:1/reset_prefix_cache", &servers).expect("a URL"),
            ["http://other:1/reset_prefix_cache"]
        );
        let e = resolve("reset_prefix_cache", &servers).expect_err("neither");
        assert!(e.to_string().contains("/reset_prefix_cache"), "{e}");
    }
}
