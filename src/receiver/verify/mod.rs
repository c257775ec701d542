//! Receiver side: check a webhook's signature (`clockeye`, `standard`, `request`), and say in
//! plain words why one does not verify (`diagnose`, used by the `verify` and `listen` commands).
//! Pure functions: the caller passes the time in; nothing here does I/O. The signing side lives
//! in `signing.rs`.
//!
//! ```
//! use clockeye_webhooks::verify;
//!
//! // What a receiver got (here signed on the spot to keep the example self-contained).
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"id":"evt_1","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{}}"#;
//! let signature = clockeye_webhooks::signing::clockeye_signature(secret, body);
//! let headers = [("X-ClockEye-Signature", signature.as_str())];
//!
//! let now_s = 1_705_314_600;
//! assert_eq!(verify::request(secret, &headers, body, now_s), Ok(verify::Scheme::ClockEye));
//! // Verify the raw bytes: a re-serialized body is different bytes and fails.
//! assert_eq!(
//!     verify::request(secret, &headers, br#"{"id": "evt_1"}"#, now_s),
//!     Err(verify::Invalid::Mismatch)
//! );
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

mod diagnose;

type HmacSha256 = Hmac<Sha256>;

/// How far `webhook-timestamp` may be from the receiver's clock, either way (Standard Webhooks'
/// recommendation): older signatures are refused as possible replays.
pub const TOLERANCE_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// Most `v1,` entries read from one `webhook-signature` (a rotation sends two).
pub const SIGNATURE_ENTRIES_MAX: usize = 16;

/// Which header a signature is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `X-ClockEye-Signature: sha256=<hex HMAC of the body, keyed by the secret string>`.
    ClockEye,
    /// `webhook-signature: v1,<base64>` of Standard Webhooks, with `webhook-id` and
    /// `webhook-timestamp`.
    Standard,
}

impl Scheme {
    pub fn header(self) -> &'static str {
        match self {
            Scheme::ClockEye => "X-ClockEye-Signature",
            Scheme::Standard => "webhook-signature",
        }
    }
}

/// Why a webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The request has no signature header.
    Missing,
    /// A header is not in its documented form; the text says what is wrong.
    Malformed(String),
    /// The signature does not match: a wrong secret, or not the bytes that were signed.
    Mismatch,
    /// The signature matches, but `webhook-timestamp` is too far from now (a possible replay).
    OutsideTolerance {
        timestamp_s: i64,
        now_s: i64,
        tolerance: Duration,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Missing => write!(
                f,
                "no X-ClockEye-Signature or webhook-signature header in the request"
            ),
            Invalid::Malformed(what) => write!(f, "header malformed: {what}"),
            Invalid::Mismatch => write!(
                f,
                "the signature does not match: a wrong secret, or not the body bytes that were signed"
            ),
            Invalid::OutsideTolerance {
                timestamp_s,
                now_s,
                tolerance,
            } => {
                let age_s = now_s - timestamp_s;
                let (amount, when) = if age_s >= 0 {
                    (age_s, "ago")
                } else {
                    (-age_s, "in the future")
                };
                write!(
                    f,
                    "the signature matches, but webhook-timestamp {timestamp_s} is {amount}s {when}, \
                     outside the {}s tolerance (refused as a possible replay)",
                    tolerance.as_secs()
                )?;
                // Unix milliseconds are about 1000 times unix seconds.
                if *timestamp_s > now_s.saturating_mul(100) {
                    write!(
                        f,
                        "; it looks like milliseconds, and webhook-timestamp is in seconds"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Invalid {}

/// A signature header's value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// The MAC of an `X-ClockEye-Signature`.
    ClockEye([u8; 32]),
    /// The MACs of each `v1,` entry of a `webhook-signature`.
    Standard(Vec<[u8; 32]>),
}

impl Signature {
    /// Reads either header's value: `sha256=<64 hex digits>`, or space-separated `v1,<base64>`
    /// entries (entries of other versions are skipped). The error says what is wrong.
    pub fn parse(value: &str) -> Result<Signature, Invalid> {
        let value = value.trim();
        let malformed = |what: String| Err(Invalid::Malformed(what));
        if value.is_empty() {
            return malformed("the signature is empty".into());
        }
        if let Some(hex_digest) = value.strip_prefix("sha256=") {
            if hex_digest.len() != 64 {
                return malformed(format!(
                    "X-ClockEye-Signature is sha256= and 64 hex digits; this has {} characters after sha256=",
                    hex_digest.chars().count()
                ));
            }
            if let Some(bad) = hex_digest.chars().find(|c| !c.is_ascii_hexdigit()) {
                return malformed(format!(
                    "X-ClockEye-Signature is sha256= and 64 hex digits; {bad:?} is not a hex digit"
                ));
            }
            let mut mac = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut mac).expect("64 hex digits");
            return Ok(Signature::ClockEye(mac));
        }
        if value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()) {
            return malformed(
                "64 hex digits without the \"sha256=\" prefix; X-ClockEye-Signature is sha256=<hex>"
                    .into(),
            );
        }
        if !value.contains(',') {
            return malformed(
                "expected sha256=<64 hex digits> (X-ClockEye-Signature) or v1,<base64> entries \
                 (webhook-signature)"
                    .into(),
            );
        }
        let mut macs = Vec::new();
        let mut versions = Vec::new();
        for (index, entry) in value.split_whitespace().enumerate() {
            let Some((version, b64)) = entry.split_once(',') else {
                return malformed(format!(
                    "webhook-signature entry {} ({entry:?}) is not version,signature",
                    index + 1
                ));
            };
            if version != "v1" {
                versions.push(version.to_string());
                continue;
            }
            let mac: Option<[u8; 32]> = BASE64
                .decode(b64)
                .ok()
                .and_then(|bytes| bytes.try_into().ok());
            match mac {
                Some(mac) if macs.len() < SIGNATURE_ENTRIES_MAX => macs.push(mac),
                Some(_) => {
                    return malformed(format!(
                        "webhook-signature has more than {SIGNATURE_ENTRIES_MAX} v1 entries"
                    ));
                }
                None => {
                    return malformed(format!(
                        "webhook-signature entry {} ({entry:?}) is not v1, and the base64 of 32 bytes",
                        index + 1
                    ));
                }
            }
        }
        if macs.is_empty() {
            return malformed(format!(
                "webhook-signature has no v1 entry (found: {})",
                versions.join(", ")
            ));
        }
        Ok(Signature::Standard(macs))
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Signature::ClockEye(_) => Scheme::ClockEye,
            Signature::Standard(_) => Scheme::Standard,
        }
    }
}

