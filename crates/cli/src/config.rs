//! The daemon's configuration, layered: defaults, then `/etc/capstan/capstan.toml` (or
//! `--config`), then `CAPSTAN_*` environment variables, then flags.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    pub proxy_http_port: u16,
    pub proxy_https_port: u16,
    /// `unix:///path`, `tcp://host:port`; unset means the local socket.
    pub docker_host: Option<String>,
    /// Prefix of every Docker object this daemon owns.
    pub instance: String,
    /// The Traefik image the proxy runs.
    pub proxy_image: String,
    /// The static probe binary mounted into app containers; default: next to `capstan`.
    pub probe_bin: Option<PathBuf>,
    /// Deployments that may run at once.
    pub build_slots: usize,
    /// Images kept per app for rollback.
    pub keep_images: usize,
    /// Contact address for Let's Encrypt.
    pub acme_email: Option<String>,
    /// The ACME directory URL certificates are asked from; unset: Let's Encrypt's.
    /// For an operator's own ACME server (or a test CA such as pebble).
    pub acme_ca_server: Option<String>,
    /// A PEM file of CA certificates the proxy's ACME client trusts for that server's
    /// HTTPS, besides the system's.
    pub acme_ca_certificates: Option<PathBuf>,
    /// How long the proxy batches configuration changes.
    pub proxy_throttle: String,
    /// Directories under which an admin may deploy local source directories
    /// (`{"source": {"path": ...}}`); none by default. In the environment, `:`-separated.
    #[serde(deserialize_with = "paths_or_list")]
    pub source_dirs: Vec<PathBuf>,
    /// A git fetch that prints nothing for this long is killed (with its ssh).
    pub fetch_idle_secs: u64,
    /// Whether a repo's submodules may be fetched from a loopback or link-local address
    /// of this host (127.0.0.0/8, ::1, localhost, 169.254.0.0/16, fe80::/10); off.
    pub allow_private_submodules: bool,
    /// The most a local source directory's copy may hold, in MiB (what its
    /// `.dockerignore` leaves out of the build is not copied).
    pub local_source_max_mb: u64,
    /// The longest time limit a one-off command (`capstan run`) may ask for, in seconds
    /// (the default limit is 600 s, or this when lower).
    pub run_timeout_max_secs: u32,
    /// How long connecting to a server over SSH, opening a channel on it, or a silent
    /// connection may take before the calls waiting on it fail, in seconds.
    pub ssh_timeout_secs: u64,
    /// The engine builder builds use: `auto` (BuildKit where the engine offers it),
    /// `buildkit` (refuse to start without it) or `classic`.
    pub builder: capstan_engine::Builder,
    /// Scheduled backups of Capstan's own state (`[backup]` in the file).
    pub backup: BackupConfig,
    /// Periodic cleanup of this instance's objects (`[cleanup]` in the file).
    pub cleanup: CleanupConfig,
    /// How long a notification that was not delivered waits before each next try, in
    /// seconds; after the last it is given up (failed, with its error).
    pub notify_retry_secs: Vec<u64>,
    /// The panel's public address (`https://capstan.example.com`): commit statuses link a
    /// failed or queued deployment to its page there. Unset: they link to the app's domain.
    pub public_url: Option<String>,
}

/// `[cleanup]`: how often the daemon removes its own leftovers, and the disk use at which
/// it cleans harder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// How often (`30m`, `1h`, `10s`).
    pub every: String,
    /// Used space of the engine's data root, in percent, from which each app keeps only
    /// its live and previous release.
    pub disk_threshold_percent: f64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            every: "1h".into(),
            disk_threshold_percent: 85.0,
        }
    }
}

impl CleanupConfig {
    pub fn policy(&self) -> anyhow::Result<capstan_deploy::CleanupPolicy> {
        let every = capstan_core::duration::parse_duration(&self.every)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "cleanup.every {:?} is not a duration like 30m or 1h",
                    self.every
                )
            })?;
        if !(0.0..=100.0).contains(&self.disk_threshold_percent) {
            bail!("cleanup.disk_threshold_percent must be between 0 and 100");
        }
        Ok(capstan_deploy::CleanupPolicy {
            every,
            disk_threshold_percent: self.disk_threshold_percent,
        })
    }
}

