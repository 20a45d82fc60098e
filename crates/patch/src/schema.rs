//! Patch metadata: what Kubernetes' `patchStrategy` / `patchMergeKey` struct tags say about a field.

/// How a strategic merge patch treats one field. Only `Merge` (lists) and `Replace` (maps) change how a
/// patch applies; `retain_keys` / `RetainKeys` matter when a patch is computed (the `$retainKeys` directive
/// applies wherever it appears), and are kept for fidelity with the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldStrategy<'a> {
    /// No tag: maps merge key by key, lists are replaced whole (atomic).
    #[default]
    Default,
    /// `patchStrategy:"merge"`: list elements merge, maps by `key`, primitives as a set (`key` is `None`).
    Merge {
        key: Option<&'a str>,
        retain_keys: bool,
    },
    /// `patchStrategy:"replace"`: the patch value replaces the map whole.
    Replace,
    /// `patchStrategy:"retainKeys"` on a struct (e.g. `Deployment.spec.strategy`).
    RetainKeys,
}

impl<'a> FieldStrategy<'a> {
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`.
    pub const fn merge_by(key: &'a str) -> Self {
        Self::Merge {
            key: Some(key),
            retain_keys: false,
        }
    }
}

/// Patch metadata by field path. A path is the object keys from the document root to the field; list
/// elements add no segment, so `["spec", "containers", "ports"]` is every container's `ports`.
pub trait PatchSchema {
    fn lookup<'s>(&'s self, path: &[&str]) -> FieldStrategy<'s>;
}

/// A schema without tags: every map merges, every list is replaced (like a JSON merge patch, but with
/// directives honoured).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchema;

impl PatchSchema for NoSchema {
    fn lookup<'s>(&'s self, _path: &[&str]) -> FieldStrategy<'s> {
        FieldStrategy::Default
    }
}

/// The patch tags of the built-in kinds, from the Go types in `k8s.io/api` (core/v1, apps/v1, batch/v1)
/// and `k8s.io/apimachinery` (`ObjectMeta`). Untagged fields, and kinds it does not know, get
/// [`FieldStrategy::Default`]; an unknown kind still knows `metadata`.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinSchema {
    root: &'static Ty,
}

impl BuiltinSchema {
    /// The schema of `group`/`kind` (core group is `""`).
    pub fn for_kind(group: &str, kind: &str) -> Self {
        let root = match (group, kind) {
            ("", "Pod") => &POD,
            ("", "PodTemplate") => &POD_TEMPLATE,
            ("", "ReplicationController") => &WORKLOAD,
            ("apps", "Deployment") => &DEPLOYMENT,
            ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet") => &WORKLOAD,
            ("batch", "Job") => &WORKLOAD,
            ("batch", "CronJob") => &CRON_JOB,
            ("", "Service") => &SERVICE,
            ("", "Node") => &NODE,
            ("", "ServiceAccount") => &SERVICE_ACCOUNT,
            ("", "Namespace" | "PersistentVolumeClaim") => &WITH_CONDITIONS,
            _ => &OBJECT,
        };
        Self { root }
    }

    /// Whether the kind has its own table (not just `metadata`).
    pub fn knows(group: &str, kind: &str) -> bool {
        !std::ptr::eq(Self::for_kind(group, kind).root, &OBJECT)
    }
}

impl PatchSchema for BuiltinSchema {
    fn lookup<'s>(&'s self, path: &[&str]) -> FieldStrategy<'s> {
        self.strategy(path)
    }
}

impl BuiltinSchema {
    /// [`PatchSchema::lookup`], with the table's `'static` lifetime.
    pub fn strategy(&self, path: &[&str]) -> FieldStrategy<'static> {
        let mut ty = Some(self.root);
        let mut strategy = FieldStrategy::Default;
        for seg in path {
            let Some(field) = ty.and_then(|t| t.0.iter().find(|f| f.name == *seg)) else {
                return FieldStrategy::Default;
            };
            strategy = field.strategy;
            ty = field.ty;
        }
        strategy
    }
}

/// A Go struct's tagged fields, and the fields under which tagged fields lie.
#[derive(Debug)]
struct Ty(&'static [Field]);

#[derive(Debug)]
struct Field {
    name: &'static str,
    strategy: FieldStrategy<'static>,
    ty: Option<&'static Ty>,
}

const fn plain(name: &'static str, ty: &'static Ty) -> Field {
    Field {
        name,
        strategy: FieldStrategy::Default,
        ty: Some(ty),
    }
}

const fn merge(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        strategy: FieldStrategy::merge_by(key),
        ty: None,
    }
}

const fn merge_of(name: &'static str, key: &'static str, ty: &'static Ty) -> Field {
    Field {
        name,
        strategy: FieldStrategy::merge_by(key),
        ty: Some(ty),
    }
}

