//! Fault injection for tests: panics at named points, armed by the environment variable
//! `CLOCKEYE_FAULTS` (`point=count,…`, e.g. `worker_after_attempt=1`: the next one time that
//! point is reached, it panics). Compiled only with the `fault-injection` cargo feature, which
//! the tests turn on (Cargo.toml's dev-dependency on this package); a release build has no
//! such code and ignores the variable.

/// Panics if `point` is armed and `when()` holds, once per count given in `CLOCKEYE_FAULTS`.
#[cfg(feature = "fault-injection")]
pub(crate) fn panic_if_armed(point: &str, when: impl FnOnce() -> bool) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static ARMED: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    if !when() {
        return;
    }
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var("CLOCKEYE_FAULTS").unwrap_or_default();
        let points = spec
            .split(',')
            .filter_map(|item| item.split_once('='))
            .filter_map(|(name, count)| Some((name.trim().to_string(), count.trim().parse().ok()?)))
            .collect();
        Mutex::new(points)
    });
    let fire = {
        let mut armed = armed.lock().unwrap_or_else(|e| e.into_inner());
        match armed.get_mut(point) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    };
    if fire {
        panic!("fault injected at {point}");
    }
}

/// Without the `fault-injection` feature: nothing, and inlined away.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn panic_if_armed(_point: &str, _when: impl FnOnce() -> bool) {}
