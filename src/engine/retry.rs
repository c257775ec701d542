//! The retry policy, pure: it reads no clock and no RNG, so the schedule is testable to the
//! millisecond. Time comes in as `finished_at_ms`.

use std::time::Duration;

use crate::ids::sha256_hex;
use crate::model::{Decision, Outcome, Secrets, SignWith};

/// What follows attempt `attempt_number` (1-based) that ended at `finished_at_ms`.
///
/// The delay after failed attempt n is `schedule[n-1]`, counted from the end of that attempt;
/// after the last step the delivery fails. A `Retry-After` on a 429/503 is honoured within
/// [delay, 2 × delay]. `410 Gone` fails the delivery at once. (A 401/403 during a rotation
/// overlap is tried again at once with the other secret: see `rejects_signature`.)
pub(crate) fn next(
    schedule: &[Duration],
    schedule_step: u32,
    outcome: &Outcome,
    finished_at_ms: i64,
) -> Decision {
    if outcome.succeeded() {
        return Decision::Succeeded;
    }
    if outcome.status_code == Some(410) {
        return Decision::Failed;
    }
    let Some(delay) = schedule.get(schedule_step.saturating_sub(1) as usize) else {
        return Decision::Failed;
    };
    // Saturating throughout: `clamp` panics when its bounds cross, which a wrapped
    // `2 × delay` would make them do.
    let delay_ms = crate::time::duration_ms(*delay);
    let wait_ms = match outcome.retry_after_ms {
        Some(asked_ms) if matches!(outcome.status_code, Some(429 | 503)) => {
            asked_ms.clamp(delay_ms, delay_ms.saturating_mul(2))
        }
        _ => delay_ms,
    };
    Decision::RetryAt(finished_at_ms.saturating_add(wait_ms))
}

/// The receiver refused the signature (401 or 403): during a rotation overlap the next
/// attempt goes at once with the other secret (SPEC "Rotation").
pub(crate) fn rejects_signature(outcome: &Outcome) -> bool {
    matches!(outcome.status_code, Some(401 | 403))
}

/// After a refused signature (401/403 whose secret's hash is `rejected_sha256`): if a rotation
/// overlap is live (it may have begun while the attempt was in flight), the next attempt goes
/// at once (`SwitchSecret`, a free attempt) with the secret not refused, which becomes the
/// endpoint's choice for X-ClockEye-Signature. A refused secret that is no longer live, from
/// before another rotation, switches nothing. With no live previous secret the decision stands.
pub(crate) fn after_refused_signature(
    decision: Decision,
    rejected_sha256: &str,
    secrets: &Secrets,
    finished_at_ms: i64,
) -> (Decision, Option<SignWith>) {
    let Some((previous, _)) = &secrets.previous else {
        return (decision, None);
    };
    let sign_with = if sha256_hex(&secrets.current) == rejected_sha256 {
        Some(SignWith::Previous)
    } else if sha256_hex(previous) == rejected_sha256 {
        Some(SignWith::Current)
    } else {
        None
    };
    (Decision::SwitchSecret(finished_at_ms), sign_with)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorClass;

    fn failure(status_code: Option<u16>, retry_after_ms: Option<i64>) -> Outcome {
        Outcome {
            started_at_ms: 0,
            duration_ms: 5,
            status_code,
            error_class: Some(if status_code.is_some() {
                ErrorClass::HttpStatus
            } else {
                ErrorClass::Connect
            }),
            error_message: Some("failed".into()),
            response_excerpt: None,
            retry_after_ms,
        }
    }

    #[test]
    fn follows_the_default_schedule_then_gives_up() {
        let schedule: Vec<Duration> = [60, 300, 1800, 7200].map(Duration::from_secs).to_vec();
        let cases = [
            (1, Decision::RetryAt(1_000 + 60_000)),
            (2, Decision::RetryAt(1_000 + 300_000)),
            (3, Decision::RetryAt(1_000 + 1_800_000)),
            (4, Decision::RetryAt(1_000 + 7_200_000)),
            (5, Decision::Failed),
            (9, Decision::Failed),
        ];
        for (attempt_number, expected) in cases {
            assert_eq!(
                next(&schedule, attempt_number, &failure(Some(500), None), 1_000),
                expected,
                "attempt {attempt_number}"
            );
        }
    }

    #[test]
    fn success_ends_the_delivery() {
        let mut outcome = failure(Some(200), None);
        outcome.error_class = None;
        assert_eq!(
            next(&[Duration::from_secs(1)], 1, &outcome, 0),
            Decision::Succeeded
        );
    }

    #[test]
    fn gone_fails_at_once() {
        assert_eq!(
            next(&[Duration::from_secs(1)], 1, &failure(Some(410), None), 0),
            Decision::Failed
        );
    }

    #[test]
    fn retry_after_is_honoured_within_one_to_two_delays() {
        let schedule = [Duration::from_secs(10)];
        let cases = [
            (Some(429), Some(1_000), 10_000),
            (Some(503), Some(15_000), 15_000),
            (Some(429), Some(60_000), 20_000),
            (Some(500), Some(15_000), 10_000),
            (None, None, 10_000),
        ];
        for (status_code, asked_ms, wait_ms) in cases {
            assert_eq!(
                next(&schedule, 1, &failure(status_code, asked_ms), 0),
                Decision::RetryAt(wait_ms),
                "{status_code:?} {asked_ms:?}"
            );
        }
    }

    #[test]
    fn an_empty_schedule_means_one_attempt() {
        assert_eq!(next(&[], 1, &failure(None, None), 0), Decision::Failed);
    }

    #[test]
    fn only_401_and_403_refuse_the_signature() {
        assert!(rejects_signature(&failure(Some(401), None)));
        assert!(rejects_signature(&failure(Some(403), None)));
        assert!(!rejects_signature(&failure(Some(500), None)));
        assert!(!rejects_signature(&failure(None, None)));
    }

    #[test]
    fn a_refused_signature_switches_to_the_secret_not_refused_while_the_overlap_lasts() {
        let retry = Decision::RetryAt(9_000);
        let sha = sha256_hex;
        let alone = Secrets {
            current: "whsec_new".into(),
            previous: None,
        };
        let overlap = Secrets {
            current: "whsec_new".into(),
            previous: Some(("whsec_old".into(), 50_000)),
        };
        // No live previous secret: the decision stands.
        assert_eq!(
            after_refused_signature(retry, &sha("whsec_new"), &alone, 1_000),
            (retry, None)
        );
        // The current one refused: sign with the previous.
        assert_eq!(
            after_refused_signature(retry, &sha("whsec_new"), &overlap, 1_000),
            (Decision::SwitchSecret(1_000), Some(SignWith::Previous))
        );
        // The previous one refused: sign with the current.
        assert_eq!(
            after_refused_signature(retry, &sha("whsec_old"), &overlap, 1_000),
            (Decision::SwitchSecret(1_000), Some(SignWith::Current))
        );
        // A secret from before another rotation: at once again, the choice unchanged.
        assert_eq!(
            after_refused_signature(retry, &sha("whsec_older"), &overlap, 1_000),
            (Decision::SwitchSecret(1_000), None)
        );
    }
}
