//! A stack service (`capstan_compose::stack`) as the engine's `ServiceSpec`: the container
//! spec, its health check, mounts and overlay network, the replicated mode, the update and
//! rollback configs, and DNS round-robin endpoints (service VIPs are not relied on: the
//! proxy and companions address tasks directly). Pure.

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, Limit, Mount, MountTypeEnum,
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use capstan_compose::model::{parse_duration, Healthcheck, VolumeMount};
use capstan_compose::stack::{StackService, UpdateConfig};
use std::collections::HashMap;

/// Nanoseconds of a compose duration (0 when unreadable).
fn nanos(text: &str) -> i64 {
    parse_duration(text)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Bytes of a compose memory size (`"256M"`, `"1G"`, `"512k"`, plain bytes).
fn bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.trim_end_matches('b');
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let scale: i64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| (n * scale as f64) as i64)
}

fn health(h: &Healthcheck) -> HealthConfig {
    HealthConfig {
        test: Some(h.test.clone()),
        interval: Some(nanos(&h.interval)),
        timeout: Some(nanos(&h.timeout)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(nanos(&h.start_period)),
        start_interval: None,
    }
}

fn mount(m: &VolumeMount) -> Mount {
    Mount {
        target: Some(m.target.clone()),
        source: Some(m.source.clone()),
        typ: Some(if m.kind == "bind" {
            MountTypeEnum::BIND
        } else {
            MountTypeEnum::VOLUME
        }),
        read_only: Some(m.read_only),
        ..Default::default()
    }
}

fn update_config(c: &UpdateConfig) -> ServiceSpecUpdateConfig {
    ServiceSpecUpdateConfig {
        parallelism: Some(i64::from(c.parallelism)),
        delay: Some(nanos(&c.delay)),
        failure_action: Some(match c.failure_action.as_str() {
            "rollback" => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
            "continue" => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            _ => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
        }),
        monitor: Some(nanos(&c.monitor)),
        max_failure_ratio: Some(c.max_failure_ratio),
        order: Some(if c.order == "stop-first" {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        } else {
            ServiceSpecUpdateConfigOrderEnum::START_FIRST
        }),
    }
}

fn rollback_config(c: &UpdateConfig) -> ServiceSpecRollbackConfig {
    ServiceSpecRollbackConfig {
        parallelism: Some(i64::from(c.parallelism)),
        delay: Some(nanos(&c.delay)),
        failure_action: Some(if c.failure_action == "continue" {
            ServiceSpecRollbackConfigFailureActionEnum::CONTINUE
        } else {
            ServiceSpecRollbackConfigFailureActionEnum::PAUSE
        }),
        monitor: Some(nanos(&c.monitor)),
        max_failure_ratio: Some(c.max_failure_ratio),
        order: Some(if c.order == "stop-first" {
            ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
        } else {
            ServiceSpecRollbackConfigOrderEnum::START_FIRST
        }),
    }
}

fn container_spec(s: &StackService) -> TaskSpecContainerSpec {
    let mut env: Vec<String> = s
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.sort();
    TaskSpecContainerSpec {
        image: Some(s.image.clone()),
        labels: Some(s.labels.clone().into_iter().collect()),
        // Compose's `entrypoint` is the engine's Command, its `command` the Args.
        command: s.entrypoint.clone(),
        args: s.command.clone(),
        env: Some(env),
        dir: s.working_dir.clone(),
        user: s.user.clone(),
        mounts: Some(s.volumes.iter().map(mount).collect()),
        stop_signal: s.stop_signal.clone(),
        stop_grace_period: Some(nanos(&s.stop_grace_period)),
        health_check: s.healthcheck.as_ref().map(health),
        init: s.init,
        ..Default::default()
    }
}

/// The engine's spec of stack service `name`; `force_update` is the counter that, when it
/// changes, makes Swarm replace every task even if nothing else changed (a restart).
pub fn service_spec(name: &str, s: &StackService, force_update: i64) -> ServiceSpec {
    let resources = s.deploy.resources.as_ref().map(|r| TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: r
                .limits
                .cpus
                .as_deref()
                .and_then(|c| c.parse::<f64>().ok())
                .map(|c| (c * 1e9) as i64),
            memory_bytes: r.limits.memory.as_deref().and_then(bytes),
            pids: None,
        }),
        reservations: None,
    });
    let networks = s
        .networks
        .iter()
        .map(|(network, n)| NetworkAttachmentConfig {
            target: Some(network.clone()),
            aliases: Some(n.aliases.clone()),
            driver_opts: None,
        })
        .collect();
    let labels: HashMap<String, String> = s.deploy.labels.clone().into_iter().collect();
    ServiceSpec {
        name: Some(name.to_string()),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec(s)),
            resources,
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(nanos(&s.deploy.restart_policy.delay)),
                max_attempts: None,
                window: None,
            }),
            force_update: Some(force_update),
            networks: Some(networks),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(s.deploy.replicas)),
            }),
            ..Default::default()
        }),
        update_config: Some(update_config(&s.deploy.update_config)),
        rollback_config: Some(rollback_config(&s.deploy.rollback_config)),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_compose_writes_them() {
        assert_eq!(bytes("256M"), Some(256 << 20));
        assert_eq!(bytes("1g"), Some(1 << 30));
        assert_eq!(bytes("512k"), Some(512 << 10));
        assert_eq!(bytes("1000"), Some(1000));
        assert_eq!(bytes("12x"), None);
    }

    #[test]
    fn durations_become_nanoseconds() {
        assert_eq!(nanos("2s"), 2_000_000_000);
        assert_eq!(nanos("250ms"), 250_000_000);
        assert_eq!(nanos("nonsense"), 0);
    }
}
