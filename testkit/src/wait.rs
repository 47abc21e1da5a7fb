//! Waiting for what a test can observe (a counter, an answer, a hit on a
//! stand-in) with a deadline, instead of sleeping a fixed time: fast when
//! the machine is fast, patient when it is loaded, and a clear failure when
//! the condition never comes.

use std::time::{Duration, Instant};

/// How often a condition is checked.
pub const POLL: Duration = Duration::from_millis(50);

/// Checks `condition` every [`POLL`] until it holds or `patience` has
/// passed; how long it took, or `None`.
pub fn within(patience: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= patience {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_once_later_or_never() {
        assert!(within(Duration::ZERO, || true).is_some());
        let mut calls = 0;
        assert!(within(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        })
        .is_some());
        assert_eq!(calls, 3);
        assert_eq!(within(Duration::from_millis(120), || false), None);
    }
}
