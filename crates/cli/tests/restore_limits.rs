//! `capstan restore` against crafted archives, no daemon needed: a gzip bomb (a gigabyte
//! of zeros declared as a megabyte) is refused while the restore's peak memory stays
//! small, measured by the kernel for the reaped process; an entry over its kind's cap in
//! an archive without declared sizes, a file that does not match its declared SHA-256,
//! unknown entries, links and path traversal are refused; none of them changes the data
//! dir. An archive without a secret key says so instead of claiming one, and an archive
//! whose manifest declares no sizes (older capstans wrote those) still restores, saying
//! which limits it was held to.

use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most the restore of the bomb may use, measured (a debug build idles near 10 MiB).
const PEAK_BOUND: u64 = 64 * 1024 * 1024;
const GIB: u64 = 1 << 30;

enum Data {
    Bytes(Vec<u8>),
    Zeros(u64),
    Symlink(&'static str),
}

/// Writes a gzip'd tar of `entries` in order, names written into the header as given
/// (`..` included), through `gzip -1` so a gigabyte of zeros takes seconds.
fn pack(to: &Path, entries: &[(&str, Data)]) {
    let out = std::fs::File::create(to).unwrap();
    let mut gzip = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .unwrap();
    let mut tar = tar::Builder::new(gzip.stdin.take().unwrap());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o600);
        let size = match data {
            Data::Bytes(bytes) => bytes.len() as u64,
            Data::Zeros(n) => *n,
            Data::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
                0
            }
        };
        header.set_size(size);
        header.set_cksum();
        match data {
            Data::Bytes(bytes) => tar.append(&header, bytes.as_slice()),
            Data::Zeros(n) => tar.append(&header, std::io::repeat(0).take(*n)),
            Data::Symlink(_) => tar.append(&header, std::io::empty()),
        }
        .unwrap();
    }
    drop(tar.into_inner().unwrap());
    assert!(gzip.wait().unwrap().success());
}

/// A manifest like `capstan backup` writes; `declared` lists the files with their sizes
/// and SHA-256, `None` leaves them out as older capstans did.
fn manifest(declared: Option<&[(&str, &[u8])]>) -> Data {
    let mut value = json!({
        "format": 1,
        "schema_version": 1,
        "capstan_version": "0.0.9",
        "created_at": "2025-01-01T00:00:00Z",
        "instance": "capstan",
    });
    if let Some(files) = declared {
        let files: BTreeMap<&str, serde_json::Value> = files
            .iter()
            .map(|(name, bytes)| {
                let hash = hex::encode(Sha256::digest(bytes));
                (*name, json!({"size": bytes.len(), "sha256": hash}))
            })
            .collect();
        value["files"] = json!(files);
    }
    Data::Bytes(serde_json::to_vec(&value).unwrap())
}

/// Runs `capstan restore ARCHIVE --data-dir DIR [extra]` to its end: whether it
/// succeeded, its output, and its peak resident memory in bytes as the kernel counted it
/// for the reaped process (`wait4`'s `ru_maxrss`).
fn restore(archive: &Path, data_dir: &Path, extra: &[&str]) -> (bool, String, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let append = || {
        std::fs::OpenOptions::new()
            .append(true)
            .open(out.path())
            .unwrap()
    };
    // Reaped by `wait4` below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .arg("restore")
        .arg(archive)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("CAPSTAN_INSTANCE", format!("rst{}", std::process::id()))
        .stdout(append())
        .stderr(append())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; std never waits for it after this (the handle is
    // only dropped), so the pid is reaped once.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let text = std::fs::read_to_string(out.path()).unwrap();
    (ok, text, u64::try_from(usage.ru_maxrss).unwrap() * 1024)
}

/// Every path under `dir` with its content (directories as empty), to compare before and
/// after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path.clone());
                all.insert(path, Vec::new());
            } else {
                all.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    all
}

/// A data dir holding a database, a key and a route, as a live installation has.
fn installed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("capstan.db"), b"the current database").unwrap();
    std::fs::write(dir.path().join("secret.key"), b"the current key").unwrap();
    let routes = dir.path().join("proxy/dynamic");
    std::fs::create_dir_all(&routes).unwrap();
    std::fs::write(routes.join("capstan_web.yml"), b"http: {}\n").unwrap();
    dir
}

