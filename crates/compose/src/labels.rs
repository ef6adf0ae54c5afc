//! Container labels: Capstan's ownership labels. Containers carry no Traefik labels: the
//! proxy reads routes only from the files the daemon writes (see `routes`), so no label an
//! image brings can route a domain.

use std::collections::BTreeMap;

pub const INSTANCE: &str = "capstan.instance";
pub const APP: &str = "capstan.app";
pub const DEPLOYMENT: &str = "capstan.deployment";
pub const ROLE: &str = "capstan.role";
/// The commit an image was built from.
pub const COMMIT: &str = "capstan.commit";
/// The content key of a build (context, Dockerfile, stage, arguments).
pub const BUILD_KEY: &str = "capstan.build-key";
/// A hash of the proxy's settings, to tell when it must be recreated.
pub const FINGERPRINT: &str = "capstan.fingerprint";
/// A hash of a companion's definition (secrets included).
pub const DEFINITION: &str = "capstan.definition";
/// The compose service a companion runs.
pub const SERVICE: &str = "capstan.service";
/// The id of the one-off run a container belongs to (with role [`ROLE_RUN`]).
pub const RUN: &str = "capstan.run";
/// The role of a one-off run's container: not `app`, so no retirement, route, usage or
/// runtime log of the app ever counts it.
pub const ROLE_RUN: &str = "run";

/// `key=value`, as Docker's label filters take it.
pub fn filter(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

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
