//! A server's SSH key pair: ed25519, made by Capstan when the server is added, in the
//! forms the SSH transport reads (OpenSSH private key) and the remote's `authorized_keys`
//! takes (one public key line).

use crate::ActionError;
use capstan_store::ServerPrivateKey;
use rand::RngCore;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{LineEnding, PrivateKey};

/// A new ed25519 key pair commented `comment`: the `authorized_keys` line and the private
/// key in OpenSSH form.
pub(crate) fn generate(comment: &str) -> Result<(String, ServerPrivateKey), ActionError> {
    let failed = |e: ssh_key::Error| ActionError::Internal(format!("cannot make a key pair: {e}"));
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let pair = Ed25519Keypair::from_seed(&seed);
    seed.fill(0);
    let key = PrivateKey::new(KeypairData::Ed25519(pair), comment).map_err(failed)?;
    let public = key.public_key().to_openssh().map_err(failed)?;
    let private = key.to_openssh(LineEnding::LF).map_err(failed)?;
    Ok((public, ServerPrivateKey::new(private.to_string())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn makes_a_distinct_ed25519_pair_each_time() {
        let (public, private) = super::generate("capstan@test/web-2").unwrap();
        assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
        assert!(public.ends_with(" capstan@test/web-2"), "{public}");
        assert!(private
            .expose()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let back = ssh_key::PrivateKey::from_openssh(private.expose()).unwrap();
        assert_eq!(back.public_key().to_openssh().unwrap(), public);
        let (other, _) = super::generate("x").unwrap();
        assert_ne!(
            other.split(' ').nth(1),
            public.split(' ').nth(1),
            "a fresh key each time"
        );
    }
}
