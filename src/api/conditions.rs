//! Status conditions in the kstatus convention that Flux, Argo CD and `kubectl wait` read:
//! `Ready` is True when converged; `Reconciling` and `Stalled` are abnormal-true.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// True when the resource is converged and usable.
pub const READY: &str = "Ready";
/// True while the operator is still working towards the spec (kstatus: in progress).
pub const RECONCILING: &str = "Reconciling";
/// True when the operator cannot progress without a change from the user or the environment.
pub const STALLED: &str = "Stalled";

/// A condition as the operator wants it, before timestamps are decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// Builds the condition list from what the operator wants, keeping the `lastTransitionTime` of
/// every condition whose status did not change, so that an unchanged status serializes to the
/// same bytes and needs no write.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
) -> Vec<Condition> {
    let now = Time(Timestamp::now());
    desired
        .iter()
        .map(|want| {
            let status = if want.status { "True" } else { "False" };
            let previous = current.iter().find(|c| c.type_ == want.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: want.type_.to_owned(),
                status: status.to_owned(),
                reason: want.reason.clone(),
                message: truncate(&want.message, MAX_MESSAGE),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Whether two condition lists say the same thing, ignoring transition times.
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The API server limits condition messages to 32768 bytes; we keep them far shorter.
const MAX_MESSAGE: usize = 1024;

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    // Leave room for the ellipsis (3 bytes) and step back to a character boundary.
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_status_keeps_its_transition_time() {
        let first = merge(&[], &[Desired::new(READY, false, "Creating", "m")], Some(1));
        let old_time = Time(Timestamp::from_second(1).expect("valid timestamp"));
        let mut aged = first.clone();
        aged[0].last_transition_time = old_time.clone();

        let again = merge(
            &aged,
            &[Desired::new(READY, false, "Waiting", "n")],
            Some(2),
        );
        assert_eq!(again[0].last_transition_time, old_time);
        assert_eq!(again[0].reason, "Waiting");

        let flipped = merge(&aged, &[Desired::new(READY, true, "Ready", "ok")], Some(2));
        assert_ne!(flipped[0].last_transition_time, old_time);
    }

    #[test]
    fn same_ignores_transition_times_only() {
        let a = merge(&[], &[Desired::new(READY, true, "Ready", "ok")], Some(1));
        let mut b = a.clone();
        b[0].last_transition_time = Time(Timestamp::from_second(5).expect("valid timestamp"));
        assert!(same(&a, &b));
        b[0].message = "other".into();
        assert!(!same(&a, &b));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(2000);
        let cut = truncate(&text, MAX_MESSAGE);
        assert!(cut.len() <= MAX_MESSAGE);
        assert!(cut.ends_with('…'));
    }
}
