//! Each domain's certificate as the real Traefik has it, from a real ACME server: pebble
//! (Debian's `pebble` package, an RFC 8555 test CA), with `pebble-challtestsrv` as its
//! DNS. The daemon's proxy is pointed at pebble by the operator settings
//! `acme_ca_server` and `acme_ca_certificates`. Pebble checks every HTTP-01 challenge for
//! real, through the proxy's published HTTP port: domains whose DNS points at this host
//! get a certificate Traefik writes into its ACME store (issued, with its expiry); a
//! domain whose address refuses, or that has no address, fails with the reason Traefik
//! logs; one whose address takes the connection and never answers stays pending while
//! pebble waits; an app without TLS is http-only, and one not deployed is not served.
//! The app pages show the same in Chromium, each link on the proxy's HTTPS port.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{sample_app, SampleRepo};

/// A process killed (by its own id) when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Running {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} does not start ({e}): install Debian's pebble package (scripts/test.sh does)")
        });
    Running(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host's address on Docker's default bridge (its gateway, else the subnet's first
/// address, which the engine gives it): the proxy's ACME client reaches pebble there
/// (pebble's TLS certificate names it).
fn host_address_for_containers() -> String {
    let field = |name: &str| {
        support::docker(&[
            "network",
            "inspect",
            "-f",
            &format!("{{{{(index .IPAM.Config 0).{name}}}}}"),
            "bridge",
        ])
        .trim()
        .to_string()
    };
    let gateway = field("Gateway");
    if !gateway.is_empty() {
        return gateway;
    }
    let subnet = field("Subnet");
    let base: std::net::Ipv4Addr = subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the bridge network's subnet {subnet:?}"));
    std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
}

/// Pebble's own TLS certificate (self-signed, naming `address`), which the proxy trusts.
fn pebble_tls(dir: &Path, address: &str) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=pebble"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .arg("-addext")
        .arg(format!("subjectAltName=IP:{address},DNS:localhost"))
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn certificates(daemon: &support::Daemon, app: &str) -> Vec<Value> {
    let (status, body) = daemon
        .call(
            reqwest::Method::GET,
            &format!("/apps/{app}/certificates"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// Polls the app's certificates until every domain's state is `state`.
async fn wait_for_state(daemon: &support::Daemon, app: &str, state: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = certificates(daemon, app).await;
        if got.iter().all(|c| c["state"] == state) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{app}'s certificates are not {state}: {got:?}\nproxy log:\n{}",
            support::docker(&[
                "logs",
                "--tail",
                "40",
                &format!("{}-proxy", daemon.instance)
            ])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The app pages in Chromium: each domain's link on the proxy's HTTPS port (not 443
/// here) with its certificate's state and its expiry or reason.
async fn app_page_shows_the_states(daemon: &support::Daemon) {
    let browser = capstan_testkit::browser::Browser::start("certificates").await;
    browser.goto(&daemon.api).await;
    let code = std::fs::read_to_string(daemon.data_dir.path().join("setup-code")).unwrap();
    for (field, value) in [
        ("code", code.trim()),
        ("name", "ada"),
        ("password", "correct horse battery"),
        ("confirm", "correct horse battery"),
    ] {
        browser.fill("form", field, value).await;
    }
    browser.submit("form button").await;
    let https_port = published_https_port(daemon);
    let shown = |app: &'static str| {
        let browser = &browser;
        let api = daemon.api.clone();
        async move {
            browser.goto(&format!("{api}/apps/{app}")).await;
            // The page shows first; its script then asks for the certificates.
            let asked = std::time::Instant::now();
            loop {
                let listed = browser
                    .client
                    .execute(
                        "return [...document.querySelectorAll('#domains li')].map(li =>
                           [li.querySelector('a').href, li.dataset.cert,
                            li.querySelector('.badge').textContent,
                            (li.querySelector('.cert-detail') || {}).textContent || ''])",
                        vec![],
                    )
                    .await
                    .unwrap();
                let waiting = listed.as_array().unwrap().iter().any(|row| row[1] == "");
                if !waiting || asked.elapsed() > Duration::from_secs(20) {
                    return listed;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let certs = shown("certs").await;
    browser.screenshot("01-issued").await;
    for (row, domain) in certs
        .as_array()
        .unwrap()
        .iter()
        .zip(["ok-a.test", "ok-b.test"])
    {
        assert_eq!(row[0], format!("https://{domain}:{https_port}/"), "{certs}");
        assert_eq!(row[1], "issued", "{certs}");
        assert_eq!(row[2], "certificate issued", "{certs}");
        assert!(row[3].as_str().unwrap().starts_with("until 20"), "{certs}");
    }
    let refused = shown("refused").await;
    browser.screenshot("02-failed").await;
    assert_eq!(refused[0][1], "failed", "{refused}");
    assert!(
        refused[0][3].as_str().unwrap().contains("192.0.2.1"),
        "{refused}"
    );
    let waiting = shown("waiting").await;
    assert_eq!(waiting[0][2], "certificate pending", "{waiting}");
    let plain = shown("plain").await;
    assert_eq!(
        plain[0][0],
        format!("http://plain.test:{}/", daemon.proxy_port)
    );
    assert_eq!(plain[0][2], "HTTP only", "{plain}");
    browser.close().await;
}

/// The proxy's published HTTPS port (not 443 here).
fn published_https_port(daemon: &support::Daemon) -> String {
    let https_port = support::docker(&["port", &format!("{}-proxy", daemon.instance), "443/tcp"]);
    https_port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

/// Plain HTTP to a TLS app is sent, by the real Traefik, to HTTPS on the port the proxy
/// publishes it on, not to 443 where nothing of this instance listens.
async fn http_redirects_to_the_published_https_port(daemon: &support::Daemon, domain: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http
        .get(format!(
            "http://127.0.0.1:{}/somewhere?x=1",
            daemon.proxy_port
        ))
        .header("Host", domain)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 301, "{answer:?}");
    let location = answer.headers()["location"].to_str().unwrap();
    assert_eq!(
        location,
        format!(
            "https://{domain}:{}/somewhere?x=1",
            published_https_port(daemon)
        )
    );
}

fn tls_app(name: &str, repo: &SampleRepo, domains: &[&str]) -> Value {
    let mut app = sample_app(name, repo, "main", domains[0]);
    app["domains"] = json!(domains);
    app["tls"] = json!(true);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_issued_pending_or_failed_as_traefik_has_them() {
    let work = tempfile::tempdir().unwrap();
    let address = host_address_for_containers();
    pebble_tls(work.path(), &address);
    let (acme_port, dns_port, dns_admin) = (free_port(), free_port(), free_port());
    let daemon = support::start_daemon_with(&[
        "--acme-ca-server",
        &format!("https://{address}:{acme_port}/dir"),
        "--acme-ca-certificates",
        work.path().join("cert.pem").to_str().unwrap(),
    ])
    .await;

    // DNS: no address unless one is added; pebble checks challenges on the proxy's port.
    let dns = format!("127.0.0.1:{dns_port}");
    let _dns = spawn(
        "pebble-challtestsrv",
        &[
            "-dns01",
            &dns,
            "-management",
            &format!("127.0.0.1:{dns_admin}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-defaultIPv4",
            "",
            "-defaultIPv6",
            "",
        ],
        &[],
        &work.path().join("challtestsrv.log"),
    );
    let config = json!({"pebble": {
        "listenAddress": format!("0.0.0.0:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{}", free_port()),
        "certificate": work.path().join("cert.pem"),
        "privateKey": work.path().join("key.pem"),
        "httpPort": daemon.proxy_port,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    let config_path = work.path().join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let _pebble = spawn(
        "pebble",
        &["-config", config_path.to_str().unwrap(), "-dnsserver", &dns],
        &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
        &work.path().join("pebble.log"),
    );
    wait_for_port(dns_admin, "pebble-challtestsrv").await;
    wait_for_port(acme_port, "pebble").await;
    let http = reqwest::Client::new();
    for (host, ip) in [
        ("ok-a.test", "127.0.0.1"),
        ("ok-b.test", "127.0.0.1"),
        // TEST-NET-1: nothing answers there.
        ("refused.test", "192.0.2.1"),
    ] {
        let added = http
            .post(format!("http://127.0.0.1:{dns_admin}/add-a"))
            .json(&json!({"host": host, "addresses": [ip]}))
            .send()
            .await
            .unwrap();
        assert!(added.status().is_success());
    }

    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    // Not deployed yet: nothing is routed, so nothing is asked of Traefik.
    daemon
        .create_app(tls_app("certs", &repo, &["ok-a.test", "ok-b.test"]))
        .await;
    let before = certificates(&daemon, "certs").await;
    assert!(
        before.iter().all(|c| c["state"] == "not_served"),
        "{before:?}"
    );
    daemon
        .create_app(sample_app("plain", &repo, "main", "plain.test"))
        .await;
    assert_eq!(
        certificates(&daemon, "plain").await[0]["state"],
        "http_only"
    );

    daemon.deploy_expect("certs", None, "live").await;
    http_redirects_to_the_published_https_port(&daemon, "ok-b.test").await;
    let issued = wait_for_state(&daemon, "certs", "issued").await;
    let now = chrono::Utc::now();
    for certificate in &issued {
        let expires =
            chrono::DateTime::parse_from_rfc3339(certificate["expires_at"].as_str().unwrap())
                .unwrap();
        assert!(expires > now + chrono::Duration::days(1), "{certificate}");
    }
    assert_eq!(
        issued
            .iter()
            .map(|c| c["domain"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ok-a.test", "ok-b.test"]
    );

    // An address where nothing answers: pebble's check is refused and Traefik logs why.
    daemon
        .create_app(tls_app("refused", &repo, &["refused.test"]))
        .await;
    daemon.deploy_expect("refused", None, "live").await;
    let failed = wait_for_state(&daemon, "refused", "failed").await;
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused.test") && reason.contains("192.0.2.1"),
        "{reason}"
    );
    // A name with no address: pebble cannot resolve it, the check fails.
    daemon
        .create_app(tls_app("nowhere", &repo, &["nowhere.test"]))
        .await;
    daemon.deploy_expect("nowhere", None, "live").await;
    let failed = wait_for_state(&daemon, "nowhere", "failed").await;
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(reason.contains("could not resolve"), "{reason}");

    // An address that takes the connection and never answers: pebble's check waits, and
    // so does Traefik: pending. (The proxy publishes on IPv4 only; this listener holds
    // the same port on IPv6 loopback.)
    let silent = std::net::TcpListener::bind(("::1", daemon.proxy_port))
        .expect("IPv6 loopback for the silent listener");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let added = http
        .post(format!("http://127.0.0.1:{dns_admin}/add-aaaa"))
        .json(&json!({"host": "waiting.test", "addresses": ["::1"]}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    daemon
        .create_app(tls_app("waiting", &repo, &["waiting.test"]))
        .await;
    daemon.deploy_expect("waiting", None, "live").await;
    for _ in 0..5 {
        let waiting = certificates(&daemon, "waiting").await;
        assert_eq!(waiting[0]["state"], "pending", "{waiting:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    app_page_shows_the_states(&daemon).await;

    // The other apps are as they were.
    assert_eq!(certificates(&daemon, "certs").await[0]["state"], "issued");
    assert_eq!(
        certificates(&daemon, "plain").await[0]["state"],
        "http_only"
    );
}
