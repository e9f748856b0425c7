//! An in-process Kubernetes API server for jenkins-operator's tests.
//!
//! [`Emulator::start`] serves the real wire protocol (plain HTTP/1.1 on `127.0.0.1`, random
//! port) so that `kube::Client`, kube-runtime's watchers and controllers, and `kubectl` (through
//! [`Emulator::kubeconfig_yaml`]) talk to it as to a cluster. The state lives in memory.
//!
//! # What is emulated
//! - Kinds: core/v1 namespaces, configmaps, secrets, serviceaccounts, services,
//!   persistentvolumeclaims, pods, events; events.k8s.io/v1 events; apps/v1 deployments;
//!   networking.k8s.io/v1 ingresses; rbac.authorization.k8s.io/v1 roles, rolebindings,
//!   clusterroles, clusterrolebindings;
//!   coordination.k8s.io/v1 leases; apiextensions.k8s.io/v1 customresourcedefinitions. A CRD
//!   that is created (or applied) registers its kind at once and is marked NamesAccepted and
//!   Established. Discovery (`/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`) and
//!   `/version` list what is registered.
//! - get, list (label selectors with `=`, `==`, `!=`, `in`, `notin`, exists, `!`; field selectors
//!   on `metadata.name`/`metadata.namespace` and a few per-kind fields; `limit`/`continue` paging),
//!   watch (ADDED/MODIFIED/DELETED, selectors turning modifications into ADDED/DELETED, BOOKMARK
//!   events with `allowWatchBookmarks`, streaming lists with `sendInitialEvents`, a `410 Expired`
//!   ERROR event for a resourceVersion older than the retained history, `timeoutSeconds`).
//! - create (`generateName`, 409 AlreadyExists, 404 for a missing namespace, 403 in a terminating
//!   one), replace with optimistic concurrency, JSON merge patch, JSON patch (a failed `test` is
//!   422), server-side apply with managedFields in the `fieldsV1` format, conflicts (409 listing
//!   the fields) unless `force=true`, removal of fields a manager stops applying; `dryRun=All`.
//! - Server metadata: uid, creationTimestamp, a global resourceVersion counter, generation bumped
//!   on changes outside metadata and status; the status subresource; writes that change nothing
//!   do not bump the resourceVersion nor emit an event.
//! - Server defaults of Deployments, pod templates, containers, probes, Services (with a cluster
//!   IP kept across updates), PVCs, Secrets (`stringData` folded into base64 `data`) and
//!   Namespaces (see `defaults.rs`).
//! - Validation of built-in kinds where controllers most often go wrong: label keys and values on
//!   every object, object names (DNS subdomains; DNS labels for Services and Namespaces),
//!   Deployment selector/template labels/containers, Ingress hosts, path types and class,
//!   immutable fields (Deployment selector, Service clusterIP, PVC spec, immutable ConfigMaps
//!   and Secrets).
//! - Finalizers and deletionTimestamp; garbage collection by ownerReference uid with Background,
//!   Foreground and Orphan propagation; namespace termination.
//! - Custom resources are pruned, defaulted and validated against the CRD's `openAPIV3Schema`
//!   (type, required, enum, pattern, lengths, bounds, item counts, int-or-string,
//!   preserve-unknown-fields, nullable, list-type map/set uniqueness, allOf/anyOf/oneOf/not), with
//!   422 `Invalid` Status bodies naming the fields.
//! - CEL rules (`x-kubernetes-validations`), with the [kube-cel](https://docs.rs/kube-cel) crate
//!   (Kubernetes' CEL libraries on the `cel` crate). Writing a CRD compiles every rule of every
//!   version; one that does not compile refuses the CRD with 422 at
//!   `spec.versions[i].schema.openAPIV3Schema.properties[...].x-kubernetes-validations[j].rule`.
//!   Compiling is parsing plus the schema-driven part of the server's type check: variables are
//!   `self`, `oldSelf` or a macro's own; a field selected from a schema object must be one of its
//!   properties under its escaped name (`__namespace__` for `namespace`, `x__dash__y` for
//!   `x-y`); a scalar has no fields; the root's `metadata` has only `name` and `generateName`;
//!   `oldSelf` is refused under items of lists that are not `x-kubernetes-list-type: map`. Every
//!   create, update, patch, apply and status write of a custom resource evaluates the rules on
//!   the pruned, defaulted object: `self` is the node's value, `oldSelf` the stored value at the
//!   same path; a rule using `oldSelf` is skipped when there is no old value (a create, a new
//!   field) unless `optionalOldSelf`; a null value runs no rule. A failure is a cause
//!   `{field, message: "Invalid value: \"<type>\": <message or failed rule: <rule>>", reason}`
//!   (`<nil>` for root rules; `reason`/`fieldPath` of the rule honoured), listed after the
//!   schema's causes; a schema error of a blocking kind (type, required, enum, too long, too
//!   many) skips the rules with the server's "some validation rules were not checked" cause.
//! - A Deployment controller reduced to "all replicas become ready" (togglable).
//! - A request log and fault injection ([`Fault`]).
//!
//! # Deliberate simplifications
//! - Lists always serve the latest state: `resourceVersion`/`resourceVersionMatch` on a list are
//!   accepted and ignored; `continue` tokens are offsets into the current state.
//! - One stored version per kind: other served versions of a CRD are the same object with a
//!   different `apiVersion` (no conversion webhooks).
//! - `format` is not checked.
//! - CEL, compared with a real server: the type check covers fields and variables only (a rule
//!   comparing a string with an int compiles here and fails when evaluated); the cost of a rule
//!   is not estimated nor metered (no per-rule, per-CRD or per-request budget; see
//!   [`cel_cost_warnings`] for kube-cel's coarse heuristic, which is not the server's model);
//!   `oldSelf` in items of a keyed list is the old item at the same index, not the one with the
//!   same keys; no validation ratcheting (an unchanged invalid value is refused again); kube-cel
//!   escapes `_` in property names as `__` (the server keeps `a_b` as `a_b`), so a rule reading
//!   a property with `_` in its name compiles here but fails when evaluated.
//! - Strategic merge patch is a merge patch where the built-in keyed lists (containers, env,
//!   ports, volumes, volumeMounts, conditions, ownerReferences...) merge by key; `$patch: delete`
//!   is honoured, other directives ignored. Custom resources reject it with 415, as the real
//!   server does.
//! - Server-side apply: keyed lists of built-in kinds are those above; in custom resources only
//!   `x-kubernetes-list-type: map` lists are keyed (so embedded k8s-openapi lists are atomic, as
//!   on a real cluster). Set lists (`listType=set`, including `metadata.finalizers`) are atomic.
//!   Apply does not default the applied configuration before comparing values.
//! - Garbage collection and namespace termination run synchronously inside the request that
//!   triggers them; a dependent whose owner uid does not exist is collected at once.
//! - Built-in kinds are not validated beyond the rules above (no OpenAPI schema for them, so
//!   unknown fields are kept, not pruned). `fieldValidation` is ignored.
//! - No authentication, authorization, admission webhooks, `/openapi/v2|v3`, protobuf, or Table
//!   output. Pods never run; only Deployments get a status from an emulated controller.
//! - A `stringData` key that a manager stops applying leaves its `data` key behind.
//! - Watch bookmarks are sent every [`Emulator::set_bookmark_interval`] (1 s by default) and
//!   when a watch times out.

