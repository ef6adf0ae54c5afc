//! Snapshot tests of everything capstan-compose renders, and validation of every rendered
//! compose spec against the official compose JSON schema.

use capstan_compose::proxy::{render_static_config, ProxySettings};
use capstan_compose::render::{render_deployment, RenderInput};
use capstan_compose::routes::{render_routes, MaintenanceRoute, RouteTarget};
use capstan_core::{AppName, AppSpec, InstanceNames};

fn schema_validator() -> jsonschema::Validator {
    // The official compose JSON schema (compose-spec/compose-spec, Apache-2.0), vendored
    // so the test does not depend on where the checkout sits.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compose-spec.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the compose schema must be at {path}: {e}"));
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The schema names draft-07 by an https URI without the trailing `#`; point it at the
    // canonical meta-schema id that the validator ships, so nothing is fetched.
    schema["$schema"] = "http://json-schema.org/draft-07/schema#".into();
    jsonschema::draft7::new(&schema).expect("compose schema compiles")
}

fn assert_valid_compose(yaml: &str) {
    let value: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    let validator = schema_validator();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "spec violates compose schema: {errors:#?}\n{yaml}"
    );
}

fn spec(json: &str) -> AppSpec {
    let spec: AppSpec = serde_json::from_str(json).unwrap();
    spec.validate().unwrap();
    spec
}

fn render(json: &str) -> String {
    render_with_secrets(json, &[])
}

fn render_with_secrets(json: &str, secrets: &[String]) -> String {
    let app = AppName::parse("shop").unwrap();
    let spec = spec(json);
    let (_, text) = render_deployment(&RenderInput {
        instance: "capstan",
        app: &app,
        deployment: 42,
        image: "capstan/shop:42",
        spec: &spec,
        secrets,
        image_health: None,
    })
    .unwrap();
    text
}

