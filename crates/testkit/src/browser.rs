//! A real Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! the panel's end-to-end tests: start it, look at pages, save screenshots as artifacts.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless Chromium session behind its own chromedriver.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
}

/// Where screenshots go: `$CAPSTAN_ARTIFACTS_DIR/<suite>`, else the temp dir.
pub fn artifacts_dir(suite: &str) -> PathBuf {
    let base = std::env::var_os("CAPSTAN_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("capstan-artifacts"));
    let dir = base.join(suite);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session (1280×900).
    pub async fn start(suite: &str) -> Browser {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = crate::free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin} (Debian's chromium-driver): {e}")
            });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=en-US"
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            // Plain HTTP to the local driver: no TLS stack needed.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("no WebDriver session from {driver_bin}: {err}"),
            }
        };
        Browser {
            client,
            driver,
            shots: artifacts_dir(suite),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// The first element matching `css`, waited for up to 10 s.
    async fn find(
        &self,
        css: &str,
    ) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
    }

    /// The visible text of the first element matching `css`. A live page may replace the
    /// element between finding and reading it (a stale element): it is found again.
    pub async fn text(&self, css: &str) -> String {
        let mut tries = 0;
        loop {
            let element = self
                .find(css)
                .await
                .unwrap_or_else(|e| panic!("no element {css}: {e}"));
            match element.text().await {
                Ok(text) => return text,
                Err(err) if tries < 5 && is_stale(&err) => tries += 1,
                Err(err) => panic!("cannot read {css}: {err}"),
            }
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// Replaces the value of the field named `name` in the form `form` (a CSS selector).
    pub async fn fill(&self, form: &str, name: &str, value: &str) {
        let field = self
            .find(&format!("{form} [name='{name}']"))
            .await
            .unwrap_or_else(|e| panic!("no field {name} in {form}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks what submits a form or follows a link, and waits until the next page has
    /// loaded (a click returns before the navigation it starts is done).
    pub async fn submit(&self, css: &str) {
        self.client
            .execute("window.capstanOldPage = true", vec![])
            .await
            .unwrap();
        self.click(css).await;
        self.wait_new_page().await;
    }

    /// Waits until the document is a new one, fully loaded.
    pub async fn wait_new_page(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let fresh = self
                .client
                .execute(
                    "return !window.capstanOldPage && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if matches!(fresh, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            assert!(Instant::now() < deadline, "no new page 30 s after a click");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of `css` contains `wanted` (pages that change by themselves).
    pub async fn wait_text(&self, css: &str, wanted: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(wanted) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Saves a PNG of the viewport as `<artifacts>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Whether WebDriver says the element is no longer in the page.
fn is_stale(err: &fantoccini::error::CmdError) -> bool {
    matches!(
        err,
        fantoccini::error::CmdError::Standard(e)
            if e.error == fantoccini::error::ErrorStatus::StaleElementReference
    )
}
