//! The daemon's HTTP surface under abuse, against a real daemon: a flood of sign-ins
//! (from many addresses) keeps its memory bounded, concurrent attempts on one account are
//! evaluated at most up to the limit, the sign-in and setup forms need their anti-forgery
//! token, racing setups create one admin, trickled headers and idle connections are
//! closed, connections are capped per address, and every HTML page is unframeable and
//! never cached.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";

/// A browser-less client from one loopback address, keeping the pre-session cookie.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

struct Reply {
    status: u16,
    location: String,
    retry_after: Option<String>,
}

impl Visitor {
    fn from(base: &str, address: IpAddr) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(address)
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
            base: base.to_string(),
            cookie: String::new(),
        }
    }

    /// The form token of `path`'s page; the cookie it pairs with is kept.
    async fn form_token(&mut self, path: &str) -> String {
        let (cookie, token) =
            capstan_testkit::forms::pre_session(&self.http, &self.base, path).await;
        self.cookie = cookie;
        token
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        Reply {
            status: response.status().as_u16(),
            location: header("location").unwrap_or_default(),
            retry_after: header("retry-after"),
        }
    }

    /// Signs in with a token fetched just before.
    async fn sign_in(&mut self, name: &str, password: &str) -> Reply {
        let token = self.form_token("/login").await;
        self.post(
            "/login",
            &[("csrf", &token), ("name", name), ("password", password)],
        )
        .await
    }
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Sets up the first admin through the panel, with its form token.
async fn set_up_admin(daemon: &support::Daemon) {
    let code = std::fs::read_to_string(daemon.data_dir.path().join("setup-code")).unwrap();
    let mut visitor = Visitor::from(&daemon.api, loopback(1));
    let token = visitor.form_token("/setup").await;
    let done = visitor
        .post(
            "/setup",
            &[
                ("csrf", &token),
                ("code", code.trim()),
                ("name", "ada"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!((done.status, done.location.as_str()), (303, "/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_floods_setup_races_and_forged_forms() {
    let daemon = support::start_daemon().await;

    // Setup and sign-in posts without the page's token are refused, whatever they hold.
    let code = std::fs::read_to_string(daemon.data_dir.path().join("setup-code")).unwrap();
    let forged = Visitor::from(&daemon.api, loopback(1));
    let fields = |name: &'static str| {
        vec![
            ("code", code.trim().to_string()),
            ("name", name.to_string()),
            ("password", PASSWORD.to_string()),
            ("confirm", PASSWORD.to_string()),
        ]
    };
    let form = fields("mallory");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = forged.post("/setup", &pairs).await;
    assert_eq!(response.status, 403, "a setup post without its token");

    // Eight setups racing with the right code: exactly one admin.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let mut visitor = Visitor::from(&daemon.api, loopback(10 + i));
            let mut form =
                fields(["ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal"][i as usize]);
            async move {
                let token = visitor.form_token("/setup").await;
                form.push(("csrf", token));
                let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                visitor.post("/setup", &pairs).await
            }
        })
        .collect();
    let replies = futures::future::join_all(racers).await;
    let created = replies
        .iter()
        .filter(|r| r.status == 303 && r.location == "/")
        .count();
    assert_eq!(created, 1, "exactly one setup creates the admin");
    let (_, users) = daemon.call(reqwest::Method::GET, "/users", None).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    let admin = users[0]["name"].as_str().unwrap().to_string();

    let no_token = forged
        .post("/login", &[("name", &admin), ("password", PASSWORD)])
        .await;
    assert_eq!(no_token.status, 403, "a sign-in post without its token");

    // Twenty concurrent wrong passwords on one account, from twenty addresses: five are
    // evaluated, the rest refused before any hashing; then even the right one waits.
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let mut visitor = Visitor::from(&daemon.api, loopback(40 + i));
            let admin = admin.clone();
            async move { visitor.sign_in(&admin, "wrong password!").await }
        })
        .collect();
    let replies = futures::future::join_all(guesses).await;
    let evaluated = replies.iter().filter(|r| r.status == 401).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!((evaluated, refused), (5, 15), "401s and 429s");
    assert!(replies.iter().filter(|r| r.status == 429).all(|r| r
        .retry_after
        .as_deref()
        .is_some_and(|s| s.parse::<u64>().unwrap() > 0)));
    let mut late = Visitor::from(&daemon.api, loopback(70));
    let right = late.sign_in(&admin, PASSWORD).await;
    assert_eq!(right.status, 429, "the account is locked for the window");

    // Two hundred sign-ins at once for unknown accounts, ten per address: the daemon's
    // peak memory stays within its idle memory + 64 MiB.
    let pid = daemon.pid().unwrap();
    let idle_kib = status_kib(pid, "VmRSS:");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap(); // resets VmHWM
    let mut visitors = Vec::new();
    for i in 0..200u32 {
        let mut visitor = Visitor::from(&daemon.api, loopback(100 + (i / 10) as u8));
        let token = visitor.form_token("/login").await;
        visitors.push((visitor, token, format!("nobody{i}")));
    }
    let flood = visitors.iter().map(|(visitor, token, name)| async move {
        let fields = [
            ("csrf", token.as_str()),
            ("name", name.as_str()),
            ("password", "wrong password!"),
        ];
        visitor.post("/login", &fields).await
    });
    let replies = futures::future::join_all(flood).await;
    let peak_kib = status_kib(pid, "VmHWM:");
    let busy = replies.iter().filter(|r| r.status == 503).count();
    let checked = replies.iter().filter(|r| r.status == 401).count();
    eprintln!(
        "200 sign-ins: {checked} checked, {busy} told to retry; RSS idle {} MiB, peak {} MiB",
        idle_kib / 1024,
        peak_kib / 1024
    );
    assert_eq!(checked + busy, 200, "every attempt answered 401 or 503");
    assert!(busy > 0, "the queue is bounded");
    assert!(replies
        .iter()
        .filter(|r| r.status == 503)
        .all(|r| r.retry_after.is_some()));
    assert!(
        peak_kib < idle_kib + 64 * 1024,
        "peak RSS {peak_kib} KiB, idle {idle_kib} KiB"
    );
}

