//! The servers page's actions (admin, as the API): add a server from the form (every
//! problem at once beside its field; on success the `authorized_keys` line to copy and
//! the next step), run a server's preflight checks (each check's outcome said once), and
//! remove one (refused for `local` and while apps target it, with the API's words).

use crate::panel::page::PanelError;
use crate::panel::servers_page::{servers_page, Typed};
use crate::panel::session::{FormFields, Posted};
use crate::panel::settings_form::FieldErrors;
use crate::panel::{Flash, FlashCheck};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use capstan_core::{Scope, ServerKind, ServerName, ServerSpec, ValidationError};
use std::collections::BTreeMap;

/// Checks of one spec at most (there are fewer fields than this).
const MAX_ROUNDS: usize = 16;

/// What was typed, trimmed.
fn typed(fields: &FormFields) -> Typed {
    let get = |name: &str| fields.get(name).trim().to_string();
    Typed {
        name: get("name"),
        kind: get("kind"),
        host: get("host"),
        port: get("port"),
        user: get("user"),
        host_key_fingerprint: get("host_key_fingerprint"),
        docker_socket: get("docker_socket"),
        proxy_http_port: get("proxy_http_port"),
        proxy_https_port: get("proxy_https_port"),
        namespace: get("namespace"),
    }
}

/// A port field: empty is `None`, else a number from 1 to 65535.
fn port(raw: &str, field: &str, errors: &mut FieldErrors) -> Option<u16> {
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<u16>() {
        Ok(port) if port > 0 => Some(port),
        _ => {
            errors.insert(
                field.into(),
                format!("{raw:?} is not a port: give a number from 1 to 65535."),
            );
            None
        }
    }
}

fn optional(raw: &str) -> Option<String> {
    (!raw.is_empty()).then(|| raw.to_string())
}

/// A validation problem in the user's words: the reason, capitalised, as a sentence.
fn in_words(problem: &ValidationError) -> String {
    let mut chars = problem.reason.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return "Not valid.".into(),
    };
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// Puts a field the validation refused back to a value it accepts, so the next round
/// finds the next problem. False for a field it does not know (the rounds stop).
fn put_back(spec: &mut ServerSpec, field: &str) -> bool {
    match field {
        "kind" => spec.kind = ServerKind::Ssh,
        "host" => spec.host = "localhost".into(),
        "port" => spec.port = 22,
        "user" => spec.user = "root".into(),
        "host_key_fingerprint" => spec.host_key_fingerprint = None,
        "build_slots" => spec.build_slots = None,
        "proxy_http_port" => spec.proxy_http_port = None,
        "proxy_https_port" => spec.proxy_https_port = None,
        "namespace" => spec.namespace = None,
        "docker_socket" => spec.docker_socket = None,
        "labels" => spec.labels = BTreeMap::new(),
        _ => return false,
    }
    true
}

/// The server the form asks for, or every problem of it at once: the fields that do not
/// parse, then whatever the server's own validation finds in the rest.
pub fn server_spec(typed: &Typed) -> Result<ServerSpec, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = ServerName::parse(&typed.name).unwrap_or_else(|e| {
        errors.insert("name".into(), format!("The name {}.", e.reason));
        ServerName::parse("unnamed").unwrap_or_else(|_| ServerName::local())
    });
    let kind = match typed.kind.as_str() {
        "ssh" | "" => ServerKind::Ssh,
        "swarm" => ServerKind::Swarm,
        other => {
            errors.insert(
                "kind".into(),
                format!("{other:?} is not a kind of server: choose ssh."),
            );
            ServerKind::Ssh
        }
    };
    let ssh_port = if typed.port.is_empty() {
        Some(22)
    } else {
        port(&typed.port, "port", &mut errors)
    };
    let mut spec = ServerSpec {
        name,
        kind,
        host: typed.host.clone(),
        port: ssh_port.unwrap_or(22),
        user: if typed.user.is_empty() {
            "root".into()
        } else {
            typed.user.clone()
        },
        host_key_fingerprint: optional(&typed.host_key_fingerprint),
        build_slots: None,
        proxy_http_port: port(&typed.proxy_http_port, "proxy_http_port", &mut errors),
        proxy_https_port: port(&typed.proxy_https_port, "proxy_https_port", &mut errors),
        namespace: optional(&typed.namespace),
        docker_socket: optional(&typed.docker_socket),
        labels: BTreeMap::new(),
    };
    let wanted = spec.clone();
    for _ in 0..MAX_ROUNDS {
        let Err(problem) = spec.validate() else {
            break;
        };
        errors
            .entry(problem.field.clone())
            .or_insert_with(|| in_words(&problem));
        if !put_back(&mut spec, &problem.field) {
            break;
        }
    }
    if errors.is_empty() {
        Ok(wanted)
    } else {
        Err(errors)
    }
}

