//! `capstan-probe --serve-maintenance ADDR`: the maintenance page server. The proxy sends
//! the requests of an app in maintenance here with the app's message and `Retry-After` in
//! request headers (set by the app's route, never by the client: the route's middleware
//! overwrites them); every answer is a 503 with that message as an HTML page, or as JSON
//! when the client asks for JSON. Stateless, std only, a thread per connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Must match `capstan_compose::routes::MAINTENANCE_MESSAGE_HEADER` (lowercase).
const MESSAGE_HEADER: &str = "x-capstan-maintenance-message";
/// Must match `capstan_compose::routes::MAINTENANCE_RETRY_AFTER_HEADER` (lowercase).
const RETRY_AFTER_HEADER: &str = "x-capstan-retry-after";
const FALLBACK_MESSAGE: &str = "This site is down for maintenance.";
/// Requests with longer heads are cut off.
const MAX_HEAD: usize = 64 * 1024;

pub fn serve(addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    println!("maintenance pages on {addr}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = answer(stream);
        });
    }
    Ok(())
}

/// What a request asked for, as far as the page is concerned.
#[derive(Debug, Default, PartialEq)]
struct Request {
    head_only: bool,
    wants_json: bool,
    message: Option<String>,
    retry_after: Option<u32>,
}

fn answer(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut lines = Vec::new();
    let mut size = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        size += n;
        if n == 0 || line == "\r\n" || line == "\n" || size > MAX_HEAD {
            break;
        }
        lines.push(line);
    }
    let request = parse(&lines);
    let response = render(&request);
    let mut stream = stream;
    stream.write_all(&response)?;
    stream.flush()
}

fn parse(lines: &[String]) -> Request {
    let mut request = Request {
        head_only: lines.first().is_some_and(|l| l.starts_with("HEAD ")),
        ..Request::default()
    };
    for line in lines.iter().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            MESSAGE_HEADER => request.message = percent_decode(value),
            RETRY_AFTER_HEADER => request.retry_after = value.parse().ok(),
            "accept" => {
                request.wants_json =
                    value.contains("application/json") && !value.contains("text/html")
            }
            _ => {}
        }
    }
    request
}

fn render(request: &Request) -> Vec<u8> {
    let message = request
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(FALLBACK_MESSAGE);
    let retry_after = request.retry_after.unwrap_or(300).clamp(1, 86_400);
    let (content_type, body) = if request.wants_json {
        (
            "application/json",
            format!(
                "{{\"error\":\"maintenance\",\"message\":\"{}\",\"retry_after_secs\":{retry_after}}}\n",
                json_escape(message)
            ),
        )
    } else {
        ("text/html; charset=utf-8", page(&html_escape(message)))
    };
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nRetry-After: {retry_after}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !request.head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn page(message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>Down for maintenance</title>\
<style>body{{font:1.1rem/1.5 system-ui,sans-serif;max-width:36rem;margin:18vh auto;padding:0 1.5rem;color:#222}}\
h1{{font-size:1.5rem}}</style></head>\n<body><h1>Down for maintenance</h1>\n<p>{message}</p></body></html>\n"
    )
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[&str]) -> Request {
        parse(&lines.iter().map(|l| format!("{l}\r\n")).collect::<Vec<_>>())
    }

    #[test]
    fn reads_the_message_and_escapes_it() {
        let req = request(&[
            "GET /x HTTP/1.1",
            "Host: shop.test",
            "X-Capstan-Maintenance-Message: Back%20at%205%20%E2%80%94%20%3Cb%3E",
            "x-capstan-retry-after: 120",
        ]);
        assert_eq!(req.message.as_deref(), Some("Back at 5 — <b>"));
        let out = String::from_utf8(render(&req)).unwrap();
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("\r\nRetry-After: 120\r\n"), "{out}");
        assert!(out.contains("Back at 5 — &lt;b&gt;"), "{out}");
        assert!(!out.contains("<b>"), "{out}");
    }

    #[test]
    fn json_when_asked_head_without_body_and_broken_encoding_falls_back() {
        let req = request(&[
            "HEAD / HTTP/1.1",
            "Accept: application/json",
            "X-Capstan-Maintenance-Message: a%2",
        ]);
        assert!(req.head_only && req.wants_json);
        assert_eq!(req.message, None);
        let out = String::from_utf8(render(&req)).unwrap();
        assert!(out.ends_with("\r\n\r\n"), "{out}");
        let json = String::from_utf8(render(&Request {
            head_only: false,
            ..req
        }))
        .unwrap();
        assert!(
            json.contains("\"message\":\"This site is down for maintenance.\""),
            "{json}"
        );
        assert_eq!(percent_decode("%22q%5C%22"), Some("\"q\\\"".into()));
    }
}
