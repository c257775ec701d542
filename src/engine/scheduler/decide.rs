//! The scheduler's decisions as pure functions: what to wait for, when to stop, whether a round
//! is needed, how much to claim and from whom, when to prune, whether a health row needs
//! writing. No clock, channel, database or dispatcher here: time comes in as `Now`, which only
//! `Now::read` (in `mod.rs`) makes from the clocks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{
    CLAIM_BATCH_MAX, FAILED_COMMIT_BACKOFF, POLL_INTERVAL_MAX, PRUNE_BATCH_MAX, PRUNE_INTERVAL_MAX,
    RESULTS_LINGER_COUNT,
};

/// One reading of both clocks: unix ms (stored times) and the monotonic clock (waits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) ms: i64,
    pub(crate) at: Instant,
}

/// What the scheduler's loop keeps between rounds, as far as its decisions need it.
#[derive(Debug, Clone)]
pub(crate) struct State {
    /// Jobs claimed and not yet answered (result or release).
    pub(crate) jobs_in_flight: usize,
    pub(crate) jobs_in_flight_max: usize,
    /// Jobs taken back and not yet written back to `pending`.
    pub(crate) released: usize,
    /// Commits failed in a row.
    pub(crate) failed_commits: u32,
    /// When the next claimable delivery is due (None: nothing pending that may be claimed).
    pub(crate) next_due_ms: Option<i64>,
    /// Set once shutdown began: attempts in flight get until then.
    pub(crate) drain_deadline: Option<Instant>,
    pub(crate) next_prune: Instant,
    pub(crate) next_purge: Instant,
}

/// What one round took from the channels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Work {
    pub(crate) ingests: usize,
    pub(crate) results: usize,
    pub(crate) woken: bool,
}

/// Claims are allowed: not shutting down, and below the in-flight bound.
pub(crate) fn may_claim(s: &State) -> bool {
    s.drain_deadline.is_none() && s.jobs_in_flight < s.jobs_in_flight_max
}

/// Most jobs this round may claim.
pub(crate) fn claim_limit(s: &State) -> usize {
    if may_claim(s) {
        (s.jobs_in_flight_max - s.jobs_in_flight).min(CLAIM_BATCH_MAX)
    } else {
        0
    }
}

/// How long to wait for work before looking at the database anyway: a back-off after a failed
/// commit, none while released jobs wait to be written, until the next due delivery (at most
/// `POLL_INTERVAL_MAX`), and never past a purge that has history left.
pub(crate) fn wait(s: &State, now: Now) -> Duration {
    let wait = if s.failed_commits > 0 {
        FAILED_COMMIT_BACKOFF
    } else if s.released > 0 {
        Duration::ZERO
    } else if !may_claim(s) {
        POLL_INTERVAL_MAX
    } else {
        match s.next_due_ms {
            Some(due_ms) => Duration::from_millis(
                (due_ms - now.ms).clamp(0, POLL_INTERVAL_MAX.as_millis() as i64) as u64,
            ),
            None => POLL_INTERVAL_MAX,
        }
    };
    wait.min(s.next_purge.saturating_duration_since(now.at))
}

/// Shutdown is done: nothing released is left to write, and no attempt is in flight or the
/// drain deadline passed.
pub(crate) fn stopped(s: &State, now: Now) -> bool {
    s.drain_deadline
        .is_some_and(|deadline| s.released == 0 && (s.jobs_in_flight == 0 || now.at >= deadline))
}

/// A retention prune is due (never while shutting down).
pub(crate) fn prune_due(s: &State, now: Now) -> bool {
    s.drain_deadline.is_none() && now.at >= s.next_prune
}

/// A purge pass of a deleted endpoint's history is due (never while shutting down).
pub(crate) fn purge_due(s: &State, now: Now) -> bool {
    s.drain_deadline.is_none() && now.at >= s.next_purge
}

/// The pause between retention prunes: a quarter of the retention, at most `PRUNE_INTERVAL_MAX`.
pub(crate) fn prune_interval(retention: Duration) -> Duration {
    (retention / 4).min(PRUNE_INTERVAL_MAX)
}

