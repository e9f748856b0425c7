//! How often a queued or running build is polled: soon after something changed, then less and
//! less often while nothing does (doubling up to a cap), so that a long build costs few
//! requests and a short one is still followed closely.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The current poll delay of every followed build, by the resource's uid, and when its next
/// poll is due. Kept in memory: a restarted operator starts again from the shortest delay,
/// which costs a few polls only.
#[derive(Default)]
pub struct PollIntervals {
    delays: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl PollIntervals {
    /// The delay before the next poll of `key`: `min` when the last poll saw a change,
    /// otherwise twice the previous delay, at most `max`.
    pub fn next(&self, key: &str, changed: bool, min: Duration, max: Duration) -> Duration {
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let delay = match delays.get(key) {
            Some((previous, _)) if !changed => previous.saturating_mul(2).clamp(min, max),
            _ => min.min(max),
        };
        delays.insert(key.to_owned(), (delay, Instant::now() + delay));
        delay
    }

    /// How long until the next poll of `key` is due, when it is not due yet. Every status
    /// write is a watch event that reconciles the build again at once: without this, a build
    /// whose console grows all the time would be polled (and its status written) as fast as
    /// the requests go, not once per delay.
    pub fn not_yet(&self, key: &str) -> Option<Duration> {
        let delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let (_, due) = delays.get(key)?;
        due.checked_duration_since(Instant::now())
            .filter(|wait| !wait.is_zero())
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

    #[test]
    fn a_poll_is_not_due_before_its_delay() {
        let polls = PollIntervals::default();
        assert_eq!(polls.not_yet("b"), None, "a build never polled is due");
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(120));
        polls.next("b", true, min, max);
        let wait = polls.not_yet("b").expect("not due yet");
        assert!(wait > Duration::from_secs(59) && wait <= min, "{wait:?}");
        polls.next("c", true, Duration::ZERO, Duration::ZERO);
        assert_eq!(polls.not_yet("c"), None);
    }
}