mod apply;
mod builtin_validation;
mod cel_rules;
mod clock;
mod defaults;
mod faults;
mod gc;
mod kinds;
mod patch;
mod request_log;
mod selectors;
mod server;
mod status;
mod store;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use cel_rules::cost_warnings as cel_cost_warnings;
pub use faults::{Fault, Verb};
pub use request_log::RequestRecord;

use server::{Shared, lock};

/// A running emulator. Clones share the server; it stops when the last clone is dropped (or at
/// [`Emulator::shutdown`]).
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    address: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Emulator {
    /// Starts a server on `127.0.0.1` with a random port. Needs a Tokio runtime (and so does
    /// [`Emulator::client`]).
    pub async fn start() -> Emulator {
        // Binding an ephemeral loopback port only fails when the machine is out of ports.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("failed to bind 127.0.0.1:0 for the kube emulator");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared::new(address.to_string()));

        let server = {
            let router = server::router(shared.clone());
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router).await {
                    tracing::error!(%error, "kube emulator server stopped");
                }
            })
        };
        let controllers = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    shared.controllers.notified().await;
                    shared.lock_store().make_deployments_ready();
                }
            })
        };
        Emulator {
            inner: Arc::new(Inner {
                shared,
                address,
                tasks: vec![server, controllers],
            }),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.address)
    }

    /// A client for this server, with `default` as its default namespace.
    pub fn client(&self) -> kube::Client {
        // The URL is built from a socket address, so it always parses.
        let uri: http::Uri = self.url().parse().expect("the emulator URL is a valid URI");
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).expect("a plain-HTTP kube client can always be built")
    }

    /// A kubeconfig file body pointing at this server (for `kubectl` or a subprocess).
    pub fn kubeconfig_yaml(&self) -> String {
        let server = self.url();
        [
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            "- name: kube-emulator",
            "  cluster:",
            &format!("    server: {server}"),
            "contexts:",
            "- name: kube-emulator",
            "  context:",
            "    cluster: kube-emulator",
            "    user: kube-emulator",
            "    namespace: default",
            "current-context: kube-emulator",
            "users:",
            "- name: kube-emulator",
            "  user: {}",
            "preferences: {}",
            "",
        ]
        .join("\n")
    }

    /// Every request handled so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.shared.requests).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.inner.shared.requests).clear();
    }

    /// Injects a fault; see [`Fault`].
    pub fn inject(&self, fault: Fault) {
        if let Fault::DropWatches = fault {
            self.inner.shared.drop_watches.send_modify(|n| *n += 1);
            return;
        }
        lock(&self.inner.shared.faults).add(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        *lock(&self.inner.shared.faults) = Default::default();
    }

    /// Whether Deployments get a ready status after each spec change (default: true).
    pub fn set_deployments_become_ready(&self, ready: bool) {
        self.inner.shared.lock_store().deployments_become_ready = ready;
        self.inner.shared.controllers.notify_one();
    }

    /// How many change events the watch history keeps (default 10 000); watches from an older
    /// resourceVersion get `410 Gone`.
    pub fn set_watch_history_limit(&self, limit: usize) {
        self.inner.shared.lock_store().set_history_limit(limit);
    }

    /// How often open watches that asked for bookmarks get one (default 1 s).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.inner.shared.bookmark_interval) = interval.max(Duration::from_millis(10));
    }

    /// The current (latest) resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.inner.shared.lock_store().resource_version
    }

    /// Stops the server and closes open watches.
    pub async fn shutdown(self) {
        self.inner.shared.drop_watches.send_modify(|n| *n += 1);
        for task in &self.inner.tasks {
            task.abort();
        }
    }
}
