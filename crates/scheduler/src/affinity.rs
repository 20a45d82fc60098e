//! Inter-pod affinity and anti-affinity, as upstream's InterPodAffinity plugin: the required terms filter
//! (the pod's own affinity and anti-affinity, and the anti-affinity of the pods already placed, which holds
//! both ways), the preferred terms score.
//!
//! What a cycle needs is worked out once per pod ([`FilterState`], upstream's PreFilter state): counts by
//! topology pair of the pods matching the pod's terms, found through the cache's label index (only the pods
//! with the rarest label a selector requires are looked at), and of the placed pods' anti-affinity terms
//! that match the pod, one check per distinct term (the cache counts each distinct term by node). A pod with
//! no terms in a cluster with none costs one emptiness check.

use std::collections::{BTreeMap, HashMap};

use gantry_api::labels::{Operator, Requirement, Selector};
use gantry_client::k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::cache::{Cache, CachedPod, NodeSpec, Scope};
use crate::plugins::{Failure, MAX_SCORE, PodInfo};

pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// What a placed pod's required affinity term that the new pod matches adds to the score (upstream's
/// `hardPodAffinityWeight` default).
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// A `metav1.LabelSelector` as a selector: null matches nothing, `{}` everything; one that does not parse
/// (validation keeps those out) nothing.
pub fn label_selector(selector: Option<&LabelSelector>) -> Selector {
    let Some(selector) = selector else {
        return Selector::nothing();
    };
    serde_json::to_value(selector)
        .ok()
        .and_then(|v| Selector::from_label_selector(&v).ok())
        .unwrap_or_else(Selector::nothing)
}

/// Adds `key <op> (value)` for each of `keys` the labels have (`matchLabelKeys`, `mismatchLabelKeys`).
pub fn with_label_keys(
    selector: Selector,
    keys: Option<&Vec<String>>,
    labels: &BTreeMap<String, String>,
    operator: Operator,
) -> Selector {
    let requirements: Vec<Requirement> = keys
        .into_iter()
        .flatten()
        .filter_map(|key| {
            let value = labels.get(key)?;
            Requirement::new(key.as_str(), operator, vec![value.clone()]).ok()
        })
        .collect();
    if requirements.is_empty() {
        selector
    } else {
        selector.add_requirements(requirements)
    }
}

/// What a term is to the pod that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermKind {
    RequiredAffinity,
    RequiredAnti,
    PreferredAffinity,
    PreferredAnti,
}

/// One pod (anti-)affinity term of a pod, read relative to that pod.
#[derive(Debug, Clone)]
pub struct Term {
    /// `labelSelector` with `matchLabelKeys`/`mismatchLabelKeys` added.
    pub selector: Selector,
    /// `namespaces`, or the pod's own when neither these nor a namespace selector are given.
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<Selector>,
    pub topology_key: String,
    /// The weight of a preferred term (0 for a required one).
    pub weight: i32,
}