/// The key Standard Webhooks signs with: the base64-decoded part after `whsec_` (a secret of
/// another form is used as it is, as the service does).
fn standard_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_").map(|b64| BASE64.decode(b64)) {
        Some(Ok(key)) => key,
        _ => secret.as_bytes().to_vec(),
    }
}

fn mac_matches(key: &[u8], parts: &[&[u8]], expected: &[u8; 32]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    // Constant time.
    mac.verify_slice(expected).is_ok()
}

/// What a signature was made over: the body alone, or Standard Webhooks' `id.timestamp.body`.
#[derive(Debug, Clone, Copy)]
struct Signed<'a> {
    webhook_id: &'a str,
    timestamp: &'a str,
}

fn signature_matches(
    signature: &Signature,
    secret: &str,
    body: &[u8],
    signed: Option<Signed<'_>>,
) -> bool {
    match (signature, signed) {
        (Signature::ClockEye(mac), _) => mac_matches(secret.as_bytes(), &[body], mac),
        (Signature::Standard(macs), Some(signed)) => {
            let key = standard_key(secret);
            let parts: [&[u8]; 5] = [
                signed.webhook_id.as_bytes(),
                b".",
                signed.timestamp.as_bytes(),
                b".",
                body,
            ];
            macs.iter().any(|mac| mac_matches(&key, &parts, mac))
        }
        (Signature::Standard(_), None) => false,
    }
}

/// `X-ClockEye-Signature`: does `signature` (the header's whole value) match the raw `body`?
///
/// ```
/// use clockeye_webhooks::verify;
///
/// // GitHub's known answer: the same scheme.
/// let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
/// assert_eq!(verify::clockeye("It's a Secret to Everybody", b"Hello, World!", signature), Ok(()));
/// assert_eq!(
///     verify::clockeye("It's a Secret to Everybody", b"Hello, World!\n", signature),
///     Err(verify::Invalid::Mismatch)
/// );
/// ```
pub fn clockeye(secret: &str, body: &[u8], signature: &str) -> Result<(), Invalid> {
    match Signature::parse(signature)? {
        Signature::ClockEye(mac) if mac_matches(secret.as_bytes(), &[body], &mac) => Ok(()),
        Signature::ClockEye(_) => Err(Invalid::Mismatch),
        Signature::Standard(_) => Err(Invalid::Malformed(
            "this is a webhook-signature value; use verify::standard".into(),
        )),
    }
}

