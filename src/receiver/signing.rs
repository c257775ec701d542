//! Signatures a receiver checks: `X-ClockEye-Signature` (the seed's: hex HMAC-SHA256 of the raw
//! body keyed by the secret string) and Standard Webhooks' `webhook-signature`. Pure functions.
//! (The service's secrets and ids are made in `ids.rs`.)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `X-ClockEye-Signature`: `sha256=` + lowercase hex HMAC-SHA256(key = the secret string as
/// UTF-8, message = the raw body). Exactly what the seed's `verifyWebhookSignature` recomputes.
pub fn clockeye_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(secret.as_bytes(), &[body])))
}

/// The key Standard Webhooks signs with: the base64-decoded part after `whsec_`.
/// A secret without that form is used as raw bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_").map(|b64| BASE64.decode(b64)) {
        Some(Ok(key)) => key,
        _ => secret.as_bytes().to_vec(),
    }
}

/// One `webhook-signature` entry: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub fn standard_signature(secret: &str, webhook_id: &str, timestamp_s: i64, body: &[u8]) -> String {
    let timestamp = timestamp_s.to_string();
    let mac = hmac(
        &standard_key(secret),
        &[
            webhook_id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body,
        ],
    );
    format!("v1,{}", BASE64.encode(mac))
}

/// Receiver side: does `header` (the whole `X-ClockEye-Signature` value) match `body`?
/// Compares in constant time. Verify the raw body bytes, before any JSON parsing.
///
/// ```
/// use clockeye_webhooks::signing::{clockeye_signature, verify_clockeye};
///
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let body = br#"{"id":"evt_1","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{}}"#;
/// let header = clockeye_signature(secret, body);
/// assert!(header.starts_with("sha256="));
/// assert!(verify_clockeye(secret, body, &header));
/// // Re-serialized JSON is different bytes, and fails:
/// assert!(!verify_clockeye(secret, b"{\"id\": \"evt_1\"}", &header));
/// ```
pub fn verify_clockeye(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Receiver side: does any `v1,` entry of a `webhook-signature` header match?
/// (Check `webhook-timestamp` against your clock as well, to refuse replays.)
///
/// ```
/// use clockeye_webhooks::signing::verify_standard;
///
/// // Standard Webhooks' own test vector.
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// assert!(verify_standard(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#, header));
/// ```
pub fn verify_standard(
    secret: &str,
    webhook_id: &str,
    timestamp_s: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let key = standard_key(secret);
    let timestamp = timestamp_s.to_string();
    header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|b64| {
            let Ok(expected) = BASE64.decode(b64) else {
                return false;
            };
            let mut mac =
                HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length");
            for part in [
                webhook_id.as_bytes(),
                b".",
                timestamp.as_bytes(),
                b".",
                body,
            ] {
                mac.update(part);
            }
            mac.verify_slice(&expected).is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_githubs_known_answer() {
        let signature = clockeye_signature("It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            signature,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(verify_clockeye(
            "It's a Secret to Everybody",
            b"Hello, World!",
            &signature
        ));
        assert!(!verify_clockeye(
            "It's a Secret to Everybody",
            b"Hello, World!\n",
            &signature
        ));
        assert!(!verify_clockeye("wrong", b"Hello, World!", &signature));
    }

    #[test]
    fn matches_standard_webhooks_known_answer() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature =
            standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let header = format!("v1,bm90IGl0 {signature}");
        assert!(verify_standard(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &header
        ));
        assert!(!verify_standard(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &header
        ));
    }
}
