//! The `capstan` binary: `capstan serve` runs the daemon; the other subcommands are a
//! small client of its API.

mod backup;
mod cancel;
mod cleanup;
mod client;
mod config;
mod maintenance;
mod manage;
mod notify;
mod plan;
mod purge;
mod registry;
mod retry;
mod run;
mod serve;
mod servers;
mod webhooks;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "A self-hosted, container-native PaaS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: API, deployment workers and the proxy.
    Serve(config::ServeArgs),
    /// Queue a deployment of an app and optionally follow it to the end.
    Deploy(client::DeployArgs),
    /// Print a deployment's log (by id) or a running app's output (by name), or follow it.
    Logs(client::LogsArgs),
    /// Save a daemon's URL and an API token for the other commands.
    Login(manage::LoginArgs),
    /// List apps with their live deployment.
    Apps(manage::AppsArgs),
    /// Create or show an app.
    #[command(subcommand)]
    App(manage::AppCommand),
    /// Return an app to an earlier release (no build).
    Rollback(manage::RollbackArgs),
    /// Start new containers of the live release with the current settings.
    Restart(manage::RestartArgs),
    /// Run a deployment again, only on the servers where it failed (same release, no build).
    Retry(retry::RetryArgs),
    /// Cancel a deployment: a queued one at once, a running one at its next step before
    /// its traffic switch (its new containers removed, the live version untouched).
    Cancel(cancel::CancelArgs),
    /// Run a command once in a new container of an app's live release (`capstan run APP
    /// -- CMD...`), print its output and exit with its status.
    Run(run::RunArgs),
    /// Turn an app's maintenance mode on or off (a 503 page at the proxy), or show it.
    Maintenance(maintenance::MaintenanceArgs),
    /// Write Capstan's own state (database, secret key, routes, ACME store) to an archive.
    Backup(backup::BackupArgs),
    /// Put a backup archive back into a stopped or fresh installation.
    Restore(backup::RestoreArgs),
    /// Remove this instance's leftovers now: old images, stopped containers, networks of
    /// deleted apps (never anything else on the host).
    Cleanup(cleanup::CleanupArgs),
    /// The daemon, engine, proxy, disk and queue at a glance.
    Status(manage::StatusArgs),
    /// Set, list or remove an app's secrets.
    #[command(subcommand)]
    Secrets(manage::SecretsCommand),
    /// Show the build plan, the Dockerfile and the compose spec of a directory or an app,
    /// without deploying.
    Plan(plan::PlanArgs),
    /// Add, list, show, remove or check the servers apps run on.
    #[command(subcommand)]
    Server(servers::ServerCommand),
    /// Set, show or remove the image registry images move through to other servers
    /// (without one they move as layer archives).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// List, add, remove or test notification channels (webhook, Slack, Discord, email)
    /// of an app, or global ones.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// List every Docker object of this instance and, with --yes, remove them all (what
    /// `install.sh --uninstall --purge` runs once the daemon has stopped).
    Purge(purge::PurgeArgs),
}

/// Client commands end quietly when what reads their output goes away (`capstan logs 7 |
/// head`): the default SIGPIPE action, as for any Unix tool. The daemon keeps Rust's
/// default (ignored), so a client that hangs up never takes it down.
fn quiet_on_closed_pipe() {
    // SAFETY: restores a signal's default disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core), and memory
/// freed in one stays with it: a daemon whose requests run on whichever thread is free
/// grows by the sum of their peaks. Two arenas keep its resident memory near what it uses
/// (the panel benchmark: 45 → 35 MiB after 900 page views). Blocks of 4 MiB and more (an
/// argon2 check holds 19 MiB) are always mapped on their own and returned when freed: left
/// to itself glibc raises that threshold after the first free, and keeps such blocks in
/// the arenas for good. Set before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no thread has started yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        limit_malloc_arenas();
    } else {
        quiet_on_closed_pipe();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Deploy(args) => client::deploy(args).await,
            Command::Logs(args) => client::logs(args).await,
            Command::Login(args) => manage::login(args).await,
            Command::Apps(args) => manage::apps(args).await,
            Command::App(command) => manage::app(command).await,
            Command::Rollback(args) => manage::rollback(args).await,
            Command::Restart(args) => manage::restart(args).await,
            Command::Retry(args) => retry::retry(args).await,
            Command::Cancel(args) => cancel::cancel(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Maintenance(args) => maintenance::maintenance(args).await,
            Command::Secrets(command) => manage::secrets(command).await,
            Command::Status(args) => manage::status(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Cleanup(args) => cleanup::cleanup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Plan(args) => plan::plan(args).await,
            Command::Purge(args) => purge::purge(args).await,
            Command::Server(command) => servers::server(command).await,
            Command::Registry(command) => registry::registry(command).await,
            Command::Notify(command) => notify::notify(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            let message = client::unreachable_hint(&err).unwrap_or_else(|| format!("{err:#}"));
            eprintln!("capstan: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
