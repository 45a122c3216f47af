//! The CLI's side of the API: finding the daemon that runs on a data directory (its
//! `node.lock` is held; its URL is in `api.addr`, its cookie in `api.cookie`) and calling it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::{ADDR_FILE, COOKIE_FILE};

/// How long one API call may take (`GET /mine` mines a block: allow for it).
const TIMEOUT: Duration = Duration::from_secs(120);

/// A node's API as the CLI reaches it.
pub struct ApiClient {
    url: String,
    cookie: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    /// The API at `url` (`http://127.0.0.1:4000`), with the cookie of `data_dir` if readable.
    pub fn new(url: &str, data_dir: Option<&Path>) -> Self {
        let cookie = data_dir
            .and_then(|d| std::fs::read_to_string(d.join(COOKIE_FILE)).ok())
            .map(|c| c.trim().to_owned());
        Self {
            url: url.trim_end_matches('/').to_owned(),
            cookie,
            agent: agent(TIMEOUT),
        }
    }

    /// The same client with calls limited to `limit` each.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.agent = agent(limit);
        self
    }

    /// The API of the daemon running on `data_dir`, or `None` when no daemon runs there.
    pub fn of_running_node(data_dir: &Path) -> Result<Option<Self>> {
        if !crate::datadir::is_running(data_dir) {
            return Ok(None);
        }
        let url = std::fs::read_to_string(data_dir.join(ADDR_FILE)).with_context(|| {
            format!(
                "a node runs on {} but has not written {ADDR_FILE} (still starting?)",
                data_dir.display()
            )
        })?;
        Ok(Some(Self::new(url.trim(), Some(data_dir))))
    }

    /// The API of the daemon on `data_dir`, or a clear error saying none runs.
    pub fn require(data_dir: &Path) -> Result<Self> {
        Self::of_running_node(data_dir)?.ok_or_else(|| {
            anyhow!(
                "no node is running on {}: start one with `gossipcoin startnode`",
                data_dir.display()
            )
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header("Authorization", bearer(c));
        }
        self.answer(path, req.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let mut req = self.agent.post(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header("Authorization", bearer(c));
        }
        self.answer(path, req.send_json(body))
    }

    fn answer(
        &self,
        path: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut response =
            result.with_context(|| format!("cannot reach the node's API at {}", self.url))?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("{path}: the node's answer is not JSON ({status})"))?;
        if !status.is_success() {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            bail!("the node refused {path} ({status}): {message}");
        }
        Ok(body)
    }
}

/// A loopback HTTP agent (no proxy) that hands error statuses back as answers.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// `Authorization: Bearer <hex>` for the cookie `__cookie__:<hex>` (what the server checks;
/// no base64 needed).
fn bearer(cookie: &str) -> String {
    let secret = cookie
        .strip_prefix(super::COOKIE_USER)
        .and_then(|s| s.strip_prefix(':'))
        .unwrap_or(cookie);
    format!("Bearer {secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_the_cookie_secret() {
        assert_eq!(bearer("__cookie__:abc123"), "Bearer abc123");
        assert_eq!(bearer("abc123"), "Bearer abc123");
    }
}
