//! Where a git URL leads, read the way git itself reads it (`transport.c`, `connect.c`):
//! a path on this host, a host on the network, or a remote helper. A path is a local
//! source (admin only, inside the operator's `source_dirs`); a loopback or link-local
//! host is part of this host too; a helper runs a program and is never fetched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where git would fetch a URL from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitLocation {
    /// A path of the daemon's host, as git would open it (`file://` URLs percent-decoded,
    /// host part ignored, as git does). May be relative, or empty when there is none.
    Local(String),
    /// A host on the network (`http(s)`, `ftp(s)`, `git`, `ssh` URLs and scp-like
    /// `user@host:path`).
    Remote(RemoteHost),
    /// A remote helper (`ext::`, `fd::`, `<transport>::<address>`, or a scheme git hands
    /// to `git-remote-<scheme>`), named by its transport.
    Helper(String),
    /// A network URL whose host cannot be told for sure (stray `\`, several `@`, ...).
    Unreadable,
}

/// The host part of a network git URL, normalised (numeric IPv4 forms like `127.1` or
/// `0x7f000001` read as addresses, names lower-cased without a trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteHost {
    Ip(IpAddr),
    Name(String),
}

impl RemoteHost {
    /// Whether the host is this machine or its link (loopback, link-local, unspecified,
    /// `localhost` and `*.localhost`) by its spelling alone, without asking DNS.
    pub fn is_host_local(&self) -> bool {
        match self {
            RemoteHost::Ip(ip) => is_host_local_ip(*ip),
            RemoteHost::Name(name) => name == "localhost" || name.ends_with(".localhost"),
        }
    }

    /// The name to resolve, when the host is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            RemoteHost::Name(name) => Some(name),
            RemoteHost::Ip(_) => None,
        }
    }
}

impl std::fmt::Display for RemoteHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteHost::Ip(ip) => write!(f, "{ip}"),
            RemoteHost::Name(name) => f.write_str(name),
        }
    }
}

/// Loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16, fe80::/10), unspecified
/// (0.0.0.0/8, ::, which reach this host) and their IPv4-in-IPv6 forms.
pub fn is_host_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_host_local_v4(v4),
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80 {
                return true;
            }
            // ::ffff:a.b.c.d and the deprecated ::a.b.c.d.
            v6.to_ipv4().is_some_and(is_host_local_v4)
        }
    }
}

fn is_host_local_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_link_local() || ip.octets()[0] == 0
}

/// Reads `url` as git does. Schemes compare without case here (git would hand `FILE://`
/// to a helper that does not exist, so reading it as a path only errs on the safe side).
pub fn locate(url: &str) -> GitLocation {
    if let Some(transport) = helper_transport(url) {
        return GitLocation::Helper(transport.to_string());
    }
    if let Some((scheme, rest)) = url_scheme(url) {
        return match scheme.to_ascii_lowercase().as_str() {
            "file" => GitLocation::Local(file_url_path(rest)),
            "http" | "https" | "ftp" | "ftps" | "git" | "ssh" | "git+ssh" | "ssh+git" => {
                network_host(rest)
            }
            _ => GitLocation::Helper(scheme.to_string()),
        };
    }
    if is_local_not_ssh(url) {
        return GitLocation::Local(url.to_string());
    }
    // scp-like `[user@]host:path`, or `[user@host:port]:path`.
    let authority = match url.strip_prefix('[') {
        Some(rest) => match rest.split_once("]:") {
            Some((inside, _)) => inside,
            None => return GitLocation::Unreadable,
        },
        None => url.split_once(':').map(|(a, _)| a).unwrap_or(url),
    };
    host_of_authority(authority)
}

/// git's `<transport>::<address>`: a letter, then letters, digits, `+`, `-`, `.`.
fn helper_transport(url: &str) -> Option<&str> {
    let end = url
        .char_indices()
        .find(|&(i, c)| !is_scheme_char(i == 0, c))
        .map(|(i, _)| i)
        .unwrap_or(url.len());
    (end > 0 && url[end..].starts_with("::")).then(|| &url[..end])
}

fn is_scheme_char(first: bool, c: char) -> bool {
    c.is_ascii_alphabetic() || (!first && (c.is_ascii_digit() || "+-.".contains(c)))
}

/// git's `is_url`: `scheme://…`; returns the scheme and what follows `://`.
fn url_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (is_scheme_char(true, first) && chars.all(|c| is_scheme_char(false, c)))
        .then_some((scheme, rest))
}

/// git's `url_is_local_not_ssh`: no colon, or a slash before the first colon.
fn is_local_not_ssh(url: &str) -> bool {
    match (url.find(':'), url.find('/')) {
        (None, _) => true,
        (Some(colon), Some(slash)) => slash < colon,
        (Some(_), None) => false,
    }
}

/// The path git opens for `file://<rest>`: percent-decoded first, then everything from
/// the first `/` after the host (which git ignores).
fn file_url_path(rest: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8_lossy()
        .into_owned();
    let after_host = match decoded.strip_prefix('[') {
        Some(inside) => inside.find(']').map(|i| i + 2).unwrap_or(0),
        None => 0,
    };
    decoded[after_host..]
        .find('/')
        .map(|i| decoded[after_host + i..].to_string())
        .unwrap_or_default()
}

/// The host of `scheme://<rest>`: the authority ends at the first `/`, `?` or `#`.
fn network_host(rest: &str) -> GitLocation {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    host_of_authority(&rest[..end])
}

