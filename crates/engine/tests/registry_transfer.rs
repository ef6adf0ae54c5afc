//! Image transfer through a real registry (Debian's `docker-registry`, the distribution
//! registry, started by `capstan_testkit::registry`) with htpasswd credentials over TLS:
//! pushed from the main engine, pulled by the second host's engine, tagged back; wrong credentials are a typed error that never
//! shows the password. The registry listens on the host's side of the second host's link
//! (10.250.0.1), which both engines reach; each trusts its certificate through
//! `/etc/docker/certs.d/<host:port>/ca.crt`, made for this test and removed after it.

mod support;

use capstan_engine::registry::{push_via_registry, RegistryAuth};
use capstan_engine::transfer::{RegistryStep, TransferError};
use capstan_engine::EngineError;
use capstan_testkit::registry::{Registry, REGISTRY_BIN};
use std::time::Instant;
use support::{build, files, run_output, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_moves_through_a_registry_with_credentials() {
    if !Registry::available() {
        eprintln!(
            "\n!!!!! SKIPPED: {REGISTRY_BIN} is missing (Debian's docker-registry; scripts/test.sh installs it) !!!!!\n"
        );
        return;
    }
    let fx = Fixture::new("registry").await;
    let password = format!("pw-{:016x}", rand::random::<u64>());
    let registry = Registry::start(fx.host.host_ip(), "capstan", &password).unwrap();
    let tag = fx.name("app");
    let dockerfile = "FROM busybox:stable\nCOPY app.txt /app/app.txt\nCMD [\"head\", \"-n\", \"1\", \"/app/app.txt\"]\n";
    let id = build(
        &fx.main,
        &tag,
        &files(dockerfile, b"", &support::app_text("via registry", 64)),
    )
    .await;
    fx.remember(&id);

    let wrong = RegistryAuth {
        url: registry.url(),
        username: "capstan".into(),
        password: "not-the-password".into(),
    };
    let err = push_via_registry(&fx.main, &fx.second, &tag, &wrong)
        .await
        .unwrap_err();
    eprintln!("wrong password: {err}");
    assert!(
        matches!(
            err,
            EngineError::Transfer(TransferError::Registry {
                step: RegistryStep::Push,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-password"));
    assert_eq!(fx.second.image_id(&tag).await.unwrap(), None);

    let auth = RegistryAuth {
        password: password.clone(),
        ..wrong
    };
    let started = Instant::now();
    let moved = push_via_registry(&fx.main, &fx.second, &tag, &auth)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "through the registry: {e}\nregistry log:\n{}",
                registry.log()
            )
        });
    eprintln!("through the registry: {moved:?} in {:?}", started.elapsed());
    assert_eq!(moved.image_id, id);
    assert_eq!(fx.second.image_id(&tag).await.unwrap(), Some(id.clone()));
    assert_eq!(run_output(&fx.second_docker, &tag).await, "via registry");
    // The registry tags are gone from both engines; the image keeps its own.
    assert_eq!(
        fx.main.image_id(&moved.registry_reference).await.unwrap(),
        None
    );
    assert_eq!(
        fx.second.image_id(&moved.registry_reference).await.unwrap(),
        None
    );
    assert!(
        !registry.log().contains(&password),
        "the registry logged the password"
    );
    fx.cleanup().await;
}
