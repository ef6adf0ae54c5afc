//! The SSH connection against a real OpenSSH server: first contact reports the host key's
//! fingerprint and authenticates nothing, a changed host key and a wrong client key are
//! refused with typed errors, a dropped connection is re-established on the next use.

use capstan_remote::{connect, generate_key_pair, Contact, RemoteError, SshConnection, SshOptions};
use capstan_testkit::Sshd;
use std::sync::Arc;
use std::time::Duration;

fn options(sshd: &Sshd, private: &str, pin: Option<&str>) -> SshOptions {
    let mut options = SshOptions::new(&sshd.host(), sshd.port(), sshd.user(), private);
    options.host_key_fingerprint = pin.map(str::to_string);
    options.timeout = Duration::from_secs(10);
    options
}

async fn pinned(sshd: &Sshd, private: &str) -> Arc<SshConnection> {
    let pin = Some(sshd.host_key_fingerprint());
    match connect(options(sshd, private, pin)).await {
        Ok(Contact::Connected(connection)) => connection,
        Ok(Contact::FirstContact { fingerprint }) => {
            panic!("pinned, yet first contact: {fingerprint}")
        }
        Err(err) => panic!("connect: {err}\nsshd log:\n{}", sshd.log()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_reports_the_host_key_and_authenticates_nothing() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let contact = connect(options(&sshd, &private, None)).await.unwrap();
    let Contact::FirstContact { fingerprint } = contact else {
        panic!("no fingerprint pinned, yet connected");
    };
    assert_eq!(fingerprint, sshd.host_key_fingerprint());
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());

    let connection = pinned(&sshd, &private).await;
    assert!(connection.is_connected().await);
    assert_eq!(connection.tcp_connections_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_naming_both_fingerprints() {
    let (private, public) = generate_key_pair().unwrap();
    let before = Sshd::start(&public).unwrap();
    let after = Sshd::start(&public).unwrap();
    let pin = Some(before.host_key_fingerprint());
    let err = match connect(options(&after, &private, pin)).await {
        Err(err) => err,
        Ok(_) => panic!("a different host key was accepted"),
    };
    let RemoteError::HostKeyChanged {
        expected, found, ..
    } = &err
    else {
        panic!("not HostKeyChanged: {err:?}");
    };
    assert_eq!(expected, before.host_key_fingerprint());
    assert_eq!(found, after.host_key_fingerprint());
    let message = err.to_string();
    assert!(message.contains(before.host_key_fingerprint()), "{message}");
    assert!(message.contains(after.host_key_fingerprint()), "{message}");
    assert!(err.is_permanent());
    assert!(
        !after.log().contains("Accepted publickey"),
        "{}",
        after.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_not_in_authorized_keys_is_refused() {
    let (_, public) = generate_key_pair().unwrap();
    let (other_private, _) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let pin = Some(sshd.host_key_fingerprint());
    let err = match connect(options(&sshd, &other_private, pin)).await {
        Err(err) => err,
        Ok(_) => panic!("a key that is not authorized got in"),
    };
    assert!(matches!(err, RemoteError::AuthRefused { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_error() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let bad_key = connect(options(&sshd, "not a key", None)).await;
    assert!(matches!(bad_key, Err(RemoteError::Key(_))));

    // Nothing listens on the port of an sshd that was killed.
    let mut gone = Sshd::start(&public).unwrap();
    gone.kill();
    let mut opts = options(&gone, &private, Some(gone.host_key_fingerprint()));
    opts.timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let unreachable = connect(opts).await;
    assert!(
        matches!(unreachable, Err(RemoteError::Unreachable { .. })),
        "{:?}",
        unreachable.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_re_established_on_the_next_use() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    sshd.drop_connections();
    // The loss is noticed as soon as the TCP connection ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while connection.is_connected().await && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!connection.is_connected().await);
    // The channel is refused by the server (no such socket) but it was opened on a new
    // connection: the reconnect happened.
    let err = connection.open_socket("/nonexistent/capstan.sock").await;
    assert!(
        matches!(err, Err(RemoteError::Channel { .. })),
        "{:?}",
        err.err()
    );
    assert_eq!(connection.tcp_connections_opened(), 2);
    assert!(connection.is_connected().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_server_gone_down_each_fail_within_the_bound() {
    let (private, public) = generate_key_pair().unwrap();
    let mut sshd = Sshd::start(&public).unwrap();
    let mut opts = options(&sshd, &private, Some(sshd.host_key_fingerprint()));
    let bound = Duration::from_secs(2);
    opts.timeout = bound;
    let Ok(Contact::Connected(connection)) = connect(opts).await else {
        panic!("connect failed");
    };
    sshd.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while connection.is_connected().await && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Concurrent callers wait for one reconnect, not one after the other.
    let started = std::time::Instant::now();
    let calls = (0..4).map(|_| connection.open_socket("/var/run/docker.sock"));
    let results = futures::future::join_all(calls).await;
    assert!(
        started.elapsed() < bound + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for result in results {
        let err = result
            .err()
            .expect("a call to a server that is down succeeded");
        assert!(
            matches!(
                err,
                RemoteError::Unreachable { .. } | RemoteError::Timeout { .. }
            ),
            "{err:?}"
        );
    }
    // Right after a failed reconnect, callers get its error at once (backoff).
    let again = std::time::Instant::now();
    assert!(connection
        .open_socket("/var/run/docker.sock")
        .await
        .is_err());
    assert!(
        again.elapsed() < Duration::from_millis(200),
        "{:?}",
        again.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_closes_the_connection() {
    let (private, public) = generate_key_pair().unwrap();
    let sshd = Sshd::start(&public).unwrap();
    let connection = pinned(&sshd, &private).await;
    assert_eq!(sshd.connections(), 1);
    drop(connection);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sshd.connections() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sshd.connections(), 0, "the connection outlived its handle");
}
