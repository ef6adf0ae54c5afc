//! The app page's live view of the app running, in a real Chromium against the daemon of
//! `runtime_logs`: the output (a tail, then lines written after the page opened; all
//! containers or one; app output shown as text only; bounded and stuck to the bottom;
//! followed on to a new deployment's containers) and each container's CPU and memory
//! graph checked against the engine's own figures; the page's routes refused signed out
//! and for another app's container.

use capstan_testkit::browser::Browser;
use capstan_testkit::{docker, sample_app, Daemon, SampleRepo};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";

/// Writes `text` to the output of `container` (its PID 1's stdout), as the app would.
fn print_in(container: &str, text: &str) {
    docker(&["exec", container, "/app", "write", "/proc/1/fd/1", text]);
}

/// Chooses `value` in the select `id` as a user does (a change event).
async fn choose(browser: &Browser, id: &str, value: &str) {
    let script = format!(
        "const s = document.getElementById({id:?}); s.value = {value:?}; \
         s.dispatchEvent(new Event('change'));"
    );
    browser.client.execute(&script, vec![]).await.unwrap();
}

async fn run_js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

/// The two replicas of `chatty`: engine names and as their lines show them.
struct Replicas {
    first: String,
    second: String,
    first_shown: String,
    second_shown: String,
}

/// A viewer follows `chatty` (two replicas, memory limit 64 MiB) from its app page.
pub async fn app_page_live(daemon: &Daemon) {
    let instance = daemon.instance.as_str();
    let browser = sign_in_viewer(daemon).await;
    let (_quiet_repo, quiet_deployment) = nothing_running(daemon, &browser).await;
    let mut containers = daemon.containers("chatty");
    containers.sort();
    let [first, second] = <[String; 2]>::try_from(containers).unwrap();
    let shown = |name: &str| {
        name.strip_prefix(&format!("{instance}_"))
            .unwrap()
            .to_string()
    };
    let replicas = Replicas {
        first_shown: shown(&first),
        second_shown: shown(&second),
        first,
        second,
    };
    tail_then_live(daemon, &browser, &replicas).await;
    one_container(&browser, &replicas).await;
    larger_tail_and_bounded(&browser, &replicas).await;

    run_js(
        &browser,
        "document.getElementById('app-output').scrollIntoView()",
    )
    .await;
    browser.screenshot("02-app-output").await;
    usage_graphs(&browser, (&replicas.first, &replicas.second)).await;
    paused_while_hidden(&browser).await;
    run_js(
        &browser,
        "document.getElementById('app-usage').scrollIntoView()",
    )
    .await;
    browser.screenshot("03-app-usage").await;
    follows_a_redeploy(daemon, &browser, &replicas).await;
    let cookie = browser
        .client
        .get_named_cookie("capstan_session")
        .await
        .unwrap()
        .value()
        .to_string();
    browser.close().await;

    let deployment = daemon.wait(quiet_deployment).await;
    assert_eq!(deployment["state"], "live", "{deployment}");
    access_control(daemon, &cookie).await;
}

async fn sign_in_viewer(daemon: &Daemon) -> Browser {
    let user = json!({"name": "vic", "password": PASSWORD, "role": "viewer"});
    let (status, body) = daemon.call(Method::POST, "/users", Some(user)).await;
    assert_eq!(status, 201, "{body}");
    let browser = Browser::start("runtime_logs").await;
    browser.goto(&format!("{}/login", daemon.api)).await;
    browser.fill("form", "name", "vic").await;
    browser.fill("form", "password", PASSWORD).await;
    browser.submit("form button").await;
    assert_eq!(browser.path().await, "/");
    browser
}

/// An app with nothing running says so plainly, and shows no live sections; then it is
/// deployed (its repo, kept until the deployment has fetched it, and the deployment's
/// id), for the access checks.
async fn nothing_running(daemon: &Daemon, browser: &Browser) -> (SampleRepo, i64) {
    let repo = SampleRepo::new();
    repo.commit_version("q1", &[]);
    daemon
        .create_app(sample_app("quiet", &repo, "main", "quiet.test"))
        .await;
    browser.goto(&format!("{}/apps/quiet", daemon.api)).await;
    let said = browser.text("#nothing-running").await;
    assert!(said.contains("Nothing of quiet is running now"), "{said}");
    assert!(!browser.exists("#app-output").await && !browser.exists("#usage").await);
    browser.screenshot("01-nothing-running").await;
    let deployment = daemon.deploy("quiet", None).await;
    (repo, deployment)
}

