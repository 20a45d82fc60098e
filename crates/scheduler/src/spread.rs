//! Pod topology spread constraints, as upstream's PodTopologySpread plugin: `DoNotSchedule` constraints
//! filter (the skew a node would make, `minDomains`, the node inclusion policies), `ScheduleAnyway` ones
//! score, and a pod with no constraints that belongs to a Service, ReplicaSet, StatefulSet or
//! ReplicationController gets upstream's system defaults (hostname, maxSkew 3; zone, maxSkew 5; both
//! `ScheduleAnyway`).
//!
//! The matching pods are found through the cache's label index, once per constraint and cycle; a pod
//! without constraints (and no default ones) costs nothing.

use std::collections::{BTreeMap, HashMap};

use gantry_api::labels::{Operator, Selector};
use gantry_client::k8s_openapi::api::core::v1::Pod;

use crate::affinity::{label_selector, with_label_keys};
use crate::cache::{Cache, NodeInfo, NodeSpec, Scope, selector_is_nothing};
use crate::plugins::{Failure, MAX_SCORE, PodInfo, has_untolerated_taint, matches_node_affinity};

pub const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// A constraint as the plugin reads it (upstream's `topologySpreadConstraint`).
#[derive(Debug, Clone)]
pub struct Constraint {
    pub max_skew: i32,
    pub topology_key: String,
    /// `labelSelector` with `matchLabelKeys` added.
    pub selector: Selector,
    pub min_domains: i32,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (the default is Ignore).
    pub honor_taints: bool,
}

/// The pod's constraints whose `whenUnsatisfiable` is `action`.
pub fn constraints(pod: &Pod, labels: &BTreeMap<String, String>, action: &str) -> Vec<Constraint> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.topology_spread_constraints
        .iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| Constraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            selector: with_label_keys(
                label_selector(c.label_selector.as_ref()),
                c.match_label_keys.as_ref(),
                labels,
                Operator::In,
            ),
            min_domains: c.min_domains.unwrap_or(1),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
        .collect()
}

/// Upstream's system default constraints for a pod with none: spread the pods of the Services, and of the
/// ReplicaSet, StatefulSet or ReplicationController, it belongs to. None when it belongs to none.
pub fn default_constraints(pod: &PodInfo, cache: &Cache) -> Vec<Constraint> {
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for (_, selector) in cache.services.in_namespace(&pod.namespace) {
        if !selector.is_empty() && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
            set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut extra = Vec::new();
    if let Some((kind, name)) = &pod.controller {
        match kind.as_str() {
            "ReplicationController" => {
                if let Some(selector) = cache.replication_controllers.get(&pod.namespace, name) {
                    set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            "ReplicaSet" | "StatefulSet" => {
                let objects = if kind == "ReplicaSet" {
                    &cache.replica_sets
                } else {
                    &cache.stateful_sets
                };
                if let Some(selector) = objects.get(&pod.namespace, name)
                    && !selector_is_nothing(selector)
                {
                    extra = selector.requirements().to_vec();
                }
            }
            _ => {}
        }
    }
    let selector = Selector::from_set(set).add_requirements(extra);
    if selector.is_empty() {
        return Vec::new();
    }
    [(HOSTNAME_LABEL, 3), (ZONE_LABEL, 5)]
        .into_iter()
        .map(|(key, max_skew)| Constraint {
            max_skew,
            topology_key: key.to_owned(),
            selector: selector.clone(),
            min_domains: 1,
            honor_affinity: true,
            honor_taints: false,
        })
        .collect()
}

fn has_all_keys(node: &NodeSpec, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// Whether the node counts for the constraint (its node inclusion policies).
fn includes(c: &Constraint, pod: &PodInfo, info: &NodeInfo, node: &NodeSpec) -> bool {
    (!c.honor_affinity || matches_node_affinity(pod, &info.name, node))
        && (!c.honor_taints || !has_untolerated_taint(pod, node))
}

/// The pods of `namespace` the selector matches, not being deleted, counted by node (upstream's
/// `countPodsMatchSelector`: an empty selector counts nothing).
fn per_node<'a>(cache: &'a Cache, namespace: &str, selector: &Selector) -> HashMap<&'a str, i64> {
    let mut counts: HashMap<&'a str, i64> = HashMap::new();
    if selector.is_empty() {
        return counts;
    }
    let scope = Scope::Only(vec![namespace.to_owned()]);
    let mut add = |node: &'a str| *counts.entry(node).or_default() += 1;
    cache.for_each_matching(&scope, selector, |pod| {
        if !pod.terminating
            && let Some(info) = cache.node(&pod.node)
        {
            add(info.name.as_str());
        }
    });
    counts
}

/// Adds to a count by key and value, allocating the keys only when new.
fn add(counts: &mut HashMap<String, HashMap<String, i64>>, key: &str, value: &str, delta: i64) {
    let values = match counts.get_mut(key) {
        Some(values) => values,
        None => counts.entry(key.to_owned()).or_default(),
    };
    match values.get_mut(value) {
        Some(count) => *count += delta,
        None => {
            values.insert(value.to_owned(), delta);
        }
    }
}

/// [`per_node`] for each constraint, worked out once for constraints with the same selector (the system
/// defaults share theirs).
fn per_constraint<'a>(
    cache: &'a Cache,
    namespace: &str,
    constraints: &[Constraint],
) -> Vec<HashMap<&'a str, i64>> {
    let mut all: Vec<HashMap<&'a str, i64>> = Vec::with_capacity(constraints.len());
    for (i, c) in constraints.iter().enumerate() {
        let same = constraints[..i]
            .iter()
            .position(|d| d.selector == c.selector);
        let counts = match same {
            Some(j) => all[j].clone(),
            None => per_node(cache, namespace, &c.selector),
        };
        all.push(counts);
    }
    all
}

