//! The service's secrets, public ids and tokens, all from the OS's CSPRNG, and the hash tokens
//! are stored by.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// Random bytes in an endpoint secret.
pub(crate) const SECRET_BYTES: usize = 32;
/// Random bytes in a public id (`evt_`, `dlv_`, `ep_`), written as hex.
pub(crate) const ID_BYTES: usize = 12;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    bytes
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub(crate) fn new_secret() -> String {
    format!("whsec_{}", BASE64.encode(random_bytes::<SECRET_BYTES>()))
}

/// A new public id with the given prefix, e.g. `new_id("evt")` → `evt_5f0c…` (24 hex digits).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(random_bytes::<ID_BYTES>()))
}

/// A new bearer token: 32 random bytes as hex behind a readable prefix.
pub(crate) fn new_token(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(random_bytes::<32>()))
}

/// Lowercase hex SHA-256, for storing tokens without keeping them.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_ids_have_their_documented_form() {
        let secret = new_secret();
        let key = BASE64
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
        assert_ne!(secret, new_secret());
        let id = new_id("evt");
        assert!(
            id.starts_with("evt_") && id.len() == 4 + 2 * ID_BYTES,
            "{id}"
        );
    }
}
