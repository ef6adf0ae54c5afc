//! Capstan's SSH keys: an ed25519 pair per installation (the private half in OpenSSH's
//! PEM form, encrypted at rest by the caller; the public half as an `authorized_keys`
//! line) and fingerprints in OpenSSH's `SHA256:base64` form, so the two sides agree.

use crate::RemoteError;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

/// The comment on generated keys (the end of the `authorized_keys` line).
const COMMENT: &str = "capstan";

/// A new ed25519 key pair: (private key in OpenSSH PEM form, `authorized_keys` line).
pub fn generate_key_pair() -> Result<(String, String), RemoteError> {
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| RemoteError::Key(e.to_string()))?;
    key.set_comment(COMMENT);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| RemoteError::Key(e.to_string()))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| RemoteError::Key(e.to_string()))?;
    Ok((private.to_string(), public))
}

/// The fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it) of a public key given as
/// an `authorized_keys` line (`ssh-ed25519 AAAA… comment`).
pub fn fingerprint(public: &str) -> Result<String, RemoteError> {
    let key = PublicKey::from_openssh(public.trim())
        .map_err(|e| RemoteError::Key(format!("not an OpenSSH public key: {e}")))?;
    Ok(fingerprint_of(key.key_data()))
}

/// The `authorized_keys` line of the private key `private_pem`.
pub fn public_key_of(private_pem: &str) -> Result<String, RemoteError> {
    parse_private(private_pem)?
        .public_key()
        .to_openssh()
        .map_err(|e| RemoteError::Key(e.to_string()))
}

pub(crate) fn fingerprint_of(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

pub(crate) fn parse_private(private_pem: &str) -> Result<PrivateKey, RemoteError> {
    let key = PrivateKey::from_openssh(private_pem.trim())
        .map_err(|e| RemoteError::Key(format!("not an OpenSSH private key: {e}")))?;
    if key.is_encrypted() {
        return Err(RemoteError::Key(
            "the private key is passphrase-protected; pass it decrypted".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_reads_back_with_the_same_fingerprint() {
        let (private, public) = generate_key_pair().expect("generate");
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        assert!(public.ends_with(" capstan"), "{public}");
        assert_eq!(public_key_of(&private).expect("public half"), public);
        let fp = fingerprint(&public).expect("fingerprint");
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
        let key = parse_private(&private).expect("parse");
        assert_eq!(fingerprint_of(key.public_key().key_data()), fp);
    }

    #[test]
    fn garbage_is_a_key_error_not_a_panic() {
        assert!(matches!(
            fingerprint("ssh-ed25519 !!!"),
            Err(RemoteError::Key(_))
        ));
        assert!(matches!(parse_private("nope"), Err(RemoteError::Key(_))));
    }
}
