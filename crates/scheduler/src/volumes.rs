//! Volumes, as upstream's VolumeBinding and VolumeRestrictions (ReadWriteOncePod) plugins: what the
//! scheduler keeps of PersistentVolumeClaims, PersistentVolumes and StorageClasses, the per-pod state
//! worked out once ([`FilterState`]: claims missing, being deleted or unbound with Immediate binding
//! reject the pod before any node is tried), the per-node check (bound claims' volumes must allow the
//! node; unbound `WaitForFirstConsumer` claims need an available volume there or a provisioner), and what
//! is written before the pod is bound ([`Plan`]: a volume's `claimRef`, or a claim's `selected-node`).
//!
//! A pod without claims costs nothing here: its [`PodInfo::claims`] is empty and no state is built.

use std::collections::{BTreeMap, HashSet};

use gantry_api::labels::Selector;
use gantry_client::k8s_openapi::api::core::v1::{
    NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod,
};
use gantry_client::k8s_openapi::api::storage::v1::StorageClass;
use gantry_client::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use gantry_client::kube::api::{Patch, PatchParams};
use gantry_client::{Api, Client};
use serde_json::json;

use crate::affinity;
use crate::cache::{Cache, CachedPod, NodeSpec};
use crate::plugins::{Failure, PodInfo, Reasons, term_matches};
use crate::resources::value;

/// No available volume fits an unbound claim on the node, and it cannot be provisioned there.
pub const REASON_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// A bound claim's volume does not allow the node (its `nodeAffinity`).
pub const REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// A bound claim names a volume that does not exist.
pub const REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// The PreFilter rejection of a pod with an unbound claim of a class that binds at once.
pub const REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// VolumeRestrictions: a ReadWriteOncePod claim is already used by a scheduled pod.
pub const REASON_READ_WRITE_ONCE_POD: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// The claim annotation naming the node a dynamically provisioned volume is made for.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The claim annotation the PV controller sets once it bound the claim.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The volume annotation saying a controller (here: the scheduler) set its `claimRef`.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The beta annotation that names a class before `storageClassName` does.
const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The provisioner of classes whose volumes are made by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
const READ_WRITE_ONCE_POD: &str = "ReadWriteOncePod";

/// A claim a pod's volume uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodClaim {
    pub name: String,
    /// From a generic ephemeral volume (the claim `<pod>-<volume>`, which the pod must own).
    pub ephemeral: bool,
}

/// The claims of a pod's `persistentVolumeClaim` and `ephemeral` volumes, in order (empty, without
/// allocating, for a pod with neither).
pub fn pod_claims(pod: &Pod) -> Vec<PodClaim> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            if let Some(source) = &v.persistent_volume_claim {
                Some(PodClaim {
                    name: source.claim_name.clone(),
                    ephemeral: false,
                })
            } else {
                v.ephemeral.as_ref().map(|_| PodClaim {
                    name: format!("{pod_name}-{}", v.name),
                    ephemeral: true,
                })
            }
        })
        .collect()
}

/// The names of the claims of a pod's `persistentVolumeClaim` volumes (what ReadWriteOncePod counts).
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

/// The `storage` of a resource list, in bytes.
fn storage(resources: Option<&BTreeMap<String, Quantity>>) -> i64 {
    resources
        .and_then(|r| r.get("storage"))
        .map(value)
        .unwrap_or(0)
}

/// A class name from the beta annotation, else the field (upstream's `GetPersistentVolume(Claim)Class`).
fn class_of(annotations: Option<&BTreeMap<String, String>>, field: Option<&String>) -> String {
    annotations
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
        .or(field)
        .cloned()
        .unwrap_or_default()
}

/// What the scheduler reads of a PersistentVolumeClaim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub uid: String,
    pub resource_version: String,
    pub class: String,
    pub volume_name: String,
    /// Bound by the PV controller (`volumeName` set and the binding completed).
    pub bound: bool,
    /// `status.phase` Lost: its volume is gone.
    pub lost: bool,
    pub deleting: bool,
    pub selected_node: Option<String>,
    pub access_modes: Vec<String>,
    pub volume_mode: String,
    /// The storage requested, in bytes.
    pub request: i64,
    /// `spec.selector`; `None` selects every volume.
    pub selector: Option<Selector>,
    /// The uid of its controller (a pod, for ephemeral volumes).
    pub controller: Option<String>,
}

impl Claim {
    pub fn of(pvc: &PersistentVolumeClaim) -> Claim {
        let meta = &pvc.metadata;
        let spec = pvc.spec.as_ref();
        let annotations = meta.annotations.as_ref();
        let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
        let volume_name = spec.and_then(|s| s.volume_name.clone()).unwrap_or_default();
        let completed = annotations.is_some_and(|a| a.contains_key(ANN_BIND_COMPLETED));
        Claim {
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            class: class_of(
                annotations,
                spec.and_then(|s| s.storage_class_name.as_ref()),
            ),
            bound: !volume_name.is_empty() && (completed || phase == Some("Bound")),
            volume_name,
            lost: phase == Some("Lost"),
            deleting: meta.deletion_timestamp.is_some(),
            selected_node: annotations.and_then(|a| a.get(ANN_SELECTED_NODE)).cloned(),
            access_modes: spec
                .and_then(|s| s.access_modes.clone())
                .unwrap_or_default(),
            volume_mode: spec
                .and_then(|s| s.volume_mode.clone())
                .unwrap_or_else(|| "Filesystem".into()),
            request: storage(
                spec.and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref()),
            ),
            selector: spec
                .and_then(|s| s.selector.as_ref())
                .map(|s| affinity::label_selector(Some(s))),
            controller: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
        }
    }
}

