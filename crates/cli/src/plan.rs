//! `capstan plan <dir-or-app>`: what a deploy would build and run, without deploying. A
//! directory is planned locally (no daemon needed); an app name asks the daemon, which
//! fetches the app's source into a scratch workspace.

use crate::client::Connection;
use anyhow::Context;
use capstan_core::{AppName, AppSpec};
use capstan_deploy::planning::{plan_report, BuilderKind, PlanReport};
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// A source directory (planned here) or an app name (planned by the daemon).
    target: String,
    /// For a directory: the app name used in the rendered spec.
    #[arg(long, default_value = "app")]
    name: String,
    /// For an app: a branch, tag or commit other than the app's.
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

fn is_directory_target(target: &str) -> bool {
    target.contains('/') || target.starts_with('.') || Path::new(target).is_dir()
}

pub async fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let report = if is_directory_target(&args.target) {
        plan_directory(&args)?
    } else {
        plan_app(&args).await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn plan_directory(args: &PlanArgs) -> anyhow::Result<Value> {
    let dir = Path::new(&args.target)
        .canonicalize()
        .with_context(|| format!("{} is not a directory", args.target))?;
    let name = AppName::parse(&args.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let spec: AppSpec = serde_json::from_value(serde_json::json!({
        "source": { "path": dir.to_string_lossy() }
    }))?;
    let report: PlanReport = stdout_to_stderr(|| {
        plan_report(
            "capstan",
            &name,
            &spec,
            Some(&dir),
            &[],
            BuilderKind::BuildKit,
        )
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(serde_json::to_value(report)?)
}

async fn plan_app(args: &PlanArgs) -> anyhow::Result<Value> {
    let api = args.connection.api()?;
    let body = match &args.git_ref {
        Some(reference) => serde_json::json!({ "ref": reference }),
        None => serde_json::json!({}),
    };
    api.send(
        reqwest::Method::POST,
        &format!("/apps/{}/plan", args.target),
        Some(body),
    )
    .await
}

fn print_report(report: &Value) {
    let text = |key: &str| report[key].as_str().unwrap_or("").to_string();
    println!("build plan: {}", text("plan"));
    println!("why:        {}", text("reason"));
    println!("port:       {}", text("port"));
    if let Some(lines) = report["settings_from_file"].as_array() {
        if !lines.is_empty() {
            println!("settings from the repo:");
            for line in lines {
                println!("  {}", line.as_str().unwrap_or(""));
            }
        }
    }
    if !text("dockerfile").is_empty() {
        println!("\n--- Dockerfile ({}) ---", text("dockerfile_path"));
        print!("{}", text("dockerfile"));
    }
    println!("\n--- compose spec ---");
    print!("{}", text("compose_spec"));
}

/// Runs `f` with standard output sent to standard error: the nixpacks library prints a
/// few progress lines on stdout, which must not mix with the report (or its JSON).
fn stdout_to_stderr<T>(f: impl FnOnce() -> T) -> T {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: dup/dup2/close on this process's own standard descriptors; stdout is put
    // back before returning, and nothing else writes to it meanwhile (the CLI is planning).
    let saved = unsafe { libc::dup(1) };
    if saved < 0 {
        return f();
    }
    unsafe { libc::dup2(2, 1) };
    let result = f();
    let _ = std::io::stdout().flush();
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
    result
}
