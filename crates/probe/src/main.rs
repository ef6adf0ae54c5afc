//! `capstan-probe URL [TIMEOUT_SECS]`: a dependency-free HTTP health probe, built as a
//! static binary and mounted read-only into every app container, so health checks work in
//! images that have no curl or wget. Exit 0 on a 2xx or 3xx answer, 1 otherwise, printing
//! what it saw (Docker keeps the output as the check's result).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = args.get(1) else {
        println!("usage: capstan-probe http://HOST:PORT/PATH [TIMEOUT_SECS]");
        return ExitCode::from(2);
    };
    let timeout = args
        .get(2)
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite())
        .unwrap_or(2.0)
        .clamp(0.1, 3600.0);
    match probe(url, Duration::from_secs_f64(timeout)) {
        Ok(status) if (200..400).contains(&status) => {
            println!("HTTP {status} from {url}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("HTTP {status} from {url}");
            ExitCode::FAILURE
        }
        Err(err) => {
            println!("GET {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: capstan-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    // "HTTP/1.x NNN ..."
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", line.trim()))
}