/// `[backup]`: when the daemon writes a backup archive by itself, and how many it keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// A cron expression (5 fields, or 6 with seconds first), in UTC; unset: no schedule.
    pub schedule: Option<String>,
    /// Archives kept in `dir`; older ones are removed after each scheduled backup.
    pub keep: usize,
    /// Where scheduled archives go; default `<data_dir>/backups`.
    pub dir: Option<PathBuf>,
}

/// A list of paths, or one `:`-separated string of them (as an environment variable).
fn paths_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Paths {
        One(String),
        Many(Vec<PathBuf>),
    }
    Ok(match Paths::deserialize(d)? {
        Paths::One(text) => std::env::split_paths(&text)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        Paths::Many(list) => list,
    })
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: "/var/lib/capstan".into(),
            listen: "127.0.0.1:8000".into(),
            proxy_http_port: 80,
            proxy_https_port: 443,
            docker_host: None,
            instance: "capstan".into(),
            proxy_image: "traefik:v3.7".into(),
            probe_bin: None,
            build_slots: 2,
            keep_images: 5,
            acme_email: None,
            acme_ca_server: None,
            acme_ca_certificates: None,
            proxy_throttle: "200ms".into(),
            source_dirs: Vec::new(),
            fetch_idle_secs: 30,
            allow_private_submodules: false,
            local_source_max_mb: 1024,
            run_timeout_max_secs: 3600,
            ssh_timeout_secs: 30,
            builder: capstan_engine::Builder::Auto,
            backup: BackupConfig {
                keep: 7,
                ..BackupConfig::default()
            },
            cleanup: CleanupConfig::default(),
            notify_retry_secs: vec![10, 30, 120, 600, 3600],
            public_url: None,
        }
    }
}

/// Flags of `capstan serve`; each overrides the file and the environment.
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct ServeArgs {
    /// Configuration file (default /etc/capstan/capstan.toml, if it exists).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where the database, secret key, admin token, API URL and routes live [env
    /// CAPSTAN_DATA_DIR; default /var/lib/capstan].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The address the API and the panel listen on [env CAPSTAN_LISTEN; default
    /// 127.0.0.1:8000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The host port the proxy serves HTTP on [env CAPSTAN_PROXY_HTTP_PORT; default 80].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_http_port: Option<u16>,
    /// The host port the proxy serves HTTPS on [env CAPSTAN_PROXY_HTTPS_PORT; default 443].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_https_port: Option<u16>,
    /// The Docker engine: unix:///path or tcp://host:port [env CAPSTAN_DOCKER_HOST, else
    /// DOCKER_HOST; default the local socket].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
    /// Prefix of every Docker object this daemon owns, so several daemons can share one
    /// engine [env CAPSTAN_INSTANCE; default capstan].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The Traefik image the proxy runs [env CAPSTAN_PROXY_IMAGE; default traefik:v3.7].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_image: Option<String>,
    /// The static health probe mounted into app containers [env CAPSTAN_PROBE_BIN; default
    /// capstan-probe next to capstan].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_bin: Option<PathBuf>,
    /// Deployments that may run at once [env CAPSTAN_BUILD_SLOTS; default 2].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_slots: Option<usize>,
    /// Images kept per app for rollback [env CAPSTAN_KEEP_IMAGES; default 5].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_images: Option<usize>,
    /// Contact address for Let's Encrypt [env CAPSTAN_ACME_EMAIL; default none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<String>,
    /// The ACME directory URL certificates are asked from (default: Let's Encrypt).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_ca_server: Option<String>,
    /// A PEM file of CA certificates the proxy trusts for that ACME server.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_ca_certificates: Option<PathBuf>,
    /// A directory under which local sources may be deployed (repeat for several).
    #[arg(long = "source-dir")]
    #[serde(rename = "source_dirs", skip_serializing_if = "Vec::is_empty")]
    pub source_dirs: Vec<PathBuf>,
    /// A git fetch that prints nothing for this many seconds is killed with its ssh [env
    /// CAPSTAN_FETCH_IDLE_SECS; default 30].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_idle_secs: Option<u64>,
    /// Let submodules be fetched from this host's loopback or link-local addresses.
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_private_submodules: Option<bool>,
    /// Seconds connecting to a server over SSH, a channel on it, or a silent connection
    /// may take [env CAPSTAN_SSH_TIMEOUT_SECS; default 30].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_timeout_secs: Option<u64>,
}