/// When to prune next, after a prune of `pruned` events: a full batch goes on at once.
pub(crate) fn next_prune(pruned: usize, interval: Duration, now: Now) -> Instant {
    now.at
        + if pruned == PRUNE_BATCH_MAX {
            Duration::ZERO
        } else {
            interval
        }
}

/// Events created before this are pruned.
pub(crate) fn prune_cutoff_ms(retention: Duration, now_ms: i64) -> i64 {
    crate::time::before_ms(now_ms, retention)
}

/// A round holding only attempt results waits briefly for more, while workers have queued
/// jobs to run (idle workers must not wait for it). Events never wait.
pub(crate) fn linger(w: &Work, queued_jobs: usize) -> bool {
    w.ingests == 0 && w.results > 0 && w.results < RESULTS_LINGER_COUNT && queued_jobs > 0
}

/// The round has something to write, was woken, or a due delivery may be claimed.
pub(crate) fn round_needed(w: &Work, s: &State, now: Now) -> bool {
    let due_now = s.next_due_ms.is_some_and(|due_ms| due_ms <= now.ms);
    w.ingests > 0 || w.results > 0 || s.released > 0 || w.woken || (due_now && may_claim(s))
}

/// A claim's lease: the attempt timeout plus `margin`, in ms.
pub(crate) fn lease_ms(attempt_timeout: Duration, margin: Duration) -> i64 {
    i64::try_from((attempt_timeout + margin).as_millis()).unwrap_or(i64::MAX / 4)
}

/// Held claims (delivery seq → (claim, lease end)) whose lease is past half: (seq, claim).
pub(crate) fn renewals<'a>(
    held: impl IntoIterator<Item = (&'a i64, &'a (i64, i64))>,
    now_ms: i64,
    lease_ms: i64,
) -> Vec<(i64, i64)> {
    held.into_iter()
        .filter(|(_, (_, until))| until - now_ms < lease_ms / 2)
        .map(|(seq, (claim, _))| (*seq, *claim))
        .collect()
}

/// What to claim from one endpoint with deliveries due at `due_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Not due yet: due then.
    NotDue(i64),
    /// Its share of claims is held already.
    Full,
    /// The round's claims are spent (more is due now).
    BudgetSpent,
    /// Claim this many.
    Take(usize),
}

/// How much to claim from one endpoint: `room` (asked only when it is due) is what its share
/// leaves, `budget` what the round has left.
pub(crate) fn ask(due_ms: i64, now_ms: i64, room: impl FnOnce() -> usize, budget: usize) -> Ask {
    if due_ms > now_ms {
        return Ask::NotDue(due_ms);
    }
    let room = room();
    if room == 0 {
        return Ask::Full;
    }
    if budget == 0 {
        return Ask::BudgetSpent;
    }
    Ask::Take(room.min(budget))
}

/// The earlier of a known next due time and `due_ms`.
pub(crate) fn earliest(next_due_ms: Option<i64>, due_ms: i64) -> Option<i64> {
    Some(next_due_ms.map_or(due_ms, |next| next.min(due_ms)))
}

/// Endpoints (seq, due) with the least claimed already go first, then the earliest due, so a
/// round's budget reaches an idle endpoint before one whose slots are held by slow attempts.
pub(crate) fn claim_order(endpoints: &mut [(i64, i64)], outstanding: impl Fn(i64) -> usize) {
    endpoints.sort_by_cached_key(|(endpoint_seq, due_ms)| (outstanding(*endpoint_seq), *due_ms));
}

/// How long after writing an endpoint's success this scheduler writes no other success for it
/// (the row keeps `last_success_at_ms` to the second; a failure is always written).
pub(crate) const HEALTH_SUCCESS_WRITE_MS: i64 = 1_000;

