//! A real OpenSSH server for tests (Debian's `openssh-server`): `/usr/sbin/sshd -D -e` as
//! root on a free port, with its own freshly generated ed25519 host key, an
//! `authorized_keys` holding the key a test gives, and unix-socket forwarding allowed (what
//! Capstan's SSH transport uses to reach a remote engine). On loopback, or inside a network
//! namespace (`nsenter --net=…`) bound to that namespace's address, so it acts as the SSH
//! side of a second host. Killed with every session it started when dropped.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to answer on its port.
const READY: Duration = Duration::from_secs(10);

/// Why an sshd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SshdError {
    #[error("{SSHD} is missing: apt-get install -y --no-install-recommends openssh-server")]
    Missing,
    #[error("could not run {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{program} failed: {output}")]
    Failed { program: String, output: String },
    #[error("sshd did not answer on {address} within {READY:?}; its log:\n{log}")]
    NotReady { address: SocketAddr, log: String },
}

/// Where and how to start sshd.
#[derive(Debug, Clone)]
pub struct SshdConfig {
    /// The line for `authorized_keys` (`ssh-ed25519 AAAA… comment`).
    pub authorized_key: String,
    /// The address it listens on.
    pub address: IpAddr,
    /// A network namespace to run in (`/var/run/netns/NAME`); `address` must be one of
    /// that namespace's.
    pub netns: Option<PathBuf>,
    /// The port (e.g. 22 inside a namespace); a free one when `None`.
    pub port: Option<u16>,
}

impl SshdConfig {
    /// sshd on 127.0.0.1, accepting `authorized_key`.
    pub fn loopback(authorized_key: &str) -> Self {
        Self {
            authorized_key: authorized_key.to_string(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
            port: None,
        }
    }

    /// sshd inside the network namespace `netns`, listening on `address`.
    pub fn in_netns(authorized_key: &str, netns: &Path, address: IpAddr) -> Self {
        Self {
            authorized_key: authorized_key.to_string(),
            address,
            netns: Some(netns.to_path_buf()),
            port: None,
        }
    }

    /// On `port` instead of a free one.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// A running sshd; log in as `root` with the authorized key.
pub struct Sshd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    address: SocketAddr,
    host_key_fingerprint: String,
    config: SshdConfig,
}

impl Sshd {
    /// sshd on a free loopback port accepting `authorized_key`.
    pub fn start(authorized_key: &str) -> Result<Sshd, SshdError> {
        Sshd::start_with(SshdConfig::loopback(authorized_key))
    }

    /// sshd as `config` says, on its port or a free one (tried again on another port if
    /// the one picked was taken meanwhile).
    pub fn start_with(config: SshdConfig) -> Result<Sshd, SshdError> {
        if !Path::new(SSHD).is_file() {
            return Err(SshdError::Missing);
        }
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd").map_err(|e| spawn_error("mkdir /run/sshd", e))?;
        let dir = tempfile::Builder::new()
            .prefix("capstan-sshd-")
            .tempdir()
            .map_err(|e| spawn_error("tempdir", e))?;
        let host_key_fingerprint = generate_host_key(dir.path())?;
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{}\n", config.authorized_key.trim()),
        )
        .map_err(|e| spawn_error("write authorized_keys", e))?;
        let mut last = None;
        let attempts = if config.port.is_some() { 1 } else { 5 };
        for _ in 0..attempts {
            let port = config.port.unwrap_or_else(pick_port);
            let address = SocketAddr::new(config.address, port);
            match spawn(dir.path(), address, &config) {
                Ok(child) => {
                    return Ok(Sshd {
                        child: Some(child),
                        dir,
                        address,
                        host_key_fingerprint,
                        config,
                    })
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(SshdError::Missing))
    }

    /// The host it listens on (an IP address, as text).
    pub fn host(&self) -> String {
        self.address.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The user to log in as.
    pub fn user(&self) -> &'static str {
        "root"
    }

    /// The host key's fingerprint as `ssh-keygen -l -E sha256` prints it (`SHA256:…`).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Adds a line to `authorized_keys` (sshd reads it at each log-in), e.g. the key a
    /// server was given when it was added.
    pub fn authorize(&self, authorized_key: &str) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))?;
        writeln!(file, "{}", authorized_key.trim())
    }

    /// How many client connections sshd is serving right now (its per-connection
    /// children).
    pub fn connections(&self) -> usize {
        self.child
            .as_ref()
            .map_or(0, |child| children_of(child.id()).len())
    }

    /// Kills every session sshd serves (their TCP connections drop at once) but keeps
    /// sshd listening, as a network blip would leave it.
    pub fn drop_connections(&self) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        for session in children_of(child.id()) {
            kill_all(descendants(session));
        }
    }

    /// Kills sshd and every session it started (their connections drop at once).
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_tree(child);
        }
    }

    /// Starts sshd again after [`Sshd::kill`], with the same host key, keys and address,
    /// as a server that comes back would.
    pub fn restart(&mut self) -> Result<(), SshdError> {
        self.kill();
        self.child = Some(spawn(self.dir.path(), self.address, &self.config)?);
        Ok(())
    }
}

