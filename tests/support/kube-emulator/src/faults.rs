//! Fault injection: failing requests, latency, and dropped watches.

use std::fmt;
use std::time::Duration;

/// The API verb of a request, as the API server's audit log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// Discovery and `/version`: never subject to faults.
    Discovery,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Discovery => "discovery",
        };
        f.write_str(name)
    }
}

/// A fault to inject; see [`crate::Emulator::inject`].
#[derive(Clone, Debug)]
pub enum Fault {
    /// Fail the next `count` requests of a verb (any when `None`) on a resource (plural; any
    /// when `None`) with `code` and a matching `Status` body.
    FailNext {
        verb: Option<Verb>,
        resource: Option<String>,
        count: u32,
        code: u16,
    },
    /// Delay every request by this much before it is handled.
    Latency(Duration),
    /// Fail `per_mille` out of 1000 matching requests with `code`, chosen by a PRNG seeded
    /// with `seed` (the same seed and request sequence fail the same requests).
    ErrorRate {
        verb: Option<Verb>,
        resource: Option<String>,
        per_mille: u32,
        code: u16,
        seed: u64,
    },
    /// Close every open watch stream now (clients see the stream end and re-watch).
    DropWatches,
}

struct Filter {
    verb: Option<Verb>,
    resource: Option<String>,
}

impl Filter {
    fn matches(&self, verb: Verb, resource: &str) -> bool {
        self.verb.is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

/// The active faults.
#[derive(Default)]
pub(crate) struct Faults {
    fail_next: Vec<(Filter, u32, u16)>,
    rates: Vec<(Filter, u32, u16, u64)>,
    pub latency: Duration,
}

impl Faults {
    /// Adds a fault (all but `DropWatches`, which the server acts on at once).
    pub fn add(&mut self, fault: Fault) {
        match fault {
            Fault::FailNext {
                verb,
                resource,
                count,
                code,
            } => self
                .fail_next
                .push((Filter { verb, resource }, count, code)),
            Fault::Latency(delay) => self.latency = delay,
            Fault::ErrorRate {
                verb,
                resource,
                per_mille,
                code,
                seed,
            } => self.rates.push((
                Filter { verb, resource },
                per_mille.min(1000),
                code,
                seed | 1,
            )),
            Fault::DropWatches => {}
        }
    }

    /// The error code to answer a request with, if a fault hits it.
    pub fn hit(&mut self, verb: Verb, resource: &str) -> Option<u16> {
        if verb == Verb::Discovery {
            return None;
        }
        if let Some(entry) = self
            .fail_next
            .iter_mut()
            .find(|e| e.1 > 0 && e.0.matches(verb, resource))
        {
            entry.1 -= 1;
            return Some(entry.2);
        }
        self.fail_next.retain(|e| e.1 > 0);
        for (filter, per_mille, code, state) in &mut self.rates {
            if filter.matches(verb, resource) {
                // xorshift64: deterministic for a seed and a request sequence.
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                if (*state % 1000) < u64::from(*per_mille) {
                    return Some(*code);
                }
            }
        }
        None
    }
}
