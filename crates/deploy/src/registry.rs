//! The instance's image registry, the alternative to moving images as layer archives:
//! set, shown (never with its password) and removed by an admin; while one is set, a
//! fan-out moves an image to a server that lacks it by pushing it there and pulling it
//! on the server. Its password is masked in every deployment's log like a secret value.

use crate::logs::{DeployLog, MIN_SECRET_LEN};
use crate::pipeline::Failure;
use crate::{ActionError, Caller, Deployer};
use capstan_engine::registry::{push_via_registry, RegistryAuth};
use capstan_engine::Engine;
use capstan_store::RegistryRecord;

/// The longest URL, username or password accepted.
const MAX_FIELD_LEN: usize = 1024;

fn invalid(field: &str, why: impl std::fmt::Display) -> ActionError {
    ActionError::Invalid(format!("{field}: {why}"))
}

/// A registry address as image references name it: an optional `https://`, then
/// `host[:port]` and an optional path prefix (`registry.example.com/team`). No
/// credentials, query or other scheme.
pub(crate) fn check_url(url: &str) -> Result<(), ActionError> {
    let field = "url";
    if url.is_empty() || url.len() > MAX_FIELD_LEN {
        return Err(invalid(
            field,
            "give the registry's address, e.g. registry.example.com:5000",
        ));
    }
    let rest = match url.split_once("://") {
        Some(("https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(invalid(
                field,
                format!("{scheme}:// is not supported; engines reach a registry over TLS (https://, or no scheme)"),
            ))
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            format!("{url:?} does not start with a host name or IPv4 address (no user, password or spaces in it)"),
        ));
    }
    let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !host_ok {
        return Err(invalid(
            field,
            format!("{url:?} does not start with a host name or IPv4 address (no user, password or spaces in it)"),
        ));
    }
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(invalid(
                field,
                format!("port {port:?} is not a port number"),
            ));
        }
    }
    let path_ok = path.is_empty()
        || path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if !path_ok {
        return Err(invalid(
            field,
            format!(
                "the path {path:?} may hold only lowercase letters, digits, '.', '_', '-' and '/'"
            ),
        ));
    }
    Ok(())
}

fn check_credentials(username: &str, password: &str) -> Result<(), ActionError> {
    if username.trim().is_empty() {
        return Err(invalid("username", "must not be empty"));
    }
    if username.len() > MAX_FIELD_LEN
        || username.contains(':')
        || username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "username",
            "must be at most 1024 characters without ':', spaces or control characters",
        ));
    }
    if password.len() < MIN_SECRET_LEN || password.len() > MAX_FIELD_LEN {
        return Err(invalid(
            "password",
            format!("must be {MIN_SECRET_LEN} to {MAX_FIELD_LEN} characters (shorter values cannot be masked in logs)"),
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(invalid("password", "must not contain control characters"));
    }
    Ok(())
}

fn admin_only(caller: &Caller) -> Result<(), ActionError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ActionError::Forbidden(
            "the image registry is managed with the admin scope".into(),
        ))
    }
}

impl Deployer {
    /// Sets the instance's registry (replacing the one there); the password is stored
    /// encrypted and never returned.
    pub async fn set_registry(
        &self,
        url: &str,
        username: &str,
        password: &str,
        caller: &Caller,
    ) -> Result<RegistryRecord, ActionError> {
        admin_only(caller)?;
        check_url(url)?;
        check_credentials(username, password)?;
        let record = self
            .store()
            .set_registry(&self.settings().secret_key, url, username, password)
            .await?;
        tracing::info!(%url, %username, actor = %caller.actor(), "image registry set");
        Ok(record)
    }

    /// The instance's registry, if one is set (never its password).
    pub async fn registry(&self, caller: &Caller) -> Result<Option<RegistryRecord>, ActionError> {
        admin_only(caller)?;
        Ok(self.store().registry().await?)
    }

    /// Removes the instance's registry: images move as layer archives again.
    pub async fn remove_registry(&self, caller: &Caller) -> Result<(), ActionError> {
        admin_only(caller)?;
        self.store().delete_registry().await?;
        tracing::info!(actor = %caller.actor(), "image registry removed");
        Ok(())
    }

    /// The registry's password, for a deployment's log to mask. One that does not decrypt
    /// is left out (said in the daemon's log); moving an image through it fails then.
    pub(crate) async fn registry_mask_value(&self) -> Option<String> {
        match self
            .store()
            .registry_credentials(&self.settings().secret_key)
            .await
        {
            Ok(credentials) => credentials.map(|c| c.password),
            Err(err) => {
                tracing::warn!(%err, "cannot read the image registry's password");
                None
            }
        }
    }

    /// Moves `image` from `from` to `to` through the instance's registry when one is set
    /// (`false`: none is, the caller moves it another way).
    pub(crate) async fn move_through_registry(
        &self,
        from: &Engine,
        to: &Engine,
        image: &str,
        to_server: &capstan_core::ServerName,
        log: &DeployLog,
    ) -> Result<bool, Failure> {
        let Some(credentials) = self
            .store()
            .registry_credentials(&self.settings().secret_key)
            .await?
        else {
            return Ok(false);
        };
        let auth = RegistryAuth {
            url: credentials.url,
            username: credentials.username,
            password: credentials.password,
        };
        log.info(format!(
            "moving image {image} from server {} to server {to_server} through registry {} (as {})",
            self.server(),
            auth.url,
            auth.username
        ))
        .await;
        let started = std::time::Instant::now();
        let moved = push_via_registry(from, to, image, &auth).await?;
        log.info(format!(
            "image moved through registry {} as {} in {:.1} s",
            auth.url,
            moved.registry_reference,
            started.elapsed().as_secs_f64()
        ))
        .await;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_addresses_are_host_port_and_path_only() {
        for good in [
            "registry.example.com",
            "https://registry.example.com:5000/",
            "10.250.0.1:5443",
            "localhost:5000/team/apps",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "address"),
            ("http://r.example.com", "http:// is not supported"),
            ("ftp://r.example.com", "ftp:// is not supported"),
            ("user:pw@r.example.com", "host name"),
            ("r.example.com:99999", "port"),
            ("r.example.com:", "port"),
            ("r example.com", "host name"),
            ("r.example.com/Team", "path"),
            ("r.example.com/a?b=c", "path"),
            ("-r.example.com", "host name"),
        ] {
            let err = check_url(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("url: ") && err.contains(says),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn credentials_name_the_field_that_is_wrong() {
        assert!(check_credentials("deploy", "s3cret-pw").is_ok());
        for (user, password, field) in [
            ("", "s3cret-pw", "username"),
            ("  ", "s3cret-pw", "username"),
            ("a:b", "s3cret-pw", "username"),
            ("deploy", "abc", "password"),
            ("deploy", "line\nbreak", "password"),
        ] {
            let err = check_credentials(user, password).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{field}: ")), "{user:?}: {err}");
        }
    }

    #[test]
    fn only_an_admin_manages_the_registry() {
        let writer = Caller::token("w", capstan_core::Scopes::of([capstan_core::Scope::Write]));
        assert!(matches!(
            admin_only(&writer),
            Err(ActionError::Forbidden(_))
        ));
        assert!(admin_only(&Caller::daemon()).is_ok());
    }
}