/// Upstream's PreFilter state: matching pods by topology pair over the eligible nodes, the number of
/// domains and the smallest count of each key.
#[derive(Debug, Clone)]
pub struct FilterState {
    constraints: Vec<Constraint>,
    counts: HashMap<String, HashMap<String, i64>>,
    domains: HashMap<String, usize>,
    min: HashMap<String, i64>,
}

impl FilterState {
    /// The state for `pod`; `None` when it has no `DoNotSchedule` constraint.
    pub fn new(pod: &PodInfo, cache: &Cache) -> Option<FilterState> {
        if pod.hard_spread.is_empty() {
            return None;
        }
        let constraints = pod.hard_spread.clone();
        let matching = per_constraint(cache, &pod.namespace, &constraints);
        let mut counts: HashMap<String, HashMap<String, i64>> = HashMap::new();
        let mut seen: Vec<&str> = Vec::with_capacity(constraints.len());
        for info in cache.nodes() {
            let Some(node) = &info.spec else { continue };
            if !has_all_keys(node, &constraints) {
                continue;
            }
            // Two constraints on one key: the later one's count is the node's (as upstream's map).
            seen.clear();
            for (i, c) in constraints.iter().enumerate().rev() {
                if seen.contains(&c.topology_key.as_str()) || !includes(c, pod, info, node) {
                    continue;
                }
                seen.push(&c.topology_key);
                let value = &node.labels[&c.topology_key];
                let count = matching[i].get(info.name.as_str()).copied().unwrap_or(0);
                add(&mut counts, &c.topology_key, value, count);
            }
        }
        let mut state = FilterState {
            constraints,
            domains: counts.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
            counts,
            min: HashMap::new(),
        };
        let keys: Vec<String> = state.counts.keys().cloned().collect();
        for key in keys {
            state.update_min(&key);
        }
        Some(state)
    }

    fn update_min(&mut self, key: &str) {
        let min = self
            .counts
            .get(key)
            .and_then(|values| values.values().copied().min());
        match min {
            Some(min) => self.min.insert(key.to_owned(), min),
            None => self.min.remove(key),
        };
    }

