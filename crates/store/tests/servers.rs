//! Servers on a real SQLite file: `local` exists from the start and is never removed, a
//! server's private key is stored encrypted (never in clear on disk) and decrypts only with
//! the instance's key, and a name is taken once.

use capstan_core::{ServerKind, ServerName, ServerSpec};
use capstan_store::{SecretKey, ServerPrivateKey, Store, StoreError};

fn spec(name: &str) -> ServerSpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "host": "10.0.0.7", "port": 2222, "user": "deploy",
        "host_key_fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
        "proxy_http_port": 8080, "namespace": "cap2", "labels": {"region": "eu"}
    }))
    .unwrap()
}

const PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtest-private-material\n-----END OPENSSH PRIVATE KEY-----\n";
const PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest capstan@web-2";

#[tokio::test]
async fn local_exists_keys_are_encrypted_and_names_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("capstan.db");
    let store = Store::open(&db).await.unwrap();
    let key = SecretKey::load_or_create(&dir.path().join("secret.key")).unwrap();

    let servers = store.servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].spec, ServerSpec::local());
    assert_eq!(servers[0].public_key, None);
    let local = ServerName::local();
    assert!(store
        .server_private_key(&key, &local)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.delete_server(&local).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.servers().await.unwrap().len(), 1, "local stays");

    let web2 = spec("web-2");
    let private = ServerPrivateKey::new(PRIVATE.into());
    assert_eq!(format!("{private:?}"), "ServerPrivateKey(..)");
    let created = store
        .create_server(&key, &web2, PUBLIC, &private)
        .await
        .unwrap();
    assert_eq!(created.spec, web2);
    assert_eq!(created.spec.kind, ServerKind::Ssh);
    assert_eq!(created.public_key.as_deref(), Some(PUBLIC));
    let again = store.create_server(&key, &web2, PUBLIC, &private).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let names: Vec<String> = store
        .servers()
        .await
        .unwrap()
        .iter()
        .map(|s| s.spec.name.to_string())
        .collect();
    assert_eq!(names, ["local", "web-2"]);

    // The private key decrypts with this key only, and is nowhere on disk in clear.
    let back = store
        .server_private_key(&key, &web2.name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.expose(), PRIVATE);
    let other = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
    let err = store
        .server_private_key(&other, &web2.name)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    drop(store);
    let needle = b"test-private-material";
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "private key found on disk in clear"
        );
    }

    let store = Store::open(&db).await.unwrap();
    store.delete_server(&web2.name).await.unwrap();
    assert!(matches!(
        store.server(&web2.name).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_server(&web2.name).await,
        Err(StoreError::NotFound(_))
    ));
}
