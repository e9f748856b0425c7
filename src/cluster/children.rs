//! The objects a JenkinsCluster is made of, in a form the reconciler can apply without knowing
//! their types and that `render` can print.

use kube::Resource;
use kube::core::{ApiResource, DynamicObject, ObjectMeta};
use serde::Serialize;

/// How the reconciler writes a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyPolicy {
    /// Server-side apply whenever what we would send changed.
    Apply,
    /// Create when missing, never touch afterwards (generated credentials).
    CreateOnce,
}

/// One desired child object.
#[derive(Clone, Debug)]
pub struct Child {
    /// Group, version, kind and plural of the object.
    pub resource: ApiResource,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// The whole object, with apiVersion, kind and metadata.
    pub object: DynamicObject,
    /// How to write it.
    pub policy: ApplyPolicy,
}

impl Child {
    /// Wraps a typed k8s-openapi object.
    pub fn new<K>(object: &K, policy: ApplyPolicy) -> Result<Self, serde_json::Error>
    where
        K: Resource<DynamicType = ()> + Serialize,
        K::Scope: 'static,
    {
        let resource = ApiResource::erase::<K>(&());
        let mut value = serde_json::to_value(object)?;
        // k8s-openapi serializes apiVersion and kind itself; make sure they are there for
        // DynamicObject, which needs them.
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), resource.api_version.clone().into());
            map.insert("kind".into(), resource.kind.clone().into());
        }
        let object: DynamicObject = serde_json::from_value(value)?;
        let namespaced = std::any::TypeId::of::<K::Scope>()
            == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>();
        Ok(Self {
            resource,
            namespaced,
            object,
            policy,
        })
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        &self.object.metadata
    }

    /// `Kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        let meta = self.meta();
        let name = meta.name.as_deref().unwrap_or("?");
        match &meta.namespace {
            Some(ns) => format!("{} {ns}/{name}", self.resource.kind),
            None => format!("{} {name}", self.resource.kind),
        }
    }

    /// Converts the object back into its typed form (tests and `render` use this).
    pub fn to_typed<K: serde::de::DeserializeOwned>(&self) -> Result<K, serde_json::Error> {
        serde_json::to_value(&self.object).and_then(serde_json::from_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};

    #[test]
    fn a_child_keeps_kind_scope_and_content() {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("ci-casc".into());
        cm.metadata.namespace = Some("ci".into());
        cm.data = Some([("a".to_string(), "b".to_string())].into());
        let child = Child::new(&cm, ApplyPolicy::Apply).expect("serializable");
        assert_eq!(child.resource.kind, "ConfigMap");
        assert_eq!(child.resource.plural, "configmaps");
        assert!(child.namespaced);
        assert_eq!(child.describe(), "ConfigMap ci/ci-casc");
        let back: ConfigMap = child.to_typed().expect("round trip");
        assert_eq!(back, cm);

        let ns = Child::new(&Namespace::default(), ApplyPolicy::Apply).expect("serializable");
        assert!(!ns.namespaced);
    }
}
