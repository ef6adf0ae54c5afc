//! What a change of an app's settings changed, in the words the panel uses for each field
//! (`port 8080 → 3000`, `health path / → /healthz`, `variable API_URL changed`): the change
//! log records exactly these. Variables and build arguments are named without their values,
//! and credentials in a git URL are redacted.

use crate::app::{AppSpec, HookCommand, Source, VolumeSpec};
use crate::redact::redact_url;
use std::collections::BTreeMap;
use std::fmt::Display;

/// The longest value shown for one side of a change; longer ones end in `…`.
const MAX_SHOWN: usize = 60;

/// Each field that differs between `old` and `new`, as `what old → new` (or `what added`,
/// `what removed` for named entries), in the order of the settings form. Empty when nothing
/// changed.
pub fn settings_changes(old: &AppSpec, new: &AppSpec) -> Vec<String> {
    every_field_is_compared(new);
    let mut changes = Changes::default();
    source_changes(&mut changes, &old.source, &new.source);
    build_changes(&mut changes, old, new);
    changes.value("domains", list(&old.domains), list(&new.domains));
    changes.value("HTTPS", on_off(old.tls), on_off(new.tls));
    changes.value("port", port(old.port), port(new.port));
    let (a, b) = (&old.health, &new.health);
    changes.value("health path", &a.path, &b.path);
    changes.value(
        "health interval",
        secs(a.interval_secs),
        secs(b.interval_secs),
    );
    changes.value("health timeout", secs(a.timeout_secs), secs(b.timeout_secs));
    changes.value("health retries", a.retries, b.retries);
    changes.value(
        "health start period",
        secs(a.start_period_secs),
        secs(b.start_period_secs),
    );
    changes.value(
        "health deadline",
        secs(a.deadline_secs.into()),
        secs(b.deadline_secs.into()),
    );
    changes.named("variable", &old.env, &new.env);
    changes.value("volumes", volumes(&old.volumes), volumes(&new.volumes));
    changes.value(
        "start command",
        command(old.command.as_deref(), "the image's own"),
        command(new.command.as_deref(), "the image's own"),
    );
    hook_changes(
        &mut changes,
        "before-cutover",
        &old.pre_deploy,
        &new.pre_deploy,
    );
    hook_changes(
        &mut changes,
        "after-cutover",
        &old.post_deploy,
        &new.post_deploy,
    );
    changes.value("replicas", old.replicas, new.replicas);
    changes.value("memory limit", memory(old), memory(new));
    changes.value("CPU limit", cpus(old), cpus(new));
    changes.value(
        "drain",
        secs(old.drain_secs.into()),
        secs(new.drain_secs.into()),
    );
    changes.value(
        "stop grace",
        secs(old.stop_grace_secs.into()),
        secs(new.stop_grace_secs.into()),
    );
    changes.value("init process", on_off(old.init), on_off(new.init));
    let names = |servers: &[crate::ServerName]| {
        list(&servers.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    changes.value("servers", names(&old.servers), names(&new.servers));
    let builder = |server: &Option<crate::ServerName>| {
        server
            .as_ref()
            .map_or_else(|| "the first server".to_string(), ToString::to_string)
    };
    changes.value(
        "build server",
        builder(&old.build_server),
        builder(&new.build_server),
    );
    changes.value(
        "commit statuses",
        forge(old.forge.as_ref()),
        forge(new.forge.as_ref()),
    );
    let watched = |paths: &[String]| {
        if paths.is_empty() {
            "every path".to_string()
        } else {
            list(paths)
        }
    };
    changes.value(
        "watch paths",
        watched(&old.watch_paths),
        watched(&new.watch_paths),
    );
    let rate = |n: u32| match n {
        0 => "no limit".to_string(),
        n => format!("{n} an hour"),
    };
    changes.value(
        "deploy rate limit",
        rate(old.deploys_per_hour),
        rate(new.deploys_per_hour),
    );
    changes.0
}

/// `github via secret GH_TOKEN` (with the API URL when one is set), or `off`.
fn forge(settings: Option<&crate::ForgeSettings>) -> String {
    let Some(settings) = settings else {
        return "off".into();
    };
    let mut shown = format!(
        "{} via secret {}",
        settings.provider.as_str(),
        settings.token_secret
    );
    if let Some(api_url) = &settings.api_url {
        shown.push_str(&format!(" at {}", redact_url(api_url)));
    }
    shown
}

/// Names every field of the settings, so a field added later does not compile until it is
/// compared above (and named in the change log) or listed here on purpose.
fn every_field_is_compared(spec: &AppSpec) {
    let AppSpec {
        source: _,
        port: _,
        domains: _,
        tls: _,
        health,
        env: _,
        volumes: _,
        limits,
        command: _,
        pre_deploy: _,
        post_deploy: _,
        build,
        replicas: _,
        drain_secs: _,
        stop_grace_secs: _,
        init: _,
        servers: _,
        build_server: _,
        forge: _,
        watch_paths: _,
        deploys_per_hour: _,
    } = spec;
    let crate::HealthSpec {
        path: _,
        interval_secs: _,
        timeout_secs: _,
        retries: _,
        start_period_secs: _,
        deadline_secs: _,
    } = health;
    let crate::Limits {
        memory_mb: _,
        cpus: _,
    } = limits;
    let crate::BuildSpec {
        kind: _,
        base_dir: _,
        dockerfile: _,
        target: _,
        compose_file: _,
        compose_service: _,
        publish_dir: _,
        static_image: _,
        args: _,
    } = build;
}

#[derive(Default)]
struct Changes(Vec<String>);

impl Changes {
    /// `what old → new` when the two read differently.
    fn value(&mut self, what: &str, old: impl Display, new: impl Display) {
        let (old, new) = (old.to_string(), new.to_string());
        if old != new {
            self.0
                .push(format!("{what} {} → {}", shown(&old), shown(&new)));
        }
    }

    /// Entries of a map added, changed or removed, by name only (values may be private).
    fn named(
        &mut self,
        what: &str,
        old: &BTreeMap<String, String>,
        new: &BTreeMap<String, String>,
    ) {
        for (key, value) in new {
            match old.get(key) {
                None => self.0.push(format!("{what} {} added", shown(key))),
                Some(before) if before != value => {
                    self.0.push(format!("{what} {} changed", shown(key)))
                }
                Some(_) => {}
            }
        }
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            self.0.push(format!("{what} {} removed", shown(key)));
        }
    }
}

fn source_changes(changes: &mut Changes, old: &Source, new: &Source) {
    match (old, new) {
        (
            Source::Git {
                url: old_url,
                reference: old_ref,
            },
            Source::Git {
                url: new_url,
                reference: new_ref,
            },
        ) => {
            let (old_shown, new_shown) = (redact_url(old_url), redact_url(new_url));
            if old_url != new_url && old_shown == new_shown {
                changes.0.push("git URL credentials changed".into());
            }
            changes.value("git URL", old_shown, new_shown);
            changes.value("ref", old_ref, new_ref);
        }
        (Source::Image(a), Source::Image(b)) => changes.value("image", a, b),
        (Source::Path(a), Source::Path(b)) => changes.value("directory", a, b),
        _ => changes.value("source", source(old), source(new)),
    }
}

fn build_changes(changes: &mut Changes, old: &AppSpec, new: &AppSpec) {
    let (a, b) = (&old.build, &new.build);
    changes.value("build type", a.kind.as_str(), b.kind.as_str());
    changes.value("base directory", &a.base_dir, &b.base_dir);
    changes.value("Dockerfile", &a.dockerfile, &b.dockerfile);
    changes.value("build target", optional(&a.target), optional(&b.target));
    changes.value(
        "compose file",
        optional(&a.compose_file),
        optional(&b.compose_file),
    );
    changes.value(
        "compose service",
        optional(&a.compose_service),
        optional(&b.compose_service),
    );
    changes.value(
        "publish directory",
        optional(&a.publish_dir),
        optional(&b.publish_dir),
    );
    changes.value("static image", &a.static_image, &b.static_image);
    changes.named("build argument", &a.args, &b.args);
}

fn hook_changes(
    changes: &mut Changes,
    what: &str,
    old: &Option<HookCommand>,
    new: &Option<HookCommand>,
) {
    match (old, new) {
        (Some(a), Some(b)) => {
            changes.value(
                &format!("{what} command"),
                command(Some(&a.command[..]), ""),
                command(Some(&b.command[..]), ""),
            );
            changes.value(
                &format!("{what} time limit"),
                secs(a.timeout_secs.into()),
                secs(b.timeout_secs.into()),
            );
        }
        (None, Some(hook)) => changes.0.push(format!(
            "{what} command added: {}",
            shown(&command(Some(&hook.command[..]), ""))
        )),
        (Some(_), None) => changes.0.push(format!("{what} command removed")),
        (None, None) => {}
    }
}

/// A value cut to [`MAX_SHOWN`] characters.
fn shown(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_SHOWN - 1).collect();
    cut.push('…');
    cut
}

