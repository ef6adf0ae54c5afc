//! Container labels: Capstan's own ownership labels and the Traefik labels that route to
//! a deployment.

use crate::render::DeploymentNames;
use capstan_core::AppSpec;
use std::collections::BTreeMap;

pub const INSTANCE: &str = "capstan.instance";
pub const APP: &str = "capstan.app";
pub const DEPLOYMENT: &str = "capstan.deployment";
pub const ROLE: &str = "capstan.role";
/// The ACME resolver defined in `proxy/traefik.yml.j2`.
pub const CERT_RESOLVER: &str = "letsencrypt";

/// Labels that say which daemon, app and deployment own a container.
pub fn ownership(instance: &str, app: &str, deployment: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (INSTANCE.to_string(), instance.to_string()),
        (APP.to_string(), app.to_string()),
        (DEPLOYMENT.to_string(), deployment.to_string()),
        (ROLE.to_string(), "app".to_string()),
    ])
}

/// Labels of an app's named data volume (kept when containers come and go).
pub fn volume(instance: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (INSTANCE.to_string(), instance.to_string()),
        (APP.to_string(), app.to_string()),
        (ROLE.to_string(), "data".to_string()),
    ])
}

/// Traefik labels for one deployment's container.
///
/// Each deployment defines its *own* Traefik service (`<app>-d<id>`) and its own router
/// (same name), so two versions side by side never collide ("defined multiple times with
/// different configurations"), even when the domains changed between them. Every router
/// sends traffic to `<app>@file`, which the daemon points at the serving deployment.
pub fn traefik(names: &DeploymentNames, spec: &AppSpec) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let id = &names.traefik_service;
    let mut put = |k: String, v: String| {
        labels.insert(k, v);
    };
    put("traefik.enable".into(), "true".into());
    put("traefik.docker.network".into(), names.network.clone());
    put(
        format!("traefik.http.services.{id}.loadbalancer.server.port"),
        spec.port.to_string(),
    );
    if !spec.domains.is_empty() {
        let rule = spec
            .domains
            .iter()
            .map(|d| format!("Host(`{}`)", d.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(" || ");
        let service = format!("{}@file", names.app_service);
        put(format!("traefik.http.routers.{id}.rule"), rule.clone());
        put(
            format!("traefik.http.routers.{id}.entrypoints"),
            "web".into(),
        );
        put(
            format!("traefik.http.routers.{id}.service"),
            service.clone(),
        );
        if spec.tls {
            // HTTPS router with a Let's Encrypt certificate; plain HTTP redirects to it.
            let secure = format!("{id}-secure");
            put(format!("traefik.http.routers.{secure}.rule"), rule);
            put(
                format!("traefik.http.routers.{secure}.entrypoints"),
                "websecure".into(),
            );
            put(format!("traefik.http.routers.{secure}.service"), service);
            put(format!("traefik.http.routers.{secure}.tls"), "true".into());
            put(
                format!("traefik.http.routers.{secure}.tls.certresolver"),
                CERT_RESOLVER.into(),
            );
            put(
                format!("traefik.http.routers.{id}.middlewares"),
                format!("{id}-https"),
            );
            put(
                format!("traefik.http.middlewares.{id}-https.redirectscheme.scheme"),
                "https".into(),
            );
            put(
                format!("traefik.http.middlewares.{id}-https.redirectscheme.permanent"),
                "true".into(),
            );
        }
    }
    labels
}