/// The page opens on the last 100 lines of each container, then follows; app output is
/// only ever text.
async fn tail_then_live(daemon: &Daemon, browser: &Browser, replicas: &Replicas) {
    let Replicas {
        first,
        second,
        first_shown,
        ..
    } = replicas;
    let bulk: String = (1..=120).map(|i| format!("bulk-{i:03}\n")).collect();
    print_in(first, &bulk);
    print_in(second, "before-page-second\n");
    browser.goto(&format!("{}/apps/chatty", daemon.api)).await;
    browser
        .wait_text("#app-logs", "before-page-second", Duration::from_secs(15))
        .await;
    let text = browser
        .wait_text("#app-logs", "bulk-120", Duration::from_secs(15))
        .await;
    assert!(
        text.contains(&format!("[{first_shown}] bulk-120")),
        "{text}"
    );
    assert!(
        text.contains("bulk-021") && !text.contains("bulk-020"),
        "tail 100: {text}"
    );
    print_in(
        first,
        "after-open <img src=x onerror=\"window.pwned=1\"> &amp;\n",
    );
    print_in(second, "after-open-second\n");
    let text = browser
        .wait_text("#app-logs", "after-open-second", Duration::from_secs(15))
        .await;
    let wanted = format!("[{first_shown}] after-open <img src=x onerror=\"window.pwned=1\"> &amp;");
    let text = if text.contains(&wanted) {
        text
    } else {
        browser
            .wait_text("#app-logs", &wanted, Duration::from_secs(10))
            .await
    };
    assert!(
        text.contains(&wanted),
        "app output is shown as text: {text}"
    );
    let markup = run_js(
        browser,
        "return [document.querySelectorAll('#app-logs img').length, window.pwned || 0]",
    )
    .await;
    assert_eq!(markup, json!([0, 0]), "app output never becomes markup");
}

