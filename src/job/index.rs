//! Which JenkinsJobs produce which Jenkins job names, per cluster, so that a reconcile finds
//! the resources that compete for its names without walking every JenkinsJob.
//!
//! The controller's watch tells the index which resources changed ([`NameIndex::observe`]);
//! a reconcile brings the entries of its cluster up to date ([`NameIndex::claimants`]) by
//! planning only those, and then looks its own names up. A change of the cluster's spec
//! (environments, branches), or a cluster created again under its name, plans all of that
//! cluster's resources again, once. A relist of the watch drops the entries of resources that
//! disappeared while the watch was down, and plans the others again once the controller's store
//! holds what the relist showed.
//!
//! Names are compared as Jenkins does, without regard to case.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::plan::plan;
use crate::api::{JenkinsCluster, JenkinsJob};

/// `namespace/name` of a JenkinsJob.
type Key = String;

/// See the module documentation.
#[derive(Default)]
pub struct NameIndex(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    /// Resources changed since they were last planned, by the cluster they target.
    dirty: HashMap<String, HashSet<Key>>,
    /// What each planned resource produces.
    entries: HashMap<Key, Entry>,
    /// Lowercase full name -> the resources producing it, per cluster.
    by_name: HashMap<(String, String), BTreeSet<Key>>,
    /// The cluster (uid and generation) the entries of each cluster name were planned for.
    planned_at: HashMap<String, Planned>,
    /// Resources seen during a relist that has not finished, with the cluster each targets.
    relisting: Option<HashMap<Key, String>>,
}

/// Which cluster of a name, at which generation: a cluster deleted and created again under its
/// name starts again at generation 1, with a new uid and possibly other environments.
type Planned = (Option<String>, Option<i64>);

struct Entry {
    cluster: String,
    /// Lowercase full names.
    names: Vec<String>,
}

fn key_of(job: &JenkinsJob) -> Key {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

impl Inner {
    fn unlink(&mut self, key: &str) {
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        for name in entry.names {
            let slot = (entry.cluster.clone(), name);
            if let Some(keys) = self.by_name.get_mut(&slot) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_name.remove(&slot);
                }
            }
        }
    }

    fn changed(&mut self, job: &JenkinsJob) {
        let key = key_of(job);
        let cluster = &job.spec.cluster;
        // A resource that moved to another cluster leaves its old one at once.
        if self
            .entries
            .get(&key)
            .is_some_and(|e| &e.cluster != cluster)
        {
            self.unlink(&key);
        }
        self.dirty.entry(cluster.clone()).or_default().insert(key);
    }

    fn removed(&mut self, job: &JenkinsJob) {
        let key = key_of(job);
        self.unlink(&key);
        if let Some(keys) = self.dirty.get_mut(&job.spec.cluster) {
            keys.remove(&key);
        }
    }

    /// After a relist, once the controller's store holds what it showed: forget whatever the
    /// relist did not show, and plan again what it showed. The marks wait until now because
    /// until the relist is done the store still holds the objects from before it, and a
    /// reconcile planning from it meanwhile would settle the relisted resources with their old
    /// specs (or, for one that moved to this cluster, skip it as not yet moved).
    fn relisted(&mut self, seen: HashMap<Key, String>) {
        let gone: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.unlink(&key);
        }
        for keys in self.dirty.values_mut() {
            keys.retain(|k| seen.contains_key(k));
        }
        for (key, cluster) in seen {
            // A resource that moved to another cluster leaves its old one at once.
            if self.entries.get(&key).is_some_and(|e| e.cluster != cluster) {
                self.unlink(&key);
            }
            self.dirty.entry(cluster).or_default().insert(key);
        }
    }

    /// Plans the changed resources of `cluster` (all of them when its spec changed).
    fn refresh(&mut self, jobs: &Store<JenkinsJob>, cluster: &JenkinsCluster) {
        let name = cluster.name_any();
        let planned = (cluster.metadata.uid.clone(), cluster.metadata.generation);
        if self.planned_at.get(&name) != Some(&planned) {
            let stale: Vec<Key> = self
                .entries
                .iter()
                .filter(|(_, e)| e.cluster == name)
                .map(|(k, _)| k.clone())
                .collect();
            self.dirty.entry(name.clone()).or_default().extend(stale);
            self.planned_at.insert(name.clone(), planned);
        }
        let Some(dirty) = self.dirty.remove(&name) else {
            return;
        };
        for key in dirty {
            self.unlink(&key);
            let Some((namespace, job_name)) = key.split_once('/') else {
                continue;
            };
            let Some(job) = jobs.get(&ObjectRef::new(job_name).within(namespace)) else {
                continue;
            };
            if job.spec.cluster != name {
                // Moved meanwhile: the watch marked it for its new cluster.
                continue;
            }
            if job.meta().deletion_timestamp.is_some() {
                // A resource on its way out claims nothing.
                continue;
            }
            let names: Vec<String> = match plan(&job, cluster) {
                Ok(plan) => plan
                    .jobs
                    .into_iter()
                    .map(|j| j.full_name.to_lowercase())
                    .collect(),
                // An invalid resource produces nothing.
                Err(_) => Vec::new(),
            };
            for full_name in &names {
                self.by_name
                    .entry((name.clone(), full_name.clone()))
                    .or_default()
                    .insert(key.clone());
            }
            self.entries.insert(
                key,
                Entry {
                    cluster: name.clone(),
                    names,
                },
            );
        }
    }
}

