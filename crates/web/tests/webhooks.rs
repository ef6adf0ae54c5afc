//! Forge webhooks through the whole router: real GitHub payloads and the GitLab, Gitea and
//! Bitbucket fixtures of `capstan-forge`, signed here the way each forge signs them, queue
//! a deployment of exactly the pushed commit; a wrong, missing or stale signature, a
//! replay, another branch, another repository, a skip marker, a watch path missed, an
//! oversize body and an unknown provider queue nothing and say why.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use capstan_core::{AppName, AppSpec};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::{Duration, Instant};
use support::{api, harness, send, token, Answer, Harness};

const GITHUB_REPO: &str = "https://github.com/Codertocat/Hello-World.git";
const GITHUB_HEAD: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";

fn fixture(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../forge/tests/fixtures/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A delivery as `provider` sends it: event header, delivery id, signature.
fn delivery(
    provider: &str,
    app: &str,
    event: &str,
    id: &str,
    secret: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/webhooks/{provider}/{app}"))
        .header("content-type", "application/json");
    let digest = secret.map(|s| hmac_hex(s, &body));
    request = match provider {
        "github" => {
            let r = request
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", id);
            match digest {
                Some(d) => r.header("X-Hub-Signature-256", format!("sha256={d}")),
                None => r,
            }
        }
        "gitlab" => {
            let r = request
                .header("X-Gitlab-Event", event)
                .header("X-Gitlab-Event-UUID", id);
            match secret {
                Some(s) => r.header("X-Gitlab-Token", s),
                None => r,
            }
        }
        "gitea" => {
            let r = request
                .header("X-Gitea-Event", event)
                .header("X-Gitea-Delivery", id);
            match digest {
                Some(d) => r.header("X-Gitea-Signature", d),
                None => r,
            }
        }
        "forgejo" => {
            let r = request
                .header("X-Forgejo-Event", event)
                .header("X-Forgejo-Delivery", id);
            match digest {
                Some(d) => r.header("X-Forgejo-Signature", d),
                None => r,
            }
        }
        "bitbucket" => {
            let r = request
                .header("X-Event-Key", event)
                .header("X-Request-UUID", id);
            match digest {
                Some(d) => r.header("X-Hub-Signature", format!("sha256={d}")),
                None => r,
            }
        }
        other => request.header("X-Event", other),
    };
    request.body(Body::from(body)).unwrap()
}

async fn create_app(h: &Harness, name: &str, url: &str, reference: &str) -> AppName {
    let app = AppName::parse(name).unwrap();
    let spec: AppSpec =
        serde_json::from_value(json!({"source": {"git": {"url": url, "ref": reference}}})).unwrap();
    h.store.create_app(&app, &spec).await.unwrap();
    app
}

async fn patch(h: &Harness, admin: &str, app: &str, body: Value) {
    let done = send(
        h,
        api(
            Method::PATCH,
            &format!("/apps/{app}"),
            Some(admin),
            Some(body),
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
}

async fn secret_of(h: &Harness, admin: &str, app: &str) -> String {
    let shown = send(
        h,
        api(
            Method::GET,
            &format!("/apps/{app}/webhooks"),
            Some(admin),
            None,
        ),
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    shown.json()["secret"].as_str().unwrap().to_string()
}

async fn queued(h: &Harness, app: &AppName) -> Vec<(i64, Option<String>, Option<String>)> {
    h.store
        .deployments_of(app, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.git_ref, d.actor))
        .collect()
}

/// Sends and times the answer (printed, never asserted).
async fn timed(
    h: &Harness,
    what: &str,
    request: Request<Body>,
    times: &mut Vec<Duration>,
) -> Answer {
    let start = Instant::now();
    let answer = send(h, request).await;
    let took = start.elapsed();
    println!("{what}: {} in {:?}", answer.status, took);
    times.push(took);
    answer
}

#[tokio::test]
async fn github_pushes_queue_exactly_the_pushed_commit_and_nothing_else_does() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let mut times = Vec::new();

    // No secret yet: refused without saying whether the app exists.
    let body = fixture("github", "push.with-new-branch.payload.json");
    let no_secret = send(
        &h,
        delivery(
            "github",
            "hello",
            "push",
            "d0",
            Some("whatever"),
            body.clone(),
        ),
    )
    .await;
    let no_app = send(
        &h,
        delivery(
            "github",
            "ghost",
            "push",
            "d0",
            Some("whatever"),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(no_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_secret.body, no_app.body);

    let secret = secret_of(&h, &admin, "hello").await;
    assert_eq!(secret.len(), 64, "32 bytes in hex");
    assert_eq!(secret_of(&h, &admin, "hello").await, secret, "kept");

    // Wrong signature, missing header, empty secret: 401 naming the problem, nothing queued.
    for (what, request) in [
        (
            "wrong secret",
            delivery(
                "github",
                "hello",
                "push",
                "d1",
                Some("not-the-secret"),
                body.clone(),
            ),
        ),
        (
            "no signature",
            delivery("github", "hello", "push", "d1", None, body.clone()),
        ),
        (
            "empty secret",
            delivery("github", "hello", "push", "d1", Some(""), body.clone()),
        ),
    ] {
        let refused = timed(&h, what, request, &mut times).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            refused.body
        );
        assert!(
            !refused.body.contains(&secret) && !refused.body.contains("Hello-World"),
            "{}",
            refused.body
        );
    }
    let missing = send(
        &h,
        delivery("github", "hello", "push", "d1", None, body.clone()),
    )
    .await;
    assert!(
        missing.body.contains("X-Hub-Signature-256"),
        "{}",
        missing.body
    );
    assert!(queued(&h, &app).await.is_empty());

    // Signed right: 202 and a deployment of exactly the pushed commit.
    let accepted = timed(
        &h,
        "signed push",
        delivery("github", "hello", "push", "d1", Some(&secret), body.clone()),
        &mut times,
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let answer = accepted.json();
    assert_eq!(answer["commit"], GITHUB_HEAD);
    let deployments = queued(&h, &app).await;
    assert_eq!(deployments.len(), 1);
    assert_eq!(answer["deployment"], deployments[0].0);
    assert_eq!(deployments[0].1.as_deref(), Some(GITHUB_HEAD));
    assert_eq!(deployments[0].2.as_deref(), Some("webhook:github"));

    // The same delivery again: 200, duplicate, nothing more queued.
    let replay = timed(
        &h,
        "replay",
        delivery("github", "hello", "push", "d1", Some(&secret), body.clone()),
        &mut times,
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(replay.json()["duplicate"], true);
    assert_eq!(queued(&h, &app).await.len(), 1);

    // A ping: 200, nothing queued.
    let ping = send(
        &h,
        delivery(
            "github",
            "hello",
            "ping",
            "d2",
            Some(&secret),
            fixture("github", "ping.payload.json"),
        ),
    )
    .await;
    assert_eq!(ping.status, StatusCode::OK, "{}", ping.body);

    // A tag push (here a deleted tag): 202 with the reason.
    let tag = send(
        &h,
        delivery(
            "github",
            "hello",
            "push",
            "d3",
            Some(&secret),
            fixture("github", "push.payload.json"),
        ),
    )
    .await;
    assert_eq!(tag.status, StatusCode::ACCEPTED);
    assert!(
        tag.json()["reason"]
            .as_str()
            .unwrap()
            .contains("tag simple-tag"),
        "{}",
        tag.body
    );

    // A pull request: honest about previews.
    let pr = send(
        &h,
        delivery(
            "github",
            "hello",
            "pull_request",
            "d4",
            Some(&secret),
            fixture("github", "pull_request.opened.payload.json"),
        ),
    )
    .await;
    assert_eq!(pr.status, StatusCode::ACCEPTED);
    assert!(
        pr.body.contains("preview environments are not built yet"),
        "{}",
        pr.body
    );

    // A malformed (but signed) payload: 400 with the reason.
    let garbage = send(
        &h,
        delivery(
            "github",
            "hello",
            "push",
            "d5",
            Some(&secret),
            b"{not json".to_vec(),
        ),
    )
    .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST, "{}", garbage.body);
    assert!(garbage.body.contains("not JSON"), "{}", garbage.body);
    assert_eq!(queued(&h, &app).await.len(), 1);

    // Every outcome is in the app's event log, without the secret.
    let events = h.store.app_events(&app, 50).await.unwrap();
    let webhook_events: Vec<_> = events.iter().filter(|e| e.action == "webhook").collect();
    assert!(webhook_events.len() >= 4, "{events:?}");
    assert!(webhook_events.iter().all(|e| e.actor == "webhook:github"));
    assert!(events.iter().all(|e| !e.detail.contains(&secret)));
    assert!(webhook_events
        .iter()
        .any(|e| e.detail.contains(GITHUB_HEAD) && e.detail.contains("queued")));

    let ms: Vec<u128> = times.iter().map(|t| t.as_micros()).collect();
    println!("webhook answers (µs): {ms:?}");
}

#[tokio::test]
async fn pushes_that_should_not_deploy_are_answered_with_the_reason() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let body = fixture("github", "push.with-new-branch.payload.json");

    // Another branch.
    let main = create_app(&h, "tracks-main", GITHUB_REPO, "main").await;
    let secret = secret_of(&h, &admin, "tracks-main").await;
    let other = send(
        &h,
        delivery(
            "github",
            "tracks-main",
            "push",
            "b1",
            Some(&secret),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.body);
    assert!(other.json()["reason"]
        .as_str()
        .unwrap()
        .contains("branch master pushed"));
    assert!(queued(&h, &main).await.is_empty());

    // Another repository.
    let elsewhere = create_app(
        &h,
        "elsewhere",
        "https://github.com/someone/else.git",
        "master",
    )
    .await;
    let secret = secret_of(&h, &admin, "elsewhere").await;
    let mismatch = send(
        &h,
        delivery(
            "github",
            "elsewhere",
            "push",
            "r1",
            Some(&secret),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::ACCEPTED, "{}", mismatch.body);
    let reason = mismatch.json()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("Codertocat/Hello-World") && reason.contains("someone/else"),
        "{reason}"
    );
    assert!(queued(&h, &elsewhere).await.is_empty());

    // Not deployed from git.
    let image = AppName::parse("from-image").unwrap();
    let spec: AppSpec = serde_json::from_value(json!({"source": {"image": "nginx:1"}})).unwrap();
    h.store.create_app(&image, &spec).await.unwrap();
    let secret = secret_of(&h, &admin, "from-image").await;
    let not_git = send(
        &h,
        delivery(
            "github",
            "from-image",
            "push",
            "i1",
            Some(&secret),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(not_git.status, StatusCode::ACCEPTED);
    assert!(
        not_git.body.contains("does not deploy from git"),
        "{}",
        not_git.body
    );

    // Oversize body: 413 before anything else; unknown provider: 404 naming the four.
    let huge = vec![b' '; 5 * 1024 * 1024 + 1];
    let too_big = send(
        &h,
        delivery("github", "tracks-main", "push", "o1", Some(&secret), huge),
    )
    .await;
    assert_eq!(
        too_big.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_big.body
    );
    let unknown = send(
        &h,
        delivery("sourcehut", "tracks-main", "push", "u1", None, body.clone()),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    for name in ["github", "gitlab", "gitea", "bitbucket"] {
        assert!(unknown.body.contains(name), "{}", unknown.body);
    }
}

#[tokio::test]
async fn gitlab_gitea_and_bitbucket_pushes_queue_with_watch_paths_and_skip_markers() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;

    // GitLab: the token header; watch paths missed, then hit.
    let lab = create_app(
        &h,
        "storefront",
        "https://gitlab.example.com/acme/web/storefront.git",
        "main",
    )
    .await;
    let secret = secret_of(&h, &admin, "storefront").await;
    patch(
        &h,
        &admin,
        "storefront",
        json!({"watch_paths": ["services/api"]}),
    )
    .await;
    let missed = send(
        &h,
        delivery(
            "gitlab",
            "storefront",
            "Push Hook",
            "l1",
            Some(&secret),
            fixture("gitlab", "push.json"),
        ),
    )
    .await;
    assert_eq!(missed.status, StatusCode::ACCEPTED, "{}", missed.body);
    assert!(missed.body.contains("watch paths"), "{}", missed.body);
    assert!(queued(&h, &lab).await.is_empty());
    patch(
        &h,
        &admin,
        "storefront",
        json!({"watch_paths": ["apps/web"]}),
    )
    .await;
    let wrong_token = send(
        &h,
        delivery(
            "gitlab",
            "storefront",
            "Push Hook",
            "l2",
            Some("nope"),
            fixture("gitlab", "push.json"),
        ),
    )
    .await;
    assert_eq!(wrong_token.status, StatusCode::UNAUTHORIZED);
    let hit = send(
        &h,
        delivery(
            "gitlab",
            "storefront",
            "Push Hook",
            "l2",
            Some(&secret),
            fixture("gitlab", "push.json"),
        ),
    )
    .await;
    assert_eq!(hit.status, StatusCode::ACCEPTED, "{}", hit.body);
    assert_eq!(
        hit.json()["commit"],
        "9b8a7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3"
    );
    assert_eq!(
        queued(&h, &lab).await[0].1.as_deref(),
        Some("9b8a7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3")
    );

    // Gitea: the fixture's head says [skip deploy]; without it, queued.
    let tea = create_app(&h, "api", "https://git.example.net/acme/api.git", "main").await;
    let secret = secret_of(&h, &admin, "api").await;
    let skipped = send(
        &h,
        delivery(
            "gitea",
            "api",
            "push",
            "t1",
            Some(&secret),
            fixture("gitea", "push.json"),
        ),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED, "{}", skipped.body);
    assert!(skipped.body.contains("[skip deploy]"), "{}", skipped.body);
    assert!(queued(&h, &tea).await.is_empty());
    let unskipped = String::from_utf8(fixture("gitea", "push.json"))
        .unwrap()
        .replace(" [skip deploy]", "");
    let deployed = send(
        &h,
        delivery(
            "forgejo",
            "api",
            "push",
            "t2",
            Some(&secret),
            unskipped.into_bytes(),
        ),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    assert_eq!(
        queued(&h, &tea).await[0].1.as_deref(),
        Some("6666ffff7777aaaa8888bbbb9999cccc0000dddd")
    );

    // Bitbucket: [ci skip] honoured; without it, queued.
    let bucket = create_app(
        &h,
        "billing",
        "https://bitbucket.org/northwind/billing.git",
        "main",
    )
    .await;
    let secret = secret_of(&h, &admin, "billing").await;
    let skipped = send(
        &h,
        delivery(
            "bitbucket",
            "billing",
            "repo:push",
            "k1",
            Some(&secret),
            fixture("bitbucket", "repo_push.json"),
        ),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED, "{}", skipped.body);
    assert!(skipped.body.contains("[skip ci]"), "{}", skipped.body);
    let unskipped = String::from_utf8(fixture("bitbucket", "repo_push.json"))
        .unwrap()
        .replace(" [ci skip]", "");
    let deployed = send(
        &h,
        delivery(
            "bitbucket",
            "billing",
            "repo:push",
            "k2",
            Some(&secret),
            unskipped.into_bytes(),
        ),
    )
    .await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.body);
    assert_eq!(
        queued(&h, &bucket).await[0].1.as_deref(),
        Some("a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0")
    );
}

#[tokio::test]
async fn rotating_the_secret_retires_the_old_one_and_needs_the_deploy_scope() {
    let h = harness().await;
    let admin = token(&h, "a", "admin").await;
    let reader = token(&h, "r", "read").await;
    let app = create_app(&h, "hello", GITHUB_REPO, "master").await;
    let body = fixture("github", "push.with-new-branch.payload.json");

    for method in [Method::GET, Method::POST] {
        let refused = send(
            &h,
            api(method.clone(), "/apps/hello/webhooks", Some(&reader), None),
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{method}: {}",
            refused.body
        );
        assert!(refused.body.contains("deploy scope"), "{}", refused.body);
    }

    let old = secret_of(&h, &admin, "hello").await;
    let shown = send(
        &h,
        api(Method::GET, "/apps/hello/webhooks", Some(&admin), None),
    )
    .await;
    let providers = shown.json()["providers"].as_array().unwrap().clone();
    assert_eq!(providers.len(), 4);
    assert_eq!(providers[0]["provider"], "github");
    assert_eq!(providers[0]["signature_header"], "X-Hub-Signature-256");
    assert!(
        providers[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/webhooks/github/hello"),
        "{}",
        shown.body
    );
    assert!(
        !shown.body.contains("?"),
        "no secret in a URL: {}",
        shown.body
    );

    let rotated = send(
        &h,
        api(Method::POST, "/apps/hello/webhooks", Some(&admin), None),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let new = rotated.json()["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(secret_of(&h, &admin, "hello").await, new);

    let stale = send(
        &h,
        delivery("github", "hello", "push", "x1", Some(&old), body.clone()),
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.body);
    assert!(queued(&h, &app).await.is_empty());
    let fresh = send(
        &h,
        delivery("github", "hello", "push", "x1", Some(&new), body),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED, "{}", fresh.body);
    assert_eq!(queued(&h, &app).await.len(), 1);
    let events = h.store.app_events(&app, 20).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.action == "webhook secret rotated" && e.actor == "token:a"));
    assert!(events
        .iter()
        .all(|e| !e.detail.contains(&new) && !e.detail.contains(&old)));
}

#[tokio::test]
async fn the_app_page_shows_the_webhooks_and_creates_and_rotates_the_secret() {
    let h = harness().await;
    create_app(&h, "hello", GITHUB_REPO, "master").await;
    let (cookie, csrf) = support::signed_in(&h).await;
    let mut shown_at = support::page("/apps/hello", &cookie);
    shown_at
        .headers_mut()
        .insert("host", "capstan.example.org:8443".parse().unwrap());
    let before = send(&h, shown_at).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    assert!(before.body.contains("id=\"webhooks\""), "{}", before.body);
    assert!(before.body.contains("webhook-no-secret"));
    assert!(before
        .body
        .contains("http://capstan.example.org:8443/api/v1/webhooks/gitlab/hello"));

    let no_csrf = send(&h, support::form("/apps/hello/webhooks", &cookie, &[])).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let app = AppName::parse("hello").unwrap();
    assert_eq!(h.deployer.webhook_secret(&app).await.unwrap(), None);

    let created = send(
        &h,
        support::form("/apps/hello/webhooks", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let secret = h.deployer.webhook_secret(&app).await.unwrap().unwrap();
    let after = send(&h, support::page("/apps/hello", &cookie)).await;
    assert!(after.body.contains(&secret), "the secret behind its reveal");
    assert!(after.body.contains("webhook-rotate"));

    send(
        &h,
        support::form("/apps/hello/webhooks", &cookie, &[("csrf", &csrf)]),
    )
    .await;
    let rotated = h.deployer.webhook_secret(&app).await.unwrap().unwrap();
    assert_ne!(rotated, secret);
}
