//! Shared set-up of the image transfer tests: the main engine and the second host's
//! engine, a spool directory, images built from a small context, a container run to read
//! an image's output, and the removal of every image a test made on both engines.

#![allow(dead_code)] // each test binary uses its own part of the fixture

use bollard::container::{Config, CreateContainerOptions, LogsOptions, RemoveContainerOptions};
use bollard::image::RemoveImageOptions;
use capstan_engine::images::BuildRequest;
use capstan_engine::{Builder, Engine};
use capstan_testkit::SecondHost;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Two engines, a spool directory and the images to remove at the end.
pub struct Fixture {
    pub main: Engine,
    pub second: Engine,
    pub second_docker: bollard::Docker,
    pub host: SecondHost,
    pub spool: PathBuf,
    prefix: String,
    images: Mutex<Vec<String>>,
}

impl Fixture {
    pub async fn new(test: &str) -> Fixture {
        let host = tokio::task::spawn_blocking(SecondHost::ensure)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("second host: {e}"));
        let prefix = format!("capstan-xfer-{test}-{:08x}", rand::random::<u32>());
        // The classic builder: its cache is the images themselves, so removing them
        // leaves nothing behind (BuildKit's cache would keep every context).
        let mut main = Engine::connect(None, &prefix).await.unwrap();
        main.use_builder(Builder::Classic).unwrap();
        let second = Engine::connect(Some(&host.docker_host()), &prefix)
            .await
            .unwrap();
        let second_docker = host.docker().await.unwrap();
        let spool = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&spool).unwrap();
        Fixture {
            main,
            second,
            second_docker,
            host,
            spool,
            prefix,
            images: Mutex::new(Vec::new()),
        }
    }

    /// A unique image reference for this test.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}:test", self.prefix)
    }

    /// An image to remove from both engines at the end.
    pub fn remember(&self, id: &str) {
        self.images.lock().unwrap().push(id.to_string());
    }

    pub fn assert_spool_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.spool)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "spool files left behind: {left:?}");
    }

    /// Removes the test's images from both engines (newest first) and the spool directory.
    pub async fn cleanup(&self) {
        let images: Vec<String> = std::mem::take(&mut *self.images.lock().unwrap());
        let second = self.host.docker().await.unwrap();
        let main = bollard::Docker::connect_with_local_defaults().unwrap();
        for docker in [&main, &second] {
            for id in images.iter().rev() {
                let options = RemoveImageOptions {
                    force: true,
                    noprune: false,
                };
                let _ = docker.remove_image(id, Some(options), None).await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

impl Drop for Fixture {
    /// A failed test still removes its images (through the CLI: no runtime in `drop`).
    fn drop(&mut self) {
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        if images.is_empty() {
            return;
        }
        for host in [None, Some(self.host.docker_host())] {
            let mut command = std::process::Command::new("docker");
            if let Some(host) = host {
                command.arg("-H").arg(host);
            }
            let _ = command
                .args(["image", "rm", "-f"])
                .args(images.iter().rev())
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// `n` random bytes (a layer no other image has).
pub fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// Source text of `lines` lines, the first one `first` (the line a release changes).
pub fn app_text(first: &str, lines: usize) -> String {
    let mut text = format!("{first}\n");
    for i in 1..lines {
        text.push_str(&format!(
            "line {i:05} of the application's source, unchanged across releases...\n"
        ));
    }
    text
}

/// A build context: the Dockerfile, `big.bin` and `app.txt`.
pub fn files(dockerfile: &str, big: &[u8], app: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", dockerfile.as_bytes()),
        ("big.bin", big),
        ("app.txt", app.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Builds `context` on `engine` as `tag`; returns the image id.
pub async fn build(engine: &Engine, tag: &str, context: &[u8]) -> String {
    let (log, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let request = BuildRequest {
        context_tar: context.to_vec(),
        dockerfile: "Dockerfile".into(),
        target: None,
        build_args: HashMap::new(),
        secrets: HashMap::new(),
        tag: tag.to_string(),
        labels: HashMap::new(),
        no_cache: false,
    };
    let built = engine.build_image(request, &log).await;
    drop(log);
    let mut output = Vec::new();
    while let Some(line) = lines.recv().await {
        output.push(line);
    }
    built.unwrap_or_else(|e| panic!("build of {tag}: {e}\n{}", output.join("\n")))
}

/// Runs `image`'s default command in a new container on `docker` and returns its output.
pub async fn run_output(docker: &bollard::Docker, image: &str) -> String {
    let name = format!("capstan-xfer-run-{:08x}", rand::random::<u32>());
    let config = Config {
        image: Some(image.to_string()),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: name.clone(),
        platform: None,
    };
    docker
        .create_container(Some(options), config)
        .await
        .unwrap();
    docker.start_container::<String>(&name, None).await.unwrap();
    let mut wait = docker.wait_container::<String>(&name, None);
    while wait.next().await.is_some() {}
    let options = LogsOptions::<String> {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut logs = docker.logs(&name, Some(options));
    let mut output = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        output.push_str(&chunk.to_string());
    }
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    docker.remove_container(&name, Some(remove)).await.unwrap();
    output.trim().to_string()
}

/// The diff IDs of `image`'s layers on `docker`, bottom-up.
pub async fn layers(docker: &bollard::Docker, image: &str) -> Vec<String> {
    let image = docker.inspect_image(image).await.unwrap();
    image.root_fs.and_then(|r| r.layers).unwrap_or_default()
}

/// How many layers `image` has on `docker`.
pub async fn layer_count(docker: &bollard::Docker, image: &str) -> usize {
    layers(docker, image).await.len()
}
