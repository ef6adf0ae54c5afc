//! A real image registry for tests: Debian's `docker-registry` (the distribution
//! registry) with its own storage, a self-signed certificate for its IP address and an
//! htpasswd file (bcrypt), listening on a port of `ip` (the second host's link address
//! 10.250.0.1 reaches both engines). Engines trust it through
//! `/etc/docker/certs.d/<ip:port>/ca.crt`, made here and removed on drop with everything else.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Why a test registry did not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{REGISTRY_BIN} is missing (Debian's docker-registry; scripts/test.sh installs it)")]
    Missing,
    #[error("registry set-up: {0}")]
    Io(#[from] std::io::Error),
    #[error("openssl req failed: {0}")]
    Certificate(String),
    #[error("htpasswd: {0}")]
    Htpasswd(#[from] bcrypt::BcryptError),
    #[error("the registry did not listen on {address} within 15 s:\n{log}")]
    NotListening { address: SocketAddr, log: String },
}

/// A registry process; stopped and its files and trusted certificate removed on drop.
pub struct Registry {
    child: Option<Child>,
    dir: PathBuf,
    certs_dir: PathBuf,
    address: SocketAddr,
}

impl Registry {
    /// Whether the registry binary is installed.
    pub fn available() -> bool {
        Path::new(REGISTRY_BIN).exists()
    }

    /// Starts a registry on a free port of `ip` that accepts `user` with `password`.
    pub fn start(ip: Ipv4Addr, user: &str, password: &str) -> Result<Registry, RegistryError> {
        if !Self::available() {
            return Err(RegistryError::Missing);
        }
        let port = TcpListener::bind((ip, 0))?.local_addr()?.port();
        let address = SocketAddr::from((ip, port));
        let dir = std::env::temp_dir().join(format!(
            "capstan-registry-{port}-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("storage"))?;
        let certs_dir = Path::new("/etc/docker/certs.d").join(address.to_string());
        // From here on, drop cleans up whatever was made.
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let mut registry = Registry {
            child: None,
            dir,
            certs_dir,
            address,
        };
        registry.prepare(ip, user, password)?;
        registry.child = Some(
            Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(registry.dir.join("config.yml"))
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
        registry.wait_listening()?;
        Ok(registry)
    }

    /// The certificate, the htpasswd file, the config, and the engines' trust.
    fn prepare(&self, ip: Ipv4Addr, user: &str, password: &str) -> Result<(), RegistryError> {
        let dir = &self.dir;
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .args(["-subj", "/CN=capstan-test-registry", "-addext"])
            .arg(format!("subjectAltName=IP:{ip}"))
            .stdout(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(RegistryError::Certificate(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let hash = bcrypt::hash(password, 5)?;
        std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n"))?;
        std::fs::write(dir.join("config.yml"), config(dir, self.address))?;
        std::fs::create_dir_all(&self.certs_dir)?;
        std::fs::copy(dir.join("cert.pem"), self.certs_dir.join("ca.crt"))?;
        Ok(())
    }

    fn wait_listening(&self) -> Result<(), RegistryError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline {
                return Err(RegistryError::NotListening {
                    address: self.address,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// `ip:port`, as image references and `/etc/docker/certs.d` name it.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https://ip:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The repositories pushed to it (its storage's repository directories, `a/b` form).
    pub fn repositories(&self) -> Vec<String> {
        let root = self.dir.join("storage/docker/registry/v2/repositories");
        let mut found = Vec::new();
        collect_repositories(&root, &root, &mut found);
        found.sort();
        found
    }
}

/// Every directory under `root` that holds a `_manifests` directory, relative to `root`.
fn collect_repositories(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == "_manifests" {
            if let Ok(rel) = dir.strip_prefix(root) {
                found.push(rel.to_string_lossy().into_owned());
            }
        } else if !entry.file_name().to_string_lossy().starts_with('_') {
            collect_repositories(root, &path, found);
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.certs_dir);
        if let Some(parent) = self.certs_dir.parent() {
            // Only when empty: another test's registry may be trusted there too.
            let _ = std::fs::remove_dir(parent);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &Path, address: SocketAddr) -> String {
    format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n\
         http:\n  addr: {address}\n  tls:\n    certificate: {cert}\n    key: {key}\n\
         auth:\n  htpasswd:\n    realm: capstan-test\n    path: {htpasswd}\n",
        storage = dir.join("storage").display(),
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display(),
        htpasswd = dir.join("htpasswd").display(),
    )
}
