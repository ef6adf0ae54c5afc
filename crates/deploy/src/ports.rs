//! Which port an app listens on when its settings name none: `capstan.toml`, the app's
//! `PORT`, the compose service that is deployed (`ports`/`expose`/`PORT`, also when a
//! compose file beside the Dockerfile only builds it), then the built image's `EXPOSE`;
//! when nothing names one, the port stays open until the new container shows where it
//! listens (`listening`), else the default. The deployment log says which source won.

use capstan_build::compose_file::UserService;
use capstan_build::{Plan, Recipe};
use capstan_core::{AppSpec, DEFAULT_PORT};

/// A port named before the image is looked at, and where it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredPort {
    pub port: u16,
    pub source: String,
}

impl DeclaredPort {
    pub(crate) fn new(port: u16, source: impl Into<String>) -> Self {
        Self {
            port,
            source: source.into(),
        }
    }

    /// A compose service's own declaration (`ports`, `expose`, or a `PORT` in its
    /// environment), if it makes one; `role` says how the service is used, for the log.
    pub(crate) fn of_service(file: &str, service: &UserService, role: &str) -> Option<Self> {
        let name = &service.name;
        service
            .declared_port()
            .map(|(port, key)| {
                DeclaredPort::new(port, format!("{file}: service {name}'s {key}{role}"))
            })
            .or_else(|| {
                port_variable(service.environment.get("PORT")).map(|port| {
                    DeclaredPort::new(
                        port,
                        format!("{file}: service {name}'s PORT variable{role}"),
                    )
                })
            })
    }

    /// What the settings (`spec`, with `capstan.toml` applied; `from_file` when the file
    /// set the port) and the plan name, in order: the port setting, the app's own `PORT`
    /// variable, the compose web service, or for a Dockerfile plan the service of the
    /// compose file beside it that builds that Dockerfile (`builder`).
    pub(crate) fn of_settings(
        spec: &AppSpec,
        from_file: bool,
        recipe: &Recipe,
        builder: Option<&(String, UserService)>,
    ) -> Option<Self> {
        if let Some(port) = spec.port {
            let source = if from_file {
                "capstan.toml"
            } else {
                "the app's settings"
            };
            return Some(DeclaredPort::new(port, source));
        }
        if let Some(port) = port_variable(spec.env.get("PORT")) {
            return Some(DeclaredPort::new(port, "the app's PORT variable"));
        }
        match (&recipe.plan, &recipe.compose, builder) {
            (Plan::Compose { web, file, .. }, Some((compose, _)), _) => {
                DeclaredPort::of_service(file, compose.services.get(web)?, "")
            }
            (Plan::Dockerfile { .. }, None, Some((file, service))) => {
                DeclaredPort::of_service(file, service, ", the service that builds the Dockerfile")
            }
            _ => None,
        }
    }
}

/// The port a plan will run on, as the dry run shows it: `port` is the number the spec is
/// rendered with when the plan names one (a declared port, else the Dockerfile's last
/// `EXPOSE` in its final stage, which the built image confirms), `text` says where it
/// comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedPort {
    pub port: Option<u16>,
    pub text: String,
}

pub(crate) fn planned_port(declared: Option<&DeclaredPort>, recipe: &Recipe) -> PlannedPort {
    if let Some(declared) = declared {
        return PlannedPort {
            port: Some(declared.port),
            text: format!("{} (from {})", declared.port, declared.source),
        };
    }
    match dockerfile_exposed(&recipe.dockerfile_text).first() {
        Some(port) => PlannedPort {
            port: Some(*port),
            text: format!("{port} (from the Dockerfile's EXPOSE; confirmed from the built image)"),
        },
        None => PlannedPort {
            port: None,
            text: UNNAMED.to_string(),
        },
    }
}

/// The dry run's word for a port nothing names.
pub(crate) const UNNAMED: &str = "decided at deploy time: the image's EXPOSE, else the one \
     TCP port the new container listens on, else 8080 (nothing names a port: no setting, \
     capstan.toml, compose ports or EXPOSE)";

