//! Webhook secrets and deliveries on a real SQLite file: the secret sealed (never in clear
//! in the data dir), bound to its app, kept by a second first call, replaced by a
//! rotation, gone with the app; a delivery id answers "seen" the second time for the same
//! provider and app only, a body (by its SHA-256) the second time for the same app whatever
//! the id or forge, both forgotten on request or after 7 days.

use capstan_core::{AppName, AppSpec};
use capstan_store::{SecretKey, Store, StoreError, DELIVERY_MEMORY_MS};

fn spec() -> AppSpec {
    serde_json::from_str(r#"{"source":{"git":{"url":"https://example.com/o/r.git"}}}"#).unwrap()
}

fn files_hold(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .map(|path| path.display().to_string())
        .collect()
}

async fn open() -> (tempfile::TempDir, Store, SecretKey) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
    (dir, store, key)
}

#[tokio::test]
async fn the_webhook_secret_is_sealed_kept_rotated_and_gone_with_its_app() {
    let (dir, store, key) = open().await;
    let web = AppName::parse("web").unwrap();
    let other = AppName::parse("other").unwrap();
    assert!(matches!(
        store.webhook_secret_or_insert(&key, &web, "x").await,
        Err(StoreError::NotFound(_))
    ));
    store.create_app(&web, &spec()).await.unwrap();
    store.create_app(&other, &spec()).await.unwrap();
    assert_eq!(store.webhook_secret(&key, &web).await.unwrap(), None);

    let first = format!("whsec-{}-first", std::process::id());
    let got = store
        .webhook_secret_or_insert(&key, &web, &first)
        .await
        .unwrap();
    assert_eq!(got, first);
    // A second first call keeps the stored secret.
    let again = store
        .webhook_secret_or_insert(&key, &web, "another-candidate")
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.webhook_secret(&key, &other).await.unwrap(), None);
    assert!(
        files_hold(dir.path(), first.as_bytes()).is_empty(),
        "the secret is in clear in {:?}",
        files_hold(dir.path(), first.as_bytes())
    );

    let rotated = format!("whsec-{}-rotated", std::process::id());
    store
        .set_webhook_secret(&key, &web, &rotated)
        .await
        .unwrap();
    assert_eq!(
        store.webhook_secret(&key, &web).await.unwrap().as_deref(),
        Some(rotated.as_str())
    );

    // Another instance's key does not open it.
    let other_key = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
    assert!(matches!(
        store.webhook_secret(&other_key, &web).await,
        Err(StoreError::SecretKey(_))
    ));

    store.delete_app(&web).await.unwrap();
    assert_eq!(store.webhook_secret(&key, &web).await.unwrap(), None);
    // Re-created under the same name: no secret carried over.
    store.create_app(&web, &spec()).await.unwrap();
    assert_eq!(store.webhook_secret(&key, &web).await.unwrap(), None);
    assert!(matches!(
        store
            .set_webhook_secret(&key, &AppName::parse("ghost").unwrap(), "s")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// A distinct body digest for each label.
fn body(label: &str) -> String {
    format!("{label:0>64}")
}

async fn age_past_memory(dir: &std::path::Path, table: &str) {
    use sqlx::Connection;
    let db = dir.join("capstan.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let old = capstan_store::now_ms() - DELIVERY_MEMORY_MS - 1000;
    sqlx::query(&format!("UPDATE {table} SET received_at = ?"))
        .bind(old)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_delivery_is_seen_once_per_provider_and_app_for_seven_days() {
    let (dir, store, _key) = open().await;
    let web = AppName::parse("web").unwrap();
    let api = AppName::parse("api").unwrap();
    let d1 = Some("d-1");
    assert!(store
        .record_delivery("github", &web, d1, &body("1"))
        .await
        .unwrap());
    assert!(!store
        .record_delivery("github", &web, d1, &body("2"))
        .await
        .unwrap());
    assert!(store
        .record_delivery("gitlab", &web, d1, &body("3"))
        .await
        .unwrap());
    assert!(store
        .record_delivery("github", &api, d1, &body("4"))
        .await
        .unwrap());

    store
        .set_delivery_outcome("github", &web, d1, &body("1"), "queued deployment 3")
        .await
        .unwrap();
    assert_eq!(
        store
            .delivery_outcome("github", &web, "d-1")
            .await
            .unwrap()
            .as_deref(),
        Some("queued deployment 3")
    );
    store
        .forget_delivery("github", &web, d1, &body("1"))
        .await
        .unwrap();
    assert!(store
        .record_delivery("github", &web, d1, &body("1"))
        .await
        .unwrap());

    // Age them past the memory: the next insert prunes them.
    age_past_memory(dir.path(), "webhook_deliveries").await;
    age_past_memory(dir.path(), "webhook_bodies").await;
    assert!(store
        .record_delivery("github", &web, Some("d-2"), &body("5"))
        .await
        .unwrap());
    assert_eq!(
        store.delivery_outcome("gitlab", &web, "d-1").await.unwrap(),
        None
    );
    assert!(store
        .record_delivery("gitlab", &web, d1, &body("3"))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_body_is_seen_once_per_app_whatever_its_id_or_forge_until_forgotten() {
    let (dir, store, _key) = open().await;
    let web = AppName::parse("web").unwrap();
    let api = AppName::parse("api").unwrap();
    let signed = body("abc");
    assert!(store
        .record_delivery("github", &web, Some("a"), &signed)
        .await
        .unwrap());
    // The same body with a new id, no id, or at another forge's URL: seen.
    assert!(!store
        .record_delivery("github", &web, Some("b"), &signed)
        .await
        .unwrap());
    assert!(!store
        .record_delivery("github", &web, None, &signed)
        .await
        .unwrap());
    assert!(!store
        .record_delivery("gitea", &web, Some("c"), &signed)
        .await
        .unwrap());
    // A replay records nothing: its new id is still new with another body.
    assert!(store
        .record_delivery("github", &web, Some("b"), &body("other"))
        .await
        .unwrap());
    // Another app's memory is its own.
    assert!(store
        .record_delivery("github", &api, Some("a"), &signed)
        .await
        .unwrap());

    // Without an id the body alone is remembered, and forgotten for a retry.
    let no_id = body("no-id");
    assert!(store
        .record_delivery("gitlab", &web, None, &no_id)
        .await
        .unwrap());
    assert!(!store
        .record_delivery("gitlab", &web, None, &no_id)
        .await
        .unwrap());
    store
        .set_delivery_outcome("gitlab", &web, None, &no_id, "ignored: tag")
        .await
        .unwrap();
    store
        .forget_delivery("gitlab", &web, None, &no_id)
        .await
        .unwrap();
    assert!(store
        .record_delivery("gitlab", &web, None, &no_id)
        .await
        .unwrap());

    // Forgetting a delivery forgets its body too.
    store
        .forget_delivery("github", &web, Some("a"), &signed)
        .await
        .unwrap();
    assert!(store
        .record_delivery("github", &web, None, &signed)
        .await
        .unwrap());

    age_past_memory(dir.path(), "webhook_bodies").await;
    assert!(store
        .record_delivery("github", &web, None, &no_id)
        .await
        .unwrap());
}
