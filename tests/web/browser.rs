//! A headless Chromium for the tests, driven over WebDriver: `chromedriver` on a free port,
//! `fantoccini` as the client. Missing Chromium is a failure with the command that installs it,
//! never a skip. Every wait has a deadline; screenshots go to `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session and the chromedriver behind it (killed on drop).
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `<target>/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium profile.
    pub async fn start() -> Self {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).exists(),
                "the browser tests need {what} at {path}: install Debian's Chromium with \
                 `apt-get update && apt-get install -y chromium chromium-driver` (.ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e; // chromedriver not listening yet
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
            }
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.expect("run script")
    }

    /// The text of the first element matching `css`, or `None`.
    pub async fn text(&self, css: &str) -> Option<String> {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await;
        v.as_str().map(str::to_owned)
    }

    /// Clicks the first element matching `css` (it must exist).
    pub async fn click(&self, css: &str) {
        let ok = self
            .js(
                "const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;",
                vec![json!(css)],
            )
            .await;
        assert_eq!(ok, json!(true), "nothing to click at {css}");
    }

    /// Polls `check` (a script returning a value) until `accept` takes it, or fails after `secs`
    /// with a screenshot named `what`.
    pub async fn wait_for(
        &self,
        secs: u64,
        what: &str,
        script: &str,
        args: Vec<Value>,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.js(script, args.clone()).await;
            if accept(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot(&format!("FAILED-{}", slug(what))).await;
                panic!(
                    "timed out after {secs}s waiting for {what}; last value {v}; screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element at `css` has exactly the text `want`.
    pub async fn wait_text(&self, secs: u64, css: &str, want: &str) {
        self.wait_for(
            secs,
            &format!("{css} to read {want:?}"),
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
            |v| v.as_str() == Some(want),
        )
        .await;
    }

    /// A PNG of the page in `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// No element injected by data: no `<img>` anywhere and the marker the payloads would set
    /// is unset.
    pub async fn assert_nothing_injected(&self, context: &str) {
        let v = self
            .js(
                "return { imgs: document.querySelectorAll('img, iframe, object, embed').length, \
                 scripts: document.querySelectorAll('script').length, \
                 pwned: window.__pwned === undefined ? null : String(window.__pwned) };",
                vec![],
            )
            .await;
        assert_eq!(v["imgs"], 0, "{context}: an element was injected: {v}");
        assert_eq!(
            v["scripts"], 1,
            "{context}: only the page's own script: {v}"
        );
        assert_eq!(v["pwned"], Value::Null, "{context}: injected code ran: {v}");
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}
