//! The transport to a real second host: an sshd inside the second host's network
//! namespace (10.250.0.2, `SecondHost`), Capstan reaching that host's own engine through
//! it — a different engine from the local one.

use capstan_remote::{connect, generate_key_pair, Contact, SshOptions};
use capstan_testkit::{SecondHost, Sshd, SshdConfig};
use std::net::IpAddr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_hosts_engine_through_its_own_sshd() {
    let host = tokio::task::spawn_blocking(SecondHost::ensure)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("second host: {e}"));
    let (private, public) = generate_key_pair().unwrap();
    let config = SshdConfig::in_netns(&public, host.netns_path(), IpAddr::V4(host.ip()));
    let sshd = Sshd::start_with(config).unwrap();
    assert_eq!(sshd.host(), host.ip().to_string());

    let mut options = SshOptions::new(&sshd.host(), sshd.port(), sshd.user(), &private);
    options.timeout = Duration::from_secs(10);
    let Ok(Contact::FirstContact { fingerprint }) = connect(options.clone()).await else {
        panic!("first contact did not report the host key");
    };
    assert_eq!(fingerprint, sshd.host_key_fingerprint());
    options.host_key_fingerprint = Some(fingerprint);
    options.docker_socket = host.docker_socket().to_string_lossy().into_owned();
    let connection = match connect(options).await {
        Ok(Contact::Connected(connection)) => connection,
        Ok(Contact::FirstContact { .. }) => panic!("pinned, yet first contact"),
        Err(err) => panic!("connect: {err}\nsshd log:\n{}", sshd.log()),
    };

    let remote = capstan_engine::dial::docker_over(connection.docker_dialer(), 120)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let local = bollard::Docker::connect_with_local_defaults().unwrap();
    let remote_id = remote.info().await.unwrap().id;
    let local_id = local.info().await.unwrap().id;
    assert!(remote_id.is_some());
    assert_ne!(remote_id, local_id, "the tunnel reached the local engine");
    let second_id = host.docker().await.unwrap().info().await.unwrap().id;
    assert_eq!(remote_id, second_id);

    let engine = connection
        .engine("capstan-remote-second-host")
        .await
        .unwrap();
    assert!(!engine.status().await.unwrap().version.is_empty());
    assert_eq!(connection.tcp_connections_opened(), 1);
    assert_eq!(sshd.connections(), 1);
}
