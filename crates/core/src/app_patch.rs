//! Changing an app's settings with a JSON merge patch (RFC 7396): the patch's shape,
//! checked field by field first, and the merge itself.

use crate::app::{AppSpec, HealthSpec, HookCommand, Limits, Source, VolumeSpec};
use crate::build_spec::BuildSpec;
use crate::ValidationError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A partial update of an app's settings (`PATCH`): absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppSpecPatch {
    pub source: Option<Source>,
    pub port: Option<u16>,
    pub domains: Option<Vec<String>>,
    pub tls: Option<bool>,
    pub health: Option<HealthSpec>,
    pub env: Option<BTreeMap<String, String>>,
    pub volumes: Option<Vec<VolumeSpec>>,
    pub limits: Option<Limits>,
    /// `null` removes the command.
    #[serde(default, deserialize_with = "present")]
    pub command: Option<Option<Vec<String>>>,
    /// `null` removes the command.
    #[serde(default, deserialize_with = "present")]
    pub pre_deploy: Option<Option<HookCommand>>,
    #[serde(default, deserialize_with = "present")]
    pub post_deploy: Option<Option<HookCommand>>,
    pub build: Option<BuildSpec>,
    pub replicas: Option<u32>,
    pub drain_secs: Option<u32>,
    pub stop_grace_secs: Option<u32>,
    pub init: Option<bool>,
    #[schema(value_type = Option<Vec<String>>)]
    pub servers: Option<Vec<crate::ServerName>>,
    /// `null` builds on the first of `servers` again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub build_server: Option<Option<crate::ServerName>>,
    /// Merged field by field; `null` stops commit statuses.
    #[serde(default, deserialize_with = "present")]
    pub forge: Option<Option<crate::forge_settings::ForgeSettingsPatch>>,
    /// `[]` or `null`: every push deploys again.
    pub watch_paths: Option<Vec<String>>,
    /// `0`: no limit; `null`: the default (10) again.
    pub deploys_per_hour: Option<u32>,
}

impl AppSpec {
    /// Applies a JSON merge patch (RFC 7396) and validates the result; on error `self`
    /// is unchanged. Nested objects merge (`{"build": {"base_dir": "x"}}` keeps
    /// `build.type`), `null` removes a field (its default applies), arrays and `source`
    /// are replaced whole. The patch's keys and types are checked first, so an unknown or
    /// misspelt field is named.
    pub fn merge_patch(&self, patch: &serde_json::Value) -> Result<AppSpec, ValidationError> {
        let next = self.merged(patch)?;
        next.validate()?;
        Ok(next)
    }

    /// [`AppSpec::merge_patch`] without the final validation: the settings a patch asks
    /// for, for a caller that reports every problem of them at once (the panel's forms).
    pub fn merged(&self, patch: &serde_json::Value) -> Result<AppSpec, ValidationError> {
        let invalid = |e: serde_json::Error| ValidationError::new("settings", e.to_string());
        if !patch.is_object() {
            return Err(ValidationError::new(
                "settings",
                "the patch must be a JSON object",
            ));
        }
        // Keys and types checked on the patch without its nested `null`s (removals).
        let mut shape = patch.clone();
        if let Some(fields) = shape.as_object_mut() {
            fields.values_mut().for_each(drop_nulls);
        }
        // With the path of the offending field (`pre_deploy.command: invalid type ...`).
        serde_path_to_error::deserialize::<_, AppSpecPatch>(shape)
            .map_err(|e| ValidationError::new("settings", e.to_string()))?;
        let mut merged = serde_json::to_value(self).map_err(invalid)?;
        merge_json(&mut merged, patch, true);
        serde_json::from_value(merged).map_err(invalid)
    }
}

/// Removes every `null` member of the objects in `value`.
fn drop_nulls(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(fields) = value {
        fields.retain(|_, v| !v.is_null());
        fields.values_mut().for_each(drop_nulls);
    }
}

/// RFC 7396 merge of `patch` into `target`. At the top level, `source` (an enum: one key
/// names the variant) is replaced whole rather than merged.
fn merge_json(target: &mut serde_json::Value, patch: &serde_json::Value, top: bool) {
    use serde_json::Value;
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let fields = target.as_object_mut().expect("made an object above");
    for (key, value) in changes {
        if value.is_null() {
            fields.remove(key);
        } else if top && key == "source" {
            fields.insert(key.clone(), value.clone());
        } else {
            merge_json(
                fields.entry(key.clone()).or_insert(Value::Null),
                value,
                false,
            );
        }
    }
}

/// Deserializes a field that is present (even as `null`) into `Some(value)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
