//! Two replicas and one Lease: one reconciles, the other waits and takes over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube_emulator::{RequestRecord, Verb};

use crate::operator::{Backend, Launch, Operator, eventually, identity_of};

/// The replica whose gauge says it leads, once the Lease and both gauges agree.
async fn agreed_leader(backend: &Backend, replicas: &[&Operator]) -> String {
    eventually(
        "the Lease and the leader gauges to agree on one leader",
        || async {
            let holder = backend.lease_holder().await?;
            let mut leaders = Vec::new();
            for replica in replicas {
                let gauge = replica.leader_gauge().await?;
                if gauge == 1.0 {
                    leaders.push(replica.identity.clone());
                } else if gauge != 0.0 {
                    return None;
                }
            }
            (leaders == [holder.clone()]).then_some(holder)
        },
    )
    .await
}

/// Requests of one replica.
fn requests_of<'a>(requests: &'a [RequestRecord], identity: &str) -> Vec<&'a RequestRecord> {
    requests
        .iter()
        .filter(|r| identity_of(r) == identity)
        .collect()
}

fn is_lease(request: &RequestRecord) -> bool {
    request.group.as_deref() == Some("coordination.k8s.io")
}

/// What a standby may do: read the CRDs at startup and compete for the Lease. Nothing else.
fn assert_only_competes_for_the_lease(requests: &[&RequestRecord], identity: &str) {
    let other: Vec<String> = requests
        .iter()
        .filter(|r| !is_lease(r))
        .filter(|r| {
            !(r.resource.as_deref() == Some("customresourcedefinitions") && r.verb == Verb::Get)
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        other.is_empty(),
        "the standby {identity} made requests beyond the Lease: {other:?}"
    );
}

/// Objects (other than the Lease and Events, which every replica writes by design) mapped to
/// the replicas that wrote them.
fn writers(requests: &[RequestRecord]) -> BTreeMap<String, BTreeSet<String>> {
    let mut writers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in requests.iter().filter(|r| r.is_write() && r.status < 400) {
        if is_lease(request) || request.resource.as_deref() == Some("events") {
            continue;
        }
        let key = format!(
            "{}/{} {}/{}",
            request.group.as_deref().unwrap_or_default(),
            request.resource.as_deref().unwrap_or_default(),
            request.namespace.as_deref().unwrap_or_default(),
            request.name.as_deref().unwrap_or("<new>"),
        );
        writers
            .entry(key)
            .or_default()
            .insert(identity_of(request).to_owned());
    }
    writers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_reconciles_and_the_other_takes_over_when_it_dies() {
    let backend = Backend::start().await;
    let mut a = Operator::start(&backend, Launch::new("op-a"));
    let mut b = Operator::start(&backend, Launch::new("op-b"));

    // One leader: the Lease names it and only its gauge says 1.
    let first = agreed_leader(&backend, &[&a, &b]).await;
    let (leader, standby) = if first == a.identity {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // Only the leader reconciles.
    backend
        .create(&backend.example("cluster-minimal.yaml", "first"))
        .await;
    backend.wait_ready("first").await;
    let requests = backend.operator_requests();
    let status_patches = |identity: &str| {
        requests_of(&requests, identity)
            .iter()
            .filter(|r| {
                r.resource.as_deref() == Some("jenkinsclusters")
                    && r.subresource.as_deref() == Some("status")
                    && r.verb == Verb::Patch
            })
            .count()
    };
    assert!(status_patches(&leader.identity) >= 1);
    assert_eq!(status_patches(&standby.identity), 0);
    assert_only_competes_for_the_lease(
        &requests_of(&requests, &standby.identity),
        &standby.identity,
    );

    // The replicas write the Lease as different field managers: taking a free Lease is a
    // server-side apply, and only a conflict between managers keeps two racers from both
    // winning.
    let managers = |identity: &str| -> BTreeSet<String> {
        requests_of(&requests, identity)
            .iter()
            .filter(|r| is_lease(r) && r.is_write())
            .filter_map(|r| r.field_manager.clone())
            .collect()
    };
    let (leader_managers, standby_managers) =
        (managers(&leader.identity), managers(&standby.identity));
    assert!(!leader_managers.is_empty());
    assert!(
        leader_managers.is_disjoint(&standby_managers),
        "{leader_managers:?} vs {standby_managers:?}"
    );

    // The leader dies without a word; the standby takes over once the Lease expires.
    let transitions = |lease: Option<k8s_openapi::api::coordination::v1::Lease>| {
        lease
            .and_then(|l| l.spec)
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
    };
    let before = transitions(backend.lease().await);
    leader.kill().await;
    let survivor = agreed_leader(&backend, &[&*standby]).await;
    assert_eq!(survivor, standby.identity);
    assert_eq!(transitions(backend.lease().await), before + 1);

    // The new leader converges a new cluster, and finds the old one converged.
    backend
        .create(&backend.example("cluster-minimal.yaml", "second"))
        .await;
    backend.wait_ready("second").await;
    let first_ready = backend.wait_ready("first").await;
    assert_eq!(
        first_ready.status.and_then(|s| s.observed_generation),
        first_ready.metadata.generation
    );
    let deployments: Api<Deployment> = Api::namespaced(backend.client.clone(), "second");
    let names: Vec<String> = deployments
        .list(&Default::default())
        .await
        .expect("list Deployments")
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(names, ["second"]);

    // No object was written by both replicas, and the Lease changed hands exactly once.
    let requests = backend.operator_requests();
    let shared: Vec<_> = writers(&requests)
        .into_iter()
        .filter(|(_, who)| who.len() > 1)
        .collect();
    assert!(
        shared.is_empty(),
        "objects written by both replicas: {shared:?}"
    );
    assert!(
        requests_of(&requests, &standby.identity)
            .iter()
            .any(|r| r.name.as_deref() == Some("second") && r.is_write())
    );
    assert_eq!(transitions(backend.lease().await), before + 1);

    // SIGTERM: the leader lets the Lease go and exits cleanly.
    standby.terminate();
    let status = standby.wait_exit(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "exit {status:?}; logs:\n{}",
        standby.logs()
    );
    assert_eq!(backend.lease_holder().await, None);
}
