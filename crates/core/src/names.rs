//! Every name Capstan gives a Docker object or a proxy entry, built in one place.
//!
//! The scheme keeps the daemon's own objects and each app's objects apart by
//! construction: instance and app names are DNS labels (`a-z`, `0-9`, `-`), so they never
//! contain `_`.
//! - the daemon's objects are `<instance>-<role>` and never contain `_`
//!   (`capstan-proxy`, `capstan-probe`, `capstan-control`);
//! - an app's objects are `<instance>_<app>` or start with `<instance>_<app>_`, so no app
//!   name can reach the daemon's objects, and app `x` with volume `y-data`
//!   (`capstan_x_y-data`) never meets app `x-y` with volume `data` (`capstan_x-y_data`);
//! - within an app, deployment containers are `…_d<id>[_r<k>]`, companions
//!   `…_svc_<service>`, one-off runs `…_run<id>`, so none of them meet.

use crate::AppName;

/// The port the maintenance page server listens on inside its container.
pub const MAINTENANCE_PAGES_PORT: u16 = 8080;

/// The names of the objects one daemon instance owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceNames {
    instance: String,
}

impl InstanceNames {
    pub fn new(instance: &str) -> Self {
        Self {
            instance: instance.to_string(),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The Traefik container.
    pub fn proxy_container(&self) -> String {
        format!("{}-proxy", self.instance)
    }

    /// The proxy's ACME certificate store.
    pub fn proxy_data_volume(&self) -> String {
        format!("{}-proxy-data", self.instance)
    }

    /// The network only the proxy is on; Traefik's API listens on this network alone.
    pub fn control_network(&self) -> String {
        format!("{}-control", self.instance)
    }

    /// The proxy's DNS name on the control network, which its API entrypoint binds to.
    pub fn proxy_api_alias(&self) -> String {
        format!("{}-proxy-api", self.instance)
    }

    /// The read-only volume holding the health probe binary.
    pub fn probe_volume(&self) -> String {
        format!("{}-probe", self.instance)
    }

    /// The short-lived container that fills the probe volume.
    pub fn probe_installer(&self) -> String {
        format!("{}-probe-installer", self.instance)
    }

    /// The one-off container that measures the disk under the engine's data root
    /// (`capstan-probe --disk`); `nonce` keeps concurrent measurements apart.
    pub fn disk_probe(&self, nonce: &str) -> String {
        format!("{}-disk-probe-{nonce}", self.instance)
    }

    /// The container that serves maintenance pages to the proxy (on the control network).
    pub fn maintenance_pages(&self) -> String {
        format!("{}-pages", self.instance)
    }

    /// Where the proxy reaches the maintenance pages.
    pub fn maintenance_pages_url(&self) -> String {
        format!(
            "http://{}:{MAINTENANCE_PAGES_PORT}",
            self.maintenance_pages()
        )
    }

    /// Names of one app's objects.
    pub fn app(&self, app: &AppName) -> AppNames {
        AppNames {
            instance: self.instance.clone(),
            app: app.to_string(),
        }
    }
}

/// The names of one app's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppNames {
    instance: String,
    app: String,
}

impl AppNames {
    fn prefix(&self) -> String {
        format!("{}_{}", self.instance, self.app)
    }

    /// The compose project and the app's private network: the app's containers and the
    /// proxy are on it, no other app is.
    pub fn network(&self) -> String {
        self.prefix()
    }

    /// The compose project name of the app's specs.
    pub fn project(&self) -> String {
        self.prefix()
    }

    /// The engine name of the app's named volume `volume`.
    pub fn volume(&self, volume: &str) -> String {
        format!("{}_{volume}", self.prefix())
    }

    /// The container of a compose companion service.
    pub fn companion(&self, service: &str) -> String {
        format!("{}_svc_{service}", self.prefix())
    }

    /// The one-off container of run `id` (a command run in a fresh container of the live
    /// release; never `_d<id>` or `_svc_`, so it meets no deployment or companion).
    pub fn run_container(&self, id: i64) -> String {
        format!("{}_run{id}", self.prefix())
    }

    /// Names of one deployment of the app.
    pub fn deployment(&self, id: i64) -> DeploymentObjectNames {
        DeploymentObjectNames {
            container: format!("{}_d{id}", self.prefix()),
        }
    }