/// Whether an attempt's result needs its endpoint's health row written: a run of successes
/// needs one update a second, not one per attempt (on Postgres, one round trip each).
/// `healthy` holds, per endpoint, when this scheduler last wrote a success, and no failure
/// since.
pub(crate) fn health_write_needed(
    healthy: &mut HashMap<i64, i64>,
    endpoint_seq: i64,
    succeeded: bool,
    now_ms: i64,
) -> bool {
    if !succeeded {
        healthy.remove(&endpoint_seq);
        return true;
    }
    if healthy
        .get(&endpoint_seq)
        .is_some_and(|written_ms| now_ms - written_ms < HEALTH_SUCCESS_WRITE_MS)
    {
        return false;
    }
    if healthy.len() >= 4096 {
        healthy.retain(|_, written_ms| now_ms - *written_ms < HEALTH_SUCCESS_WRITE_MS);
    }
    healthy.insert(endpoint_seq, now_ms);
    true
}

/// One reading of who is live on the database: how many instances, and this one's place
/// among them by id (None: its own heartbeat is not among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) live: usize,
    pub(crate) rank: Option<usize>,
}

/// How this instance splits endpoints' rate limits with the others: the views read within the
/// last `SPLIT_HOLD` (the latest last), and whether it is itself still within its first
/// `SPLIT_HOLD` (joining: the others may not count it yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) views: Vec<View>,
    pub(crate) joining: bool,
}

/// The view of the sorted live ids from `own_id`.
pub(crate) fn view(live_ids: &[String], own_id: &str) -> View {
    View {
        live: live_ids.len(),
        rank: live_ids.iter().position(|id| id == own_id),
    }
}

/// This instance's share of an endpoint's `limit` (attempt starts per second). In one view of
/// n instances the one at rank r gets `limit / n`, plus one if `r < limit % n`: the shares sum
/// to `limit`, and with `limit < n` some get 0 (they claim nothing of that endpoint). Applied is
/// the least over the recent views, and 0 while joining, absent from the view, or with no
/// view at all: views of two instances differ by at most a heartbeat, so the shares applied at
/// any moment never sum above `limit`, even while one joins or leaves.
pub(crate) fn rate_share(limit: u32, split: &Split) -> u32 {
    if split.joining {
        return 0;
    }
    let share_in = |view: &View| -> u32 {
        let Some(rank) = view.rank else { return 0 };
        let live = u32::try_from(view.live.max(1)).unwrap_or(u32::MAX);
        let rank = u32::try_from(rank).unwrap_or(u32::MAX);
        limit / live + u32::from(rank < limit % live)
    };
    split.views.iter().map(share_in).min().unwrap_or(0)
}

/// Keeps the views read within `hold` before `now`, and the latest one while it is at most
/// `latest_max` old (heartbeats failing meanwhile: the others still count this instance that
/// long). With none left the share is 0.
pub(crate) fn recent_views(
    views: &mut Vec<(Instant, View)>,
    now: Instant,
    hold: Duration,
    latest_max: Duration,
) {
    let latest = views.len().saturating_sub(1);
    let mut index = 0;
    views.retain(|(at, _)| {
        let age = now.saturating_duration_since(*at);
        let keep = age <= hold || (index == latest && age <= latest_max);
        index += 1;
        keep
    });
}

