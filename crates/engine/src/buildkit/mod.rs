//! Builds through the engine's BuildKit (`POST /build?version=2`): only the stages the
//! target needs, cache and secret mounts, platform arguments, with build secrets served
//! from a session instead of passed as build arguments. Progress arrives as BuildKit
//! messages and leaves as numbered log lines.

pub(crate) mod connection;
mod progress;
mod session;

pub use connection::EngineAddress;

use crate::images::BuildRequest;
use crate::{Engine, EngineError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use progress::{Event, Progress};
use tokio::sync::mpsc::UnboundedSender;

/// Whether the engine at `address` opens BuildKit sessions (an engine that claims a
/// recent API but lacks BuildKit, like some compatible engines, refuses `/session`).
pub(crate) async fn offers_sessions(address: &EngineAddress, api_version: &str) -> bool {
    match session::open(address, api_version, Default::default()).await {
        Ok(session) => {
            drop(session);
            true
        }
        Err(err) => {
            tracing::info!("BuildKit is not used: {err}");
            false
        }
    }
}

impl Engine {
    /// Builds `request` with BuildKit; returns the image id.
    pub(crate) async fn build_with_buildkit(
        &self,
        request: BuildRequest,
        log: &UnboundedSender<String>,
    ) -> Result<String, EngineError> {
        let api = self.api_version();
        let secrets = request
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let session = session::open(self.address(), &api, secrets).await?;
        let json = |map| serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("version", "2")
                .append_pair("session", &session.id)
                .append_pair("t", &request.tag)
                .append_pair("dockerfile", &request.dockerfile)
                .append_pair("buildargs", &json(&request.build_args))
                .append_pair("labels", &json(&request.labels))
                .append_pair("rm", "1")
                .append_pair("forcerm", "1");
            if let Some(target) = &request.target {
                query.append_pair("target", target);
            }
            if request.no_cache {
                query.append_pair("nocache", "1");
            }
            query.finish()
        };
        let http = hyper::Request::post(format!("/v{api}/build?{query}"))
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::CONTENT_TYPE, "application/x-tar")
            .body(Full::new(Bytes::from(request.context_tar)))
            .map_err(|e| EngineError::Build(format!("build request: {e}")))?;
        let response = connection::send(self.address(), http).await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let text = body.map(|b| String::from_utf8_lossy(&b).into_owned());
            let message = text
                .ok()
                .and_then(|t| {
                    let json = serde_json::from_str::<serde_json::Value>(&t).ok();
                    json.and_then(|j| j["message"].as_str().map(str::to_string))
                        .or(Some(t))
                })
                .unwrap_or_default();
            return Err(EngineError::Build(format!(
                "the engine refused the build ({status}): {}",
                message.trim()
            )));
        }
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        let mut progress = Progress::default();
        let mut image_id = None;
        let mut failure = None;
        let mut read = |line: &[u8]| match progress.read(line) {
            Event::Lines(lines) => {
                for line in lines.into_iter().filter(|l| !l.is_empty()) {
                    let _ = log.send(line);
                }
            }
            Event::ImageId(id) => image_id = Some(id),
            Event::Error(error) => {
                let _ = log.send(format!("error: {error}"));
                failure = Some(error);
            }
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| EngineError::Build(format!("build stream: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                if !line.trim_ascii().is_empty() {
                    read(line.trim_ascii());
                }
            }
        }
        if !buffer.trim_ascii().is_empty() {
            read(buffer.trim_ascii());
        }
        drop(session);
        if let Some(error) = failure {
            return Err(EngineError::Build(error));
        }
        match image_id {
            Some(id) => Ok(id),
            None => self.image_id(&request.tag).await?.ok_or_else(|| {
                EngineError::Build(format!("build finished but {} is missing", request.tag))
            }),
        }
    }
}