/// Sends `bytes` on `stream`; false once the server has closed the connection.
fn still_open(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    if stream.write_all(bytes).is_err() {
        return false;
    }
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => false,
        Ok(_) => false, // an answer (408/400) before the close
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_connections_and_page_headers() {
    let daemon = support::start_daemon().await;
    set_up_admin(&daemon).await;
    let address = daemon.api.trim_start_matches("http://").to_string();

    // Every HTML page: unframeable, never stored, no referrer; the API's JSON is left be.
    for path in ["/login", "/", "/no-such-page"] {
        let response = reqwest::get(format!("{}{path}", daemon.api)).await.unwrap();
        let headers = response.headers();
        if path == "/no-such-page" {
            assert!(headers.get("x-frame-options").is_none(), "JSON 404");
            continue;
        }
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }

    // Five connections trickling a header byte a second are closed by the header deadline
    // (20 s); polled for at most three times that.
    let address_for_threads = address.clone();
    let trickled = tokio::task::spawn_blocking(move || {
        let mut streams: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(&address_for_threads).unwrap())
            .collect();
        for s in &mut streams {
            s.write_all(b"GET /api/v1/health HTTP/1.1\r\n").unwrap();
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_secs(1));
            streams.retain_mut(|s| still_open(s, b"X"));
            if streams.is_empty() {
                return started.elapsed();
            }
        }
        panic!(
            "{} trickling connections still open after 60 s",
            streams.len()
        );
    })
    .await
    .unwrap();
    eprintln!("trickled headers: every connection closed after {trickled:?}");

    // One address may hold 64 connections; the 65th is closed at once, while another
    // address is still served.
    let from = |n: u8| {
        let address: std::net::SocketAddr = address.parse().unwrap();
        async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((loopback(n), 0).into()).unwrap();
            socket.connect(address).await.unwrap()
        }
    };
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(from(3).await);
    }
    let mut extra = from(3).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = extra
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), extra.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the 65th connection from one address is closed unanswered: {read:?}"
    );
    let other = reqwest::Client::builder()
        .local_address(loopback(2))
        .build()
        .unwrap()
        .get(format!("{}/api/v1/health", daemon.api))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another address is still served");
    drop(held);
}
