//! A real browser for the console's tests: Debian's headless Chromium, driven through its
//! ChromeDriver over the W3C WebDriver protocol (JSON over HTTP, the few commands the tests
//! use). Both come from `scripts/setup.sh`; a test fails, naming them, when they are missing.

use serde_json::{Value, json};
use std::time::Duration;

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process and one browser session on it; both end when it is dropped.
pub struct Browser {
    driver: tokio::process::Child,
    client: reqwest::Client,
    session: String,
    /// The Chromium profile, removed at the end.
    profile: std::path::PathBuf,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium of `width` x `height` (under 500 px wide,
    /// below what a desktop window may be, as a phone's screen by Chromium's device emulation).
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = crate::support::free_local_addr().port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group, with the Chromium it starts: a test that panics kills
            // the whole group when the browser is dropped (see `Drop`).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (Debian's chromium-driver: scripts/setup.sh installs it)");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if let Ok(response) = client.get(format!("{base}/status")).send().await
                && response.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("faas-chromium-{}", uuid::Uuid::new_v4()));
        // As the machine's notes say: without the background-networking flags, Chromium
        // reaches for Google's hosts on this closed network at every start.
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({"binary": "/usr/bin/chromium", "args": args});
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {
                "width": width, "height": height, "pixelRatio": 1.0, "touch": true,
            }});
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let response: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {response}"))
            .to_owned();
        Browser {
            driver,
            client,
            session: format!("{base}/session/{session}"),
            profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = response["value"]["error"].as_str() {
            panic!(
                "WebDriver {path}: {error}: {}",
                response["value"]["message"]
            );
        }
        response["value"].clone()
    }

    pub async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The URL once it contains `part` (a click's navigation may still be under way), within
    /// 10 s; the last URL seen otherwise.
    pub async fn url_with(&self, part: &str) -> String {
        let mut url = String::new();
        for _ in 0..100 {
            url = self.url().await;
            if url.contains(part) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        url
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.command(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Types `text` into the element `css` finds.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Types `text` into the element `css` finds, where its caret is (for an editable element,
    /// after its content), without clearing it first.
    pub async fn send_keys(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The page's HTML once it contains `text`, within 30 s; panics with the page otherwise.
    pub async fn wait_for_text(&self, text: &str) -> String {
        let mut page = String::new();
        for _ in 0..300 {
            page = self.source().await;
            if page.contains(text) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{text:?} not on the page in 30 s: {page}");
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The HTML of the frame element `css` finds, as the browser has it (an error page of its
    /// own when it refused to show the frame).
    pub async fn frame_source(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            "/frame",
            Some(json!({"id": {ELEMENT: element}})),
        )
        .await;
        let source = self.source().await;
        self.command(reqwest::Method::POST, "/frame/parent", Some(json!({})))
            .await;
        source
    }

    /// What a script of the page sees of `expression`.
    pub async fn eval(&self, expression: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": format!("return {expression};"), "args": []})),
        )
        .await
    }

    /// The browser console's messages since the last call (CSP violations among them).
    pub async fn console_log(&self) -> Vec<String> {
        let entries = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| format!("{} {}", entry["level"], entry["message"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The page as a PNG, into `dir/name.png` when `FAAS_CONSOLE_SCREENSHOTS` names a
    /// directory (docs/console is made so); nothing otherwise.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("FAAS_CONSOLE_SCREENSHOTS") else {
            return;
        };
        use base64::Engine;
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Ends the browser session, then the driver and what is left of Chromium (`Drop`).
    pub async fn quit(self) {
        let _ = self.client.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    /// Kills ChromeDriver's process group, Chromium included, whether the test ended or
    /// panicked (a panic skips `quit`, and killing the driver alone leaves Chromium running).
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
