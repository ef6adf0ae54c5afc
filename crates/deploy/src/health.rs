//! Health gating during a deployment. The daemon runs the container's health test itself
//! (Capstan's probe, or the image's own `HEALTHCHECK`) through `docker exec`, at the app's
//! interval and from the moment the container starts, so a deploy is not held back by
//! Docker's first-check delay; Docker's own check, the same test, then runs only every 30
//! seconds or more for the container's life. When the test fails with "connection
//! refused", the failure says which ports the container really listens on.

use crate::listening::{reachable_ports, several_ports, Decision, PortWatch};
use crate::logs::DeployLog;
use crate::pipeline::Failure;
use crate::Deployer;
use capstan_compose::render::PROBE_PATH;
use capstan_compose::Service;
use capstan_core::duration::parse_duration;
use capstan_core::AppSpec;
use capstan_engine::containers::Health;
use std::time::{Duration, Instant};

/// The test a deployment waits on, and how patiently.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateCheck {
    /// What runs in the container (`None`: no test, running is healthy).
    argv: Option<Vec<String>>,
    interval: Duration,
    timeout: Duration,
    retries: u32,
    start_period: Duration,
    deadline: Duration,
}

impl GateCheck {
    /// The rendered service's health test, on the app's own schedule (not the longer one
    /// Docker keeps after the cutover).
    pub(crate) fn of(service: &Service, spec: &AppSpec) -> Self {
        let health = &spec.health;
        let argv = service
            .healthcheck
            .as_ref()
            .and_then(|h| exec_argv(&h.test));
        let timeout = service
            .healthcheck
            .as_ref()
            .and_then(|h| parse_duration(&h.timeout))
            .map(|d| d.as_secs_f64())
            .unwrap_or(health.timeout_secs);
        GateCheck {
            argv,
            interval: Duration::from_secs_f64(health.interval_secs.max(0.05)),
            timeout: Duration::from_secs_f64(timeout.max(0.1)),
            retries: health.retries.max(1),
            start_period: Duration::from_secs_f64(health.start_period_secs.max(0.0)),
            deadline: Duration::from_secs(health.deadline_secs as u64),
        }
    }
}

/// A compose health test as argv for `docker exec`: `CMD` runs its arguments,
/// `CMD-SHELL` runs its string with `/bin/sh -c` (as Docker does); `NONE` is no test.
fn exec_argv(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

/// One run of the test: passed, and what it printed (or why it could not run).
pub(crate) struct Outcome {
    pub passed: bool,
    pub output: String,
}

/// How a container's health gate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Healthy,
    /// The app names no port and listens on this one only: it is to run on it.
    ListensOn(u16),
}

/// Where the port of an app that names none stands after one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortStand {
    /// Named, or the app listens on the port it was started with.
    Known,
    /// Nothing reachable listens.
    Nothing,
    /// Something listens; another reading decides.
    Reading,
    Use(u16),
}

