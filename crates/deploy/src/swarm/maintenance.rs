//! Maintenance mode on a swarm server: the app's own routers are its service's labels, so
//! its route file holds only the maintenance router (above them), its headers and the page
//! server's service, rendered by the same template as anywhere and stripped of the rest;
//! maintenance off removes the file.

use crate::pipeline::Failure;
use crate::Deployer;
use capstan_compose::routes::{render_routes, MaintenanceRoute, RouteTarget};
use capstan_compose::stack::maintenance_only;
use capstan_core::AppName;

impl Deployer {
    /// Writes (maintenance on) or removes (off) the app's maintenance route on this swarm
    /// server; whether the proxy's maintenance router is to be waited for.
    pub(crate) async fn swarm_maintenance_route(&self, app: &AppName) -> Result<bool, Failure> {
        let names = self.target().names().app(app);
        let Some(record) = self.store().maintenance(app).await? else {
            self.target().remove_route(&names.route_file()).await?;
            return Ok(true);
        };
        let spec = self.store().app(app).await?.spec;
        let target = RouteTarget {
            domains: spec.domains.clone(),
            tls: spec.tls,
            containers: Vec::new(),
            port: spec.listen_port(),
            maintenance: Some(MaintenanceRoute {
                message: record.page.message,
                retry_after_secs: record.page.retry_after_secs,
                passthrough_path: Some(spec.health.path.clone()),
                pages_url: self.target().names().maintenance_pages_url(),
            }),
        };
        let text = render_routes(&names, &target, self.settings().proxy_https_port)?;
        match maintenance_only(&text, &names)
            .map_err(|e| Failure::msg(format!("the maintenance route: {e}")))?
        {
            Some(text) => {
                self.target()
                    .write_route(&names.route_file(), &text)
                    .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_core::InstanceNames;

    #[test]
    fn only_the_maintenance_router_and_its_parts_stay() {
        let app = AppName::parse("shop").unwrap();
        let names = InstanceNames::new("ns").app(&app);
        let target = RouteTarget {
            domains: vec!["shop.example".into()],
            tls: true,
            containers: Vec::new(),
            port: 8080,
            maintenance: Some(MaintenanceRoute {
                message: "back soon".into(),
                retry_after_secs: 60,
                passthrough_path: Some("/health".into()),
                pages_url: "http://pages:8080".into(),
            }),
        };
        let text = render_routes(&names, &target, 443).unwrap();
        let only = maintenance_only(&text, &names)
            .unwrap()
            .expect("a maintenance route");
        assert!(only.contains(&names.maintenance_router()), "{only}");
        assert!(only.contains("http://pages:8080"), "{only}");
        assert!(
            !only.contains(&format!("{}:", names.http_router())),
            "{only}"
        );
        assert!(
            !only.contains(&format!("{}:", names.traefik_service())),
            "{only}"
        );
        let none = RouteTarget {
            domains: Vec::new(),
            tls: false,
            ..target
        };
        let text = render_routes(&names, &none, 443).unwrap();
        assert_eq!(maintenance_only(&text, &names).unwrap(), None);
    }
}
