//! When a signature does not verify: which usual mistake it is (`diagnose`), by trying the
//! mistakes one by one (a re-serialized body, a trailing newline, CRLF, the secret's form,
//! the previous secret).

use std::fmt;

use super::*;

/// Everything `diagnose` looks at.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub secret: &'a str,
    /// The endpoint's previous secret, during or after a rotation.
    pub previous_secret: Option<&'a str>,
    /// Either header's value.
    pub signature: &'a str,
    /// `webhook-id` and `webhook-timestamp`, needed for a `webhook-signature`.
    pub webhook_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub body: &'a [u8],
    pub now_s: i64,
    pub tolerance: Duration,
}

/// Why a signature does not verify, found by trying what commonly goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// Not a signature of either form, or `webhook-id`/`webhook-timestamp` unusable.
    Malformed(String),
    /// Valid, but `webhook-timestamp` is outside the tolerance.
    OutsideTolerance(Invalid),
    /// The body ends with a newline that was not signed; without it, it verifies.
    TrailingNewline,
    /// The body's line endings were changed (LF → CRLF); with LF, it verifies.
    LineEndings,
    /// The body was parsed and written again: the signature matches this other form of the
    /// same JSON (e.g. "compact JSON").
    Reserialized { signed_form: &'static str },
    /// Signed with the previous secret (`Check::previous_secret`).
    PreviousSecret,
    /// The secret was given in another form than the one signed with; the text says how.
    SecretForm(&'static str),
    /// Nothing tried matches. `body_untouched`: the body is compact JSON with no trailing
    /// newline, as the service sends it, so the secret is the likely cause.
    WrongSecretOrBody { body_untouched: bool },
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnosis::Malformed(what) => write!(f, "header malformed: {what}"),
            Diagnosis::OutsideTolerance(invalid) => write!(f, "{invalid}"),
            Diagnosis::TrailingNewline => write!(
                f,
                "body bytes differ: the body ends with a newline that was not signed (an editor, \
                 echo or a here-document adds one); without it the signature matches. Verify the \
                 raw bytes as received"
            ),
            Diagnosis::LineEndings => write!(
                f,
                "body bytes differ: its line endings were changed to CRLF; with the LF endings \
                 that were signed the signature matches. Verify the raw bytes as received"
            ),
            Diagnosis::Reserialized { signed_form } => write!(
                f,
                "body bytes differ: the body was re-serialized. The signature matches the same \
                 JSON written as {signed_form}, so the bytes were parsed and written again (e.g. \
                 JSON.stringify(req.body), json.dumps) after they arrived. Verify the raw body \
                 bytes, before any JSON parsing"
            ),
            Diagnosis::PreviousSecret => write!(
                f,
                "wrong secret: this was signed with the previous secret. During a rotation's \
                 overlap X-ClockEye-Signature uses the secret the endpoint last accepted; accept \
                 both secrets until the overlap ends"
            ),
            Diagnosis::SecretForm(how) => write!(f, "wrong secret: {how}"),
            Diagnosis::WrongSecretOrBody {
                body_untouched: true,
            } => write!(
                f,
                "wrong secret: the signature does not match, and the body looks as sent (compact \
                 JSON, no trailing newline), so the secret is the likely cause. Use this \
                 endpoint's current secret (whsec_…, shown when it was created or rotated)"
            ),
            Diagnosis::WrongSecretOrBody {
                body_untouched: false,
            } => write!(
                f,
                "wrong secret or body bytes differ: the signature matches neither this body nor \
                 its usual re-serializations; check the secret, and that you verify the raw bytes \
                 as received"
            ),
        }
    }
}

