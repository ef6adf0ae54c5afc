//! What the last read of Traefik said of its certificates, kept [`FACTS_TTL`]: the app
//! pages and the API ask often, and each read copies the whole ACME store (private keys
//! included) out of the proxy and reads thousands of its log lines. Only the parsed facts
//! (names, expiries, failure reasons) are kept; a failed read is not, so the next asks again.

use super::{read_facts, CertificateSource, TraefikFacts};
use crate::ActionError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a read of Traefik's certificates is reused.
pub const FACTS_TTL: Duration = Duration::from_secs(5);

/// The latest facts read and when. Readers at once wait for one read rather than each
/// copying the store.
#[derive(Default)]
pub struct FactsCache {
    latest: tokio::sync::Mutex<Option<(Instant, Arc<TraefikFacts>)>>,
}

impl FactsCache {
    /// The facts read less than [`FACTS_TTL`] before `now`, else read afresh.
    pub async fn get(
        &self,
        source: &impl CertificateSource,
        now: Instant,
    ) -> Result<Arc<TraefikFacts>, ActionError> {
        let mut latest = self.latest.lock().await;
        if let Some((read_at, facts)) = latest.as_ref() {
            if now.saturating_duration_since(*read_at) < FACTS_TTL {
                return Ok(Arc::clone(facts));
            }
        }
        let facts = Arc::new(read_facts(source).await?);
        *latest = Some((now, Arc::clone(&facts)));
        Ok(facts)
    }
}
