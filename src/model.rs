//! The values that travel between threads: an event to store, a job for a worker, the outcome of
//! an attempt. Plain data; no I/O.

use std::sync::Arc;

/// Why an attempt failed, as recorded and shown in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    Timeout,
    Connect,
    Dns,
    Tls,
    Redirect,
    HttpStatus,
    BlockedAddress,
}

impl ErrorClass {
    /// Every class, in the order of `as_str`'s table: metrics' labels and the OpenAPI enum are
    /// made from this list, and a test holds schema.sql's CHECK to it.
    pub(crate) const ALL: [ErrorClass; 7] = [
        ErrorClass::Timeout,
        ErrorClass::Connect,
        ErrorClass::Dns,
        ErrorClass::Tls,
        ErrorClass::Redirect,
        ErrorClass::HttpStatus,
        ErrorClass::BlockedAddress,
    ];

    /// This class's place in `ALL`.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connect => "connect",
            ErrorClass::Dns => "dns",
            ErrorClass::Tls => "tls",
            ErrorClass::Redirect => "redirect",
            ErrorClass::HttpStatus => "http_status",
            ErrorClass::BlockedAddress => "blocked_address",
        }
    }
}

/// Every state a delivery can be in (the `status` of `deliveries`): the API's filter, the
/// OpenAPI enums and the CLI's choices are made from this list, and a test holds schema.sql's
/// CHECK to it.
pub(crate) const DELIVERY_STATUSES: [&str; 4] = ["pending", "delivering", "succeeded", "failed"];

/// What one attempt came to. A receiver's 500 or a refused connection is an `Outcome`, not an `Err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) started_at_ms: i64,
    pub(crate) duration_ms: i64,
    /// The HTTP status, when a response came back.
    pub(crate) status_code: Option<u16>,
    /// None exactly when the attempt succeeded (a 2xx within the timeout).
    pub(crate) error_class: Option<ErrorClass>,
    /// One line for people; None on success.
    pub(crate) error_message: Option<String>,
    /// The start of the response body, at most `worker::RESPONSE_EXCERPT_BYTES`.
    pub(crate) response_excerpt: Option<String>,
    /// `Retry-After` of a 429 or 503, as milliseconds to wait from the end of the attempt.
    pub(crate) retry_after_ms: Option<i64>,
}

impl Outcome {
    pub(crate) fn succeeded(&self) -> bool {
        self.error_class.is_none()
    }
}

/// What follows an attempt, decided by `retry::next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Succeeded,
    /// Back to `pending`, due at this unix ms.
    RetryAt(i64),
    /// Answered 401/403 during a rotation overlap: again at this unix ms (at once) with the
    /// other secret in `X-ClockEye-Signature`, which becomes the endpoint's choice. The next
    /// attempt uses no scheduled retry.
    SwitchSecret(i64),
    /// Attempts exhausted, or the receiver said 410 Gone.
    Failed,
}

/// An event ready to be stored: validated, its body bytes final.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) id: String,
    pub(crate) workspace_id: String,
    pub(crate) event_type: String,
    pub(crate) created_at_ms: i64,
    pub(crate) body: Vec<u8>,
    /// `Some(endpoint seq)` for a test event: delivered to that endpoint only, whatever it
    /// subscribes to, and marked `test` in the API.
    pub(crate) test_endpoint_seq: Option<i64>,
    /// What the event is about: the `subject` given at ingest, else
    /// `<type before the dot>:<data.id>`; None when neither is there. Endpoints with
    /// `ordering: "subject"` get one subject's events in order.
    pub(crate) subject: Option<String>,
}

/// An event as stored, with its deliveries, as the ingest routes answer it.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub(crate) id: String,
    pub(crate) workspace_id: String,
    pub(crate) event_type: String,
    pub(crate) created_at_ms: i64,
    /// `(delivery id, endpoint id)` per subscribed endpoint.
    pub(crate) deliveries: Vec<(String, String)>,
    /// False when the id was known already and nothing new was queued.
    pub(crate) created: bool,
}

/// One attempt to make, handed from the scheduler to a worker.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) delivery_seq: i64,
    pub(crate) delivery_id: String,
    pub(crate) endpoint_seq: i64,
    pub(crate) url: String,
    pub(crate) secret: String,
    /// The secret before the last rotation, while its overlap lasts (until
    /// `previous_secret_until_ms`, checked again when the attempt starts): both sign
    /// `webhook-signature`.
    pub(crate) previous_secret: Option<String>,
    pub(crate) previous_secret_until_ms: i64,
    /// `X-ClockEye-Signature` is made with `previous_secret` (the one last accepted).
    pub(crate) sign_with_previous: bool,
    /// The endpoint's extra headers.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    /// The exact bytes of every attempt of this event.
    pub(crate) body: Arc<[u8]>,
    /// 1-based, as sent in `X-ClockEye-Attempt`.
    pub(crate) attempt_number: u32,
    /// The endpoint's workspace: name lookups count against its share (net.rs).
    pub(crate) workspace_id: String,
    /// Which step of the retry schedule this attempt is: `attempt_number` less the attempts
    /// that used no scheduled retry.
    pub(crate) schedule_step: u32,
    /// A 401/403 may switch the secret: the previous attempt was not itself such a switch.
    pub(crate) may_switch_secret: bool,
    /// Which claim of the delivery this is (`deliveries.claims`): its result is written only
    /// while no later claim holds the delivery.
    pub(crate) claim: i64,
    /// The endpoint's `rate_limit`: most attempt starts in any second, None for no limit.
    pub(crate) rate_limit: Option<u32>,
}

impl Job {
    /// The previous secret if its overlap still lasts at `now_ms`.
    pub(crate) fn live_previous_secret(&self, now_ms: i64) -> Option<&str> {
        self.previous_secret
            .as_deref()
            .filter(|_| now_ms < self.previous_secret_until_ms)
    }
}

/// A finished attempt, handed from a worker back to the scheduler to record.
#[derive(Debug, Clone)]
pub(crate) struct AttemptResult {
    pub(crate) delivery_seq: i64,
    pub(crate) delivery_id: String,
    pub(crate) endpoint_seq: i64,
    pub(crate) attempt_number: u32,
    /// The job's `claim`.
    pub(crate) claim: i64,
    pub(crate) outcome: Outcome,
    /// The decision of the retry schedule; the scheduler writes it as `SwitchSecret` when
    /// `rejected_secret_sha256` is set and a rotation overlap is live then
    /// (`retry::after_refused_signature`).
    pub(crate) decision: Decision,
    /// When the receiver answered 401/403 and the delivery may switch secret: the SHA-256 of
    /// the secret that made `X-ClockEye-Signature` (so the other one can be chosen by value).
    pub(crate) rejected_secret_sha256: Option<String>,
}

/// An endpoint's live secrets.
#[derive(Debug, Clone)]
pub(crate) struct Secrets {
    pub(crate) current: String,
    /// The previous secret while its rotation overlap lasts, with the overlap's end.
    pub(crate) previous: Option<(String, i64)>,
}

/// Which of an endpoint's secrets signs `X-ClockEye-Signature` during a rotation overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignWith {
    Current,
    Previous,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_class_sits_at_its_index() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::ALL[class.index()], class);
        }
    }
}
