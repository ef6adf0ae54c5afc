//! Throwaway git repositories of the sample app (a static binary in a `FROM scratch`
//! image), and the app settings that deploy one.

use crate::assets_dir;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// A git repository of the sample app, one commit per version.
pub struct SampleRepo {
    pub dir: tempfile::TempDir,
}

impl Default for SampleRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleRepo {
    pub fn new() -> SampleRepo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(assets_dir().join("capstan-sample"), dir.path().join("app")).unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        SampleRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// Commits a Dockerfile that runs the sample app as `version` with extra `env`.
    pub fn commit_version(&self, version: &str, env: &[(&str, &str)]) -> String {
        let mut dockerfile = format!("FROM scratch\nCOPY app /app\nENV VERSION={version}\n");
        for (k, v) in env {
            dockerfile.push_str(&format!("ENV {k}={v}\n"));
        }
        dockerfile.push_str("EXPOSE 8080\nENTRYPOINT [\"/app\"]\n");
        self.commit_file("Dockerfile", &dockerfile, version)
    }

    pub fn commit_file(&self, name: &str, content: &str, message: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        git(self.dir.path(), &["add", "-A"]);
        git(
            self.dir.path(),
            &[
                "-c",
                "user.email=t@example.test",
                "-c",
                "user.name=t",
                "commit",
                "-q",
                "-m",
                message,
            ],
        );
        git(self.dir.path(), &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }

    pub fn tag(&self, name: &str) {
        git(self.dir.path(), &["tag", name]);
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// App settings for the sample app from `repo` at `reference`, answering on `host`.
pub fn sample_app(name: &str, repo: &SampleRepo, reference: &str, host: &str) -> Value {
    json!({
        "name": name,
        "source": {"git": {"url": repo.url(), "ref": reference}},
        "port": 8080,
        "domains": [host],
        "health": {"path": "/health", "interval_secs": 1, "timeout_secs": 2, "retries": 3, "deadline_secs": 30},
        "drain_secs": 1,
        "stop_grace_secs": 5
    })
}
