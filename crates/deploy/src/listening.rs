//! The TCP ports a new container listens on, read inside it by `capstan-probe --listening`
//! (`/proc/net/tcp*` of the container's own network namespace), and what they decide for
//! an app whose port nothing names: the one port it listens on becomes its port, several
//! are an error that names them. Only ports the proxy can reach count (not loopback), and
//! only a reading seen twice in a row decides, so an app still opening its ports is not
//! judged half-way.

use crate::Deployer;
use capstan_compose::render::PROBE_PATH;
use std::time::Duration;

/// One listening socket as the probe prints it (`0.0.0.0:8000`, `[::]:8000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Socket {
    pub address: String,
    pub port: u16,
}

impl Socket {
    /// Whether only the container itself can connect to it.
    fn is_loopback(&self) -> bool {
        self.address.starts_with("127.") || self.address == "[::1]"
    }
}

/// The sockets in the probe's answer: `listening on 0.0.0.0:3000, [::]:3000` or `nothing
/// listens on any TCP port` (anything else reads as nothing).
pub(crate) fn parse_listening(output: &str) -> Vec<Socket> {
    let Some(list) = output.trim().strip_prefix("listening on ") else {
        return Vec::new();
    };
    list.split(", ")
        .filter_map(|entry| {
            let (address, port) = entry.trim().rsplit_once(':')?;
            Some(Socket {
                address: address.to_string(),
                port: port.parse().ok()?,
            })
        })
        .collect()
}

/// The ports of `sockets` the proxy can reach, sorted, each once.
pub(crate) fn reachable_ports(sockets: &[Socket]) -> Vec<u16> {
    let mut ports: Vec<u16> = sockets
        .iter()
        .filter(|s| !s.is_loopback())
        .map(|s| s.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// What one reading says about a port nothing named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The app listens on the port it was started with: keep it.
    Keep,
    /// Nothing reachable listens (yet).
    Nothing,
    /// Something listens, but this reading differs from the last: read again.
    Unsettled,
    /// It listens on this one port only.
    Use(u16),
    /// It listens on several ports, none of them the one it was started with.
    Several(Vec<u16>),
}

/// Readings of one container, compared with the last.
#[derive(Debug)]
pub(crate) struct PortWatch {
    started_with: u16,
    last: Option<Vec<u16>>,
}

impl PortWatch {
    pub(crate) fn new(started_with: u16) -> Self {
        Self {
            started_with,
            last: None,
        }
    }

    pub(crate) fn observe(&mut self, ports: Vec<u16>) -> Decision {
        if ports.contains(&self.started_with) {
            return Decision::Keep;
        }
        let same = self.last.as_ref() == Some(&ports);
        self.last = Some(ports.clone());
        match ports.as_slice() {
            [] => Decision::Nothing,
            _ if !same => Decision::Unsettled,
            [only] => Decision::Use(*only),
            _ => Decision::Several(ports),
        }
    }
}

/// The error for an app that names no port and listens on several.
pub(crate) fn several_ports(ports: &[u16], sockets: &[Socket]) -> String {
    let listed: Vec<String> = ports.iter().map(u16::to_string).collect();
    let shown: Vec<String> = sockets
        .iter()
        .map(|s| format!("{}:{}", s.address, s.port))
        .collect();
    let first = ports.first().copied().unwrap_or_default();
    format!(
        "the app names no port and listens on several: {} ({}); say which one serves HTTP: the \
         app's port setting, `port = {first}` in capstan.toml, or `EXPOSE {first}` in the \
         Dockerfile",
        listed.join(", "),
        shown.join(", ")
    )
}

impl Deployer {
    /// The sockets `container` listens on (none when the probe cannot run).
    pub(crate) async fn listening(&self, container: &str) -> Vec<Socket> {
        let argv = [PROBE_PATH.to_string(), "--listening".to_string()];
        let outcome = self
            .run_test(container, &argv, Duration::from_secs(3))
            .await;
        if outcome.passed {
            parse_listening(&outcome.output)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_answer_is_read() {
        let sockets = parse_listening("listening on 0.0.0.0:3000, [::]:3000, 127.0.0.1:9000");
        assert_eq!(sockets.len(), 3);
        assert_eq!(reachable_ports(&sockets), vec![3000]);
        assert!(parse_listening("nothing listens on any TCP port").is_empty());
        assert!(parse_listening("exit 0").is_empty());
        let v6 = parse_listening("listening on [::1]:5000, [ipv6]:7000");
        assert_eq!(reachable_ports(&v6), vec![7000]);
    }

    #[test]
    fn a_port_is_chosen_only_from_a_reading_seen_twice() {
        let mut watch = PortWatch::new(8080);
        assert_eq!(watch.observe(vec![]), Decision::Nothing);
        assert_eq!(watch.observe(vec![8000]), Decision::Unsettled);
        assert_eq!(watch.observe(vec![8000]), Decision::Use(8000));

        let mut watch = PortWatch::new(8080);
        assert_eq!(watch.observe(vec![8000]), Decision::Unsettled);
        assert_eq!(watch.observe(vec![8000, 9000]), Decision::Unsettled);
        assert_eq!(
            watch.observe(vec![8000, 9000]),
            Decision::Several(vec![8000, 9000])
        );

        // The port it was started with (the app reads PORT) is kept at once, whatever
        // else it opens.
        let mut watch = PortWatch::new(8080);
        assert_eq!(watch.observe(vec![8080, 9000]), Decision::Keep);
    }

    #[test]
    fn several_ports_are_named_with_how_to_choose() {
        let sockets = parse_listening("listening on 0.0.0.0:8000, 0.0.0.0:9000");
        let message = several_ports(&reachable_ports(&sockets), &sockets);
        assert!(
            message.contains("listens on several: 8000, 9000"),
            "{message}"
        );
        assert!(message.contains("0.0.0.0:8000, 0.0.0.0:9000"), "{message}");
        assert!(
            message.contains("`port = 8000` in capstan.toml"),
            "{message}"
        );
    }
}
