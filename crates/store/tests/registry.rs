//! The instance's registry on a real SQLite file: at most one, its password sealed (never
//! in clear in the database, its WAL or anywhere in the data dir), returned only by
//! `registry_credentials` with the instance's key, never by `registry`; a row edited to
//! name another registry no longer decrypts; replacing keeps the creation time.

use capstan_store::{SecretKey, Store, StoreError};

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

#[tokio::test]
async fn the_registry_password_is_sealed_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("capstan.db");
    let store = Store::open(&db).await.unwrap();
    let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();
    assert_eq!(store.registry().await.unwrap(), None);
    assert!(store.registry_credentials(&key).await.unwrap().is_none());
    assert!(matches!(
        store.delete_registry().await,
        Err(StoreError::NotFound(_))
    ));

    let password = format!("regpw-{:016x}-clear", rand_u64());
    let set = store
        .set_registry(&key, "https://10.250.0.1:5443", "deploy", &password)
        .await
        .unwrap();
    assert_eq!(set.url, "https://10.250.0.1:5443");
    assert_eq!(set.username, "deploy");
    assert!(set.password_set);
    assert!(!format!("{set:?}").contains(&password));
    let creds = store.registry_credentials(&key).await.unwrap().unwrap();
    assert_eq!(creds.password, password);
    assert!(!format!("{creds:?}").contains(&password), "{creds:?}");
    let other = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
    let err = store.registry_credentials(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::SecretKey(_)), "{err:?}");

    // Replaced: one row, the same creation time, the new password.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = format!("regpw-{:016x}-again", rand_u64());
    let replaced = store
        .set_registry(&key, "registry.example.com/team", "ci", &second)
        .await
        .unwrap();
    assert_eq!(replaced.created_at, set.created_at);
    assert!(replaced.updated_at > set.updated_at);
    assert_eq!(replaced.url, "registry.example.com/team");
    let creds = store.registry_credentials(&key).await.unwrap().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("ci", second.as_str())
    );
    drop(store);
    for needle in [&password, &second] {
        let found = files_hold(dir.path(), needle.as_bytes());
        assert!(found.is_empty(), "the password is in clear in {found:?}");
    }

    // The row pointed at another registry by hand: its password does not go there.
    let store = Store::open(&db).await.unwrap();
    let mut conn = sqlx_conn(&db).await;
    sqlx_exec(&mut conn, "UPDATE registry SET url = 'evil.example.com'").await;
    let err = store.registry_credentials(&key).await.unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    store.delete_registry().await.unwrap();
    assert_eq!(store.registry().await.unwrap(), None);
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

async fn sqlx_conn(db: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

async fn sqlx_exec(conn: &mut sqlx::SqliteConnection, sql: &str) {
    sqlx::query(sql).execute(conn).await.unwrap();
}
