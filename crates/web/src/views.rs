//! The JSON shapes the API returns.

use capstan_deploy::AppView;
use capstan_store::{DeploymentRecord, Phase};
use serde_json::{json, Value};

pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Value {
    ms.map(time).map(Value::String).unwrap_or(Value::Null)
}

pub fn app(view: &AppView) -> Value {
    let mut value = serde_json::to_value(&view.app.spec).expect("an AppSpec always serializes");
    // Credentials in a git URL are shown as `****`, like every other secret.
    if let Some(url) = value.pointer_mut("/source/git/url") {
        if let Some(text) = url.as_str() {
            *url = json!(capstan_core::redact::redact_url(text));
        }
    }
    let object = value.as_object_mut().expect("an AppSpec is an object");
    object.insert("name".into(), json!(view.app.name));
    object.insert("created_at".into(), json!(time(view.app.created_at)));
    object.insert("updated_at".into(), json!(time(view.app.updated_at)));
    object.insert(
        "live".into(),
        view.live
            .as_ref()
            .map(|d| deployment(d, None))
            .unwrap_or(Value::Null),
    );
    value
}

pub fn deployment(d: &DeploymentRecord, phases: Option<&[Phase]>) -> Value {
    let mut value = json!({
        "id": d.id,
        "app": d.app,
        "server": d.server,
        "environment": d.environment,
        "trigger": d.trigger,
        "state": d.state,
        "ref": d.git_ref,
        "commit": d.commit_sha,
        "image": d.image,
        "from_release": d.from_release,
        "no_cache": d.no_cache,
        "error": d.error,
        "created_at": time(d.created_at),
        "started_at": opt_time(d.started_at),
        "finished_at": opt_time(d.finished_at),
        "actor": d.actor,
    });
    if let Some(phases) = phases {
        let map: serde_json::Map<String, Value> = phases
            .iter()
            .map(|p| (p.state.as_str().to_string(), json!(time(p.at))))
            .collect();
        value["phases"] = Value::Object(map);
    }
    value
}
