use super::*;

const STORE: &str = include_str!("../../tests/fixtures/acme-store.json");
/// notAfter of the fixture's `a.test`/`b.test` leaf (Mar 7 11:44:54 2027 GMT).
const LEAF_EXPIRY_MS: i64 = 1_804_419_894_000;
/// notAfter of the fixture's `*.w.test` certificate.
const WILDCARD_EXPIRY_MS: i64 = 1_799_235_899_000;

/// Lines as Traefik v3.7 logs them with `log.format: json` (keys repeated as it does).
const LOG: &[&str] = &[
    r#"{"level":"info","time":"2026-12-07T11:00:00Z","message":"Configuration loaded from file: /etc/traefik/traefik.yml"}"#,
    r#"{"level":"error","providerName":"letsencrypt.acme","acmeCA":"https://ca.test/dir","providerName":"letsencrypt.acme","ACME CA":"https://ca.test/dir","domains":["fail.test","Also.test"],"routerName":"x_https@file","rule":"Host(`fail.test`)","error":"unable to generate a certificate for the domains [fail.test]: first","time":"2026-12-07T11:00:01Z","message":"Unable to obtain ACME certificate for domains"}"#,
    "not json at all",
    r#"{"level":"error","domains":["fail.test"],"providerName":"letsencrypt.acme","error":"acme: error: 400 :: urn:ietf:params:acme:error:dns :: no A records","message":"Unable to obtain ACME certificate for domains"}"#,
    r#"{"level":"error","domains":["elsewhere.test"],"providerName":"other.acme","error":"another resolver","message":"Unable to obtain ACME certificate for domains"}"#,
    r#"{"level":"warn","domains":["warned.test"],"providerName":"letsencrypt.acme","error":"only a warning"}"#,
];

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn log() -> Vec<String> {
    LOG.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_store_names_each_certificates_domains_and_expiry() {
    let store = AcmeStore::parse(STORE.as_bytes(), "letsencrypt").unwrap();
    assert_eq!(store.expiry_of("a.test"), Some(LEAF_EXPIRY_MS));
    // A SAN, stored in another case.
    assert_eq!(store.expiry_of("b.test"), Some(LEAF_EXPIRY_MS));
    // Covered by the wildcard, one label deep only.
    assert_eq!(store.expiry_of("x.w.test"), Some(WILDCARD_EXPIRY_MS));
    assert_eq!(store.expiry_of("y.x.w.test"), None);
    // Another resolver's certificate is not this one's.
    assert_eq!(store.expiry_of("other.test"), None);
    assert_eq!(
        AcmeStore::parse(STORE.as_bytes(), "missing").unwrap(),
        AcmeStore::default()
    );
}

#[test]
fn an_empty_or_new_store_holds_nothing_and_a_broken_one_is_an_error() {
    assert_eq!(
        AcmeStore::parse(b"", "letsencrypt").unwrap(),
        AcmeStore::default()
    );
    let fresh = br#"{"letsencrypt":{"Account":{"Email":""},"Certificates":null}}"#;
    assert_eq!(
        AcmeStore::parse(fresh, "letsencrypt").unwrap(),
        AcmeStore::default()
    );
    assert!(matches!(
        AcmeStore::parse(b"{not json", "letsencrypt"),
        Err(StoreError::Json(_))
    ));
    let bad_cert = br#"{"letsencrypt":{"Certificates":[{"domain":{"main":"a.test"},"certificate":"bm90IGEgY2VydA==","key":""}]}}"#;
    let err = AcmeStore::parse(bad_cert, "letsencrypt").unwrap_err();
    assert!(
        matches!(&err, StoreError::Certificate { domain, .. } if domain == "a.test"),
        "{err}"
    );
}

#[test]
fn failures_are_the_resolvers_error_lines_latest_last() {
    let failures = failures_in_log(&log());
    assert_eq!(
        failures.get("fail.test").map(String::as_str),
        Some("acme: error: 400 :: urn:ietf:params:acme:error:dns :: no A records")
    );
    assert_eq!(
        failures.get("also.test").map(String::as_str),
        Some("unable to generate a certificate for the domains [fail.test]: first")
    );
    assert!(!failures.contains_key("elsewhere.test"));
    assert!(!failures.contains_key("warned.test"));
    assert_eq!(failures.len(), 2);
}

#[test]
fn a_long_reason_is_cut() {
    let line = format!(
        r#"{{"level":"error","domains":["a.test"],"providerName":"letsencrypt.acme","error":"{}"}}"#,
        "é".repeat(2000)
    );
    let reason = &failures_in_log(&[line])["a.test"];
    assert_eq!(reason.chars().count(), REASON_MAX + 1);
    assert!(reason.ends_with('…'));
}

#[test]
fn issued_wins_then_failed_then_pending() {
    let store = AcmeStore::parse(STORE.as_bytes(), "letsencrypt").unwrap();
    let mut failures = failures_in_log(&log());
    // A failed renewal of a domain that still holds its certificate.
    failures.insert("a.test".into(), "renewal failed".into());
    let got = states(
        &domains(&["A.test", "fail.test", "new.test", "x.w.test"]),
        &store,
        &failures,
    );
    let by_name: Vec<(&str, &CertificateState)> =
        got.iter().map(|c| (c.domain.as_str(), &c.state)).collect();
    assert_eq!(
        by_name,
        vec![
            (
                "A.test",
                &CertificateState::Issued {
                    expires_at_ms: LEAF_EXPIRY_MS
                }
            ),
            (
                "fail.test",
                &CertificateState::Failed {
                    reason: "acme: error: 400 :: urn:ietf:params:acme:error:dns :: no A records"
                        .into()
                }
            ),
            ("new.test", &CertificateState::Pending),
            (
                "x.w.test",
                &CertificateState::Issued {
                    expires_at_ms: WILDCARD_EXPIRY_MS
                }
            ),
        ]
    );
}

/// A source that counts its reads, to show which states need none.
struct Fixture {
    store: Option<&'static str>,
    reads: std::sync::atomic::AtomicUsize,
}

impl CertificateSource for Fixture {
    async fn acme_store(&self) -> Result<Option<Vec<u8>>, EngineError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.store.map(|s| s.as_bytes().to_vec()))
    }

    async fn proxy_log(&self) -> Result<Vec<String>, EngineError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(log())
    }
}

#[tokio::test]
async fn http_only_and_unserved_apps_read_nothing_of_traefik() {
    let source = Fixture {
        store: Some(STORE),
        reads: Default::default(),
    };
    let names = domains(&["a.test", "fail.test"]);
    let plain = domain_certificates(&source, &names, false, true)
        .await
        .unwrap();
    assert!(plain.iter().all(|c| c.state == CertificateState::HttpOnly));
    let unserved = domain_certificates(&source, &names, true, false)
        .await
        .unwrap();
    assert!(unserved
        .iter()
        .all(|c| c.state == CertificateState::NotServed));
    assert_eq!(source.reads.load(std::sync::atomic::Ordering::SeqCst), 0);
    let served = domain_certificates(&source, &names, true, true)
        .await
        .unwrap();
    assert_eq!(served[0].state.as_str(), "issued");
    assert_eq!(served[1].state.as_str(), "failed");
    assert_eq!(source.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_store_yet_means_pending_unless_failed() {
    let source = Fixture {
        store: None,
        reads: Default::default(),
    };
    let got = domain_certificates(&source, &domains(&["a.test", "fail.test"]), true, true)
        .await
        .unwrap();
    assert_eq!(got[0].state, CertificateState::Pending);
    assert_eq!(got[1].state.as_str(), "failed");
}