impl Deployer {
    /// Runs the health test in `container` until it passes. Fails when the container
    /// stops, when the test fails `retries` times in a row after the start period, or at
    /// the deadline; the failure carries the container's last output lines (copied into
    /// the log) and, for a refused connection, the ports it listens on. `open` is the port
    /// it was started with when nothing named one: then what it listens on may decide
    /// another ([`Gate::ListensOn`]), before the test's failures count.
    pub(crate) async fn wait_healthy(
        &self,
        container: &str,
        check: &GateCheck,
        open: Option<u16>,
        log: &DeployLog,
    ) -> Result<Gate, Failure> {
        let started = Instant::now();
        let mut watch = open.map(PortWatch::new);
        let Some(argv) = &check.argv else {
            log.info(format!(
                "{container} has no health check; running counts as healthy"
            ))
            .await;
            self.wait_running(container, log).await?;
            return self
                .settle_port_without_test(container, watch, check, log)
                .await;
        };
        log.info(format!(
            "waiting for {container} to be healthy ({}, every {:.2}s, up to {}s)",
            argv.join(" "),
            check.interval.as_secs_f64(),
            check.deadline.as_secs()
        ))
        .await;
        // Failures within the first interval do not count: Docker would not have run its
        // first check yet, and an app needs a moment to open its port.
        let grace = check.start_period + check.interval;
        let mut failures = 0;
        let mut last_shown: Option<String> = None;
        loop {
            if let Some(detail) = stopped(self.target().health(container).await?) {
                self.publish(crate::events::DeployEvent::HealthCheckFailed {
                    container: container.to_string(),
                });
                self.copy_container_logs(container, log).await;
                let last = last_shown.unwrap_or_else(|| "no probe result yet".into());
                return Err(Failure::msg(format!(
                    "{container} stopped before it was healthy: {detail}; last health result: {last}"
                )));
            }
            let outcome = self.run_test(container, argv, check.timeout).await;
            let stand = self.read_port(container, &mut watch, log).await?;
            if let PortStand::Use(port) = stand {
                return Ok(Gate::ListensOn(port));
            }
            if outcome.passed && stand != PortStand::Reading {
                log.info(format!("health probe: {}", outcome.output)).await;
                log.info(format!(
                    "{container} is healthy after {:.1}s",
                    started.elapsed().as_secs_f64()
                ))
                .await;
                return Ok(Gate::Healthy);
            }
            if last_shown.as_deref() != Some(outcome.output.as_str()) {
                log.info(format!("health probe: {}", outcome.output)).await;
                last_shown = Some(outcome.output.clone());
            }
            // While a listening port is being read, a failed test is no verdict yet.
            if started.elapsed() >= grace && stand != PortStand::Reading {
                failures += 1;
            }
            let why = if failures >= check.retries {
                Some(format!(
                    "health check failed {} times in a row",
                    check.retries
                ))
            } else if started.elapsed() >= check.deadline {
                Some(format!("not healthy after {}s", check.deadline.as_secs()))
            } else {
                None
            };
            if let Some(why) = why {
                self.publish(crate::events::DeployEvent::HealthCheckFailed {
                    container: container.to_string(),
                });
                self.copy_container_logs(container, log).await;
                let hint = self.refused_hint(container, &outcome.output).await;
                return Err(Failure::msg(format!(
                    "{why}; last result: {}{hint}",
                    outcome.output
                )));
            }
            tokio::time::sleep(check.interval).await;
        }
    }

    /// One reading of the ports an app that names none listens on (`watch` is `None` once
    /// the port is known). Several ports fail the deployment, naming them.
    async fn read_port(
        &self,
        container: &str,
        watch: &mut Option<PortWatch>,
        log: &DeployLog,
    ) -> Result<PortStand, Failure> {
        let Some(reading) = watch.as_mut() else {
            return Ok(PortStand::Known);
        };
        let sockets = self.listening(container).await;
        match reading.observe(reachable_ports(&sockets)) {
            Decision::Keep => {
                *watch = None;
                log.info(format!(
                    "{container} listens on the port it was given as PORT; the port stays"
                ))
                .await;
                Ok(PortStand::Known)
            }
            Decision::Nothing => Ok(PortStand::Nothing),
            Decision::Unsettled => Ok(PortStand::Reading),
            Decision::Use(port) => {
                log.info(format!(
                    "port {port} (found listening: no setting, capstan.toml, compose ports or \
                     image EXPOSE names a port, and {container} listens on {port} only); the \
                     new containers start again on it (set the app's port to name it)"
                ))
                .await;
                Ok(PortStand::Use(port))
            }
            Decision::Several(ports) => {
                self.publish(crate::events::DeployEvent::HealthCheckFailed {
                    container: container.to_string(),
                });
                self.copy_container_logs(container, log).await;
                Err(Failure::msg(several_ports(&ports, &sockets)))
            }
        }
    }

    /// Without a health test, an app that names no port is still read for the one it
    /// listens on: until a reading is seen twice (up to the health deadline), or, while
    /// nothing listens, for the start period and two intervals (a worker listens nowhere).
    async fn settle_port_without_test(
        &self,
        container: &str,
        mut watch: Option<PortWatch>,
        check: &GateCheck,
        log: &DeployLog,
    ) -> Result<Gate, Failure> {
        let started = Instant::now();
        while watch.is_some() && started.elapsed() < check.deadline {
            match self.read_port(container, &mut watch, log).await? {
                PortStand::Use(port) => return Ok(Gate::ListensOn(port)),
                PortStand::Reading => tokio::time::sleep(check.interval).await,
                PortStand::Nothing
                    if started.elapsed() < check.start_period + 2 * check.interval =>
                {
                    tokio::time::sleep(check.interval).await
                }
                PortStand::Known | PortStand::Nothing => break,
            }
        }
        Ok(Gate::Healthy)
    }

