//! This instance among the others on one Postgres database, as the scheduler's loop sees it:
//! a heartbeat once a second (which also reads who is live, for the rate limit split the
//! dispatcher applies), a `due` wake-up for the others when a round leaves due work unclaimed,
//! and its row removed at a clean stop. On SQLite the instance is alone: nothing is written
//! and the dispatcher keeps whole rate limits.

use std::time::{Duration, Instant};

use super::decide::{self, Split, View};
use crate::engine::dispatch::Dispatcher;
use crate::model::Job;
use crate::store::{self, Db, INSTANCE_LIVE_MS, INSTANCE_STALE_MS};

/// How often an instance heartbeats and reads the membership.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a membership view keeps counting for the rate limit split, and how long a new
/// instance takes no share (views differ by at most a heartbeat).
pub(crate) const SPLIT_HOLD: Duration = Duration::from_secs(3);
/// How long the latest view counts while heartbeats fail: less than the others take to stop
/// counting this instance (`INSTANCE_LIVE_MS`) and then to hold their own views (`SPLIT_HOLD`).
pub(crate) const SPLIT_LATEST_MAX: Duration = Duration::from_millis(INSTANCE_LIVE_MS as u64);
/// Fewest time between two `due` wake-ups of the others (a notifying commit takes a lock
/// that every notifying transaction on the database shares).
pub(crate) const NOTIFY_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// How often rows of instances silent for an hour are deleted.
pub(crate) const INSTANCE_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

const _: () = assert!(HEARTBEAT_INTERVAL.as_millis() * 3 <= SPLIT_HOLD.as_millis());
const _: () = assert!(SPLIT_HOLD.as_millis() < INSTANCE_LIVE_MS as u128);

pub(crate) struct Membership {
    id: String,
    host: String,
    pid: u32,
    started_at_ms: i64,
    started: Instant,
    views: Vec<(Instant, View)>,
    next_beat: Instant,
    next_prune: Instant,
    last_notified: Option<Instant>,
    /// The last heartbeat failed (logged once per failure run).
    failing: bool,
}

impl Membership {
    pub(crate) fn new(id: String, started_at_ms: i64, now: Instant) -> Membership {
        Membership {
            id,
            host: host_name(),
            pid: std::process::id(),
            started_at_ms,
            started: now,
            views: Vec::new(),
            next_beat: now,
            next_prune: now,
            last_notified: None,
            failing: false,
        }
    }

    /// Once a second on Postgres: heartbeat, read who is live, and hand the dispatcher the
    /// split. Answers the queued jobs the dispatcher gave back (their endpoint's share here
    /// became 0), to be released.
    pub(crate) fn beat(&mut self, conn: &Db, dispatcher: &Dispatcher, now: Instant) -> Vec<Job> {
        if !store::shared(conn) || now < self.next_beat {
            return Vec::new();
        }
        self.next_beat = now + HEARTBEAT_INTERVAL;
        let live = store::heartbeat(conn, &self.id, &self.host, self.pid, self.started_at_ms)
            .and_then(|()| store::live_instances(conn, &self.id, INSTANCE_LIVE_MS));
        match live {
            Ok(live) => {
                if self.failing {
                    log::info!("instances: heartbeat written again; live={}", live.len());
                    self.failing = false;
                }
                self.views.push((now, decide::view(&live, &self.id)));
            }
            Err(error) => {
                if !self.failing {
                    log::warn!("instances: heartbeat failed: {error}");
                    self.failing = true;
                }
            }
        }
        decide::recent_views(&mut self.views, now, SPLIT_HOLD, SPLIT_LATEST_MAX);
        if now >= self.next_prune {
            self.next_prune = now + INSTANCE_PRUNE_INTERVAL;
            match store::prune_instances(conn, INSTANCE_STALE_MS) {
                Ok(0) => {}
                Ok(pruned) => log::info!("instances: forgot {pruned} silent for an hour"),
                Err(error) => log::warn!("instances: pruning stale rows failed: {error}"),
            }
        }
        dispatcher.set_split(Split {
            views: self.views.iter().map(|(_, view)| *view).collect(),
            joining: now.saturating_duration_since(self.started) < SPLIT_HOLD,
        })
    }

    /// After a committed round: wakes the other instances, if there are any, when it left due
    /// work unclaimed.
    pub(crate) fn after_round(&mut self, conn: &Db, left_due: bool, now: Instant) {
        let others = self.views.last().is_some_and(|(_, view)| view.live > 1);
        if !store::shared(conn)
            || !others
            || !decide::notify_others(left_due, self.last_notified, now, NOTIFY_INTERVAL_MIN)
        {
            return;
        }
        self.last_notified = Some(now);
        if let Err(error) = store::notify(conn, &crate::engine::wakeups::due(&self.id)) {
            log::warn!("instances: waking the others failed: {error}");
        }
    }

    /// Clean stop: the others stop counting this instance at once.
    pub(crate) fn leave(&self, conn: &Db) {
        if store::shared(conn)
            && let Err(error) = store::remove_instance(conn, &self.id)
        {
            log::warn!("instances: removing this instance's row failed: {error}");
        }
    }
}

/// The machine's name, for people reading `instances` (empty if the OS does not say).
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}