/// Whether to wake the other instances after a round: it left due work unclaimed (its budget
/// or an endpoint's room ran out here; another instance may have room), and the last such
/// notification is at least `interval` old (each notifying commit takes a global lock).
pub(crate) fn notify_others(
    left_due: bool,
    last_notified: Option<Instant>,
    now: Instant,
    interval: Duration,
) -> bool {
    left_due && last_notified.is_none_or(|at| now.saturating_duration_since(at) >= interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Now {
        Now {
            ms: 1_000_000,
            at: Instant::now(),
        }
    }

    fn idle(now: Now) -> State {
        State {
            jobs_in_flight: 0,
            jobs_in_flight_max: 100,
            released: 0,
            failed_commits: 0,
            next_due_ms: None,
            drain_deadline: None,
            next_prune: now.at + Duration::from_secs(60),
            next_purge: now.at + Duration::from_secs(60),
        }
    }

    #[test]
    fn wait_follows_the_state() {
        let now = now();
        let ms = Duration::from_millis;
        let with = |change: &dyn Fn(&mut State)| {
            let mut s = idle(now);
            change(&mut s);
            wait(&s, now)
        };
        assert_eq!(with(&|s| s.failed_commits = 1), ms(200), "failed commit");
        assert_eq!(with(&|s| s.released = 2), ms(0), "released");
        assert_eq!(
            with(&|s| {
                s.jobs_in_flight = 100;
                s.next_due_ms = Some(now.ms);
            }),
            ms(1000),
            "at in-flight max"
        );
        assert_eq!(
            with(&|s| s.next_due_ms = Some(now.ms + 300)),
            ms(300),
            "due in 300 ms"
        );
        assert_eq!(
            with(&|s| s.next_due_ms = Some(now.ms - 5)),
            ms(0),
            "overdue"
        );
        assert_eq!(
            with(&|s| s.next_due_ms = Some(now.ms + 5000)),
            ms(1000),
            "due in 5 s"
        );
        assert_eq!(with(&|_| {}), ms(1000), "nothing due");
        assert_eq!(
            with(&|s| {
                s.drain_deadline = Some(now.at);
                s.next_due_ms = Some(now.ms);
            }),
            ms(1000),
            "draining"
        );
        assert_eq!(
            with(&|s| s.next_purge = now.at + ms(30)),
            ms(30),
            "a purge with history left"
        );
    }

    #[test]
    fn stopped_when_drained_or_past_the_deadline() {
        let now = now();
        let mut s = idle(now);
        assert!(!stopped(&s, now), "not draining");
        s.drain_deadline = Some(now.at + Duration::from_secs(1));
        s.released = 1;
        assert!(!stopped(&s, now), "released left");
        s.released = 0;
        s.jobs_in_flight = 3;
        assert!(!stopped(&s, now), "3 in flight before the deadline");
        s.drain_deadline = Some(now.at);
        assert!(stopped(&s, now), "3 in flight at the deadline");
        s.drain_deadline = Some(now.at + Duration::from_secs(1));
        s.jobs_in_flight = 0;
        assert!(stopped(&s, now), "none in flight");
    }

    #[test]
    fn a_round_is_needed_only_for_work() {
        let now = now();
        let nothing = Work {
            ingests: 0,
            results: 0,
            woken: false,
        };
        let mut s = idle(now);
        assert!(!round_needed(&nothing, &s, now), "idle and not due");
        let woken = Work {
            woken: true,
            ..nothing
        };
        assert!(round_needed(&woken, &s, now), "woken");
        s.next_due_ms = Some(now.ms);
        assert!(round_needed(&nothing, &s, now), "due");
        s.jobs_in_flight = s.jobs_in_flight_max;
        assert!(!round_needed(&nothing, &s, now), "due but at max");
        s.released = 1;
        assert!(round_needed(&nothing, &s, now), "released only");
    }

    #[test]
    fn claim_limit_is_the_room_left_capped_per_round() {
        let now = now();
        let mut s = idle(now);
        s.jobs_in_flight_max = 10_000;
        assert_eq!(claim_limit(&s), CLAIM_BATCH_MAX, "capped at 512");
        s.jobs_in_flight = 9_990;
        assert_eq!(claim_limit(&s), 10);
        s.drain_deadline = Some(now.at);
        assert_eq!(claim_limit(&s), 0, "draining");
    }

    #[test]
    fn only_a_round_of_a_few_results_lingers_while_workers_have_queued_jobs() {
        let work = |ingests, results| Work {
            ingests,
            results,
            woken: false,
        };
        assert!(!linger(&work(1, 10), 5), "with ingests");
        assert!(linger(&work(0, 255), 5), "255 results and queued");
        assert!(!linger(&work(0, 256), 5), "256 results");
        assert!(!linger(&work(0, 10), 0), "nothing queued");
        assert!(!linger(&work(0, 0), 5), "no results");
    }

    #[test]
    fn ask_takes_what_the_endpoint_and_the_round_allow() {
        assert_eq!(ask(2_000, 1_000, || 3, 10), Ask::NotDue(2_000));
        assert_eq!(ask(1_000, 1_000, || 0, 10), Ask::Full);
        assert_eq!(ask(900, 1_000, || 3, 0), Ask::BudgetSpent);
        assert_eq!(ask(900, 1_000, || 3, 10), Ask::Take(3));
        assert_eq!(ask(900, 1_000, || 30, 10), Ask::Take(10));
        assert_eq!(
            ask(2_000, 1_000, || panic!("room of an endpoint not due"), 10),
            Ask::NotDue(2_000)
        );
    }

    #[test]
    fn the_least_claimed_endpoint_goes_first_then_the_earliest_due() {
        let mut endpoints = vec![(1, 500), (2, 100), (3, 300), (4, 200)];
        let outstanding = |seq| if seq == 2 { 5 } else { 0 };
        claim_order(&mut endpoints, outstanding);
        assert_eq!(endpoints, vec![(4, 200), (3, 300), (1, 500), (2, 100)]);
        assert_eq!(earliest(None, 7), Some(7));
        assert_eq!(earliest(Some(5), 7), Some(5));
    }

    #[test]
    fn prunes_are_spaced_unless_a_batch_was_full() {
        let now = now();
        let interval = prune_interval(Duration::from_secs(1));
        assert_eq!(interval, Duration::from_millis(250), "retention 1 s");
        assert_eq!(
            prune_interval(Duration::from_secs(86_400)),
            Duration::from_secs(10),
            "retention 1 d"
        );
        assert_eq!(
            next_prune(PRUNE_BATCH_MAX, interval, now),
            now.at,
            "full batch"
        );
        assert_eq!(next_prune(3, interval, now), now.at + interval);
        let mut s = idle(now);
        assert!(!prune_due(&s, now));
        s.next_prune = now.at;
        assert!(prune_due(&s, now));
        s.drain_deadline = Some(now.at);
        assert!(!prune_due(&s, now), "never while draining");
    }

    #[test]
    fn leases_past_half_are_renewed() {
        let held =
            std::collections::HashMap::from([(1, (10, 1_000 + 400)), (2, (20, 1_000 + 600))]);
        assert_eq!(renewals(&held, 1_000, 1_000), vec![(1, 10)]);
        assert_eq!(
            lease_ms(Duration::from_secs(10), Duration::from_secs(5)),
            15_000
        );
    }

    #[test]
    fn a_run_of_successes_writes_health_once_a_second() {
        let mut healthy = HashMap::new();
        let writes: Vec<bool> = [
            (1, true, 0),
            (1, true, 10),
            (2, true, 10),
            (1, false, 20),
            (1, true, 30),
            (1, true, 40),
            (1, true, 1_029),
            (1, true, 1_030),
            (2, true, 1_011),
        ]
        .into_iter()
        .map(|(seq, succeeded, at)| health_write_needed(&mut healthy, seq, succeeded, at))
        .collect();
        assert_eq!(
            writes,
            [true, false, true, true, true, false, false, true, true]
        );
    }

    #[test]
    fn rate_shares_sum_to_the_limit_and_the_first_ranks_take_the_rest() {
        let alone = |live, rank| Split {
            views: vec![View {
                live,
                rank: Some(rank),
            }],
            joining: false,
        };
        // (limit, live) -> each rank's share
        let table: &[(u32, usize, &[u32])] = &[
            (10, 1, &[10]),
            (10, 2, &[5, 5]),
            (10, 3, &[4, 3, 3]),
            (11, 3, &[4, 4, 3]),
            (2, 3, &[1, 1, 0]),
            (1, 3, &[1, 0, 0]),
            (10_000, 7, &[1429, 1429, 1429, 1429, 1428, 1428, 1428]),
        ];
        for (limit, live, shares) in table {
            let got: Vec<u32> = (0..*live)
                .map(|rank| rate_share(*limit, &alone(*live, rank)))
                .collect();
            assert_eq!(&got, shares, "limit {limit} over {live}");
            assert_eq!(
                got.iter().sum::<u32>(),
                *limit,
                "limit {limit} over {live}: sum"
            );
        }
    }

    #[test]
    fn the_applied_share_is_the_least_of_the_recent_views_and_none_while_joining() {
        let view = |live, rank| View { live, rank };
        let split = |views: Vec<View>, joining| Split { views, joining };
        // Two instances, then a third joined (sorting first): 5 -> 3 at once.
        let joined = vec![view(2, Some(0)), view(3, Some(1))];
        assert_eq!(rate_share(10, &split(joined.clone(), false)), 3);
        assert_eq!(rate_share(10, &split(joined, true)), 0, "joining");
        // The third left: still 3 until the view of 3 is out of the hold.
        let left = vec![view(3, Some(1)), view(2, Some(0))];
        assert_eq!(rate_share(10, &split(left, false)), 3);
        assert_eq!(rate_share(10, &split(vec![view(2, Some(1))], false)), 5);
        assert_eq!(
            rate_share(10, &split(vec![view(2, None)], false)),
            0,
            "own heartbeat missing"
        );
        assert_eq!(rate_share(10, &split(vec![], false)), 0, "no view yet");
    }

    #[test]
    fn during_a_join_the_applied_shares_never_sum_above_the_limit() {
        // A and B run; C (id sorting between them) joins. Each instance's views over 6 s, one
        // per second; the others see C from its first heartbeat on (at worst a second late).
        let limit = 10;
        let hold: usize = 3;
        let members_at =
            |second: usize, sees_c_from: usize| if second >= sees_c_from { 3 } else { 2 };
        for a_sees_c in [0, 1] {
            for b_sees_c in [0, 1] {
                for second in 0..8usize {
                    let views = |own_rank_before: usize, own_rank_after: usize, from: usize| {
                        (second.saturating_sub(hold - 1)..=second)
                            .map(|s| {
                                let live = members_at(s, from);
                                View {
                                    live,
                                    rank: Some(if live == 3 {
                                        own_rank_after
                                    } else {
                                        own_rank_before
                                    }),
                                }
                            })
                            .collect::<Vec<_>>()
                    };
                    let a = rate_share(
                        limit,
                        &Split {
                            views: views(0, 0, a_sees_c),
                            joining: false,
                        },
                    );
                    let b = rate_share(
                        limit,
                        &Split {
                            views: views(1, 2, b_sees_c),
                            joining: false,
                        },
                    );
                    let c = rate_share(
                        limit,
                        &Split {
                            views: views(1, 1, 0),
                            joining: second < hold,
                        },
                    );
                    assert!(a + b + c <= limit, "second {second}: {a} + {b} + {c}");
                    if second > hold {
                        assert_eq!(a + b + c, limit, "second {second}: settled");
                    }
                }
            }
        }
    }

    #[test]
    fn views_are_kept_for_the_hold_and_the_latest_always() {
        let at = Instant::now();
        let s = Duration::from_secs;
        let v = |live| View {
            live,
            rank: Some(0),
        };
        let mut views = vec![(at, v(1)), (at + s(2), v(2)), (at + s(4), v(3))];
        recent_views(&mut views, at + s(5), s(3), s(5));
        assert_eq!(views, vec![(at + s(2), v(2)), (at + s(4), v(3))]);
        recent_views(&mut views, at + s(8), s(3), s(5));
        assert_eq!(views, vec![(at + s(4), v(3))], "the latest stays 5 s");
        recent_views(&mut views, at + s(10), s(3), s(5));
        assert_eq!(views, vec![], "heartbeats failing for longer: no share");
        assert_eq!(
            view(&["ins_a".into(), "ins_b".into(), "ins_c".into()], "ins_b"),
            View {
                live: 3,
                rank: Some(1)
            }
        );
    }

    #[test]
    fn others_are_woken_for_work_left_due_at_most_every_interval() {
        let at = Instant::now();
        let ms = Duration::from_millis;
        let every = ms(100);
        assert!(notify_others(true, None, at, every));
        assert!(!notify_others(false, None, at, every), "nothing left");
        assert!(!notify_others(true, Some(at), at + ms(99), every));
        assert!(notify_others(true, Some(at), at + ms(100), every));
    }
}
