//! The in-process harness of the router tests: a router over a fresh store and an engine
//! handle on a socket nobody listens on, requests sent with `tower::ServiceExt::oneshot`,
//! and the panel's forms (the session cookie, the anti-forgery token of a page).
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use capstan_deploy::target::LocalTarget;
use capstan_deploy::{DeploySettings, Deployer};
use capstan_engine::proxy::{ProxyApi, RouteFiles};
use capstan_engine::Engine;
use capstan_store::Store;
use capstan_web::accounts::Accounts;
use capstan_web::AppState;
use serde_json::Value;
use tower::ServiceExt;

pub struct Harness {
    pub router: axum::Router,
    pub store: Store,
    /// The router's deployer (a clone: the same hubs and store).
    pub deployer: Deployer,
    pub dir: tempfile::TempDir,
}

pub async fn harness() -> Harness {
    harness_with_backups(None).await
}

/// The harness with a backup writer of the test's own.
pub async fn harness_with_backups(
    backups: Option<std::sync::Arc<dyn capstan_web::backups::Backups>>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("capstan.db")).await.unwrap();
    // A socket nobody listens on any more: the engine went away.
    let socket = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let engine = Engine::unconnected(&socket, "inproc").unwrap();
    let routes = RouteFiles::new(dir.path().join("dynamic"), dir.path().join("staging")).unwrap();
    let settings = DeploySettings {
        workspace_dir: dir.path().join("workspaces"),
        build_slots: 1,
        keep_images: 2,
        secret_key: capstan_store::SecretKey::load_or_create(&dir.path().join("secret.key"))
            .unwrap(),
        fetch_limits: Default::default(),
        protected_paths: vec![dir.path().to_string_lossy().into_owned()],
        source_dirs: vec![],
        source_limits: Default::default(),
        proxy_https_port: 443,
        own_acme_ca: false,
        ssh_timeout: std::time::Duration::from_secs(30),
    };
    let target = LocalTarget::new(engine, routes, ProxyApi::new("http://127.0.0.1:9".into()));
    let deployer = Deployer::new(store.clone(), std::sync::Arc::new(target), settings);
    std::fs::write(dir.path().join("setup-code"), "the-code\n").unwrap();
    let state = AppState {
        deployer: deployer.clone(),
        accounts: Accounts::new(Some(dir.path())),
        backups,
    };
    Harness {
        router: capstan_web::router(state),
        store,
        deployer,
        dir,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub location: String,
    pub cookie: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub async fn send(h: &Harness, request: Request<Body>) -> Answer {
    let response = h.router.clone().oneshot(request).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (location, cookie) = (header(header::LOCATION), header(header::SET_COOKIE));
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        location,
        cookie,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub fn api(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => request.body(Body::empty()).unwrap(),
    }
}

pub fn form(path: &str, cookie: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap()
}

/// A post of a form that is sent before a session exists (setup, sign-in): its page is
/// fetched first for the pre-session cookie and the form token that goes with it.
pub async fn pre_session_form(h: &Harness, path: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let shown = send(h, page(path, "")).await;
    let cookie = shown.cookie.split(';').next().unwrap_or("").to_string();
    let token = form_token(&shown.body);
    let fields = [&[("csrf", token.as_str())][..], fields].concat();
    form(path, &cookie, &fields)
}

/// Posts the sign-in form (with its pre-session token) as `name`.
pub async fn sign_in(h: &Harness, name: &str, password: &str) -> Answer {
    let request = pre_session_form(h, "/login", &[("name", name), ("password", password)]).await;
    send(h, request).await
}

/// The value of the first `csrf` field of a page.
pub fn form_token(body: &str) -> String {
    let start = body.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    body[start..start + body[start..].find('"').unwrap()].to_string()
}

pub fn page(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

pub async fn token(h: &Harness, name: &str, scopes: &str) -> String {
    let secret = capstan_store::new_token();
    h.store.add_token(name, &secret, scopes).await.unwrap();
    secret
}

/// Sets up the first admin (`ada`) through the panel: its session cookie and the
/// session's anti-forgery token.
pub async fn signed_in(h: &Harness) -> (String, String) {
    let fields = [
        ("code", "the-code"),
        ("name", "ada"),
        ("password", "long enough pw"),
        ("confirm", "long enough pw"),
    ];
    let done = send(h, pre_session_form(h, "/setup", &fields).await).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done.cookie.split(';').next().unwrap().to_string();
    let dashboard = send(h, page("/", &cookie)).await;
    let csrf = form_token(&dashboard.body);
    (cookie, csrf)
}

/// A deployment of `app` queued and claimed by a worker, as the store records it.
pub async fn queue(store: &capstan_store::Store, app: &capstan_core::AppName) -> i64 {
    let id = store
        .enqueue(capstan_store::NewDeployment {
            app,
            trigger: capstan_core::Trigger::Deploy,
            git_ref: None,
            from_release: None,
            no_cache: false,
            actor: "user:ada",
            servers: &["local"],
        })
        .await
        .unwrap()
        .id;
    assert_eq!(store.claim_next().await.unwrap().unwrap().id, id);
    id
}

/// A deployment that goes live with `compose_spec` as its release's spec.
pub async fn go_live(
    store: &capstan_store::Store,
    app: &capstan_core::AppName,
    spec: &capstan_core::AppSpec,
    compose_spec: &str,
) -> i64 {
    let id = queue(store, app).await;
    for state in [
        capstan_core::DeploymentState::Building,
        capstan_core::DeploymentState::Starting,
    ] {
        store.transition(id, state, None).await.unwrap();
    }
    store
        .save_release(&capstan_store::NewRelease {
            app,
            deployment_id: id,
            image: "inproc/shop:2",
            commit_sha: None,
            compose_spec,
            app_spec: spec,
            repo_config: None,
        })
        .await
        .unwrap();
    for state in [
        capstan_core::DeploymentState::HealthChecking,
        capstan_core::DeploymentState::Switching,
    ] {
        store.transition(id, state, None).await.unwrap();
    }
    store.mark_live(app, id).await.unwrap();
    id
}