/// What the page says once a server is added: where the key line goes and how to
/// confirm the host key.
fn added(spec: &ServerSpec) -> String {
    let confirm = if spec.host_key_fingerprint.is_some() {
        "Then run Check: Capstan logs in only if the host presents the fingerprint you gave."
    } else {
        "Then confirm its host key: run Check, which shows the fingerprint the host presented (without trusting it), and compare it with what ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub prints on that host; if they match, paste it under Host key to trust (the key line stays valid)."
    };
    format!(
        "Server {} added. Next: put this line in the authorized_keys of {} on {} (e.g. ~{}/.ssh/authorized_keys). {confirm}",
        spec.name, spec.user, spec.host, spec.user
    )
}

pub async fn add(State(state): State<AppState>, posted: Posted) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let typed = typed(&posted.fields);
    let mut errors = match server_spec(&typed) {
        Ok(spec) => {
            let caller = posted.session.caller();
            match state.deployer.create_server(spec.clone(), &caller).await {
                Ok(record) => {
                    let flash = match record.public_key {
                        Some(line) => Flash::with_copy(added(&spec), line),
                        None => Flash::notice(added(&spec)),
                    };
                    return Ok(posted.session.redirect_with("/servers", flash));
                }
                Err(err) => {
                    let err = ApiError::from(err);
                    match err.status {
                        StatusCode::CONFLICT => FieldErrors::from([(
                            "name".to_string(),
                            format!("There is already a server named {}.", typed.name),
                        )]),
                        status if status.is_client_error() => {
                            FieldErrors::from([("server".to_string(), err.message)])
                        }
                        _ => return Err(err.into()),
                    }
                }
            }
        }
        Err(errors) => errors,
    };
    // A problem the form has no field for is said above the form.
    let known = [
        "name",
        "kind",
        "host",
        "port",
        "user",
        "host_key_fingerprint",
        "docker_socket",
        "proxy_http_port",
        "proxy_https_port",
        "namespace",
        "server",
    ];
    let unknown: Vec<String> = errors
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for field in unknown {
        if let Some(reason) = errors.remove(&field) {
            errors.insert("server".into(), format!("{field}: {reason}"));
        }
    }
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    servers_page(&state, &posted.session, status, typed, errors).await
}

/// The server named in the page address, with the API's rules.
fn named(raw: &str) -> Result<ServerName, PanelError> {
    ServerName::parse(raw)
        .map_err(|e| PanelError::not_found(format!("{raw:?} is not a server name: {e}")))
}

pub async fn check(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let name = named(&name)?;
    let preflight = state.deployer.check_server(&name).await?;
    let failed = preflight.checks.iter().filter(|c| !c.ok).count();
    let total = preflight.checks.len();
    let message = if preflight.ok {
        format!("Check of {name}: all {total} checks passed.")
    } else {
        format!("Check of {name}: {failed} of {total} checks failed.")
    };
    let checks = preflight
        .checks
        .into_iter()
        .map(|c| FlashCheck {
            name: c.name,
            ok: c.ok,
            detail: c.detail,
        })
        .collect();
    Ok(posted
        .session
        .redirect_with("/servers", Flash::with_checks(message, checks)))
}

