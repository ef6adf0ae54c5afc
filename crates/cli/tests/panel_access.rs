//! Who may use the panel, over plain HTTP against a real daemon: setup only with the
//! one-time code and only once, session cookies (HttpOnly, SameSite=Lax, Secure behind
//! HTTPS) kept server-side so logout and user deletion end them, the anti-forgery token on
//! every post, roles (viewer reads, deployer deploys but changes nothing, admin manages
//! users through the API too), the actor recorded per user, and failed sign-ins limited
//! per account.

mod support;

use reqwest::Method;
use serde_json::json;
use support::SampleRepo;

const PASSWORD: &str = "correct horse battery";

struct Reply {
    status: u16,
    location: String,
    set_cookie: String,
    body: String,
}

/// A browser-less panel client: keeps the session cookie by hand.
struct Panel {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Panel {
    fn new(base: &str) -> Panel {
        Panel {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookie: String::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Reply {
        let request = if self.cookie.is_empty() {
            request
        } else {
            request.header("cookie", &self.cookie)
        };
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        if let Some(pair) = set_cookie
            .split(';')
            .next()
            .filter(|p| p.starts_with("capstan_session="))
        {
            self.cookie = pair.to_string();
        }
        Reply {
            status: response.status().as_u16(),
            location,
            set_cookie,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// A post of the sign-in or setup form, with the token and cookie of its page.
    async fn post_pre_session(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let (form_cookie, token) =
            capstan_testkit::forms::pre_session(&self.http, &self.base, path).await;
        let fields = [&[("csrf", token.as_str())][..], form].concat();
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", form_cookie)
            .form(&fields);
        self.send(request).await
    }

    /// The anti-forgery token of the signed-in session, read from a page.
    async fn csrf(&mut self) -> String {
        let page = self.get("/").await.body;
        capstan_testkit::forms::form_token(&page).expect("a form with csrf")
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> Reply {
        self.post_pre_session("/login", &[("name", name), ("password", password)])
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_sessions_forgery_roles_and_sign_in_limits() {
    let daemon = support::start_daemon().await;
    let mut admin = Panel::new(&daemon.api);

    // Setup: only with the code, only once.
    let first = admin.get("/").await;
    assert_eq!((first.status, first.location.as_str()), (303, "/setup"));
    assert_eq!(admin.get("/login").await.location, "/setup");
    let fields = |code: &'static str| {
        vec![
            ("code", code),
            ("name", "ada"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ]
    };
    let wrong = admin.post_pre_session("/setup", &fields("guess")).await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("setup code does not match"));
    let code_file = daemon.data_dir.path().join("setup-code");
    let code: &'static str = Box::leak(
        std::fs::read_to_string(&code_file)
            .unwrap()
            .trim()
            .to_string()
            .into_boxed_str(),
    );
    let done = admin.post_pre_session("/setup", &fields(code)).await;
    assert_eq!((done.status, done.location.as_str()), (303, "/"));
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(done.set_cookie.contains(attribute), "{}", done.set_cookie);
    }
    assert!(
        !done.set_cookie.contains("Secure"),
        "plain HTTP: no Secure flag"
    );
    assert!(!code_file.exists());
    let mut intruder = Panel::new(&daemon.api);
    let again = intruder.post("/setup", &fields(code)).await;
    assert_eq!((again.status, again.location.as_str()), (303, "/login"));
    assert_eq!(
        daemon
            .call(Method::GET, "/users", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Behind an HTTPS proxy the cookie is Secure.
    let (form_cookie, token) =
        capstan_testkit::forms::pre_session(&admin.http, &daemon.api, "/login").await;
    let secure = admin
        .send(
            admin
                .http
                .post(format!("{}/login", daemon.api))
                .header("x-forwarded-proto", "https")
                .header("cookie", form_cookie)
                .form(&[
                    ("csrf", token.as_str()),
                    ("name", "ada"),
                    ("password", PASSWORD),
                ]),
        )
        .await;
    assert!(
        secure.set_cookie.contains("Secure"),
        "{}",
        secure.set_cookie
    );

    // Users through the API: checked, and only an admin token may manage them.
    for (body, status, says) in [
        (
            json!({"name": "vic", "password": "short", "role": "viewer"}),
            422,
            "password",
        ),
        (
            json!({"name": "vic", "password": PASSWORD, "role": "root"}),
            422,
            "role",
        ),
        (
            json!({"name": "a b", "password": PASSWORD, "role": "viewer"}),
            422,
            "name",
        ),
        (
            json!({"name": "ada", "password": PASSWORD, "role": "viewer"}),
            409,
            "ada",
        ),
    ] {
        let (got, answer) = daemon.call(Method::POST, "/users", Some(body)).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    for (name, role) in [("vic", "viewer"), ("dee", "deployer")] {
        let (got, answer) = daemon
            .call(
                Method::POST,
                "/users",
                Some(json!({"name": name, "password": PASSWORD, "role": role})),
            )
            .await;
        assert_eq!(got, 201, "{answer}");
        assert!(answer.get("password").is_none() && !answer.to_string().contains("argon2"));
    }
    let (got, answer) = daemon.call(Method::DELETE, "/users/ada", None).await;
    assert_eq!(got, 409, "the last admin stays: {answer}");

    let repo = SampleRepo::new();
    repo.commit_version("v1", &[]);
    daemon
        .create_app(support::sample_app("roles", &repo, "main", "roles.test"))
        .await;

    // The dashboard filters by name and refuses a nonsense page number with a message.
    assert!(admin.get("/?q=role").await.body.contains("/apps/roles"));
    let none = admin.get("/?q=zzz").await.body;
    assert!(
        none.contains("No app matches “zzz”")
            && none.contains("id=\"clear-filter\"")
            && !none.contains("/apps/roles")
    );
    let bad = admin.get("/?page=abc").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("invalid query"));

    // A viewer reads but cannot deploy.
    let mut viewer = Panel::new(&daemon.api);
    assert_eq!(viewer.sign_in("vic", PASSWORD).await.status, 303);
    let page = viewer.get("/apps/roles").await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("id=\"deploy\""),
        "no Deploy button for a viewer"
    );
    let csrf = viewer.csrf().await;
    let refused = viewer.post("/apps/roles/deploy", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("viewer"), "{}", refused.body);

    // A deployer deploys (recorded as the user) but cannot change settings.
    let mut deployer = Panel::new(&daemon.api);
    deployer.sign_in("dee", PASSWORD).await;
    let csrf = deployer.csrf().await;
    let forged = deployer.post("/apps/roles/deploy", &[]).await;
    assert_eq!(
        forged.status, 403,
        "a post without the anti-forgery token is refused"
    );
    assert!(forged.body.contains("anti-forgery"));
    let forged = deployer.post("/apps/roles/deploy", &[("csrf", "x")]).await;
    assert_eq!(forged.status, 403);
    let deployed = deployer
        .post("/apps/roles/deploy", &[("csrf", &csrf)])
        .await;
    assert_eq!(deployed.status, 303, "{}", deployed.body);
    let id: i64 = deployed
        .location
        .trim_start_matches("/deployments/")
        .parse()
        .unwrap();
    let finished = daemon.wait(id).await;
    assert_eq!(finished["state"], "live", "{finished}");
    assert_eq!(finished["actor"], "user:dee");
    let denied = deployer
        .post(
            "/apps/roles/settings",
            &[("csrf", &csrf), ("replicas", "3")],
        )
        .await;
    assert_eq!(denied.status, 403);
    let denied = deployer
        .post(
            "/apps/roles/settings/deploy",
            &[("csrf", &csrf), ("replicas", "3")],
        )
        .await;
    assert_eq!(
        denied.status, 403,
        "Save and deploy saves first: admins only"
    );
    assert_eq!(
        deployer.get("/access").await.status,
        403,
        "users and tokens are for admins"
    );

    // Logout ends the session on the server, not just in the browser.
    let stolen = deployer.cookie.clone();
    assert_eq!(
        deployer.post("/logout", &[("csrf", &csrf)]).await.location,
        "/login"
    );
    let mut thief = Panel::new(&daemon.api);
    thief.cookie = stolen;
    assert_eq!(thief.get("/").await.location, "/login");

    // Deleting a user ends their sessions.
    assert_eq!(viewer.get("/").await.status, 200);
    assert_eq!(daemon.call(Method::DELETE, "/users/vic", None).await.0, 204);
    assert_eq!(viewer.get("/").await.location, "/login");

    // Failed sign-ins are limited per account; other accounts are unaffected.
    let mut guesser = Panel::new(&daemon.api);
    for _ in 0..5 {
        let reply = guesser.sign_in("dee", "wrong password!").await;
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("Wrong user name or password."));
    }
    let blocked = guesser.sign_in("dee", PASSWORD).await;
    assert_eq!(
        blocked.status, 429,
        "even the right password waits: {}",
        blocked.body
    );
    assert!(blocked.body.contains("too many failed sign-ins"));
    let unknown = guesser.sign_in("nobody", PASSWORD).await;
    assert_eq!(
        unknown.status, 401,
        "an unknown name reads like a wrong password"
    );
    assert_eq!(
        Panel::new(&daemon.api)
            .sign_in("ada", PASSWORD)
            .await
            .status,
        303
    );
}
