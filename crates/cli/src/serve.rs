//! `capstan serve`: wires store, engine, proxy, deployer and API together, and shuts
//! down gracefully on SIGTERM or Ctrl-C.

use crate::config::{Config, ServeArgs};
use anyhow::Context;
use capstan_compose::proxy::{render_static_config, ProxySettings, DYNAMIC_DIR};
use capstan_deploy::target::{HostSetup, LocalTarget, Router, Target};
use capstan_deploy::{DeploySettings, Deployer};
use capstan_engine::proxy::{ProxyApi, ProxySpec, RouteFiles};
use capstan_engine::Engine;
use capstan_store::Store;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,bollard=warn".into()),
        )
        .init();
    let config = Config::load(&args)?;
    let data_dir = open_data_dir(&config)?;
    let store = Store::open(&data_dir.join("capstan.db")).await?;
    ensure_admin_token(&store, &data_dir).await?;
    ensure_setup_code(&store, &data_dir).await?;

    let (target, setup) = local_host(&config, &data_dir).await?;
    let secret_key = capstan_store::SecretKey::load_or_create(&data_dir.join("secret.key"))?;
    let statuses_key = secret_key.clone();
    let settings = deploy_settings(&config, &data_dir, secret_key);
    let deployer = Deployer::new(store, std::sync::Arc::new(target), settings);
    deployer.set_run_limits(config.run_limits());
    // Servers are prepared as this host was: the same probe and proxy.
    let options = capstan_deploy::servers::ProxyOptions {
        acme_email: config.acme_email.clone(),
        acme_ca_server: config.acme_ca_server.clone(),
        throttle: config.proxy_throttle.clone(),
    };
    let proxy_spec = setup.proxy.clone();
    deployer.set_host_setup(setup, options);
    deployer.recover().await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = spawn_background(&deployer, &config, proxy_spec, stop_rx)?;
    background.push(spawn_commit_statuses(
        &deployer,
        statuses_key,
        config.public_url.clone(),
        stop_tx.subscribe(),
    ));
    let backups_on_demand = std::sync::Arc::new(crate::backup::DaemonBackups::new(
        config.clone(),
        deployer.store().clone(),
    ));
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    tracing::info!(listen = %local_addr, "API listening");
    write_private(
        &data_dir.join(crate::client::API_URL_FILE),
        format!("{}\n", api_url(local_addr)),
    )?;
    capstan_web::serve(
        listener,
        capstan_web::AppState {
            deployer,
            accounts: capstan_web::accounts::Accounts::new(Some(&data_dir)),
            backups: Some(backups_on_demand),
        },
        shutdown_signal(),
    )
    .await?;
    tracing::info!("shutting down: no new deployments are started");
    let _ = stop_tx.send(true);
    for task in background {
        let _ = task.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Commit statuses back to each app's forge, from the deploy bus, until `stop` turns true;
/// deployments' pages are linked under `public_url` when it is set.
fn spawn_commit_statuses(
    deployer: &Deployer,
    secret_key: capstan_store::SecretKey,
    public_url: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let reporter =
        capstan_forge_status::Reporter::new(deployer.store().clone(), secret_key, public_url);
    capstan_forge_status::spawn(deployer, reporter, stop)
}

/// The data dir, created with mode 0700 if missing, as a canonical path.
fn open_data_dir(config: &Config) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(config.data_dir.canonicalize()?)
}

