//! The certificates and backups routes in-process: who may call them, a name that is no
//! app's, and a daemon without a backup writer answering so rather than failing.

mod support;

use axum::http::{Method, StatusCode};
use capstan_web::backups::{BackupError, BackupFile, Backups};
use futures::future::BoxFuture;
use std::sync::Arc;
use support::{api, harness, harness_with_backups, page, send, signed_in, token};

/// A backup directory that cannot be written (a full disk, say).
struct Unwritable;

impl Backups for Unwritable {
    fn write_now(&self) -> BoxFuture<'_, Result<BackupFile, BackupError>> {
        Box::pin(async { Err(BackupError("no space left on device".into())) })
    }
    fn list(&self) -> Result<Vec<BackupFile>, BackupError> {
        Ok(Vec::new())
    }
    fn dir(&self) -> String {
        "/var/backups/capstan".into()
    }
}

#[tokio::test]
async fn a_failed_backup_is_said_as_a_problem_not_a_confirmation() {
    let h = harness_with_backups(Some(Arc::new(Unwritable))).await;
    let (cookie, csrf) = signed_in(&h).await;
    let posted = send(
        &h,
        support::form("/server/backups", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(
        posted.status,
        axum::http::StatusCode::SEE_OTHER,
        "{}",
        posted.body
    );
    let shown = send(&h, page("/server", &cookie)).await;
    assert!(
        shown
            .body
            .contains(r#"class="problem flash" id="flash" role="alert""#)
            && shown
                .body
                .contains("The backup failed: no space left on device"),
        "{}",
        shown.body
    );
}

#[tokio::test]
async fn backups_are_for_admins_and_say_when_the_daemon_has_none() {
    let h = harness().await;
    let read = token(&h, "reader", "read").await;
    let admin = token(&h, "root", "admin").await;
    for method in [Method::GET, Method::POST] {
        let refused = send(
            &h,
            api(method.clone(), "/server/backups", Some(&read), None),
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("admin"), "{}", refused.body);
        let none = send(&h, api(method, "/server/backups", Some(&admin), None)).await;
        assert_eq!(
            none.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            none.body
        );
        assert!(none.json()["error"]
            .as_str()
            .unwrap()
            .contains("without backups"));
    }
}

#[tokio::test]
async fn certificates_name_an_app() {
    let h = harness().await;
    let read = token(&h, "reader", "read").await;
    let missing = send(
        &h,
        api(Method::GET, "/apps/nope/certificates", Some(&read), None),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let bad = send(
        &h,
        api(
            Method::GET,
            "/apps/Bad_Name/certificates",
            Some(&read),
            None,
        ),
    )
    .await;
    assert!(bad.status.is_client_error(), "{}", bad.body);
    let anonymous = send(&h, api(Method::GET, "/apps/nope/certificates", None, None)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
