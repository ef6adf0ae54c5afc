//! The backup archive's layout: the entries it may hold, the manifest that declares each
//! other entry's size and SHA-256, the size cap of each kind of entry (for archives whose
//! manifest declares no sizes), and the bounded copy that streams an entry to disk while
//! holding it to its limit.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The archive layout this build writes and reads.
pub(super) const FORMAT: u32 = 1;
pub(super) const MANIFEST: &str = "manifest.json";
pub(super) const DB: &str = "capstan.db";
pub(super) const SECRET_KEY: &str = "secret.key";
pub(super) const ADMIN_TOKEN: &str = "admin-token";
pub(super) const PROXY_DATA: &str = "proxy-data.tar";
pub(super) const ROUTES_DIR: &str = "proxy/dynamic";
/// At most this many route files in one archive.
pub(super) const MAX_ROUTES: usize = 10_000;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// The copy buffer: the most of an entry held in memory at once.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub format: u32,
    pub schema_version: i64,
    pub capstan_version: String,
    pub created_at: String,
    pub instance: String,
    /// The size and SHA-256 of every other entry, by its path in the archive. Archives
    /// written before these were recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, Facts>>,
}

/// An entry's size and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Facts {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// What an archive entry is, from its path; any other path is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Entry {
    Manifest,
    Database,
    SecretKey,
    AdminToken,
    /// A route file, by its file name (`<name>.yml`, no directory, not hidden).
    Route(String),
    ProxyData,
}

impl Entry {
    /// The entry at `path` in the archive (`./name` is `name`, as `tar -C dir .` writes).
    pub fn parse(path: &str) -> Option<Entry> {
        let path = path.strip_prefix("./").unwrap_or(path);
        match path {
            MANIFEST => Some(Entry::Manifest),
            DB => Some(Entry::Database),
            SECRET_KEY => Some(Entry::SecretKey),
            ADMIN_TOKEN => Some(Entry::AdminToken),
            PROXY_DATA => Some(Entry::ProxyData),
            _ => {
                let file = path.strip_prefix(ROUTES_DIR)?.strip_prefix('/')?;
                route_file_name(file).then(|| Entry::Route(file.to_string()))
            }
        }
    }

    /// Whether `path` is a directory entry a tar of the archive's files may carry.
    pub fn is_known_dir(path: &str) -> bool {
        let path = path
            .strip_prefix("./")
            .unwrap_or(path)
            .trim_end_matches('/');
        matches!(path, "" | "." | "proxy") || path == ROUTES_DIR
    }

    /// The entry's path in the archive.
    pub fn path(&self) -> String {
        match self {
            Entry::Manifest => MANIFEST.into(),
            Entry::Database => DB.into(),
            Entry::SecretKey => SECRET_KEY.into(),
            Entry::AdminToken => ADMIN_TOKEN.into(),
            Entry::Route(file) => format!("{ROUTES_DIR}/{file}"),
            Entry::ProxyData => PROXY_DATA.into(),
        }
    }

    /// The most an entry of this kind may hold when the manifest declares no size (and
    /// always, for the manifest itself).
    pub fn cap(&self) -> u64 {
        match self {
            Entry::Manifest => 4 * MIB,
            Entry::Database => 16 * GIB,
            Entry::SecretKey | Entry::AdminToken => 4 * KIB,
            Entry::Route(_) => MIB,
            Entry::ProxyData => 256 * MIB,
        }
    }
}

/// The caps of [`Entry::cap`] in words, for the restore's report.
pub(super) fn caps_in_words() -> String {
    format!(
        "database {}, secret key and admin token {} each, route files {} each (at most {MAX_ROUTES}), the proxy's ACME store {}",
        human(Entry::Database.cap()),
        human(Entry::SecretKey.cap()),
        human(Entry::Route(String::new()).cap()),
        human(Entry::ProxyData.cap()),
    )
}

/// A size in the largest binary unit that divides it.
pub(super) fn human(bytes: u64) -> String {
    for (unit, name) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.checked_rem(unit) == Some(0) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

/// Whether `file` may name a route file: `<something>.yml`, no directory, not hidden.
fn route_file_name(file: &str) -> bool {
    file.len() > ".yml".len()
        && file.ends_with(".yml")
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Copies `from` to `to` through a fixed buffer, hashing as it goes, and reads at most
/// one byte past `limit`: `None` when `from` holds more than `limit` bytes (what was
/// written then is to be thrown away).
pub(super) fn copy_limited(
    from: &mut impl Read,
    to: &mut impl Write,
    limit: u64,
) -> std::io::Result<Option<Facts>> {
    let mut bounded = from.take(limit.saturating_add(1));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size: u64 = 0;
    loop {
        let n = match bounded.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        size += n as u64;
        if size > limit {
            return Ok(None);
        }
        hash.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
    Ok(Some(Facts {
        size,
        sha256: hex::encode(hash.finalize()),
    }))
}

/// The size and SHA-256 of a file, read through a fixed buffer.
pub(super) fn facts_of(path: &std::path::Path) -> std::io::Result<Facts> {
    let mut file = std::fs::File::open(path)?;
    let facts = copy_limited(&mut file, &mut std::io::sink(), u64::MAX - 1)?;
    facts.ok_or_else(|| std::io::Error::other("a file larger than 16 EiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_entries_parse() {
        assert_eq!(Entry::parse("./capstan.db"), Some(Entry::Database));
        assert_eq!(Entry::parse("manifest.json"), Some(Entry::Manifest));
        assert_eq!(
            Entry::parse("proxy/dynamic/cs_web.yml"),
            Some(Entry::Route("cs_web.yml".into()))
        );
        for refused in [
            "../capstan.db",
            "/capstan.db",
            "proxy/dynamic/../../x.yml",
            "proxy/dynamic/a/b.yml",
            "proxy/dynamic/.hidden.yml",
            "proxy/dynamic/.yml",
            "proxy/dynamic/x.yaml",
            "proxy/dynamic/x\n.yml",
            "notes.txt",
            "./secret.key/x",
        ] {
            assert_eq!(Entry::parse(refused), None, "{refused:?}");
        }
        assert!(Entry::is_known_dir("./proxy/dynamic/"));
        assert!(!Entry::is_known_dir("etc/"));
    }

    #[test]
    fn a_copy_stops_one_byte_past_its_limit() {
        // An endless source: the copy must not read it whole.
        let mut endless = std::io::repeat(0);
        let mut out = Vec::new();
        assert_eq!(copy_limited(&mut endless, &mut out, 100_000).unwrap(), None);
        assert!(out.len() <= 100_000, "{}", out.len());

        let mut exact = std::io::repeat(7).take(100_000);
        let mut out = Vec::new();
        let facts = copy_limited(&mut exact, &mut out, 100_000)
            .unwrap()
            .unwrap();
        assert_eq!(facts.size, 100_000);
        assert_eq!(out.len(), 100_000);
        assert_eq!(facts.sha256, hex::encode(Sha256::digest(&out)));
    }

    #[test]
    fn sizes_read_as_words() {
        assert_eq!(human(16 * GIB), "16 GiB");
        assert_eq!(human(4 * KIB), "4 KiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
