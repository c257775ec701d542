//! Between the scheduler and the workers. Claimed jobs wait here in a queue per endpoint, and a
//! worker takes the next job of an endpoint whose window has room: each endpoint has an
//! adaptive window of attempts in flight (see `Window`), from 1 to `--endpoint-concurrency`, so
//! a slow or hanging endpoint holds few workers and a healthy distant one is not held to a
//! handful. An endpoint's `rate_limit` is kept here too: no 1 s span holds more attempt starts.
//! First attempts go before retries, and a share of the workers takes only first attempts, so
//! a backlog of retries cannot hold up fresh events. Plain data behind one mutex; no I/O.
//! With several instances on one Postgres database each enforces its share of a rate limit
//! (`decide::rate_share`, from the membership the scheduler hands in with `set_split`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::scheduler::decide::{self, Split};
use crate::model::Job;

/// Which jobs a worker takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// First attempts before retries.
    Any,
    /// First attempts only: the share of workers kept for fresh events.
    FirstAttemptsOnly,
}

/// The span `rate_limit` counts starts in, with 1 ms to spare: attempt start times are recorded
/// to the millisecond, and the spare keeps two starts 1 s apart apart in that record too.
pub(crate) const RATE_SPAN: Duration = Duration::from_millis(1001);

pub(crate) use crate::engine::window::{Sample, Signal, WINDOW_INITIAL, Window};

/// What the dispatcher keeps of an endpoint between its bursts of work.
struct Flow {
    window: Window,
    /// `rate_limit`: most attempt starts in any `RATE_SPAN`, over all instances.
    rate_limit: Option<u32>,
    /// This instance's share of `rate_limit` (all of it when alone); 0: start nothing.
    share: Option<u32>,
    /// Start times of the latest attempts, at most `rate_limit` of them (only when limited).
    starts: VecDeque<Instant>,
}

impl Flow {
    fn new(now: Instant) -> Flow {
        Flow {
            window: Window::new(now),
            rate_limit: None,
            share: None,
            starts: VecDeque::new(),
        }
    }

    /// Sets the endpoint's limit and this instance's share of it.
    fn limit(&mut self, rate_limit: Option<u32>, split: Option<&Split>) {
        self.rate_limit = rate_limit;
        self.share = rate_limit.map(|limit| split.map_or(limit, |s| decide::rate_share(limit, s)));
    }

    /// When another attempt may start under this instance's share of `rate_limit`, if not
    /// now. The starts kept cover the whole limit, so a share that grows again counts them.
    fn rate_wait_until(&self, now: Instant) -> Option<Instant> {
        let share = self.share? as usize;
        if share == 0 {
            return Some(now + RATE_SPAN); // looked at again when the split may have changed
        }
        if self.starts.len() < share {
            return None;
        }
        let free_at = self.starts[self.starts.len() - share] + RATE_SPAN;
        (free_at > now).then_some(free_at)
    }

    fn started(&mut self, now: Instant) {
        if let Some(limit) = self.rate_limit {
            self.starts.push_back(now);
            while self.starts.len() > limit as usize {
                self.starts.pop_front();
            }
        }
    }
}

#[derive(Default)]
struct EndpointQueue {
    first: VecDeque<Job>,
    retries: VecDeque<Job>,
    running: usize,
    listed_first: bool,
    listed_retries: bool,
    /// Waiting in `State::rate_waits` for its rate limit.
    rate_waiting: bool,
}

#[derive(Default)]
struct State {
    endpoints: HashMap<i64, EndpointQueue>,
    /// Windows and rate records, kept while the endpoint's queue comes and goes.
    flows: HashMap<i64, Flow>,
    /// Endpoints that may have room and a waiting first attempt (checked when taken).
    ready_first: VecDeque<i64>,
    /// Endpoints that may have room and a waiting retry.
    ready_retries: VecDeque<i64>,
    /// Endpoints held by their rate limit, with when they may start again.
    rate_waits: Vec<(Instant, i64)>,
    /// How rate limits are split with other instances (None: this instance is alone).
    split: Option<Split>,
    /// Workers waiting, by what they take.
    waiting_any: usize,
    waiting_first_only: usize,
    closed: bool,
}

