//! Counters for `GET /metrics` (Prometheus text format 0.0.4): events ingested by type, attempts
//! by outcome, an attempt latency histogram. Lock-free counters bumped by API threads and
//! workers; gauges that live in the database are read when the page is rendered.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::EVENT_TYPES;
use crate::model::{ErrorClass, Outcome};
use crate::store::DatabaseGauges;

/// Upper bounds (ms) of the attempt latency histogram's buckets.
const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// Attempts are counted by outcome: slot 0 is success, slot `1 + class.index()` each error
/// class of `ErrorClass::ALL`.
const OUTCOMES: usize = 1 + ErrorClass::ALL.len();

#[derive(Default)]
pub(crate) struct Metrics {
    events_by_type: [AtomicU64; EVENT_TYPES.len()],
    attempts_by_outcome: [AtomicU64; OUTCOMES],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_sum_ms: AtomicU64,
    latency_count: AtomicU64,
}

impl Metrics {
    pub(crate) fn event_ingested(&self, event_type: &str) {
        if let Some(index) = EVENT_TYPES.iter().position(|t| t.name == event_type) {
            self.events_by_type[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn attempt(&self, outcome: &Outcome) {
        let index = outcome.error_class.map_or(0, |class| 1 + class.index());
        self.attempts_by_outcome[index].fetch_add(1, Ordering::Relaxed);
        let ms = outcome.duration_ms.max(0) as u64;
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_MS) {
            if ms <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole page.
    pub(crate) fn render(&self, gauges: &DatabaseGauges) -> String {
        let mut page = String::new();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
            name.to_string()
        };
        let events = family(
            "clockeye_events_ingested_total",
            "counter",
            "Events accepted, by type.",
        );
        let attempts = family(
            "clockeye_attempts_total",
            "counter",
            "Attempts finished, by outcome (succeeded or the error class).",
        );
        let latency = family(
            "clockeye_attempt_duration_seconds",
            "histogram",
            "Duration of attempts.",
        );
        let pending = family(
            "clockeye_deliveries_pending",
            "gauge",
            "Deliveries waiting for an attempt.",
        );
        let oldest = family(
            "clockeye_oldest_due_delivery_age_seconds",
            "gauge",
            "How long the oldest due pending delivery has waited.",
        );
        let disabled = family(
            "clockeye_endpoints_disabled",
            "gauge",
            "Endpoints that are disabled.",
        );
        // Families above declare; samples follow, each under a declared name.
        let mut samples = String::new();
        for (event_type, count) in EVENT_TYPES.iter().zip(&self.events_by_type) {
            let _ = writeln!(
                samples,
                "{events}{{type=\"{}\"}} {}",
                event_type.name,
                count.load(Ordering::Relaxed)
            );
        }
        let labels = std::iter::once("succeeded").chain(ErrorClass::ALL.map(ErrorClass::as_str));
        for (outcome, count) in labels.zip(&self.attempts_by_outcome) {
            let _ = writeln!(
                samples,
                "{attempts}{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                samples,
                "{latency}_bucket{{le=\"{}\"}} {}",
                *bound as f64 / 1000.0,
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(samples, "{latency}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            samples,
            "{latency}_sum {}",
            self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(samples, "{latency}_count {count}");
        let _ = writeln!(samples, "{pending} {}", gauges.deliveries_pending);
        let _ = writeln!(
            samples,
            "{oldest} {}",
            gauges.oldest_due_age_ms as f64 / 1000.0
        );
        let _ = writeln!(samples, "{disabled} {}", gauges.endpoints_disabled);
        page + &samples
    }
}

/// The flow-control families: each endpoint's window and attempts in flight, as
/// `(endpoint id, window, in flight)`, for endpoints that have sent since the start.
pub(crate) fn render_flows(flows: &[(String, usize, usize)]) -> String {
    let mut page = String::from(
        "# HELP clockeye_endpoint_window Attempts an endpoint's adaptive window lets run at once.\n\
         # TYPE clockeye_endpoint_window gauge\n",
    );
    for (id, window, _) in flows {
        let _ = writeln!(
            page,
            "clockeye_endpoint_window{{endpoint=\"{id}\"}} {window}"
        );
    }
    page.push_str(
        "# HELP clockeye_endpoint_in_flight Attempts running against an endpoint now.\n\
         # TYPE clockeye_endpoint_in_flight gauge\n",
    );
    for (id, _, running) in flows {
        let _ = writeln!(
            page,
            "clockeye_endpoint_in_flight{{endpoint=\"{id}\"}} {running}"
        );
    }
    page
}

/// The instances sharing the database (heartbeat within 5 s); 1 on SQLite.
pub(crate) fn render_instances(live: usize) -> String {
    format!(
        "# HELP clockeye_instances Instances of the service live on this database.\n\
         # TYPE clockeye_instances gauge\nclockeye_instances {live}\n"
    )
}