impl NameIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes note of a watch event (after the controller's store has applied it).
    pub fn observe(&self, event: &watcher::Event<JenkinsJob>) {
        let mut inner = self.lock();
        match event {
            watcher::Event::Apply(job) => inner.changed(job),
            watcher::Event::Delete(job) => inner.removed(job),
            watcher::Event::Init => inner.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(job) => match &mut inner.relisting {
                Some(seen) => {
                    seen.insert(key_of(job), job.spec.cluster.clone());
                }
                None => inner.changed(job),
            },
            watcher::Event::InitDone => {
                if let Some(seen) = inner.relisting.take() {
                    inner.relisted(seen);
                }
            }
        }
    }

    /// The other resources of `jobs` that target `cluster`, are not being deleted and produce
    /// at least one of `full_names` (in any case).
    pub fn claimants(
        &self,
        jobs: &Store<JenkinsJob>,
        cluster: &JenkinsCluster,
        job: &JenkinsJob,
        full_names: &[String],
    ) -> Vec<Arc<JenkinsJob>> {
        let own = key_of(job);
        let keys: BTreeSet<Key> = {
            let mut inner = self.lock();
            inner.refresh(jobs, cluster);
            let cluster_name = cluster.name_any();
            full_names
                .iter()
                .filter_map(|n| inner.by_name.get(&(cluster_name.clone(), n.to_lowercase())))
                .flatten()
                .filter(|k| **k != own)
                .cloned()
                .collect()
        };
        keys.iter()
            .filter_map(|key| {
                let (namespace, name) = key.split_once('/')?;
                jobs.get(&ObjectRef::new(name).within(namespace))
            })
            .filter(|other| {
                other.spec.cluster == job.spec.cluster
                    && other.meta().deletion_timestamp.is_none()
                    && other.uid() != job.uid()
            })
            .collect()
    }

    /// The full names (lowercase) the index holds for `job`, if it has planned it.
    pub fn names_of(&self, job: &JenkinsJob) -> Option<Vec<String>> {
        self.lock()
            .entries
            .get(&key_of(job))
            .map(|e| e.names.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn cluster(generation: i64, environments: &[&str]) -> JenkinsCluster {
        cluster_with_uid("ci-1", generation, environments)
    }

    /// The cluster `ci` as created with `uid` (a cluster deleted and created again under the
    /// same name gets a new uid, and starts again at generation 1).
    fn cluster_with_uid(uid: &str, generation: i64, environments: &[&str]) -> JenkinsCluster {
        let environments: Vec<_> = environments
            .iter()
            .map(|e| json!({"name": e, "namespace": format!("ci-{e}")}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "jenkins.ci/v1alpha1",
            "kind": "JenkinsCluster",
            "metadata": {"name": "ci", "uid": uid, "generation": generation},
            "spec": {"environments": environments},
        }))
        .expect("a JenkinsCluster")
    }

    fn job(namespace: &str, name: &str, cluster: &str, extra: serde_json::Value) -> JenkinsJob {
        let mut spec = json!({
            "cluster": cluster,
            "pipeline": {"script": "pipeline { agent any\n stages { stage('a') { steps {} } } }"},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "jenkins.ci/v1alpha1",
            "kind": "JenkinsJob",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": format!("{namespace}-{name}"),
            },
            "spec": spec,
        }))
        .expect("a JenkinsJob")
    }

    fn in_folder(namespace: &str, name: &str, cluster: &str, folder: &str) -> JenkinsJob {
        job(namespace, name, cluster, json!({"folder": folder}))
    }

    /// A store and an index fed the same events, as the controller's watch feeds them.
    struct Fixture {
        store: Store<JenkinsJob>,
        writer: reflector::store::Writer<JenkinsJob>,
        index: NameIndex,
    }

    impl Fixture {
        fn new() -> Self {
            let (store, writer) = reflector::store();
            Self {
                store,
                writer,
                index: NameIndex::default(),
            }
        }

        fn event(&mut self, event: Event<JenkinsJob>) {
            self.writer.apply_watcher_event(&event);
            self.index.observe(&event);
        }

        /// `namespace/name` of the others that produce one of `job`'s names.
        fn claimants(&self, cluster: &JenkinsCluster, job: &JenkinsJob) -> Vec<String> {
            let names: Vec<String> = plan(job, cluster)
                .expect("a valid job")
                .jobs
                .into_iter()
                .map(|j| j.full_name)
                .collect();
            let mut found: Vec<String> = self
                .index
                .claimants(&self.store, cluster, job, &names)
                .iter()
                .map(|j| key_of(j))
                .collect();
            found.sort();
            found
        }
    }

    #[test]
    fn finds_the_resources_that_produce_the_same_names_in_any_case() {
        let mut f = Fixture::new();
        let ci = cluster(1, &[]);
        let a = in_folder("ci", "build", "ci", "shared");
        let b = in_folder("team", "BUILD", "ci", "Shared");
        let c = in_folder("ci", "other", "ci", "shared");
        let d = in_folder("other", "build", "elsewhere", "shared");
        for j in [&a, &b, &c, &d] {
            f.event(Event::Apply(j.clone()));
        }
        assert_eq!(f.claimants(&ci, &a), vec!["team/BUILD".to_string()]);
        assert_eq!(f.claimants(&ci, &b), vec!["ci/build".to_string()]);
        assert!(f.claimants(&ci, &c).is_empty());
    }

    #[test]
    fn follows_deletions_and_moves_to_other_clusters() {
        let mut f = Fixture::new();
        let ci = cluster(1, &[]);
        let a = in_folder("ci", "build", "ci", "shared");
        let b = in_folder("team", "build", "ci", "shared");
        f.event(Event::Apply(a.clone()));
        assert!(f.claimants(&ci, &a).is_empty());
        f.event(Event::Apply(b.clone()));
        assert_eq!(f.claimants(&ci, &a), vec!["team/build".to_string()]);

        // Being deleted: claims nothing.
        let mut deleting = b.clone();
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        f.event(Event::Apply(deleting));
        assert!(f.claimants(&ci, &a).is_empty());

        // Back, then moved to another cluster.
        f.event(Event::Apply(b.clone()));
        assert_eq!(f.claimants(&ci, &a), vec!["team/build".to_string()]);
        f.event(Event::Apply(in_folder(
            "team",
            "build",
            "elsewhere",
            "shared",
        )));
        assert!(f.claimants(&ci, &a).is_empty());

        // Back, then gone.
        f.event(Event::Apply(b.clone()));
        assert_eq!(f.claimants(&ci, &a), vec!["team/build".to_string()]);
        f.event(Event::Delete(b));
        assert!(f.claimants(&ci, &a).is_empty());
    }

    #[test]
    fn a_relist_forgets_what_disappeared_while_the_watch_was_down() {
        let mut f = Fixture::new();
        let ci = cluster(1, &[]);
        let a = in_folder("ci", "build", "ci", "shared");
        let b = in_folder("team", "build", "ci", "shared");
        f.event(Event::Apply(a.clone()));
        f.event(Event::Apply(b.clone()));
        assert_eq!(f.claimants(&ci, &a), vec!["team/build".to_string()]);

        f.event(Event::Init);
        f.event(Event::InitApply(a.clone()));
        f.event(Event::InitDone);
        assert!(f.claimants(&ci, &a).is_empty());
    }

    #[test]
    fn a_cluster_spec_change_plans_its_resources_again() {
        let mut f = Fixture::new();
        // Invalid while the cluster does not define the environment: produces nothing.
        let a = job("ci", "deploy", "ci", json!({"environments": ["dev"]}));
        let b = job(
            "team",
            "deploy",
            "ci",
            json!({"environments": ["dev"], "folder": "ci"}),
        );
        f.event(Event::Apply(a.clone()));
        f.event(Event::Apply(b.clone()));
        let _ = f.index.claimants(&f.store, &cluster(1, &[]), &b, &[]);
        assert_eq!(f.index.names_of(&a), Some(Vec::new()));

        let with_dev = cluster(2, &["dev"]);
        assert_eq!(f.claimants(&with_dev, &b), vec!["ci/deploy".to_string()]);
        let names = f.index.names_of(&a).expect("planned again");
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_cluster_created_again_under_its_name_plans_its_resources_again() {
        let mut f = Fixture::new();
        let a = job("ci", "deploy", "ci", json!({"environments": ["dev"]}));
        let b = job(
            "team",
            "deploy",
            "ci",
            json!({"environments": ["dev"], "folder": "ci"}),
        );
        f.event(Event::Apply(a.clone()));
        f.event(Event::Apply(b.clone()));
        let _ = f.index.claimants(&f.store, &cluster(1, &[]), &b, &[]);
        assert_eq!(f.index.names_of(&a), Some(Vec::new()));

        // Deleted and created again with the environment: a new uid, generation 1 again.
        let again = cluster_with_uid("ci-2", 1, &["dev"]);
        assert_eq!(f.claimants(&again, &b), vec!["ci/deploy".to_string()]);
    }

    #[test]
    fn a_reconcile_during_a_relist_leaves_what_the_relist_showed_to_be_planned() {
        let mut f = Fixture::new();
        let ci = cluster(1, &[]);
        let a = in_folder("ci", "build", "ci", "shared");
        let b = in_folder("team", "build", "ci", "own");
        f.event(Event::Apply(a.clone()));
        f.event(Event::Apply(b.clone()));
        assert!(f.claimants(&ci, &a).is_empty());

        // While the watch was down, b moved into a's folder. The store shows the relisted
        // objects only once the relist is done; a reconcile before that plans from the store.
        f.event(Event::Init);
        f.event(Event::InitApply(a.clone()));
        f.event(Event::InitApply(in_folder("team", "build", "ci", "shared")));
        assert!(
            f.claimants(&ci, &a).is_empty(),
            "the store is not relisted yet"
        );
        f.event(Event::InitDone);
        assert_eq!(f.claimants(&ci, &a), vec!["team/build".to_string()]);
    }

    #[test]
    fn a_move_to_another_cluster_seen_in_a_relist_is_planned_in_the_new_cluster() {
        let mut f = Fixture::new();
        let ci = cluster(1, &[]);
        let a = in_folder("ci", "build", "ci", "shared");
        let b = in_folder("team", "build", "elsewhere", "shared");
        f.event(Event::Apply(a.clone()));
        f.event(Event::Apply(b.clone()));
        assert!(f.claimants(&ci, &a).is_empty());

        // While the watch was down, b moved to cluster ci; a reconcile of ci runs before the
        // relist is done.
        f.event(Event::Init);
        f.event(Event::InitApply(a.clone()));
        f.event(Event::InitApply(in_folder("team", "build", "ci", "shared")));
        let _ = f.claimants(&ci, &a);
        f.event(Event::InitDone);
        assert_eq!(f.claimants(&ci, &a), vec!["team/build".to_string()]);
    }
}