pub(crate) struct Dispatcher {
    state: Mutex<State>,
    /// Wakes workers that take any job...
    ready_any: Condvar,
    /// ...and those that take first attempts only.
    ready_first_only: Condvar,
    /// `--endpoint-concurrency`: the largest window.
    window_max: usize,
}

/// One endpoint's flow control as the API and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowView {
    pub(crate) endpoint_seq: i64,
    pub(crate) window: usize,
    pub(crate) running: usize,
}

impl Dispatcher {
    pub(crate) fn new(window_max: usize) -> Dispatcher {
        Dispatcher {
            state: Mutex::default(),
            ready_any: Condvar::new(),
            ready_first_only: Condvar::new(),
            window_max: window_max.max(1),
        }
    }

    /// The state, also after a thread panicked holding it: it is plain data, changed one step
    /// at a time, so what a panic left is consistent.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues claimed jobs. Answers those of endpoints whose rate limit share here is 0 (the
    /// other instances send them): the caller gives them back.
    pub(crate) fn push(&self, jobs: Vec<Job>) -> Vec<Job> {
        let mut refused = Vec::new();
        if jobs.is_empty() {
            return refused;
        }
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        let mut first_attempts = 0;
        let mut retries = 0;
        for job in jobs {
            let endpoint_seq = job.endpoint_seq;
            let flow = state
                .flows
                .entry(endpoint_seq)
                .or_insert_with(|| Flow::new(now));
            if flow.rate_limit != job.rate_limit {
                // A new limit counts the starts already made: the latest of them stay.
                flow.limit(job.rate_limit, state.split.as_ref());
                let keep = job.rate_limit.map_or(0, |limit| limit as usize);
                while flow.starts.len() > keep {
                    flow.starts.pop_front();
                }
            }
            if flow.share == Some(0) {
                refused.push(job);
                continue;
            }
            let queue = state.endpoints.entry(endpoint_seq).or_default();
            if job.attempt_number == 1 {
                queue.first.push_back(job);
                first_attempts += 1;
            } else {
                queue.retries.push_back(job);
                retries += 1;
            }
            list_if_ready(state, endpoint_seq, self.window_max, now);
        }
        self.wake(state, first_attempts, retries);
        refused
    }

    /// Takes in a new reading of the membership: each rate-limited endpoint's share is made
    /// again from it. Answers the queued jobs of endpoints whose share here became 0, for the
    /// caller to give back (they would otherwise wait, claimed, for a share that may not come).
    pub(crate) fn set_split(&self, split: Split) -> Vec<Job> {
        let mut state = self.state();
        let state = &mut *state;
        let mut taken_back = Vec::new();
        for (endpoint_seq, flow) in &mut state.flows {
            flow.limit(flow.rate_limit, Some(&split));
            if flow.share == Some(0)
                && let Some(queue) = state.endpoints.get_mut(endpoint_seq)
            {
                taken_back.extend(queue.first.drain(..).chain(queue.retries.drain(..)));
            }
        }
        state.split = Some(split);
        taken_back
    }