const fn merge_retain(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        strategy: FieldStrategy::Merge {
            key: Some(key),
            retain_keys: true,
        },
        ty: None,
    }
}

/// `patchStrategy:"merge"` on a list of primitives.
const fn merge_set(name: &'static str) -> Field {
    Field {
        name,
        strategy: FieldStrategy::Merge {
            key: None,
            retain_keys: false,
        },
        ty: None,
    }
}

const CONDITIONS: Field = merge("conditions", "type");

static OBJECT_META: Ty = Ty(&[merge_set("finalizers"), merge("ownerReferences", "uid")]);
static OBJECT: Ty = Ty(&[plain("metadata", &OBJECT_META)]);
static STATUS_CONDITIONS: Ty = Ty(&[CONDITIONS]);
static WITH_CONDITIONS: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("status", &STATUS_CONDITIONS),
]);

/// `Container` and `EphemeralContainer` (whose `EphemeralContainerCommon` carries the same tags).
/// `envFrom`, `resizePolicy` and `resources.claims` are untagged (atomic).
static CONTAINER: Ty = Ty(&[
    merge("ports", "containerPort"),
    merge("env", "name"),
    merge("volumeMounts", "mountPath"),
    merge("volumeDevices", "devicePath"),
]);

/// `tolerations`, `readinessGates` and `affinity`'s term lists are untagged (atomic).
static POD_SPEC: Ty = Ty(&[
    merge_of("containers", "name", &CONTAINER),
    merge_of("initContainers", "name", &CONTAINER),
    merge_of("ephemeralContainers", "name", &CONTAINER),
    merge_retain("volumes", "name"),
    merge("imagePullSecrets", "name"),
    merge("hostAliases", "ip"),
    // Also a list-map keyed by whenUnsatisfiable, but the patch merge key is topologyKey alone.
    merge("topologySpreadConstraints", "topologyKey"),
    merge("schedulingGates", "name"),
    merge_retain("resourceClaims", "name"),
]);

/// `containerStatuses` and friends are untagged. `resourceClaimStatuses` is `merge,retainKeys` by name
/// (from memory of the 1.33 types; unverified).
static POD_STATUS: Ty = Ty(&[
    CONDITIONS,
    merge("podIPs", "ip"),
    merge("hostIPs", "ip"),
    merge_retain("resourceClaimStatuses", "name"),
]);

static POD: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &POD_SPEC),
    plain("status", &POD_STATUS),
]);

static POD_TEMPLATE_SPEC: Ty = Ty(&[plain("metadata", &OBJECT_META), plain("spec", &POD_SPEC)]);
static POD_TEMPLATE: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("template", &POD_TEMPLATE_SPEC),
]);

/// The spec of ReplicaSet, StatefulSet, DaemonSet, Job and ReplicationController: the tags under
/// `template` (`volumeClaimTemplates`, `updateStrategy` are untagged).
static WORKLOAD_SPEC: Ty = Ty(&[plain("template", &POD_TEMPLATE_SPEC)]);
static WORKLOAD: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &WORKLOAD_SPEC),
    plain("status", &STATUS_CONDITIONS),
]);

static DEPLOYMENT_SPEC: Ty = Ty(&[
    plain("template", &POD_TEMPLATE_SPEC),
    Field {
        name: "strategy",
        strategy: FieldStrategy::RetainKeys,
        ty: None,
    },
]);
static DEPLOYMENT: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &DEPLOYMENT_SPEC),
    plain("status", &STATUS_CONDITIONS),
]);

static JOB_TEMPLATE_SPEC: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &WORKLOAD_SPEC),
]);
static CRON_JOB_SPEC: Ty = Ty(&[plain("jobTemplate", &JOB_TEMPLATE_SPEC)]);
/// `status.active` is untagged (atomic).
static CRON_JOB: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &CRON_JOB_SPEC),
]);

/// `ports` is also a list-map keyed by port+protocol, but the patch merge key is `port` alone.
static SERVICE_SPEC: Ty = Ty(&[merge("ports", "port")]);
static SERVICE: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &SERVICE_SPEC),
    plain("status", &STATUS_CONDITIONS),
]);

/// `taints` is untagged (atomic).
static NODE_SPEC: Ty = Ty(&[merge_set("podCIDRs")]);
static NODE_STATUS: Ty = Ty(&[CONDITIONS, merge("addresses", "type")]);
static NODE: Ty = Ty(&[
    plain("metadata", &OBJECT_META),
    plain("spec", &NODE_SPEC),
    plain("status", &NODE_STATUS),
]);

/// `secrets` by name (from memory of the Go tags); `imagePullSecrets` is untagged.
static SERVICE_ACCOUNT: Ty = Ty(&[plain("metadata", &OBJECT_META), merge("secrets", "name")]);
