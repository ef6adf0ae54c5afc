//! The anti-forgery token of the forms posted before a session exists (sign-in and
//! setup). The page sets a random nonce in a `SameSite=Strict` cookie and carries, in the
//! form, that nonce's HMAC under a key only this daemon holds: another site can neither
//! read the cookie nor compute the field for a cookie it managed to plant.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie holding the pre-session nonce.
pub const FORM_COOKIE: &str = "capstan_form";

/// The daemon's key for pre-session form tokens (random per start: a page loaded before a
/// restart just asks to be reloaded).
#[derive(Clone)]
pub struct FormTokens {
    key: [u8; 32],
}

impl Default for FormTokens {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut key);
        Self { key }
    }
}

impl FormTokens {
    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// The form field's value for the cookie's `nonce`.
    pub fn field_for(&self, nonce: &str) -> String {
        let mut mac = self.mac();
        mac.update(nonce.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `field` is the token for `nonce` (compared in constant time).
    pub fn matches(&self, nonce: &str, field: &str) -> bool {
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(field) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(nonce.as_bytes());
        !nonce.is_empty() && mac.verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_matches_only_its_nonce_and_its_daemon() {
        let tokens = FormTokens::default();
        let field = tokens.field_for("nonce-1");
        assert!(tokens.matches("nonce-1", &field));
        assert!(!tokens.matches("nonce-2", &field));
        assert!(!tokens.matches("", &tokens.field_for("")));
        assert!(!tokens.matches("nonce-1", "not base64 !"));
        assert!(!FormTokens::default().matches("nonce-1", &field));
    }
}
