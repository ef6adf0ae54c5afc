//! An app's forge settings: which forge hosts its repository, where that forge's API is,
//! and which of the app's secrets holds the token commit statuses are reported with (its
//! name only: the token itself stays sealed with the app's secrets).

use crate::validate::{check_env_key, check_len, check_no_control, limits};
use crate::ValidationError;
use serde::{Deserialize, Serialize};

/// The forge an app's repository lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForgeProvider {
    Github,
    Gitlab,
    /// Gitea and Forgejo (same API); `forgejo` is read as `gitea`.
    #[serde(alias = "forgejo")]
    Gitea,
    Bitbucket,
}

impl From<ForgeProvider> for capstan_forge::Provider {
    fn from(provider: ForgeProvider) -> Self {
        match provider {
            ForgeProvider::Github => Self::Github,
            ForgeProvider::Gitlab => Self::Gitlab,
            ForgeProvider::Gitea => Self::Gitea,
            ForgeProvider::Bitbucket => Self::Bitbucket,
        }
    }
}

impl ForgeProvider {
    pub fn as_str(self) -> &'static str {
        capstan_forge::Provider::from(self).as_str()
    }
}

/// Where an app's commit statuses go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgeSettings {
    pub provider: ForgeProvider,
    /// The forge's API root. Unset: `https://api.github.com`, `https://<repository
    /// host>/api/v4` (GitLab), `https://<repository host>/api/v1` (Gitea/Forgejo),
    /// `https://api.bitbucket.org/2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The name of one of the app's secrets that holds the API token (never the token).
    pub token_secret: String,
}

/// A partial change of [`ForgeSettings`] in an app patch: absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgeSettingsPatch {
    pub provider: Option<ForgeProvider>,
    /// `null` goes back to the provider's default.
    pub api_url: Option<String>,
    pub token_secret: Option<String>,
}

impl ForgeSettings {
    /// The API URL is http(s) without credentials, query or fragment; the secret's name
    /// is a variable name.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(api_url) = &self.api_url {
            check_api_url(api_url)?;
        }
        check_env_key(&self.token_secret)
            .map_err(|e| ValidationError::new("forge.token_secret", e.reason))
    }
}

fn check_api_url(api_url: &str) -> Result<(), ValidationError> {
    let field = "forge.api_url";
    check_len(field, api_url, limits::URL)?;
    check_no_control(field, api_url)?;
    let bad = |why: &str| ValidationError::new(field, format!("{api_url:?} {why}"));
    let url = url::Url::parse(api_url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not hold credentials (the token comes from token_secret)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(api_url: Option<&str>, token_secret: &str) -> ForgeSettings {
        ForgeSettings {
            provider: ForgeProvider::Gitlab,
            api_url: api_url.map(str::to_string),
            token_secret: token_secret.into(),
        }
    }

    #[test]
    fn good_settings_pass_and_bad_ones_name_the_field() {
        assert!(settings(None, "FORGE_TOKEN").validate().is_ok());
        assert!(settings(Some("http://127.0.0.1:8080/api/v4"), "T")
            .validate()
            .is_ok());
        for (api_url, secret, field) in [
            (Some("ftp://gitlab.example.com"), "T", "forge.api_url"),
            (Some("gitlab.example.com/api"), "T", "forge.api_url"),
            (Some("https://u:p@gitlab.example.com"), "T", "forge.api_url"),
            (
                Some("https://gitlab.example.com/?x=1"),
                "T",
                "forge.api_url",
            ),
            (None, "glpat-123", "forge.token_secret"),
            (None, "", "forge.token_secret"),
            (None, "1TOKEN", "forge.token_secret"),
        ] {
            let err = settings(api_url, secret).validate().unwrap_err();
            assert_eq!(err.field, field, "{api_url:?} {secret:?}: {err}");
        }
    }

    #[test]
    fn forgejo_reads_as_gitea() {
        let s: ForgeSettings =
            serde_json::from_value(serde_json::json!({"provider": "forgejo", "token_secret": "T"}))
                .unwrap();
        assert_eq!(s.provider, ForgeProvider::Gitea);
        assert_eq!(serde_json::to_value(&s).unwrap()["provider"], "gitea");
        assert!(serde_json::from_value::<ForgeSettings>(
            serde_json::json!({"provider": "sourcehut", "token_secret": "T"})
        )
        .is_err());
    }

    fn app() -> crate::AppSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"git": {"url": "https://gitlab.example.com/team/sub/app.git"}}
        }))
        .unwrap()
    }

    #[test]
    fn forge_settings_are_patched_field_by_field_and_removed() {
        let base = app();
        assert_eq!(base.forge, None);
        let set = base
            .merge_patch(
                &serde_json::json!({"forge": {"provider": "gitlab", "token_secret": "GL_TOKEN"}}),
            )
            .unwrap();
        assert_eq!(set.forge.as_ref().unwrap().provider, ForgeProvider::Gitlab);
        let moved = set
            .merge_patch(&serde_json::json!({"forge": {"api_url": "https://git.internal/api/v4"}}))
            .unwrap();
        let forge = moved.forge.clone().unwrap();
        assert_eq!(forge.token_secret, "GL_TOKEN");
        assert_eq!(
            forge.api_url.as_deref(),
            Some("https://git.internal/api/v4")
        );
        let back = moved
            .merge_patch(&serde_json::json!({"forge": {"api_url": null}}))
            .unwrap();
        assert_eq!(back.forge.as_ref().unwrap().api_url, None);
        let off = back
            .merge_patch(&serde_json::json!({"forge": null}))
            .unwrap();
        assert_eq!(off.forge, None);
        for (bad, field) in [
            (
                serde_json::json!({"forge": {"provider": "gitlab"}}),
                "token_secret",
            ),
            (
                serde_json::json!({"forge": {"provider": "gitlab", "token_secret": "x-y"}}),
                "forge.token_secret",
            ),
            (serde_json::json!({"forge": {"token": "abc"}}), "token"),
            (
                serde_json::json!({"forge": {"provider": "svn"}}),
                "provider",
            ),
        ] {
            let err = base.merge_patch(&bad).unwrap_err().to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn the_change_log_names_the_forge_and_secret_never_a_token() {
        let old = app();
        let new = old
            .merge_patch(
                &serde_json::json!({"forge": {"provider": "github", "token_secret": "GH_TOKEN"}}),
            )
            .unwrap();
        assert_eq!(
            crate::app_diff::settings_changes(&old, &new),
            ["commit statuses off → github via secret GH_TOKEN"]
        );
    }
}
