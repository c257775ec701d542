//! `verify`: checks a signature against a body file and says why it fails, with
//! `crate::verify::diagnose`. Prints `valid: …` (exit 0) or `invalid: …` (exit 1) on stdout.

use std::io::{IsTerminal, Read};

use super::{Failure, Outcome, Parsed, failed, usage};
use crate::config::EVENT_BYTES_LIMIT_MAX;
use crate::time::{format_duration, now_ms, parse_duration};
use crate::verify::{Check, Diagnosis, Scheme, Signature, TOLERANCE_DEFAULT, diagnose};

/// Largest body read: the largest event the service can be configured to send, and some.
pub(crate) const BODY_BYTES_MAX: usize = EVENT_BYTES_LIMIT_MAX + 64 * 1024;

pub(crate) fn main(parsed: &Parsed) -> Outcome {
    let secret = parsed
        .get_or_env("secret", "CLOCKEYE_SECRET")
        .ok_or_else(|| {
            usage("verify needs --secret (or CLOCKEYE_SECRET): the endpoint's signing secret")
        })?;
    let signature = strip_header_name(parsed.required("signature", "verify")?);
    let tolerance = match parsed.get("tolerance") {
        Some(text) => parse_duration(text).map_err(|e| usage(format!("--tolerance: {e}")))?,
        None => TOLERANCE_DEFAULT,
    };
    let is_standard = matches!(Signature::parse(signature), Ok(Signature::Standard(_)));
    if is_standard && (!parsed.has("timestamp") || !parsed.has("id")) {
        return Err(usage(
            "a webhook-signature needs --timestamp and --id (the webhook-timestamp and webhook-id \
             headers): it signs id.timestamp.body",
        ));
    }
    let body = read_body(&parsed.positionals)?;
    let check = Check {
        secret: &secret,
        previous_secret: parsed.get("previous-secret"),
        signature,
        webhook_id: parsed.get("id"),
        timestamp: parsed.get("timestamp"),
        body: &body,
        now_s: now_ms().div_euclid(1000),
        tolerance,
    };
    match diagnose(&check) {
        Ok(Scheme::ClockEye) => {
            println!("valid: X-ClockEye-Signature matches the body");
            Ok(())
        }
        Ok(Scheme::Standard) => {
            println!(
                "valid: webhook-signature matches the body, and webhook-timestamp is within {} of now",
                format_duration(tolerance)
            );
            Ok(())
        }
        Err(diagnosis) => {
            println!("invalid: {diagnosis}");
            if let Diagnosis::OutsideTolerance(_) = diagnosis {
                println!("(to check an old request's signature anyway, raise --tolerance)");
            }
            Err(failed(""))
        }
    }
}

/// Accepts a whole header line as pasted, `X-ClockEye-Signature: sha256=…`, as well as the value.
fn strip_header_name(signature: &str) -> &str {
    let trimmed = signature.trim();
    for name in ["x-clockeye-signature:", "webhook-signature:"] {
        if trimmed.len() > name.len() && trimmed[..name.len()].eq_ignore_ascii_case(name) {
            return trimmed[name.len()..].trim();
        }
    }
    trimmed
}

/// The body from the one positional argument (a file, or `-` for stdin), or stdin.
fn read_body(positionals: &[String]) -> Result<Vec<u8>, Failure> {
    let source = match positionals {
        [] if std::io::stdin().is_terminal() => {
            return Err(usage(
                "verify needs the body: a file, or - (or a pipe) for stdin",
            ));
        }
        [] => "-",
        [one] => one.as_str(),
        _ => return Err(usage("verify takes one body file (or - for stdin)")),
    };
    let mut body = Vec::new();
    let read = if source == "-" {
        std::io::stdin()
            .lock()
            .take(BODY_BYTES_MAX as u64 + 1)
            .read_to_end(&mut body)
    } else {
        std::fs::File::open(source)
            .and_then(|file| file.take(BODY_BYTES_MAX as u64 + 1).read_to_end(&mut body))
    };
    read.map_err(|e| usage(format!("cannot read the body from {source}: {e}")))?;
    if body.len() > BODY_BYTES_MAX {
        return Err(usage(format!(
            "the body in {source} is larger than {BODY_BYTES_MAX} bytes, more than any event"
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_header_line_is_read_as_its_value() {
        assert_eq!(
            strip_header_name("X-ClockEye-Signature: sha256=ab"),
            "sha256=ab"
        );
        assert_eq!(strip_header_name(" webhook-signature:v1,x "), "v1,x");
        assert_eq!(strip_header_name("sha256=ab"), "sha256=ab");
    }
}