    /// The image a deployment builds for the app.
    pub fn image(&self, deployment: &str) -> String {
        format!("{}/{}:{deployment}", self.instance, self.app)
    }

    /// What every image tag the daemon built for the app starts with.
    pub fn image_prefix(&self) -> String {
        format!("{}/{}:", self.instance, self.app)
    }

    /// The image a deployment builds for a compose companion service.
    pub fn companion_image(&self, service: &str, deployment: &str) -> String {
        let service = service.to_ascii_lowercase();
        format!("{}/{}/{service}:{deployment}", self.instance, self.app)
    }

    /// The per-app route file of the proxy (without `.yml`).
    pub fn route_file(&self) -> String {
        self.app.clone()
    }

    /// The Traefik service (file provider) the app's routers send to.
    pub fn traefik_service(&self) -> String {
        self.app.clone()
    }

    /// The app's plain-HTTP router.
    pub fn http_router(&self) -> String {
        format!("{}_http", self.app)
    }

    /// The app's HTTPS router (when TLS is on).
    pub fn https_router(&self) -> String {
        format!("{}_https", self.app)
    }

    /// The middleware that redirects the app's HTTP to HTTPS.
    pub fn https_redirect(&self) -> String {
        format!("{}_to_https", self.app)
    }

    /// The router that answers for the app while it is in maintenance.
    pub fn maintenance_router(&self) -> String {
        format!("{}_maintenance", self.app)
    }

    /// The middleware that hands the app's maintenance message to the page server.
    pub fn maintenance_headers(&self) -> String {
        format!("{}_maintenance_message", self.app)
    }

    /// The Traefik service of the maintenance page server, as the app's routes use it.
    pub fn maintenance_service(&self) -> String {
        format!("{}_maintenance_pages", self.app)
    }
}

/// The names of one deployment's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentObjectNames {
    container: String,
}

impl DeploymentObjectNames {
    /// The first (or only) container.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The containers of a deployment with `replicas` containers: the first keeps the
    /// deployment's name, the others add `_r2`, `_r3`, ...
    pub fn replicas(&self, replicas: u32) -> Vec<String> {
        (1..=replicas.max(1))
            .map(|k| {
                if k == 1 {
                    self.container.clone()
                } else {
                    format!("{}_r{k}", self.container)
                }
            })
            .collect()
    }

    /// The one-off container that runs the pre-deploy command.
    pub fn pre_deploy(&self) -> String {
        format!("{}_pre", self.container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppNames {
        InstanceNames::new("capstan").app(&AppName::parse(name).unwrap())
    }

    #[test]
    fn app_objects_never_meet_the_daemons_objects() {
        let daemon = InstanceNames::new("capstan");
        let own = [
            daemon.proxy_container(),
            daemon.proxy_data_volume(),
            daemon.control_network(),
            daemon.probe_volume(),
            daemon.probe_installer(),
        ];
        for name in ["proxy", "probe", "control", "proxy-data", "probe-installer"] {
            let a = app(name);
            let theirs = [
                a.network(),
                a.volume("data"),
                a.companion("db"),
                a.deployment(1).container().to_string(),
            ];
            for object in theirs {
                assert!(!own.contains(&object), "{object}");
                assert!(object.contains('_'));
            }
        }
        assert!(own.iter().all(|o| !o.contains('_')));
    }

    #[test]
    fn names_are_unambiguous_across_apps() {
        assert_ne!(app("x").volume("y-data"), app("x-y").volume("data"));
        assert_ne!(app("x").companion("d1"), app("x").deployment(1).container());
        assert_ne!(
            app("x").deployment(1).replicas(2)[1],
            app("x-d1").deployment(2).container()
        );
        assert_ne!(app("x").http_router(), app("x-http").traefik_service());
        assert_ne!(app("x").run_container(1), app("x").companion("run1"));
        assert_ne!(
            app("x").run_container(1),
            app("x-run1").deployment(1).container()
        );
        assert_eq!(app("web").run_container(3), "capstan_web_run3");
        assert_eq!(
            app("web").deployment(7).replicas(2),
            vec!["capstan_web_d7", "capstan_web_d7_r2"]
        );
    }
}