    /// Blocks until a job may run, and marks it running against its endpoint; None once closed.
    pub(crate) fn take(&self, takes: Takes) -> Option<Job> {
        let mut state = self.state();
        loop {
            let now = Instant::now();
            release_rate_waits(&mut state, self.window_max, now);
            if let Some(job) = take_from(&mut state, true, self.window_max, now) {
                return Some(job);
            }
            if takes == Takes::Any
                && let Some(job) = take_from(&mut state, false, self.window_max, now)
            {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            let rate_wait = state.rate_waits.iter().map(|(at, _)| *at).min();
            let condvar = match takes {
                Takes::Any => {
                    state.waiting_any += 1;
                    &self.ready_any
                }
                Takes::FirstAttemptsOnly => {
                    state.waiting_first_only += 1;
                    &self.ready_first_only
                }
            };
            state = match rate_wait {
                Some(at) => {
                    condvar
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => condvar.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
            match takes {
                Takes::Any => state.waiting_any -= 1,
                Takes::FirstAttemptsOnly => state.waiting_first_only -= 1,
            }
        }
    }

    /// An attempt against this endpoint ended: its window learns from it, and its slot is free.
    /// `takes` is what the calling worker takes: it takes its next job right after this, so
    /// only jobs beyond that one wake another worker (a wake per completion cost a futex call
    /// and a context switch each, a fifth of the workers' time under load).
    pub(crate) fn done(&self, endpoint_seq: i64, sample: Sample, takes: Takes) {
        let now = Instant::now();
        let mut state = self.state();
        let Some(queue) = state.endpoints.get_mut(&endpoint_seq) else {
            return;
        };
        queue.running -= 1;
        let in_flight = queue.running;
        let idle = queue.running == 0 && queue.first.is_empty() && queue.retries.is_empty();
        let Some(flow) = state.flows.get_mut(&endpoint_seq) else {
            return;
        };
        flow.window.sample(sample, in_flight, self.window_max, now);
        let window = flow.window.size(self.window_max);
        if idle {
            state.endpoints.remove(&endpoint_seq);
            return;
        }
        list_if_ready(&mut state, endpoint_seq, self.window_max, now);
        let Some(queue) = state.endpoints.get(&endpoint_seq) else {
            return;
        };
        if queue.rate_waiting {
            return; // timed waits pick it up
        }
        let room = window.saturating_sub(queue.running);
        let first = queue.first.len().min(room);
        let mut retries = queue.retries.len().min(room - first);
        let mut first_others = first;
        if first > 0 {
            first_others -= 1;
        } else if takes == Takes::Any && retries > 0 {
            retries -= 1;
        }
        self.wake(&state, first_others, retries);
    }

    /// Wakes as many waiting workers as jobs became available, of the kinds that can take them.
    fn wake(&self, state: &State, first_attempts: usize, retries: usize) {
        let mut first_only = first_attempts.min(state.waiting_first_only);
        let any = (first_attempts - first_only + retries).min(state.waiting_any);
        if any == state.waiting_any {
            self.ready_any.notify_all();
        } else {
            (0..any).for_each(|_| self.ready_any.notify_one());
        }
        if first_only == state.waiting_first_only {
            self.ready_first_only.notify_all();
            first_only = 0;
        }
        (0..first_only).for_each(|_| self.ready_first_only.notify_one());
    }

    /// How many more jobs the scheduler may claim for an endpoint: `per_slot` for each place
    /// in its window, and for a rate-limited endpoint no more than about one second of starts
    /// (claimed jobs wait as `delivering`, so they should not wait long).
    pub(crate) fn claim_room(&self, endpoint_seq: i64, per_slot: usize) -> usize {
        let state = self.state();
        let (window, share) = state
            .flows
            .get(&endpoint_seq)
            .map_or((WINDOW_INITIAL.min(self.window_max), None), |flow| {
                (flow.window.size(self.window_max), flow.share)
            });
        let mut room = window * per_slot;
        match share {
            Some(0) => return 0, // the other instances send this endpoint's deliveries
            Some(share) => room = room.min(share as usize + window),
            None => {}
        }
        let outstanding = state
            .endpoints
            .get(&endpoint_seq)
            .map_or(0, |q| q.running + q.first.len() + q.retries.len());
        room.saturating_sub(outstanding)
    }

    /// Jobs claimed for an endpoint and not finished (queued or running).
    pub(crate) fn outstanding(&self, endpoint_seq: i64) -> usize {
        let state = self.state();
        state
            .endpoints
            .get(&endpoint_seq)
            .map_or(0, |q| q.running + q.first.len() + q.retries.len())
    }

    /// An endpoint's window now (the initial one if it has sent nothing since the start).
    pub(crate) fn window(&self, endpoint_seq: i64) -> usize {
        let state = self.state();
        state
            .flows
            .get(&endpoint_seq)
            .map_or(WINDOW_INITIAL.min(self.window_max), |flow| {
                flow.window.size(self.window_max)
            })
    }

    /// Every endpoint that has sent since the start: its window and attempts running.
    pub(crate) fn flows(&self) -> Vec<FlowView> {
        let state = self.state();
        let mut views: Vec<FlowView> = state
            .flows
            .iter()
            .map(|(endpoint_seq, flow)| FlowView {
                endpoint_seq: *endpoint_seq,
                window: flow.window.size(self.window_max),
                running: state.endpoints.get(endpoint_seq).map_or(0, |q| q.running),
            })
            .collect();
        views.sort_by_key(|view| view.endpoint_seq);
        views
    }

    /// Forgets a deleted endpoint's window.
    pub(crate) fn forget(&self, endpoint_seq: i64) {
        let mut state = self.state();
        if !state.endpoints.contains_key(&endpoint_seq) {
            state.flows.remove(&endpoint_seq);
        }
    }

    /// Jobs waiting for a worker, over all endpoints.
    pub(crate) fn queued(&self) -> usize {
        let state = self.state();
        state
            .endpoints
            .values()
            .map(|q| q.first.len() + q.retries.len())
            .sum()
    }

    /// Takes back every job not yet started (at shutdown).
    pub(crate) fn take_back_queued(&self) -> Vec<Job> {
        let mut state = self.state();
        let mut jobs = Vec::new();
        for queue in state.endpoints.values_mut() {
            jobs.extend(queue.first.drain(..));
            jobs.extend(queue.retries.drain(..));
        }
        jobs
    }

    /// Takes back one endpoint's jobs not yet started (it was just disabled or changed).
    pub(crate) fn take_back_endpoint(&self, endpoint_seq: i64) -> Vec<Job> {
        let mut state = self.state();
        let Some(queue) = state.endpoints.get_mut(&endpoint_seq) else {
            return Vec::new();
        };
        queue
            .first
            .drain(..)
            .chain(queue.retries.drain(..))
            .collect()
    }

    /// Wakes every worker; each returns once nothing is left for it.
    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.ready_any.notify_all();
        self.ready_first_only.notify_all();
    }
}

/// Puts an endpoint on the ready lists it belongs on, unless it is there already; one held by
/// its rate limit waits in `rate_waits` instead.
fn list_if_ready(state: &mut State, endpoint_seq: i64, window_max: usize, now: Instant) {
    let Some(queue) = state.endpoints.get_mut(&endpoint_seq) else {
        return;
    };
    let Some(flow) = state.flows.get(&endpoint_seq) else {
        return;
    };
    if queue.running >= flow.window.size(window_max) || queue.rate_waiting {
        return;
    }
    if queue.first.is_empty() && queue.retries.is_empty() {
        return;
    }
    if let Some(at) = flow.rate_wait_until(now) {
        queue.rate_waiting = true;
        state.rate_waits.push((at, endpoint_seq));
        return;
    }
    if !queue.first.is_empty() && !queue.listed_first {
        queue.listed_first = true;
        state.ready_first.push_back(endpoint_seq);
    }
    if !queue.retries.is_empty() && !queue.listed_retries {
        queue.listed_retries = true;
        state.ready_retries.push_back(endpoint_seq);
    }
}

/// Lists again the endpoints whose rate limit lets them start now.
fn release_rate_waits(state: &mut State, window_max: usize, now: Instant) {
    if state.rate_waits.is_empty() {
        return;
    }
    let (due, waiting): (Vec<_>, Vec<_>) =
        state.rate_waits.drain(..).partition(|(at, _)| *at <= now);
    state.rate_waits = waiting;
    for (_, endpoint_seq) in due {
        if let Some(queue) = state.endpoints.get_mut(&endpoint_seq) {
            queue.rate_waiting = false;
            list_if_ready(state, endpoint_seq, window_max, now);
        }
    }
}

/// Takes the next job of the first eligible endpoint on one ready list (round robin).
fn take_from(state: &mut State, first: bool, window_max: usize, now: Instant) -> Option<Job> {
    loop {
        let list = if first {
            &mut state.ready_first
        } else {
            &mut state.ready_retries
        };
        let endpoint_seq = list.pop_front()?;
        let Some(queue) = state.endpoints.get_mut(&endpoint_seq) else {
            continue;
        };
        if first {
            queue.listed_first = false;
        } else {
            queue.listed_retries = false;
        }
        let Some(flow) = state.flows.get_mut(&endpoint_seq) else {
            continue;
        };
        if queue.running >= flow.window.size(window_max) || queue.rate_waiting {
            continue; // listed again when a slot frees or its rate allows
        }
        if flow.rate_wait_until(now).is_some() {
            list_if_ready(state, endpoint_seq, window_max, now);
            continue;
        }
        let job = if first {
            queue.first.pop_front()
        } else {
            queue.retries.pop_front()
        };
        let Some(job) = job else { continue };
        queue.running += 1;
        flow.started(now);
        flow.window.started(queue.running);
        list_if_ready(state, endpoint_seq, window_max, now);
        return Some(job);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn job(endpoint_seq: i64, attempt_number: u32) -> Job {
        Job {
            delivery_seq: 0,
            delivery_id: format!("dlv_{endpoint_seq}_{attempt_number}"),
            endpoint_seq,
            url: String::new(),
            secret: String::new(),
            previous_secret: None,
            previous_secret_until_ms: 0,
            sign_with_previous: false,
            headers: Vec::new(),
            event_id: String::new(),
            event_type: String::new(),
            body: Arc::from(Vec::new()),
            attempt_number,
            schedule_step: attempt_number,
            may_switch_secret: true,
            workspace_id: String::new(),
            claim: 1,
            rate_limit: None,
        }
    }

    fn sample(signal: Signal, latency_ms: u64) -> Sample {
        Sample {
            started: Instant::now(),
            latency: Duration::from_millis(latency_ms),
            signal,
        }
    }

    #[test]
    fn an_endpoint_never_runs_more_than_its_window() {
        let dispatcher = Dispatcher::new(64);
        let jobs = (0..(WINDOW_INITIAL + 1)).map(|_| job(1, 1));
        dispatcher.push(jobs.chain([job(2, 1)]).collect());
        let taken: Vec<i64> = (0..(WINDOW_INITIAL + 1))
            .map(|_| dispatcher.take(Takes::Any).unwrap().endpoint_seq)
            .collect();
        assert_eq!(taken.iter().filter(|e| **e == 1).count(), WINDOW_INITIAL);
        assert!(taken.contains(&2));
        // Endpoint 1 is full: nothing more until one of its attempts ends.
        dispatcher.close();
        assert!(dispatcher.take(Takes::Any).is_none());
        dispatcher.done(1, sample(Signal::Neutral, 1), Takes::Any);
        assert_eq!(dispatcher.take(Takes::Any).unwrap().endpoint_seq, 1);
    }

    #[test]
    fn first_attempts_go_before_retries_and_some_workers_take_only_them() {
        let dispatcher = Dispatcher::new(4);
        dispatcher.push(vec![job(1, 3), job(2, 2), job(3, 1)]);
        assert_eq!(dispatcher.take(Takes::Any).unwrap().endpoint_seq, 3);
        dispatcher.close();
        assert!(dispatcher.take(Takes::FirstAttemptsOnly).is_none());
        assert_eq!(dispatcher.take(Takes::Any).unwrap().attempt_number, 3);
        assert_eq!(dispatcher.take_back_queued().len(), 1);
    }

    #[test]
    fn a_panic_while_the_lock_is_held_does_not_stop_the_dispatcher() {
        let dispatcher = Arc::new(Dispatcher::new(1));
        let poisoner = dispatcher.clone();
        let panicked = std::thread::spawn(move || {
            let _state = poisoner.state.lock().unwrap();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(dispatcher.state.is_poisoned());
        dispatcher.push(vec![job(1, 1)]);
        assert_eq!(dispatcher.take(Takes::Any).unwrap().endpoint_seq, 1);
        dispatcher.done(1, sample(Signal::Success, 0), Takes::Any);
        assert_eq!(dispatcher.outstanding(1), 0);
    }

    /// Runs `rounds` full windows of attempts against endpoint 1, each answered with `signal`
    /// after `latency_ms`; returns the window after each round.
    fn run_rounds(
        dispatcher: &Dispatcher,
        rounds: usize,
        signal: Signal,
        latency_ms: u64,
    ) -> Vec<usize> {
        let mut windows = Vec::new();
        for _ in 0..rounds {
            let window = dispatcher.window(1);
            dispatcher.push((0..window).map(|_| job(1, 1)).collect());
            let started = Instant::now();
            for _ in 0..window {
                dispatcher.take(Takes::Any).unwrap();
            }
            for _ in 0..window {
                dispatcher.done(
                    1,
                    Sample {
                        started,
                        latency: Duration::from_millis(latency_ms),
                        signal,
                    },
                    Takes::Any,
                );
            }
            windows.push(dispatcher.window(1));
        }
        windows
    }

    #[test]
    fn the_window_grows_while_attempts_succeed_up_to_its_maximum() {
        let dispatcher = Dispatcher::new(64);
        assert_eq!(dispatcher.window(1), WINDOW_INITIAL);
        let windows = run_rounds(&dispatcher, 8, Signal::Success, 50);
        assert_eq!(
            windows[0],
            WINDOW_INITIAL * 2,
            "slow start doubles: {windows:?}"
        );
        assert_eq!(*windows.last().unwrap(), 64, "{windows:?}");
    }

    #[test]
    fn the_window_shrinks_on_overload_once_per_round_trip_down_to_one() {
        let dispatcher = Dispatcher::new(64);
        run_rounds(&dispatcher, 4, Signal::Success, 50);
        assert_eq!(dispatcher.window(1), 64);
        // A whole window of timeouts started before the decrease halves it once, not 64 times.
        let windows = run_rounds(&dispatcher, 1, Signal::Overload, 1000);
        assert_eq!(windows, vec![32]);
        let windows = run_rounds(&dispatcher, 8, Signal::Overload, 1000);
        assert_eq!(windows, vec![16, 8, 4, 2, 1, 1, 1, 1]);
        // Other 4xx say nothing about capacity.
        assert_eq!(run_rounds(&dispatcher, 2, Signal::Neutral, 1), vec![1, 1]);
    }

    #[test]
    fn rising_latency_shrinks_the_window_and_stops_its_growth() {
        let dispatcher = Dispatcher::new(64);
        run_rounds(&dispatcher, 3, Signal::Success, 50);
        let before = dispatcher.window(1);
        // Five times the baseline: the moving average passes 2x + 5 ms within a few samples.
        let windows = run_rounds(&dispatcher, 3, Signal::Success, 250);
        assert!(
            windows.iter().all(|w| *w < before),
            "{before} then {windows:?}"
        );
        assert!(windows.windows(2).all(|w| w[1] <= w[0]), "{windows:?}");
    }

    #[test]
    fn an_idle_endpoint_does_not_grow_its_window() {
        let dispatcher = Dispatcher::new(64);
        for _ in 0..100 {
            dispatcher.push(vec![job(1, 1)]);
            dispatcher.take(Takes::Any).unwrap();
            dispatcher.done(1, sample(Signal::Success, 1), Takes::Any);
        }
        assert_eq!(dispatcher.window(1), WINDOW_INITIAL);
    }

    #[test]
    fn a_rate_limited_endpoint_starts_no_more_than_its_rate_in_any_second() {
        let dispatcher = Arc::new(Dispatcher::new(64));
        let limited = |n| {
            let mut job = job(1, 1);
            job.rate_limit = Some(n);
            job
        };
        dispatcher.push((0..7).map(|_| limited(3)).collect());
        let mut starts = Vec::new();
        for _ in 0..7 {
            dispatcher.take(Takes::Any).unwrap();
            starts.push(Instant::now());
            dispatcher.done(1, sample(Signal::Neutral, 0), Takes::Any);
        }
        for pair in starts.windows(4) {
            assert!(pair[3] - pair[0] >= Duration::from_secs(1), "{starts:?}");
        }
        // Three went at once, then the rest waited their turn.
        assert!(
            starts[2] - starts[0] < Duration::from_millis(100),
            "{starts:?}"
        );
    }

    #[test]
    fn every_job_is_taken_by_waiting_workers_of_both_kinds() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dispatcher = Arc::new(Dispatcher::new(8));
        let done = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..6)
            .map(|index| {
                let (dispatcher, done) = (dispatcher.clone(), done.clone());
                let takes = if index < 2 {
                    Takes::FirstAttemptsOnly
                } else {
                    Takes::Any
                };
                std::thread::spawn(move || {
                    while let Some(job) = dispatcher.take(takes) {
                        done.fetch_add(1, Ordering::SeqCst);
                        dispatcher.done(job.endpoint_seq, sample(Signal::Success, 0), takes);
                    }
                })
            })
            .collect();
        // In small pushes, as the scheduler makes them, so workers are waiting in between.
        for round in 0..200 {
            let jobs = (0..5).map(|i| job(i64::from(i), if (round + i) % 3 == 0 { 2 } else { 1 }));
            dispatcher.push(jobs.collect());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::SeqCst) < 1000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            done.load(Ordering::SeqCst),
            1000,
            "jobs left: {}",
            dispatcher.queued()
        );
        dispatcher.close();
        workers.into_iter().for_each(|w| w.join().unwrap());
    }

    fn split(live: usize, rank: usize) -> Split {
        Split {
            views: vec![crate::engine::scheduler::decide::View {
                live,
                rank: Some(rank),
            }],
            joining: false,
        }
    }

    #[test]
    fn with_three_instances_the_first_starts_four_of_a_rate_of_ten_per_second() {
        let dispatcher = Dispatcher::new(64);
        assert!(dispatcher.set_split(split(3, 0)).is_empty());
        let limited = || {
            let mut job = job(1, 1);
            job.rate_limit = Some(10);
            job
        };
        assert!(
            dispatcher
                .push((0..6).map(|_| limited()).collect())
                .is_empty()
        );
        assert_eq!(
            dispatcher.claim_room(1, 16),
            (4 + WINDOW_INITIAL).saturating_sub(6),
            "its share + its window, less the 6 held"
        );
        let started = Instant::now();
        for _ in 0..4 {
            dispatcher.take(Takes::Any).unwrap();
            dispatcher.done(1, sample(Signal::Neutral, 0), Takes::Any);
        }
        assert!(started.elapsed() < Duration::from_millis(500));
        // The fifth waits for the first start to be a second old.
        dispatcher.take(Takes::Any).unwrap();
        assert!(started.elapsed() >= RATE_SPAN, "{:?}", started.elapsed());
    }

    #[test]
    fn an_instance_whose_share_is_zero_gives_its_jobs_back_and_claims_none() {
        let dispatcher = Dispatcher::new(64);
        let limited = |n| {
            let mut job = job(1, 1);
            job.rate_limit = Some(n);
            job
        };
        // Rank 1 of 2: a share of 2 of a limit of 3; jobs queue.
        dispatcher.set_split(split(2, 1));
        assert!(dispatcher.push(vec![limited(3), limited(3)]).is_empty());
        // A third instance joined: 3 / 3 = 1 each; still queued.
        assert!(dispatcher.set_split(split(3, 2)).is_empty());
        // The limit became 2: rank 2 of 3 gets 0; the queued jobs come back, new ones too.
        assert_eq!(dispatcher.push(vec![limited(2)]).len(), 1);
        assert_eq!(dispatcher.claim_room(1, 16), 0);
        assert_eq!(dispatcher.set_split(split(3, 2)).len(), 2);
        assert_eq!(dispatcher.queued(), 0);
        // Alone again (rank 0 of 1): the whole limit.
        dispatcher.set_split(split(1, 0));
        assert_eq!(dispatcher.claim_room(1, 16), 2 + WINDOW_INITIAL);
    }
}
