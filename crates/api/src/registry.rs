//! The kinds Gantry serves: for each, what discovery says about it (group, version, names, scope, verbs,
//! subresources) and where its objects live in the store. One table, read by discovery and by the REST engine.

/// A served resource (e.g. `apps/v1` `deployments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; `""` is the core group (`/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The plural, lower-case name used in URLs.
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// What may be done to it: [`VERBS`], or only `create` for reviews (asked, answered, never stored).
    pub verbs: &'static [&'static str],
}

/// A subresource such as `status` or `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// The group, version and kind its requests and replies carry.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// The verbs of every top-level resource.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

/// `status`, answering with the resource's own kind.
const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version,
        kind,
        verbs: GET_PATCH_UPDATE,
    }
}

/// `scale`, answering with `autoscaling/v1` `Scale` (kubectl's scale client needs exactly that).
const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: GET_PATCH_UPDATE,
};

#[allow(
    clippy::too_many_arguments,
    reason = "a table row: every argument is a named column"
)]
const fn resource(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        short_names,
        namespaced,
        categories,
        subresources,
        verbs: VERBS,
    }
}

/// A review: a cluster-scoped kind that is only created, answered at once and never stored.
const fn review(group: &'static str, kind: &'static str, plural: &'static str) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        kind,
        plural,
        short_names: &[],
        namespaced: false,
        categories: NONE,
        subresources: &[],
        verbs: &["create"],
    }
}

/// Every served resource, in discovery order (groups in the order they first appear).
pub const RESOURCES: &[ResourceType] = &[
    // core/v1
    resource(
        "",
        "v1",
        "Namespace",
        "namespaces",
        &["ns"],
        false,
        NONE,
        &[status("", "v1", "Namespace")],
    ),
    resource(
        "",
        "v1",
        "Pod",
        "pods",
        &["po"],
        true,
        ALL,
        &[
            status("", "v1", "Pod"),
            Subresource {
                name: "binding",
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"],
            },
            Subresource {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            },
            Subresource {
                name: "log",
                group: "",
                version: "v1",
                kind: "Pod",
                verbs: &["get"],
            },
            Subresource {
                name: "exec",
                group: "",
                version: "v1",
                kind: "PodExecOptions",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "attach",
                group: "",
                version: "v1",
                kind: "PodAttachOptions",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "portforward",
                group: "",
                version: "v1",
                kind: "PodPortForwardOptions",
                verbs: &["create", "get"],
            },
        ],
    ),
    resource(
        "",
        "v1",
        "Service",
        "services",
        &["svc"],
        true,
        ALL,
        &[status("", "v1", "Service")],
    ),
    resource("", "v1", "Endpoints", "endpoints", &["ep"], true, NONE, &[]),
    resource(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        &["cm"],
        true,
        NONE,
        &[],
    ),
    resource("", "v1", "Secret", "secrets", &[], true, NONE, &[]),
    resource(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        &["sa"],
        true,
        NONE,
        &[Subresource {
            name: "token",
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenRequest",
            verbs: &["create"],
        }],
    ),
    resource(
        "",
        "v1",
        "Node",
        "nodes",
        &["no"],
        false,
        NONE,
        &[status("", "v1", "Node")],
    ),
    resource("", "v1", "Event", "events", &["ev"], true, NONE, &[]),
    resource(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        &["rc"],
        true,
        ALL,
        &[SCALE, status("", "v1", "ReplicationController")],
    ),
    resource(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        &["pv"],
        false,
        NONE,
        &[status("", "v1", "PersistentVolume")],
    ),
    resource(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        &["pvc"],
        true,
        NONE,
        &[status("", "v1", "PersistentVolumeClaim")],
    ),
    resource(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        &["quota"],
        true,
        NONE,
        &[status("", "v1", "ResourceQuota")],
    ),
    resource(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        &["limits"],
        true,
        NONE,
        &[],
    ),
    // apps/v1
    resource(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["deploy"],
        true,
        ALL,
        &[SCALE, status("apps", "v1", "Deployment")],
    ),
    resource(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        &["rs"],
        true,
        ALL,
        &[SCALE, status("apps", "v1", "ReplicaSet")],
    ),
    resource(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        &["sts"],
        true,
        ALL,
        &[SCALE, status("apps", "v1", "StatefulSet")],
    ),
    resource(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        &["ds"],
        true,
        ALL,
        &[status("apps", "v1", "DaemonSet")],
    ),
    resource(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        &[],
        true,
        NONE,
        &[],
    ),
    // batch/v1
    resource(
        "batch",
        "v1",
        "Job",
        "jobs",
        &[],
        true,
        ALL,
        &[status("batch", "v1", "Job")],
    ),
    resource(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        &["cj"],
        true,
        ALL,
        &[status("batch", "v1", "CronJob")],
    ),
    // autoscaling/v2
    resource(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        true,
        ALL,
        &[status("autoscaling", "v2", "HorizontalPodAutoscaler")],
    ),
    resource(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        true,
        ALL,
        &[status("autoscaling", "v1", "HorizontalPodAutoscaler")],
    ),
    // policy/v1
    resource(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["pdb"],
        true,
        NONE,
        &[status("policy", "v1", "PodDisruptionBudget")],
    ),
    // events.k8s.io/v1
    resource(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        &["ev"],
        true,
        NONE,
        &[],
    ),
    // discovery.k8s.io/v1
    resource(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        &[],
        true,
        NONE,
        &[],
    ),
    // coordination.k8s.io/v1
    resource(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        &[],
        true,
        NONE,
        &[],
    ),
    // networking.k8s.io/v1
    resource(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        &["ing"],
        true,
        NONE,
        &[status("networking.k8s.io", "v1", "Ingress")],
    ),
    resource(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        &[],
        false,
        NONE,
        &[],
    ),
    resource(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        &["netpol"],
        true,
        NONE,
        &[],
    ),
    // storage.k8s.io/v1
    resource(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        &["sc"],
        false,
        NONE,
        &[],
    ),
    // scheduling.k8s.io/v1
    resource(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        &["pc"],
        false,
        NONE,
        &[],
    ),
    // rbac.authorization.k8s.io/v1
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        &[],
        true,
        NONE,
        &[],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        &[],
        true,
        NONE,
        &[],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        &[],
        false,
        NONE,
        &[],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        &[],
        false,
        NONE,
        &[],
    ),
    // apiextensions.k8s.io/v1
    resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        false,
        &["api-extensions"],
        &[status(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )],
    ),
    // Reviews: `kubectl auth can-i` and `kubectl auth whoami`.
    review(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
    ),
    review(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
    ),
];

