//! An endpoint's adaptive window of attempts in flight: additive increase while attempts
//! succeed and latency holds, multiplicative decrease on overload or risen latency. Pure
//! arithmetic over the samples it is given (time comes in as arguments); `dispatch` keeps one
//! per endpoint.

use std::time::{Duration, Instant};

/// The window an endpoint starts with (and has again after the service restarts).
pub(crate) const WINDOW_INITIAL: usize = 4;
/// Latency counts as risen when its moving average passes the baseline times this...
pub(crate) const LATENCY_RISE_FACTOR: f64 = 2.0;
/// ...plus this: below a few milliseconds latency is noise (scheduling, loopback), not a queue.
pub(crate) const LATENCY_RISE_SLACK: Duration = Duration::from_millis(5);
/// The baseline latency is the least seen over the last one to two of these periods, so it
/// follows a receiver whose normal latency changed.
pub(crate) const LATENCY_BASELINE_PERIOD: Duration = Duration::from_secs(10);
/// Weight of the newest sample in the latency moving average.
pub(crate) const LATENCY_EWMA_WEIGHT: f64 = 0.2;
/// Multiplicative decrease on an overload signal (timeout, connection error, 429, 5xx)...
pub(crate) const DECREASE_ON_OVERLOAD: f64 = 0.5;
/// ...and a gentler one when latency rises.
pub(crate) const DECREASE_ON_LATENCY: f64 = 0.8;
/// What an attempt said about its endpoint's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A 2xx: the window may grow, unless latency has risen.
    Success,
    /// Timeout, connection or TLS error, 429 or 5xx: the receiver (or the way to it) is
    /// overloaded or down; the window shrinks.
    Overload,
    /// Anything else (another 4xx, a redirect, a blocked address): says nothing about capacity.
    Neutral,
}

/// One finished attempt, as the window sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) started: Instant,
    pub(crate) latency: Duration,
    pub(crate) signal: Signal,
}

/// An endpoint's adaptive window: AIMD (additive increase, multiplicative decrease) with a
/// latency guard, in the spirit of TCP congestion control.
///
/// Why this and not a gradient limit (Netflix concurrency-limits' Gradient2/Vegas, Envoy's
/// adaptive concurrency): those steer by latency alone, against a minimum RTT that Envoy
/// re-measures by pinning the concurrency low every few seconds, which costs throughput each
/// time, and that Gradient2 tracks as a long-term average. A webhook receiver's latency is
/// mostly its own work and swings with payloads and its other traffic, while its overload is
/// usually explicit: 429, 503, timeouts, refused connections. So those explicit signals drive
/// the window (halve, at most once per window's worth of attempts: only an attempt started
/// after the last decrease may cause the next, as TCP reacts once per round trip), and latency
/// is a guard only: when its moving average passes twice the baseline plus 5 ms, the window
/// shrinks gently and stops growing. Growth is slow start (one per success, doubling each round
/// trip) until the first decrease, then one per window of successes; it grows only while the
/// window is at least half used, so an idle endpoint's window does not inflate.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    limit: f64,
    slow_start: bool,
    /// Moving average of successful attempts' latency, in seconds.
    latency_ewma_s: Option<f64>,
    /// Least latency in the current and the previous baseline period, in seconds.
    baseline_current_s: f64,
    baseline_previous_s: f64,
    baseline_period_started: Instant,
    last_decrease: Option<Instant>,
    /// Most attempts in flight at once over about the last window of samples: the window
    /// grows only while at least half of it is used.
    in_flight_peak: usize,
    samples_since_peak: usize,
}

impl Window {
    pub(crate) fn new(now: Instant) -> Window {
        Window {
            limit: WINDOW_INITIAL as f64,
            slow_start: true,
            latency_ewma_s: None,
            baseline_current_s: f64::INFINITY,
            baseline_previous_s: f64::INFINITY,
            baseline_period_started: now,
            last_decrease: None,
            in_flight_peak: 0,
            samples_since_peak: 0,
        }
    }

    /// An attempt started; `in_flight` now run (it included).
    pub(crate) fn started(&mut self, in_flight: usize) {
        self.in_flight_peak = self.in_flight_peak.max(in_flight);
    }

    /// The attempts that may be in flight now, between 1 and `max`.
    pub(crate) fn size(&self, max: usize) -> usize {
        (self.limit as usize).clamp(1, max.max(1))
    }

    /// Takes in one finished attempt; `in_flight` attempts still run.
    pub(crate) fn sample(&mut self, sample: Sample, in_flight: usize, max: usize, now: Instant) {
        let max = max.max(1) as f64;
        let used = self.in_flight_peak as f64 * 2.0 >= self.limit.floor();
        self.samples_since_peak += 1;
        if self.samples_since_peak as f64 >= self.limit {
            self.samples_since_peak = 0;
            self.in_flight_peak = in_flight;
        }
        // Only an attempt started after the last decrease may decrease again.
        let fresh = self.last_decrease.is_none_or(|at| sample.started >= at);
        match sample.signal {
            Signal::Neutral => {}
            Signal::Overload => {
                if fresh {
                    self.decrease(DECREASE_ON_OVERLOAD, now);
                }
            }
            Signal::Success => {
                let latency_s = sample.latency.as_secs_f64();
                if now.duration_since(self.baseline_period_started) >= LATENCY_BASELINE_PERIOD {
                    self.baseline_previous_s = self.baseline_current_s;
                    self.baseline_current_s = f64::INFINITY;
                    self.baseline_period_started = now;
                }
                self.baseline_current_s = self.baseline_current_s.min(latency_s);
                let ewma = match self.latency_ewma_s {
                    Some(ewma) => ewma + LATENCY_EWMA_WEIGHT * (latency_s - ewma),
                    None => latency_s,
                };
                self.latency_ewma_s = Some(ewma);
                let baseline = self.baseline_current_s.min(self.baseline_previous_s);
                let risen =
                    ewma > baseline * LATENCY_RISE_FACTOR + LATENCY_RISE_SLACK.as_secs_f64();
                if risen {
                    if fresh {
                        self.decrease(DECREASE_ON_LATENCY, now);
                    }
                } else if used {
                    self.limit += if self.slow_start {
                        1.0
                    } else {
                        1.0 / self.limit
                    };
                }
            }
        }
        self.limit = self.limit.clamp(1.0, max);
    }

    fn decrease(&mut self, factor: f64, now: Instant) {
        self.limit = (self.limit * factor).max(1.0);
        self.slow_start = false;
        self.last_decrease = Some(now);
    }
}