/// One container chosen: only its lines, live.
async fn one_container(browser: &Browser, replicas: &Replicas) {
    let Replicas {
        first,
        second,
        second_shown,
        ..
    } = replicas;
    choose(browser, "log-container", second_shown).await;
    browser
        .wait_text("#app-logs", "after-open-second", Duration::from_secs(15))
        .await;
    print_in(first, "only-first\n");
    print_in(second, "only-second\n");
    let text = browser
        .wait_text("#app-logs", "only-second", Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text_now = browser.text("#app-logs").await;
    assert!(
        text.contains("only-second") && !text_now.contains("only-first"),
        "{text_now}"
    );
    assert!(
        text_now
            .lines()
            .all(|l| l.starts_with(&format!("[{second_shown}] "))),
        "only the chosen container's lines: {text_now}"
    );
}

/// A larger tail, and the view bounded (the oldest lines go past 3,000), stuck to the
/// bottom unless the reader scrolled up.
async fn larger_tail_and_bounded(browser: &Browser, replicas: &Replicas) {
    let Replicas {
        first, first_shown, ..
    } = replicas;
    choose(browser, "log-container", first_shown).await;
    choose(browser, "log-tail", "500").await;
    // The tail arrives in order, a frame's worth at a time: its last line, then all of it.
    let text = browser
        .wait_text("#app-logs", "only-first", Duration::from_secs(15))
        .await;
    assert!(
        text.contains("bulk-001") && !text.contains("only-second"),
        "{text}"
    );
    let flood: String = (1..=3100).map(|i| format!("flood-{i:04}\n")).collect();
    print_in(first, &flood);
    browser
        .wait_text("#app-logs", "flood-3100", Duration::from_secs(20))
        .await;
    let view = run_js(
        browser,
        "const l = document.getElementById('app-logs'); \
         return [l.children.length, l.firstChild.textContent, \
                 l.scrollHeight - l.scrollTop - l.clientHeight < 40]",
    )
    .await;
    assert_eq!(view[0], json!(3000), "{view}");
    assert_eq!(
        view[1],
        json!(format!("[{first_shown}] flood-0101\n")),
        "{view}"
    );
    assert_eq!(
        view[2],
        json!(true),
        "the view follows the newest line: {view}"
    );
    // Scrolled up to read, the view stays where the reader is.
    run_js(browser, "document.getElementById('app-logs').scrollTop = 0").await;
    print_in(first, "while-reading\n");
    browser
        .wait_text("#app-logs", "while-reading", Duration::from_secs(15))
        .await;
    let top = run_js(
        browser,
        "return document.getElementById('app-logs').scrollTop",
    )
    .await;
    assert_eq!(top, json!(0), "scrolled up, the view does not jump");
}

/// The graph of each container gets a point per poll; the figures are the container's:
/// the busy one (a core spun in it) shows the CPU, the memory is the engine's, with the
/// app's limit.
async fn usage_graphs(browser: &Browser, (idle, busy): (&str, &str)) {
    docker(&["exec", "-d", busy, "/app", "burn", "60"]);
    let read = format!(
        "const f = (n) => document.querySelector(`figure[data-container='${{n}}']`); \
         return [{idle:?}, {busy:?}].map((n) => f(n) && [Number(f(n).dataset.samples), \
           f(n).querySelectorAll('circle.cpu').length, \
           f(n).querySelector('.cpu-figure').textContent, \
           f(n).querySelector('.memory-figure').textContent])"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let figures = loop {
        let figures = run_js(browser, &read).await;
        let ready = figures
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f[0].as_u64().unwrap_or(0) >= 3 && f[1] == f[0] && cpu_of(&f[2]) >= 0.0);
        if ready && cpu_of(&figures[1][2]) >= 30.0 {
            break figures;
        }
        assert!(
            Instant::now() < deadline,
            "no busy sample in 60 s: {figures}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (idle_cpu, busy_cpu) = (cpu_of(&figures[0][2]), cpu_of(&figures[1][2]));
    assert!(idle_cpu < 15.0 && busy_cpu >= 30.0, "{figures}");
    for (container, figure) in [idle, busy].iter().zip(figures.as_array().unwrap()) {
        let text = figure[3].as_str().unwrap();
        let (used, limit) = text
            .strip_prefix("memory ")
            .and_then(|t| t.split_once(" of "))
            .unwrap_or_else(|| panic!("memory figure {text:?}"));
        assert_eq!(limit, "64.0 MiB", "{text}");
        let shown = bytes_of(used);
        assert!(shown > 0.0, "{text}");
        // The engine's own reading of the same container, as `docker stats` shows it.
        let stats = docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}",
            container,
        ]);
        let engine = bytes_of(stats.split(" / ").next().unwrap().trim());
        assert!(
            (shown - engine).abs() <= (engine * 0.3).max(512.0 * 1024.0),
            "{container}: page {used}, docker stats {stats}"
        );
    }
}

