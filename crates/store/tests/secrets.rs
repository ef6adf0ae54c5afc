//! Secrets on a real SQLite file: stored encrypted, decrypted only with the right key and
//! in their own row, and a key file that others can read is refused.

use capstan_core::{AppName, AppSpec};
use capstan_store::{SecretKey, Store};
use std::os::unix::fs::PermissionsExt;

fn spec() -> AppSpec {
    serde_json::from_str(r#"{"source":{"path":"/srv/app"}}"#).unwrap()
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_bound_to_their_key_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("capstan.db");
    let store = Store::open(&db).await.unwrap();
    let key_path = dir.path().join("secret.key");
    let key = SecretKey::load_or_create(&key_path).unwrap();
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let app = AppName::parse("web").unwrap();
    store.create_app(&app, &spec()).await.unwrap();
    let plain = "hunter2-correct-horse-battery";
    store
        .set_secret(&key, &app, "DB_PASSWORD", plain, false)
        .await
        .unwrap();
    store
        .set_secret(&key, &app, "NPM_TOKEN", "npm-token-value", true)
        .await
        .unwrap();

    let values = store.secret_values(&key, &app).await.unwrap();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0].name, "DB_PASSWORD");
    assert_eq!(values[0].value, plain);
    assert!(values[1].build);
    assert!(!format!("{values:?}").contains(plain), "Debug hides values");
    let infos = store.secret_infos(&app).await.unwrap();
    assert_eq!(infos.len(), 2);

    // Nothing on disk holds the plaintext (database, WAL and shared memory files).
    drop(store);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "plaintext found on disk"
        );
    }
    let store = Store::open(&db).await.unwrap();

    // Another key cannot read them.
    let other = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
    let err = store.secret_values(&other, &app).await.unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");

    // Deleting works once, then says what is missing.
    store.delete_secret(&app, "NPM_TOKEN").await.unwrap();
    let err = store.delete_secret(&app, "NPM_TOKEN").await.unwrap_err();
    assert!(err.to_string().contains("NPM_TOKEN"), "{err}");
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    SecretKey::load_or_create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SecretKey::load_or_create(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::write(&path, b"short").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = SecretKey::load_or_create(&path).unwrap_err().to_string();
    assert!(err.contains("32 bytes"), "{err}");
}
