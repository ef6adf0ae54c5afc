//! The fake host's proxy: route files kept as text, the services they define served at
//! once unless a fault says the proxy never confirms or the write is refused.

use super::{FakeTarget, Fault};
use crate::target::Router;
use async_trait::async_trait;
use capstan_engine::proxy::ProxySpec;
use capstan_engine::EngineError;

/// The services a route file defines and their server URLs.
fn services_in(text: &str) -> Vec<(String, Vec<String>)> {
    let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(text) else {
        return Vec::new();
    };
    let Some(services) = doc
        .get("http")
        .and_then(|h| h.get("services"))
        .and_then(|s| s.as_mapping())
    else {
        return Vec::new();
    };
    let url_of = |server: &serde_norway::Value| server.get("url")?.as_str().map(str::to_string);
    services
        .iter()
        .filter_map(|(name, service)| {
            let servers = service.get("loadBalancer")?.get("servers")?.as_sequence()?;
            let urls = servers.iter().filter_map(url_of).collect();
            Some((format!("{}@file", name.as_str()?), urls))
        })
        .collect()
}

#[async_trait]
impl Router for FakeTarget {
    async fn write_route(&self, name: &str, text: &str) -> Result<(), EngineError> {
        let refused = match &mut self.state().writes_allowed {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        };
        if refused || self.has(Fault::RouteWriteFails) {
            return Err(EngineError::Io(std::io::Error::other(
                "injected fault: the route directory is read-only",
            )));
        }
        let confirms = !self.has(Fault::ProxyNeverConfirms);
        let services = services_in(text);
        let mut state = self.state();
        let names = services.iter().map(|(s, _)| s.clone()).collect();
        state
            .route_files
            .insert(name.to_string(), (text.to_string(), names));
        if confirms {
            state.served.extend(services);
        }
        Ok(())
    }

    async fn remove_route(&self, name: &str) -> Result<(), EngineError> {
        let mut state = self.state();
        let (_, services) = state.route_files.remove(name).unwrap_or_default();
        for service in services {
            state.served.remove(&service);
        }
        Ok(())
    }

    async fn served_urls(&self, service: &str) -> Option<Vec<String>> {
        self.state().served.get(service).cloned()
    }

    async fn router_enabled(&self, _router: &str) -> bool {
        true
    }

    async fn acme_store(&self) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(None)
    }

    async fn proxy_log(&self, _lines: usize) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    async fn proxy_answers(&self) -> bool {
        true
    }

    async fn ensure_proxy(&self, _spec: &ProxySpec) -> Result<String, EngineError> {
        Ok(self.proxy_address())
    }

    fn proxy_address(&self) -> String {
        "http://proxy.fake".to_string()
    }

    fn set_proxy_address(&self, _address: String) {}
}
