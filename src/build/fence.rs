//! The trigger fence: when a replica may trigger again a build whose trigger answer was lost.
//!
//! A trigger is announced before it is sent: the status records the marker (`buildId`) and a new
//! `triggerAttempt` number with a compare-and-swap, then the request goes to Jenkins. A
//! reconcile that finds the marker without a queue id looks for the build in Jenkins; finding
//! nothing proves nothing while a trigger of that attempt may still be on its way: the replica
//! that announced it may still be sending it (two replicas overlap during a leader-lease
//! hand-over; a replica that lost the lease has not always noticed yet), or Jenkins may have
//! received it and not queued it yet. A second trigger then queues a second build.
//!
//! So a replica triggers again only once no trigger of the attempt it sees can still land:
//!
//! - the sender keeps to a deadline: it sends nothing later than `trigger_deadline` after the
//!   moment it began announcing the attempt (before the marker write), and gives up what is
//!   still in flight then;
//! - any replica waits, from the moment it first sees an attempt it cannot account for (another
//!   replica's, or its own from before a restart), `trigger_deadline` plus `trigger_settle` (the
//!   time a request Jenkins has received may take to reach its queue) before it looks for the
//!   build one last time and triggers again. Times are measured on this replica's monotonic
//!   clock only: the attempt was written before this replica could see it, so the sender's
//!   deadline has passed by then whatever the two replicas' clocks say;
//! - the replica that sent the attempt knows more: an attempt that got an answer from Jenkins,
//!   or that sent nothing, leaves nothing on its way (it looks and triggers again at once, which
//!   keeps a single replica's retries as quick as before); one that got no answer (a timeout, a
//!   broken connection, the deadline) waits `trigger_settle` after it ended;
//! - triggering again is a new announced attempt, written with a compare-and-swap on the
//!   resource version: of two replicas whose fences expired together, one wins, and the other
//!   sees an attempt it did not send and waits again.
//!
//! The look that decides is one that started after the fence expired. What remains is a replica
//! paused (a frozen process, a stalled node) between its deadline check and the write of its
//! request for longer than `trigger_settle`: no time-based fence closes that, and Jenkins offers
//! no conditional trigger. Jenkins itself merges a trigger whose parameters (the build id among
//! them) match an item still in the queue, so even then a second build needs the first to have
//! left the queue already.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What this replica knows of the trigger attempts of the builds it recovers, by the
/// resource's uid. Kept in memory: a restarted replica knows nothing and waits the full fence.
#[derive(Default)]
pub struct TriggerFences {
    seen: Mutex<HashMap<String, Seen>>,
}

/// One attempt of one build, as this replica knows it.
struct Seen {
    attempt: i64,
    /// When this replica first saw the attempt (or began announcing it).
    since: Instant,
    /// Set when this replica announced the attempt.
    own: Option<Own>,
}

/// An attempt this replica announced.
#[derive(Clone, Copy)]
enum Own {
    /// Being sent, or given up without a word (the reconcile was dropped when the lease was
    /// lost): nothing is sent after `deadline`.
    Sending { deadline: Instant },
    /// The attempt ended at `at`.
    Ended { at: Instant, sent: Sent },
}

/// How an attempt this replica announced ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// No trigger request was sent.
    Nothing,
    /// Jenkins answered the trigger request: whatever it queued is in its queue now.
    Answered,
    /// A trigger request was sent and no answer came (a timeout, a broken connection, the
    /// deadline): Jenkins may still act on it.
    Unanswered,
}

/// The two times the fence is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceTimes {
    /// How long after announcing an attempt its trigger may still be sent.
    pub deadline: Duration,
    /// How long a trigger request Jenkins has received may take to reach its queue.
    pub settle: Duration,
}

impl TriggerFences {
    /// Records that this replica announced `attempt` of build `id`, beginning at `began` (taken
    /// before the write that announces it), and sends nothing for it after `deadline`. Call it
    /// once that write succeeded: an attempt another replica won is not this one's.
    pub fn announce(&self, id: &str, attempt: i64, began: Instant, deadline: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(
            id.to_owned(),
            Seen {
                attempt,
                since: began,
                own: Some(Own::Sending { deadline }),
            },
        );
    }

