//! What one step of a sync decides: at most one write (upstream's order of writes is kept by deciding
//! again after each one, from the objects the write returned) and the events that go with it.

use std::collections::BTreeMap;

use gantry_client::events::Event;
use gantry_client::k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;

/// One write to the API server (PUTs on the object's resourceVersion, as upstream's `Update` and
/// `UpdateStatus`).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Volume(PersistentVolume),
    VolumeStatus(PersistentVolume),
    Claim(PersistentVolumeClaim),
    ClaimStatus(PersistentVolumeClaim),
}

/// One step: the write to make (none: the objects are as they should be), the events to record once it
/// is made, and whether to try again later although nothing was written.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub write: Option<Write>,
    pub events: Vec<Event>,
    pub retry: Option<String>,
    /// A claim (`namespace/name`) to look at (a volume sync hands the binding over to it).
    pub sync_claim: Option<String>,
}

impl Plan {
    pub fn nothing() -> Plan {
        Plan::default()
    }

    pub fn write(write: Write) -> Plan {
        Plan {
            write: Some(write),
            ..Plan::default()
        }
    }

    pub fn with_event(mut self, event: Event) -> Plan {
        self.events.push(event);
        self
    }

    pub fn event(event: Event) -> Plan {
        Plan::nothing().with_event(event)
    }

    pub fn retry(message: String) -> Plan {
        Plan {
            retry: Some(message),
            ..Plan::default()
        }
    }
}

/// What the binder knows of the cluster: volumes by name, claims by `namespace/name`, classes and the
/// labels of nodes by name.
#[derive(Debug, Default, Clone)]
pub struct Cluster {
    pub volumes: BTreeMap<String, PersistentVolume>,
    pub claims: BTreeMap<String, PersistentVolumeClaim>,
    pub classes: BTreeMap<String, StorageClass>,
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
}

/// A warning or normal event about a volume or claim.
pub fn event<K>(object: &K, warning: bool, reason: &'static str, message: String) -> Event
where
    K: gantry_client::k8s_openapi::Resource + gantry_client::kube::Resource<DynamicType = ()>,
{
    Event {
        object: crate::api::involved(object),
        warning,
        reason,
        message,
    }
}