/// A hidden tab polls no more; shown again, it polls at once.
async fn paused_while_hidden(browser: &Browser) {
    let samples = "return Number(document.querySelector('figure.usage-graph').dataset.samples)";
    let set_hidden = |hidden: bool| {
        format!(
            "Object.defineProperty(document, 'hidden', {{ value: {hidden}, configurable: true }}); \
             document.dispatchEvent(new Event('visibilitychange'));"
        )
    };
    run_js(browser, &set_hidden(true)).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a poll under way ends
    let before = run_js(browser, samples).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        run_js(browser, samples).await,
        before,
        "no polls while hidden"
    );
    assert!(browser.text("#usage-state").await.contains("Paused"));
    run_js(browser, &set_hidden(false)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while run_js(browser, samples).await == before {
        assert!(Instant::now() < deadline, "shown again, it polls at once");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Redeployed while the page is open: the output follows on to the new deployment's
/// containers, a line saying so, the choice of containers and the use graphs become the
/// new ones, all without a reload.
async fn follows_a_redeploy(daemon: &Daemon, browser: &Browser, old: &Replicas) {
    choose(browser, "log-container", "").await;
    browser
        .wait_text("#app-logs", "after-open-second", Duration::from_secs(15))
        .await;
    run_js(browser, "window.samePage = 'yes'").await;
    let id = daemon.deploy("chatty", None).await;
    let deployment = daemon.wait(id).await;
    assert_eq!(deployment["state"], "live", "{deployment}");
    let mut new: Vec<String> = daemon
        .containers("chatty")
        .into_iter()
        .filter(|name| name.ends_with(&format!("_d{id}")) || name.contains(&format!("_d{id}_")))
        .collect();
    new.sort();
    assert_eq!(new.len(), 2, "{new:?}");
    let instance_prefix = format!("{}_", daemon.instance);
    let new_shown: Vec<&str> = new
        .iter()
        .map(|name| name.strip_prefix(&instance_prefix).unwrap())
        .collect();
    print_in(&new[1], "from-the-new-deployment\n");
    let text = browser
        .wait_text(
            "#app-logs",
            &format!("[{}] from-the-new-deployment", new_shown[1]),
            Duration::from_secs(30),
        )
        .await;
    let marker = format!("— now following deployment #{id}'s containers —");
    assert!(text.contains(&marker), "{text}");
    assert!(
        text.contains("after-open-second"),
        "the old lines stay above: {text}"
    );
    let read = "return [[...document.querySelectorAll('#log-container option')].map((o) => o.value), \
                [...document.querySelectorAll('#usage figure')].map((f) => f.dataset.container).sort(), \
                document.querySelector('#log-container option').textContent, window.samePage]";
    let wanted = json!([
        ["", new_shown[0], new_shown[1]],
        new,
        "All 2 containers",
        "yes"
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = run_js(browser, read).await;
        if now == wanted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "choices and graphs of the new containers only ({} and {} gone), same page: {now}",
            old.first_shown,
            old.second_shown
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    run_js(
        browser,
        "document.getElementById('app-output').scrollIntoView()",
    )
    .await;
    browser.screenshot("04-followed-on").await;
}

fn cpu_of(figure: &Value) -> f64 {
    figure
        .as_str()
        .and_then(|t| t.strip_prefix("CPU "))
        .and_then(|t| t.strip_suffix(" %"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1.0)
}

/// "12.3 MiB" (the panel) or "12.3MiB" (docker stats) in bytes.
fn bytes_of(text: &str) -> f64 {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == ' ');
    let unit = text[digits.len()..].trim();
    let factor = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("a size like 12.3 MiB: {text:?}"),
    };
    digits.trim().parse::<f64>().unwrap() * factor
}

/// The page's routes: signed out, a redirect to sign in; signed in (a viewer), the API's
/// answers; a container of another app, a tail the page does not offer, refused.
async fn access_control(daemon: &Daemon, session: &str) {
    let instance = daemon.instance.as_str();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, signed_in: bool| {
        let request = client.get(format!("{}{path}", daemon.api));
        let request = if signed_in {
            request.header("cookie", format!("capstan_session={session}"))
        } else {
            request
        };
        request.send()
    };
    for path in ["/apps/chatty/usage", "/apps/chatty/logs/stream?tail=100"] {
        let response = get(path, false).await.unwrap();
        assert_eq!(response.status(), 303, "{path} signed out");
        assert_eq!(response.headers()["location"], "/login", "{path}");
    }
    let response = get("/apps/chatty/usage", true).await.unwrap();
    assert_eq!(response.status(), 200);
    let uses: Value = response.json().await.unwrap();
    let mut named: Vec<String> = uses
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["container"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    let mut chatty = daemon.containers("chatty");
    chatty.sort();
    assert_eq!(named, chatty, "{uses}");
    assert!(uses[0]["memory_bytes"].as_u64().unwrap() > 0, "{uses}");

    let quiet = daemon.containers("quiet").pop().unwrap();
    let quiet_shown = quiet.strip_prefix(&format!("{instance}_")).unwrap();
    // A list of containers (as the page asks for a new deployment's) is refused when
    // any of them is not this app's.
    let mixed = format!("{},{quiet_shown}", chatty[0]);
    for other in [quiet.as_str(), quiet_shown, "chatty_d1; rm -rf /", &mixed] {
        let path = format!("/apps/chatty/logs/stream?container={}", urlencode(other));
        let response = get(&path, true).await.unwrap();
        assert_eq!(response.status(), 404, "{other}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("is not a running container of chatty"),
            "{error}"
        );
        // The API refuses it the same way.
        let (status, body) = daemon
            .call(
                Method::GET,
                &format!("/apps/chatty/logs?container={}", urlencode(other)),
                None,
            )
            .await;
        assert_eq!(status, 404, "{other}: {body}");
    }
    let response = get("/apps/chatty/logs/stream?tail=7", true).await.unwrap();
    assert_eq!(response.status(), 400);
    let response = get("/apps/nope/usage", true).await.unwrap();
    assert_eq!(response.status(), 404);
    let response = get(
        &format!("/apps/quiet/logs/stream?container={quiet_shown}"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