#[test]
fn the_app_learns_its_port_from_port_unless_it_sets_port_itself() {
    let text = render(r#"{"source":{"path":"/s"},"port":3000}"#);
    assert!(text.contains(r#""PORT":"3000""#), "{text}");
    let own = render(r#"{"source":{"path":"/s"},"port":3000,"env":{"PORT":"4000"}}"#);
    assert!(own.contains(r#""PORT":"4000""#), "{own}");
    // The spec says what the settings say: the app's interval (1 s by default). Docker's
    // own copy of the check is stretched when the container is created, not here.
    assert!(text.contains(r#"interval: "1s""#), "{text}");
    // The template's own notes are not part of what users see.
    assert!(!text.contains('#') && text.starts_with("name: "), "{text}");
}

#[test]
fn an_image_healthcheck_replaces_the_probe() {
    let app = AppName::parse("shop").unwrap();
    let spec = spec(r#"{"source":{"image":"x:1"}}"#);
    let test = vec![
        "CMD-SHELL".to_string(),
        "wget -q -O- localhost:5000/up".to_string(),
    ];
    let (parsed, _) = render_deployment(&RenderInput {
        instance: "capstan",
        app: &app,
        deployment: 1,
        image: "x:1",
        spec: &spec,
        secrets: &[],
        image_health: Some(&test),
    })
    .unwrap();
    assert_eq!(
        parsed.services["shop"].healthcheck.as_ref().unwrap().test,
        test
    );
}

#[test]
fn replicas_render_as_deploy_replicas() {
    let text = render(r#"{"source":{"path":"/s"},"replicas":3,"limits":{"memory_mb":64}}"#);
    assert_valid_compose(&text);
    assert!(text.contains("replicas: 3"), "{text}");
    assert!(text.contains("limits:"), "{text}");
    let single = render(r#"{"source":{"path":"/s"}}"#);
    assert!(!single.contains("replicas"), "{single}");
}

#[test]
fn secrets_appear_only_as_placeholders() {
    let text = render_with_secrets(
        r#"{"source":{"path":"/s"},"env":{"MODE":"prod"}}"#,
        &["DB_PASSWORD".to_string()],
    );
    assert_valid_compose(&text);
    assert!(text.contains(r#""DB_PASSWORD":"${DB_PASSWORD}""#), "{text}");
    assert!(text.contains(r#""MODE":"prod""#), "{text}");
}

#[test]
fn minimal_app_spec() {
    let text = render(r#"{"source":{"path":"/srv/shop"}}"#);
    assert_valid_compose(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn app_with_domains_env_and_health() {
    let text = render(
        r#"{"source":{"git":{"url":"https://example.test/shop.git","ref":"v2"}},
            "port":3000,"domains":["shop.example.test","www.shop.example.test"],
            "env":{"RUST_LOG":"info","QUOTE":"it's \"quoted\"\nand: {multi} line"},
            "health":{"path":"/up","interval_secs":2,"timeout_secs":3,"retries":5,
                      "start_period_secs":4,"deadline_secs":90},
            "stop_grace_secs":20}"#,
    );
    assert_valid_compose(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn tls_app_gets_an_https_router_with_acme_and_a_redirect() {
    let text = render(r#"{"source":{"path":"/s"},"domains":["shop.example.test"],"tls":true}"#);
    assert_valid_compose(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn volumes_and_limits() {
    let text = render(
        r#"{"source":{"path":"/s"},
            "volumes":[{"source":"uploads","target":"/data"},
                       {"source":"/srv/shared","target":"/shared","read_only":true}],
            "limits":{"memory_mb":256,"cpus":0.5}}"#,
    );
    assert_valid_compose(&text);
    insta::assert_snapshot!(text);
}

#[test]
fn hostile_env_values_stay_values() {
    let text =
        render(r#"{"source":{"path":"/s"},"env":{"X":"\nservices:\n  evil:\n    image: x"}}"#);
    assert_valid_compose(&text);
    let parsed = capstan_compose::ComposeSpec::from_yaml(&text).unwrap();
    assert_eq!(parsed.services.len(), 1);
    let (_, svc) = parsed.main_service().unwrap();
    assert_eq!(svc.environment["X"], "\nservices:\n  evil:\n    image: x");
}

fn shop_route(domains: &[&str], tls: bool, containers: &[&str]) -> String {
    shop_route_in(domains, tls, containers, None)
}

fn shop_route_in(
    domains: &[&str],
    tls: bool,
    containers: &[&str],
    maintenance: Option<MaintenanceRoute>,
) -> String {
    let names = InstanceNames::new("capstan").app(&AppName::parse("shop").unwrap());
    render_routes(
        &names,
        &RouteTarget {
            domains: domains.iter().map(|d| d.to_string()).collect(),
            tls,
            containers: containers.iter().map(|c| c.to_string()).collect(),
            port: 8080,
            maintenance,
        },
        443,
    )
    .unwrap()
}

fn maintenance(path: &str) -> Option<MaintenanceRoute> {
    Some(MaintenanceRoute {
        message: "Back at 5 — \"soon\"\nservices: {}".into(),
        retry_after_secs: 120,
        passthrough_path: Some(path.into()),
        pages_url: InstanceNames::new("capstan").maintenance_pages_url(),
    })
}

#[test]
fn maintenance_route_sits_above_the_app_and_spares_its_health_path() {
    let text = shop_route_in(
        &["shop.test"],
        false,
        &["capstan_shop_d42"],
        maintenance("/health"),
    );
    insta::assert_snapshot!(text);
    let parsed: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let router = &parsed["http"]["routers"]["shop_maintenance"];
    assert_eq!(
        router["rule"].as_str().unwrap(),
        "(Host(`shop.test`)) && !Path(`/health`)"
    );
    // The message is one header value whatever it holds.
    let headers = &parsed["http"]["middlewares"]["shop_maintenance_message"]["headers"]
        ["customRequestHeaders"];
    let message = headers["X-Capstan-Maintenance-Message"].as_str().unwrap();
    assert!(
        message
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)),
        "{message}"
    );
    assert_eq!(headers["X-Capstan-Retry-After"].as_str().unwrap(), "120");
}

#[test]
fn maintenance_of_a_tls_app_answers_on_https_and_root_health_is_not_spared() {
    let text = shop_route_in(
        &["shop.test"],
        true,
        &["capstan_shop_d42"],
        maintenance("/"),
    );
    let parsed: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let router = &parsed["http"]["routers"]["shop_maintenance"];
    assert_eq!(router["rule"].as_str().unwrap(), "Host(`shop.test`)");
    assert_eq!(router["entryPoints"][0].as_str().unwrap(), "websecure");
    assert!(router["tls"]["certResolver"].is_string(), "{text}");
    assert!(
        parsed["http"]["middlewares"]["shop_to_https"].is_mapping(),
        "{text}"
    );
}

#[test]
fn route_file_points_at_one_deployment() {
    insta::assert_snapshot!(shop_route(
        &["Shop.test", "www.shop.test"],
        false,
        &["capstan_shop_d42"]
    ));
}

#[test]
fn tls_route_has_an_https_router_with_acme_and_a_redirect() {
    insta::assert_snapshot!(shop_route(
        &["shop.test"],
        true,
        &["capstan_shop_d42", "capstan_shop_d42_r2"]
    ));
}

#[test]
fn https_redirect_names_the_published_https_port_unless_443() {
    let names = InstanceNames::new("capstan").app(&AppName::parse("shop").unwrap());
    let target = RouteTarget {
        domains: vec!["shop.test".into()],
        tls: true,
        containers: vec!["capstan_shop_d42".into()],
        port: 8080,
        maintenance: None,
    };
    let redirect = |https_port| {
        let text = render_routes(&names, &target, https_port).unwrap();
        let parsed: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        parsed["http"]["middlewares"]["shop_to_https"]["redirectScheme"].clone()
    };
    assert_eq!(redirect(18443)["port"].as_str(), Some("18443"));
    assert!(redirect(443).get("port").is_none(), "{:?}", redirect(443));
}

#[test]
fn route_without_domains_has_no_router() {
    let text = shop_route(&[], false, &["capstan_shop_d42"]);
    assert!(!text.contains("  routers:"), "{text}");
    assert!(text.contains("http://capstan_shop_d42:8080"), "{text}");
}

#[test]
fn containers_carry_no_traefik_labels() {
    let text = render(r#"{"source":{"path":"/s"},"domains":["a.test"],"tls":true}"#);
    assert!(!text.contains("traefik"), "{text}");
}

#[test]
fn proxy_static_config() {
    let text = render_static_config(&ProxySettings {
        instance: "capstan",
        acme_email: Some("ops@example.test"),
        acme_ca_server: None,
        throttle: "200ms",
    })
    .unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn sub_second_health_timings_render_in_milliseconds() {
    let text = render(
        r#"{"source":{"path":"/s"},"health":{"path":"/up","interval_secs":0.25,"timeout_secs":1.5}}"#,
    );
    assert_valid_compose(&text);
    // The interval is the app's, as its settings say.
    assert!(text.contains("interval: \"250ms\""), "{text}");
    assert!(text.contains("timeout: \"1500ms\""), "{text}");
}