fn source(source: &Source) -> String {
    match source {
        Source::Git { url, reference } => format!("git {} @ {reference}", redact_url(url)),
        Source::Image(image) => format!("image {image}"),
        Source::Path(path) => format!("directory {path}"),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

/// An optional name: `auto` when unset, else the name in quotes (a service may be called
/// "auto").
fn optional(value: &Option<String>) -> String {
    value
        .as_deref()
        .map_or_else(|| "auto".into(), |name| format!("“{name}”"))
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn port(port: Option<u16>) -> String {
    port.map_or_else(|| "auto".into(), |p| p.to_string())
}

fn secs(secs: f64) -> String {
    format!("{secs} s")
}

fn memory(spec: &AppSpec) -> String {
    spec.limits
        .memory_mb
        .map_or_else(|| "none".into(), |mb| format!("{mb} MiB"))
}

fn cpus(spec: &AppSpec) -> String {
    spec.limits
        .cpus
        .map_or_else(|| "none".into(), |cores| format!("{cores} cores"))
}

fn volumes(volumes: &[VolumeSpec]) -> String {
    let each: Vec<String> = volumes
        .iter()
        .map(|v| {
            let ro = if v.read_only { ":ro" } else { "" };
            format!("{}:{}{ro}", v.source, v.target)
        })
        .collect();
    list(&each)
}

/// An argv as one line, each word that needs it in single quotes; `unset` when there is none.
fn command(argv: Option<&[String]>, unset: &str) -> String {
    argv.map_or_else(|| unset.to_string(), crate::shell_words::shell_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn spec() -> AppSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"git": {"url": "https://ada:hunter22@git.example/shop.git", "ref": "main"}},
            "port": 8080,
            "domains": ["shop.test"],
            "env": {"KEEP": "1", "API_URL": "https://old", "GONE": "x"},
        }))
        .unwrap()
    }

    #[test]
    fn nothing_changed_says_nothing() {
        assert!(settings_changes(&spec(), &spec()).is_empty());
    }

    #[test]
    fn each_changed_field_in_words_and_nothing_else() {
        let old = spec();
        let mut new = spec();
        new.port = Some(3000);
        new.health.path = "/healthz".into();
        new.health.interval_secs = 0.5;
        assert_eq!(
            settings_changes(&old, &new),
            [
                "port 8080 → 3000",
                "health path / → /healthz",
                "health interval 1 s → 0.5 s"
            ]
        );
    }

    #[test]
    fn the_servers_an_app_runs_on_are_named() {
        let old = spec();
        let mut new = spec();
        new.servers = vec![
            crate::ServerName::local(),
            crate::ServerName::parse("edge").unwrap(),
        ];
        assert_eq!(settings_changes(&old, &new), ["servers local → local edge"]);
    }

    #[test]
    fn watch_paths_are_listed_or_said_to_be_every_path() {
        let old = spec();
        let mut new = spec();
        new.watch_paths = vec!["apps/web".into(), "libs/*".into()];
        assert_eq!(
            settings_changes(&old, &new),
            ["watch paths every path → apps/web libs/*"]
        );
    }

    #[test]
    fn variables_are_named_without_their_values() {
        let old = spec();
        let mut new = spec();
        new.env
            .insert("API_URL".into(), "https://new-secretish".into());
        new.env.remove("GONE");
        new.env.insert("ADDED".into(), "value-never-shown".into());
        let changes = settings_changes(&old, &new);
        assert_eq!(
            changes,
            [
                "variable ADDED added",
                "variable API_URL changed",
                "variable GONE removed"
            ]
        );
        let text = changes.join(", ");
        assert!(!text.contains("secretish") && !text.contains("never-shown"));
    }

    #[test]
    fn unset_values_and_sources_read_as_words() {
        let old = spec();
        let mut new = spec();
        new.port = None;
        new.limits = Limits {
            memory_mb: Some(512),
            cpus: None,
        };
        new.command = Some(vec!["npm".into(), "run".into(), "start it".into()]);
        new.tls = true;
        assert_eq!(
            settings_changes(&old, &new),
            [
                "HTTPS off → on",
                "port 8080 → auto",
                "start command the image's own → npm run 'start it'",
                "memory limit none → 512 MiB",
            ]
        );
        let mut image = spec();
        image.source = Source::Image("busybox:stable".into());
        assert_eq!(
            settings_changes(&old, &image),
            ["source git https://****@git.example/shop.git @ main → image busybox:stable"]
        );
    }

    #[test]
    fn credentials_in_a_git_url_never_show() {
        let old = spec();
        let mut new = spec();
        new.source = Source::Git {
            url: "https://bob:s3cret@git.example/shop.git".into(),
            reference: "v2".into(),
        };
        let text = settings_changes(&old, &new).join(", ");
        assert!(
            !text.contains("hunter22") && !text.contains("s3cret"),
            "{text}"
        );
        assert_eq!(text, "git URL credentials changed, ref main → v2");
    }

    #[test]
    fn values_that_read_alike_still_differ() {
        // A compose service may be called "auto", and a hook's program "none".
        let old = spec();
        let mut new = spec();
        new.build.compose_service = Some("auto".into());
        new.pre_deploy = Some(HookCommand {
            command: vec!["none".into()],
            timeout_secs: 300,
        });
        assert_eq!(
            settings_changes(&old, &new),
            [
                "compose service auto → “auto”",
                "before-cutover command added: none"
            ]
        );
        let mut later = new.clone();
        later.pre_deploy = None;
        assert_eq!(
            settings_changes(&new, &later),
            ["before-cutover command removed"]
        );
    }

    #[test]
    fn long_values_are_cut() {
        let old = spec();
        let mut new = spec();
        new.domains = vec!["a".repeat(100) + ".test"];
        let changes = settings_changes(&old, &new);
        assert!(changes[0].ends_with('…'), "{changes:?}");
        assert!(changes[0].chars().count() < 2 * MAX_SHOWN + 20);
    }
}
