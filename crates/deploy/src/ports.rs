//! Which port an app listens on when its settings name none: `capstan.toml`, then the
//! compose service's `ports`/`expose`, then the built image's `EXPOSE`, else the default.
//! The deployment log says which source won.

use capstan_build::compose_file::UserService;
use capstan_build::{Plan, Recipe};
use capstan_core::{AppSpec, DEFAULT_PORT};

/// A port named before the image is looked at, and where it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeclaredPort {
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

    /// The compose web service's own declaration (`ports`, `expose`, or a `PORT` in its
    /// environment), if it makes one.
    pub(crate) fn of_service(file: &str, service: &UserService) -> Option<Self> {
        let name = &service.name;
        service
            .declared_port()
            .map(|(port, key)| DeclaredPort::new(port, format!("{file}: service {name}'s {key}")))
            .or_else(|| {
                port_variable(service.environment.get("PORT")).map(|port| {
                    DeclaredPort::new(port, format!("{file}: service {name}'s PORT variable"))
                })
            })
    }

    /// What the settings (`spec`, with `capstan.toml` applied; `from_file` when the file
    /// set the port) and the plan name, in order: the port setting, the app's own `PORT`
    /// variable, the compose web service.
    pub(crate) fn of_settings(spec: &AppSpec, from_file: bool, recipe: &Recipe) -> Option<Self> {
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
        match (&recipe.plan, &recipe.compose) {
            (Plan::Compose { web, file, .. }, Some((compose, _))) => {
                DeclaredPort::of_service(file, &compose.services[web])
            }
            _ => None,
        }
    }
}

/// The port a plan will run on, as `capstan plan` shows it: a declared port, else the
/// Dockerfile's last `EXPOSE` in its final stage (the built image decides for real, as
/// a base image may expose one too), else the image at deploy time.
pub(crate) fn planned_port(spec: &AppSpec, from_file: bool, recipe: &Recipe) -> String {
    if let Some(declared) = DeclaredPort::of_settings(spec, from_file, recipe) {
        return format!("{} (from {})", declared.port, declared.source);
    }
    match dockerfile_exposed(&recipe.dockerfile_text).first() {
        Some(port) => {
            format!("{port} (from the Dockerfile's EXPOSE; confirmed from the built image)")
        }
        None => format!("the built image's EXPOSE, else {DEFAULT_PORT}"),
    }
}

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

/// The port to use and the log line that explains it.
pub(crate) fn choose_port(declared: Option<&DeclaredPort>, exposed: &[u16]) -> (u16, String) {
    if let Some(declared) = declared {
        return (
            declared.port,
            format!("port {} (from {})", declared.port, declared.source),
        );
    }
    match exposed {
        [] => (
            DEFAULT_PORT,
            format!(
                "port {DEFAULT_PORT} (the default: no setting, capstan.toml, compose ports or \
                 image EXPOSE names one)"
            ),
        ),
        [only] => (*only, format!("port {only} (from the image's EXPOSE)")),
        [first, ..] => (
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
    fn a_declared_port_wins_then_expose_then_the_default() {
        let toml = DeclaredPort::new(3000, "capstan.toml");
        assert_eq!(
            choose_port(Some(&toml), &[5000]),
            (3000, "port 3000 (from capstan.toml)".to_string())
        );
        let (port, why) = choose_port(None, &[5000]);
        assert_eq!(
            (port, why.as_str()),
            (5000, "port 5000 (from the image's EXPOSE)")
        );
        let (port, why) = choose_port(None, &[80, 443]);
        assert_eq!(port, 80);
        assert!(why.contains("80, 443; the first is used"), "{why}");
        let (port, why) = choose_port(None, &[]);
        assert_eq!(port, 8080);
        assert!(why.contains("the default"), "{why}");
    }
}