/// Standard Webhooks: do `webhook-id`, `webhook-timestamp` and `webhook-signature` (any of its
/// `v1` entries) match the raw `body`, with the timestamp within `tolerance` of `now_s`?
///
/// ```
/// use clockeye_webhooks::verify;
///
/// // Standard Webhooks' own test vector.
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let (id, timestamp) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330");
/// let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// let body = br#"{"test": 2432232314}"#;
/// let tolerance = verify::TOLERANCE_DEFAULT;
/// assert_eq!(verify::standard(secret, body, id, timestamp, signature, 1614265330 + 60, tolerance), Ok(()));
/// // An hour later the same request is refused as a possible replay.
/// assert!(matches!(
///     verify::standard(secret, body, id, timestamp, signature, 1614265330 + 3600, tolerance),
///     Err(verify::Invalid::OutsideTolerance { .. })
/// ));
/// ```
pub fn standard(
    secret: &str,
    body: &[u8],
    webhook_id: &str,
    webhook_timestamp: &str,
    webhook_signature: &str,
    now_s: i64,
    tolerance: Duration,
) -> Result<(), Invalid> {
    let signature = Signature::parse(webhook_signature)?;
    if signature.scheme() != Scheme::Standard {
        return Err(Invalid::Malformed(
            "this is an X-ClockEye-Signature value; use verify::clockeye".into(),
        ));
    }
    let signed = signed_parts(webhook_id, webhook_timestamp)?;
    if !signature_matches(&signature, secret, body, Some(signed)) {
        return Err(Invalid::Mismatch);
    }
    check_timestamp(webhook_timestamp, now_s, tolerance)
}

fn signed_parts<'a>(webhook_id: &'a str, timestamp: &'a str) -> Result<Signed<'a>, Invalid> {
    if webhook_id.is_empty() {
        return Err(Invalid::Malformed("webhook-id is missing".into()));
    }
    parse_timestamp(timestamp)?;
    Ok(Signed {
        webhook_id,
        timestamp,
    })
}

fn parse_timestamp(timestamp: &str) -> Result<i64, Invalid> {
    let value = timestamp
        .parse::<i64>()
        .ok()
        .filter(|_| !timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()));
    match value {
        Some(value) => Ok(value),
        None => Err(Invalid::Malformed(format!(
            "webhook-timestamp {timestamp:?} is not unix seconds"
        ))),
    }
}

fn check_timestamp(timestamp: &str, now_s: i64, tolerance: Duration) -> Result<(), Invalid> {
    let timestamp_s = parse_timestamp(timestamp)?;
    if now_s.abs_diff(timestamp_s) > tolerance.as_secs() {
        return Err(Invalid::OutsideTolerance {
            timestamp_s,
            now_s,
            tolerance,
        });
    }
    Ok(())
}

/// A whole request as a receiver got it: `webhook-signature` (with `webhook-id` and
/// `webhook-timestamp`, tolerance `TOLERANCE_DEFAULT`) when present, else `X-ClockEye-Signature`.
/// Header names are matched in any case. During a secret rotation, call it with each secret.
pub fn request(
    secret: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now_s: i64,
) -> Result<Scheme, Invalid> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    };
    if let Some(signature) = header("webhook-signature") {
        let id = header("webhook-id").unwrap_or("");
        let timestamp = header("webhook-timestamp").unwrap_or("");
        standard(
            secret,
            body,
            id,
            timestamp,
            signature,
            now_s,
            TOLERANCE_DEFAULT,
        )?;
        return Ok(Scheme::Standard);
    }
    match header("X-ClockEye-Signature") {
        Some(signature) => clockeye(secret, body, signature).map(|()| Scheme::ClockEye),
        None => Err(Invalid::Missing),
    }
}