impl Term {
    pub fn parse(
        term: &PodAffinityTerm,
        weight: i32,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Term {
        let selector = label_selector(term.label_selector.as_ref());
        let selector = with_label_keys(
            selector,
            term.match_label_keys.as_ref(),
            labels,
            Operator::In,
        );
        let selector = with_label_keys(
            selector,
            term.mismatch_label_keys.as_ref(),
            labels,
            Operator::NotIn,
        );
        let namespace_selector = term
            .namespace_selector
            .as_ref()
            .map(|s| label_selector(Some(s)));
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(namespace.to_owned());
        }
        namespaces.sort();
        namespaces.dedup();
        Term {
            selector,
            namespaces,
            namespace_selector,
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// Whether a pod in `namespace` (whose labels are `namespace_labels`) with `labels` matches the term
    /// (upstream's `AffinityTerm.Matches`).
    pub fn matches(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> bool {
        (self.namespaces.iter().any(|n| n == namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.matches(namespace_labels)))
            && self.selector.matches(labels)
    }

    /// The namespaces the term covers, its namespace selector applied to the namespaces known (`{}`: all).
    pub fn scope(&self, cache: &Cache) -> Scope {
        let Some(selector) = &self.namespace_selector else {
            return Scope::Only(self.namespaces.clone());
        };
        if selector.is_empty() {
            return Scope::All;
        }
        let mut names = self.namespaces.clone();
        for (name, labels) in cache.namespaces.in_namespace("") {
            if selector.matches(labels) && !names.contains(name) {
                names.push(name.clone());
            }
        }
        Scope::Only(names)
    }

    /// What identifies the term among every pod's (the key of the cache's term groups).
    fn key(&self, kind: TermKind) -> String {
        format!(
            "{kind:?}\u{1}{}\u{1}{}\u{1}{:?}\u{1}{:?}\u{1}{:?}",
            self.weight, self.topology_key, self.namespaces, self.namespace_selector, self.selector
        )
    }
}

/// A pod's pod affinity and anti-affinity terms, each with its kind and the key of its group.
#[derive(Debug, Clone, Default)]
pub struct PodTerms {
    terms: Vec<(TermKind, Term, String)>,
}

impl PodTerms {
    /// The pod's terms; `None` when it has none.
    pub fn of(pod: &Pod) -> Option<PodTerms> {
        let affinity = pod.spec.as_ref()?.affinity.as_ref()?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut terms = Vec::new();
        let mut add = |kind: TermKind, term: &PodAffinityTerm, weight: i32| {
            let term = Term::parse(term, weight, namespace, labels);
            let key = term.key(kind);
            terms.push((kind, term, key));
        };
        let weighted = |w: &Option<Vec<WeightedPodAffinityTerm>>| {
            w.iter()
                .flatten()
                .map(|w| (w.pod_affinity_term.clone(), w.weight))
                .collect::<Vec<_>>()
        };
        if let Some(a) = &affinity.pod_affinity {
            for term in a
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                add(TermKind::RequiredAffinity, term, 0);
            }
            for (term, weight) in weighted(&a.preferred_during_scheduling_ignored_during_execution)
            {
                add(TermKind::PreferredAffinity, &term, weight);
            }
        }
        if let Some(a) = &affinity.pod_anti_affinity {
            for term in a
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                add(TermKind::RequiredAnti, term, 0);
            }
            for (term, weight) in weighted(&a.preferred_during_scheduling_ignored_during_execution)
            {
                add(TermKind::PreferredAnti, &term, weight);
            }
        }
        (!terms.is_empty()).then_some(PodTerms { terms })
    }

    /// Every term: its kind, itself, its group key.
    pub fn all(&self) -> impl Iterator<Item = (TermKind, &Term, &str)> {
        self.terms.iter().map(|(k, t, key)| (*k, t, key.as_str()))
    }

    /// The terms of one kind.
    pub fn of_kind(&self, kind: TermKind) -> impl Iterator<Item = &Term> {
        self.terms
            .iter()
            .filter(move |(k, _, _)| *k == kind)
            .map(|(_, t, _)| t)
    }

    pub fn has(&self, kind: TermKind) -> bool {
        self.of_kind(kind).next().is_some()
    }
}

/// Counts by topology key and value; entries that fall to zero are removed (so emptiness means no pair).
#[derive(Debug, Clone, Default)]
pub struct Counts(HashMap<String, HashMap<String, i64>>);

impl Counts {
    pub fn add(&mut self, key: &str, value: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        let values = match self.0.get_mut(key) {
            Some(values) => values,
            None => self.0.entry(key.to_owned()).or_default(),
        };
        let count = match values.get_mut(value) {
            Some(count) => count,
            None => values.entry(value.to_owned()).or_default(),
        };
        *count += delta;
        if *count == 0 {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    pub fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `delta` at the node's value of `key`, if the node has that label.
    fn add_at(&mut self, labels: &BTreeMap<String, String>, key: &str, delta: i64) {
        if let Some(value) = labels.get(key) {
            self.add(key, value, delta);
        }
    }

    /// The sum of the node's values over the keys counted.
    fn sum_for(&self, labels: &BTreeMap<String, String>) -> i64 {
        self.0
            .iter()
            .filter_map(|(key, values)| values.get(labels.get(key)?))
            .sum()
    }
}

/// A term of the pod being scheduled with the namespaces it covers.
#[derive(Debug, Clone)]
struct Incoming {
    term: Term,
    scope: Scope,
}

impl Incoming {
    fn matches(&self, pod: &CachedPod) -> bool {
        self.scope.contains(&pod.namespace) && self.term.selector.matches(&pod.labels)
    }
}

fn incoming(pod: &PodInfo, kind: TermKind, cache: &Cache) -> Vec<Incoming> {
    pod.terms
        .iter()
        .flat_map(|t| t.of_kind(kind))
        .map(|term| Incoming {
            scope: term.scope(cache),
            term: term.clone(),
        })
        .collect()
}

/// Upstream's PreFilter state: what the filter reads for every node.
#[derive(Debug, Clone)]
pub struct FilterState {
    affinity_terms: Vec<Incoming>,
    anti_terms: Vec<Incoming>,
    namespace_labels: BTreeMap<String, String>,
    /// Placed pods whose required anti-affinity the pod matches, by their topology pair.
    existing_anti: Counts,
    /// Placed pods matching all of the pod's required affinity terms, at each term's pair.
    affinity: Counts,
    /// Placed pods matching each required anti-affinity term of the pod.
    anti: Counts,
    /// The pod matches all its own affinity terms (it may be the first of its group).
    self_match: bool,
}

impl FilterState {
    /// The state for `pod`; `None` when nothing can fail (no required terms, and no placed pod's
    /// anti-affinity matches it).
    pub fn new(pod: &PodInfo, cache: &Cache) -> Option<FilterState> {
        let has_required = pod
            .terms
            .as_ref()
            .is_some_and(|t| t.has(TermKind::RequiredAffinity) || t.has(TermKind::RequiredAnti));
        if !has_required && !cache.has_anti_groups() {
            return None;
        }
        let namespace_labels = cache.namespace_labels(&pod.namespace);
        let mut existing_anti = Counts::default();
        for group in cache.anti_groups() {
            if !group
                .term
                .matches(&pod.namespace, &pod.labels, &namespace_labels)
            {
                continue;
            }
            for (node, count) in &group.nodes {
                if let Some(labels) = cache.node_labels(node) {
                    existing_anti.add_at(labels, &group.term.topology_key, *count as i64);
                }
            }
        }
        if !has_required && existing_anti.is_empty() {
            return None;
        }
        let affinity_terms = incoming(pod, TermKind::RequiredAffinity, cache);
        let anti_terms = incoming(pod, TermKind::RequiredAnti, cache);
        let mut affinity = Counts::default();
        if let Some(first) = affinity_terms.first() {
            cache.for_each_matching(&first.scope, &first.term.selector, |other| {
                if !affinity_terms.iter().all(|t| t.matches(other)) {
                    return;
                }
                if let Some(labels) = cache.node_labels(&other.node) {
                    for t in &affinity_terms {
                        affinity.add_at(labels, &t.term.topology_key, 1);
                    }
                }
            });
        }
        let mut anti = Counts::default();
        for t in &anti_terms {
            cache.for_each_matching(&t.scope, &t.term.selector, |other| {
                if let Some(labels) = cache.node_labels(&other.node) {
                    anti.add_at(labels, &t.term.topology_key, 1);
                }
            });
        }
        let self_match = affinity_terms
            .iter()
            .all(|t| t.scope.contains(&pod.namespace) && t.term.selector.matches(&pod.labels));
        Some(FilterState {
            affinity_terms,
            anti_terms,
            namespace_labels,
            existing_anti,
            affinity,
            anti,
            self_match,
        })
    }

    /// Upstream's Filter: the pod's affinity (unresolvable by preemption), its anti-affinity, then the
    /// placed pods' anti-affinity.
    pub fn filter(&self, node: &NodeSpec) -> Result<(), Failure> {
        if !self.affinity_terms.is_empty() {
            let mut found = true;
            for t in &self.affinity_terms {
                let Some(value) = node.labels.get(&t.term.topology_key) else {
                    return Err(Failure::unresolvable(REASON_AFFINITY));
                };
                if self.affinity.get(&t.term.topology_key, value) <= 0 {
                    found = false;
                }
            }
            // The first pod of a group with affinity to itself goes anywhere with the topology labels.
            let first_of_group = self.affinity.is_empty() && self.self_match;
            if !found && !first_of_group {
                return Err(Failure::unresolvable(REASON_AFFINITY));
            }
        }
        for t in &self.anti_terms {
            if let Some(value) = node.labels.get(&t.term.topology_key)
                && self.anti.get(&t.term.topology_key, value) > 0
            {
                return Err(Failure::resolvable(REASON_ANTI_AFFINITY));
            }
        }
        if !self.existing_anti.is_empty()
            && node
                .labels
                .iter()
                .any(|(key, value)| self.existing_anti.get(key, value) > 0)
        {
            return Err(Failure::resolvable(REASON_EXISTING_ANTI_AFFINITY));
        }
        Ok(())
    }

    /// Counts `other` (on a node with `labels`) in or out (`sign` 1 or -1): what preemption's
    /// simulation does when it removes victims or gives them back.
    pub fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        other: &CachedPod,
        labels: &BTreeMap<String, String>,
        sign: i64,
    ) {
        if let Some(terms) = &other.terms {
            for term in terms.of_kind(TermKind::RequiredAnti) {
                if term.matches(&pod.namespace, &pod.labels, &self.namespace_labels) {
                    self.existing_anti.add_at(labels, &term.topology_key, sign);
                }
            }
        }
        if !self.affinity_terms.is_empty() && self.affinity_terms.iter().all(|t| t.matches(other)) {
            for t in &self.affinity_terms {
                self.affinity.add_at(labels, &t.term.topology_key, sign);
            }
        }
        for t in &self.anti_terms {
            if t.matches(other) {
                self.anti.add_at(labels, &t.term.topology_key, sign);
            }
        }
    }
}

/// Upstream's InterPodAffinity score over the feasible nodes, normalised to 0..=100: the weights of the
/// pod's preferred terms the pods in each topology domain match (anti-affinity subtracts), and of the
/// placed pods' terms the pod matches (their required affinity at [`HARD_POD_AFFINITY_WEIGHT`]). `None`
/// when nothing counts (upstream skips the plugin).
pub fn score(pod: &PodInfo, cache: &Cache, feasible: &[&NodeSpec]) -> Option<Vec<i64>> {
    let preferred = pod
        .terms
        .as_ref()
        .is_some_and(|t| t.has(TermKind::PreferredAffinity) || t.has(TermKind::PreferredAnti));
    if !preferred && !cache.has_score_groups() {
        return None;
    }
    let mut scores = Counts::default();
    for (kind, sign) in [
        (TermKind::PreferredAffinity, 1),
        (TermKind::PreferredAnti, -1),
    ] {
        for t in incoming(pod, kind, cache) {
            let weight = i64::from(t.term.weight) * sign;
            cache.for_each_matching(&t.scope, &t.term.selector, |other| {
                if let Some(labels) = cache.node_labels(&other.node) {
                    scores.add_at(labels, &t.term.topology_key, weight);
                }
            });
        }
    }
    let namespace_labels = cache.namespace_labels(&pod.namespace);
    for group in cache.score_groups() {
        let weight = match group.kind {
            TermKind::RequiredAffinity => HARD_POD_AFFINITY_WEIGHT,
            TermKind::PreferredAffinity => i64::from(group.term.weight),
            TermKind::PreferredAnti => -i64::from(group.term.weight),
            TermKind::RequiredAnti => 0,
        };
        if weight == 0
            || !group
                .term
                .matches(&pod.namespace, &pod.labels, &namespace_labels)
        {
            continue;
        }
        for (node, count) in &group.nodes {
            if let Some(labels) = cache.node_labels(node) {
                scores.add_at(labels, &group.term.topology_key, weight * *count as i64);
            }
        }
    }
    if scores.is_empty() {
        return None;
    }
    let raw: Vec<i64> = feasible.iter().map(|n| scores.sum_for(&n.labels)).collect();
    let (min, max) = (
        raw.iter().copied().min().unwrap_or(0),
        raw.iter().copied().max().unwrap_or(0),
    );
    Some(
        raw.iter()
            .map(|s| {
                if max > min {
                    ((MAX_SCORE as f64) * ((s - min) as f64 / (max - min) as f64)) as i64
                } else {
                    0
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{cache, decide, node, nodes_chosen, place, pod};

    fn anti(labels: Value, key: &str) -> Value {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}}})
    }

    fn required(labels: Value, key: &str) -> Value {
        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}}})
    }

    fn three_nodes() -> Cache {
        cache(vec![
            node("n1", json!({"zone": "a"}), "4", 10),
            node("n2", json!({"zone": "a"}), "4", 10),
            node("n3", json!({"zone": "b"}), "4", 10),
        ])
    }

    #[test]
    fn anti_affinity_puts_one_replica_per_node_and_says_why_the_next_cannot_go() {
        let mut cache = three_nodes();
        let replica = |name: &str| {
            pod(
                "ns",
                name,
                json!({"app": "web"}),
                anti(json!({"app": "web"}), "kubernetes.io/hostname"),
            )
        };
        let mut used = Vec::new();
        for i in 0..3 {
            let p = replica(&format!("web-{i}"));
            let node = decide(&p, &cache).unwrap();
            assert!(!used.contains(&node), "{node} twice");
            place(&mut cache, &p, &node);
            used.push(node);
        }
        assert_eq!(
            decide(&replica("web-3"), &cache).unwrap_err(),
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
             preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
        );
        // Another namespace's pods are not counted (the term covers the pod's own namespace).
        let elsewhere = pod(
            "other",
            "web-x",
            json!({"app": "web"}),
            anti(json!({"app": "web"}), "kubernetes.io/hostname"),
        );
        assert!(decide(&elsewhere, &cache).is_ok());
        // Zones: one replica per zone fills both.
        let zonal = |name: &str| {
            pod(
                "z",
                name,
                json!({"app": "z"}),
                anti(json!({"app": "z"}), "zone"),
            )
        };
        let first = decide(&zonal("z-0"), &cache).unwrap();
        place(&mut cache, &zonal("z-0"), &first);
        let second = decide(&zonal("z-1"), &cache).unwrap();
        assert_ne!(
            cache.node_labels(&first).unwrap()["zone"],
            cache.node_labels(&second).unwrap()["zone"]
        );
    }

    #[test]
    fn existing_pods_anti_affinity_keeps_matching_pods_away() {
        let mut cache = three_nodes();
        let loner = pod(
            "ns",
            "loner",
            json!({"app": "loner"}),
            anti(json!({"app": "noisy"}), "zone"),
        );
        place(&mut cache, &loner, "n1");
        let noisy = pod("ns", "noisy", json!({"app": "noisy"}), json!({}));
        for _ in 0..10 {
            assert_eq!(decide(&noisy, &cache).unwrap(), "n3");
        }
        let quiet = pod(
            "ns",
            "quiet",
            json!({"app": "quiet"}),
            json!({"nodeName": "n1"}),
        );
        assert_eq!(decide(&quiet, &cache).unwrap(), "n1");
        let zone_b_busy = pod(
            "ns",
            "b",
            json!({"app": "loner"}),
            anti(json!({"app": "noisy"}), "zone"),
        );
        place(&mut cache, &zone_b_busy, "n3");
        let message = decide(&noisy, &cache).unwrap_err();
        assert!(
            message.starts_with(
                "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
            ),
            "{message}"
        );
        // Gone: the node is free again.
        cache.remove_pod("b");
        assert_eq!(decide(&noisy, &cache).unwrap(), "n3");
    }

    #[test]
    fn required_affinity_colocates_and_the_first_of_a_group_goes_anywhere() {
        let mut cache = three_nodes();
        let follower = pod(
            "ns",
            "follower",
            json!({"app": "follower"}),
            required(json!({"app": "cache"}), "zone"),
        );
        assert_eq!(
            decide(&follower, &cache).unwrap_err(),
            "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
        );
        let cache_pod = pod("ns", "cache", json!({"app": "cache"}), json!({}));
        place(&mut cache, &cache_pod, "n3");
        assert_eq!(nodes_chosen(&follower, &cache, 20), ["n3"]);
        cache.remove_pod("cache");
        place(&mut cache, &cache_pod, "n1");
        let chosen = nodes_chosen(&follower, &cache, 20);
        assert!(chosen.iter().all(|n| n == "n1" || n == "n2"), "{chosen:?}");
        let pinned = pod(
            "ns",
            "pinned",
            json!({}),
            json!({"nodeName": "n1", "affinity": required(json!({"app": "cache"}), "zone")["affinity"]}),
        );
        assert_eq!(decide(&pinned, &cache).unwrap(), "n1");
        // A group with affinity to itself: the first goes anywhere (with the label), the rest follow it.
        let mut cache = three_nodes();
        let member = |name: &str| {
            pod(
                "ns",
                name,
                json!({"group": "g"}),
                required(json!({"group": "g"}), "zone"),
            )
        };
        assert_eq!(nodes_chosen(&member("m0"), &cache, 40).len(), 3);
        place(&mut cache, &member("m0"), "n3");
        assert_eq!(nodes_chosen(&member("m1"), &cache, 20), ["n3"]);
        // Nodes without the topology label never match.
        let mut cache = cache_with_unlabelled();
        place(&mut cache, &member("m0"), "n1");
        assert_eq!(nodes_chosen(&member("m1"), &cache, 20), ["n1"]);
    }

    fn cache_with_unlabelled() -> Cache {
        cache(vec![
            node("n1", json!({"zone": "a"}), "4", 10),
            node("bare", json!({}), "4", 10),
        ])
    }

    #[test]
    fn namespaces_and_namespace_selectors_and_label_keys() {
        let mut cache = three_nodes();
        cache
            .namespaces
            .set("", "team-a", [("team".to_owned(), "a".to_owned())].into());
        cache
            .namespaces
            .set("", "team-b", [("team".to_owned(), "b".to_owned())].into());
        let db = pod("team-a", "db", json!({"app": "db"}), json!({}));
        place(&mut cache, &db, "n3");
        let term = |extra: Value| {
            let mut term =
                json!({"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"});
            for (k, v) in extra.as_object().unwrap() {
                term[k] = v.clone();
            }
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}})
        };
        let by_name = pod(
            "web",
            "w1",
            json!({}),
            term(json!({"namespaces": ["team-a"]})),
        );
        assert_eq!(decide(&by_name, &cache).unwrap(), "n3");
        let by_selector = pod(
            "web",
            "w2",
            json!({}),
            term(json!({"namespaceSelector": {"matchLabels": {"team": "a"}}})),
        );
        assert_eq!(decide(&by_selector, &cache).unwrap(), "n3");
        let wrong_team = pod(
            "web",
            "w3",
            json!({}),
            term(json!({"namespaceSelector": {"matchLabels": {"team": "b"}}})),
        );
        assert!(decide(&wrong_team, &cache).is_err());
        let everywhere = pod(
            "web",
            "w4",
            json!({}),
            term(json!({"namespaceSelector": {}})),
        );
        assert_eq!(decide(&everywhere, &cache).unwrap(), "n3");
        let own_namespace = pod("web", "w5", json!({}), term(json!({})));
        assert!(decide(&own_namespace, &cache).is_err());

        // matchLabelKeys: only the pods with the same value of the key.
        let mut cache = three_nodes();
        let versioned = |name: &str, version: &str| {
            pod(
                "ns",
                name,
                json!({"app": "api", "version": version}),
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "api"}}, "topologyKey": "kubernetes.io/hostname",
                     "matchLabelKeys": ["version"]}]}}}),
            )
        };
        place(&mut cache, &versioned("old-0", "1"), "n1");
        place(&mut cache, &versioned("old-1", "1"), "n2");
        place(&mut cache, &versioned("old-2", "1"), "n3");
        assert!(decide(&versioned("old-3", "1"), &cache).is_err());
        assert!(decide(&versioned("new-0", "2"), &cache).is_ok());
    }

    #[test]
    fn preferred_terms_score_and_placed_pods_terms_count_both_ways() {
        let mut cache = three_nodes();
        let cache_pod = pod("ns", "cache", json!({"app": "cache"}), json!({}));
        place(&mut cache, &cache_pod, "n2");
        let likes = pod(
            "ns",
            "likes",
            json!({}),
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}},
                 "topologyKey": "kubernetes.io/hostname"}}]}}}),
        );
        assert_eq!(nodes_chosen(&likes, &cache, 20), ["n2"]);
        let dislikes = pod(
            "ns",
            "dislikes",
            json!({}),
            json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}},
                 "topologyKey": "zone"}}]}}}),
        );
        assert_eq!(nodes_chosen(&dislikes, &cache, 20), ["n3"]);
        // A placed pod that prefers the new one's company draws it (the term is the placed pod's).
        let mut cache = three_nodes();
        let host = pod(
            "ns",
            "host",
            json!({}),
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"role": "guest"}},
                 "topologyKey": "kubernetes.io/hostname"}}]}}}),
        );
        place(&mut cache, &host, "n1");
        let guest = pod("ns", "guest", json!({"role": "guest"}), json!({}));
        assert_eq!(nodes_chosen(&guest, &cache, 20), ["n1"]);
        let stranger = pod("ns", "stranger", json!({"role": "other"}), json!({}));
        let specs: Vec<&NodeSpec> = cache
            .nodes()
            .iter()
            .filter_map(|n| n.spec.as_ref())
            .collect();
        assert!(score(&stranger, &cache, &specs).is_none());
        let scores = score(&guest, &cache, &specs).unwrap();
        assert_eq!(scores.iter().filter(|s| **s == MAX_SCORE).count(), 1);
    }

    #[test]
    fn counts_drop_their_zeros() {
        let mut counts = Counts::default();
        counts.add("k", "v", 2);
        counts.add("k", "v", -2);
        assert!(counts.is_empty());
        counts.add("k", "v", 1);
        assert_eq!(counts.get("k", "v"), 1);
        assert_eq!(counts.get("k", "w"), 0);
    }
}
