//! Unit tests of the stack render: update order, monitor window, Traefik labels.

use super::*;
use crate::model::VolumeMount;

fn mount(kind: &str, target: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        kind: kind.into(),
        source: format!("src{target}"),
        target: target.into(),
        read_only,
    }
}

fn service(volumes: Vec<VolumeMount>) -> Service {
    Service {
        image: "img:1".into(),
        container_name: "c".into(),
        restart: "unless-stopped".into(),
        stop_grace_period: "10s".into(),
        init: None,
        environment: BTreeMap::new(),
        labels: BTreeMap::new(),
        healthcheck: None,
        deploy: None,
        command: None,
        entrypoint: None,
        volumes,
        networks: Default::default(),
        stop_signal: None,
        working_dir: None,
        user: None,
        extra_hosts: vec![],
        runtime: None,
        secrets: vec![],
        secret_files: BTreeMap::new(),
    }
}

#[test]
fn read_only_mounts_keep_start_first() {
    let (order, why) = update_order(&service(vec![mount("volume", "/.capstan", true)]));
    assert_eq!(order, UpdateOrder::StartFirst);
    assert_eq!(why, None);
}

#[test]
fn a_written_volume_makes_the_update_stop_first_and_says_why() {
    let (order, why) = update_order(&service(vec![
        mount("volume", "/.capstan", true),
        mount("volume", "/data", false),
    ]));
    assert_eq!(order, UpdateOrder::StopFirst);
    let why = why.expect("a reason");
    assert!(why.contains("/data") && why.contains("stop-first"), "{why}");
    assert!(!why.contains("/.capstan"), "{why}");
}

#[test]
fn the_monitor_window_covers_the_health_check_and_is_at_least_3s() {
    assert_eq!(monitor_secs(None), 3);
    let health = Healthcheck {
        test: vec![],
        interval: "1s".into(),
        timeout: "2s".into(),
        retries: 3,
        start_period: "5s".into(),
    };
    assert_eq!(monitor_secs(Some(&health)), 14);
    let fast = Healthcheck {
        interval: "250ms".into(),
        timeout: "250ms".into(),
        retries: 2,
        start_period: "0s".into(),
        ..health
    };
    assert_eq!(monitor_secs(Some(&fast)), 3);
}

#[test]
fn traefik_labels_route_the_domains_to_the_tasks_directly() {
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec =
        serde_json::from_str(r#"{"source":{"path":"/s"},"port":3000,"domains":["Shop.Example"]}"#)
            .unwrap();
    let labels = traefik_labels("ns", &app, &spec, "ns_shop");
    assert_eq!(labels["traefik.enable"], "true");
    assert_eq!(labels["traefik.swarm.lbswarm"], "false");
    assert_eq!(labels["traefik.swarm.network"], "ns_shop");
    let port = labels
        .iter()
        .find(|(k, _)| k.ends_with(".loadbalancer.server.port"))
        .unwrap();
    assert_eq!(port.1, "3000");
    let rule = labels.iter().find(|(k, _)| k.ends_with(".rule")).unwrap();
    assert_eq!(rule.1, "Host(`shop.example`)");
    assert!(!labels.keys().any(|k| k.contains("tls")), "{labels:?}");
}

#[test]
fn tls_adds_an_https_router_with_the_resolver() {
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec =
        serde_json::from_str(r#"{"source":{"path":"/s"},"domains":["shop.example"],"tls":true}"#)
            .unwrap();
    let labels = traefik_labels("ns", &app, &spec, "ns_shop");
    assert!(labels
        .iter()
        .any(|(k, v)| k.ends_with(".tls.certresolver") && v == "letsencrypt"));
    assert_eq!(labels.keys().filter(|k| k.ends_with(".rule")).count(), 2);
}
