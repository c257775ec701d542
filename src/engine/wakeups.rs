//! Wake-ups between instances on one Postgres database. What one instance tells the others
//! travels as a notification on the `clockeye` channel: `due|<instance>` (due work is waiting:
//! look now), `endpoint:<seq>|<instance>` (an endpoint changed: jobs claimed with its old
//! settings go back). The `listen` thread (`main`) holds its own connection, hears them and
//! passes them to this instance's scheduler as `Command::Wake` and
//! `Command::EndpointChanged`; an instance ignores its own. A missed notification costs at most
//! the scheduler's 1 s poll. SQLite has one instance and no listen thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::engine::scheduler::Command;
use crate::store::pg::{self, Role};

/// How long one wait for a notification lasts before the thread looks at `stopping` again.
pub(crate) const LISTEN_POLL: Duration = Duration::from_secs(1);
/// The wait before connecting again after a lost connection: doubled per failure, up to the max.
pub(crate) const LISTEN_RECONNECT_MIN: Duration = Duration::from_millis(100);
pub(crate) const LISTEN_RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Longest an `EndpointChanged` waits for room in the scheduler's queue (it is then dropped:
/// the endpoint's queued jobs stay until their next claim reads the new settings).
pub(crate) const COMMAND_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Due work is waiting (sent by a scheduler that left some unclaimed, and by API threads after a
/// retry or recover).
pub(crate) fn due(instance_id: &str) -> String {
    format!("due|{instance_id}")
}

/// An endpoint was changed, rotated, disabled or deleted.
pub(crate) fn endpoint_changed(endpoint_seq: i64, instance_id: &str) -> String {
    format!("endpoint:{endpoint_seq}|{instance_id}")
}

/// What a notification asks of this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    Wake,
    EndpointChanged(i64),
}

/// A payload as this instance takes it: None for its own, and for one it does not know (a
/// newer instance's, say: ignored rather than guessed at).
pub(crate) fn heard(payload: &str, own_id: &str) -> Option<Heard> {
    let (what, sender) = payload.rsplit_once('|')?;
    if sender == own_id {
        return None;
    }
    if what == "due" {
        return Some(Heard::Wake);
    }
    let seq = what.strip_prefix("endpoint:")?.parse().ok()?;
    Some(Heard::EndpointChanged(seq))
}

/// The `listen` thread: until `stopping`, listens on the channel and passes what it hears to
/// the scheduler; a lost connection is made again with a back-off.
pub(crate) fn main(
    url: String,
    instance_id: String,
    commands: Sender<Command>,
    stopping: Arc<AtomicBool>,
) {
    let mut backoff = LISTEN_RECONNECT_MIN;
    while !stopping.load(Ordering::SeqCst) {
        let began = Instant::now();
        let Err(error) = listen(&url, &instance_id, &commands, &stopping) else {
            return;
        };
        // A connection that lasted starts the back-off over.
        if began.elapsed() > LISTEN_RECONNECT_MAX {
            backoff = LISTEN_RECONNECT_MIN;
        }
        log::warn!("listen: no notification connection ({error}); trying again in {backoff:?}");
        pause(backoff, &stopping);
        backoff = (backoff * 2).min(LISTEN_RECONNECT_MAX);
    }
}

/// One connection's life: `LISTEN`, then notifications until `stopping` (Ok) or the connection
/// fails (Err).
fn listen(
    url: &str,
    instance_id: &str,
    commands: &Sender<Command>,
    stopping: &AtomicBool,
) -> crate::error::Result<()> {
    let mut conn = pg::Conn::connect(url, Role::Listen)?;
    let client = conn.client();
    client.batch_execute(&format!("LISTEN {}", pg::instances::CHANNEL))?;
    log::info!("listen: waiting for other instances' wake-ups");
    while !stopping.load(Ordering::SeqCst) {
        let next = {
            use postgres::fallible_iterator::FallibleIterator;
            client.notifications().timeout_iter(LISTEN_POLL).next()?
        };
        let Some(notification) = next else {
            if client.is_closed() {
                return Err(crate::error::Error::Unavailable(
                    "the notification connection closed".into(),
                ));
            }
            continue;
        };
        match heard(notification.payload(), instance_id) {
            Some(Heard::Wake) => {
                let _ = commands.try_send(Command::Wake);
            }
            Some(Heard::EndpointChanged(endpoint_seq)) => {
                let _ = commands.send_timeout(
                    Command::EndpointChanged { endpoint_seq },
                    COMMAND_SEND_TIMEOUT,
                );
            }
            None => {}
        }
    }
    Ok(())
}

/// Waits `pause`, looking at `stopping` every 100 ms.
fn pause(pause: Duration, stopping: &AtomicBool) {
    let until = Instant::now() + pause;
    while !stopping.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_from_others_wake_and_own_ones_are_ignored() {
        let own = "ins_aaaa";
        let table: &[(&str, Option<Heard>)] = &[
            ("due|ins_bbbb", Some(Heard::Wake)),
            ("due|ins_aaaa", None),
            ("endpoint:42|ins_bbbb", Some(Heard::EndpointChanged(42))),
            ("endpoint:42|ins_aaaa", None),
            ("endpoint:x|ins_bbbb", None),
            ("endpoint:|ins_bbbb", None),
            ("purge|ins_bbbb", None),
            ("due", None),
            ("", None),
        ];
        for (payload, expected) in table {
            assert_eq!(heard(payload, own), *expected, "{payload:?}");
        }
        assert_eq!(heard(&due("ins_b"), own), Some(Heard::Wake));
        assert_eq!(
            heard(&endpoint_changed(7, "ins_b"), own),
            Some(Heard::EndpointChanged(7))
        );
        assert_eq!(heard(&endpoint_changed(7, own), own), None);
    }
}