    /// Upstream's Filter: a node without a constraint's key cannot take the pod (unresolvable); one
    /// where the pod would make the skew (its domain's count, with itself, less the smallest, or 0 when
    /// fewer domains than `minDomains` exist) exceed `maxSkew` cannot either.
    pub fn filter(&self, pod: &PodInfo, node: &NodeSpec) -> Result<(), Failure> {
        for c in &self.constraints {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Err(Failure::unresolvable(REASON_SPREAD_LABEL));
            };
            let domains = self.domains.get(&c.topology_key).copied().unwrap_or(0);
            let min = if domains < c.min_domains.max(0) as usize {
                0
            } else {
                self.min
                    .get(&c.topology_key)
                    .copied()
                    .unwrap_or(i64::from(i32::MAX))
            };
            let own = i64::from(c.selector.matches(&pod.labels));
            let count = self
                .counts
                .get(&c.topology_key)
                .and_then(|values| values.get(value))
                .copied()
                .unwrap_or(0);
            if count + own - min > i64::from(c.max_skew) {
                return Err(Failure::resolvable(REASON_SPREAD));
            }
        }
        Ok(())
    }

    /// Counts `other` in or out (`sign` 1 or -1) on a node: preemption's simulation.
    pub fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        other: &crate::cache::CachedPod,
        info: &NodeInfo,
        node: &NodeSpec,
        sign: i64,
    ) {
        if other.namespace != pod.namespace
            || other.terminating
            || !has_all_keys(node, &self.constraints)
        {
            return;
        }
        let mut touched = Vec::new();
        for c in &self.constraints {
            if !c.selector.matches(&other.labels) || !includes(c, pod, info, node) {
                continue;
            }
            let value = &node.labels[&c.topology_key];
            add(&mut self.counts, &c.topology_key, value, sign);
            touched.push(c.topology_key.clone());
        }
        for key in touched {
            self.update_min(&key);
        }
    }
}