/// The engine beside the daemon as a target, prepared (control network, probe, page
/// server, proxy answering), and what it was prepared with.
async fn local_host(config: &Config, data_dir: &Path) -> anyhow::Result<(LocalTarget, HostSetup)> {
    let mut engine = Engine::connect(config.docker_host.as_deref(), &config.instance).await?;
    engine.use_builder(config.builder)?;
    let builder = if engine.builds_with_buildkit() {
        "BuildKit"
    } else {
        "classic"
    };
    tracing::info!("builds use the engine's {builder} builder");
    let probe_path = config.probe_path()?;
    let probe = std::fs::read(&probe_path).with_context(|| {
        format!(
            "cannot read the health probe binary {} (build it with scripts/build-probe.sh or set --probe-bin)",
            probe_path.display()
        )
    })?;
    let routes = RouteFiles::new(
        data_dir.join("proxy/dynamic"),
        data_dir.join("proxy/staging"),
    )?;
    let proxy = proxy_spec(config, &routes)?;
    let target = LocalTarget::new(engine, routes, ProxyApi::new(String::new()));
    let setup = HostSetup { probe, proxy };
    target.prepare(&setup).await?;
    tracing::info!(
        http_port = config.proxy_http_port,
        https_port = config.proxy_https_port,
        api = target.proxy_address(),
        "proxy {}-proxy is up",
        config.instance
    );
    Ok((target, setup))
}

/// What the pipeline needs from the configuration.
fn deploy_settings(
    config: &Config,
    data_dir: &Path,
    secret_key: capstan_store::SecretKey,
) -> DeploySettings {
    DeploySettings {
        workspace_dir: data_dir.join("workspaces"),
        build_slots: config.build_slots,
        keep_images: config.keep_images,
        secret_key,
        fetch_limits: capstan_deploy::FetchLimits {
            total: Duration::from_secs(300),
            idle: Duration::from_secs(config.fetch_idle_secs),
        },
        protected_paths: capstan_deploy::protected_host_paths(
            data_dir,
            docker_socket_path(config.docker_host.as_deref()).as_deref(),
        ),
        source_dirs: config.source_dirs.clone(),
        source_limits: config.source_limits(),
        proxy_https_port: config.proxy_https_port,
        own_acme_ca: config.acme_ca_server.is_some(),
        ssh_timeout: Duration::from_secs(config.ssh_timeout_secs),
    }
}

/// The daemon's background work until `stop` turns true: the queue workers, the cleanup
/// timer, scheduled backups, the servers' check, the proxy watcher and notifications.
fn spawn_background(
    deployer: &Deployer,
    config: &Config,
    proxy_spec: ProxySpec,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let policy = config.cleanup.policy()?;
    let (d, s) = (deployer.clone(), stop.clone());
    let workers = tokio::spawn(async move { d.run_workers(s, Duration::from_secs(20)).await });
    let (d, s) = (deployer.clone(), stop.clone());
    let cleanup = tokio::spawn(async move { d.run_cleanup(policy, s).await });
    let store = deployer.store().clone();
    let backups = tokio::spawn(crate::backup::run_schedule(
        config.clone(),
        store,
        stop.clone(),
    ));
    let (d, s) = (deployer.clone(), stop.clone());
    let server_watch = tokio::spawn(async move { d.run_server_watch(s).await });
    let trim = tokio::spawn(return_freed_memory(stop.clone()));
    let [notify_follow, notify_deliver] = spawn_notifications(deployer, config, &stop)?;
    let d = deployer.clone();
    let proxy_watch = tokio::spawn(async move { d.watch_proxy(proxy_spec, stop).await });
    Ok(vec![
        workers,
        proxy_watch,
        server_watch,
        backups,
        cleanup,
        trim,
        notify_follow,
        notify_deliver,
    ])
}

