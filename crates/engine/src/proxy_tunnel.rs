//! Traefik's API reached through byte streams the caller opens (on a remote server, an
//! SSH `direct-tcpip` channel to the API's address there, which nothing here can reach
//! directly): one HTTP/1 GET per stream, bounded by a timeout, and what Capstan reads
//! from the answers (a service's server URLs, whether a router is enabled, the ping).

use crate::dial::Dialer;
use crate::EngineError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HOST;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// How long one API request may take, as for the local client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of an answer that is read.
const MAX_BODY: usize = 4 << 20;

/// Traefik's API through streams from a [`Dialer`].
#[derive(Debug, Clone)]
pub struct TunneledProxyApi {
    dialer: Dialer,
}

impl TunneledProxyApi {
    pub fn new(dialer: Dialer) -> Self {
        Self { dialer }
    }

    /// Where the streams go, for messages.
    pub fn describe(&self) -> String {
        self.dialer.to_string()
    }

    /// One GET of `path` on a new stream: the status and the body.
    pub async fn get(&self, path: &str) -> Result<(u16, Bytes), EngineError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_unbounded(path))
            .await
            .map_err(|_| {
                EngineError::Timeout(format!("GET {path} from the proxy at {}", self.dialer))
            })?
    }

    async fn get_unbounded(&self, path: &str) -> Result<(u16, Bytes), EngineError> {
        let stream = self.dialer.open().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| self.failed(path, &err))?;
        let driver = tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, "traefik")
            .body(Empty::<Bytes>::new())
            .map_err(|err| self.failed(path, &err))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| self.failed(path, &err))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|err| EngineError::Proxy(format!("GET {path}: {err}")))?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }

    fn failed(&self, path: &str, err: &dyn std::fmt::Display) -> EngineError {
        EngineError::Proxy(format!("GET {path} from {}: {err}", self.dialer))
    }

    async fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        match self.get(path).await {
            Ok((200..=299, body)) => serde_json::from_slice(&body).ok(),
            _ => None,
        }
    }

    /// Whether Traefik answers its ping.
    pub async fn is_up(&self) -> bool {
        matches!(self.get("/ping").await, Ok((200..=299, _)))
    }

    /// The server URLs of the load-balanced service `name` (e.g. `web@file`) in force;
    /// `None` when Traefik does not know the service (or does not answer).
    pub async fn server_urls(&self, name: &str) -> Option<Vec<String>> {
        let value = self.get_json(&format!("/api/http/services/{name}")).await?;
        service_urls(&value)
    }

    /// Whether Traefik has the router `name` (e.g. `web_http@file`) enabled.
    pub async fn router_enabled(&self, name: &str) -> bool {
        self.get_json(&format!("/api/http/routers/{name}"))
            .await
            .is_some_and(|v| router_is_enabled(&v))
    }
}

/// The server URLs of a service as `/api/http/services/{name}` describes it.
pub(crate) fn service_urls(service: &serde_json::Value) -> Option<Vec<String>> {
    let servers = service.get("loadBalancer")?.get("servers")?.as_array()?;
    Some(
        servers
            .iter()
            .filter_map(|s| s.get("url")?.as_str().map(str::to_string))
            .collect(),
    )
}

/// Whether a router as `/api/http/routers/{name}` describes it is enabled.
pub(crate) fn router_is_enabled(router: &serde_json::Value) -> bool {
    router.get("status").and_then(|s| s.as_str()) == Some("enabled")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_urls_and_router_status_from_traefiks_answers() {
        let service = json!({"loadBalancer": {"servers": [{"url": "http://a:80"}, {"x": 1}]}});
        assert_eq!(
            service_urls(&service),
            Some(vec!["http://a:80".to_string()])
        );
        assert_eq!(service_urls(&json!({"weighted": {}})), None);
        assert!(router_is_enabled(&json!({"status": "enabled"})));
        assert!(!router_is_enabled(&json!({"status": "disabled"})));
        assert!(!router_is_enabled(&json!({})));
    }
}
