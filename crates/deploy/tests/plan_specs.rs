//! The specs `capstan plan` shows (and deployments store) for the sample repos are valid
//! compose files: checked against the official compose JSON schema, compose apps with
//! their companions included.

use capstan_core::{AppName, AppSpec};
use capstan_deploy::planning::{plan_report, BuilderKind};
use std::path::Path;

fn assert_valid_compose(yaml: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../compose/tests/data/compose-spec.json"
    );
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    schema["$schema"] = "http://json-schema.org/draft-07/schema#".into();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let value: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{yaml}");
}

#[test]
fn planned_specs_are_valid_compose() {
    let repos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tests/repos");
    let app = AppName::parse("shop").unwrap();
    for repo in [
        "compose-app",
        "static-dist",
        "dockerfile-stages",
        "node-lockfile",
    ] {
        let root = repos.join(repo).canonicalize().unwrap();
        let spec: AppSpec = serde_json::from_value(serde_json::json!({
            "source": {"path": root.to_string_lossy()},
            "domains": ["shop.test"],
        }))
        .unwrap();
        let report = plan_report(
            "capstan",
            &app,
            &spec,
            Some(&root),
            &["TOKEN".into()],
            BuilderKind::BuildKit,
        )
        .unwrap_or_else(|e| panic!("{repo}: {e}"));
        assert_valid_compose(&report.compose_spec);
        assert!(report.compose_spec.contains("${TOKEN}"), "{repo}");
        if repo == "compose-app" {
            assert!(report.compose_spec.contains("capstan_shop_svc_cache"));
            assert!(report.compose_spec.contains("redis:7"));
        }
    }
}