/// Notifications: one task follows the deploy bus into the outbox, one delivers it.
fn spawn_notifications(
    deployer: &Deployer,
    config: &Config,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<[tokio::task::JoinHandle<()>; 2]> {
    let policy = capstan_notify::RetryPolicy {
        delays: config
            .notify_retry_secs
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect(),
        ..Default::default()
    };
    let notifier = capstan_notify::Notifier::new(
        deployer.store().clone(),
        deployer.secret_key().clone(),
        policy,
    )?;
    let (n, events, s) = (notifier.clone(), deployer.subscribe(), stop.clone());
    let follow = tokio::spawn(async move { n.follow(events, s).await });
    let s = stop.clone();
    let deliver = tokio::spawn(async move { notifier.deliver(s).await });
    Ok([follow, deliver])
}

/// glibc keeps what a burst of work freed (a fan-out to ten servers, a long build log) in
/// its heaps for reuse; every 20 s what is free there goes back to the system, so the
/// daemon's resident memory follows what it holds rather than its peak.
async fn return_freed_memory(mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(20)) => {}
            _ = stop.changed() => return,
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free heap memory; it takes no pointers.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// On first start, creates the admin token and writes it, mode 0600, to
/// `<data-dir>/admin-token`. Only its hash is stored. There is no default password.
/// The proxy this configuration asks for, reading the route files in `routes`.
fn proxy_spec(config: &Config, routes: &RouteFiles) -> anyhow::Result<ProxySpec> {
    let static_config = render_static_config(&ProxySettings {
        instance: &config.instance,
        acme_email: config.acme_email.as_deref(),
        acme_ca_server: config.acme_ca_server.as_deref(),
        throttle: &config.proxy_throttle,
    })?;
    let acme_ca_certificates = match &config.acme_ca_certificates {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read acme_ca_certificates {}", path.display()))?,
        ),
        None => None,
    };
    Ok(ProxySpec {
        image: config.proxy_image.clone(),
        static_config,
        http_port: config.proxy_http_port,
        https_port: config.proxy_https_port,
        routes: capstan_engine::proxy::RoutesSource::HostDir(routes.dir().to_path_buf()),
        routes_mount: DYNAMIC_DIR.to_string(),
        acme_ca_certificates,
    })
}

async fn ensure_admin_token(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    if store.token_count().await? > 0 {
        return Ok(());
    }
    let token = capstan_store::new_token();
    let path = data_dir.join("admin-token");
    write_private(&path, format!("{token}\n"))?;
    store.add_token("admin", &token, "admin").await?;
    tracing::info!(path = %path.display(), "created the admin API token (first start); it is in this file, readable by its owner only");
    Ok(())
}

/// While no panel account exists, writes a new one-time setup code, mode 0600, to
/// `<data-dir>/setup-code`: the panel's setup page asks for it before creating the first
/// admin, so whoever reaches the panel first cannot claim it. Once an account exists the
/// file is removed.
async fn ensure_setup_code(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(capstan_web::accounts::SETUP_CODE_FILE);
    if store.user_count().await? > 0 {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let code = capstan_web::accounts::random_secret();
    write_private(&path, format!("{code}\n"))?;
    tracing::info!(path = %path.display(), "no panel account yet: open the panel and enter the one-time setup code from this file to create the admin account");
    Ok(())
}

/// Writes `contents` to `path`, readable and writable by its owner only (mode 0600).
pub(crate) fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_ref())?;
    Ok(())
}

/// The URL the client on this host reaches the API at: the listening address, with an
/// unspecified one (0.0.0.0, [::]) replaced by its loopback.
fn api_url(listening: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let ip = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listening.port()))
}

/// The engine's socket on this host, when the daemon talks to a local socket.
fn docker_socket_path(docker_host: Option<&str>) -> Option<std::path::PathBuf> {
    match docker_host {
        Some(host) if host.starts_with("unix://") => {
            Some(host.trim_start_matches("unix://").into())
        }
        Some(host) if host.starts_with('/') => Some(host.into()),
        Some(_) => None,
        None => Some("/var/run/docker.sock".into()),
    }
}

async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::api_url;

    #[test]
    fn the_api_url_names_a_reachable_address() {
        let url = |addr: &str| api_url(addr.parse().unwrap());
        assert_eq!(url("127.0.0.1:8000"), "http://127.0.0.1:8000");
        assert_eq!(url("0.0.0.0:9100"), "http://127.0.0.1:9100");
        assert_eq!(url("[::]:9100"), "http://[::1]:9100");
        assert_eq!(url("10.0.0.5:80"), "http://10.0.0.5:80");
    }
}