    /// Records how this replica's `attempt` of build `id` ended.
    pub fn ended(&self, id: &str, attempt: i64, sent: Sent) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = seen.get_mut(id)
            && entry.attempt == attempt
            && entry.own.is_some()
        {
            entry.own = Some(Own::Ended {
                at: Instant::now(),
                sent,
            });
        }
    }

    /// How long to wait before a look that finds nothing in Jenkins may lead to triggering
    /// build `id` again, when its status shows `attempt`; `None` when a look now decides. The
    /// first call for an attempt this replica did not announce starts its wait.
    pub fn wait(&self, id: &str, attempt: i64, times: FenceTimes) -> Option<Duration> {
        self.wait_at(id, attempt, times, Instant::now())
    }

    fn wait_at(&self, id: &str, attempt: i64, times: FenceTimes, now: Instant) -> Option<Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen
            .entry(id.to_owned())
            .and_modify(|entry| {
                if entry.attempt != attempt {
                    *entry = Seen {
                        attempt,
                        since: now,
                        own: None,
                    };
                }
            })
            .or_insert(Seen {
                attempt,
                since: now,
                own: None,
            });
        let until = match entry.own {
            Some(Own::Ended {
                sent: Sent::Nothing | Sent::Answered,
                ..
            }) => return None,
            Some(Own::Ended {
                at,
                sent: Sent::Unanswered,
            }) => at + times.settle,
            Some(Own::Sending { deadline }) => deadline + times.settle,
            None => entry.since + times.deadline + times.settle,
        };
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Forgets a build whose trigger no longer needs recovering.
    pub fn forget(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: FenceTimes = FenceTimes {
        deadline: Duration::from_secs(60),
        settle: Duration::from_secs(30),
    };

    #[test]
    fn another_replicas_attempt_is_fenced_from_when_it_was_first_seen() {
        let fences = TriggerFences::default();
        let t0 = Instant::now();
        assert_eq!(
            fences.wait_at("b", 1, TIMES, t0),
            Some(Duration::from_secs(90))
        );
        // Looking again does not restart the wait.
        let later = t0 + Duration::from_secs(80);
        assert_eq!(
            fences.wait_at("b", 1, TIMES, later),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            fences.wait_at("b", 1, TIMES, t0 + Duration::from_secs(90)),
            None
        );
        // A new attempt (another replica triggered again) is fenced afresh.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(
            fences.wait_at("b", 2, TIMES, t1),
            Some(Duration::from_secs(90))
        );
        // Builds are fenced apart.
        assert_eq!(
            fences.wait_at("c", 1, TIMES, t1),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn an_own_attempt_waits_only_as_long_as_its_request_may_still_land() {
        let fences = TriggerFences::default();
        let now = Instant::now();
        fences.announce("answered", 3, now, now + TIMES.deadline);
        fences.ended("answered", 3, Sent::Answered);
        assert_eq!(fences.wait_at("answered", 3, TIMES, Instant::now()), None);

        fences.announce("silent", 1, now, now + TIMES.deadline);
        fences.ended("silent", 1, Sent::Nothing);
        assert_eq!(fences.wait_at("silent", 1, TIMES, Instant::now()), None);

        fences.announce("lost", 1, now, now + TIMES.deadline);
        fences.ended("lost", 1, Sent::Unanswered);
        let wait = fences.wait_at("lost", 1, TIMES, Instant::now());
        assert!(wait.is_some_and(|w| w <= TIMES.settle && w > TIMES.settle / 2));

        // A reconcile dropped mid-send (the lease was lost) leaves the attempt sending: it is
        // fenced until its deadline has passed and the request has had time to land.
        fences.announce("dropped", 1, now, now + TIMES.deadline);
        assert_eq!(
            fences.wait_at("dropped", 1, TIMES, now),
            Some(TIMES.deadline + TIMES.settle)
        );
    }

    #[test]
    fn an_ending_reported_for_another_attempt_changes_nothing() {
        let fences = TriggerFences::default();
        let now = Instant::now();
        fences.announce("b", 2, now, now + TIMES.deadline);
        fences.ended("b", 1, Sent::Answered);
        assert_eq!(
            fences.wait_at("b", 2, TIMES, now),
            Some(TIMES.deadline + TIMES.settle)
        );
        // Another replica's attempt 3 replaced ours: ours no longer counts.
        assert_eq!(
            fences.wait_at("b", 3, TIMES, now),
            Some(TIMES.deadline + TIMES.settle)
        );
        fences.ended("b", 3, Sent::Answered);
        assert_eq!(
            fences.wait_at("b", 3, TIMES, now),
            Some(TIMES.deadline + TIMES.settle),
            "not ours to end"
        );
        fences.forget("b");
        assert_eq!(
            fences.wait_at("b", 3, TIMES, now + Duration::from_secs(1)),
            Some(TIMES.deadline + TIMES.settle)
        );
    }
}
