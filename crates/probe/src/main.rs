//! `capstan-probe URL [TIMEOUT_SECS]`: a dependency-free HTTP health probe, built as a
//! static binary and mounted read-only into every app container, so health checks work in
//! images that have no curl or wget. Exit 0 on a 2xx or 3xx answer, 1 otherwise, printing
//! what it saw (Docker keeps the output as the check's result).
//!
//! `capstan-probe --listening` prints the TCP ports something in the container listens on,
//! read from `/proc/net/tcp` and `/proc/net/tcp6` (the container's own network namespace),
//! so a failed health check can say which port the app chose.
//!
//! `capstan-probe --serve-maintenance ADDR` serves maintenance pages (see `pages`).
//!
//! `capstan-probe --disk PATH` prints the size and free bytes of PATH's filesystem (`disk`).

mod disk;
mod pages;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-maintenance") {
        let addr = args.get(2).map(String::as_str).unwrap_or("0.0.0.0:8080");
        return match pages::serve(addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("cannot serve maintenance pages on {addr}: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.get(1).map(String::as_str) == Some("--disk") {
        let path = args.get(2).map(String::as_str).unwrap_or("/");
        return match disk::measure(path) {
            Ok((total, free)) => {
                println!("{total} {free}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.get(1).map(String::as_str) == Some("--listening") {
        println!("{}", listening());
        return ExitCode::SUCCESS;
    }
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

/// "listening on 0.0.0.0:3000, 127.0.0.1:9000" or "nothing listens on any TCP port".
fn listening() -> String {
    let mut found: Vec<String> = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for entry in text.lines().skip(1).filter_map(|l| listen_entry(l, v6)) {
            // Docker's embedded DNS server listens inside every user-network container.
            if !found.contains(&entry) && !entry.starts_with("127.0.0.11:") {
                found.push(entry);
            }
        }
    }
    if found.is_empty() {
        "nothing listens on any TCP port".to_string()
    } else {
        format!("listening on {}", found.join(", "))
    }
}

/// One line of `/proc/net/tcp*` as `address:port` when its state is LISTEN (`0A`).
fn listen_entry(line: &str, v6: bool) -> Option<String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (addr, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let shown = match (v6, addr) {
        (false, "00000000") => "0.0.0.0".to_string(),
        (false, "0100007F") => "127.0.0.1".to_string(),
        (true, "00000000000000000000000000000000") => "[::]".to_string(),
        (true, "00000000000000000000000001000000") => "[::1]".to_string(),
        (false, hex) => {
            let n = u32::from_str_radix(hex, 16).ok()?;
            std::net::Ipv4Addr::from(n.to_le_bytes()).to_string()
        }
        (true, _) => "[ipv6]".to_string(),
    };
    Some(format!("{shown}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_sockets() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listen_entry(v4, false).as_deref(), Some("127.0.0.1:8080"));
        let any = "   1: 00000000:0BB8 00000000:0000 0A 0";
        assert_eq!(listen_entry(any, false).as_deref(), Some("0.0.0.0:3000"));
        let other = "   2: 0A00000A:0BB8 00000000:0000 0A 0";
        assert_eq!(
            listen_entry(other, false).as_deref(),
            Some("10.0.0.10:3000")
        );
        let established = "   3: 0100007F:1F90 0100007F:D431 01 0";
        assert_eq!(listen_entry(established, false), None);
        let v6 = "   0: 00000000000000000000000000000000:1388 00000000000000000000000000000000:0000 0A 0";
        assert_eq!(listen_entry(v6, true).as_deref(), Some("[::]:5000"));
    }
}