/// Pins the host key the server must present (as the API's `PUT .../host-key`).
pub async fn pin_host_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let name = named(&name)?;
    let fingerprint = posted.fields.get("fingerprint").trim();
    let caller = posted.session.caller();
    match state
        .deployer
        .confirm_host_key(&name, fingerprint, &caller)
        .await
    {
        Ok(_) => {
            let flash = Flash::notice(format!(
                "Host key {fingerprint} pinned for {name}: Capstan logs in only while it presents this key. Run Check."
            ));
            Ok(posted.session.redirect_with("/servers", flash))
        }
        Err(err) => refused_in_card(&state, &posted, format!("pin-{name}"), err).await,
    }
}

/// The page again with a refused action's reason in the server's card (4xx), or the
/// error itself when it is not the request's fault.
async fn refused_in_card(
    state: &AppState,
    posted: &Posted,
    slot: String,
    err: capstan_deploy::ActionError,
) -> Result<Response, PanelError> {
    let err = ApiError::from(err);
    if !err.status.is_client_error() {
        return Err(err.into());
    }
    let errors = FieldErrors::from([(slot, err.message)]);
    servers_page(state, &posted.session, err.status, Typed::default(), errors).await
}

pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, PanelError> {
    posted.session.require(Scope::Admin)?;
    let name = named(&name)?;
    match state
        .deployer
        .delete_server(&name, &posted.session.caller())
        .await
    {
        Ok(()) => {
            let flash = Flash::notice(format!(
                "Server {name} removed, with its key pair and its connection."
            ));
            Ok(posted.session.redirect_with("/servers", flash))
        }
        Err(err) => refused_in_card(&state, &posted, format!("remove-{name}"), err).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(pairs: &[(&str, &str)]) -> Typed {
        let mut typed = Typed {
            name: "edge".into(),
            host: "10.0.0.5".into(),
            ..Typed::default()
        };
        for (field, value) in pairs {
            let slot = match *field {
                "name" => &mut typed.name,
                "host" => &mut typed.host,
                "port" => &mut typed.port,
                "user" => &mut typed.user,
                "host_key_fingerprint" => &mut typed.host_key_fingerprint,
                "docker_socket" => &mut typed.docker_socket,
                "proxy_http_port" => &mut typed.proxy_http_port,
                "namespace" => &mut typed.namespace,
                _ => &mut typed.kind,
            };
            *slot = value.to_string();
        }
        typed
    }

    #[test]
    fn a_good_form_is_a_server_with_its_defaults() {
        let spec = server_spec(&typed(&[("proxy_http_port", "8080")])).unwrap();
        assert_eq!(
            (spec.kind, spec.port, spec.user.as_str()),
            (ServerKind::Ssh, 22, "root")
        );
        assert_eq!(spec.proxy_http_port, Some(8080));
        assert_eq!((spec.namespace, spec.host_key_fingerprint), (None, None));
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let errors = server_spec(&typed(&[
            ("name", "Edge 1"),
            ("host", "no spaces"),
            ("port", "ssh"),
            ("user", "-x"),
            ("host_key_fingerprint", "SHA256:short"),
            ("docker_socket", "relative.sock"),
            ("proxy_http_port", "0"),
            ("namespace", "Not_A_Label"),
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "docker_socket",
                "host",
                "host_key_fingerprint",
                "name",
                "namespace",
                "port",
                "proxy_http_port",
                "user"
            ]
        );
        assert!(
            errors["port"].starts_with("\"ssh\" is not a port"),
            "{errors:?}"
        );
        assert!(errors.values().all(|e| e.ends_with('.')), "{errors:?}");
    }

    #[test]
    fn local_is_refused_as_a_name() {
        let errors = server_spec(&typed(&[("name", "local")])).unwrap_err();
        assert!(errors["name"].contains("built-in"), "{errors:?}");
    }
}
