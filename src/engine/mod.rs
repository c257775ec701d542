//! The delivery engine, in the order a delivery passes through it: `ingest` (request JSON →
//! events), `scheduler` (the one writer: rounds, claims, results), `dispatch` (per-endpoint
//! queues and windows), `worker` (one attempt over `tcp`/`net`), `retry` (the policy: what an
//! outcome means next). `purge` runs between the scheduler's rounds; `wakeups` carries
//! wake-ups between instances on one Postgres database; `faults` is test-only.

pub(crate) mod dispatch;
pub(crate) mod faults;
pub(crate) mod ingest;
pub(crate) mod net;
pub(crate) mod purge;
pub(crate) mod retry;
pub(crate) mod scheduler;
pub(crate) mod tcp;
pub(crate) mod wakeups;
pub(crate) mod window;
pub(crate) mod worker;
