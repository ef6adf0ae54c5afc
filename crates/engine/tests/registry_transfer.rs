//! Image transfer through a real registry (Debian's `docker-registry`, the distribution
//! registry) with htpasswd credentials over TLS: pushed from the main engine, pulled by
//! the second host's engine, tagged back; wrong credentials are a typed error that never
//! shows the password. The registry listens on the host's side of the second host's link
//! (10.250.0.1), which both engines reach; each trusts its certificate through
//! `/etc/docker/certs.d/<host:port>/ca.crt`, made for this test and removed after it.

mod support;

use capstan_engine::registry::{push_via_registry, RegistryAuth};
use capstan_engine::transfer::{RegistryStep, TransferError};
use capstan_engine::EngineError;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{build, files, run_output, Fixture};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A registry process with its own storage, certificate and htpasswd file.
struct Registry {
    child: Child,
    dir: PathBuf,
    certs_dir: PathBuf,
    address: SocketAddr,
}

impl Registry {
    fn start(ip: std::net::Ipv4Addr, user: &str, password: &str) -> Registry {
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = SocketAddr::from((ip, port));
        let dir = std::env::temp_dir().join(format!(
            "capstan-registry-{port}-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .args(["-subj", "/CN=capstan-test-registry", "-addext"])
            .arg(format!("subjectAltName=IP:{ip}"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl req failed");
        let hash = bcrypt::hash(password, 5).unwrap();
        std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
        std::fs::write(dir.join("config.yml"), config(&dir, address)).unwrap();
        let certs_dir = Path::new("/etc/docker/certs.d").join(address.to_string());
        std::fs::create_dir_all(&certs_dir).unwrap();
        std::fs::copy(dir.join("cert.pem"), certs_dir.join("ca.crt")).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            dir,
            certs_dir,
            address,
        };
        registry.wait_listening();
        registry
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_moves_through_a_registry_with_credentials() {
    if !Path::new(REGISTRY).exists() {
        eprintln!(
            "\n!!!!! SKIPPED: {REGISTRY} is missing (Debian's docker-registry; scripts/test.sh installs it) !!!!!\n"
        );
        return;
    }
    let fx = Fixture::new("registry").await;
    let password = format!("pw-{:016x}", rand::random::<u64>());
    let registry = Registry::start(fx.host.host_ip(), "capstan", &password);
    let tag = fx.name("app");
    let dockerfile = "FROM busybox:stable\nCOPY app.txt /app/app.txt\nCMD [\"head\", \"-n\", \"1\", \"/app/app.txt\"]\n";
    let id = build(
        &fx.main,
        &tag,
        &files(dockerfile, b"", &support::app_text("via registry", 64)),
    )
    .await;
    fx.remember(&id);

    let wrong = RegistryAuth {
        url: format!("https://{}", registry.address),
        username: "capstan".into(),
        password: "not-the-password".into(),
    };
    let err = push_via_registry(&fx.main, &fx.second, &tag, &wrong)
        .await
        .unwrap_err();
    eprintln!("wrong password: {err}");
    assert!(
        matches!(
            err,
            EngineError::Transfer(TransferError::Registry {
                step: RegistryStep::Push,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-password"));
    assert_eq!(fx.second.image_id(&tag).await.unwrap(), None);

    let auth = RegistryAuth {
        password: password.clone(),
        ..wrong
    };
    let started = Instant::now();
    let moved = push_via_registry(&fx.main, &fx.second, &tag, &auth)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "through the registry: {e}\nregistry log:\n{}",
                registry.log()
            )
        });
    eprintln!("through the registry: {moved:?} in {:?}", started.elapsed());
    assert_eq!(moved.image_id, id);
    assert_eq!(fx.second.image_id(&tag).await.unwrap(), Some(id.clone()));
    assert_eq!(run_output(&fx.second_docker, &tag).await, "via registry");
    // The registry tags are gone from both engines; the image keeps its own.
    assert_eq!(
        fx.main.image_id(&moved.registry_reference).await.unwrap(),
        None
    );
    assert_eq!(
        fx.second.image_id(&moved.registry_reference).await.unwrap(),
        None
    );
    assert!(
        !registry.log().contains(&password),
        "the registry logged the password"
    );
    fx.cleanup().await;
}
