//! The CSRF crumb cache. A crumb is only valid with the session cookie it was issued with; the
//! client's cookie store keeps that cookie, this cache keeps the crumb.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, MutexGuard};

/// A crumb and the header it goes in.
#[derive(Debug, Clone)]
pub(crate) struct Crumb {
    pub field: String,
    pub value: String,
}

pub(crate) enum CrumbState {
    /// Not fetched yet (or invalidated).
    Unknown,
    /// Fetched: `None` when CSRF protection is off (the issuer answered 404).
    Known(Option<Crumb>),
}

impl CrumbState {
    pub fn known(&self) -> Option<Option<Crumb>> {
        match self {
            CrumbState::Unknown => None,
            CrumbState::Known(crumb) => Some(crumb.clone()),
        }
    }

    pub fn set(&mut self, crumb: Option<Crumb>) {
        *self = CrumbState::Known(crumb);
    }
}

pub(crate) struct CrumbCache {
    /// API tokens are exempt from crumbs, until Jenkins says otherwise.
    exempt: AtomicBool,
    state: Mutex<CrumbState>,
}

/// A guard that answers "no crumb needed" without touching the cache.
pub(crate) enum CrumbGuard<'a> {
    Exempt,
    Locked(MutexGuard<'a, CrumbState>),
}

impl CrumbGuard<'_> {
    pub fn known(&self) -> Option<Option<Crumb>> {
        match self {
            CrumbGuard::Exempt => Some(None),
            CrumbGuard::Locked(state) => state.known(),
        }
    }

    pub fn set(&mut self, crumb: Option<Crumb>) {
        if let CrumbGuard::Locked(state) = self {
            state.set(crumb);
        }
    }
}

impl CrumbCache {
    pub fn new(token: bool) -> CrumbCache {
        CrumbCache {
            exempt: AtomicBool::new(token),
            state: Mutex::new(CrumbState::Unknown),
        }
    }

    /// Holds the cache so that concurrent callers fetch one crumb, not one each.
    pub async fn lock(&self) -> CrumbGuard<'_> {
        if self.exempt.load(Ordering::Relaxed) {
            return CrumbGuard::Exempt;
        }
        CrumbGuard::Locked(self.state.lock().await)
    }

    /// Forgets the crumb (and the token exemption): the next POST fetches a fresh one.
    pub async fn invalidate(&self) {
        self.exempt.store(false, Ordering::Relaxed);
        *self.state.lock().await = CrumbState::Unknown;
    }
}
