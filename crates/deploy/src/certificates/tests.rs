//! The certificate states from fixtures: an ACME store as Traefik v3.7 writes it (one
//! broken entry among them), its JSON log lines, expiry, and the facts kept between reads.

use super::*;

const STORE: &str = include_str!("../../tests/fixtures/acme-store.json");
/// notAfter of the fixture's `a.test`/`b.test` leaf (Mar 7 11:44:54 2027 GMT).
const LEAF_EXPIRY_MS: i64 = 1_804_419_894_000;
/// notAfter of the fixture's `*.w.test` certificate.
const WILDCARD_EXPIRY_MS: i64 = 1_799_235_899_000;

/// A moment before either of the fixture's certificates expires.
const NOW_MS: i64 = WILDCARD_EXPIRY_MS - 86_400_000;

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
fn an_empty_or_new_store_holds_nothing_and_broken_json_is_an_error() {
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
}

#[test]
fn a_certificate_that_cannot_be_read_is_skipped_and_the_rest_kept() {
    let mut store: serde_json::Value = serde_json::from_str(STORE).unwrap();
    let certificates = store["letsencrypt"]["Certificates"].as_array_mut().unwrap();
    for (main, certificate) in [
        ("not-base64.test", "%%%"),
        ("not-pem.test", "bm90IGEgY2VydA=="),
        // Base64 of a PEM block that is no certificate.
        (
            "not-x509.test",
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=",
        ),
    ] {
        certificates.insert(
            0,
            serde_json::json!({"domain": {"main": main}, "certificate": certificate, "key": ""}),
        );
    }
    let bytes = serde_json::to_vec(&store).unwrap();
    let parsed = AcmeStore::parse(&bytes, "letsencrypt").expect("the readable ones are kept");
    assert_eq!(
        parsed,
        AcmeStore::parse(STORE.as_bytes(), "letsencrypt").unwrap()
    );
    assert_eq!(parsed.expiry_of("a.test"), Some(LEAF_EXPIRY_MS));
    assert_eq!(parsed.expiry_of("not-pem.test"), None);
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
    let facts = TraefikFacts { store, failures };
    let got = states(
        &domains(&["A.test", "fail.test", "new.test", "x.w.test"]),
        &facts,
        NOW_MS,
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

#[test]
fn a_certificate_past_its_expiry_is_expired_with_the_renewals_failure() {
    let store = AcmeStore::parse(STORE.as_bytes(), "letsencrypt").unwrap();
    let mut failures = BTreeMap::new();
    failures.insert("a.test".to_string(), "renewal failed".to_string());
    let facts = TraefikFacts { store, failures };
    let names = domains(&["a.test", "b.test", "x.w.test"]);
    // Between the wildcard's expiry and the leaf's: only the wildcard has expired.
    let got = states(&names, &facts, WILDCARD_EXPIRY_MS + 1);
    let got: Vec<&CertificateState> = got.iter().map(|c| &c.state).collect();
    assert_eq!(
        got,
        [
            &CertificateState::Issued {
                expires_at_ms: LEAF_EXPIRY_MS
            },
            &CertificateState::Issued {
                expires_at_ms: LEAF_EXPIRY_MS
            },
            &CertificateState::Expired {
                expires_at_ms: WILDCARD_EXPIRY_MS,
                reason: None
            },
        ]
    );
    // At its expiry a certificate no longer serves; the failure logged is the reason.
    let got = states(&names[..2], &facts, LEAF_EXPIRY_MS);
    assert_eq!(
        got[0].state,
        CertificateState::Expired {
            expires_at_ms: LEAF_EXPIRY_MS,
            reason: Some("renewal failed".into())
        }
    );
    assert_eq!(got[1].state.as_str(), "expired");
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
    let plain = domain_certificates(
        &FactsCache::default(),
        &source,
        &names,
        (false, true),
        NOW_MS,
    )
    .await
    .unwrap();
    assert!(plain.iter().all(|c| c.state == CertificateState::HttpOnly));
    let unserved = domain_certificates(
        &FactsCache::default(),
        &source,
        &names,
        (true, false),
        NOW_MS,
    )
    .await
    .unwrap();
    assert!(unserved
        .iter()
        .all(|c| c.state == CertificateState::NotServed));
    assert_eq!(source.reads.load(std::sync::atomic::Ordering::SeqCst), 0);
    let served = domain_certificates(
        &FactsCache::default(),
        &source,
        &names,
        (true, true),
        NOW_MS,
    )
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
    let got = domain_certificates(
        &FactsCache::default(),
        &source,
        &domains(&["a.test", "fail.test"]),
        (true, true),
        NOW_MS,
    )
    .await
    .unwrap();
    assert_eq!(got[0].state, CertificateState::Pending);
    assert_eq!(got[1].state.as_str(), "failed");
}

#[tokio::test]
async fn a_read_is_kept_a_few_seconds_and_a_failed_one_not_at_all() {
    let source = Fixture {
        store: Some(STORE),
        reads: Default::default(),
    };
    let reads = || source.reads.load(std::sync::atomic::Ordering::SeqCst);
    let cache = FactsCache::default();
    let start = std::time::Instant::now();
    let first = cache.get(&source, start).await.unwrap();
    assert_eq!(reads(), 2, "the store and the log");
    assert_eq!(first.store.expiry_of("a.test"), Some(LEAF_EXPIRY_MS));
    let again = cache
        .get(
            &source,
            start + FACTS_TTL - std::time::Duration::from_millis(1),
        )
        .await
        .unwrap();
    assert_eq!(reads(), 2, "kept");
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    cache.get(&source, start + FACTS_TTL).await.unwrap();
    assert_eq!(reads(), 4, "read again once it is old");

    let broken = Fixture {
        store: Some("{not json"),
        reads: Default::default(),
    };
    let cache = FactsCache::default();
    assert!(cache.get(&broken, start).await.is_err());
    assert!(cache.get(&broken, start).await.is_err());
    assert_eq!(
        broken.reads.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "each ask reads again (the store only: it fails first)"
    );
}
