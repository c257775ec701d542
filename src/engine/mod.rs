//! The delivery engine, in the order a delivery passes through it: `ingest` (request JSON →
//! events), `scheduler` (the one writer: rounds, claims, results), `dispatch` (per-endpoint
//! queues and windows), `worker` (one attempt over `tcp`/`net`), `retry` (the policy: what an
//! outcome means next). `purge` runs between the scheduler's rounds; `faults` is test-only.

pub mod dispatch;
pub mod faults;
pub mod ingest;
pub mod net;
pub mod purge;
pub mod retry;
pub mod scheduler;
pub mod tcp;
pub mod window;
pub mod worker;