#[cfg(test)]
use diagnose::json_forms;
pub use diagnose::{Check, Diagnosis, diagnose};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{clockeye_signature, standard_signature};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{"id":"prj_1","name":"Web"}}"#;

    fn check<'a>(signature: &'a str, body: &'a [u8]) -> Check<'a> {
        Check {
            secret: SECRET,
            previous_secret: None,
            signature,
            webhook_id: None,
            timestamp: None,
            body,
            now_s: 1_700_000_000,
            tolerance: TOLERANCE_DEFAULT,
        }
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("sha256=abc", "3 characters after sha256="),
            (
                &format!("sha256={}", "g".repeat(64)),
                "'g' is not a hex digit",
            ),
            (&"a".repeat(64), "without the \"sha256=\" prefix"),
            ("hello", "expected sha256="),
            ("v1,notbase64!", "not v1, and the base64 of 32 bytes"),
            ("v1a,abc", "no v1 entry (found: v1a)"),
        ];
        for (header, expected) in cases {
            match Signature::parse(header) {
                Err(Invalid::Malformed(what)) => {
                    assert!(what.contains(expected), "{header:?}: {what}")
                }
                other => panic!("{header:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn each_usual_mistake_is_named() {
        let signature = clockeye_signature(SECRET, BODY);
        let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        let spaced = json_forms(&value).pop().unwrap().1;
        assert!(spaced.starts_with(br#"{"id": "evt_1", "type""#));
        let newline = [BODY, b"\n"].concat();
        let crlf_signed = b"line one\nline two";
        let crlf_signature = clockeye_signature(SECRET, crlf_signed);

        assert_eq!(diagnose(&check(&signature, BODY)), Ok(Scheme::ClockEye));
        assert_eq!(
            diagnose(&check(&signature, &newline)),
            Err(Diagnosis::TrailingNewline)
        );
        assert_eq!(
            diagnose(&check(&crlf_signature, b"line one\r\nline two\r\n")),
            Err(Diagnosis::LineEndings)
        );
        assert_eq!(
            diagnose(&check(&signature, &pretty)),
            Err(Diagnosis::Reserialized {
                signed_form: "compact JSON"
            })
        );
        assert_eq!(
            diagnose(&check(&signature, &spaced)),
            Err(Diagnosis::Reserialized {
                signed_form: "compact JSON"
            })
        );
        let wrong = clockeye_signature("whsec_other", BODY);
        assert_eq!(
            diagnose(&check(&wrong, BODY)),
            Err(Diagnosis::WrongSecretOrBody {
                body_untouched: true
            })
        );
        let mut previous = check(&wrong, BODY);
        previous.previous_secret = Some("whsec_other");
        assert_eq!(diagnose(&previous), Err(Diagnosis::PreviousSecret));
        let mut bare = check(&signature, BODY);
        bare.secret = SECRET.strip_prefix("whsec_").unwrap();
        assert!(matches!(diagnose(&bare), Err(Diagnosis::SecretForm(_))));
        let mut padded = check(&signature, BODY);
        let with_newline = format!("{SECRET}\n");
        padded.secret = &with_newline;
        assert!(
            matches!(diagnose(&padded), Err(Diagnosis::SecretForm(how)) if how.contains("whitespace"))
        );
    }

    #[test]
    fn standard_signatures_check_the_timestamp() {
        let signature = format!(
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {}",
            standard_signature(SECRET, "evt_1", 1_700_000_000, BODY)
        );
        let mut standard_check = check(&signature, BODY);
        assert!(matches!(
            diagnose(&standard_check),
            Err(Diagnosis::Malformed(what)) if what.contains("webhook-id")
        ));
        standard_check.webhook_id = Some("evt_1");
        standard_check.timestamp = Some("1700000000");
        assert_eq!(diagnose(&standard_check), Ok(Scheme::Standard));
        standard_check.now_s += 301;
        assert!(matches!(
            diagnose(&standard_check),
            Err(Diagnosis::OutsideTolerance(
                Invalid::OutsideTolerance { .. }
            ))
        ));
        standard_check.timestamp = Some("1700000001");
        standard_check.now_s -= 301;
        assert_eq!(
            diagnose(&standard_check),
            Err(Diagnosis::WrongSecretOrBody {
                body_untouched: true
            })
        );
    }

    #[test]
    fn a_timestamp_in_milliseconds_is_pointed_out() {
        let now_s = 1_700_000_000;
        let invalid = Invalid::OutsideTolerance {
            timestamp_s: now_s * 1000,
            now_s,
            tolerance: TOLERANCE_DEFAULT,
        };
        assert!(invalid.to_string().contains("looks like milliseconds"));
        let stale = Invalid::OutsideTolerance {
            timestamp_s: now_s - 600,
            now_s,
            tolerance: TOLERANCE_DEFAULT,
        };
        assert!(stale.to_string().contains("600s ago"), "{stale}");
        assert!(!stale.to_string().contains("milliseconds"));
    }

    #[test]
    fn request_prefers_webhook_signature_and_reports_missing_headers() {
        let now_s = 1_700_000_000;
        let standard_sig = standard_signature(SECRET, "evt_1", now_s, BODY);
        let clockeye_sig = clockeye_signature(SECRET, BODY);
        let timestamp = now_s.to_string();
        let headers = [
            ("Webhook-Id", "evt_1"),
            ("Webhook-Timestamp", timestamp.as_str()),
            ("Webhook-Signature", standard_sig.as_str()),
            ("x-clockeye-signature", clockeye_sig.as_str()),
        ];
        assert_eq!(request(SECRET, &headers, BODY, now_s), Ok(Scheme::Standard));
        assert_eq!(
            request(SECRET, &headers[3..], BODY, now_s),
            Ok(Scheme::ClockEye)
        );
        assert_eq!(request(SECRET, &[], BODY, now_s), Err(Invalid::Missing));
        assert!(matches!(
            request(SECRET, &headers[1..], BODY, now_s),
            Err(Invalid::Malformed(_))
        ));
        assert_eq!(
            request("whsec_other", &headers, BODY, now_s),
            Err(Invalid::Mismatch)
        );
    }
}