/// Upstream's PodTopologySpread score over the feasible nodes, normalised to 0..=100 (fewer matching
/// pods in a node's domains, more points): the `ScheduleAnyway` constraints, or the system defaults for a
/// pod with no constraints at all. `None` when there are none.
pub fn score(
    pod: &PodInfo,
    cache: &Cache,
    feasible: &[(&NodeInfo, &NodeSpec)],
) -> Option<Vec<i64>> {
    let defaults;
    let (constraints, require_all) = if pod.has_spread {
        (&pod.soft_spread, true)
    } else {
        defaults = default_constraints(pod, cache);
        (&defaults, false)
    };
    if constraints.is_empty() || feasible.is_empty() {
        return None;
    }
    let ignored: Vec<bool> = feasible
        .iter()
        .map(|(_, node)| require_all && !has_all_keys(node, constraints))
        .collect();
    let considered = ignored.iter().filter(|i| !**i).count();
    // Matching pods by domain, for the domains of the nodes considered (a missing label is the domain "").
    let mut domains: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
    for ((_, node), ignored) in feasible.iter().zip(&ignored) {
        if *ignored {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key != HOSTNAME_LABEL {
                let value = node.labels.get(&c.topology_key).map_or("", String::as_str);
                domains[i].entry(value).or_insert(0);
            }
        }
    }
    let weights: Vec<f64> = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == HOSTNAME_LABEL {
                considered
            } else {
                domains[i].len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    let matching = per_constraint(cache, &pod.namespace, constraints);
    for (i, c) in constraints.iter().enumerate() {
        if c.topology_key == HOSTNAME_LABEL {
            continue;
        }
        let mut included: HashMap<&str, bool> = HashMap::new();
        for (name, count) in &matching[i] {
            let Some(info) = cache.node(name) else {
                continue;
            };
            let Some(node) = &info.spec else { continue };
            let counted = *included.entry(name).or_insert_with(|| {
                (!require_all || has_all_keys(node, constraints)) && includes(c, pod, info, node)
            });
            if !counted {
                continue;
            }
            let value = node.labels.get(&c.topology_key).map_or("", String::as_str);
            if let Some(total) = domains[i].get_mut(value) {
                *total += count;
            }
        }
    }
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .zip(&ignored)
        .map(|((info, node), ignored)| {
            if *ignored {
                return None;
            }
            let mut score = 0.0;
            for (i, c) in constraints.iter().enumerate() {
                let Some(value) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                let count = if c.topology_key == HOSTNAME_LABEL {
                    matching[i].get(info.name.as_str()).copied().unwrap_or(0)
                } else {
                    domains[i].get(value.as_str()).copied().unwrap_or(0)
                };
                score += count as f64 * weights[i] + f64::from(c.max_skew - 1);
            }
            Some(score.round() as i64)
        })
        .collect();
    let min = raw.iter().flatten().copied().min().unwrap_or(0);
    let max = raw.iter().flatten().copied().max().unwrap_or(0).max(0);
    Some(
        raw.iter()
            .map(|s| match s {
                None => 0,
                Some(_) if max == 0 => MAX_SCORE,
                Some(s) => MAX_SCORE * (max + min - s) / max,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::FilterState;
    use crate::cache::{Cache, CachedPod};
    use crate::testing::{cache, decide, node, nodes_chosen, place, pod};

    fn zones() -> Cache {
        cache(vec![
            node("a1", json!({"topology.kubernetes.io/zone": "a"}), "8", 20),
            node("a2", json!({"topology.kubernetes.io/zone": "a"}), "8", 20),
            node("b1", json!({"topology.kubernetes.io/zone": "b"}), "8", 20),
            node("c1", json!({"topology.kubernetes.io/zone": "c"}), "8", 20),
        ])
    }

    fn spread(when: &str, extra: Value) -> Value {
        let mut c = json!({"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"topologySpreadConstraints": [c]})
    }

    fn zone_of(cache: &Cache, node: &str) -> String {
        cache.node_labels(node).unwrap()["topology.kubernetes.io/zone"].clone()
    }

    #[test]
    fn max_skew_one_fills_zones_evenly() {
        let mut cache = zones();
        let mut per_zone = std::collections::BTreeMap::<String, usize>::new();
        for i in 0..9 {
            let p = pod(
                "ns",
                &format!("web-{i}"),
                json!({"app": "web"}),
                spread("DoNotSchedule", json!({})),
            );
            let node = decide(&p, &cache).unwrap();
            *per_zone.entry(zone_of(&cache, &node)).or_default() += 1;
            place(&mut cache, &p, &node);
            let (min, max) = (
                per_zone.values().min().unwrap(),
                per_zone.values().max().unwrap(),
            );
            assert!(per_zone.len() < 3 || max - min <= 1, "{per_zone:?}");
        }
        assert_eq!(per_zone.values().copied().collect::<Vec<_>>(), [3, 3, 3]);
        // Pods the selector does not match, or being deleted, or in another namespace do not count.
        let other = pod("ns", "other", json!({"app": "other"}), json!({}));
        place(&mut cache, &other, "a1");
        let elsewhere = pod("x", "elsewhere", json!({"app": "web"}), json!({}));
        place(&mut cache, &elsewhere, "a1");
        let mut leaving = CachedPod::of(
            &pod("ns", "leaving", json!({"app": "web"}), json!({})).pod,
            "a1",
            None,
        );
        leaving.terminating = true;
        cache.add_pod(leaving);
        let p = pod(
            "ns",
            "web-9",
            json!({"app": "web"}),
            spread("DoNotSchedule", json!({})),
        );
        let state = FilterState::new(&p, &cache).unwrap();
        for name in ["a1", "a2", "b1", "c1"] {
            assert!(
                state
                    .filter(&p, cache.node(name).unwrap().spec.as_ref().unwrap())
                    .is_ok()
            );
        }
        let counted = pod("ns", "counted", json!({"app": "web"}), json!({}));
        place(&mut cache, &counted, "a1");
        let state = FilterState::new(&p, &cache).unwrap();
        assert!(
            state
                .filter(&p, cache.node("a1").unwrap().spec.as_ref().unwrap())
                .is_err()
        );
        assert!(
            state
                .filter(&p, cache.node("b1").unwrap().spec.as_ref().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn skew_failures_and_missing_labels_say_why() {
        let mut cache = zones();
        cache.set_node("bare", crate::testing::node("bare", json!({}), "8", 20).1);
        let web = |name: &str| {
            pod(
                "ns",
                name,
                json!({"app": "web"}),
                spread("DoNotSchedule", json!({})),
            )
        };
        place(&mut cache, &web("w0"), "a1");
        place(&mut cache, &web("w1"), "b1");
        // Zone c is empty: only it can take the next (a and b would make a skew of 2).
        assert_eq!(nodes_chosen(&web("w2"), &cache, 20), ["c1"]);
        let strict = pod(
            "ns",
            "strict",
            json!({"app": "web"}),
            json!({"nodeSelector": {"topology.kubernetes.io/zone": "a"},
                   "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                   "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}},
                   "nodeAffinityPolicy": "Ignore"}]}),
        );
        assert_eq!(
            decide(&strict, &cache).unwrap_err(),
            "0/5 nodes are available: 2 node(s) didn't match pod topology spread constraints, \
             3 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, \
             3 Preemption is not helpful for scheduling.."
        );
        // Honoring the node affinity (the default), zones b and c do not count: zone a alone is fine.
        let honoring = pod(
            "ns",
            "honoring",
            json!({"app": "web"}),
            json!({"nodeSelector": {"topology.kubernetes.io/zone": "a"},
                   "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                   "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}),
        );
        assert!(decide(&honoring, &cache).is_ok());
        let hostname_only = pod(
            "ns",
            "h",
            json!({"app": "web"}),
            json!({"nodeName": "bare", "topologySpreadConstraints": [{"maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}]}),
        );
        let message = decide(&hostname_only, &cache).unwrap_err();
        assert!(
            message.contains(
                "1 node(s) didn't match pod topology spread constraints (missing required label)"
            ),
            "{message}"
        );
    }

    #[test]
    fn min_domains_counts_missing_domains_as_zero() {
        let mut cache = cache(vec![
            node("a1", json!({"topology.kubernetes.io/zone": "a"}), "8", 20),
            node("b1", json!({"topology.kubernetes.io/zone": "b"}), "8", 20),
        ]);
        let web = |name: &str, min: i32| {
            pod(
                "ns",
                name,
                json!({"app": "web"}),
                spread("DoNotSchedule", json!({"minDomains": min})),
            )
        };
        place(&mut cache, &web("w0", 3), "a1");
        place(&mut cache, &web("w1", 3), "b1");
        // Two domains of the three wanted: the global minimum is 0, so 1 + 1 - 0 > 1 everywhere.
        assert!(decide(&web("w2", 3), &cache).is_err());
        assert!(decide(&web("w2", 2), &cache).is_ok());
    }

    #[test]
    fn schedule_anyway_and_the_system_defaults_prefer_emptier_domains() {
        let mut cache = zones();
        let web = |name: &str| {
            pod(
                "ns",
                name,
                json!({"app": "web"}),
                spread("ScheduleAnyway", json!({})),
            )
        };
        place(&mut cache, &web("w0"), "a1");
        place(&mut cache, &web("w1"), "b1");
        assert_eq!(nodes_chosen(&web("w2"), &cache, 20), ["c1"]);

        // A ReplicaSet's pods with no constraints of their own: spread by hostname and zone.
        let mut cache = zones();
        cache.replica_sets.set(
            "ns",
            "rs",
            gantry_api::labels::Selector::parse("app=replica").unwrap(),
        );
        let replica = |name: &str| {
            let mut p = pod("ns", name, json!({"app": "replica"}), json!({}));
            p.controller = Some(("ReplicaSet".into(), "rs".into()));
            p
        };
        for (i, node) in ["a1", "a1", "a2", "b1"].iter().enumerate() {
            place(&mut cache, &replica(&format!("r{i}")), node);
        }
        assert_eq!(nodes_chosen(&replica("r9"), &cache, 20), ["c1"]);
        // Without the owner, nothing spreads it (all nodes equally good for an empty pod).
        let bare = pod("ns", "bare", json!({"app": "replica"}), json!({}));
        assert!(crate::spread::default_constraints(&bare, &cache).is_empty());
        // A Service selecting it does.
        cache.services.set(
            "ns",
            "svc",
            [("app".to_owned(), "replica".to_owned())].into(),
        );
        assert_eq!(crate::spread::default_constraints(&bare, &cache).len(), 2);
        assert_eq!(nodes_chosen(&bare, &cache, 20), ["c1"]);
    }
}