    /// Without a health test: the container must still be running a moment after start.
    async fn wait_running(&self, container: &str, log: &DeployLog) -> Result<(), Failure> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match self.target().health(container).await?.health {
            Health::Down(detail) => {
                self.publish(crate::events::DeployEvent::HealthCheckFailed {
                    container: container.to_string(),
                });
                self.copy_container_logs(container, log).await;
                Err(Failure::msg(format!(
                    "{container} stopped right after it started: {detail}"
                )))
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn run_test(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Outcome {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Docker's own limit is the timeout; the exec round trip gets a second more.
        let ran = self
            .target()
            .exec(container, argv, timeout + Duration::from_secs(1), &tx)
            .await;
        drop(tx);
        let mut lines = Vec::new();
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        let printed = lines.join(" ").trim().to_string();
        match ran {
            Ok(0) => Outcome {
                passed: true,
                output: nonempty(printed, "exit 0"),
            },
            Ok(code) => Outcome {
                passed: false,
                output: format!("exit {code}: {}", nonempty(printed, "(no output)")),
            },
            Err(err) => Outcome {
                passed: false,
                output: format!("the test could not run: {err}"),
            },
        }
    }

    /// For a refused connection: the TCP ports the container listens on (read from
    /// `/proc/net/tcp*` by the probe, inside the container) and those its image exposes.
    async fn refused_hint(&self, container: &str, output: &str) -> String {
        if !output.to_ascii_lowercase().contains("refused") {
            return String::new();
        }
        let argv = [PROBE_PATH.to_string(), "--listening".to_string()];
        let listening = self
            .run_test(container, &argv, Duration::from_secs(3))
            .await;
        let listening = listening
            .output
            .trim_start_matches("exit 0")
            .trim()
            .to_string();
        let exposed = match self.target().container_image(container).await {
            Ok(Some(image)) => match self.target().image_facts(&image).await {
                Ok(facts) if facts.exposed_ports.is_empty() => "the image exposes no port".into(),
                Ok(facts) => format!(
                    "the image exposes {}",
                    facts
                        .exposed_ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(_) => String::new(),
            },
            _ => String::new(),
        };
        format!(
            ". Nothing listens on the app's port: {listening}; {exposed}. Set the app's port \
             (or PORT) to the one the app uses, or make the app listen on $PORT"
        )
    }

    pub(crate) async fn copy_container_logs(&self, container: &str, log: &DeployLog) {
        match self.target().tail_logs(container, 50).await {
            Ok(lines) if !lines.is_empty() => {
                log.info(format!(
                    "last {} lines of {container}'s output:",
                    lines.len()
                ))
                .await;
                for line in lines {
                    log.line("container", &line).await;
                }
            }
            Ok(_) => log.info(format!("{container} printed nothing")).await,
            Err(err) => {
                log.info(format!("cannot read {container}'s output: {err}"))
                    .await
            }
        }
    }
}

fn nonempty(text: String, fallback: &str) -> String {
    if text.is_empty() {
        fallback.to_string()
    } else {
        text
    }
}

/// Why a container that should be starting is not: it is down, or it already exited and
/// was restarted by its restart policy (then it may look running between restarts).
fn stopped(report: capstan_engine::containers::HealthReport) -> Option<String> {
    match report.health {
        Health::Down(detail) => Some(detail),
        _ if report.restart_count > 0 => Some(format!(
            "it exited and was restarted {} time(s)",
            report.restart_count
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_tests_become_exec_argv() {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            exec_argv(&v(&["CMD", "/probe", "http://x/"])),
            Some(v(&["/probe", "http://x/"]))
        );
        assert_eq!(
            exec_argv(&v(&["CMD-SHELL", "curl -f localhost || exit 1"])),
            Some(v(&["/bin/sh", "-c", "curl -f localhost || exit 1"]))
        );
        assert_eq!(exec_argv(&v(&["NONE"])), None);
        assert_eq!(exec_argv(&v(&["CMD"])), None);
        assert_eq!(exec_argv(&[]), None);
    }
}
