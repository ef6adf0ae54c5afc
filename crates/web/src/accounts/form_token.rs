//! The anti-forgery token of the forms posted before a session exists (sign-in and
//! setup). The daemon mints a random nonce and sets it, signed, in a `SameSite=Strict`
//! cookie; the form carries another MAC of that nonce. Both MACs are under a key only this
//! daemon holds, so another site can neither read the cookie, nor plant one of its own
//! (an unsigned or foreign cookie is replaced), nor compute the field.

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
    fn mac(&self, purpose: &str, nonce: &str) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The nonce inside a cookie value this daemon signed, if it is one.
    fn nonce_of<'a>(&self, cookie: &'a str) -> Option<&'a str> {
        let (nonce, signature) = cookie.split_once('.')?;
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .ok()?;
        let expected = self.mac("cookie", nonce);
        (!nonce.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(&given[..], &expected[..])))
            .then_some(nonce)
    }

    /// The cookie value to set and the form field for it: the browser's own cookie when
    /// this daemon signed it, else a new nonce.
    pub fn issue(&self, cookie: Option<&str>) -> (String, String) {
        let cookie = match cookie.filter(|c| c.len() <= 256 && self.nonce_of(c).is_some()) {
            Some(cookie) => cookie.to_string(),
            None => {
                let nonce = super::random_secret();
                format!("{nonce}.{}", Self::encode(&self.mac("cookie", &nonce)))
            }
        };
        let nonce = self.nonce_of(&cookie).unwrap_or_default();
        let field = Self::encode(&self.mac("form", nonce));
        (cookie, field)
    }

    /// Whether `field` is the form token for the signed `cookie` (in constant time).
    pub fn matches(&self, cookie: &str, field: &str) -> bool {
        let Some(nonce) = self.nonce_of(cookie) else {
            return false;
        };
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(field) else {
            return false;
        };
        bool::from(subtle::ConstantTimeEq::ct_eq(
            &given[..],
            &self.mac("form", nonce)[..],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_matches_only_its_own_signed_cookie() {
        let tokens = FormTokens::default();
        let (cookie, field) = tokens.issue(None);
        assert!(tokens.matches(&cookie, &field));
        assert_eq!(
            tokens.issue(Some(&cookie)),
            (cookie.clone(), field.clone()),
            "kept"
        );
        let (other, _) = tokens.issue(None);
        assert!(!tokens.matches(&other, &field));
        assert!(!tokens.matches(&cookie, "not base64 !"));
        assert!(
            !FormTokens::default().matches(&cookie, &field),
            "another daemon"
        );
    }

    #[test]
    fn a_planted_cookie_is_replaced_not_signed() {
        let tokens = FormTokens::default();
        for planted in ["AAAA", "AAAA.", "AAAA.bm90IGEgbWFj", ".", ""] {
            let (cookie, field) = tokens.issue(Some(planted));
            assert_ne!(cookie, planted);
            assert!(tokens.matches(&cookie, &field));
            assert!(!tokens.matches(planted, &field));
        }
    }
}
