//! How often a queued or running build is polled: soon after something changed, then less and
//! less often while nothing does (doubling up to a cap), so that a long build costs few
//! requests and a short one is still followed closely.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The current poll delay of every followed build, by the resource's uid. Kept in memory: a
/// restarted operator starts again from the shortest delay, which costs a few polls only.
#[derive(Default)]
pub struct PollIntervals {
    delays: Mutex<HashMap<String, Duration>>,
}

impl PollIntervals {
    /// The delay before the next poll of `key`: `min` when the last poll saw a change,
    /// otherwise twice the previous delay, at most `max`.
    pub fn next(&self, key: &str, changed: bool, min: Duration, max: Duration) -> Duration {
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let delay = match delays.get(key) {
            Some(previous) if !changed => previous.saturating_mul(2).clamp(min, max),
            _ => min.min(max),
        };
        delays.insert(key.to_owned(), delay);
        delay
    }

    /// Forgets a build that is no longer followed.
    pub fn forget(&self, key: &str) {
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        delays.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_while_nothing_changes_and_start_over_on_a_change() {
        let polls = PollIntervals::default();
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(30));
        let mut seen = Vec::new();
        for changed in [true, false, false, false, false, false, false, true, false] {
            seen.push(polls.next("b", changed, min, max).as_secs());
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 30, 30, 1, 2]);
        polls.forget("b");
        assert_eq!(polls.next("b", false, min, max).as_secs(), 1);
    }
}
