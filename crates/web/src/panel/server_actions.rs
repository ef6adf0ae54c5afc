//! The server page's actions (admin): a cleanup of this instance's leftovers now, as
//! `capstan cleanup` does (optionally keeping only two releases per app; a preview first
//! lists what it would remove, as `--dry-run`), and a backup
//! archive written now into the backup directory, as `capstan backup` and the schedule
//! do. Each answers 303 back to the server page, which says once what it did.

use crate::panel::page::{size, PanelError};
use crate::panel::session::Posted;
use crate::panel::Flash;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use capstan_core::Scope;

/// The most removed objects named one by one in the confirmation; the rest are counted.
const NAMED_AT_MOST: usize = 20;

pub async fn cleanup(
    State(state): State<AppState>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let aggressive = posted.fields.checked("aggressive");
    let dry_run = posted.fields.get("mode") == "preview";
    let report = if dry_run {
        state.deployer.cleanup_dry_run(aggressive).await?
    } else {
        state.deployer.cleanup(aggressive).await?
    };
    let removed = report.containers.len() + report.images.len() + report.networks.len();
    let freed = size(u64::try_from(report.image_bytes).unwrap_or(0));
    let (title, verb, freed_verb) = if dry_run {
        (
            "Cleanup preview (nothing removed)",
            "would be removed",
            "would be freed",
        )
    } else {
        ("Cleanup", "removed", "freed")
    };
    let mut message = format!(
        "{title}{}: {removed} object{} {verb}, {freed} of images {freed_verb}.",
        if aggressive {
            ", two releases kept per app"
        } else {
            ""
        },
        if removed == 1 { "" } else { "s" },
    );
    let lines = report.summary_lines();
    for line in lines.iter().take(NAMED_AT_MOST) {
        message.push(' ');
        message.push_str(&capitalised(line));
        message.push('.');
    }
    if lines.len() > NAMED_AT_MOST {
        message.push_str(&format!(" And {} more.", lines.len() - NAMED_AT_MOST));
    }
    Ok(posted
        .session
        .redirect_with("/server#cleanup", Flash::notice(message)))
}

pub async fn backup(State(state): State<AppState>, posted: Posted) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let Some(backups) = state.backups.as_deref() else {
        return Err(PanelError::bad_request(
            "this daemon was started without backups",
        ));
    };
    let flash = match backups.write_now().await {
        Ok(file) => Flash::notice(format!(
            "Backup written: {} ({}, mode {}) in {}.",
            file.name,
            size(file.size_bytes),
            file.mode,
            backups.dir()
        )),
        Err(err) => Flash::failure(format!("The backup failed: {err}")),
    };
    Ok(posted.session.redirect_with("/server#backups", flash))
}

fn capitalised(line: &str) -> String {
    let mut chars = line.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
