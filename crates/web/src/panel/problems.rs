//! Every problem of an app's settings at once, each under its form field and in the
//! user's words. The domain's validation stops at its first problem, so the field it names
//! is put back to its default and the settings are checked again, until nothing is wrong.

use crate::panel::settings_form::{field_of, FieldErrors, SettingsForm};
use capstan_core::{AppSpec, BuildSpec, HealthSpec, Source, ValidationError};
use serde_json::Value;

/// Checks of one spec at most (there are fewer fields than this).
const MAX_ROUNDS: usize = 32;

/// Adds each problem of `spec` to `errors` under its form field (a field that already has
/// one, from parsing the form, keeps it).
pub fn every_problem(mut spec: AppSpec, errors: &mut FieldErrors) {
    for _ in 0..MAX_ROUNDS {
        let Err(problem) = spec.validate() else {
            return;
        };
        errors
            .entry(field_of(&problem.field))
            .or_insert_with(|| in_words(&problem));
        if !put_back(&mut spec, &problem.field) {
            return;
        }
    }
}

/// The merge patch the settings form asks for, or every problem of it at once: the fields
/// that do not parse and, with those put back to the current settings, whatever
/// validation finds in the rest.
pub fn settings_patch(form: &SettingsForm, current: &AppSpec) -> Result<Value, FieldErrors> {
    let (mut errors, patch) = match form.to_patch(Some(current)) {
        Ok(patch) => (FieldErrors::new(), patch),
        Err(errors) => {
            let mut rest = form.clone();
            let shown = SettingsForm::from_spec(current);
            for field in errors.keys() {
                put_back_text(&mut rest, &shown, field);
            }
            match rest.to_patch(Some(current)) {
                Ok(patch) => (errors, patch),
                Err(_) => return Err(errors),
            }
        }
    };
    match current.merged(&patch) {
        Ok(next) => every_problem(next, &mut errors),
        Err(problem) => {
            errors
                .entry(field_of(&problem.field))
                .or_insert_with(|| in_words(&problem));
        }
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

/// Sets one text field of `form` (by its name in the form) to what `shown` holds.
fn put_back_text(form: &mut SettingsForm, shown: &SettingsForm, field: &str) {
    let shown = shown.clone();
    let (to, from) = match field {
        "source" => {
            form.source_kind = shown.source_kind;
            form.git_url = shown.git_url;
            form.git_ref = shown.git_ref;
            form.image = shown.image;
            form.path = shown.path;
            return;
        }
        "port" => (&mut form.port, shown.port),
        "health_interval" => (&mut form.health_interval, shown.health_interval),
        "health_timeout" => (&mut form.health_timeout, shown.health_timeout),
        "health_retries" => (&mut form.health_retries, shown.health_retries),
        "health_start_period" => (&mut form.health_start_period, shown.health_start_period),
        "health_deadline" => (&mut form.health_deadline, shown.health_deadline),
        "env" => (&mut form.env, shown.env),
        "volumes" => (&mut form.volumes, shown.volumes),
        "command" => (&mut form.command, shown.command),
        "pre_deploy" => (&mut form.pre_deploy, shown.pre_deploy),
        "post_deploy" => (&mut form.post_deploy, shown.post_deploy),
        "memory_mb" => (&mut form.memory_mb, shown.memory_mb),
        "cpus" => (&mut form.cpus, shown.cpus),
        "replicas" => (&mut form.replicas, shown.replicas),
        _ => return,
    };
    *to = from;
}

/// The reason as a sentence beside its field: the field is named by its label already.
pub fn in_words(problem: &ValidationError) -> String {
    let mut reason = problem.reason.trim().to_string();
    if reason.starts_with("is ") || reason.starts_with("has ") {
        reason.insert_str(0, "it ");
    }
    if let Some(first) = reason.get(..1) {
        reason.replace_range(..1, &first.to_uppercase());
    }
    if !reason.ends_with(['.', ')']) {
        reason.push('.');
    }
    reason
}

/// The form field of a deployer's message (`domains: "a.test" is served by …`) and the
/// message to show beside it, without the API's field name in front.
pub fn beside_field(message: &str) -> (String, String) {
    let field = field_of(message);
    match message.split_once(": ") {
        Some((api_field, reason)) if field != "settings" => {
            (field, in_words(&ValidationError::new(api_field, reason)))
        }
        _ => (field, message.to_string()),
    }
}

/// Puts the field a problem names back to its default; false when it is not one the
/// panel knows (then checking again would find the same problem).
fn put_back(spec: &mut AppSpec, field: &str) -> bool {
    let health = HealthSpec::default();
    match field {
        "source.git.url" => match &mut spec.source {
            Source::Git { url, .. } => *url = "https://example.invalid/app.git".into(),
            _ => return false,
        },
        "ref" => match &mut spec.source {
            Source::Git { reference, .. } => *reference = "main".into(),
            _ => return false,
        },
        "source.image" => spec.source = Source::Image("image".into()),
        "source.path" => spec.source = Source::Path("/".into()),
        "port" => spec.port = None,
        "domains" => spec.domains.clear(),
        "tls" => spec.tls = false,
        "health.path" => spec.health.path = health.path,
        "health.interval_secs" => spec.health.interval_secs = health.interval_secs,
        "health.timeout_secs" => spec.health.timeout_secs = health.timeout_secs,
        "health.retries" => spec.health.retries = health.retries,
        "health.start_period_secs" => spec.health.start_period_secs = health.start_period_secs,
        "health.deadline_secs" => spec.health.deadline_secs = health.deadline_secs,
        "volumes" | "volumes.source" | "volumes.target" => spec.volumes.clear(),
        "command" => spec.command = None,
        "pre_deploy" => spec.pre_deploy = None,
        "post_deploy" => spec.post_deploy = None,
        "limits.memory_mb" => spec.limits.memory_mb = None,
        "limits.cpus" => spec.limits.cpus = None,
        "replicas" => spec.replicas = 1,
        env if env == "env" || env.starts_with("env.") => spec.env.clear(),
        build if build.starts_with("build.") => spec.build = BuildSpec::default(),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_found_in_one_check_in_plain_words() {
        let spec: AppSpec = serde_json::from_value(json!({
            "source": { "git": { "url": "-oops", "ref": "bad..ref" } },
            "port": 0,
            "domains": ["not a host"],
            "health": { "interval_secs": 0.0, "timeout_secs": 9999, "retries": 0 },
            "env": { "A B": "1" },
            "limits": { "memory_mb": 1 },
            "replicas": 0
        }))
        .unwrap();
        let mut errors = FieldErrors::new();
        every_problem(spec, &mut errors);
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "domains",
                "env",
                "git_ref",
                "git_url",
                "health_interval",
                "health_retries",
                "health_timeout",
                "memory_mb",
                "port",
                "replicas"
            ],
            "{errors:#?}"
        );
        assert_eq!(
            errors["health_interval"],
            "Must be between 0.1 and 3600 seconds."
        );
        for message in errors.values() {
            assert!(
                !message.contains("_secs") && !message.contains("[A-Za-z"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_settings_form_reports_unparsed_and_invalid_fields_together() {
        let current: AppSpec =
            serde_json::from_value(json!({ "source": { "image": "busybox:stable" } })).unwrap();
        let mut form = SettingsForm::from_spec(&current);
        form.port = "http".into();
        form.health_interval = "0".into();
        form.replicas = "0".into();
        let errors = settings_patch(&form, &current).unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            ["health_interval", "port", "replicas"],
            "{errors:?}"
        );
        form.port = "8000".into();
        form.health_interval = "0.5".into();
        form.replicas = "2".into();
        let patch = settings_patch(&form, &current).unwrap();
        assert_eq!(current.merge_patch(&patch).unwrap().replicas, 2);
    }

    #[test]
    fn a_sound_spec_has_no_problem() {
        let spec: AppSpec =
            serde_json::from_value(json!({ "source": { "image": "busybox:stable" } })).unwrap();
        let mut errors = FieldErrors::new();
        every_problem(spec, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
