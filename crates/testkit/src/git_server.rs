//! A git server over HTTP for tests: bare repositories served with git's "dumb" protocol
//! (plain files, nothing more), on loopback or on this host's own outward address (which a
//! non-admin token may use), counting requests. It can be told to stop answering: to
//! refuse at once (the connection closed) or to hang (accept and never say a word).

use crate::git;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server treats each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    Serve = 0,
    /// Closes every connection without a word.
    Refuse = 1,
    /// Holds every connection open without a word.
    Hang = 2,
}

pub struct GitServer {
    host: IpAddr,
    port: u16,
    hits: Arc<AtomicUsize>,
    answer: Arc<AtomicU8>,
    root: tempfile::TempDir,
}

/// This host's address on its default route: not loopback nor link-local, so the daemon
/// treats it as any remote host.
fn outward_address() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    // Connecting a UDP socket sends nothing; it only picks the route and source address.
    socket.connect("192.0.2.1:9").unwrap();
    socket.local_addr().unwrap().ip()
}

impl GitServer {
    /// A server on 127.0.0.1 (the daemon's own host: for admin tokens only).
    pub fn loopback() -> GitServer {
        GitServer::on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A server on this host's outward address, which any token may fetch from.
    pub fn outward() -> GitServer {
        GitServer::on(outward_address())
    }

    fn on(host: IpAddr) -> GitServer {
        let root = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind((host, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(AtomicU8::new(Answer::Serve as u8));
        let (files, counter, mode) = (root.path().to_path_buf(), hits.clone(), answer.clone());
        let held = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                match mode.load(Ordering::SeqCst) {
                    m if m == Answer::Refuse as u8 => drop(stream),
                    m if m == Answer::Hang as u8 => held.lock().unwrap().push(stream),
                    _ => serve(stream, &files),
                }
            }
        });
        GitServer {
            host,
            port,
            hits,
            answer,
            root,
        }
    }

    /// Publishes the repo at `source` as `<name>.git`; returns its URL.
    pub fn publish(&self, source: &Path, name: &str) -> String {
        let bare = self.root.path().join(format!("{name}.git"));
        let _ = std::fs::remove_dir_all(&bare);
        git(
            self.root.path(),
            &[
                "clone",
                "-q",
                "--bare",
                "--no-local",
                &source.to_string_lossy(),
                &bare.to_string_lossy(),
            ],
        );
        git(&bare, &["update-server-info"]);
        self.url(name)
    }

    /// The URL `<name>.git` has (or would have) on this server.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}:{}/{name}.git", self.host, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections the server has had.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// How the server treats the connections from now on.
    pub fn answer(&self, answer: Answer) {
        self.answer.store(answer as u8, Ordering::SeqCst);
    }
}

/// Answers one request with the file it names under `files`, or 404. git asks for
/// `<repo>/info/refs` after a URL's query string when it has one (`x.git?a=b/info/refs`):
/// that is answered as the repository's `info/refs`.
fn serve(mut stream: TcpStream, files: &Path) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_end_matches('/');
    let wanted = if target.contains("/info/refs") && !path.ends_with("/info/refs") {
        format!("{path}/info/refs")
    } else {
        path.to_string()
    };
    let answer = match std::fs::read(files.join(wanted.trim_start_matches('/'))) {
        Ok(body) if !wanted.contains("..") => {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend(body);
            out
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&answer);
}