/// A volume's `claimRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What the scheduler reads of a PersistentVolume.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub resource_version: String,
    pub class: String,
    pub phase: String,
    pub claim_ref: Option<ClaimRef>,
    /// Its capacity, in bytes.
    pub capacity: i64,
    pub access_modes: Vec<String>,
    pub volume_mode: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeAffinity.required`.
    pub node_affinity: Option<NodeSelector>,
    pub deleting: bool,
}

impl Volume {
    pub fn of(pv: &PersistentVolume) -> Volume {
        let meta = &pv.metadata;
        let spec = pv.spec.as_ref();
        Volume {
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            class: class_of(
                meta.annotations.as_ref(),
                spec.and_then(|s| s.storage_class_name.as_ref()),
            ),
            phase: pv
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
            claim_ref: spec.and_then(|s| s.claim_ref.as_ref()).map(|r| ClaimRef {
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
                uid: r.uid.clone().unwrap_or_default(),
            }),
            capacity: storage(spec.and_then(|s| s.capacity.as_ref())),
            access_modes: spec
                .and_then(|s| s.access_modes.clone())
                .unwrap_or_default(),
            volume_mode: spec
                .and_then(|s| s.volume_mode.clone())
                .unwrap_or_else(|| "Filesystem".into()),
            labels: meta.labels.clone().unwrap_or_default(),
            node_affinity: spec
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.clone()),
            deleting: meta.deletion_timestamp.is_some(),
        }
    }

    /// Whether its `claimRef` names the claim (upstream's `IsVolumeBoundToClaim`).
    fn is_for(&self, namespace: &str, name: &str, claim: &Claim) -> bool {
        self.claim_ref.as_ref().is_some_and(|r| {
            r.namespace == namespace && r.name == name && (r.uid.is_empty() || r.uid == claim.uid)
        })
    }
}

/// One term of a class's `allowedTopologies`: label key → allowed values.
pub type TopologyTerm = Vec<(String, Vec<String>)>;

/// What the scheduler reads of a StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub provisioner: String,
    /// `volumeBindingMode: WaitForFirstConsumer` (else Immediate).
    pub wait_for_first_consumer: bool,
    pub allowed_topologies: Vec<TopologyTerm>,
}

impl Class {
    pub fn of(class: &StorageClass) -> Class {
        Class {
            provisioner: class.provisioner.clone(),
            wait_for_first_consumer: class.volume_binding_mode.as_deref()
                == Some("WaitForFirstConsumer"),
            allowed_topologies: class
                .allowed_topologies
                .iter()
                .flatten()
                .map(|term| {
                    term.match_label_expressions
                        .iter()
                        .flatten()
                        .map(|r| (r.key.clone(), r.values.clone()))
                        .collect()
                })
                .collect(),
        }
    }

    /// Whether it provisions volumes for nodes with these labels (upstream's
    /// `MatchTopologySelectorTerms`: no terms allow every node, an empty term none).
    fn allows(&self, labels: &BTreeMap<String, String>) -> bool {
        self.allowed_topologies.is_empty()
            || self.allowed_topologies.iter().any(|term| {
                !term.is_empty()
                    && term
                        .iter()
                        .all(|(key, values)| labels.get(key).is_some_and(|v| values.contains(v)))
            })
    }
}

/// Whether a volume's required node affinity allows the node (upstream's `CheckNodeAffinity`).
fn affinity_allows(affinity: Option<&NodeSelector>, name: &str, node: &NodeSpec) -> bool {
    affinity.is_none_or(|a| {
        a.node_selector_terms
            .iter()
            .any(|t| term_matches(t, name, node))
    })
}

/// A volume an unbound claim could be bound to.
#[derive(Debug, Clone)]
struct Candidate {
    name: String,
    resource_version: String,
    capacity: i64,
    node_affinity: Option<NodeSelector>,
    /// Its `claimRef` already names the claim with the claim's uid (nothing to write).
    referenced: bool,
}

/// An unbound claim of a `WaitForFirstConsumer` class.
#[derive(Debug, Clone)]
struct Delayed {
    name: String,
    uid: String,
    resource_version: String,
    request: i64,
    selected_node: Option<String>,
    /// A volume whose `claimRef` names the claim already: it decides alone, as upstream's
    /// `FindMatchingVolume` returns it at once.
    prebound: Option<Candidate>,
    /// Available volumes of the class that fit the claim, smallest first.
    available: Vec<Candidate>,
    /// The class, when its provisioner can make volumes.
    provisioner: Option<Class>,
}

impl Delayed {
    /// The volume for the claim on the node, not one of `chosen`.
    fn find<'a>(
        &'a self,
        name: &str,
        node: &NodeSpec,
        chosen: &HashSet<&str>,
    ) -> Option<&'a Candidate> {
        if let Some(volume) = &self.prebound {
            return affinity_allows(volume.node_affinity.as_ref(), name, node).then_some(volume);
        }
        self.available.iter().find(|v| {
            !chosen.contains(v.name.as_str())
                && affinity_allows(v.node_affinity.as_ref(), name, node)
        })
    }
}

/// A bound claim's volume: its required node affinity, or `None` when the volume does not exist.
type BoundVolume = Option<Option<NodeSelector>>;

/// What the volume plugins work out once per pod with claims (upstream's PreFilter state).
#[derive(Debug, Clone)]
pub struct FilterState {
    namespace: String,
    /// The pod's ReadWriteOncePod claims, and how many references scheduled pods hold to them.
    read_write_once_pod: Vec<String>,
    conflicts: i64,
    bound: Vec<BoundVolume>,
    delayed: Vec<Delayed>,
}

/// A volume to point at a claim before the pod is bound (static binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticBinding {
    pub volume: String,
    pub volume_version: String,
    pub claim: String,
    pub claim_uid: String,
    pub claim_version: String,
}

/// A claim to annotate with the chosen node (dynamic provisioning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    pub claim: String,
    pub claim_version: String,
}

/// What to write before the pod is bound to `node` (upstream's PreBind).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub namespace: String,
    pub node: String,
    pub bindings: Vec<StaticBinding>,
    pub provisions: Vec<Provision>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty() && self.provisions.is_empty()
    }
}

fn not_found(name: &str) -> String {
    format!("persistentvolumeclaim \"{name}\" not found")
}

impl FilterState {
    /// The state for `pod`: `Ok(None)` when it has no claims, `Err` with the message when the pod
    /// cannot be placed anywhere (upstream's PreFilter rejections, UnschedulableAndUnresolvable).
    pub fn new(pod: &PodInfo, cache: &Cache) -> Result<Option<FilterState>, String> {
        if pod.claims.is_empty() {
            return Ok(None);
        }
        let namespace = pod.namespace.as_str();
        let claim = |name: &str| cache.claims.get(namespace, name);
        // VolumeRestrictions first (upstream's PreFilter order): persistentVolumeClaim volumes only.
        let mut read_write_once_pod: Vec<String> = Vec::new();
        let mut conflicts = 0;
        for c in pod.claims.iter().filter(|c| !c.ephemeral) {
            let found = claim(&c.name).ok_or_else(|| not_found(&c.name))?;
            if found.access_modes.iter().any(|m| m == READ_WRITE_ONCE_POD)
                && !read_write_once_pod.contains(&c.name)
            {
                if cache.claim_in_use(namespace, &c.name) {
                    conflicts += 1;
                }
                read_write_once_pod.push(c.name.clone());
            }
        }
        // VolumeBinding (upstream's `podHasPVCs`, then `GetPodVolumeClaims`).
        for c in &pod.claims {
            let Some(found) = claim(&c.name) else {
                return Err(if c.ephemeral {
                    format!(
                        "waiting for ephemeral volume controller to create the persistentvolumeclaim \"{}\"",
                        c.name
                    )
                } else {
                    not_found(&c.name)
                });
            };
            if found.lost {
                return Err(format!(
                    "persistentvolumeclaim \"{}\" bound to non-existent persistentvolume \"{}\"",
                    c.name, found.volume_name
                ));
            }
            if found.deleting {
                return Err(format!(
                    "persistentvolumeclaim \"{}\" is being deleted",
                    c.name
                ));
            }
            if c.ephemeral && found.controller.as_deref() != Some(pod.uid.as_str()) {
                return Err(format!(
                    "PVC {namespace}/{} was not created for pod {namespace}/{} (pod is not owner)",
                    c.name, pod.name
                ));
            }
        }
        let mut bound = Vec::new();
        let mut delayed = Vec::new();
        let mut seen = HashSet::new();
        for c in &pod.claims {
            if !seen.insert(c.name.as_str()) {
                continue;
            }
            let Some(found) = claim(&c.name) else {
                continue;
            };
            if found.bound {
                bound.push(
                    cache
                        .volumes
                        .get("", &found.volume_name)
                        .map(|v| v.node_affinity.clone()),
                );
                continue;
            }
            let class = Some(found.class.as_str())
                .filter(|c| !c.is_empty())
                .and_then(|c| cache.classes.get("", c));
            match class {
                Some(class) if class.wait_for_first_consumer && found.volume_name.is_empty() => {
                    delayed.push(delayed_claim(namespace, &c.name, found, class, cache));
                }
                _ => return Err(REASON_UNBOUND_IMMEDIATE.into()),
            }
        }
        // The smallest claims choose first (upstream's `byPVCSize`).
        delayed.sort_by_key(|d| d.request);
        Ok(Some(FilterState {
            namespace: namespace.to_owned(),
            read_write_once_pod,
            conflicts,
            bound,
            delayed,
        }))
    }

    /// VolumeRestrictions, then VolumeBinding, on the node `name`.
    pub fn filter(&self, name: &str, node: &NodeSpec) -> Result<(), Failure> {
        if self.conflicts > 0 {
            return Err(Failure::resolvable(REASON_READ_WRITE_ONCE_POD));
        }
        match self.assign(name, node) {
            Ok(_) => Ok(()),
            Err(reasons) => Err(Failure {
                reasons,
                resolvable: false,
            }),
        }
    }

    /// What binding the pod's claims on the node takes, or why they cannot be (upstream's
    /// `FindPodVolumes`, its reasons in its order).
    pub fn assign(&self, name: &str, node: &NodeSpec) -> Result<Plan, Reasons> {
        let mut plan = Plan {
            namespace: self.namespace.clone(),
            node: name.to_owned(),
            ..Plan::default()
        };
        let mut bound_fit = true;
        let mut volumes_exist = true;
        for volume in &self.bound {
            match volume {
                None => {
                    volumes_exist = false;
                    break;
                }
                Some(affinity) if !affinity_allows(affinity.as_ref(), name, node) => {
                    bound_fit = false;
                    break;
                }
                Some(_) => {}
            }
        }
        let unbound_fit = self.assign_delayed(name, node, &mut plan);
        let mut reasons = Vec::new();
        if !bound_fit {
            reasons.push(REASON_NODE_CONFLICT.to_owned());
        }
        if !unbound_fit {
            reasons.push(REASON_BIND_CONFLICT.to_owned());
        }
        if !volumes_exist {
            reasons.push(REASON_PV_NOT_EXIST.to_owned());
        }
        if reasons.is_empty() {
            Ok(plan)
        } else {
            Err(reasons)
        }
    }

    /// Matches the unbound claims with volumes, or provisioning, on the node; false when some cannot.
    fn assign_delayed(&self, name: &str, node: &NodeSpec, plan: &mut Plan) -> bool {
        let mut to_provision: Vec<&Delayed> = Vec::new();
        let mut to_match: Vec<&Delayed> = Vec::new();
        for claim in &self.delayed {
            match &claim.selected_node {
                Some(selected) if selected != name => return false,
                Some(_) => to_provision.push(claim),
                None => to_match.push(claim),
            }
        }
        let mut chosen: HashSet<&str> = HashSet::new();
        for claim in to_match {
            match claim.find(name, node, &chosen) {
                Some(volume) => {
                    chosen.insert(&volume.name);
                    if !volume.referenced {
                        plan.bindings.push(StaticBinding {
                            volume: volume.name.clone(),
                            volume_version: volume.resource_version.clone(),
                            claim: claim.name.clone(),
                            claim_uid: claim.uid.clone(),
                            claim_version: claim.resource_version.clone(),
                        });
                    }
                }
                None => to_provision.push(claim),
            }
        }
        for claim in to_provision {
            let Some(class) = &claim.provisioner else {
                return false;
            };
            if !class.allows(&node.labels) {
                return false;
            }
            if claim.selected_node.is_none() {
                plan.provisions.push(Provision {
                    claim: claim.name.clone(),
                    claim_version: claim.resource_version.clone(),
                });
            }
        }
        true
    }

    /// Counts `other` in or out (`sign` 1 or -1): preemption's simulation of its eviction.
    pub fn update_with_pod(&mut self, other: &CachedPod, sign: i64) {
        if self.read_write_once_pod.is_empty() || other.namespace != self.namespace {
            return;
        }
        let uses = other
            .claims
            .iter()
            .filter(|c| self.read_write_once_pod.contains(c))
            .count() as i64;
        self.conflicts += sign * uses;
    }
}

/// An unbound `WaitForFirstConsumer` claim with the volumes that could take it (upstream's
/// `FindMatchingVolume` without the node: class, capacity, volume mode, phase, selector, access modes).
fn delayed_claim(
    namespace: &str,
    name: &str,
    claim: &Claim,
    class: &Class,
    cache: &Cache,
) -> Delayed {
    let mut prebound = None;
    let mut available = Vec::new();
    for (volume_name, volume) in cache.volumes.in_namespace("") {
        if volume.claim_ref.is_some() && !volume.is_for(namespace, name, claim) {
            continue;
        }
        if volume.capacity < claim.request
            || volume.volume_mode != claim.volume_mode
            || volume.deleting
        {
            continue;
        }
        let candidate = Candidate {
            name: volume_name.clone(),
            resource_version: volume.resource_version.clone(),
            capacity: volume.capacity,
            node_affinity: volume.node_affinity.clone(),
            referenced: volume
                .claim_ref
                .as_ref()
                .is_some_and(|r| r.uid == claim.uid),
        };
        if volume.is_for(namespace, name, claim) {
            if prebound.is_none() {
                prebound = Some(candidate);
            }
            continue;
        }
        let fits = volume.phase == "Available"
            && claim
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&volume.labels))
            && volume.class == claim.class
            && claim
                .access_modes
                .iter()
                .all(|m| volume.access_modes.contains(m));
        if fits {
            available.push(candidate);
        }
    }
    available.sort_by(|a, b| a.capacity.cmp(&b.capacity).then(a.name.cmp(&b.name)));
    Delayed {
        name: name.to_owned(),
        uid: claim.uid.clone(),
        resource_version: claim.resource_version.clone(),
        request: claim.request,
        selected_node: claim.selected_node.clone(),
        prebound,
        available,
        provisioner: Some(class)
            .filter(|c| !c.provisioner.is_empty() && c.provisioner != NO_PROVISIONER)
            .cloned(),
    }
}

/// What to write before binding `pod` to `node`: `None` for a pod without claims or with nothing to
/// write (every claim bound, or already prepared for the node).
pub fn plan(pod: &PodInfo, cache: &Cache, node: &str) -> Option<Plan> {
    if pod.claims.is_empty() {
        return None;
    }
    let state = FilterState::new(pod, cache).ok()??;
    let spec = cache.node(node)?.spec.as_ref()?;
    state.assign(node, spec).ok().filter(|p| !p.is_empty())
}

/// The cache's view before [`assume`] changed it, to go back to if the writes fail.
#[derive(Debug, Clone)]
pub struct Assumed {
    volumes: Vec<(String, Volume, Volume)>,
    claims: Vec<(String, Claim, Claim)>,
    namespace: String,
}

/// Counts the plan as done in the cache (upstream's assume cache), so the next pods neither take the
/// same volume nor send the claim elsewhere before the watches show the writes.
pub fn assume(cache: &mut Cache, plan: &Plan) -> Assumed {
    let mut assumed = Assumed {
        volumes: Vec::new(),
        claims: Vec::new(),
        namespace: plan.namespace.clone(),
    };
    for binding in &plan.bindings {
        if let Some(old) = cache.volumes.get("", &binding.volume).cloned() {
            let mut new = old.clone();
            new.claim_ref = Some(ClaimRef {
                namespace: plan.namespace.clone(),
                name: binding.claim.clone(),
                uid: binding.claim_uid.clone(),
            });
            cache.volumes.set("", &binding.volume, new.clone());
            assumed.volumes.push((binding.volume.clone(), old, new));
        }
    }
    for provision in &plan.provisions {
        if let Some(old) = cache.claims.get(&plan.namespace, &provision.claim).cloned() {
            let mut new = old.clone();
            new.selected_node = Some(plan.node.clone());
            cache
                .claims
                .set(&plan.namespace, &provision.claim, new.clone());
            assumed.claims.push((provision.claim.clone(), old, new));
        }
    }
    assumed
}

/// Undoes [`assume`] where the watches have not changed the objects since.
pub fn forget(cache: &mut Cache, assumed: Assumed) {
    for (name, old, new) in assumed.volumes {
        if cache.volumes.get("", &name) == Some(&new) {
            cache.volumes.set("", &name, old);
        }
    }
    for (name, old, new) in assumed.claims {
        if cache.claims.get(&assumed.namespace, &name) == Some(&new) {
            cache.claims.set(&assumed.namespace, &name, old);
        }
    }
}

/// The merge patch pointing a volume at a claim (upstream's `GetBindVolumeToClaim`); its
/// `resourceVersion` makes a concurrent change a conflict.
pub fn binding_patch(namespace: &str, binding: &StaticBinding) -> serde_json::Value {
    json!({
        "metadata": {
            "resourceVersion": binding.volume_version,
            "annotations": {ANN_BOUND_BY_CONTROLLER: "yes"},
        },
        "spec": {"claimRef": {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": namespace, "name": binding.claim,
            "uid": binding.claim_uid, "resourceVersion": binding.claim_version,
        }},
    })
}

/// The merge patch naming the node a claim's volume is to be provisioned for.
pub fn provision_patch(node: &str, provision: &Provision) -> serde_json::Value {
    json!({"metadata": {
        "resourceVersion": provision.claim_version,
        "annotations": {ANN_SELECTED_NODE: node},
    }})
}

/// Makes the plan's writes (upstream's PreBind). Unlike upstream, it does not wait for the claims to
/// be bound: the node agent waits for its pod's claims itself, so the pod is bound at once and starts
/// as soon as its volumes are there. An error (a conflict with a concurrent change, a missing object)
/// sends the pod back to the queue.
pub async fn write(client: &Client, plan: &Plan) -> Result<(), String> {
    let params = PatchParams::default();
    let failed = |e: gantry_client::kube::Error| {
        let message = match e {
            gantry_client::kube::Error::Api(e) => e.message,
            e => e.to_string(),
        };
        format!("running PreBind plugin \"VolumeBinding\": {message}")
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for binding in &plan.bindings {
        let patch = binding_patch(&plan.namespace, binding);
        volumes
            .patch(&binding.volume, &params, &Patch::Merge(&patch))
            .await
            .map_err(failed)?;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &plan.namespace);
    for provision in &plan.provisions {
        let patch = provision_patch(&plan.node, provision);
        claims
            .patch(&provision.claim, &params, &Patch::Merge(&patch))
            .await
            .map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;
    use crate::plugins::{Algorithm, CycleState, Decision};
    use crate::testing::{cache, decide, node, nodes_chosen, place, pod};

    const NOT_HELPFUL: &str =
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..";

    fn three_nodes() -> Cache {
        cache(vec![
            node("n1", json!({"zone": "a"}), "4", 10),
            node("n2", json!({"zone": "b"}), "4", 10),
            node("n3", json!({"zone": "b"}), "4", 10),
        ])
    }

    fn add_class(cache: &mut Cache, name: &str, provisioner: &str, mode: &str, extra: Value) {
        let mut class = json!({"metadata": {"name": name}, "provisioner": provisioner,
            "volumeBindingMode": mode});
        if let (Some(class), Value::Object(extra)) = (class.as_object_mut(), extra) {
            class.extend(extra);
        }
        let class: StorageClass = serde_json::from_value(class).unwrap();
        cache.classes.set("", name, Class::of(&class));
    }

    /// The claim `name` in "ns" (uid `<name>-uid`) with `spec`, `annotations` and `status`.
    fn add_claim(cache: &mut Cache, name: &str, spec: Value, metadata: Value, status: Value) {
        let mut meta = json!({"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
            "resourceVersion": "7"});
        if let (Some(meta), Value::Object(extra)) = (meta.as_object_mut(), metadata) {
            meta.extend(extra);
        }
        let claim: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": meta, "spec": spec, "status": status}))
                .unwrap();
        cache.claims.set("ns", name, Claim::of(&claim));
    }

    fn wffc_claim(class: &str, size: &str, modes: Value) -> Value {
        json!({"storageClassName": class, "accessModes": modes,
            "resources": {"requests": {"storage": size}}})
    }

    /// A volume with `spec` (node affinity to the hostnames `hosts`, when any) in `phase`.
    fn add_volume(cache: &mut Cache, name: &str, spec: Value, hosts: &[&str], phase: &str) {
        let mut spec = spec;
        if !hosts.is_empty() {
            spec["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": hosts}]}]}});
        }
        let volume: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": name, "resourceVersion": "3"}, "spec": spec,
            "status": {"phase": phase},
        }))
        .unwrap();
        cache.volumes.set("", name, Volume::of(&volume));
    }

    fn local_volume(class: &str, size: &str, modes: Value) -> Value {
        json!({"storageClassName": class, "capacity": {"storage": size}, "accessModes": modes})
    }

    /// A pod "p" in "ns" using the claims `claims` (and `ephemeral` generic ephemeral volumes).
    fn claiming(name: &str, claims: &[&str], ephemeral: &[&str]) -> PodInfo {
        let mut volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": format!("v-{c}"), "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        volumes.extend(ephemeral.iter().map(|v| {
            json!({"name": v, "ephemeral": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}})
        }));
        pod("ns", name, json!({}), json!({"volumes": volumes}))
    }

    #[test]
    fn pods_without_claims_build_no_volume_state() {
        let plain = pod(
            "ns",
            "p",
            json!({}),
            json!({"volumes": [{"name": "tmp", "emptyDir": {}}]}),
        );
        assert!(plain.claims.is_empty());
        let cache = three_nodes();
        let state = CycleState::new(&plain, &cache);
        assert!(state.volumes.is_none() && state.rejected.is_none());
        assert!(plan(&plain, &cache, "n1").is_none());
        let both = claiming("p", &["data"], &["scratch"]);
        assert_eq!(
            both.claims,
            [
                PodClaim {
                    name: "data".into(),
                    ephemeral: false
                },
                PodClaim {
                    name: "p-scratch".into(),
                    ephemeral: true
                },
            ]
        );
        // Only persistentVolumeClaim volumes count for ReadWriteOncePod.
        assert_eq!(both.placed("n1").claims, ["data"]);
    }

    #[test]
    fn claims_missing_deleted_lost_or_not_owned_reject_the_pod_on_every_node() {
        let mut cache = three_nodes();
        add_class(
            &mut cache,
            "local-path",
            "gantry.io/local-path",
            "WaitForFirstConsumer",
            json!({}),
        );
        let p = claiming("p", &["data"], &[]);
        assert_eq!(
            decide(&p, &cache).unwrap_err(),
            format!(
                "0/3 nodes are available: persistentvolumeclaim \"data\" not found. {NOT_HELPFUL}"
            )
        );
        let spec = wffc_claim("local-path", "1Gi", json!(["ReadWriteOnce"]));
        add_claim(
            &mut cache,
            "data",
            spec.clone(),
            json!({"deletionTimestamp": "2024-01-01T00:00:00Z"}),
            json!({}),
        );
        assert_eq!(
            decide(&p, &cache).unwrap_err(),
            format!(
                "0/3 nodes are available: persistentvolumeclaim \"data\" is being deleted. {NOT_HELPFUL}"
            )
        );
        let mut lost = spec.clone();
        lost["volumeName"] = json!("pv-1");
        add_claim(
            &mut cache,
            "data",
            lost,
            json!({}),
            json!({"phase": "Lost"}),
        );
        assert!(decide(&p, &cache).unwrap_err().starts_with(
            "0/3 nodes are available: persistentvolumeclaim \"data\" bound to non-existent persistentvolume \"pv-1\"."
        ));
        add_claim(&mut cache, "data", spec.clone(), json!({}), json!({}));
        assert!(decide(&p, &cache).is_ok());
        // Generic ephemeral volumes: the claim `<pod>-<volume>`, which the pod must own.
        let e = claiming("e", &[], &["scratch"]);
        assert_eq!(
            decide(&e, &cache).unwrap_err(),
            format!(
                "0/3 nodes are available: waiting for ephemeral volume controller to create the \
                     persistentvolumeclaim \"e-scratch\". {NOT_HELPFUL}"
            )
        );
        add_claim(&mut cache, "e-scratch", spec.clone(), json!({}), json!({}));
        assert!(decide(&e, &cache).unwrap_err().starts_with(
            "0/3 nodes are available: PVC ns/e-scratch was not created for pod ns/e (pod is not owner)."
        ));
        let owned = json!({"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "e",
            "uid": "e", "controller": true}]});
        add_claim(&mut cache, "e-scratch", spec, owned, json!({}));
        assert!(decide(&e, &cache).is_ok());
    }

    #[test]
    fn unbound_claims_of_immediate_classes_or_none_wait_for_the_pv_controller() {
        let mut cache = three_nodes();
        add_class(
            &mut cache,
            "fast",
            "example.com/fast",
            "Immediate",
            json!({}),
        );
        let p = claiming("p", &["data"], &[]);
        let expected = format!(
            "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. {NOT_HELPFUL}"
        );
        for class in [json!("fast"), json!(null), json!("missing")] {
            add_claim(
                &mut cache,
                "data",
                json!({"storageClassName": class}),
                json!({}),
                json!({}),
            );
            assert_eq!(decide(&p, &cache).unwrap_err(), expected);
        }
        // Bound (by the PV controller): placed.
        add_volume(
            &mut cache,
            "pv-1",
            local_volume("fast", "1Gi", json!(["ReadWriteOnce"])),
            &[],
            "Bound",
        );
        add_claim(
            &mut cache,
            "data",
            json!({"storageClassName": "fast", "volumeName": "pv-1"}),
            json!({"annotations": {ANN_BIND_COMPLETED: "yes"}}),
            json!({"phase": "Bound"}),
        );
        assert!(decide(&p, &cache).is_ok());
        assert!(plan(&p, &cache, "n1").is_none());
    }

    #[test]
    fn bound_claims_go_where_their_volume_is() {
        let mut cache = three_nodes();
        let bound = |volume: &str| json!({"storageClassName": "local-path", "volumeName": volume});
        add_claim(
            &mut cache,
            "data",
            bound("pv-1"),
            json!({}),
            json!({"phase": "Bound"}),
        );
        let p = claiming("p", &["data"], &[]);
        // Its volume is gone.
        assert_eq!(
            decide(&p, &cache).unwrap_err(),
            format!(
                "0/3 nodes are available: 3 node(s) unavailable due to one or more pvc(s) bound to \
                     non-existent pv(s). {NOT_HELPFUL}"
            )
        );
        let spec = local_volume("local-path", "1Gi", json!(["ReadWriteOnce"]));
        add_volume(&mut cache, "pv-1", spec.clone(), &["n2"], "Bound");
        assert_eq!(nodes_chosen(&p, &cache, 20), ["n2"]);
        // A volume nowhere the pod may go.
        let selective = pod(
            "ns",
            "q",
            json!({}),
            json!({"nodeSelector": {"zone": "b"},
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}),
        );
        add_volume(&mut cache, "pv-1", spec, &["n1"], "Bound");
        assert_eq!(
            decide(&selective, &cache).unwrap_err(),
            format!(
                "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                     2 node(s) had volume node affinity conflict. {NOT_HELPFUL}"
            )
        );
    }

    #[test]
    fn wait_for_first_consumer_claims_are_provisioned_where_the_pod_goes() {
        let mut cache = three_nodes();
        add_class(
            &mut cache,
            "local-path",
            "gantry.io/local-path",
            "WaitForFirstConsumer",
            json!({}),
        );
        add_claim(
            &mut cache,
            "data",
            wffc_claim("local-path", "1Gi", json!(["ReadWriteOnce"])),
            json!({}),
            json!({}),
        );
        let p = claiming("p", &["data"], &[]);
        assert_eq!(nodes_chosen(&p, &cache, 40), ["n1", "n2", "n3"]);
        let planned = plan(&p, &cache, "n2").unwrap();
        assert_eq!(
            planned,
            Plan {
                namespace: "ns".into(),
                node: "n2".into(),
                bindings: vec![],
                provisions: vec![Provision {
                    claim: "data".into(),
                    claim_version: "7".into()
                }],
            }
        );
        // Reserved: the claim now goes to n2 only, and nothing more is written for it.
        let assumed = assume(&mut cache, &planned);
        assert_eq!(
            cache
                .claims
                .get("ns", "data")
                .unwrap()
                .selected_node
                .as_deref(),
            Some("n2")
        );
        assert_eq!(nodes_chosen(&p, &cache, 20), ["n2"]);
        assert!(plan(&p, &cache, "n2").is_none());
        let pinned = pod(
            "ns",
            "q",
            json!({}),
            json!({"nodeName": "n1",
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}),
        );
        assert_eq!(
            decide(&pinned, &cache).unwrap_err(),
            format!(
                "0/3 nodes are available: 1 node(s) didn't find available persistent volumes to bind, \
                     2 node(s) didn't match the requested node name. {NOT_HELPFUL}"
            )
        );
        // The writes failed: back as it was.
        forget(&mut cache, assumed);
        assert_eq!(cache.claims.get("ns", "data").unwrap().selected_node, None);
        // A class that provisions in zone b only.
        add_class(
            &mut cache,
            "zonal",
            "example.com/zonal",
            "WaitForFirstConsumer",
            json!({"allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}]}),
        );
        add_claim(
            &mut cache,
            "data",
            wffc_claim("zonal", "1Gi", json!(["ReadWriteOnce"])),
            json!({}),
            json!({}),
        );
        assert_eq!(nodes_chosen(&p, &cache, 40), ["n2", "n3"]);
    }

    #[test]
    fn static_claims_take_the_smallest_available_volume_that_fits_and_allows_the_node() {
        let mut cache = three_nodes();
        add_class(
            &mut cache,
            "manual",
            NO_PROVISIONER,
            "WaitForFirstConsumer",
            json!({}),
        );
        add_claim(
            &mut cache,
            "data",
            wffc_claim("manual", "2Gi", json!(["ReadWriteOnce"])),
            json!({}),
            json!({}),
        );
        let p = claiming("p", &["data"], &[]);
        let no_volume = format!(
            "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind. {NOT_HELPFUL}"
        );
        assert_eq!(decide(&p, &cache).unwrap_err(), no_volume);
        // Too small, the wrong access mode, another class, not Available, someone else's: none fit.
        let rwo = json!(["ReadWriteOnce"]);
        add_volume(
            &mut cache,
            "small",
            local_volume("manual", "1Gi", rwo.clone()),
            &["n1"],
            "Available",
        );
        add_volume(
            &mut cache,
            "rox",
            local_volume("manual", "5Gi", json!(["ReadOnlyMany"])),
            &["n1"],
            "Available",
        );
        add_volume(
            &mut cache,
            "other",
            local_volume("fast", "5Gi", rwo.clone()),
            &["n1"],
            "Available",
        );
        add_volume(
            &mut cache,
            "released",
            local_volume("manual", "5Gi", rwo.clone()),
            &["n1"],
            "Released",
        );
        let mut taken = local_volume("manual", "5Gi", rwo.clone());
        taken["claimRef"] = json!({"namespace": "ns", "name": "else", "uid": "else-uid"});
        add_volume(&mut cache, "taken", taken, &["n1"], "Bound");
        assert_eq!(decide(&p, &cache).unwrap_err(), no_volume);
        // Two that fit, on n2 and n3: the smaller one's node.
        add_volume(
            &mut cache,
            "big",
            local_volume("manual", "10Gi", rwo.clone()),
            &["n3"],
            "Available",
        );
        add_volume(
            &mut cache,
            "fits",
            local_volume("manual", "3Gi", rwo.clone()),
            &["n2"],
            "Available",
        );
        assert_eq!(nodes_chosen(&p, &cache, 20), ["n2", "n3"]);
        let planned = plan(&p, &cache, "n2").unwrap();
        assert_eq!(
            planned.bindings,
            [StaticBinding {
                volume: "fits".into(),
                volume_version: "3".into(),
                claim: "data".into(),
                claim_uid: "data-uid".into(),
                claim_version: "7".into(),
            }]
        );
        assert!(planned.provisions.is_empty());
        // Reserved for this claim: another claim cannot have it.
        assume(&mut cache, &planned);
        add_claim(
            &mut cache,
            "more",
            wffc_claim("manual", "2Gi", rwo.clone()),
            json!({}),
            json!({}),
        );
        assert_eq!(
            nodes_chosen(&claiming("q", &["more"], &[]), &cache, 20),
            ["n3"]
        );
        // Two claims take two volumes; the claim the volume names (prebound) keeps it.
        add_volume(
            &mut cache,
            "fits-2",
            local_volume("manual", "3Gi", rwo),
            &["n2"],
            "Available",
        );
        let both = claiming("r", &["data", "more"], &[]);
        let planned = plan(&both, &cache, "n2").unwrap();
        assert_eq!(
            planned
                .bindings
                .iter()
                .map(|b| (b.volume.as_str(), b.claim.as_str()))
                .collect::<Vec<_>>(),
            [("fits-2", "more")]
        );
    }

    #[test]
    fn a_read_write_once_pod_claim_is_used_by_one_pod_at_a_time() {
        let mut cache = cache(vec![
            node("n1", json!({}), "4", 10),
            node("n2", json!({}), "4", 10),
        ]);
        add_class(
            &mut cache,
            "local-path",
            "gantry.io/local-path",
            "WaitForFirstConsumer",
            json!({}),
        );
        add_claim(
            &mut cache,
            "solo",
            wffc_claim("local-path", "1Gi", json!(["ReadWriteOncePod"])),
            json!({}),
            json!({}),
        );
        let first = claiming("first", &["solo"], &[]);
        place(&mut cache, &first, "n1");
        assert!(cache.claim_in_use("ns", "solo"));
        let second = claiming("second", &["solo"], &[]);
        assert_eq!(
            decide(&second, &cache).unwrap_err(),
            "0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same name and \
             ReadWriteOncePod access mode. preemption: 0/2 nodes are available: \
             2 No preemption victims found for incoming pod.."
        );
        // A pod of higher priority preempts the one using it.
        let important = pod(
            "ns",
            "important",
            json!({}),
            json!({"priority": 1000,
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "solo"}}]}),
        );
        match Algorithm::default().decide(&important, &cache) {
            Decision::Preempt { node, victims, .. } => {
                assert_eq!(node, "n1");
                assert_eq!(victims.len(), 1);
                assert_eq!(victims[0].uid, "first");
            }
            other => panic!("{other:?}"),
        }
        // Once it is gone, the claim is free.
        cache.remove_pod("first");
        assert!(!cache.claim_in_use("ns", "solo"));
        assert!(decide(&second, &cache).is_ok());
    }

    #[test]
    fn prebind_patches_pin_the_resource_version() {
        let binding = StaticBinding {
            volume: "pv".into(),
            volume_version: "3".into(),
            claim: "data".into(),
            claim_uid: "u".into(),
            claim_version: "7".into(),
        };
        assert_eq!(
            binding_patch("ns", &binding),
            json!({"metadata": {"resourceVersion": "3",
                    "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
                "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                    "namespace": "ns", "name": "data", "uid": "u", "resourceVersion": "7"}}})
        );
        let provision = Provision {
            claim: "data".into(),
            claim_version: "7".into(),
        };
        assert_eq!(
            provision_patch("n1", &provision),
            json!({"metadata": {"resourceVersion": "7",
                "annotations": {"volume.kubernetes.io/selected-node": "n1"}}})
        );
    }
}
