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

/// The dry run agrees with itself: the port it announces is the one the spec it shows
/// probes and hands the app as `PORT`, the spec's health interval is the settings', and
/// the template's own comments are not shown.
#[test]
fn a_plan_shows_one_port_and_one_interval_throughout() {
    let repos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tests/repos");
    // The most common docker-compose.yml: one service that builds the Dockerfile beside it.
    let one_service = tempfile::tempdir().unwrap();
    std::fs::write(
        one_service.path().join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    std::fs::write(
        one_service.path().join("docker-compose.yml"),
        "services:\n  web:\n    build: .\n    ports:\n      - \"8000:8000\"\n",
    )
    .unwrap();
    let app = AppName::parse("shop").unwrap();
    for (root, build_type, port, source) in [
        (
            repos.join("compose-beside-dockerfile"),
            "compose",
            8000,
            "compose.yaml: service web's ports",
        ),
        (
            one_service.path().to_path_buf(),
            "dockerfile",
            8000,
            "docker-compose.yml: service web's ports, the service that builds the Dockerfile",
        ),
    ] {
        let root = root.canonicalize().unwrap();
        let spec: AppSpec = serde_json::from_value(serde_json::json!({
            "source": {"path": root.to_string_lossy()},
            "health": {"interval_secs": 1.0},
        }))
        .unwrap();
        let report = plan_report(
            "capstan",
            &app,
            &spec,
            Some(&root),
            &[],
            BuilderKind::BuildKit,
        )
        .unwrap_or_else(|e| panic!("{root:?}: {e}"));
        assert_eq!(report.build_type, build_type, "{}", report.reason);
        assert_eq!(report.port, format!("{port} (from {source})"));
        assert_eq!(report.settings.port, Some(port));
        let text = &report.compose_spec;
        assert!(!text.contains('#'), "template comments are shown:\n{text}");
        let shown: serde_json::Value = serde_norway::from_str(text).unwrap();
        let web = &shown["services"]["shop"];
        assert_eq!(web["environment"]["PORT"], port.to_string(), "{text}");
        let probe = web["healthcheck"]["test"][2].as_str().unwrap_or_default();
        assert_eq!(probe, format!("http://127.0.0.1:{port}/"), "{text}");
        assert_eq!(web["healthcheck"]["interval"], "1s", "{text}");
    }
}