impl ResourceType {
    /// `group/version`, or just `version` for the core group (what `apiVersion` says).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether objects of this resource are stored (reviews are not).
    pub fn is_stored(&self) -> bool {
        self.verbs.len() > 1
    }

    /// The singular name: the kind in lower case.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// The subresource called `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Where objects of this resource live in the store: `/registry/<group>/<plural>/` (the core group as
    /// `core`), followed by `<namespace>/<name>` or `<name>`.
    pub fn store_prefix(&self) -> String {
        // Kinds served in several forms share one storage (see `convert`).
        format!(
            "/registry/{}/{}/",
            crate::convert::storage_group(self),
            self.plural
        )
    }
}

/// The resource served at `group`/`version` under the URL name `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The served groups with their versions, in discovery order (the first version is the preferred one).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    groups_of(RESOURCES)
}

/// The groups of `resources` with their versions, in the order they first appear.
pub fn groups_of<'a>(
    resources: impl IntoIterator<Item = &'a ResourceType>,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in resources {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} served twice",
                    a.plural
                );
            }
        }
    }

    #[test]
    fn short_names_name_one_kind() {
        let mut seen = std::collections::HashMap::new();
        for r in RESOURCES {
            for short in r.short_names {
                if let Some(other) = seen.insert(*short, r.kind) {
                    assert_eq!(other, r.kind, "short name {short} is taken twice");
                }
            }
        }
    }

    #[test]
    fn lookup_and_store_layout() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deployments.api_version(), "apps/v1");
        assert_eq!(deployments.subresource("scale").unwrap().kind, "Scale");
        assert_eq!(deployments.store_prefix(), "/registry/apps/deployments/");
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.api_version(), "v1");
        assert_eq!(pods.singular(), "pod");
        assert_eq!(pods.store_prefix(), "/registry/core/pods/");
        assert!(find("apps", "v1", "pods").is_none());
    }

    #[test]
    fn groups_keep_discovery_order() {
        let groups = groups();
        assert_eq!(groups[0], ("", vec!["v1"]));
        assert_eq!(groups[1], ("apps", vec!["v1"]));
        assert!(
            groups
                .iter()
                .any(|(g, v)| *g == "autoscaling" && v == &vec!["v2", "v1"])
        );
    }
}