/// `[user@]host[:port]` → the host, read as libc and URL parsers read it. Anything a
/// parser could read two ways is refused rather than guessed.
fn host_of_authority(authority: &str) -> GitLocation {
    if authority.matches('@').count() > 1 || authority.contains('\\') {
        return GitLocation::Unreadable;
    }
    let raw = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    // git percent-decodes URLs before it connects (ssh, git); curl leaves hosts alone.
    let host_port = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let suspicious = |c: char| "\\%@/".contains(c) || c.is_whitespace() || c.is_control();
    if host_port.chars().any(suspicious) {
        return GitLocation::Unreadable;
    }
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => &host_port[..=end],
            None => return GitLocation::Unreadable,
        }
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return GitLocation::Unreadable;
    }
    // The WHATWG host parser reads `127.1`, `0x7f.1` and `2130706433` as inet_aton does.
    match url::Url::parse(&format!("http://{host}/")).map(|u| u.host().map(|h| h.to_owned())) {
        Ok(Some(url::Host::Ipv4(ip))) => GitLocation::Remote(RemoteHost::Ip(IpAddr::V4(ip))),
        Ok(Some(url::Host::Ipv6(ip))) => GitLocation::Remote(RemoteHost::Ip(IpAddr::V6(ip))),
        Ok(Some(url::Host::Domain(name))) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            // `[::1]` read by ssh, or a bare number that is a v6 address in disguise.
            match name.parse::<Ipv6Addr>() {
                Ok(ip) => GitLocation::Remote(RemoteHost::Ip(IpAddr::V6(ip))),
                Err(_) => GitLocation::Remote(RemoteHost::Name(name)),
            }
        }
        _ => GitLocation::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(path: &str) -> GitLocation {
        GitLocation::Local(path.into())
    }

    fn ip(text: &str) -> GitLocation {
        GitLocation::Remote(RemoteHost::Ip(text.parse().unwrap()))
    }

    fn name(text: &str) -> GitLocation {
        GitLocation::Remote(RemoteHost::Name(text.into()))
    }

    #[test]
    fn paths_and_file_urls_are_local_as_git_reads_them() {
        for (url, want) in [
            ("/tmp/x", local("/tmp/x")),
            ("/tmp/x/.git", local("/tmp/x/.git")),
            ("../other.git", local("../other.git")),
            ("lib", local("lib")),
            ("./a:b", local("./a:b")),
            ("file:///tmp/x", local("/tmp/x")),
            ("FILE:///tmp/x", local("/tmp/x")),
            ("file://otherhost/tmp/x", local("/tmp/x")),
            ("file://tmp/gt/abc", local("/gt/abc")),
            ("file:///tmp/a%62c", local("/tmp/abc")),
            ("file:///tmp/%2e%2e/etc", local("/tmp/../etc")),
            ("file://x%2ftmp/y", local("/tmp/y")),
            ("file://", local("")),
        ] {
            assert_eq!(locate(url), want, "{url}");
        }
    }

    #[test]
    fn helpers_are_named_by_their_transport() {
        for (url, transport) in [
            ("ext::sh -c touch% /tmp/x", "ext"),
            ("fd::17", "fd"),
            ("my-helper.v2::addr", "my-helper.v2"),
            ("foo://host/x", "foo"),
        ] {
            assert_eq!(locate(url), GitLocation::Helper(transport.into()), "{url}");
        }
    }

    #[test]
    fn network_hosts_are_read_like_libc_and_url_parsers_do() {
        for (url, want) in [
            ("https://github.com/a/b.git", name("github.com")),
            ("https://GitHub.COM./a", name("github.com")),
            ("http://user:pw@127.0.0.1:8080/x.git", ip("127.0.0.1")),
            ("http://127.1/x", ip("127.0.0.1")),
            ("http://0x7f000001/x", ip("127.0.0.1")),
            ("ssh://2130706433/x", ip("127.0.0.1")),
            ("ssh://0177.0.0.1/x", ip("127.0.0.1")),
            ("git://%31%32%37.0.0.1/x", ip("127.0.0.1")),
            ("ssh://git@[::1]:22/x", ip("::1")),
            (
                "https://[::ffff:169.254.169.254]/x",
                ip("::ffff:169.254.169.254"),
            ),
            ("git@localhost:repo.git", name("localhost")),
            ("git@169.254.169.254:repo", ip("169.254.169.254")),
            ("host:path", name("host")),
            ("[git@127.0.0.1:22]:repo", ip("127.0.0.1")),
            ("http://LOCALHOST/x", name("localhost")),
            ("https://user:p%40ss@example.com/x", name("example.com")),
        ] {
            assert_eq!(locate(url), want, "{url}");
        }
        for url in [
            "http://evil.example\\@127.0.0.1/x",
            "http://a@b@127.0.0.1/x",
            "http:///x",
            "http://exa mple/x",
            "ssh://user@127.0.0.1%40evil/x",
        ] {
            assert_eq!(locate(url), GitLocation::Unreadable, "{url}");
        }
    }

    #[test]
    fn loopback_link_local_and_unspecified_hosts_are_this_host() {
        for url in [
            "http://127.0.0.1/x",
            "http://127.9.9.9/x",
            "http://0.0.0.0/x",
            "http://0/x",
            "http://169.254.169.254/latest",
            "http://[::1]/x",
            "http://[::]/x",
            "http://[fe80::1]/x",
            "http://[febf::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://localhost:3000/x",
            "http://git.localhost/x",
            "git@localhost.:x",
        ] {
            match locate(url) {
                GitLocation::Remote(host) => assert!(host.is_host_local(), "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        for url in [
            "https://github.com/x",
            "http://10.0.0.1/x",
            "http://[fec0::1]/x",
            "http://[2001:db8::1]/x",
            "http://128.0.0.1/x",
            "http://localhost.example/x",
        ] {
            match locate(url) {
                GitLocation::Remote(host) => assert!(!host.is_host_local(), "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