/// Kills `child` and all its descendants.
fn kill_tree(mut child: Child) {
    // The listener first, so it starts no new session meanwhile.
    kill_all(descendants(child.id()));
    let _ = child.wait();
}

/// `pid` and every process below it, parents before children.
fn descendants(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    let mut next = 0;
    while next < pids.len() {
        pids.extend(children_of(pids[next]));
        next += 1;
    }
    pids
}

fn kill_all(pids: Vec<u32>) {
    for pid in pids {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) on a pid this fixture started, or a descendant of it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts sshd on `address` with its files in `dir` and waits for its banner; kills it
/// if it does not answer.
fn spawn(dir: &Path, address: SocketAddr, config: &SshdConfig) -> Result<Child, SshdError> {
    let config_path = dir.join("sshd_config");
    fs::write(&config_path, sshd_config(dir, address))
        .map_err(|e| spawn_error("write sshd_config", e))?;
    let log = fs::File::create(dir.join("sshd.log")).map_err(|e| spawn_error("sshd.log", e))?;
    let mut command = match &config.netns {
        Some(netns) => {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net={}", netns.display()))
                .arg("--")
                .arg(SSHD);
            command
        }
        None => Command::new(SSHD),
    };
    command
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = command.spawn().map_err(|e| spawn_error(SSHD, e))?;
    let deadline = Instant::now() + READY;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if banner(address) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_tree(child);
    Err(SshdError::NotReady {
        address,
        log: read_log(dir),
    })
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
}

fn spawn_error(program: &str, err: impl std::fmt::Display) -> SshdError {
    SshdError::Spawn {
        program: program.to_string(),
        reason: err.to_string(),
    }
}

/// A port free on this host's loopback right now (inside a namespace, likely free too;
/// a taken one makes sshd exit and another is tried).
fn pick_port() -> u16 {
    crate::free_port()
}

/// Generates `dir/host_ed25519` and returns its fingerprint.
fn generate_host_key(dir: &Path) -> Result<String, SshdError> {
    let key = dir.join("host_ed25519");
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "capstan-test-host",
            "-f",
        ])
        .arg(&key))?;
    let listed = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(key.with_extension("pub")))?;
    listed
        .split_whitespace()
        .find(|word| word.starts_with("SHA256:"))
        .map(str::to_string)
        .ok_or(SshdError::Failed {
            program: "ssh-keygen -l".into(),
            output: listed,
        })
}

fn run(command: &mut Command) -> Result<String, SshdError> {
    let program = format!("{:?}", command.get_program());
    let output = command.output().map_err(|e| spawn_error(&program, e))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(SshdError::Failed {
            program,
            output: format!("{text}{}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(text)
}

fn sshd_config(dir: &Path, address: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        "ListenAddress {ip}\nPort {port}\nHostKey {dir}/host_ed25519\n\
         AuthorizedKeysFile {dir}/authorized_keys\nPidFile {dir}/sshd.pid\n\
         PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         StrictModes no\nAllowStreamLocalForwarding yes\n\
         X11Forwarding no\nPermitTTY no\nLogLevel VERBOSE\nMaxStartups 100:30:200\n",
        ip = address.ip(),
        port = address.port(),
    )
}

/// Whether something on `address` sends an SSH banner.
fn banner(address: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("SSH-2.0-")
}

/// The pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| parent_of(*candidate) == Some(pid))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so read after
    // the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
