//! The request log tests read to assert what a client did.

use crate::faults::Verb;

/// One handled request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    pub verb: Verb,
    /// API group (`""` for core); `None` for discovery.
    pub group: Option<String>,
    /// Plural resource name; `None` for discovery.
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The `fieldManager` query parameter, when sent.
    pub field_manager: Option<String>,
    pub content_type: Option<String>,
    /// The HTTP status code of the answer (200 for a watch that started streaming).
    pub status: u16,
}

impl RequestRecord {
    /// Whether the request could have changed state (create, update, patch, delete).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }
}
