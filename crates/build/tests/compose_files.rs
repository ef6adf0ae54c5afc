//! Reading compose files as people write them: every spelling of a key, variables from
//! the app, `.env` and secrets, the repo's own files and data paths, harmless keys noted,
//! and every problem in a file reported at once.

use capstan_build::compose_file::{
    parse_compose_file, ComposeSource, RepoMount, ServiceSecret, UserCompose,
};
use capstan_build::compose_vars::Variables;
use capstan_build::BuildError;
use std::collections::BTreeMap;

fn parse(text: &str) -> Result<UserCompose, BuildError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nginx")).unwrap();
    std::fs::write(dir.path().join("nginx/default.conf"), "server {}\n").unwrap();
    std::fs::write(dir.path().join("web.env"), "FROM_FILE=1\nDB_HOST=file\n").unwrap();
    std::fs::write(dir.path().join(".env"), "TAG=1.25\n").unwrap();
    let vars = Variables {
        values: BTreeMap::from([("MODE".to_string(), "prod".to_string())]),
        secrets: ["API_KEY".to_string()].into(),
    };
    parse_compose_file(
        text,
        "compose.yaml",
        &ComposeSource {
            dir: dir.path(),
            vars: &vars,
        },
    )
}

#[test]
fn reads_services_in_their_many_spellings() {
    let text = r#"
services:
  web:
    build:
      context: ./app
      target: runtime
      args: [MODE=prod]
    command: node server.js --port "8080" --cost "$$5"
    env_file: [web.env]
    environment:
      - DB_HOST=db
      - EMPTY
      - KEY=${API_KEY}
      - RUN_MODE=${MODE:-dev}
    volumes: ["uploads:/srv/uploads", "./nginx/default.conf:/etc/nginx/conf.d/default.conf:ro", "./data:/data", "/app/node_modules"]
    ports: ["127.0.0.1:9000:8080/tcp", {target: 81, published: 8081}]
    expose: [3000]
    depends_on: {db: {condition: service_healthy}}
    container_name: my-web
    restart: always
    labels: {com.example.team: shop, traefik.enable: "true"}
    networks: [front]
    stop_grace_period: 20s
    deploy: {replicas: 2, resources: {limits: {memory: 256M, cpus: "0.5"}}}
    secrets: [db-password]
    logging: {driver: json-file}
  db:
    image: postgres:${TAG}
    environment: {POSTGRES_PASSWORD: example, PORT: 5432}
    volumes:
      - {type: volume, source: pg_data.v1, target: /var/lib/postgresql/data}
    healthcheck:
      test: pg_isready
      interval: 1m30s
      timeout: 1.5s
      start_period: 500ms
  Debug_Tools:
    image: busybox
    profiles: [debug]
networks: {front: {}}
volumes: {uploads: {}, pg_data.v1: {}}
secrets:
  db-password:
    file: ./db/password.txt
"#;
    let compose = parse(text).unwrap();
    let web = &compose.services["web"];
    let build = web.build.as_ref().unwrap();
    assert_eq!(build.context, "app");
    assert_eq!(build.target.as_deref(), Some("runtime"));
    assert_eq!(build.args["MODE"], "prod");
    assert_eq!(
        web.command.clone().unwrap(),
        vec!["node", "server.js", "--port", "8080", "--cost", "$5"]
    );
    assert_eq!(
        web.environment["DB_HOST"], "db",
        "environment wins over env_file"
    );
    assert_eq!(web.environment["FROM_FILE"], "1");
    assert_eq!(
        web.environment["KEY"], "${API_KEY}",
        "secrets stay placeholders"
    );
    assert_eq!(web.environment["RUN_MODE"], "prod");
    assert_eq!(web.volumes[0].name, "uploads");
    assert_eq!(
        web.volumes[1].name, "data",
        "a path the repo lacks is a named volume"
    );
    assert_eq!(
        web.repo_mounts,
        vec![RepoMount {
            source: "nginx/default.conf".into(),
            target: "/etc/nginx/conf.d/default.conf".into()
        }]
    );
    assert_eq!(web.ports, vec![8080, 81]);
    assert_eq!(web.declared_port(), Some((8080, "ports")));
    assert_eq!(
        web.labels.keys().collect::<Vec<_>>(),
        vec!["com.example.team"]
    );
    assert_eq!(web.stop_grace_period.as_deref(), Some("20s"));
    assert_eq!(
        (web.replicas, web.memory.as_deref()),
        (Some(2), Some("256M"))
    );
    assert_eq!(
        web.secrets,
        vec![ServiceSecret {
            capstan_name: "DB_PASSWORD".into(),
            target: "db-password".into()
        }]
    );
    assert_eq!(web.depends_on, vec!["db"]);
    let db = &compose.services["db"];
    assert_eq!(
        db.image.as_deref(),
        Some("postgres:1.25"),
        ".env supplies TAG"
    );
    assert_eq!(db.volumes[0].name, "pg_data.v1");
    assert_eq!(db.environment["PORT"], "5432");
    assert_eq!(
        db.healthcheck.as_ref().unwrap().test,
        vec!["CMD-SHELL", "pg_isready"]
    );
    assert!(
        !compose.services.contains_key("Debug_Tools"),
        "profiles skip a service"
    );
    let notes = compose.all_notes().join("\n");
    for expected in [
        "skipped",
        "DB_PASSWORD",
        "`container_name` ignored",
        "`logging` ignored",
        "restart: always",
        "baked into the image",
    ] {
        assert!(notes.contains(expected), "{expected}: {notes}");
    }
    let order: Vec<_> = compose
        .start_order()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(order, vec!["db", "web"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "services:\n  web:\n    image: x\n    privileged: true\n    network_mode: host\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n  worker:\n    command: run\n    cap_add: [NET_ADMIN]\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(err.contains("5 problems"), "{err}");
    for expected in [
        "`privileged`",
        "`network_mode`",
        "host path \"/var/run/docker.sock\"",
        "\"worker\" has neither an image nor a build",
        "`cap_add`",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn names_what_is_wrong() {
    for (text, expect) in [
            ("services: [\n", "not valid YAML"),
            ("version: '3'\n", "no services"),
            ("services: {}\n", "no services"),
            ("services:\n  web:\n    build:\n      context: ../../etc\n", "build.context"),
            ("services:\n  web:\n    image: x\n    volumes: [\"../../etc:/data\"]\n", "leaves the repository"),
            ("services:\n  web:\n    image: x\n    volumes: [\"~/x:/data\"]\n", "host path"),
            ("services:\n  web:\n    image: x\n    depends_on: [db]\n", "\"db\", which is not a service"),
            ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n", "cycle"),
            ("services:\n  -bad:\n    image: x\n", "invalid name"),
            ("services:\n  web:\n    image: x\n  Web:\n    image: x\n", "same Docker name"),
            ("services:\n  web:\n    image: \"${NEEDED:?set NEEDED}\"\n", "services.web.image: variable NEEDED is required: set NEEDED"),
            ("services:\n  web:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: \"10\"\n", "healthcheck.interval"),
            ("services:\n  web:\n    image: x\n    env_file: missing.env\n", "cannot be read"),
            ("services:\n  web:\n    image: x\n    frobnicate: 1\n", "do not know"),
            ("services:\n  web:\n    image: x\nconfigs: {}\n", "`configs` is not supported"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with("source: compose.yaml:"), "{text}: {err}");
            assert!(err.contains(expect), "{text}: {err}");
        }
}

#[test]
fn extra_hosts_and_runtimes_are_accepted_within_limits() {
    let text = r#"
services:
  web:
    image: busybox
    extra_hosts: ["db:10.0.0.9", "api.internal=10.0.0.7", "gw:host-gateway", "v6:[::1]"]
    runtime: io.containerd.wasmedge.v1
  db:
    image: busybox
    extra_hosts: {cache.local: 10.0.0.8}
"#;
    let compose = parse(text).unwrap();
    let web = &compose.services["web"];
    assert_eq!(
        web.extra_hosts,
        vec![
            ("api.internal".to_string(), "10.0.0.7".to_string()),
            ("gw".to_string(), "host-gateway".to_string()),
            ("v6".to_string(), "::1".to_string()),
        ],
        "db is a service: it keeps its app-network address"
    );
    assert_eq!(web.runtime.as_deref(), Some("io.containerd.wasmedge.v1"));
    assert_eq!(compose.services["db"].extra_hosts.len(), 1);
    let refused = parse(
        "services:\n  web:\n    image: busybox\n    runtime: nvidia\n    extra_hosts: [\"x:not-an-ip\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("runtime \"nvidia\""), "{refused}");
    assert!(refused.contains("not-an-ip"), "{refused}");
}