const KEYS: [&str; 22] = [
    "builder",
    "data_dir",
    "listen",
    "proxy_http_port",
    "proxy_https_port",
    "docker_host",
    "instance",
    "proxy_image",
    "probe_bin",
    "build_slots",
    "keep_images",
    "acme_email",
    "acme_ca_server",
    "acme_ca_certificates",
    "proxy_throttle",
    "source_dirs",
    "fetch_idle_secs",
    "allow_private_submodules",
    "local_source_max_mb",
    "run_timeout_max_secs",
    "ssh_timeout_secs",
    "public_url",
];

/// An http(s) address without credentials, query or fragment.
fn check_public_url(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("public_url: {url:?} is not a URL: {e}"))?;
    let plain = parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() || !plain {
        bail!(
            "public_url: {url:?} must be an http(s) address without credentials, query or fragment"
        );
    }
    Ok(())
}

impl Config {
    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match &args.config {
            Some(path) => {
                if !path.is_file() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("/etc/capstan/capstan.toml")),
        }
        // DOCKER_HOST is honoured as a fallback for CAPSTAN_DOCKER_HOST.
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            figment = figment.merge(Serialized::default("docker_host", host));
        }
        figment = figment
            .merge(Env::prefixed("CAPSTAN_").only(&KEYS))
            .merge(Serialized::defaults(args));
        let config: Config = figment.extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        capstan_core::AppName::parse(&self.instance)
            .map_err(|e| anyhow::anyhow!("instance: {}", e.reason))?;
        if let Some(schedule) = &self.backup.schedule {
            crate::backup::parse_schedule(schedule)?;
            if self.backup.keep == 0 {
                bail!("backup.keep must be at least 1");
            }
        }
        self.cleanup.policy()?;
        if self.build_slots == 0 {
            bail!("build_slots must be at least 1");
        }
        if self.fetch_idle_secs == 0 {
            bail!("fetch_idle_secs must be at least 1");
        }
        if let Some(dir) = self.source_dirs.iter().find(|d| !d.is_absolute()) {
            bail!("source_dirs: {} must be an absolute path", dir.display());
        }
        if self.local_source_max_mb == 0 {
            bail!("local_source_max_mb must be at least 1");
        }
        if self.run_timeout_max_secs == 0 {
            bail!("run_timeout_max_secs must be at least 1");
        }
        if !(1..=600).contains(&self.ssh_timeout_secs) {
            bail!("ssh_timeout_secs must be between 1 and 600");
        }
        if self.notify_retry_secs.len() > 20 || self.notify_retry_secs.iter().any(|s| *s > 86_400) {
            bail!("notify_retry_secs takes at most 20 delays of at most 86400 seconds each");
        }
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        if self.keep_images == 0 {
            bail!("keep_images must be at least 1 (the live image is always kept)");
        }
        Ok(())
    }

    /// What deployments may fetch or copy as their source, beyond `source_dirs`.
    pub fn source_limits(&self) -> capstan_deploy::SourceLimits {
        capstan_deploy::SourceLimits {
            allow_private_submodules: self.allow_private_submodules,
            local_source_max_bytes: self.local_source_max_mb.saturating_mul(1024 * 1024),
        }
    }

    /// What one-off commands are held to.
    pub fn run_limits(&self) -> capstan_deploy::RunLimits {
        capstan_deploy::RunLimits {
            max_timeout_secs: self.run_timeout_max_secs,
            ..Default::default()
        }
    }

    pub fn probe_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.probe_bin {
            return Ok(path.clone());
        }
        let exe = std::env::current_exe().context("cannot find the capstan binary")?;
        Ok(exe.with_file_name("capstan-probe"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn every_serve_flag_is_described() {
        use clap::Args;
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        let undescribed: Vec<_> = command
            .get_arguments()
            .filter(|arg| arg.get_help().is_none())
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert!(undescribed.is_empty(), "no help text: {undescribed:?}");
    }

    #[test]
    fn layers_defaults_file_env_and_flags_in_that_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "capstan.toml",
                "listen = \"127.0.0.1:9000\"\ninstance = \"fromfile\"\nproxy_http_port = 8081\n",
            )?;
            jail.set_env("CAPSTAN_INSTANCE", "fromenv");
            jail.set_env("CAPSTAN_UNRELATED_SETTING", "ignored");
            let args = ServeArgs {
                config: Some("capstan.toml".into()),
                proxy_http_port: Some(8082),
                ..Default::default()
            };
            let config = Config::load(&args).map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "127.0.0.1:9000", "file over default");
            assert_eq!(config.instance, "fromenv", "env over file");
            assert_eq!(config.proxy_http_port, 8082, "flag over file");
            assert_eq!(config.proxy_https_port, 443, "default");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "lisen = \"x\"\n")?;
            let args = ServeArgs {
                config: Some("bad.toml".into()),
                ..Default::default()
            };
            let err = format!("{:#}", Config::load(&args).unwrap_err());
            assert!(err.contains("lisen"), "{err}");
            jail.create_file("bad2.toml", "instance = \"Not Valid\"\n")?;
            let args = ServeArgs {
                config: Some("bad2.toml".into()),
                ..Default::default()
            };
            let err = format!("{:#}", Config::load(&args).unwrap_err());
            assert!(err.contains("instance"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn source_limits_default_to_closed_and_come_from_file_env_and_flag() {
        figment::Jail::expect_with(|jail| {
            let defaults = Config::load(&ServeArgs::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                defaults.source_limits(),
                capstan_deploy::SourceLimits::default()
            );
            assert!(!defaults.allow_private_submodules);

            jail.create_file(
                "c.toml",
                "local_source_max_mb = 8
",
            )?;
            jail.set_env("CAPSTAN_ALLOW_PRIVATE_SUBMODULES", "true");
            let args = ServeArgs {
                config: Some("c.toml".into()),
                ..Default::default()
            };
            let limits = Config::load(&args)
                .map_err(|e| e.to_string())?
                .source_limits();
            assert!(limits.allow_private_submodules);
            assert_eq!(limits.local_source_max_bytes, 8 * 1024 * 1024);
            let args = ServeArgs {
                config: Some("c.toml".into()),
                allow_private_submodules: Some(false),
                ..Default::default()
            };
            let config = Config::load(&args).map_err(|e| e.to_string())?;
            assert!(!config.allow_private_submodules, "the flag wins");

            jail.create_file(
                "zero.toml",
                "local_source_max_mb = 0
",
            )?;
            let args = ServeArgs {
                config: Some("zero.toml".into()),
                ..Default::default()
            };
            let err = format!("{:#}", Config::load(&args).unwrap_err());
            assert!(err.contains("local_source_max_mb"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_run_time_limit_comes_from_file_and_env_and_is_never_zero() {
        figment::Jail::expect_with(|jail| {
            let defaults = Config::load(&ServeArgs::default()).map_err(|e| e.to_string())?;
            assert_eq!(defaults.run_limits(), capstan_deploy::RunLimits::default());
            assert_eq!(defaults.run_limits().max_timeout_secs, 3600);
            jail.create_file("r.toml", "run_timeout_max_secs = 120\n")?;
            let args = ServeArgs {
                config: Some("r.toml".into()),
                ..Default::default()
            };
            let config = Config::load(&args).map_err(|e| e.to_string())?;
            assert_eq!(config.run_limits().max_timeout_secs, 120);
            jail.set_env("CAPSTAN_RUN_TIMEOUT_MAX_SECS", "0");
            let err = format!("{:#}", Config::load(&args).unwrap_err());
            assert!(err.contains("run_timeout_max_secs"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_public_url_is_read_from_the_environment_and_checked() {
        figment::Jail::expect_with(|jail| {
            let defaults = Config::load(&ServeArgs::default()).map_err(|e| e.to_string())?;
            assert_eq!(defaults.public_url, None);
            jail.set_env("CAPSTAN_PUBLIC_URL", "https://capstan.example.com");
            let config = Config::load(&ServeArgs::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                config.public_url.as_deref(),
                Some("https://capstan.example.com")
            );
            for bad in [
                "capstan.example.com",
                "ftp://x",
                "https://u:p@x",
                "https://x/?a=1",
            ] {
                jail.set_env("CAPSTAN_PUBLIC_URL", bad);
                let err = format!("{:#}", Config::load(&ServeArgs::default()).unwrap_err());
                assert!(err.contains("public_url"), "{bad}: {err}");
            }
            Ok(())
        });
    }
}
