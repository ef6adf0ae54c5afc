//! The stack form of a release (what `docker stack deploy` accepts) validated against the
//! official compose JSON schema, for a plain app and for one with a data volume.

use capstan_compose::render::{render_deployment, RenderInput};
use capstan_compose::stack::{render_stack, StackInput, UpdateOrder};
use capstan_core::{AppName, AppSpec};

fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compose-spec.json");
    let text = std::fs::read_to_string(path).expect("the vendored compose schema");
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    schema["$schema"] = "http://json-schema.org/draft-07/schema#".into();
    jsonschema::draft7::new(&schema).expect("compose schema compiles")
}

fn stack_yaml(json: &str) -> (String, capstan_compose::stack::RenderedStack) {
    let app = AppName::parse("shop").unwrap();
    let spec: AppSpec = serde_json::from_str(json).unwrap();
    spec.validate().unwrap();
    let (compose, _) = render_deployment(&RenderInput {
        instance: "ns",
        app: &app,
        deployment: 7,
        image: "ns/shop:7",
        spec: &spec,
        secrets: &[],
        image_health: None,
    })
    .unwrap();
    let rendered = render_stack(&StackInput {
        namespace: "ns",
        app: &app,
        spec: &spec,
        compose: &compose,
    });
    (rendered.stack.to_yaml().unwrap(), rendered)
}

fn assert_valid(yaml: &str) {
    let value: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    let errors: Vec<String> = validator()
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "stack violates the compose schema: {errors:#?}\n{yaml}"
    );
}

#[test]
fn a_replicated_app_renders_a_valid_stack_with_health_gated_start_first_updates() {
    let (yaml, rendered) = stack_yaml(
        r#"{"source":{"path":"/s"},"port":3000,"replicas":2,"domains":["shop.example"]}"#,
    );
    assert_valid(&yaml);
    let web = &rendered.stack.services["ns_shop"];
    assert_eq!(web.deploy.replicas, 2);
    assert_eq!(web.deploy.update_config.order, "start-first");
    assert_eq!(web.deploy.update_config.failure_action, "rollback");
    assert_eq!(web.deploy.rollback_config.order, "start-first");
    assert!(web.healthcheck.is_some());
    assert_eq!(web.deploy.labels["traefik.swarm.lbswarm"], "false");
    assert_eq!(web.deploy.labels["capstan.instance"], "ns");
    assert!(rendered.stack.networks["ns_shop"].external);
    assert!(
        yaml.contains("update_config:") && yaml.contains("monitor:"),
        "{yaml}"
    );
    assert!(!yaml.contains("container_name"), "{yaml}");
}

#[test]
fn a_data_volume_makes_the_stack_stop_first_and_stays_valid() {
    let (yaml, rendered) =
        stack_yaml(r#"{"source":{"path":"/s"},"volumes":[{"source":"data","target":"/data"}]}"#);
    assert_valid(&yaml);
    let (order, why) = &rendered.orders["ns_shop"];
    assert_eq!(*order, UpdateOrder::StopFirst);
    assert!(why.as_deref().unwrap_or("").contains("/data"));
    assert_eq!(
        rendered.stack.services["ns_shop"]
            .deploy
            .update_config
            .order,
        "stop-first"
    );
}
