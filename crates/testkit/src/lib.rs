//! Harness for the end-to-end tests and the benchmark: a real `capstan serve` with its own instance name, data dir and ports on
//! the real Docker engine and a real Traefik, plus throwaway git repos of the sample app.
//! Everything a test creates is removed when its handles drop.

pub mod browser;
pub mod forms;
mod git_server;
pub mod registry;
mod sample_repo;
pub mod second_host;
mod sshd;
pub mod traffic;

pub use git_server::{Answer as GitAnswer, GitServer};
pub use sample_repo::{git, sample_app, SampleRepo};
pub use second_host::{second_host_script, SecondHost, SecondHostError};
pub use sshd::{Sshd, SshdConfig, SshdError};

use rand::Rng;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where scripts/build-test-images.sh put the static binaries.
pub fn assets_dir() -> PathBuf {
    let dir = std::env::var("CAPSTAN_ASSETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/assets"));
    assert!(
        dir.join("capstan-probe").is_file() && dir.join("capstan-sample").is_file(),
        "test assets missing in {}: run scripts/test.sh (it builds them with scripts/build-test-images.sh)",
        dir.display()
    );
    dir
}

/// A TCP port free on every address right now, from below the kernel's ephemeral range
/// (32768 and up here): the engine publishes ports chosen by the kernel and every outgoing
/// connection takes one from there, so a port picked in that range could be taken by
/// either before the test binds it.
pub fn free_port() -> u16 {
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    for _ in 0..200 {
        let port = LOW + rand::random::<u16>() % (HIGH - LOW);
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {HIGH}");
}

/// Runs the docker CLI (test set-up and inspection only) and returns its stdout.
/// This machine's architecture as Docker and BuildKit spell it (`amd64`, `arm64`).
pub fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running daemon; dropping it kills the daemon and removes its Docker objects.
pub struct Daemon {
    pub instance: String,
    pub data_dir: tempfile::TempDir,
    pub api: String,
    pub proxy_port: u16,
    pub token: String,
    https_port: u16,
    listen_port: u16,
    extra_args: Vec<String>,
    binary: PathBuf,
    child: Option<Child>,
    pub http: reqwest::Client,
}

impl Daemon {
    /// Starts `binary serve` with a fresh instance, data dir and ports, plus `extra` flags.
    pub async fn start(binary: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_in(binary, tempfile::tempdir().unwrap(), extra).await
    }

    /// Like [`Daemon::start`], on a data dir prepared beforehand (a filled database).
    pub async fn start_in(binary: &Path, data_dir: tempfile::TempDir, extra: &[&str]) -> Daemon {
        let instance = format!("t{:08x}", rand::thread_rng().gen::<u32>());
        let mut daemon = Daemon {
            instance,
            data_dir,
            api: String::new(),
            proxy_port: free_port(),
            https_port: free_port(),
            listen_port: free_port(),
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
            binary: binary.to_path_buf(),
            token: String::new(),
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        // A port picked free can be taken (by the engine, which publishes the proxy's API on
        // a port of its choosing, or by another test) before the daemon binds it: pick
        // again and retry.
        for attempt in 1..=4 {
            daemon.api = format!("http://127.0.0.1:{}", daemon.listen_port);
            match daemon.try_spawn().await {
                Ok(()) => break,
                Err(log)
                    if attempt < 4
                        && (log.contains("already allocated")
                            || log.contains("Address already in use")) =>
                {
                    daemon.proxy_port = free_port();
                    daemon.https_port = free_port();
                    daemon.listen_port = free_port();
                }
                Err(log) => panic!("daemon did not come up:\n{log}"),
            }
        }
        daemon.token = std::fs::read_to_string(daemon.data_dir.path().join("admin-token"))
            .unwrap()
            .trim()
            .to_string();
        daemon
    }

    /// Starts (or restarts) the daemon process on the same data dir and ports.
    pub async fn spawn(&mut self) {
        if let Err(log) = self.try_spawn().await {
            panic!("daemon did not come up:\n{log}");
        }
    }

    /// Starts the daemon; on failure, returns its log.
    async fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .args(["serve", "--instance", &self.instance])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--listen", &format!("127.0.0.1:{}", self.listen_port)])
            .args(["--proxy-http-port", &self.proxy_port.to_string()])
            .args(["--proxy-https-port", &self.https_port.to_string()])
            .arg("--probe-bin")
            .arg(assets_dir().join("capstan-probe"))
            // Sample repos live in the temporary directory; deploying them as local
            // directories is what the operator allows here.
            .arg("--source-dir")
            .arg(std::env::temp_dir())
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("capstan serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/api/v1/health", self.api))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "daemon exited with {status}:\n{}",
                    self.daemon_log()
                ));
            }
            if Instant::now() >= deadline {
                return Err(self.daemon_log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `timeout` for the daemon to exit by itself; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Kills the daemon hard (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.api)
    }

    /// A request with the admin token; returns status and JSON (Null if not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(Some(&self.token), method, path, body).await
    }

    /// A request with `token` (or none); returns status and JSON (Null if not JSON).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_app(&self, body: Value) -> Value {
        let (status, value) = self.call(reqwest::Method::POST, "/apps", Some(body)).await;
        assert_eq!(status, 201, "create app: {value}");
        value
    }

    /// Queues a deployment and returns its id.
    pub async fn deploy(&self, app: &str, body: Option<Value>) -> i64 {
        let (status, value) = self
            .call(
                reqwest::Method::POST,
                &format!("/apps/{app}/deployments"),
                body,
            )
            .await;
        assert_eq!(status, 202, "deploy: {value}");
        value["id"].as_i64().unwrap()
    }

    pub async fn deployment(&self, id: i64) -> Value {
        let (status, value) = self
            .call(reqwest::Method::GET, &format!("/deployments/{id}"), None)
            .await;
        assert_eq!(status, 200, "{value}");
        value
    }

    /// Waits until the deployment has finished and returns it.
    pub async fn wait(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let d = self.deployment(id).await;
            let state = d["state"].as_str().unwrap().to_string();
            if ["live", "failed", "cancelled", "superseded"].contains(&state.as_str()) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} stuck in {state}:\n{}",
                self.log(id).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn log(&self, id: i64) -> String {
        self.text(&format!("/deployments/{id}/logs")).await
    }

    /// GET an API path with the admin token and return the body as text.
    pub async fn text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The log once the deployment has written its last line (retirement of the old
    /// version and image cleanup come after the state is already final).
    pub async fn final_log(&self, id: i64) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log(id).await;
            let last = log.lines().last().unwrap_or_default();
            if last.contains("cleanup done") || last.contains("deployment failed") {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} never wrote its last line:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deploys and asserts the outcome, returning the deployment.
    pub async fn deploy_expect(&self, app: &str, body: Option<Value>, state: &str) -> Value {
        let id = self.deploy(app, body).await;
        let d = self.wait(id).await;
        assert_eq!(
            d["state"],
            state,
            "deployment {id}: {d}\n{}",
            self.log(id).await
        );
        d
    }

    /// A new sample repo at version `v1` (with `env`), an app `name` from it on `host`,
    /// deployed and live. Returns the repo, for later versions.
    pub async fn live_sample(&self, name: &str, host: &str, env: &[(&str, &str)]) -> SampleRepo {
        let repo = SampleRepo::new();
        repo.commit_version("v1", env);
        self.create_app(sample_app(name, &repo, "main", host)).await;
        self.deploy_expect(name, None, "live").await;
        repo
    }

    /// GET through the proxy with a Host header: (status, body).
    pub async fn via_proxy(&self, host: &str, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.proxy_port);
        let mut response = self.http.get(&url).header("Host", host).send().await;
        if response.is_err() {
            // A pooled keep-alive connection the proxy closed (it does on a config reload)
            // fails before any request is sent; a fresh connection tells the real answer.
            tokio::time::sleep(Duration::from_millis(100)).await;
            response = self.http.get(&url).header("Host", host).send().await;
        }
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    pub fn containers(&self, app: &str) -> Vec<String> {
        docker(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=capstan.instance={}", self.instance),
            "--filter",
            &format!("label=capstan.app={app}"),
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Daemon {
    /// Waits (bounded) until the app's containers are exactly `expected`: old versions are
    /// retired just after the new one is recorded live.
    pub async fn wait_containers(&self, app: &str, expected: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut now = self.containers(app);
            now.sort();
            let mut want = expected.to_vec();
            want.sort();
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containers of {app}: {now:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let filter = format!("label=capstan.instance={}", self.instance);
        remove_listed(
            &["ps", "-aq", "--filter", &filter],
            &["rm", "-f", "-v"],
            &[],
        );
        remove_listed(
            &["network", "ls", "-q", "--filter", &filter],
            &["network", "rm"],
            &[],
        );
        // The proxy's ACME volume is created by its mount, without labels.
        let proxy_data = format!("{}-proxy-data", self.instance);
        remove_listed(
            &["volume", "ls", "-q", "--filter", &filter],
            &["volume", "rm", "-f"],
            &[proxy_data],
        );
        remove_listed(&["images", "-q", "--filter", &filter], &["rmi", "-f"], &[]);
    }
}

/// Removes, with one `docker <remove…>` call, what `docker <list…>` lists plus `extra`.
fn remove_listed(list: &[&str], remove: &[&str], extra: &[String]) {
    let listed = docker(list);
    let mut args: Vec<&str> = remove.to_vec();
    let before = args.len();
    args.extend(listed.lines().filter(|l| !l.is_empty()));
    args.extend(extra.iter().map(String::as_str));
    if args.len() > before {
        docker(&args);
    }
}
