//! The emulator's behaviours, each driven through a real `kube::Client` over HTTP.

mod apply;
mod cel;
mod controller;
mod crd;
mod defaults;
mod deletion;
mod faults;
mod reads;
mod watch;
mod writes;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::Status;

/// Waits until `check` holds, polling; fails the test after five seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The `Status` of a failed call.
pub fn status_of<T: Debug>(result: kube::Result<T>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

/// A ConfigMap with labels and one data entry.
pub fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("key".to_string(), "value".to_string())])),
        ..Default::default()
    }
}

/// Creates ConfigMaps in `default`.
pub async fn create_config_maps(api: &Api<ConfigMap>, maps: &[ConfigMap]) {
    for map in maps {
        api.create(&PostParams::default(), map)
            .await
            .expect("create config map");
    }
}

/// The resourceVersion of an object as a number.
pub fn rv_of(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}
