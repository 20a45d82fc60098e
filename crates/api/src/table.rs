//! Server-side printing: `meta.k8s.io/v1` `Table` answers for `Accept: …;as=Table;g=meta.k8s.io;v=v1`, with the
//! columns and cell strings kube-apiserver 1.33 prints (`pkg/printers/internalversion/printers.go`), so that
//! `kubectl get` shows what it shows against a real cluster.
//!
//! Objects are plain JSON. Where the real API server would have defaulted a field before printing it (a
//! Deployment's `replicas`, a Service's `type`, a port's `protocol`, …) and the object lacks it, the printer
//! assumes the default, so an undefaulted object prints as its defaulted twin would.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::labels::Selector;

/// The `includeObject` query parameter: what each row's `object` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `meta.k8s.io/v1` `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

impl IncludeObject {
    /// Parses the query value; empty means the default (`Metadata`). `None` for an unknown value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "" | "Metadata" => Some(Self::Metadata),
            "None" => Some(Self::None),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// One column definition.
struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

const fn c(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A column only `-o wide` shows.
const fn w(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

/// The Name column's description, as upstream's.
pub const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of a name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// The Age column's description, as upstream's.
pub const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";
const SELECTOR_DOC: &str = "A label query over pods that should match the replica count. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};
const AGE: Col = c("Age", "string", AGE_DOC);
const CREATED_AT: Col = c("Created At", "date", AGE_DOC);
const CONTAINERS: Col = w("Containers", "string", CONTAINERS_DOC);
const IMAGES: Col = w("Images", "string", IMAGES_DOC);
const SELECTOR: Col = w("Selector", "string", SELECTOR_DOC);

const POD: &[Col] = &[
    NAME,
    c(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    c(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    c(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    w(
        "IP",
        "string",
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    w(
        "Node",
        "string",
        "NodeName indicates in which node this pod is scheduled.",
    ),
    w(
        "Nominated Node",
        "string",
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
    ),
    w(
        "Readiness Gates",
        "string",
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
];

const DEPLOYMENT: &[Col] = &[
    NAME,
    c("Ready", "string", "Number of the pod with ready state"),
    c(
        "Up-to-date",
        "string",
        "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
    ),
    c(
        "Available",
        "string",
        "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const REPLICA_SET: &[Col] = &[
    NAME,
    c(
        "Desired",
        "integer",
        "Replicas is the number of desired pods.",
    ),
    c(
        "Current",
        "integer",
        "Replicas is the most recently observed number of non-terminating pods.",
    ),
    c(
        "Ready",
        "integer",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const STATEFUL_SET: &[Col] = &[
    NAME,
    c("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

const DAEMON_SET: &[Col] = &[
    NAME,
    c(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
    ),
    c(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    c(
        "Ready",
        "integer",
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    c(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    c(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    c(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const JOB: &[Col] = &[
    NAME,
    c("Status", "string", "Status of the job."),
    c(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    c("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const CRON_JOB: &[Col] = &[
    NAME,
    c(
        "Schedule",
        "string",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    c(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
    ),
    c(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false.",
    ),
    c(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    c(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

const SERVICE: &[Col] = &[
    NAME,
    c(
        "Type",
        "string",
        "type determines how the Service is exposed. Defaults to ClusterIP.",
    ),
    c(
        "Cluster-IP",
        "string",
        "clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    c(
        "External-IP",
        "string",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    c(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    w(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

const ENDPOINTS: &[Col] = &[
    NAME,
    c(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

const ENDPOINT_SLICE: &[Col] = &[
    NAME,
    c(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    c(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    c(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

const CONFIG_MAP: &[Col] = &[
    NAME,
    c("Data", "string", "Data contains the configuration data."),
    AGE,
];

const SECRET: &[Col] = &[
    NAME,
    c(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    c("Data", "string", "Data contains the secret data."),
    AGE,
];

const SERVICE_ACCOUNT: &[Col] = &[
    NAME,
    c(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

const NAMESPACE: &[Col] = &[
    NAME,
    c("Status", "string", "The status of the namespace"),
    AGE,
];

const NODE_ADDRESSES_DOC: &str = "List of addresses reachable to the node.";
const NODE: &[Col] = &[
    NAME,
    c("Status", "string", "The status of the node"),
    c("Roles", "string", "The roles of the node"),
    AGE,
    c("Version", "string", "Kubelet Version reported by the node."),
    w("Internal-IP", "string", NODE_ADDRESSES_DOC),
    w("External-IP", "string", NODE_ADDRESSES_DOC),
    w(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    w(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    w(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];

const EVENT: &[Col] = &[
    c(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    c(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    c(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    c("Object", "string", "The object that this event is about."),
    w(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
    ),
    w(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    c(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    w(
        "First Seen",
        "string",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    ),
    w(
        "Count",
        "string",
        "The number of times this event has occurred.",
    ),
    Col {
        name: "Name",
        ty: "string",
        format: "name",
        description: NAME_DOC,
        priority: 1,
    },
];

const PERSISTENT_VOLUME: &[Col] = &[
    NAME,
    c(
        "Capacity",
        "string",
        "capacity is the description of the persistent volume's resources and capacity.",
    ),
    c(
        "Access Modes",
        "string",
        "accessModes contains all ways the volume can be mounted.",
    ),
    c(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    c(
        "Status",
        "string",
        "phase indicates if a volume is available, bound to a claim, or released by a claim.",
    ),
    c(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    c("StorageClass", "string", "StorageClass of the pv"),
    c(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    c(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
    ),
    AGE,
    w(
        "VolumeMode",
        "string",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

const PERSISTENT_VOLUME_CLAIM: &[Col] = &[
    NAME,
    c(
        "Status",
        "string",
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    c(
        "Volume",
        "string",
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    c(
        "Capacity",
        "string",
        "capacity represents the actual resources of the underlying volume.",
    ),
    c(
        "Access Modes",
        "string",
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    c("StorageClass", "string", "StorageClass of the pvc"),
    c(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    w(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

const RESOURCE_QUOTA: &[Col] = &[
    NAME,
    AGE,
    c(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    c(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

/// What kube-apiserver's default table convertor prints for kinds without a printer.
const CREATED_AT_ONLY: &[Col] = &[NAME, CREATED_AT];

const CONTROLLER_REVISION: &[Col] = &[
    NAME,
    c("Controller", "string", "Controller of the object"),
    c(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

const LEASE: &[Col] = &[
    NAME,
    c(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

const INGRESS: &[Col] = &[
    NAME,
    c(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    c(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    c(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    c("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

const INGRESS_CLASS: &[Col] = &[
    NAME,
    c(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    c(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

const NETWORK_POLICY: &[Col] = &[
    NAME,
    c(
        "Pod-Selector",
        "string",
        "podSelector selects the pods to which this NetworkPolicy object applies.",
    ),
    AGE,
];

const STORAGE_CLASS: &[Col] = &[
    NAME,
    c(
        "Provisioner",
        "string",
        "provisioner indicates the type of the provisioner.",
    ),
    c(
        "ReclaimPolicy",
        "string",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
    ),
    c(
        "VolumeBindingMode",
        "string",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
    ),
    c(
        "AllowVolumeExpansion",
        "string",
        "allowVolumeExpansion shows whether the storage class allow volume expand.",
    ),
    AGE,
];

const PRIORITY_CLASS: &[Col] = &[
    NAME,
    c(
        "Value",
        "integer",
        "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.",
    ),
    c(
        "Global-Default",
        "boolean",
        "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.",
    ),
    AGE,
    c(
        "PreemptionPolicy",
        "string",
        "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.",
    ),
];

const ROLE_BINDING: &[Col] = &[
    NAME,
    c(
        "Role",
        "string",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
    ),
    AGE,
    w("Users", "string", "Users in the roleBinding"),
    w("Groups", "string", "Groups in the roleBinding"),
    w(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

const CLUSTER_ROLE_BINDING: &[Col] = &[
    NAME,
    c(
        "Role",
        "string",
        "RoleRef can only reference a ClusterRole in the global namespace.",
    ),
    AGE,
    w("Users", "string", "Users in the clusterRoleBinding"),
    w("Groups", "string", "Groups in the clusterRoleBinding"),
    w(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

const POD_DISRUPTION_BUDGET: &[Col] = &[
    NAME,
    c(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    c(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    c(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

const HORIZONTAL_POD_AUTOSCALER: &[Col] = &[
    NAME,
    c(
        "Reference",
        "string",
        "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
    ),
    c(
        "Targets",
        "string",
        "metrics contains the specifications for which to use to calculate the desired replica count.",
    ),
    c(
        "MinPods",
        "string",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    c(
        "MaxPods",
        "string",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    c(
        "Replicas",
        "string",
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
    ),
    AGE,
];

/// Kinds this module has no printer for.
const DEFAULT: &[Col] = &[NAME, AGE];

fn columns(kind: &str) -> &'static [Col] {
    match kind {
        "Pod" => POD,
        "Deployment" => DEPLOYMENT,
        "ReplicaSet" | "ReplicationController" => REPLICA_SET,
        "StatefulSet" => STATEFUL_SET,
        "DaemonSet" => DAEMON_SET,
        "Job" => JOB,
        "CronJob" => CRON_JOB,
        "Service" => SERVICE,
        "Endpoints" => ENDPOINTS,
        "EndpointSlice" => ENDPOINT_SLICE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Namespace" => NAMESPACE,
        "Node" => NODE,
        "Event" => EVENT,
        "PersistentVolume" => PERSISTENT_VOLUME,
        "PersistentVolumeClaim" => PERSISTENT_VOLUME_CLAIM,
        "ResourceQuota" => RESOURCE_QUOTA,
        "LimitRange" | "Role" | "ClusterRole" | "CustomResourceDefinition" => CREATED_AT_ONLY,
        "ControllerRevision" => CONTROLLER_REVISION,
        "Lease" => LEASE,
        "Ingress" => INGRESS,
        "IngressClass" => INGRESS_CLASS,
        "NetworkPolicy" => NETWORK_POLICY,
        "StorageClass" => STORAGE_CLASS,
        "PriorityClass" => PRIORITY_CLASS,
        "RoleBinding" => ROLE_BINDING,
        "ClusterRoleBinding" => CLUSTER_ROLE_BINDING,
        "PodDisruptionBudget" => POD_DISRUPTION_BUDGET,
        "HorizontalPodAutoscaler" => HORIZONTAL_POD_AUTOSCALER,
        _ => DEFAULT,
    }
}

/// The `columnDefinitions` for `kind`: all of them when `wide`, else only those with priority 0 (what kubectl
/// shows without `-o wide`). Kinds without a printer get `Name`, `Age`.
pub fn column_definitions(kind: &str, wide: bool) -> Vec<Value> {
    columns(kind)
        .iter()
        .filter(|col| wide || col.priority == 0)
        .map(|col| {
            json!({
                "name": col.name,
                "type": col.ty,
                "format": col.format,
                "description": col.description,
                "priority": col.priority,
            })
        })
        .collect()
}

/// The row's `cells` and `conditions` (finished pods only) for `object`, a `kind`.
fn cells_and_conditions(
    kind: &str,
    object: &Value,
    now: SystemTime,
) -> (Vec<Value>, Option<Value>) {
    let now = nanos_since_epoch(now);
    let mut conditions = None;
    let cells = match kind {
        "Pod" => {
            let (cells, conds) = pod_cells(object, now);
            conditions = conds;
            cells
        }
        "Deployment" => deployment_cells(object, now),
        "ReplicaSet" => replica_set_cells(object, now),
        "ReplicationController" => replication_controller_cells(object, now),
        "StatefulSet" => stateful_set_cells(object, now),
        "DaemonSet" => daemon_set_cells(object, now),
        "Job" => job_cells(object, now),
        "CronJob" => cron_job_cells(object, now),
        "Service" => service_cells(object, now),
        "Endpoints" => endpoints_cells(object, now),
        "EndpointSlice" => endpoint_slice_cells(object, now),
        "ConfigMap" => vec![
            name(object),
            json!(len(object, "/data") + len(object, "/binaryData")),
            age(object, now),
        ],
        "Secret" => vec![
            name(object),
            json!(or(str_at(object, "/type"), "Opaque")),
            json!(len(object, "/data")),
            age(object, now),
        ],
        "ServiceAccount" => vec![
            name(object),
            json!(len(object, "/secrets")),
            age(object, now),
        ],
        "Namespace" => vec![
            name(object),
            json!(or(str_at(object, "/status/phase"), "Active")),
            age(object, now),
        ],
        "Node" => node_cells(object, now),
        "Event" => event_cells(object, now),
        "PersistentVolume" => persistent_volume_cells(object, now),
        "PersistentVolumeClaim" => persistent_volume_claim_cells(object, now),
        "ResourceQuota" => resource_quota_cells(object, now),
        "LimitRange" | "Role" | "ClusterRole" | "CustomResourceDefinition" => {
            vec![name(object), created_at(object)]
        }
        "ControllerRevision" => controller_revision_cells(object, now),
        "Lease" => vec![
            name(object),
            json!(str_at(object, "/spec/holderIdentity")),
            age(object, now),
        ],
        "Ingress" => ingress_cells(object, now),
        "IngressClass" => ingress_class_cells(object, now),
        "NetworkPolicy" => vec![
            name(object),
            json!(format_label_selector(at(object, "/spec/podSelector"))),
            age(object, now),
        ],
        "StorageClass" => storage_class_cells(object, now),
        "PriorityClass" => vec![
            name(object),
            json!(at(object, "/value").and_then(Value::as_i64).unwrap_or(0)),
            json!(bool_at(object, "/globalDefault")),
            age(object, now),
            json!(or(str_at(object, "/preemptionPolicy"), "<unset>")),
        ],
        "RoleBinding" | "ClusterRoleBinding" => role_binding_cells(object, now),
        "PodDisruptionBudget" => pod_disruption_budget_cells(object, now),
        "HorizontalPodAutoscaler" => horizontal_pod_autoscaler_cells(object, now),
        _ => vec![name(object), age(object, now)],
    };
    (cells, conditions)
}

/// One `TableRow` for `object` (a `kind`): `cells` for every column of [`column_definitions`]`(kind, true)`,
/// `conditions` where Kubernetes sets them (finished pods), and `object` as `include_object` asks.
pub fn row(kind: &str, object: &Value, now: SystemTime, include_object: IncludeObject) -> Value {
    let (cells, conditions) = cells_and_conditions(kind, object, now);
    row_of_cells(cells, conditions, object, include_object)
}

/// A row of `cells` (and `conditions`, if any) for `object`, carrying as much of it as `include_object` asks.
pub fn row_of_cells(
    cells: Vec<Value>,
    conditions: Option<Value>,
    object: &Value,
    include_object: IncludeObject,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".to_owned(), Value::Array(cells));
    if let Some(conditions) = conditions {
        row.insert("conditions".to_owned(), conditions);
    }
    match include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = object
                .get("metadata")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            row.insert(
                "object".to_owned(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                }),
            );
        }
        IncludeObject::Object => {
            row.insert("object".to_owned(), object.clone());
        }
    }
    Value::Object(row)
}

/// The whole `meta.k8s.io/v1` `Table` for `objects` (all of one `kind`), with every column (kubectl hides
/// priority 1 unless `-o wide`). `list_metadata` becomes the table's `metadata` (`resourceVersion`,
/// `continue`, `remainingItemCount`); anything but an object counts as `{}`.
pub fn table(
    kind: &str,
    objects: &[Value],
    list_metadata: Value,
    now: SystemTime,
    include_object: IncludeObject,
) -> Value {
    let metadata = match list_metadata {
        Value::Object(m) => Value::Object(m),
        _ => Value::Object(Map::new()),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(kind, o, now, include_object))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(kind, true),
        "rows": rows,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Rows straight from stored JSON

/// The Table row of one object given as its JSON, appended to `out` as JSON: the same bytes as
/// `serde_json::to_vec(&row(kind, &serde_json::from_slice(json)?, now, include_object))`, at a fraction of the
/// cost (a Table of 10,000 pods spends its time here).
///
/// Only what `kind`'s cells read is parsed (see `needs`); the rest is skipped without allocating. The row's
/// `object` is spliced from `json` as is: its `metadata` for [`IncludeObject::Metadata`], all of it for
/// [`IncludeObject::Object`]. That gives the same bytes as re-serializing only because `json` is what
/// `serde_json` writes for a `Value` (compact, object keys sorted, as the watch cache keeps objects); other
/// JSON gives an equivalent row with `json`'s own spelling of the object. JSON that does not parse is an error
/// and leaves `out` as it was.
pub fn write_row(
    kind: &str,
    json: &[u8],
    now: SystemTime,
    include_object: IncludeObject,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    if json.trim_ascii_start().first() != Some(&b'{') {
        // Not an object (an error, or an oddity no store holds): the plain way.
        let row = row(kind, &serde_json::from_slice(json)?, now, include_object);
        return serde_json::to_writer(out, &row);
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let top = TopLevel {
        needs: needs(kind),
        raw_metadata: include_object == IncludeObject::Metadata,
    };
    let (object, metadata) = top.deserialize(&mut de)?;
    de.end()?;
    let (cells, conditions) = cells_and_conditions(kind, &object, now);
    // Keys in sorted order, as serde_json writes a `Map`: cells, conditions, object.
    out.extend_from_slice(br#"{"cells":"#);
    serde_json::to_writer(&mut *out, &cells)?;
    if let Some(conditions) = conditions {
        out.extend_from_slice(br#","conditions":"#);
        serde_json::to_writer(&mut *out, &conditions)?;
    }
    match include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            out.extend_from_slice(
                br#","object":{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":"#,
            );
            // The stored bytes keep their key order, already sorted: serde_json wrote them from a `Value`.
            out.extend_from_slice(metadata.map_or("{}", RawValue::get).as_bytes());
            out.push(b'}');
        }
        IncludeObject::Object => {
            out.extend_from_slice(br#","object":"#);
            out.extend_from_slice(json.trim_ascii());
        }
    }
    out.push(b'}');
    Ok(())
}

/// What of a JSON value the cells read. Arrays are transparent: a need applies to each element.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// The whole value.
    All,
    /// Only these fields of an object (absent ones stay absent; an object stays an object, so `has_obj` and
    /// `len` of arrays keep working). A scalar is kept as it is.
    Fields(&'static [(&'static str, Need)]),
    /// The keys of an object (values null), the length of an array (elements null): what `len` counts.
    Len,
}

use Need::{All, Fields, Len};

/// `name`, `age` and `is_deleting` read these.
const META: Need = Fields(&[
    ("name", All),
    ("creationTimestamp", All),
    ("deletionTimestamp", All),
]);
/// `container_cells` of a pod template.
const TEMPLATE: Need = Fields(&[(
    "spec",
    Fields(&[("containers", Fields(&[("name", All), ("image", All)]))]),
)]);
/// A pod's container or init container status.
const CONTAINER_STATUS: Need = Fields(&[
    ("name", All),
    ("ready", All),
    ("started", All),
    ("restartCount", All),
    (
        "state",
        Fields(&[
            ("running", Fields(&[])),
            ("waiting", Fields(&[("reason", All)])),
            (
                "terminated",
                Fields(&[("exitCode", All), ("reason", All), ("signal", All)]),
            ),
        ]),
    ),
    (
        "lastState",
        Fields(&[("terminated", Fields(&[("finishedAt", All)]))]),
    ),
]);
const LOAD_BALANCER: Need = Fields(&[(
    "loadBalancer",
    Fields(&[("ingress", Fields(&[("ip", All), ("hostname", All)]))]),
)]);
/// What `storage_class_of` reads of a PV's or PVC's metadata.
const VOLUME_META: Need = Fields(&[
    ("name", All),
    ("creationTimestamp", All),
    ("deletionTimestamp", All),
    (
        "annotations",
        Fields(&[("volume.beta.kubernetes.io/storage-class", All)]),
    ),
]);

/// What `kind`'s cells (the arms of [`cells_and_conditions`]) read of an object, by top-level field. Keep in
/// step with the printers: a missing path empties a cell silently (the tests compare every fixture's
/// [`write_row`] with [`row`], and each entry here is needed by some fixture).
fn needs(kind: &str) -> &'static [(&'static str, Need)] {
    match kind {
        "Pod" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("containers", Len),
                    (
                        "initContainers",
                        Fields(&[("name", All), ("restartPolicy", All)]),
                    ),
                    ("readinessGates", Fields(&[("conditionType", All)])),
                    ("nodeName", All),
                ]),
            ),
            (
                "status",
                Fields(&[
                    ("phase", All),
                    ("reason", All),
                    (
                        "conditions",
                        Fields(&[("type", All), ("status", All), ("reason", All)]),
                    ),
                    ("initContainerStatuses", CONTAINER_STATUS),
                    ("containerStatuses", CONTAINER_STATUS),
                    ("podIPs", Fields(&[("ip", All)])),
                    ("podIP", All),
                    ("nominatedNodeName", All),
                ]),
            ),
        ],
        "Deployment" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[("replicas", All), ("selector", All), ("template", TEMPLATE)]),
            ),
            (
                "status",
                Fields(&[
                    ("readyReplicas", All),
                    ("updatedReplicas", All),
                    ("availableReplicas", All),
                ]),
            ),
        ],
        "ReplicaSet" | "ReplicationController" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[("replicas", All), ("selector", All), ("template", TEMPLATE)]),
            ),
            (
                "status",
                Fields(&[("replicas", All), ("readyReplicas", All)]),
            ),
        ],
        "StatefulSet" => &[
            ("metadata", META),
            ("spec", Fields(&[("replicas", All), ("template", TEMPLATE)])),
            ("status", Fields(&[("readyReplicas", All)])),
        ],
        "DaemonSet" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("selector", All),
                    (
                        "template",
                        Fields(&[(
                            "spec",
                            Fields(&[
                                ("nodeSelector", All),
                                ("containers", Fields(&[("name", All), ("image", All)])),
                            ]),
                        )]),
                    ),
                ]),
            ),
            (
                "status",
                Fields(&[
                    ("desiredNumberScheduled", All),
                    ("currentNumberScheduled", All),
                    ("numberReady", All),
                    ("updatedNumberScheduled", All),
                    ("numberAvailable", All),
                ]),
            ),
        ],
        "Job" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("completions", All),
                    ("parallelism", All),
                    ("selector", All),
                    ("template", TEMPLATE),
                ]),
            ),
            (
                "status",
                Fields(&[
                    ("succeeded", All),
                    ("startTime", All),
                    ("completionTime", All),
                    ("conditions", Fields(&[("type", All), ("status", All)])),
                ]),
            ),
        ],
        "CronJob" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("schedule", All),
                    ("timeZone", All),
                    ("suspend", All),
                    (
                        "jobTemplate",
                        Fields(&[("spec", Fields(&[("selector", All), ("template", TEMPLATE)]))]),
                    ),
                ]),
            ),
            (
                "status",
                Fields(&[("active", Len), ("lastScheduleTime", All)]),
            ),
        ],
        "Service" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("type", All),
                    ("clusterIP", All),
                    ("clusterIPs", All),
                    ("externalIPs", All),
                    ("externalName", All),
                    (
                        "ports",
                        Fields(&[("port", All), ("protocol", All), ("nodePort", All)]),
                    ),
                    ("selector", All),
                ]),
            ),
            ("status", LOAD_BALANCER),
        ],
        "Endpoints" => &[
            ("metadata", META),
            (
                "subsets",
                Fields(&[
                    ("addresses", Fields(&[("ip", All)])),
                    ("ports", Fields(&[("port", All)])),
                ]),
            ),
        ],
        "EndpointSlice" => &[
            ("metadata", META),
            ("addressType", All),
            ("ports", Fields(&[("port", All), ("name", All)])),
            ("endpoints", Fields(&[("addresses", All)])),
        ],
        "ConfigMap" => &[("metadata", META), ("data", Len), ("binaryData", Len)],
        "Secret" => &[("metadata", META), ("type", All), ("data", Len)],
        "ServiceAccount" => &[("metadata", META), ("secrets", Len)],
        "Namespace" => &[("metadata", META), ("status", Fields(&[("phase", All)]))],
        "Node" => &[
            (
                "metadata",
                Fields(&[("name", All), ("creationTimestamp", All), ("labels", All)]),
            ),
            ("spec", Fields(&[("unschedulable", All)])),
            (
                "status",
                Fields(&[
                    ("conditions", Fields(&[("type", All), ("status", All)])),
                    ("addresses", Fields(&[("type", All), ("address", All)])),
                    (
                        "nodeInfo",
                        Fields(&[
                            ("kubeletVersion", All),
                            ("osImage", All),
                            ("kernelVersion", All),
                            ("containerRuntimeVersion", All),
                        ]),
                    ),
                ]),
            ),
        ],
        "Event" => &[
            ("metadata", META),
            (
                "involvedObject",
                Fields(&[("kind", All), ("name", All), ("fieldPath", All)]),
            ),
            ("source", Fields(&[("component", All), ("host", All)])),
            ("reportingComponent", All),
            ("reportingInstance", All),
            ("type", All),
            ("reason", All),
            ("message", All),
            ("count", All),
            ("firstTimestamp", All),
            ("lastTimestamp", All),
            ("eventTime", All),
            (
                "series",
                Fields(&[("count", All), ("lastObservedTime", All)]),
            ),
        ],
        "PersistentVolume" => &[
            ("metadata", VOLUME_META),
            (
                "spec",
                Fields(&[
                    ("capacity", Fields(&[("storage", All)])),
                    ("accessModes", All),
                    ("persistentVolumeReclaimPolicy", All),
                    ("claimRef", Fields(&[("namespace", All), ("name", All)])),
                    ("storageClassName", All),
                    ("volumeAttributesClassName", All),
                    ("volumeMode", All),
                ]),
            ),
            ("status", Fields(&[("phase", All), ("reason", All)])),
        ],
        "PersistentVolumeClaim" => &[
            ("metadata", VOLUME_META),
            (
                "spec",
                Fields(&[
                    ("volumeName", All),
                    ("storageClassName", All),
                    ("volumeAttributesClassName", All),
                    ("volumeMode", All),
                ]),
            ),
            (
                "status",
                Fields(&[
                    ("phase", All),
                    ("capacity", Fields(&[("storage", All)])),
                    ("accessModes", All),
                ]),
            ),
        ],
        "ResourceQuota" => &[
            ("metadata", META),
            ("status", Fields(&[("hard", All), ("used", All)])),
        ],
        "ControllerRevision" => &[
            (
                "metadata",
                Fields(&[
                    ("name", All),
                    ("creationTimestamp", All),
                    (
                        "ownerReferences",
                        Fields(&[
                            ("controller", All),
                            ("apiVersion", All),
                            ("kind", All),
                            ("name", All),
                        ]),
                    ),
                ]),
            ),
            ("revision", All),
        ],
        "Lease" => &[
            ("metadata", META),
            ("spec", Fields(&[("holderIdentity", All)])),
        ],
        "Ingress" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("ingressClassName", All),
                    ("rules", Fields(&[("host", All)])),
                    ("tls", Len),
                ]),
            ),
            ("status", LOAD_BALANCER),
        ],
        "IngressClass" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("controller", All),
                    (
                        "parameters",
                        Fields(&[("kind", All), ("apiGroup", All), ("name", All)]),
                    ),
                ]),
            ),
        ],
        "NetworkPolicy" => &[
            ("metadata", META),
            ("spec", Fields(&[("podSelector", All)])),
        ],
        "StorageClass" => &[
            (
                "metadata",
                Fields(&[
                    ("name", All),
                    ("creationTimestamp", All),
                    (
                        "annotations",
                        Fields(&[
                            ("storageclass.kubernetes.io/is-default-class", All),
                            ("storageclass.beta.kubernetes.io/is-default-class", All),
                        ]),
                    ),
                ]),
            ),
            ("provisioner", All),
            ("reclaimPolicy", All),
            ("volumeBindingMode", All),
            ("allowVolumeExpansion", All),
        ],
        "PriorityClass" => &[
            ("metadata", META),
            ("value", All),
            ("globalDefault", All),
            ("preemptionPolicy", All),
        ],
        "RoleBinding" | "ClusterRoleBinding" => &[
            ("metadata", META),
            ("roleRef", Fields(&[("kind", All), ("name", All)])),
            (
                "subjects",
                Fields(&[("kind", All), ("name", All), ("namespace", All)]),
            ),
        ],
        "PodDisruptionBudget" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[("minAvailable", All), ("maxUnavailable", All)]),
            ),
            ("status", Fields(&[("disruptionsAllowed", All)])),
        ],
        "HorizontalPodAutoscaler" => &[
            ("metadata", META),
            (
                "spec",
                Fields(&[
                    ("scaleTargetRef", Fields(&[("kind", All), ("name", All)])),
                    ("minReplicas", All),
                    ("maxReplicas", All),
                    ("metrics", All),
                ]),
            ),
            (
                "status",
                Fields(&[("currentReplicas", All), ("currentMetrics", All)]),
            ),
        ],
        // Name and age (LimitRange, Role, ClusterRole, CustomResourceDefinition: name and creation time) and
        // kinds without a printer.
        _ => &[("metadata", META)],
    }
}

/// The top level of an object: the fields `needs` names, pruned to their needs, and with `raw_metadata` the
/// `metadata` besides as its raw JSON (for the row's `object`).
struct TopLevel {
    needs: &'static [(&'static str, Need)],
    raw_metadata: bool,
}

impl<'de> DeserializeSeed<'de> for TopLevel {
    type Value = (Value, Option<&'de RawValue>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = (Value, Option<&'de RawValue>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        let mut metadata = None;
        while let Some(field) = map.next_key_seed(FieldKey(self.needs))? {
            let Some(&(key, need)) = field.and_then(|i| self.needs.get(i)) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = if key == "metadata" && self.raw_metadata {
                // Scanned twice (as raw JSON, then for the cells), which beats building it as a `Value`.
                let raw: &'de RawValue = map.next_value()?;
                metadata = Some(raw);
                Pruned(need)
                    .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(de::Error::custom)?
            } else {
                map.next_value_seed(Pruned(need))?
            };
            object.insert(key.to_owned(), value);
        }
        Ok((Value::Object(object), metadata))
    }
}

/// A value pruned to a [`Need`]: equal to the parsed value wherever the need reaches.
#[derive(Clone, Copy)]
struct Pruned(Need);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            All => Value::deserialize(d),
            Fields(_) | Len => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    // Scalars as `Value`'s own visitor makes them.
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        match self.0 {
            Len => {
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    items.push(Value::Null);
                }
            }
            _ => {
                while let Some(item) = seq.next_element_seed(self)? {
                    items.push(item);
                }
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        match self.0 {
            Fields(fields) => {
                while let Some(field) = map.next_key_seed(FieldKey(fields))? {
                    match field.and_then(|i| fields.get(i)) {
                        Some(&(key, need)) => {
                            let value = map.next_value_seed(Pruned(need))?;
                            object.insert(key.to_owned(), value);
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
            }
            _ => {
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    object.insert(key, Value::Null);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// A map key looked up among `.0` without allocating: its index there, `None` for a key not needed. Read as
/// bytes, which spares the UTF-8 check of every key (skipped strings get none either).
struct FieldKey(&'static [(&'static str, Need)]);

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl Visitor<'_> for FieldKey {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(key, _)| key.as_bytes() == v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(key, _)| *key == v))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Durations and timestamps

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A human-readable approximation of a duration, exactly as apimachinery's `duration.HumanDuration`
/// (`45s`, `119s`, `5m30s`, `10m`, `3h5m`, `8h`, `2d5h`, `30d`, `2y10d`, `9y`): what the AGE column shows.
pub fn human_duration(d: Duration) -> String {
    human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// [`human_duration`] of a signed span: up to a second in the future reads `0s` (clock skew), further is
/// `<invalid>`.
fn human_nanos(d: i128) -> String {
    let seconds = d / NANOS_PER_SEC;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn nanos_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Parses an RFC 3339 timestamp (`metav1.Time`, `metav1.MicroTime`) into nanoseconds since the epoch.
fn parse_time(s: &str) -> Option<i128> {
    let time =
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(time.unix_timestamp_nanos())
}

/// RFC 3339 in UTC, whole seconds (Go's `time.RFC3339` of a UTC time).
fn format_time(nanos: i128) -> String {
    let secs = i64::try_from(nanos.div_euclid(NANOS_PER_SEC)).unwrap_or(0);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

fn time_at(v: &Value, pointer: &str) -> Option<i128> {
    at(v, pointer).and_then(Value::as_str).and_then(parse_time)
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when it is unset.
fn since(now: i128, t: Option<i128>) -> String {
    match t {
        Some(t) => human_nanos(now - t),
        None => "<unknown>".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// JSON access

/// `Value::pointer` without its unescaping, which allocates for every path segment (the paths here have no
/// `~`); a Table of 10,000 pods makes hundreds of thousands of lookups.
fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    let Some(mut path) = pointer.strip_prefix('/') else {
        return Some(v);
    };
    let mut v = v;
    loop {
        // A byte loop: `str::split` costs more than the lookups on these short paths.
        let end = path.bytes().position(|b| b == b'/').unwrap_or(path.len());
        let part = &path[..end];
        v = match v {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
        match path.get(end + 1..) {
            Some(rest) => path = rest,
            None => return Some(v),
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).and_then(Value::as_str).unwrap_or("")
}

fn opt_str<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    at(v, pointer).and_then(Value::as_str)
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn opt_int(v: &Value, pointer: &str) -> Option<i64> {
    at(v, pointer).and_then(Value::as_i64)
}

fn bool_at(v: &Value, pointer: &str) -> bool {
    at(v, pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn obj<'a>(v: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    at(v, pointer).and_then(Value::as_object)
}

fn has_obj(v: &Value, pointer: &str) -> bool {
    obj(v, pointer).is_some()
}

/// The number of entries of a map or list (0 when absent).
fn len(v: &Value, pointer: &str) -> usize {
    match at(v, pointer) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

/// A scalar as Go's `%v`/`Quantity.String()`/`IntOrString.String()` would print it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn name(v: &Value) -> Value {
    json!(str_at(v, "/metadata/name"))
}

fn age(v: &Value, now: i128) -> Value {
    json!(since(now, time_at(v, "/metadata/creationTimestamp")))
}

/// The default table convertor's `Created At` cell.
fn created_at(v: &Value) -> Value {
    match time_at(v, "/metadata/creationTimestamp") {
        Some(t) => json!(format_time(t)),
        None => Value::Null,
    }
}

fn is_deleting(v: &Value) -> bool {
    opt_str(v, "/metadata/deletionTimestamp").is_some_and(|s| !s.is_empty())
}

/// `labels.FormatLabels`: `k=v` sorted by key, `<none>` when empty.
fn format_labels(v: Option<&Value>) -> String {
    let Some(Value::Object(m)) = v else {
        return "<none>".to_owned();
    };
    if m.is_empty() {
        return "<none>".to_owned();
    }
    let mut pairs: Vec<(&String, String)> = m.iter().map(|(k, v)| (k, scalar(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector's string form, `<none>` when it is empty or null.
fn format_label_selector(v: Option<&Value>) -> String {
    match Selector::from_label_selector(v.unwrap_or(&Value::Null)) {
        Ok(s) => {
            let s = s.to_string();
            if s.is_empty() { "<none>".to_owned() } else { s }
        }
        Err(_) => "<error>".to_owned(),
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
fn container_cells(v: &Value, pointer: &str) -> [Value; 2] {
    let containers = arr(v, pointer);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    [json!(names.join(",")), json!(images.join(","))]
}

/// `"{list} + N more..."` when more than `max` items were cut.
fn with_more(list: &[String], count: usize, max: usize) -> String {
    let joined = list.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else {
        joined
    }
}

// ---------------------------------------------------------------------------------------------------------
// Printers

/// `printPod`: READY, STATUS and RESTARTS the way kubectl users know them.
fn pod_cells(pod: &Value, now: i128) -> (Vec<Value>, Option<Value>) {
    let phase = str_at(pod, "/status/phase");
    let mut reason = or(str_at(pod, "/status/reason"), phase).to_owned();
    let pod_conditions = arr(pod, "/status/conditions");
    if pod_conditions
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."}]),
        ),
        _ => None,
    };

    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |container: &str| {
        init_specs
            .iter()
            .any(|s| str_at(s, "/name") == container && str_at(s, "/restartPolicy") == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|s| str_at(s, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut last_restart: Option<i128> = None;
    let mut last_restartable_restart: Option<i128> = None;
    let later = |a: Option<i128>, b: Option<i128>| a.max(b);

    let mut initializing = false;
    for (i, status) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        let count = int_at(status, "/restartCount");
        let finished = time_at(status, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = later(last_restart, finished);
        let is_restartable = restartable(str_at(status, "/name"));
        if is_restartable {
            restartable_restarts += count;
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = has_obj(status, "/state/terminated");
        if terminated && int_at(status, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if is_restartable && bool_at(status, "/started") {
            if bool_at(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        let waiting_reason = str_at(status, "/state/waiting/reason");
        reason = if terminated {
            match str_at(status, "/state/terminated/reason") {
                "" => match int_at(status, "/state/terminated/signal") {
                    0 => format!(
                        "Init:ExitCode:{}",
                        int_at(status, "/state/terminated/exitCode")
                    ),
                    signal => format!("Init:Signal:{signal}"),
                },
                r => format!("Init:{r}"),
            }
        } else if has_obj(status, "/state/waiting")
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized = pod_conditions
        .iter()
        .any(|c| str_at(c, "/type") == "Initialized" && str_at(c, "/status") == "True");
    if !initializing || initialized {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for status in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += int_at(status, "/restartCount");
            last_restart = later(
                last_restart,
                time_at(status, "/lastState/terminated/finishedAt"),
            );
            let waiting_reason = str_at(status, "/state/waiting/reason");
            let terminated = has_obj(status, "/state/terminated");
            let terminated_reason = str_at(status, "/state/terminated/reason");
            if has_obj(status, "/state/waiting") && !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if terminated && !terminated_reason.is_empty() {
                reason = terminated_reason.to_owned();
            } else if terminated {
                reason = match int_at(status, "/state/terminated/signal") {
                    0 => format!("ExitCode:{}", int_at(status, "/state/terminated/exitCode")),
                    signal => format!("Signal:{signal}"),
                };
            } else if bool_at(status, "/ready") && has_obj(status, "/state/running") {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = pod_conditions
                .iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
        }
    }

    if is_deleting(pod) && str_at(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if is_deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_owned();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(now, Some(t))),
        _ => restarts.to_string(),
    };

    let ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| str_at(p, "/ip"))
        .unwrap_or_else(|| str_at(pod, "/status/podIP"));
    let gates = arr(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let satisfied = gates
            .iter()
            .filter(|g| {
                pod_conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == str_at(g, "/conditionType"))
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{satisfied}/{}", gates.len())
    };
    let cells = vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        age(pod, now),
        json!(or(ip, "<none>")),
        json!(or(str_at(pod, "/spec/nodeName"), "<none>")),
        json!(or(str_at(pod, "/status/nominatedNodeName"), "<none>")),
        json!(readiness_gates),
    ];
    (cells, row_conditions)
}

/// `spec.replicas`, defaulted to 1 as the API server would have.
fn desired_replicas(v: &Value) -> i64 {
    opt_int(v, "/spec/replicas").unwrap_or(1)
}

fn deployment_cells(d: &Value, now: i128) -> Vec<Value> {
    let selector =
        match Selector::from_label_selector(at(d, "/spec/selector").unwrap_or(&Value::Null)) {
            Ok(s) => s.to_string(),
            Err(_) => "<invalid>".to_owned(),
        };
    let [names, images] = container_cells(d, "/spec/template/spec/containers");
    vec![
        name(d),
        json!(format!(
            "{}/{}",
            int_at(d, "/status/readyReplicas"),
            desired_replicas(d)
        )),
        json!(int_at(d, "/status/updatedReplicas")),
        json!(int_at(d, "/status/availableReplicas")),
        age(d, now),
        names,
        images,
        json!(selector),
    ]
}

fn replica_set_cells(rs: &Value, now: i128) -> Vec<Value> {
    let [names, images] = container_cells(rs, "/spec/template/spec/containers");
    vec![
        name(rs),
        json!(desired_replicas(rs)),
        json!(int_at(rs, "/status/replicas")),
        json!(int_at(rs, "/status/readyReplicas")),
        age(rs, now),
        names,
        images,
        json!(format_label_selector(at(rs, "/spec/selector"))),
    ]
}

/// A ReplicaSet's columns; the selector is a plain label map (`app=web`).
fn replication_controller_cells(rc: &Value, now: i128) -> Vec<Value> {
    let mut cells = replica_set_cells(rc, now);
    let selector: Vec<String> = at(rc, "/spec/selector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if let Some(last) = cells.last_mut() {
        *last = json!(selector.join(","));
    }
    cells
}

fn stateful_set_cells(sts: &Value, now: i128) -> Vec<Value> {
    let [names, images] = container_cells(sts, "/spec/template/spec/containers");
    vec![
        name(sts),
        json!(format!(
            "{}/{}",
            int_at(sts, "/status/readyReplicas"),
            desired_replicas(sts)
        )),
        age(sts, now),
        names,
        images,
    ]
}

fn daemon_set_cells(ds: &Value, now: i128) -> Vec<Value> {
    let [names, images] = container_cells(ds, "/spec/template/spec/containers");
    vec![
        name(ds),
        json!(int_at(ds, "/status/desiredNumberScheduled")),
        json!(int_at(ds, "/status/currentNumberScheduled")),
        json!(int_at(ds, "/status/numberReady")),
        json!(int_at(ds, "/status/updatedNumberScheduled")),
        json!(int_at(ds, "/status/numberAvailable")),
        json!(format_labels(at(ds, "/spec/template/spec/nodeSelector"))),
        age(ds, now),
        names,
        images,
        json!(format_label_selector(at(ds, "/spec/selector"))),
    ]
}

/// Whether the first condition of `kind` is true (`hasJobCondition`).
fn has_condition(v: &Value, kind: &str) -> bool {
    arr(v, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == kind)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn job_cells(job: &Value, now: i128) -> Vec<Value> {
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match opt_int(job, "/spec/completions") {
        Some(n) => format!("{succeeded}/{n}"),
        None => match opt_int(job, "/spec/parallelism").unwrap_or(1) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(job, "/status/startTime"),
        time_at(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_nanos(now - start),
        (Some(start), Some(end)) => human_nanos(end - start),
    };
    let status = if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if is_deleting(job) {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = container_cells(job, "/spec/template/spec/containers");
    vec![
        name(job),
        json!(status),
        json!(completions),
        json!(duration),
        age(job, now),
        names,
        images,
        json!(format_label_selector(at(job, "/spec/selector"))),
    ]
}

fn cron_job_cells(cj: &Value, now: i128) -> Vec<Value> {
    let last_schedule = match opt_str(cj, "/status/lastScheduleTime") {
        Some(t) => since(now, parse_time(t)),
        None => "<none>".to_owned(),
    };
    let suspend = if bool_at(cj, "/spec/suspend") {
        "True"
    } else {
        "False"
    };
    let [names, images] = container_cells(cj, "/spec/jobTemplate/spec/template/spec/containers");
    vec![
        name(cj),
        json!(str_at(cj, "/spec/schedule")),
        json!(opt_str(cj, "/spec/timeZone").unwrap_or("<none>")),
        json!(suspend),
        json!(len(cj, "/status/active")),
        json!(last_schedule),
        age(cj, now),
        names,
        images,
        json!(format_label_selector(at(
            cj,
            "/spec/jobTemplate/spec/selector"
        ))),
    ]
}

/// Load-balancer ingress points (IP, else hostname), without duplicates, in order.
fn load_balancer_ingress(v: &Value, pointer: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ingress in arr(v, pointer) {
        let point = or(str_at(ingress, "/ip"), str_at(ingress, "/hostname"));
        if !point.is_empty() && !out.iter().any(|p| p == point) {
            out.push(point.to_owned());
        }
    }
    out
}

fn service_external_ip(svc: &Value, ty: &str) -> String {
    let external: Vec<String> = arr(svc, "/spec/externalIPs").iter().map(scalar).collect();
    match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_owned()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(svc, "/status/loadBalancer/ingress");
            if all.is_empty() && external.is_empty() {
                return "<pending>".to_owned();
            }
            all.extend(external);
            all.join(",")
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

fn service_cells(svc: &Value, now: i128) -> Vec<Value> {
    let ty = or(str_at(svc, "/spec/type"), "ClusterIP");
    let cluster_ip = arr(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(svc, "/spec/clusterIP"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let protocol = or(str_at(p, "/protocol"), "TCP");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    vec![
        name(svc),
        json!(ty),
        json!(cluster_ip),
        json!(service_external_ip(svc, ty)),
        json!(ports),
        age(svc, now),
        json!(format_labels(at(svc, "/spec/selector"))),
    ]
}

/// `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = arr(subset, "/addresses");
        let ports = arr(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses.iter().take(MAX.saturating_sub(list.len())) {
                list.push(str_at(a, "/ip").to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses.iter().take(MAX.saturating_sub(list.len())) {
                list.push(join_host_port(str_at(a, "/ip"), int_at(port, "/port")));
            }
        }
    }
    with_more(&list, count, MAX)
}

fn endpoints_cells(ep: &Value, now: i128) -> Vec<Value> {
    vec![name(ep), json!(format_endpoints(ep)), age(ep, now)]
}

fn endpoint_slice_cells(slice: &Value, now: i128) -> Vec<Value> {
    const MAX: usize = 3;
    let ports: Vec<String> = arr(slice, "/ports")
        .iter()
        .map(|p| match (opt_int(p, "/port"), opt_str(p, "/name")) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => "*".to_owned(),
        })
        .collect();
    let addresses: Vec<String> = arr(slice, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses").iter().map(scalar))
        .collect();
    let unset_or = |list: &[String]| {
        if list.is_empty() {
            "<unset>".to_owned()
        } else {
            with_more(&list[..list.len().min(MAX)], list.len(), MAX)
        }
    };
    vec![
        name(slice),
        json!(str_at(slice, "/addressType")),
        json!(unset_or(&ports)),
        json!(unset_or(&addresses)),
        age(slice, now),
    ]
}

fn node_cells(node: &Value, now: i128) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(ready) = arr(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| str_at(c, "/type") == "Ready")
    {
        status.push(if str_at(ready, "/status") == "True" {
            "Ready".to_owned()
        } else {
            "NotReady".to_owned()
        });
    } else {
        status.push("Unknown".to_owned());
    }
    if bool_at(node, "/spec/unschedulable") {
        status.push("SchedulingDisabled".to_owned());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = obj(node, "/metadata/labels") {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_owned());
                }
            } else if k == "kubernetes.io/role" {
                let v = scalar(v);
                if !v.is_empty() {
                    roles.insert(v);
                }
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |ty: &str| {
        arr(node, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == ty)
            .map_or("<none>", |a| str_at(a, "/address"))
    };
    let info = |field: &str| {
        or(
            str_at(node, &format!("/status/nodeInfo/{field}")),
            "<unknown>",
        )
        .to_owned()
    };
    vec![
        name(node),
        json!(status.join(",")),
        json!(roles),
        age(node, now),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn event_cells(ev: &Value, now: i128) -> Vec<Value> {
    let first = match time_at(ev, "/firstTimestamp") {
        Some(t) => human_nanos(now - t),
        None => since(now, time_at(ev, "/eventTime")),
    };
    let mut last = match time_at(ev, "/lastTimestamp") {
        Some(t) => human_nanos(now - t),
        None => first.clone(),
    };
    let mut count = int_at(ev, "/count");
    if has_obj(ev, "/series") {
        last = since(now, time_at(ev, "/series/lastObservedTime"));
        count = int_at(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let target = match str_at(ev, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = or(
        str_at(ev, "/source/component"),
        str_at(ev, "/reportingComponent"),
    );
    let instance = or(str_at(ev, "/source/host"), str_at(ev, "/reportingInstance"));
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(str_at(ev, "/type")),
        json!(str_at(ev, "/reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(ev, "/message").trim()),
        json!(first),
        json!(count),
        name(ev),
    ]
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order.
fn access_modes(v: &Value, pointer: &str) -> String {
    let modes: Vec<&str> = arr(v, pointer).iter().filter_map(Value::as_str).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a PV or PVC: the beta annotation wins over `spec.storageClassName`.
fn storage_class_of(v: &Value) -> String {
    obj(v, "/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .map(scalar)
        .unwrap_or_else(|| str_at(v, "/spec/storageClassName").to_owned())
}

fn persistent_volume_cells(pv: &Value, now: i128) -> Vec<Value> {
    let claim = if has_obj(pv, "/spec/claimRef") {
        format!(
            "{}/{}",
            str_at(pv, "/spec/claimRef/namespace"),
            str_at(pv, "/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    let capacity = pv
        .pointer("/spec/capacity/storage")
        .map_or_else(|| "0".to_owned(), scalar);
    let phase = if is_deleting(pv) {
        "Terminating"
    } else {
        or(str_at(pv, "/status/phase"), "Pending")
    };
    vec![
        name(pv),
        json!(capacity),
        json!(access_modes(pv, "/spec/accessModes")),
        json!(or(
            str_at(pv, "/spec/persistentVolumeReclaimPolicy"),
            "Retain"
        )),
        json!(phase),
        json!(claim),
        json!(storage_class_of(pv)),
        json!(opt_str(pv, "/spec/volumeAttributesClassName").unwrap_or("<unset>")),
        json!(str_at(pv, "/status/reason")),
        age(pv, now),
        json!(or(str_at(pv, "/spec/volumeMode"), "Filesystem")),
    ]
}

fn persistent_volume_claim_cells(pvc: &Value, now: i128) -> Vec<Value> {
    let phase = if is_deleting(pvc) {
        "Terminating"
    } else {
        or(str_at(pvc, "/status/phase"), "Pending")
    };
    let volume = str_at(pvc, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            at(pvc, "/status/capacity/storage").map_or_else(|| "0".to_owned(), scalar),
            access_modes(pvc, "/status/accessModes"),
        )
    };
    vec![
        name(pvc),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class_of(pvc)),
        json!(opt_str(pvc, "/spec/volumeAttributesClassName").unwrap_or("<unset>")),
        age(pvc, now),
        json!(or(str_at(pvc, "/spec/volumeMode"), "Filesystem")),
    ]
}

fn resource_quota_cells(rq: &Value, now: i128) -> Vec<Value> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    if let Some(hard) = obj(rq, "/status/hard") {
        let mut resources: Vec<&String> = hard.keys().collect();
        resources.sort();
        for resource in resources {
            let used = obj(rq, "/status/used")
                .and_then(|u| u.get(resource))
                .map_or_else(|| "0".to_owned(), scalar);
            let entry = format!("{resource}: {used}/{}", scalar(&hard[resource]));
            if resource.starts_with("limits.") {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    vec![
        name(rq),
        age(rq, now),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
    ]
}

fn controller_revision_cells(cr: &Value, now: i128) -> Vec<Value> {
    let controller = arr(cr, "/metadata/ownerReferences")
        .iter()
        .find(|r| bool_at(r, "/controller"))
        .map_or_else(
            || "<none>".to_owned(),
            |r| {
                let api_version = str_at(r, "/apiVersion");
                let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                let kind = str_at(r, "/kind");
                let group_kind = if group.is_empty() {
                    kind.to_owned()
                } else {
                    format!("{kind}.{group}")
                };
                if group_kind.is_empty() {
                    str_at(r, "/name").to_owned()
                } else {
                    format!("{}/{}", group_kind.to_lowercase(), str_at(r, "/name"))
                }
            },
        );
    vec![
        name(cr),
        json!(controller),
        json!(int_at(cr, "/revision")),
        age(cr, now),
    ]
}

fn ingress_cells(ing: &Value, now: i128) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = arr(ing, "/spec/rules");
    let mut hosts: Vec<String> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host.to_owned());
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_owned()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if arr(ing, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ing),
        json!(opt_str(ing, "/spec/ingressClassName").unwrap_or("<none>")),
        json!(hosts),
        json!(load_balancer_ingress(ing, "/status/loadBalancer/ingress").join(",")),
        json!(ports),
        age(ing, now),
    ]
}

fn ingress_class_cells(ic: &Value, now: i128) -> Vec<Value> {
    let parameters = match obj(ic, "/spec/parameters") {
        Some(_) => {
            let mut p = str_at(ic, "/spec/parameters/kind").to_owned();
            if let Some(group) = opt_str(ic, "/spec/parameters/apiGroup") {
                p = format!("{p}.{group}");
            }
            format!("{p}/{}", str_at(ic, "/spec/parameters/name"))
        }
        None => "<none>".to_owned(),
    };
    vec![
        name(ic),
        json!(str_at(ic, "/spec/controller")),
        json!(parameters),
        age(ic, now),
    ]
}

fn storage_class_cells(sc: &Value, now: i128) -> Vec<Value> {
    let annotations = obj(sc, "/metadata/annotations");
    let is_default = annotations.is_some_and(|a| {
        [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|k| a.get(*k).and_then(Value::as_str) == Some("true"))
    });
    let mut display = str_at(sc, "/metadata/name").to_owned();
    if is_default {
        display.push_str(" (default)");
    }
    vec![
        json!(display),
        json!(str_at(sc, "/provisioner")),
        json!(or(str_at(sc, "/reclaimPolicy"), "Delete")),
        json!(or(str_at(sc, "/volumeBindingMode"), "Immediate")),
        json!(bool_at(sc, "/allowVolumeExpansion")),
        age(sc, now),
    ]
}

fn role_binding_cells(rb: &Value, now: i128) -> Vec<Value> {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr(rb, "/subjects") {
        let name = str_at(subject, "/name");
        match str_at(subject, "/kind") {
            "User" => users.push(name.to_owned()),
            "Group" => groups.push(name.to_owned()),
            "ServiceAccount" => sas.push(format!("{}:{name}", str_at(subject, "/namespace"))),
            _ => {}
        }
    }
    vec![
        name(rb),
        json!(format!(
            "{}/{}",
            str_at(rb, "/roleRef/kind"),
            str_at(rb, "/roleRef/name")
        )),
        age(rb, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

fn pod_disruption_budget_cells(pdb: &Value, now: i128) -> Vec<Value> {
    let int_or_string = |pointer: &str| match at(pdb, pointer) {
        None | Some(Value::Null) => "N/A".to_owned(),
        Some(v) => scalar(v),
    };
    vec![
        name(pdb),
        json!(int_or_string("/spec/minAvailable")),
        json!(int_or_string("/spec/maxUnavailable")),
        json!(int_at(pdb, "/status/disruptionsAllowed")),
        age(pdb, now),
    ]
}

/// `formatHPAMetrics`: `cpu: 12%/80%` and friends, two at most then `+ N more...`.
fn format_hpa_metrics(hpa: &Value) -> String {
    const MAX: usize = 2;
    let default_cpu = json!([{"type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    let specs = match arr(hpa, "/spec/metrics") {
        [] => default_cpu.as_array().map_or(&[][..], Vec::as_slice),
        specs => specs,
    };
    let statuses = arr(hpa, "/status/currentMetrics");
    let unknown = || "<unknown>".to_owned();
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let current = |source: &str, field: &str| {
            status
                .and_then(|s| at(s, &format!("/{source}/current/{field}")))
                .map(scalar)
        };
        let entry = match str_at(spec, "/type") {
            ty @ ("External" | "Object") => {
                let source = if ty == "External" {
                    "external"
                } else {
                    "object"
                };
                match at(spec, &format!("/{source}/target/averageValue")) {
                    Some(target) => format!(
                        "{}/{} (avg)",
                        current(source, "averageValue").unwrap_or_else(unknown),
                        scalar(target)
                    ),
                    None => format!(
                        "{}/{}",
                        current(source, "value").unwrap_or_else(unknown),
                        scalar(
                            at(spec, &format!("/{source}/target/value")).unwrap_or(&Value::Null)
                        )
                    ),
                }
            }
            "Pods" => format!(
                "{}/{}",
                current("pods", "averageValue").unwrap_or_else(unknown),
                scalar(at(spec, "/pods/target/averageValue").unwrap_or(&Value::Null))
            ),
            ty @ ("Resource" | "ContainerResource") => {
                let source = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let resource = str_at(spec, &format!("/{source}/name"));
                match at(spec, &format!("/{source}/target/averageValue")) {
                    Some(target) => format!(
                        "{resource}: {}/{}",
                        current(source, "averageValue").unwrap_or_else(unknown),
                        scalar(target)
                    ),
                    None => {
                        let current = current(source, "averageUtilization")
                            .map_or_else(unknown, |u| format!("{u}%"));
                        let target = opt_int(spec, &format!("/{source}/target/averageUtilization"))
                            .map_or_else(|| "<auto>".to_owned(), |u| format!("{u}%"));
                        format!("{resource}: {current}/{target}")
                    }
                }
            }
            _ => "<unknown type>".to_owned(),
        };
        list.push(entry);
    }
    let count = list.len();
    list.truncate(MAX);
    let joined = list.join(", ");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn horizontal_pod_autoscaler_cells(hpa: &Value, now: i128) -> Vec<Value> {
    vec![
        name(hpa),
        json!(format!(
            "{}/{}",
            str_at(hpa, "/spec/scaleTargetRef/kind"),
            str_at(hpa, "/spec/scaleTargetRef/name")
        )),
        json!(format_hpa_metrics(hpa)),
        // autoscaling/v2 defaults minReplicas to 1.
        json!(opt_int(hpa, "/spec/minReplicas").unwrap_or(1).to_string()),
        json!(int_at(hpa, "/spec/maxReplicas")),
        json!(int_at(hpa, "/status/currentReplicas")),
        age(hpa, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2025-05-01T12:00:00Z";

    fn at(s: &str) -> SystemTime {
        let nanos = parse_time(s).unwrap();
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap())
    }

    fn now() -> SystemTime {
        at(NOW)
    }

    /// The cells of one row, as kubectl would print them. Checks on the way that [`write_row`] agrees with
    /// [`row`] on `object` and on a noisy twin of it, so every fixture here tests the pruned parsing too.
    fn cells(kind: &str, object: &Value) -> Vec<String> {
        assert_write_row_matches(kind, object);
        assert_write_row_matches(kind, &noisy(object));
        let row = row(kind, object, now(), IncludeObject::None);
        row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    const INCLUDES: [IncludeObject; 3] = [
        IncludeObject::None,
        IncludeObject::Metadata,
        IncludeObject::Object,
    ];

    /// [`write_row`] of `object` as stored gives the bytes of [`row`] of it parsed, for every `includeObject`,
    /// appending to what `out` holds.
    fn assert_write_row_matches(kind: &str, object: &Value) {
        let json = serde_json::to_vec(object).unwrap();
        let parsed: Value = serde_json::from_slice(&json).unwrap();
        for include in INCLUDES {
            let want = serde_json::to_string(&row(kind, &parsed, now(), include)).unwrap();
            let mut out = b"[".to_vec();
            write_row(kind, &json, now(), include, &mut out).unwrap();
            assert_eq!(
                std::str::from_utf8(&out[1..]).unwrap(),
                want,
                "{kind} {include:?}"
            );
        }
    }

    /// `v` with fields no printer reads added to every object, deep ones with strings to unescape, so that
    /// skipping them is exercised everywhere (they may change cells, e.g. a selector's: `row` sees them too).
    fn noisy(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut m: Map<String, Value> =
                    m.iter().map(|(k, v)| (k.clone(), noisy(v))).collect();
                m.insert(
                    "zzNoise".to_owned(),
                    json!({"a": [1, -2, 3.5, 1e300, true, null, "q\"u\\o\nte\u{e9}\u{1F600}", {"deep": [[{}], []]}],
                        "managedFields": [{"manager": "kubectl", "operation": "Apply",
                            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]}),
                );
                m.insert("aaNoise".to_owned(), json!("\u{1}\t"));
                Value::Object(m)
            }
            Value::Array(items) => Value::Array(items.iter().map(noisy).collect()),
            other => other.clone(),
        }
    }

    /// Only the columns kubectl shows without `-o wide`.
    fn narrow(kind: &str, object: &Value) -> Vec<String> {
        let all = cells(kind, object);
        columns(kind)
            .iter()
            .zip(all)
            .filter(|(col, _)| col.priority == 0)
            .map(|(_, cell)| cell)
            .collect()
    }

    fn names(kind: &str, wide: bool) -> Vec<String> {
        column_definitions(kind, wide)
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_uppercase())
            .collect()
    }

    fn meta(name: &str, created: &str) -> Value {
        json!({"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "42",
            "creationTimestamp": created, "labels": {"app": name}})
    }

    // --- durations ------------------------------------------------------------------------------------

    #[test]
    fn human_duration_matches_apimachinery() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (5 * 60 + 30, "5m30s"),
            (9 * 60 + 59, "9m59s"),
            (10 * 60, "10m"),
            (10 * 60 + 59, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (740 * 86400, "2y10d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400 + 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(*secs)), *want, "{secs}s");
        }
        assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
        assert_eq!(human_nanos(-NANOS_PER_SEC), "0s");
        assert_eq!(human_nanos(-NANOS_PER_SEC * 3 / 2), "0s");
        assert_eq!(human_nanos(-2 * NANOS_PER_SEC), "<invalid>");
    }

    #[test]
    fn parses_and_formats_rfc3339() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time("2025-05-01T12:00:00Z"),
            Some(1_746_100_800 * NANOS_PER_SEC)
        );
        assert_eq!(
            parse_time("2025-05-01T12:00:00.250000Z"),
            Some(1_746_100_800 * NANOS_PER_SEC + 250_000_000)
        );
        assert_eq!(
            parse_time("2025-05-01T14:00:00+02:00"),
            parse_time("2025-05-01T12:00:00Z")
        );
        assert_eq!(
            parse_time("2025-05-01T07:30:00-04:30"),
            parse_time("2025-05-01T12:00:00Z")
        );
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Some(-NANOS_PER_SEC));
        for bad in [
            "",
            "2025-05-01",
            "2025-13-01T00:00:00Z",
            "2025-05-01T00:00:00",
            "2025-05-01T00:00:00.Z",
            "2025-05-01T00:00:00Zjunk",
            "2025-05-01T0a:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-12-31T00:00:01Z",
            "1960-06-15T10:20:30Z",
        ] {
            assert_eq!(format_time(parse_time(s).unwrap()), s);
        }
        assert_eq!(
            format_time(parse_time("2025-05-01T14:00:00.9+02:00").unwrap()),
            "2025-05-01T12:00:00Z"
        );
    }

    #[test]
    fn include_object_parses_the_query_value() {
        assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::parse("Metadata"),
            Some(IncludeObject::Metadata)
        );
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("object"), None);
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }

    // --- pods -----------------------------------------------------------------------------------------

    fn running(name: &str, restarts: i64, last_finished: Option<&str>) -> Value {
        let mut s = json!({"name": name, "ready": true, "started": true, "restartCount": restarts,
            "image": "nginx", "state": {"running": {"startedAt": "2025-05-01T11:00:00Z"}}});
        if let Some(f) = last_finished {
            s["lastState"] =
                json!({"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": f}});
        }
        s
    }

    #[test]
    fn running_pod_with_restarts() {
        let pod = json!({
            "metadata": meta("web-7d4b9c-x2x9k", "2025-04-29T12:00:00Z"),
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    running("app", 2, Some("2025-05-01T11:40:00Z")),
                    running("sidecar", 1, Some("2025-05-01T11:55:00Z")),
                ]}
        });
        assert_eq!(
            cells("Pod", &pod),
            [
                "web-7d4b9c-x2x9k",
                "2/2",
                "Running",
                "3 (5m ago)",
                "2d",
                "10.244.1.7",
                "node-1",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn running_pod_without_restarts_and_only_pod_ip() {
        let pod = json!({
            "metadata": meta("nginx", "2025-05-01T11:59:15Z"),
            "spec": {"nodeName": "node-1", "containers": [{"name": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5",
                "containerStatuses": [running("nginx", 0, None)]}
        });
        assert_eq!(
            cells("Pod", &pod),
            [
                "nginx",
                "1/1",
                "Running",
                "0",
                "45s",
                "10.244.0.5",
                "node-1",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn pending_pod_creating_its_container() {
        let pod = json!({
            "metadata": meta("db-0", "2025-05-01T11:58:00Z"),
            "spec": {"nodeName": "node-2", "containers": [{"name": "postgres"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "postgres", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        });
        assert_eq!(
            cells("Pod", &pod),
            [
                "db-0",
                "0/1",
                "ContainerCreating",
                "0",
                "2m",
                "<none>",
                "node-2",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn unscheduled_pod_is_pending() {
        let pod = json!({
            "metadata": meta("big", "2025-05-01T11:00:00Z"),
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "node-3",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
        });
        assert_eq!(
            cells("Pod", &pod),
            [
                "big", "0/2", "Pending", "0", "60m", "<none>", "<none>", "node-3", "<none>"
            ]
        );
        let gated = json!({
            "metadata": meta("gated", "2025-05-01T11:00:00Z"),
            "spec": {"containers": [{"name": "a"}], "schedulingGates": [{"name": "x"}]},
            "status": {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
        });
        assert_eq!(narrow("Pod", &gated)[2], "SchedulingGated");
    }

    #[test]
    fn crash_looping_pod() {
        let pod = json!({
            "metadata": meta("crashy", "2025-05-01T11:00:00Z"),
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": false,
                "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "finishedAt": "2025-05-01T11:59:30Z"}}}]}
        });
        assert_eq!(
            narrow("Pod", &pod),
            ["crashy", "0/1", "CrashLoopBackOff", "5 (30s ago)", "60m"]
        );
    }

    #[test]
    fn terminated_containers_show_their_reason_or_exit_code() {
        let with_state = |state: Value| {
            json!({
                "metadata": meta("p", "2025-05-01T11:00:00Z"),
                "spec": {"containers": [{"name": "app"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": false,
                    "restartCount": 0, "state": state}]}
            })
        };
        let status = |state: Value| narrow("Pod", &with_state(state))[2].clone();
        assert_eq!(
            status(json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})),
            "OOMKilled"
        );
        assert_eq!(status(json!({"terminated": {"exitCode": 2}})), "ExitCode:2");
        assert_eq!(
            status(json!({"terminated": {"exitCode": 0, "signal": 9}})),
            "Signal:9"
        );
        assert_eq!(
            status(json!({"waiting": {"reason": "ImagePullBackOff"}})),
            "ImagePullBackOff"
        );
        assert_eq!(
            status(json!({"waiting": {"reason": "ErrImagePull"}})),
            "ErrImagePull"
        );
    }

    #[test]
    fn terminating_pod() {
        let mut m = meta("old", "2025-05-01T10:00:00Z");
        m["deletionTimestamp"] = json!("2025-05-01T11:59:50Z");
        m["deletionGracePeriodSeconds"] = json!(30);
        let pod = json!({
            "metadata": m,
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [running("app", 0, None)]}
        });
        assert_eq!(
            narrow("Pod", &pod),
            ["old", "1/1", "Terminating", "0", "120m"]
        );

        // A finished pod keeps its status while deleted; a lost node's pod reads Unknown.
        let mut done = pod.clone();
        done["status"] = json!({"phase": "Succeeded", "containerStatuses": [{"name": "app",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(narrow("Pod", &done)[2], "Completed");
        let mut lost = pod.clone();
        lost["status"]["reason"] = json!("NodeLost");
        assert_eq!(narrow("Pod", &lost)[2], "Unknown");
    }

    #[test]
    fn completed_and_failed_pods_carry_row_conditions() {
        let pod = json!({
            "metadata": meta("job-abc", "2025-05-01T11:00:00Z"),
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "main", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
        });
        let r = row("Pod", &pod, now(), IncludeObject::None);
        assert_eq!(r["cells"][1], "0/1");
        assert_eq!(r["cells"][2], "Completed");
        assert_eq!(
            r["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
        );
        let mut failed = pod.clone();
        failed["status"]["phase"] = json!("Failed");
        failed["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        let r = row("Pod", &failed, now(), IncludeObject::None);
        assert_eq!(r["cells"][2], "Error");
        assert_eq!(r["conditions"][0]["reason"], "Failed");
        // An evicted pod shows the pod-level reason.
        let evicted = json!({
            "metadata": meta("ev", "2025-05-01T11:00:00Z"),
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
        });
        assert_eq!(narrow("Pod", &evicted)[2], "Evicted");
        assert!(
            row("Pod", &pod_running(), now(), IncludeObject::None)
                .get("conditions")
                .is_none()
        );
    }

    fn pod_running() -> Value {
        json!({
            "metadata": meta("r", "2025-05-01T11:00:00Z"),
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [running("app", 0, None)]}
        })
    }

    fn init_pod(init_statuses: Value, containers: Value) -> Value {
        json!({
            "metadata": meta("init", "2025-05-01T11:59:00Z"),
            "spec": {"initContainers": [{"name": "migrate"}, {"name": "seed"}],
                "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": init_statuses,
                "containerStatuses": containers}
        })
    }

    #[test]
    fn init_containers() {
        let waiting_app = json!([{"name": "app", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}}}]);
        let first_running = init_pod(
            json!([
                {"name": "migrate", "ready": false, "restartCount": 0,
                    "state": {"running": {"startedAt": "2025-05-01T11:59:10Z"}}},
                {"name": "seed", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}}
            ]),
            waiting_app.clone(),
        );
        assert_eq!(
            narrow("Pod", &first_running),
            ["init", "0/1", "Init:0/2", "0", "60s"]
        );

        let second_running = init_pod(
            json!([
                {"name": "migrate", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "seed", "ready": false, "restartCount": 0,
                    "state": {"running": {}}}
            ]),
            waiting_app.clone(),
        );
        assert_eq!(narrow("Pod", &second_running)[2], "Init:1/2");

        let crashing = init_pod(
            json!([
                {"name": "migrate", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2025-05-01T11:59:40Z"}}},
                {"name": "seed", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}}
            ]),
            waiting_app.clone(),
        );
        assert_eq!(
            narrow("Pod", &crashing),
            ["init", "0/1", "Init:CrashLoopBackOff", "3 (20s ago)", "60s"]
        );

        let errored = init_pod(
            json!([{"name": "migrate", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
            waiting_app.clone(),
        );
        assert_eq!(narrow("Pod", &errored)[2], "Init:Error");
        let exit_code = init_pod(
            json!([{"name": "migrate", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 3}}}]),
            waiting_app.clone(),
        );
        assert_eq!(narrow("Pod", &exit_code)[2], "Init:ExitCode:3");
        let signal = init_pod(
            json!([{"name": "migrate", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "signal": 15}}}]),
            waiting_app,
        );
        // Exit code 0 means the init container succeeded, whatever the signal: the app container's
        // waiting reason shows.
        assert_eq!(narrow("Pod", &signal)[2], "PodInitializing");
    }

    #[test]
    fn sidecar_init_containers_count_as_containers() {
        let pod = json!({
            "metadata": meta("mesh", "2025-05-01T11:00:00Z"),
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                "containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
                    "restartCount": 1, "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-05-01T11:50:00Z"}}}],
                "containerStatuses": [running("app", 0, None)]}
        });
        assert_eq!(
            narrow("Pod", &pod),
            ["mesh", "2/2", "Running", "1 (10m ago)", "60m"]
        );
    }

    #[test]
    fn completed_container_next_to_a_running_one() {
        let pod = |ready_condition: &str| {
            json!({
                "metadata": meta("mixed", "2025-05-01T11:00:00Z"),
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": ready_condition}],
                    "containerStatuses": [
                        running("a", 0, None),
                        {"name": "b", "ready": false, "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                    ]}
            })
        };
        assert_eq!(narrow("Pod", &pod("True"))[1..3], ["1/2", "Running"]);
        assert_eq!(narrow("Pod", &pod("False"))[1..3], ["1/2", "NotReady"]);
    }

    #[test]
    fn readiness_gates() {
        let pod = json!({
            "metadata": meta("gates", "2025-05-01T11:00:00Z"),
            "spec": {"containers": [{"name": "a"}],
                "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
                "conditions": [{"type": "example.com/lb", "status": "True"},
                    {"type": "example.com/dns", "status": "False"}],
                "containerStatuses": [running("a", 0, None)]}
        });
        let c = cells("Pod", &pod);
        assert_eq!(c[5], "fd00::5");
        assert_eq!(c[8], "1/2");
    }

    // --- workloads ------------------------------------------------------------------------------------

    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployment_mid_rollout() {
        let d = json!({
            "metadata": meta("web", "2025-04-30T12:00:00Z"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                "template": template(json!([{"name": "nginx", "image": "nginx:1.27"},
                    {"name": "log", "image": "busybox:1.36"}]))},
            "status": {"replicas": 4, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2}
        });
        assert_eq!(
            cells("Deployment", &d),
            [
                "web",
                "2/3",
                "1",
                "2",
                "24h",
                "nginx,log",
                "nginx:1.27,busybox:1.36",
                "app=web,tier=fe"
            ]
        );
        assert_eq!(
            names("Deployment", false),
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        );
        // No status yet, replicas defaulted to 1.
        let fresh = json!({"metadata": meta("new", "2025-05-01T12:00:00Z"),
            "spec": {"selector": {"matchLabels": {"app": "new"}}, "template": template(json!([]))}});
        assert_eq!(narrow("Deployment", &fresh), ["new", "0/1", "0", "0", "0s"]);
        let selector = json!({"metadata": meta("s", "2025-05-01T12:00:00Z"),
            "spec": {"replicas": 0, "selector": {"matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "app", "operator": "Exists"}]}}});
        assert_eq!(cells("Deployment", &selector)[1], "0/0");
        assert_eq!(cells("Deployment", &selector)[7], "app,env in (dev,prod)");
    }

    #[test]
    fn replica_set_stateful_set_daemon_set() {
        let rs = json!({
            "metadata": meta("web-7d4b9c", "2025-05-01T09:00:00Z"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                "template": template(json!([{"name": "nginx", "image": "nginx"}]))},
            "status": {"replicas": 3, "readyReplicas": 2}
        });
        assert_eq!(
            cells("ReplicaSet", &rs),
            [
                "web-7d4b9c",
                "3",
                "3",
                "2",
                "3h",
                "nginx",
                "nginx",
                "app=web,pod-template-hash=7d4b9c"
            ]
        );
        assert_eq!(
            names("ReplicaSet", false),
            ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
        );
        assert_eq!(
            row("ReplicaSet", &rs, now(), IncludeObject::None)["cells"][1],
            json!(3)
        );

        let sts = json!({
            "metadata": meta("db", "2025-05-01T11:50:00Z"),
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": template(json!([{"name": "pg", "image": "postgres:16"}]))},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        assert_eq!(
            cells("StatefulSet", &sts),
            ["db", "1/3", "10m", "pg", "postgres:16"]
        );

        let ds = json!({
            "metadata": meta("fluentd", "2025-04-01T12:00:00Z"),
            "spec": {"selector": {"matchLabels": {"name": "fluentd"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
                    "containers": [{"name": "fluentd", "image": "fluentd:v1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2}
        });
        assert_eq!(
            cells("DaemonSet", &ds),
            [
                "fluentd",
                "3",
                "3",
                "2",
                "3",
                "2",
                "disk=ssd,kubernetes.io/os=linux",
                "30d",
                "fluentd",
                "fluentd:v1",
                "name=fluentd"
            ]
        );
        assert_eq!(
            names("DaemonSet", false),
            [
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE"
            ]
        );
        let no_selector = json!({"metadata": meta("x", "2025-05-01T12:00:00Z")});
        assert_eq!(cells("DaemonSet", &no_selector)[6], "<none>");
        assert_eq!(cells("DaemonSet", &no_selector)[10], "<none>");
    }

    fn job(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["template"] = template(json!([{"name": "pi", "image": "perl:5.34"}]));
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
        json!({"metadata": meta("pi", "2025-05-01T11:00:00Z"), "spec": spec, "status": status})
    }

    #[test]
    fn jobs() {
        let running = job(
            json!({"completions": 1, "parallelism": 1}),
            json!({"startTime": "2025-05-01T11:00:05Z", "active": 1}),
        );
        assert_eq!(
            cells("Job", &running),
            [
                "pi",
                "Running",
                "0/1",
                "59m",
                "60m",
                "pi",
                "perl:5.34",
                "batch.kubernetes.io/controller-uid=abc"
            ]
        );
        assert_eq!(
            names("Job", false),
            ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
        );
        let complete = job(
            json!({"completions": 1}),
            json!({"startTime": "2025-05-01T11:00:00Z", "completionTime": "2025-05-01T11:00:12Z",
                "succeeded": 1, "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            narrow("Job", &complete),
            ["pi", "Complete", "1/1", "12s", "60m"]
        );
        let failed = job(
            json!({"completions": 3, "parallelism": 3}),
            json!({"startTime": "2025-05-01T11:00:00Z", "failed": 7, "succeeded": 1, "conditions": [
                {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}),
        );
        assert_eq!(narrow("Job", &failed)[1..3], ["Failed", "1/3"]);
        let failing = job(
            json!({"completions": 3}),
            json!({"startTime": "2025-05-01T11:00:00Z",
                "conditions": [{"type": "FailureTarget", "status": "True"}]}),
        );
        assert_eq!(narrow("Job", &failing)[1], "FailureTarget");
        let suspended = job(
            json!({"suspend": true}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        assert_eq!(narrow("Job", &suspended)[1..4], ["Suspended", "0/1", ""]);
        let parallel = job(json!({"parallelism": 4}), json!({"succeeded": 2}));
        assert_eq!(narrow("Job", &parallel)[2], "2/1 of 4");
        let mut deleting = running.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2025-05-01T11:59:00Z");
        assert_eq!(narrow("Job", &deleting)[1], "Terminating");
    }

    #[test]
    fn cron_jobs() {
        let cj = json!({
            "metadata": meta("hello", "2025-04-28T12:00:00Z"),
            "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {
                "template": template(json!([{"name": "hello", "image": "busybox"}]))}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2025-05-01T11:55:00Z"}
        });
        assert_eq!(
            cells("CronJob", &cj),
            [
                "hello",
                "*/5 * * * *",
                "<none>",
                "False",
                "1",
                "5m",
                "3d",
                "hello",
                "busybox",
                "<none>"
            ]
        );
        assert_eq!(
            names("CronJob", false),
            [
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE"
            ]
        );
        let never = json!({"metadata": meta("n", "2025-05-01T11:00:00Z"),
            "spec": {"schedule": "@daily", "timeZone": "Etc/UTC", "suspend": true}});
        assert_eq!(
            narrow("CronJob", &never),
            ["n", "@daily", "Etc/UTC", "True", "0", "<none>", "60m"]
        );
    }

    // --- services and networking ----------------------------------------------------------------------

    #[test]
    fn services() {
        let cluster_ip = json!({
            "metadata": meta("kube-dns", "2025-04-01T12:00:00Z"),
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}
        });
        assert_eq!(
            cells("Service", &cluster_ip),
            [
                "kube-dns",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "53/UDP,53/TCP,9153/TCP",
                "30d",
                "k8s-app=kube-dns"
            ]
        );
        assert_eq!(
            names("Service", false),
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE"
            ]
        );
        let node_port = json!({
            "metadata": meta("web", "2025-05-01T11:59:00Z"),
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.12.34"], "selector": {"app": "web"},
                "ports": [{"port": 80, "nodePort": 30080, "targetPort": 8080},
                    {"port": 443, "nodePort": 30443, "protocol": "TCP"}]}
        });
        assert_eq!(
            cells("Service", &node_port),
            [
                "web",
                "NodePort",
                "10.96.12.34",
                "<none>",
                "80:30080/TCP,443:30443/TCP",
                "60s",
                "app=web"
            ]
        );
        let pending = json!({
            "metadata": meta("lb", "2025-05-01T11:00:00Z"),
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.1.1"],
                "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}]}
        });
        assert_eq!(
            narrow("Service", &pending),
            [
                "lb",
                "LoadBalancer",
                "10.96.1.1",
                "<pending>",
                "80:31000/TCP,8443/TCP",
                "60m"
            ]
        );
        let mut assigned = pending.clone();
        assigned["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"},
            {"hostname": "lb.example.com"}, {"ip": "203.0.113.7"}]}});
        assigned["spec"]["externalIPs"] = json!(["198.51.100.1"]);
        assert_eq!(
            narrow("Service", &assigned)[3],
            "203.0.113.7,lb.example.com,198.51.100.1"
        );
        let headless = json!({
            "metadata": meta("db", "2025-05-01T11:00:00Z"),
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}}
        });
        assert_eq!(
            cells("Service", &headless),
            [
                "db",
                "ClusterIP",
                "None",
                "<none>",
                "<none>",
                "60m",
                "app=db"
            ]
        );
        let external_name = json!({
            "metadata": meta("ext", "2025-05-01T11:00:00Z"),
            "spec": {"type": "ExternalName", "externalName": "db.example.com",
                "ports": [{"port": 5432, "protocol": "TCP"}]}
        });
        assert_eq!(
            cells("Service", &external_name),
            [
                "ext",
                "ExternalName",
                "<none>",
                "db.example.com",
                "5432/TCP",
                "60m",
                "<none>"
            ]
        );
        let with_external = json!({
            "metadata": meta("e", "2025-05-01T11:00:00Z"),
            "spec": {"clusterIPs": ["10.0.0.1"], "externalIPs": ["1.2.3.4", "5.6.7.8"],
                "ports": [{"port": 80, "protocol": "SCTP"}]}
        });
        assert_eq!(
            narrow("Service", &with_external)[3..5],
            ["1.2.3.4,5.6.7.8", "80/SCTP"]
        );
    }

    #[test]
    fn endpoints_and_endpoint_slices() {
        let ep = json!({
            "metadata": meta("web", "2025-05-01T11:00:00Z"),
            "subsets": [{"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.1.3"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 8443, "protocol": "TCP"}]}]
        });
        assert_eq!(
            cells("Endpoints", &ep),
            [
                "web",
                "10.244.1.2:8080,10.244.1.3:8080,10.244.1.2:8443 + 1 more...",
                "60m"
            ]
        );
        let small = json!({"metadata": meta("kubernetes", "2025-05-01T11:00:00Z"),
            "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 6443}]}]});
        assert_eq!(cells("Endpoints", &small)[1], "[fd00::1]:6443");
        let headless = json!({"metadata": meta("h", "2025-05-01T11:00:00Z"),
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}]});
        assert_eq!(cells("Endpoints", &headless)[1], "10.0.0.1,10.0.0.2");
        let empty = json!({"metadata": meta("none", "2025-05-01T11:00:00Z")});
        assert_eq!(cells("Endpoints", &empty)[1], "<none>");

        let slice = json!({
            "metadata": meta("web-abc12", "2025-05-01T11:00:00Z"),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "named"}, {}],
            "endpoints": [{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.1.3"]},
                {"addresses": ["10.244.1.4"]}, {"addresses": ["10.244.1.5"]}]
        });
        assert_eq!(
            cells("EndpointSlice", &slice),
            [
                "web-abc12",
                "IPv4",
                "80,named,*",
                "10.244.1.2,10.244.1.3,10.244.1.4 + 1 more...",
                "60m"
            ]
        );
        let bare = json!({"metadata": meta("bare", "2025-05-01T11:00:00Z"), "addressType": "IPv6"});
        assert_eq!(cells("EndpointSlice", &bare)[2..4], ["<unset>", "<unset>"]);
    }

    #[test]
    fn ingresses_and_network_policies() {
        let ing = json!({
            "metadata": meta("web", "2025-05-01T11:00:00Z"),
            "spec": {"ingressClassName": "nginx",
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"},
                    {"host": "d.example.com"}],
                "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        });
        assert_eq!(
            cells("Ingress", &ing),
            [
                "web",
                "nginx",
                "a.example.com,b.example.com,c.example.com + 2 more...",
                "192.0.2.10",
                "80, 443",
                "60m"
            ]
        );
        let catch_all = json!({"metadata": meta("all", "2025-05-01T11:00:00Z"),
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}});
        assert_eq!(
            cells("Ingress", &catch_all)[1..5],
            ["<none>", "*", "", "80"]
        );

        let class = json!({"metadata": meta("nginx", "2025-05-01T11:00:00Z"),
            "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        assert_eq!(
            cells("IngressClass", &class),
            [
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/p",
                "60m"
            ]
        );
        let plain = json!({"metadata": meta("plain", "2025-05-01T11:00:00Z"),
            "spec": {"controller": "example.com/c"}});
        assert_eq!(cells("IngressClass", &plain)[2], "<none>");

        let deny_all = json!({"metadata": meta("deny-all", "2025-05-01T11:00:00Z"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
        assert_eq!(
            cells("NetworkPolicy", &deny_all),
            ["deny-all", "<none>", "60m"]
        );
        let web = json!({"metadata": meta("web", "2025-05-01T11:00:00Z"),
            "spec": {"podSelector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}}});
        assert_eq!(cells("NetworkPolicy", &web)[1], "app=web,tier notin (db)");
    }

    // --- config and cluster objects -------------------------------------------------------------------

    #[test]
    fn config_maps_secrets_service_accounts_namespaces() {
        let cm = json!({"metadata": meta("kube-root-ca.crt", "2025-05-01T11:00:00Z"),
            "data": {"ca.crt": "..."}, "binaryData": {"blob": "AAE="}});
        assert_eq!(cells("ConfigMap", &cm), ["kube-root-ca.crt", "2", "60m"]);
        assert_eq!(
            cells(
                "ConfigMap",
                &json!({"metadata": meta("e", "2025-05-01T11:00:00Z")})
            ),
            ["e", "0", "60m"]
        );
        let secret = json!({"metadata": meta("tls", "2025-05-01T11:00:00Z"),
            "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells("Secret", &secret),
            ["tls", "kubernetes.io/tls", "2", "60m"]
        );
        let opaque = json!({"metadata": meta("o", "2025-05-01T11:00:00Z"), "data": {"a": "YQ=="}});
        assert_eq!(cells("Secret", &opaque), ["o", "Opaque", "1", "60m"]);
        let sa = json!({"metadata": meta("default", "2025-05-01T11:00:00Z")});
        assert_eq!(cells("ServiceAccount", &sa), ["default", "0", "60m"]);
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": "Active"}});
        assert_eq!(cells("Namespace", &ns), ["kube-system", "Active", "120d"]);
        let terminating = json!({"metadata": {"name": "old", "creationTimestamp": "2025-05-01T11:00:00Z",
            "deletionTimestamp": "2025-05-01T11:59:00Z"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells("Namespace", &terminating)[1], "Terminating");
    }

    #[test]
    fn nodes() {
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": "2025-04-21T12:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "",
                    "node-role.kubernetes.io/": "", "kubernetes.io/hostname": "cp-1"}},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "Hostname", "address": "cp-1"},
                    {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-21-amd64", "containerRuntimeVersion": "containerd://1.7.13"}}
        });
        assert_eq!(
            cells("Node", &node),
            [
                "cp-1",
                "Ready",
                "control-plane,etcd",
                "10d",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-21-amd64",
                "containerd://1.7.13"
            ]
        );
        assert_eq!(
            names("Node", false),
            ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        );
        let cordoned = json!({
            "metadata": {"name": "w-1", "creationTimestamp": "2025-05-01T11:00:00Z",
                "labels": {"kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}
        });
        assert_eq!(
            cells("Node", &cordoned),
            [
                "w-1",
                "NotReady,SchedulingDisabled",
                "worker",
                "60m",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
        );
        let bare = json!({"metadata": {"name": "n", "creationTimestamp": "2025-05-01T11:00:00Z"}});
        assert_eq!(narrow("Node", &bare)[1..3], ["Unknown", "<none>"]);
    }

    #[test]
    fn events() {
        let ev = json!({
            "metadata": meta("web-0.17f8a", "2025-05-01T11:50:00Z"),
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default",
                "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning",
            "message": "Back-off restarting failed container app in pod web-0\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-05-01T11:50:00Z", "lastTimestamp": "2025-05-01T11:59:00Z", "count": 12
        });
        assert_eq!(
            cells("Event", &ev),
            [
                "60s",
                "Warning",
                "BackOff",
                "pod/web-0",
                "spec.containers{app}",
                "kubelet, node-1",
                "Back-off restarting failed container app in pod web-0",
                "10m",
                "12",
                "web-0.17f8a"
            ]
        );
        assert_eq!(
            names("Event", false),
            ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        );
        // events.k8s.io-style: eventTime, series, reporting controller.
        let series = json!({
            "metadata": meta("e2", "2025-05-01T11:00:00Z"),
            "involvedObject": {"kind": "Node"},
            "reason": "Rebooted", "type": "Normal", "message": "m",
            "eventTime": "2025-05-01T11:00:00.123456Z",
            "series": {"count": 3, "lastObservedTime": "2025-05-01T11:58:00.000000Z"},
            "reportingComponent": "kubelet", "reportingInstance": ""
        });
        assert_eq!(
            cells("Event", &series),
            [
                "2m", "Normal", "Rebooted", "node", "", "kubelet", "m", "59m", "3", "e2"
            ]
        );
        let singleton = json!({"metadata": meta("e3", "2025-05-01T11:00:00Z"),
            "involvedObject": {"kind": "Deployment", "name": "web"}, "type": "Normal",
            "reason": "ScalingReplicaSet", "message": "Scaled up"});
        let c = cells("Event", &singleton);
        assert_eq!(
            (c[0].as_str(), c[7].as_str(), c[8].as_str()),
            ("<unknown>", "<unknown>", "1")
        );
    }

    #[test]
    fn persistent_volumes_and_claims() {
        let pv = json!({
            "metadata": {"name": "pv-1", "creationTimestamp": "2025-05-01T11:00:00Z"},
            "spec": {"capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}
        });
        assert_eq!(
            cells("PersistentVolume", &pv),
            [
                "pv-1",
                "10Gi",
                "RWO,RWX",
                "Delete",
                "Bound",
                "default/data",
                "standard",
                "<unset>",
                "",
                "60m",
                "Filesystem"
            ]
        );
        assert_eq!(
            names("PersistentVolume", false),
            [
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE"
            ]
        );
        let bound = json!({
            "metadata": {"name": "data", "namespace": "default", "creationTimestamp": "2025-05-01T11:00:00Z",
                "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}},
                "volumeName": "pv-1", "storageClassName": "standard"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}
        });
        assert_eq!(
            cells("PersistentVolumeClaim", &bound),
            [
                "data",
                "Bound",
                "pv-1",
                "10Gi",
                "RWO",
                "legacy",
                "<unset>",
                "60m",
                "Filesystem"
            ]
        );
        let pending = json!({
            "metadata": {"name": "wait", "namespace": "default", "creationTimestamp": "2025-05-01T11:00:00Z",
                "deletionTimestamp": "2025-05-01T11:30:00Z"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "fast", "volumeAttributesClassName": "gold", "volumeMode": "Block"},
            "status": {"phase": "Pending"}
        });
        assert_eq!(
            cells("PersistentVolumeClaim", &pending),
            [
                "wait",
                "Terminating",
                "",
                "",
                "",
                "fast",
                "gold",
                "60m",
                "Block"
            ]
        );
    }

    #[test]
    fn quotas_limit_ranges_and_rbac() {
        let rq = json!({
            "metadata": meta("compute", "2025-05-01T11:00:00Z"),
            "spec": {"hard": {"requests.cpu": "1", "limits.memory": "2Gi"}},
            "status": {"hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.memory": "2Gi",
                "pods": "10", "limits.cpu": "2"},
                "used": {"requests.cpu": "500m", "pods": "3", "limits.memory": "512Mi"}}
        });
        assert_eq!(
            cells("ResourceQuota", &rq),
            [
                "compute",
                "60m",
                "pods: 3/10, requests.cpu: 500m/1, requests.memory: 0/1Gi",
                "limits.cpu: 0/2, limits.memory: 512Mi/2Gi"
            ]
        );
        let pc = json!({"metadata": meta("high", "2025-05-01T11:00:00Z"), "value": 1000000,
            "globalDefault": true, "preemptionPolicy": "Never"});
        assert_eq!(
            cells("PriorityClass", &pc),
            ["high", "1000000", "true", "60m", "Never"]
        );
        let bare = json!({"metadata": meta("low", "2025-05-01T11:00:00Z"), "value": -1});
        assert_eq!(
            cells("PriorityClass", &bare),
            ["low", "-1", "false", "60m", "<unset>"]
        );
        for kind in ["LimitRange", "Role", "ClusterRole"] {
            let o = json!({"metadata": meta("r", "2025-05-01T11:00:00.5+01:00")});
            assert_eq!(cells(kind, &o), ["r", "2025-05-01T10:00:00Z"], "{kind}");
            assert_eq!(names(kind, true), ["NAME", "CREATED AT"]);
            assert_eq!(column_definitions(kind, true)[1]["type"], "date");
        }
        let rb = json!({
            "metadata": meta("admins", "2025-05-01T11:00:00Z"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "ops"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]
        });
        assert_eq!(
            cells("RoleBinding", &rb),
            [
                "admins",
                "ClusterRole/admin",
                "60m",
                "alice, bob",
                "ops",
                "build:ci"
            ]
        );
        assert_eq!(names("ClusterRoleBinding", false), ["NAME", "ROLE", "AGE"]);
        assert_eq!(cells("ClusterRoleBinding", &rb)[1], "ClusterRole/admin");
    }

    #[test]
    fn controller_revisions_leases_storage_classes() {
        let cr = json!({
            "metadata": {"name": "web-6b5f7c", "namespace": "default", "creationTimestamp": "2025-05-01T11:00:00Z",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "x"},
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
            "revision": 2
        });
        assert_eq!(
            cells("ControllerRevision", &cr),
            ["web-6b5f7c", "statefulset.apps/web", "2", "60m"]
        );
        let orphan = json!({"metadata": meta("o", "2025-05-01T11:00:00Z"), "revision": 1});
        assert_eq!(cells("ControllerRevision", &orphan)[1], "<none>");

        let lease = json!({"metadata": meta("kube-scheduler", "2025-05-01T11:00:00Z"),
            "spec": {"holderIdentity": "cp-1_1234", "leaseDurationSeconds": 15}});
        assert_eq!(
            cells("Lease", &lease),
            ["kube-scheduler", "cp-1_1234", "60m"]
        );
        let free = json!({"metadata": meta("free", "2025-05-01T11:00:00Z"), "spec": {}});
        assert_eq!(cells("Lease", &free)[1], "");

        let sc = json!({
            "metadata": {"name": "standard", "creationTimestamp": "2025-05-01T11:00:00Z",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"
        });
        assert_eq!(
            cells("StorageClass", &sc),
            [
                "standard (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                "false",
                "60m"
            ]
        );
        let plain = json!({"metadata": {"name": "fast", "creationTimestamp": "2025-05-01T11:00:00Z"},
            "provisioner": "csi.example.com", "allowVolumeExpansion": true});
        assert_eq!(
            cells("StorageClass", &plain),
            [
                "fast",
                "csi.example.com",
                "Delete",
                "Immediate",
                "true",
                "60m"
            ]
        );
    }

    #[test]
    fn pod_disruption_budgets_and_autoscalers() {
        let pdb = json!({"metadata": meta("web", "2025-05-01T11:00:00Z"),
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("PodDisruptionBudget", &pdb),
            ["web", "2", "N/A", "1", "60m"]
        );
        let pct = json!({"metadata": meta("p", "2025-05-01T11:00:00Z"),
            "spec": {"maxUnavailable": "25%"}});
        assert_eq!(
            cells("PodDisruptionBudget", &pct)[1..4],
            ["N/A", "25%", "0"]
        );

        let hpa = json!({
            "metadata": meta("web", "2025-05-01T11:00:00Z"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 10, "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "1k"}}}]},
            "status": {"currentReplicas": 3, "desiredReplicas": 3, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 12, "averageValue": "60m"}}}]}
        });
        assert_eq!(
            cells("HorizontalPodAutoscaler", &hpa),
            [
                "web",
                "Deployment/web",
                "cpu: 12%/80%, memory: <unknown>/500Mi + 1 more...",
                "2",
                "10",
                "3",
                "60m"
            ]
        );
        assert_eq!(
            names("HorizontalPodAutoscaler", false),
            [
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ]
        );
        let defaulted = json!({"metadata": meta("d", "2025-05-01T11:00:00Z"),
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 5}});
        assert_eq!(
            cells("HorizontalPodAutoscaler", &defaulted)[2..6],
            ["cpu: <unknown>/80%", "1", "5", "0"]
        );
        let external = json!({"metadata": meta("x", "2025-05-01T11:00:00Z"),
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 5, "metrics": [
                {"type": "External", "external": {"metric": {"name": "queue"},
                    "target": {"type": "Value", "value": "30"}}},
                {"type": "Object", "object": {"metric": {"name": "rps"},
                    "target": {"type": "AverageValue", "averageValue": "100"}}}]},
            "status": {"currentMetrics": [
                {"type": "External", "external": {"metric": {"name": "queue"}, "current": {"value": "7"}}}]}});
        assert_eq!(
            cells("HorizontalPodAutoscaler", &external)[2],
            "7/30, <unknown>/100 (avg)"
        );
    }

    #[test]
    fn unknown_kinds_print_name_and_age() {
        let o = json!({"metadata": meta("thing", "2025-05-01T11:00:00Z")});
        assert_eq!(cells("Widget", &o), ["thing", "60m"]);
        assert_eq!(names("Widget", true), ["NAME", "AGE"]);
        let no_time = json!({"metadata": {"name": "t"}});
        assert_eq!(cells("Widget", &no_time), ["t", "<unknown>"]);
    }

    // --- table shape ----------------------------------------------------------------------------------

    #[test]
    fn every_served_kind_has_one_cell_per_column() {
        let empty = json!({"metadata": {"name": "x"}});
        for resource in crate::registry::RESOURCES {
            let defs = column_definitions(resource.kind, true);
            assert_write_row_matches(resource.kind, &empty);
            let r = row(resource.kind, &empty, now(), IncludeObject::None);
            assert_eq!(
                r["cells"].as_array().unwrap().len(),
                defs.len(),
                "{}",
                resource.kind
            );
            let name_cols: Vec<&Value> = defs.iter().filter(|d| d["format"] == "name").collect();
            assert_eq!(name_cols.len(), 1, "{}", resource.kind);
            assert_eq!(name_cols[0]["name"], "Name");
            if resource.kind != "Event" {
                assert_eq!(defs[0]["name"], "Name", "{}", resource.kind);
                assert_eq!(defs[0]["format"], "name");
            }
            for d in &defs {
                for key in ["name", "type", "format", "description", "priority"] {
                    assert!(d.get(key).is_some(), "{} {key}", resource.kind);
                }
            }
            let narrow = column_definitions(resource.kind, false);
            assert!(narrow.iter().all(|d| d["priority"] == 0));
            assert_eq!(
                narrow.len(),
                defs.iter().filter(|d| d["priority"] == 0).count()
            );
            // Real objects never carry a null cell, except Created At without a timestamp.
            if !matches!(
                resource.kind,
                "LimitRange" | "Role" | "ClusterRole" | "CustomResourceDefinition"
            ) {
                assert!(
                    r["cells"].as_array().unwrap().iter().all(|c| !c.is_null()),
                    "{}",
                    resource.kind
                );
            }
        }
    }

    #[test]
    fn pod_wide_columns() {
        assert_eq!(
            names("Pod", false),
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        assert_eq!(
            names("Pod", true),
            [
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ]
        );
        assert_eq!(
            names("Deployment", true)[5..],
            ["CONTAINERS", "IMAGES", "SELECTOR"]
        );
        assert_eq!(names("Service", true)[6], "SELECTOR");
        assert_eq!(
            names("Node", true)[5..],
            [
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME"
            ]
        );
    }

    #[test]
    fn table_with_partial_object_metadata() {
        let pods = [pod_running(), {
            let mut p = pod_running();
            p["metadata"]["name"] = json!("r2");
            p
        }];
        let t = table(
            "Pod",
            &pods,
            json!({"resourceVersion": "1155", "continue": "abc"}),
            now(),
            IncludeObject::Metadata,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "1155", "continue": "abc"})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC,
                "priority": 0})
        );
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["cells"][0], "r2");
        assert_eq!(
            rows[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": pods[0]["metadata"]})
        );
        assert_eq!(rows[0]["object"]["metadata"]["labels"]["app"], "r");
        assert_eq!(rows[0]["object"]["metadata"]["namespace"], "default");
    }

    #[test]
    fn table_include_object_variants() {
        let pods = [pod_running()];
        let full = table("Pod", &pods, json!({}), now(), IncludeObject::Object);
        assert_eq!(full["rows"][0]["object"], pods[0]);
        let none = table("Pod", &pods, Value::Null, now(), IncludeObject::None);
        assert!(none["rows"][0].get("object").is_none());
        assert_eq!(none["metadata"], json!({}));
        let empty = table(
            "Deployment",
            &[],
            json!({"resourceVersion": "7"}),
            now(),
            IncludeObject::Metadata,
        );
        assert_eq!(empty["rows"], json!([]));
        assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 8);
        let bare = row("ConfigMap", &json!({}), now(), IncludeObject::Metadata);
        assert_eq!(bare["object"]["metadata"], json!({}));
        assert_eq!(bare["cells"], json!(["", 0, "<unknown>"]));
    }

    #[test]
    fn age_tolerates_small_clock_skew() {
        let ahead = json!({"metadata": meta("f", "2025-05-01T12:00:01Z")});
        assert_eq!(cells("ConfigMap", &ahead)[2], "0s");
        let far = json!({"metadata": meta("f", "2025-05-01T12:00:05Z")});
        assert_eq!(cells("ConfigMap", &far)[2], "<invalid>");
    }

    // --- rows from stored JSON ------------------------------------------------------------------------

    /// A pod as a cluster stores it: managedFields, annotations, env, volumes, probes, conditions.
    fn realistic_pod(name: &str, phase: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": "3f0c2b1e-8a9d-4c57-b1f2-0123456789ab",
                "resourceVersion": "123456", "generateName": "web-7d4b9c-",
                "creationTimestamp": "2025-04-30T08:15:00Z",
                "labels": {"app": "web", "pod-template-hash": "7d4b9c", "tier": "frontend"},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-04-30T08:14:00Z",
                    "prometheus.io/scrape": "true", "note": "quote \" backslash \\ newline \n é 😀"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                    "uid": "u-rs", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                    "apiVersion": "v1", "time": "2025-04-30T08:15:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}}]},
            "spec": {"nodeName": "node-7", "serviceAccountName": "web", "restartPolicy": "Always",
                "initContainers": [{"name": "migrate", "image": "migrate:1"},
                    {"name": "proxy", "image": "envoy:1.30", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "registry.example.com/shop/web:2.14.1",
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_IP",
                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]}],
                "volumes": [{"name": "config", "configMap": {"name": "web-config"}},
                    {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
                "readinessGates": [{"conditionType": "example.com/lb"}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}]},
            "status": {"phase": phase, "podIP": "10.244.7.12", "podIPs": [{"ip": "10.244.7.12"}],
                "hostIP": "192.168.1.17", "qosClass": "Burstable", "startTime": "2025-04-30T08:15:02Z",
                "conditions": [{"type": "Initialized", "status": "True", "lastTransitionTime": "2025-04-30T08:15:09Z"},
                    {"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"},
                    {"type": "PodScheduled", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "migrate", "ready": false, "restartCount": 0, "image": "migrate:1",
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                            "finishedAt": "2025-04-30T08:15:08Z"}}},
                    {"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                        "state": {"running": {"startedAt": "2025-04-30T09:00:00Z"}},
                        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                            "finishedAt": "2025-05-01T11:30:00Z"}}}],
                "containerStatuses": [{"name": "app", "ready": true, "started": true, "restartCount": 1,
                    "image": "registry.example.com/shop/web:2.14.1", "imageID": "sha256:abc",
                    "containerID": "containerd://0123", "state": {"running": {"startedAt": "2025-05-01T11:00:00Z"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2025-05-01T11:45:00Z"}}}]}
        })
    }

    #[test]
    fn write_row_matches_row_for_realistic_objects() {
        let mut pods = vec![
            realistic_pod("web-1", "Running"),
            realistic_pod("job-1", "Succeeded"),
            realistic_pod("job-2", "Failed"),
            realistic_pod("init-1", "Pending"),
        ];
        pods[3]["status"]["conditions"][0]["status"] = json!("False");
        pods[3]["status"]["initContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let mut deleting = realistic_pod("old", "Running");
        deleting["metadata"]["deletionTimestamp"] = json!("2025-05-01T11:59:00Z");
        pods.push(deleting);
        let mut lost = realistic_pod("lost", "Running");
        lost["metadata"]["deletionTimestamp"] = json!("2025-05-01T11:59:00Z");
        lost["status"]["reason"] = json!("NodeLost");
        pods.push(lost);
        for pod in &pods {
            assert_write_row_matches("Pod", pod);
        }
        assert!(
            write_row_string("Pod", &pods[1], IncludeObject::None).contains(r#""conditions":"#)
        );

        // Every other kind: one object with what the printer reads and much that it does not.
        let m = realistic_pod("x", "Running")["metadata"].clone();
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": realistic_pod("x", "Running")["spec"]});
        let objects = [
            (
                "Deployment",
                json!({"metadata": m, "spec": {"replicas": 3, "strategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier",
                    "operator": "In", "values": ["frontend"]}]}, "template": template},
                "status": {"replicas": 3, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3,
                    "conditions": [{"type": "Available", "status": "True"}]}}),
            ),
            (
                "ReplicaSet",
                json!({"metadata": m, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": template}, "status": {"replicas": 2, "readyReplicas": 1, "fullyLabeledReplicas": 2}}),
            ),
            (
                "StatefulSet",
                json!({"metadata": m, "spec": {"replicas": 3, "serviceName": "db",
                "template": template}, "status": {"readyReplicas": 2}}),
            ),
            (
                "DaemonSet",
                json!({"metadata": m, "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "agent", "image": "agent:1", "env": [{"name": "A", "value": "b"}]}]}}},
                "status": {"desiredNumberScheduled": 5, "currentNumberScheduled": 5, "numberReady": 4,
                    "updatedNumberScheduled": 5, "numberAvailable": 4, "observedGeneration": 3}}),
            ),
            (
                "Job",
                json!({"metadata": m, "spec": {"completions": 5, "parallelism": 2, "backoffLimit": 6,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}, "template": template},
                "status": {"startTime": "2025-05-01T11:00:00Z", "completionTime": "2025-05-01T11:20:00Z",
                    "succeeded": 5, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                        {"type": "Complete", "status": "True", "message": "done"}]}}),
            ),
            (
                "CronJob",
                json!({"metadata": m, "spec": {"schedule": "0 * * * *", "timeZone": "Europe/Paris",
                "suspend": true, "jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": template}}},
                "status": {"active": [{"name": "j1", "uid": "u"}, {"name": "j2"}],
                    "lastScheduleTime": "2025-05-01T11:00:00Z", "lastSuccessfulTime": "2025-05-01T11:01:00Z"}}),
            ),
            (
                "Service",
                json!({"metadata": m, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.3.4",
                "clusterIPs": ["10.96.3.4", "fd00::4"], "externalIPs": ["198.51.100.9"], "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}], "sessionAffinity": "None"},
                "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9", "ipMode": "VIP"},
                    {"hostname": "lb.example.com"}]}}}),
            ),
            (
                "Service",
                json!({"metadata": m, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            ),
            (
                "Service",
                json!({"metadata": m, "spec": {"clusterIP": "10.96.0.7", "ports": [{"port": 80}]}}),
            ),
            (
                "Service",
                json!({"metadata": m, "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.9"],
                "ports": [{"port": 443, "nodePort": 30443}]}}),
            ),
            (
                "Endpoints",
                json!({"metadata": m, "subsets": [{"addresses": [{"ip": "10.0.0.1",
                "targetRef": {"kind": "Pod", "name": "a"}, "nodeName": "n"}, {"ip": "10.0.0.2"}],
                "notReadyAddresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "http", "port": 80}]}]}),
            ),
            (
                "EndpointSlice",
                json!({"metadata": m, "addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
                "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                    "targetRef": {"kind": "Pod", "name": "a"}}]}),
            ),
            (
                "ConfigMap",
                json!({"metadata": m, "data": {"a.yaml": "x: 1\n", "b": "c"},
                "binaryData": {"blob": "AAE="}}),
            ),
            (
                "Secret",
                json!({"metadata": m, "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": "e30="}}),
            ),
            (
                "ServiceAccount",
                json!({"metadata": m, "secrets": [{"name": "t"}],
                "imagePullSecrets": [{"name": "r"}]}),
            ),
            (
                "Namespace",
                json!({"metadata": m, "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Terminating"}}),
            ),
            (
                "Node",
                json!({"metadata": {"name": "n-1", "creationTimestamp": "2025-04-01T00:00:00Z",
                    "labels": {"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "infra"},
                    "annotations": {"a": "b"}, "managedFields": m["managedFields"]},
                "spec": {"unschedulable": true, "podCIDR": "10.244.1.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"capacity": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True",
                    "reason": "KubeletReady", "message": "ok"}],
                    "addresses": [{"type": "InternalIP", "address": "192.168.1.7"},
                        {"type": "ExternalIP", "address": "203.0.113.7"}],
                    "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Ubuntu 24.04", "kernelVersion": "6.8.0",
                        "containerRuntimeVersion": "containerd://1.7.20", "machineID": "m"},
                    "images": [{"names": ["nginx:1.27"], "sizeBytes": 12_345_678}]}}),
            ),
            (
                "Event",
                json!({"metadata": m, "involvedObject": {"kind": "Pod", "name": "web-1",
                "namespace": "shop", "uid": "u", "fieldPath": "spec.containers{app}"},
                "reason": "Unhealthy", "type": "Warning", "message": "  Readiness probe failed: 503\n",
                "source": {"component": "kubelet", "host": "node-7"}, "count": 4,
                "firstTimestamp": "2025-05-01T11:40:00Z", "lastTimestamp": "2025-05-01T11:58:00Z"}),
            ),
            (
                "Event",
                json!({"metadata": m, "involvedObject": {"kind": "Node", "name": "n"},
                "eventTime": "2025-05-01T11:00:00.000001Z", "reportingComponent": "c", "reportingInstance": "i",
                "series": {"count": 9, "lastObservedTime": "2025-05-01T11:59:00.000000Z"}, "action": "A"}),
            ),
            (
                "PersistentVolume",
                json!({"metadata": m, "spec": {"capacity": {"storage": "20Gi"},
                "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": "shop", "name": "data", "uid": "u"}, "storageClassName": "fast",
                "volumeAttributesClassName": "gold", "volumeMode": "Block",
                "csi": {"driver": "d", "volumeHandle": "h"}}, "status": {"phase": "Failed", "reason": "Oops"}}),
            ),
            (
                "PersistentVolumeClaim",
                json!({"metadata": {"name": "data", "creationTimestamp": "2025-05-01T11:00:00Z",
                    "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy", "other": "x"}},
                "spec": {"volumeName": "pv-1", "storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "5Gi"}}},
                "status": {"phase": "Bound", "capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"]}}),
            ),
            (
                "ResourceQuota",
                json!({"metadata": m, "spec": {"hard": {"pods": "10"}},
                "status": {"hard": {"pods": "10", "limits.cpu": "4"}, "used": {"pods": "3"}}}),
            ),
            (
                "LimitRange",
                json!({"metadata": m, "spec": {"limits": [{"type": "Container"}]}}),
            ),
            (
                "PriorityClass",
                json!({"metadata": m, "value": 1000, "globalDefault": true,
                    "preemptionPolicy": "Never", "description": "d"}),
            ),
            (
                "Role",
                json!({"metadata": m, "rules": [{"verbs": ["get"]}]}),
            ),
            ("ClusterRole", json!({"metadata": m, "rules": []})),
            (
                "ControllerRevision",
                json!({"metadata": m, "revision": 7, "data": {"spec": template}}),
            ),
            (
                "Lease",
                json!({"metadata": m, "spec": {"holderIdentity": "cp-1", "leaseDurationSeconds": 15,
                "renewTime": "2025-05-01T11:59:59.000000Z"}}),
            ),
            (
                "Ingress",
                json!({"metadata": m, "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com",
                "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}], "tls": [{"hosts": ["a.example.com"],
                "secretName": "tls"}]}, "status": {"loadBalancer": {"ingress": [{"hostname": "lb"}]}}}),
            ),
            (
                "IngressClass",
                json!({"metadata": m, "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"kind": "P", "name": "p", "scope": "Cluster"}}}),
            ),
            (
                "NetworkPolicy",
                json!({"metadata": m, "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {}}]}]}}),
            ),
            (
                "StorageClass",
                json!({"metadata": {"name": "fast", "creationTimestamp": "2025-05-01T11:00:00Z",
                    "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true", "x": "y"}},
                "provisioner": "csi.example.com", "parameters": {"type": "ssd"}, "reclaimPolicy": "Retain",
                "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true}),
            ),
            (
                "RoleBinding",
                json!({"metadata": m, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"},
                {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            ),
            (
                "ClusterRoleBinding",
                json!({"metadata": m, "roleRef": {"kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "Group", "name": "g"}]}),
            ),
            (
                "PodDisruptionBudget",
                json!({"metadata": m, "spec": {"maxUnavailable": "10%",
                "selector": {"matchLabels": {"app": "web"}}}, "status": {"disruptionsAllowed": 2,
                "currentHealthy": 5}}),
            ),
            (
                "HorizontalPodAutoscaler",
                json!({"metadata": m, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1",
                "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 9,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                    "averageUtilization": 70}}}]}, "status": {"currentReplicas": 4, "desiredReplicas": 4,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 55}}}]}}),
            ),
            (
                "ReplicationController",
                json!({"metadata": m, "spec": {"replicas": 3, "selector": {"app": "web", "tier": "a"},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
                "status": {"replicas": 3, "readyReplicas": 2}}),
            ),
            (
                "CustomResourceDefinition",
                json!({"metadata": m, "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1",
                "served": true, "storage": true}]}}),
            ),
            ("Widget", json!({"metadata": m, "spec": {"size": 3}})),
        ];
        for (kind, object) in &objects {
            assert_write_row_matches(kind, object);
            assert_write_row_matches(kind, &noisy(object));
        }
        // Every kind the printers know is above (the fixtures of the tests above add more of each).
        // (Reviews are never stored, so never listed.)
        for resource in crate::registry::RESOURCES.iter().filter(|r| r.is_stored()) {
            assert!(
                resource.kind == "Pod" || objects.iter().any(|(k, _)| *k == resource.kind),
                "{}",
                resource.kind
            );
        }
    }

    fn write_row_string(kind: &str, object: &Value, include: IncludeObject) -> String {
        let mut out = Vec::new();
        write_row(
            kind,
            &serde_json::to_vec(object).unwrap(),
            now(),
            include,
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn write_row_edge_cases() {
        // No metadata at all; metadata that is not an object.
        for object in [
            json!({}),
            json!({"metadata": null}),
            json!({"metadata": "m", "spec": 1}),
        ] {
            for kind in ["Pod", "ConfigMap", "Service", "Widget"] {
                assert_write_row_matches(kind, &object);
            }
        }
        // Not an object: the plain way, same bytes.
        for kind in ["Pod", "Event"] {
            for object in [
                json!(null),
                json!([{"metadata": {"name": "a"}}]),
                json!("pod"),
                json!(7),
            ] {
                assert_write_row_matches(kind, &object);
            }
        }
        // Escaped keys are found; surrounding whitespace is not copied into the row.
        let json =
            br#" {"metadata": {"name": "esc", "creationTimestamp": "2025-05-01T11:00:00Z"}} "#;
        let mut out = Vec::new();
        write_row("Secret", json, now(), IncludeObject::Object, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"cells":["esc","Opaque",0,"60m"],"object":{"metadata": {"name": "esc", "creationTimestamp": "2025-05-01T11:00:00Z"}}}"#
        );
        // Broken JSON is an error and leaves `out` alone.
        let mut out = b"kept".to_vec();
        for bad in [
            &b""[..],
            b"{",
            br#"{"metadata": {"name": "a"}} x"#,
            br#"{"metadata": {"name": }}"#,
            br#"{"spec": {"containers": [1,]}}"#,
            b"[1",
        ] {
            for include in INCLUDES {
                assert!(write_row("Pod", bad, now(), include, &mut out).is_err());
            }
        }
        assert_eq!(out, b"kept");
    }

    #[test]
    fn every_kind_needs_its_metadata() {
        for resource in crate::registry::RESOURCES {
            assert!(
                needs(resource.kind).iter().any(|(k, _)| *k == "metadata"),
                "{}",
                resource.kind
            );
        }
    }
}
