//! Moving an image between engines through a configured registry instead: tagged for the
//! registry on the source, pushed with the registry's credentials, pulled on the
//! destination with them, tagged back to the original reference; the registry tags are
//! removed from both engines afterwards. Credentials go only into the engine's
//! `X-Registry-Auth` header, never into a message or a log line.

use crate::transfer::{split_reference, tag_and_verify, RegistryStep, TransferError};
use crate::{is_not_found, Engine, EngineError};
use bollard::auth::DockerCredentials;
use bollard::image::{CreateImageOptions, PushImageOptions};
use futures::StreamExt;

/// A registry and the account Capstan pushes and pulls with.
#[derive(Clone)]
pub struct RegistryAuth {
    /// `host[:port]`, optionally with a path prefix (`registry.example.com/team`); an
    /// `https://` scheme is dropped.
    pub url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl RegistryAuth {
    /// The registry's address as references name it (`host:port[/prefix]`).
    fn prefix(&self) -> &str {
        let url = self.url.trim_end_matches('/');
        url.strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or(url)
    }

    /// The registry host (`host:port`), the key the engine's credentials are for.
    fn host(&self) -> &str {
        let prefix = self.prefix();
        prefix.split('/').next().unwrap_or(prefix)
    }

    fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.host().to_string()),
            ..Default::default()
        }
    }

    /// `reference` as it is named in this registry: its repository path (without any
    /// registry of its own) under the registry's prefix, same tag.
    pub fn reference_for(&self, reference: &str) -> String {
        let (repo, tag) = split_reference(reference);
        let path = match repo.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
            _ => repo.as_str(),
        };
        format!("{}/{path}:{tag}", self.prefix())
    }
}

/// What a move through a registry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryTransfer {
    pub image_id: String,
    /// The reference pushed and pulled.
    pub registry_reference: String,
}

/// Moves `reference` from `from` to `to` through the registry `auth` names.
pub async fn push_via_registry(
    from: &Engine,
    to: &Engine,
    reference: &str,
    auth: &RegistryAuth,
) -> Result<RegistryTransfer, EngineError> {
    let image_id = match from.image_id(reference).await? {
        Some(id) => id,
        None => {
            return Err(TransferError::UnknownImage {
                reference: reference.to_string(),
            }
            .into())
        }
    };
    let remote = auth.reference_for(reference);
    tag_and_verify(from, &image_id, &remote).await?;
    let pushed = push(from, &remote, auth).await;
    untag(from, &remote).await;
    pushed?;
    pull(to, &remote, auth).await?;
    let tagged = tag_and_verify(to, &image_id, reference).await;
    untag(to, &remote).await;
    tagged?;
    Ok(RegistryTransfer {
        image_id,
        registry_reference: remote,
    })
}

/// Removes a registry tag, keeping the image (it has its original tag too).
async fn untag(engine: &Engine, reference: &str) {
    if let Err(err) = engine.docker().remove_image(reference, None, None).await {
        if !is_not_found(&err) {
            tracing::warn!(reference, error = %err, "could not remove a registry tag");
        }
    }
}

fn registry_error(auth: &RegistryAuth, step: RegistryStep, message: String) -> EngineError {
    TransferError::Registry {
        registry: auth.host().to_string(),
        step,
        message,
    }
    .into()
}

async fn push(engine: &Engine, remote: &str, auth: &RegistryAuth) -> Result<(), EngineError> {
    let (repo, tag) = split_reference(remote);
    let options = PushImageOptions { tag };
    let stream = engine
        .docker()
        .push_image(&repo, Some(options), Some(auth.credentials()));
    first_error(stream, |info| info.error, auth, RegistryStep::Push).await
}

/// Reads a push or pull's progress to its end; the first error it reports, as the
/// registry's failure at `step`.
async fn first_error<T>(
    stream: impl futures::Stream<Item = Result<T, bollard::errors::Error>>,
    error_of: impl Fn(T) -> Option<String>,
    auth: &RegistryAuth,
    step: RegistryStep,
) -> Result<(), EngineError> {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let message = match item {
            Ok(info) => match error_of(info) {
                Some(error) => error,
                None => continue,
            },
            Err(bollard::errors::Error::DockerStreamError { error }) => error,
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => message,
            Err(err) => return Err(err.into()),
        };
        return Err(registry_error(auth, step, message));
    }
    Ok(())
}

async fn pull(engine: &Engine, remote: &str, auth: &RegistryAuth) -> Result<(), EngineError> {
    let (repo, tag) = split_reference(remote);
    let options = CreateImageOptions {
        from_image: repo,
        tag,
        ..Default::default()
    };
    let stream = engine
        .docker()
        .create_image(Some(options), None, Some(auth.credentials()));
    first_error(stream, |info| info.error, auth, RegistryStep::Pull).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(url: &str) -> RegistryAuth {
        RegistryAuth {
            url: url.into(),
            username: "deploy".into(),
            password: "hunter2-secret".into(),
        }
    }

    #[test]
    fn names_the_image_under_the_registry() {
        let registry = auth("https://10.250.0.1:5443/");
        assert_eq!(registry.reference_for("web:v3"), "10.250.0.1:5443/web:v3");
        assert_eq!(
            registry.reference_for("team/web"),
            "10.250.0.1:5443/team/web:latest"
        );
        assert_eq!(
            registry.reference_for("ghcr.io/team/web:1"),
            "10.250.0.1:5443/team/web:1"
        );
        let prefixed = auth("registry.example.com/capstan");
        assert_eq!(
            prefixed.reference_for("web:2"),
            "registry.example.com/capstan/web:2"
        );
        assert_eq!(prefixed.host(), "registry.example.com");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let shown = format!("{:?}", auth("r.example.com"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("deploy"));
    }
}
