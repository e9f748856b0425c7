//! Leader election on a `coordination.k8s.io` Lease, so that two replicas can run and only one
//! reconciles.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the lease lives and how long it holds.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object (usually the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long the lease is valid after the last renewal: a standby takes over at most this
    /// long after the leader vanished.
    pub duration: Duration,
    /// How long before expiry the holder renews.
    pub grace: Duration,
}

/// A held lease: `lost` resolves when leadership ends.
pub struct Leadership {
    changes: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

/// Waits until this replica holds the lease.
pub async fn acquire(
    client: Client,
    config: &LeaderConfig,
) -> Result<Leadership, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration.as_secs().max(2))
        .with_grace(config.grace.as_secs().max(1))
        .with_field_manager(field_manager(&config.identity))
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build()
        .await?;
    let (mut changes, task) = manager.watch().await;
    // An Err means the lease task ended; it reports why when joined.
    if changes.wait_for(|held| *held).await.is_err() {
        return match task.await {
            Ok(Err(e)) => Err(e),
            _ => Err(LeaseManagerError::InconsistentState(
                "the lease task ended".into(),
            )),
        };
    }
    Ok(Leadership { changes, task })
}

/// The field manager of this replica's Lease writes. It must differ between replicas: taking
/// a free lease is a server-side apply of `holderIdentity`, and only a conflict with another
/// manager's apply stops two standbys that race for it from both believing they won.
fn field_manager(identity: &str) -> String {
    // The API server accepts field managers of up to 128 characters.
    let mut manager = format!("jenkins-operator-{identity}");
    while manager.len() > 128 {
        manager.pop();
    }
    manager
}

impl Leadership {
    /// Resolves when the lease is lost (or its task ends).
    pub async fn lost(&mut self) {
        let _ = self.changes.wait_for(|held| !*held).await;
    }

    /// Gives the lease up so that a standby can take over without waiting for expiry.
    pub async fn release(self) {
        drop(self.changes);
        if let Ok(Ok(manager)) = self.task.await
            && let Err(e) = manager.release().await
        {
            tracing::warn!(error = %e, "failed to release the leader lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_write_the_lease_as_different_field_managers() {
        assert_eq!(field_manager("op-a"), "jenkins-operator-op-a");
        assert_ne!(field_manager("op-a"), field_manager("op-b"));
        assert_eq!(field_manager(&"x".repeat(300)).len(), 128);
    }
}