/// Checks `check.signature` against the body, and when it fails, tries the usual mistakes
/// (newline added, body re-serialized, previous secret, secret in another form) to say why.
/// `Ok` names the scheme that verified.
///
/// ```
/// use clockeye_webhooks::{signing, verify};
///
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let sent = br#"{"id":"evt_1","type":"project.created","created_at":"2024-01-15T10:30:00Z","data":{}}"#;
/// let signature = signing::clockeye_signature(secret, sent);
/// let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(sent).unwrap()).unwrap();
/// let check = verify::Check {
///     secret, previous_secret: None, signature: &signature, webhook_id: None, timestamp: None,
///     body: &pretty, now_s: 0, tolerance: verify::TOLERANCE_DEFAULT,
/// };
/// assert_eq!(verify::diagnose(&check), Err(verify::Diagnosis::Reserialized { signed_form: "compact JSON" }));
/// ```
pub fn diagnose(check: &Check<'_>) -> Result<Scheme, Diagnosis> {
    let signature = Signature::parse(check.signature).map_err(|invalid| match invalid {
        Invalid::Malformed(what) => Diagnosis::Malformed(what),
        other => Diagnosis::Malformed(other.to_string()),
    })?;
    let signed = match signature.scheme() {
        Scheme::ClockEye => None,
        Scheme::Standard => {
            let (Some(id), Some(timestamp)) = (check.webhook_id, check.timestamp) else {
                return Err(Diagnosis::Malformed(
                    "a webhook-signature needs webhook-id and webhook-timestamp (it signs \
                     id.timestamp.body)"
                        .into(),
                ));
            };
            Some(
                signed_parts(id, timestamp).map_err(|invalid| match invalid {
                    Invalid::Malformed(what) => Diagnosis::Malformed(what),
                    other => Diagnosis::Malformed(other.to_string()),
                })?,
            )
        }
    };
    let matches = |secret: &str, body: &[u8]| signature_matches(&signature, secret, body, signed);

    if matches(check.secret, check.body) {
        if let Some(signed) = signed {
            check_timestamp(signed.timestamp, check.now_s, check.tolerance)
                .map_err(Diagnosis::OutsideTolerance)?;
        }
        return Ok(signature.scheme());
    }
    if check
        .previous_secret
        .is_some_and(|previous| matches(previous, check.body))
    {
        return Err(Diagnosis::PreviousSecret);
    }
    for (secret, how) in secret_variants(check.secret) {
        if matches(&secret, check.body) {
            return Err(Diagnosis::SecretForm(how));
        }
    }
    let trimmed = trim_trailing_newlines(check.body);
    if trimmed.len() != check.body.len() && matches(check.secret, trimmed) {
        return Err(Diagnosis::TrailingNewline);
    }
    if trimmed.windows(2).any(|pair| pair == b"\r\n") {
        let lf = replace_crlf(trimmed);
        if matches(check.secret, &lf) || matches(check.secret, &[&lf[..], b"\n"].concat()) {
            return Err(Diagnosis::LineEndings);
        }
    }
    let parsed = serde_json::from_slice::<serde_json::Value>(check.body).ok();
    let mut body_untouched = false;
    if let Some(value) = parsed {
        for (form, bytes) in json_forms(&value) {
            if form == "compact JSON" && bytes == check.body {
                body_untouched = true;
                continue;
            }
            if matches(check.secret, &bytes) {
                return Err(Diagnosis::Reserialized { signed_form: form });
            }
        }
    }
    Err(Diagnosis::WrongSecretOrBody { body_untouched })
}

/// Other forms of a secret people pass by mistake, and what the mistake is.
fn secret_variants(secret: &str) -> Vec<(String, &'static str)> {
    let mut variants = Vec::new();
    if secret.trim() != secret {
        variants.push((
            secret.trim().to_string(),
            "the secret has surrounding whitespace (a newline from a file?); it was signed without",
        ));
    }
    match secret.trim().strip_prefix("whsec_") {
        Some(bare) => variants.push((
            bare.to_string(),
            "it was signed with the secret without its \"whsec_\" prefix",
        )),
        None => variants.push((
            format!("whsec_{}", secret.trim()),
            "the signature was made with the whole secret, \"whsec_\" prefix included; you gave it without",
        )),
    }
    variants
}

fn trim_trailing_newlines(body: &[u8]) -> &[u8] {
    let end = body
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |index| index + 1);
    &body[..end]
}

fn replace_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for (index, byte) in body.iter().enumerate() {
        if *byte == b'\r' && body.get(index + 1) == Some(&b'\n') {
            continue;
        }
        out.push(*byte);
    }
    out
}

/// The usual ways a JSON value gets written again: compact (the service's, and
/// `JSON.stringify(v)`), indented by 2 (`JSON.stringify(v, null, 2)`), Python's `json.dumps`.
pub(super) fn json_forms(value: &serde_json::Value) -> Vec<(&'static str, Vec<u8>)> {
    let compact = serde_json::to_vec(value).expect("a Value serializes");
    let pretty = serde_json::to_vec_pretty(value).expect("a Value serializes");
    let mut spaced = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut spaced, SpacedFormatter);
    serde::Serialize::serialize(value, &mut serializer).expect("a Value serializes");
    vec![
        ("compact JSON", compact),
        ("JSON indented by 2 spaces", pretty),
        (
            "JSON with a space after each , and : (Python's json.dumps)",
            spaced,
        ),
    ]
}

/// Python's default `json.dumps` separators: `", "` and `": "`.
struct SpacedFormatter;

impl serde_json::ser::Formatter for SpacedFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}