#[test]
fn a_gzip_bomb_is_refused_in_bounded_memory_and_changes_nothing() {
    let data = installed();
    let before = snapshot(data.path());
    let work = tempfile::tempdir().unwrap();
    let bomb = work.path().join("bomb.tar.gz");
    // The manifest declares a 1 MiB database; the entry is 1 GiB of zeros (~1 MB packed).
    let declared = vec![7u8; 1 << 20];
    pack(
        &bomb,
        &[
            (
                "manifest.json",
                manifest(Some(&[("capstan.db", &declared)])),
            ),
            ("capstan.db", Data::Zeros(GIB)),
        ],
    );
    let packed = std::fs::metadata(&bomb).unwrap().len();
    let (ok, out, peak) = restore(&bomb, data.path(), &["--force"]);
    println!("a {packed}-byte archive holding 1 GiB: refused with a peak RSS of {peak} bytes");
    assert!(
        !ok && out.contains("larger than") && out.contains("capstan.db"),
        "{out}"
    );
    assert!(peak < PEAK_BOUND, "peak RSS {peak} bytes: {out}");
    assert_eq!(snapshot(data.path()), before, "the data dir is unchanged");

    // Without declared sizes (an older manifest) each kind has a cap: a secret key of a
    // megabyte is refused.
    let big_key = work.path().join("big-key.tar.gz");
    pack(
        &big_key,
        &[
            ("manifest.json", manifest(None)),
            ("capstan.db", Data::Bytes(b"db".to_vec())),
            ("secret.key", Data::Zeros(1 << 20)),
        ],
    );
    let (ok, out, _) = restore(&big_key, data.path(), &["--force"]);
    assert!(
        !ok && out.contains("secret.key") && out.contains("larger than"),
        "{out}"
    );
    assert_eq!(snapshot(data.path()), before);

    // The right size with other content: refused by its SHA-256, after it was read whole
    // into the staging dir, which is gone again.
    let altered = work.path().join("altered.tar.gz");
    pack(
        &altered,
        &[
            ("manifest.json", manifest(Some(&[("capstan.db", b"abcd")]))),
            ("capstan.db", Data::Bytes(b"abce".to_vec())),
        ],
    );
    let (ok, out, _) = restore(&altered, data.path(), &["--force"]);
    assert!(!ok && out.contains("SHA-256"), "{out}");
    assert_eq!(snapshot(data.path()), before);
}

#[test]
fn unknown_entries_links_and_traversal_are_refused() {
    let data = installed();
    let before = snapshot(data.path());
    let work = tempfile::tempdir().unwrap();
    let db = b"db".to_vec();
    let crafted: [(&str, Data); 6] = [
        ("../escape", Data::Bytes(b"x".to_vec())),
        ("/tmp/escape", Data::Bytes(b"x".to_vec())),
        ("notes.txt", Data::Bytes(b"x".to_vec())),
        ("proxy/dynamic/../../x.yml", Data::Bytes(b"x".to_vec())),
        ("proxy/dynamic/.hidden.yml", Data::Bytes(b"x".to_vec())),
        ("secret.key", Data::Symlink("/etc/shadow")),
    ];
    for (i, (name, data_of)) in crafted.into_iter().enumerate() {
        let archive = work.path().join(format!("crafted{i}.tar.gz"));
        pack(
            &archive,
            &[
                ("manifest.json", manifest(None)),
                ("capstan.db", Data::Bytes(db.clone())),
                (name, data_of),
            ],
        );
        let (ok, out, _) = restore(&archive, data.path(), &["--force"]);
        assert!(!ok && out.contains("refused"), "{name}: {out}");
        assert_eq!(snapshot(data.path()), before, "{name}");
    }
    assert!(!data.path().join("../escape").exists());
}

#[test]
fn an_archive_without_a_secret_key_does_not_claim_one() {
    let work = tempfile::tempdir().unwrap();
    let (db, token) = (b"a database".to_vec(), b"a token".to_vec());
    let archive = work.path().join("no-key.tar.gz");
    pack(
        &archive,
        &[
            (
                "manifest.json",
                manifest(Some(&[("capstan.db", &db), ("admin-token", &token)])),
            ),
            ("capstan.db", Data::Bytes(db.clone())),
            ("admin-token", Data::Bytes(token.clone())),
        ],
    );
    let fresh = work.path().join("fresh");
    let (ok, out, _) = restore(&archive, &fresh, &[]);
    assert!(ok, "{out}");
    let restored = out.lines().find(|l| l.starts_with("restored")).unwrap();
    assert!(
        restored.ends_with("the database, the admin token, 0 route files"),
        "{out}"
    );
    assert!(out.contains("the archive holds no secret key"), "{out}");
    assert!(!fresh.join("secret.key").exists());
    assert_eq!(std::fs::read(fresh.join("capstan.db")).unwrap(), db);

    // An older archive (no sizes in its manifest) restores, and says what held it.
    let route = b"http: {}\n".to_vec();
    let older = work.path().join("older.tar.gz");
    pack(
        &older,
        &[
            ("./capstan.db", Data::Bytes(db.clone())),
            (
                "./proxy/dynamic/capstan_web.yml",
                Data::Bytes(route.clone()),
            ),
            ("./secret.key", Data::Bytes(b"k".to_vec())),
            ("./manifest.json", manifest(None)),
        ],
    );
    let second = work.path().join("second");
    let (ok, out, _) = restore(&older, &second, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("the database, the secret key, 1 route file")
            && out.contains("declares no sizes")
            && !out.contains("holds no secret key"),
        "{out}"
    );
    let routed = second.join("proxy/dynamic/capstan_web.yml");
    assert_eq!(std::fs::read(routed).unwrap(), route);
}