/// TCP ports the final stage of a Dockerfile `EXPOSE`s.
fn dockerfile_exposed(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("FROM") => ports.clear(),
            Some("EXPOSE") => ports.extend(words.filter_map(|w| {
                let (port, proto) = w.split_once('/').unwrap_or((w, "tcp"));
                (proto.eq_ignore_ascii_case("tcp"))
                    .then(|| port.parse::<u16>().ok())
                    .flatten()
            })),
            _ => {}
        }
    }
    ports
}

fn port_variable(value: Option<&String>) -> Option<u16> {
    value?.trim().parse().ok().filter(|p| *p > 0)
}

/// The port a deployment starts with, the log line that explains it, and whether nothing
/// named it (`open`: the new container's listening port may still decide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortChoice {
    pub port: u16,
    pub why: String,
    pub open: bool,
}

pub(crate) fn choose_port(declared: Option<&DeclaredPort>, exposed: &[u16]) -> PortChoice {
    let named = |port: u16, why: String| PortChoice {
        port,
        why,
        open: false,
    };
    if let Some(declared) = declared {
        return named(
            declared.port,
            format!("port {} (from {})", declared.port, declared.source),
        );
    }
    match exposed {
        [] => PortChoice {
            port: DEFAULT_PORT,
            why: format!(
                "port {DEFAULT_PORT} for now: no setting, capstan.toml, compose ports or image \
                 EXPOSE names one, so the port the new container listens on decides"
            ),
            open: true,
        },
        [only] => named(*only, format!("port {only} (from the image's EXPOSE)")),
        [first, ..] => named(
            *first,
            format!(
                "port {first} (the image EXPOSEs {}; the first is used, set the app's port to \
                 choose another)",
                exposed
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_stage_expose_is_read_from_a_dockerfile() {
        let text = "FROM node AS build\nEXPOSE 9999\nFROM scratch\nexpose 5000/tcp 53/udp\n";
        assert_eq!(dockerfile_exposed(text), vec![5000]);
        assert!(dockerfile_exposed("FROM scratch\n").is_empty());
    }

    #[test]
    fn a_declared_port_wins_then_expose_then_the_listening_port() {
        let toml = DeclaredPort::new(3000, "capstan.toml");
        let choice = choose_port(Some(&toml), &[5000]);
        assert_eq!(
            (choice.port, choice.why.as_str(), choice.open),
            (3000, "port 3000 (from capstan.toml)", false)
        );
        let choice = choose_port(None, &[5000]);
        assert_eq!(
            (choice.port, choice.why.as_str(), choice.open),
            (5000, "port 5000 (from the image's EXPOSE)", false)
        );
        let choice = choose_port(None, &[80, 443]);
        assert_eq!((choice.port, choice.open), (80, false));
        assert!(
            choice.why.contains("80, 443; the first is used"),
            "{choice:?}"
        );
        let choice = choose_port(None, &[]);
        assert_eq!((choice.port, choice.open), (8080, true));
        assert!(choice.why.contains("listens on decides"), "{choice:?}");
    }

    #[test]
    fn a_compose_service_that_builds_the_dockerfile_names_the_port() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            dir.path().join("docker-compose.yml"),
            "services:\n  web:\n    build: .\n    ports: [\"8000:8000\"]\n",
        )
        .unwrap();
        let build = capstan_core::build_spec::BuildSpec::default();
        let recipe = capstan_build::prepare(dir.path(), &build, 8080).unwrap();
        assert!(matches!(recipe.plan, Plan::Dockerfile { .. }), "{recipe:?}");
        let builder = capstan_build::plan::dockerfile_service(&build, &Default::default(), &recipe);
        let spec: AppSpec =
            serde_json::from_value(serde_json::json!({"source": {"image": "x"}})).unwrap();
        let declared = DeclaredPort::of_settings(&spec, false, &recipe, builder.as_ref());
        assert_eq!(
            declared,
            Some(DeclaredPort::new(
                8000,
                "docker-compose.yml: service web's ports, the service that builds the Dockerfile"
            ))
        );
        let planned = planned_port(declared.as_ref(), &recipe);
        assert_eq!(planned.port, Some(8000));
        // The settings still win.
        let pinned = AppSpec {
            port: Some(9000),
            ..spec
        };
        let declared = DeclaredPort::of_settings(&pinned, false, &recipe, builder.as_ref());
        assert_eq!(declared.map(|d| d.port), Some(9000));
    }
}
