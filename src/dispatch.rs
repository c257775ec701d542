//! Between the scheduler and the workers. Claimed jobs wait here in a queue per endpoint, and a
//! worker takes the next job of an endpoint that has a free slot: at most
//! `--endpoint-concurrency` attempts run against one endpoint, so a slow or hanging endpoint
//! holds that many workers and no more. First attempts go before retries, and a share of the
//! workers takes only first attempts, so a backlog of retries cannot hold up fresh events.
//! Plain data behind one mutex; no I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::model::Job;

/// Which jobs a worker takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// First attempts before retries.
    Any,
    /// First attempts only: the share of workers kept for fresh events.
    FirstAttemptsOnly,
}

#[derive(Default)]
struct EndpointQueue {
    first: VecDeque<Job>,
    retries: VecDeque<Job>,
    running: usize,
    listed_first: bool,
    listed_retries: bool,
}

#[derive(Default)]
struct State {
    endpoints: HashMap<i64, EndpointQueue>,
    /// Endpoints that may have a free slot and a waiting first attempt (checked when taken).
    ready_first: VecDeque<i64>,
    /// Endpoints that may have a free slot and a waiting retry.
    ready_retries: VecDeque<i64>,
    closed: bool,
}

pub struct Dispatcher {
    state: Mutex<State>,
    ready: Condvar,
    /// Most attempts running against one endpoint.
    endpoint_concurrency: usize,
}

impl Dispatcher {
    pub fn new(endpoint_concurrency: usize) -> Dispatcher {
        Dispatcher {
            state: Mutex::default(),
            ready: Condvar::new(),
            endpoint_concurrency,
        }
    }

    /// The state, also after a thread panicked holding it: it is plain data, changed one step
    /// at a time, so what a panic left is consistent.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues claimed jobs.
    pub fn push(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut state = self.state();
        for job in jobs {
            let endpoint_seq = job.endpoint_seq;
            let queue = state.endpoints.entry(endpoint_seq).or_default();
            if job.attempt_number == 1 {
                queue.first.push_back(job);
            } else {
                queue.retries.push_back(job);
            }
            list_if_ready(&mut state, endpoint_seq, self.endpoint_concurrency);
        }
        self.ready.notify_all();
    }

    /// Blocks until a job may run, and marks its endpoint's slot taken; None once closed.
    pub fn take(&self, takes: Takes) -> Option<Job> {
        let mut state = self.state();
        loop {
            if let Some(job) = take_from(&mut state, true, self.endpoint_concurrency) {
                return Some(job);
            }
            if takes == Takes::Any
                && let Some(job) = take_from(&mut state, false, self.endpoint_concurrency)
            {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// An attempt against this endpoint ended: its slot is free again.
    pub fn done(&self, endpoint_seq: i64) {
        let mut state = self.state();
        if let Some(queue) = state.endpoints.get_mut(&endpoint_seq) {
            queue.running -= 1;
            if queue.running == 0 && queue.first.is_empty() && queue.retries.is_empty() {
                state.endpoints.remove(&endpoint_seq);
            } else {
                list_if_ready(&mut state, endpoint_seq, self.endpoint_concurrency);
                self.ready.notify_all();
            }
        }
    }

    /// Jobs claimed for an endpoint and not finished (queued or running).
    pub fn outstanding(&self, endpoint_seq: i64) -> usize {
        let state = self.state();
        state
            .endpoints
            .get(&endpoint_seq)
            .map_or(0, |q| q.running + q.first.len() + q.retries.len())
    }

    /// Jobs waiting for a worker, over all endpoints.
    pub fn queued(&self) -> usize {
        let state = self.state();
        state
            .endpoints
            .values()
            .map(|q| q.first.len() + q.retries.len())
            .sum()
    }

    /// Takes back every job not yet started (at shutdown).
    pub fn take_back_queued(&self) -> Vec<Job> {
        let mut state = self.state();
        let mut jobs = Vec::new();
        for queue in state.endpoints.values_mut() {
            jobs.extend(queue.first.drain(..));
            jobs.extend(queue.retries.drain(..));
        }
        jobs
    }

    /// Takes back one endpoint's jobs not yet started (it was just disabled).
    pub fn take_back_endpoint(&self, endpoint_seq: i64) -> Vec<Job> {
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
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_all();
    }
}

/// Puts an endpoint on the ready lists it belongs on, unless it is there already.
fn list_if_ready(state: &mut State, endpoint_seq: i64, concurrency: usize) {
    let Some(queue) = state.endpoints.get_mut(&endpoint_seq) else {
        return;
    };
    if queue.running >= concurrency {
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

/// Takes the next job of the first eligible endpoint on one ready list (round robin).
fn take_from(state: &mut State, first: bool, concurrency: usize) -> Option<Job> {
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
        if queue.running >= concurrency {
            continue; // listed again by `done` when a slot frees
        }
        let job = if first {
            queue.first.pop_front()
        } else {
            queue.retries.pop_front()
        };
        let Some(job) = job else { continue };
        queue.running += 1;
        list_if_ready(state, endpoint_seq, concurrency);
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
        }
    }

    #[test]
    fn an_endpoint_never_runs_more_than_its_concurrency() {
        let dispatcher = Dispatcher::new(2);
        dispatcher.push((0..5).map(|_| job(1, 1)).chain([job(2, 1)]).collect());
        let taken: Vec<i64> = (0..3)
            .map(|_| dispatcher.take(Takes::Any).unwrap().endpoint_seq)
            .collect();
        assert_eq!(taken.iter().filter(|e| **e == 1).count(), 2);
        assert!(taken.contains(&2));
        assert_eq!(dispatcher.outstanding(1), 5);
        // Endpoint 1 is full: nothing more until one of its attempts ends.
        dispatcher.close();
        assert!(dispatcher.take(Takes::Any).is_none());
        dispatcher.done(1);
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
        dispatcher.done(1);
        assert_eq!(dispatcher.outstanding(1), 0);
    }
}
