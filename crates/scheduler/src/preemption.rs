//! Preemption, as upstream's DefaultPreemption PostFilter: when no node can take a pod, find a node where
//! evicting pods of lower priority makes room, evicting as few and as unimportant ones as will do.
//!
//! Only nodes that failed a filter preemption can help with are tried (resources, ports, pod
//! anti-affinity, spreading skew), at least 100 of them or a tenth. On each, every pod of lower priority is
//! taken out (of a copy of the node, and of the cycle's affinity and spreading counts); if the pod fits
//! then, the pods are given back one by one, most important first and those whose eviction would break a
//! PodDisruptionBudget before the others, and each that makes the pod not fit again is a victim. The
//! node chosen has the fewest budget violations, then the lowest highest victim priority, the smallest
//! sum of priorities, the fewest victims, the latest start among its most important victims.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::cache::{Cache, CachedPod, NodeInfo, NodeSpec};
use crate::plugins::{
    CycleState, FitError, PREEMPTION_NO_VICTIMS, PREEMPTION_NOT_HELPFUL, PodInfo, Reasons, Victim,
    histogram, run_filters,
};

/// The share of the nodes tried, in percent (upstream's `minCandidateNodesPercentage`).
pub const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
/// The fewest nodes tried (upstream's `minCandidateNodesAbsolute`).
pub const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// Where preemption makes room, and whom it evicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Victim>,
}

/// Why preemption cannot help ("preemption: …"), and whether the pod's nomination goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub message: String,
    pub clear_nomination: bool,
}

/// The victims preemption would take from one node.
#[derive(Debug)]
struct OnNode<'a> {
    node: &'a str,
    victims: Vec<&'a CachedPod>,
    violations: usize,
}

/// Upstream's `MoreImportantPod` as an ordering (more important first): higher priority, then the one
/// started earlier (not started: now).
fn by_importance(a: &CachedPod, b: &CachedPod, now: i64) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.start.unwrap_or(now).cmp(&b.start.unwrap_or(now)))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Finds where evicting pods makes room for `pod`, after `fit` said no node could take it.
pub fn preempt(
    pod: &PodInfo,
    cache: &Cache,
    state: &mut CycleState,
    fit: &FitError,
    seed: u64,
) -> Result<Candidate, Failed> {
    if pod.preemption_never {
        return Err(Failed {
            message: "preemption: not eligible due to preemptionPolicy=Never.".into(),
            clear_nomination: false,
        });
    }
    let nodes = cache.nodes();
    // A pod whose earlier preemption is still under way waits for it (unless its node cannot help now).
    let nominated = cache
        .nomination(&pod.uid)
        .map(|n| n.node.as_str())
        .or(pod.nominated_node.as_deref());
    if let Some(name) = nominated
        && let Some(info) = cache.node(name)
        && fit.resolvable.iter().any(|i| nodes[*i].name == name)
        && cache
            .pods_on(info)
            .any(|p| p.priority < pod.priority && p.preempted)
    {
        return Err(Failed {
            message: "preemption: not eligible due to a terminating pod on the nominated node."
                .into(),
            clear_nomination: false,
        });
    }
    let mut statuses: HashMap<String, usize> = HashMap::new();
    let unhelpful = fit.nodes.saturating_sub(fit.resolvable.len());
    if unhelpful > 0 {
        statuses.insert(PREEMPTION_NOT_HELPFUL.to_owned(), unhelpful);
    }
    let potential = &fit.resolvable;
    if potential.is_empty() {
        return Err(Failed {
            message: format!("preemption: {}", histogram(fit.nodes, &statuses)),
            clear_nomination: true,
        });
    }
    let wanted = (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(potential.len());
    let offset = (seed % potential.len() as u64) as usize;
    let now = now_ms();
    let (mut clean, mut violating) = (Vec::new(), Vec::new());
    for k in 0..potential.len() {
        let info = &nodes[potential[(offset + k) % potential.len()]];
        let Some(spec) = &info.spec else { continue };
        match victims_on(pod, cache, state, info, spec, now) {
            Ok(found) if found.victims.is_empty() => {}
            Ok(found) if found.violations == 0 => clean.push(found),
            Ok(found) => violating.push(found),
            Err(reasons) => {
                for reason in reasons {
                    *statuses.entry(reason).or_default() += 1;
                }
            }
        }
        if !clean.is_empty() && clean.len() + violating.len() >= wanted {
            break;
        }
    }
    clean.append(&mut violating);
    let Some(chosen) = pick(clean, now) else {
        return Err(Failed {
            message: format!("preemption: {}", histogram(fit.nodes, &statuses)),
            clear_nomination: true,
        });
    };
    Ok(Candidate {
        node: chosen.node.to_owned(),
        victims: chosen
            .victims
            .iter()
            .map(|p| Victim {
                uid: p.uid.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            })
            .collect(),
    })
}

/// Upstream's `SelectVictimsOnNode`; the cycle state is as it was when this returns.
fn victims_on<'a>(
    pod: &PodInfo,
    cache: &'a Cache,
    state: &mut CycleState,
    info: &'a NodeInfo,
    spec: &NodeSpec,
    now: i64,
) -> Result<OnNode<'a>, Reasons> {
    let mut potential: Vec<&CachedPod> = cache
        .pods_on(info)
        .filter(|p| p.priority < pod.priority)
        .collect();
    if potential.is_empty() {
        return Err(vec![PREEMPTION_NO_VICTIMS.to_owned()]);
    }
    let mut node = info.clone();
    for p in &potential {
        node.remove(&p.usage);
        state.update_with_pod(pod, p, info, spec, -1);
    }
    let mut out = potential.clone();
    let result = match run_filters(pod, &node, spec, state, cache) {
        Err(failure) => Err(failure.reasons),
        Ok(()) => {
            potential.sort_by(|a, b| by_importance(a, b, now));
            let (breaking, sparing) = split_by_budgets(&potential, cache);
            let mut victims = Vec::new();
            let mut violations = 0;
            for (group, breaks) in [(&breaking, true), (&sparing, false)] {
                for p in group {
                    node.add(&p.usage);
                    state.update_with_pod(pod, p, info, spec, 1);
                    if run_filters(pod, &node, spec, state, cache).is_ok() {
                        out.retain(|o| o.uid != p.uid);
                        continue;
                    }
                    node.remove(&p.usage);
                    state.update_with_pod(pod, p, info, spec, -1);
                    victims.push(*p);
                    if breaks {
                        violations += 1;
                    }
                }
            }
            if !breaking.is_empty() && !sparing.is_empty() {
                victims.sort_by(|a, b| by_importance(a, b, now));
            }
            Ok(OnNode {
                node: &info.name,
                victims,
                violations,
            })
        }
    };
    for p in out {
        state.update_with_pod(pod, p, info, spec, 1);
    }
    result
}

/// The pods whose eviction would break a PodDisruptionBudget (its `disruptionsAllowed` used up, counting
/// the pods before them), and the others (upstream's `filterPodsWithPDBViolation`).
fn split_by_budgets<'a>(
    pods: &[&'a CachedPod],
    cache: &Cache,
) -> (Vec<&'a CachedPod>, Vec<&'a CachedPod>) {
    let mut left: HashMap<(&str, &str), i32> = HashMap::new();
    let (mut breaking, mut sparing) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut breaks = false;
        if !pod.labels.is_empty() {
            for (name, budget) in cache.budgets.in_namespace(&pod.namespace) {
                if budget.selector.is_empty()
                    || !budget.selector.matches(&pod.labels)
                    || budget.disrupted.contains(&pod.name)
                {
                    continue;
                }
                let allowed = left
                    .entry((pod.namespace.as_str(), name.as_str()))
                    .or_insert(budget.disruptions_allowed);
                *allowed -= 1;
                if *allowed < 0 {
                    breaks = true;
                }
            }
        }
        if breaks {
            breaking.push(*pod);
        } else {
            sparing.push(*pod);
        }
    }
    (breaking, sparing)
}

/// Upstream's `pickOneNodeForPreemption`: each criterion keeps the best candidates, the next one breaks
/// their ties; then the first.
fn pick(candidates: Vec<OnNode<'_>>, now: i64) -> Option<OnNode<'_>> {
    type Criterion = fn(&OnNode<'_>, i64) -> i64;
    let criteria: [Criterion; 5] = [
        |c, _| -(c.violations as i64),
        |c, _| -i64::from(c.victims.first().map_or(0, |p| p.priority)),
        |c, _| {
            -c.victims
                .iter()
                .map(|p| i64::from(p.priority) + i64::from(i32::MAX) + 1)
                .sum::<i64>()
        },
        |c, _| -(c.victims.len() as i64),
        |c, now| {
            // The earliest start among the victims of the highest priority: the later, the better.
            let top = c.victims.first().map_or(0, |p| p.priority);
            c.victims
                .iter()
                .filter(|p| p.priority == top)
                .map(|p| p.start.unwrap_or(now))
                .min()
                .unwrap_or(i64::MIN)
        },
    ];
    let mut left = candidates;
    for criterion in criteria {
        if left.len() <= 1 {
            break;
        }
        let best = left.iter().map(|c| criterion(c, now)).max()?;
        left.retain(|c| criterion(c, now) == best);
    }
    left.into_iter().next()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use crate::cache::{Budget, Cache, CachedPod, Nomination};
    use crate::plugins::{Algorithm, Decision, PodInfo};
    use crate::testing::{cache, decide, node, place, pod};

    /// A pod asking `cpu` with `priority`, started `start` ms after the epoch.
    fn workload(name: &str, cpu: &str, priority: i32, labels: Value) -> PodInfo {
        pod(
            "ns",
            name,
            labels,
            json!({"priority": priority, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": cpu}}}]}),
        )
    }

    fn place_started(cache: &mut Cache, p: &PodInfo, node: &str, start: i64) {
        let mut placed = CachedPod::of(&p.pod, node, None);
        placed.start = Some(start);
        cache.add_pod(placed);
    }

    fn preemption(p: &PodInfo, cache: &Cache) -> (String, Vec<String>) {
        match Algorithm::default().decide(p, cache) {
            Decision::Preempt { node, victims, .. } => {
                (node, victims.into_iter().map(|v| v.name).collect())
            }
            other => panic!("no preemption: {other:?}"),
        }
    }

    #[test]
    fn a_pod_of_higher_priority_evicts_as_few_and_as_unimportant_pods_as_will_do() {
        let mut cache = cache(vec![node("n1", json!({}), "4", 10)]);
        place_started(
            &mut cache,
            &workload("low-a", "1", 10, json!({})),
            "n1",
            1000,
        );
        place_started(
            &mut cache,
            &workload("low-b", "1", 5, json!({})),
            "n1",
            2000,
        );
        place_started(&mut cache, &workload("mid", "2", 50, json!({})), "n1", 3000);
        // 1 cpu wanted: the least important pod alone goes.
        let (node, victims) = preemption(&workload("high", "1", 100, json!({})), &cache);
        assert_eq!((node.as_str(), victims), ("n1", vec!["low-b".to_owned()]));
        // 2 cpus: both low pods (the mid one, more important, is reprieved first).
        let (_, victims) = preemption(&workload("high", "2", 100, json!({})), &cache);
        assert_eq!(victims, ["low-a", "low-b"]);
        // Equal priority: nobody to evict.
        let message = decide(&workload("peer", "3", 5, json!({})), &cache).unwrap_err();
        assert_eq!(
            message,
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 No preemption victims found for incoming pod.."
        );
        // Evicting every lower pod is not enough: the filter's reason.
        let message = decide(&workload("huge", "4", 20, json!({})), &cache).unwrap_err();
        assert_eq!(
            message,
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 Insufficient cpu.."
        );
        let never = pod(
            "ns",
            "never",
            json!({}),
            json!({"priority": 100, "preemptionPolicy": "Never",
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        assert!(
            decide(&never, &cache)
                .unwrap_err()
                .ends_with("preemption: not eligible due to preemptionPolicy=Never..")
        );
    }

    #[test]
    fn the_node_chosen_breaks_fewest_budgets_then_evicts_the_least() {
        let mut cache = cache(vec![
            node("guarded", json!({}), "2", 10),
            node("busy", json!({}), "2", 10),
            node("cheap", json!({}), "2", 10),
        ]);
        place(
            &mut cache,
            &workload("db", "2", 1, json!({"app": "db"})),
            "guarded",
        );
        place(&mut cache, &workload("a", "1", 1, json!({})), "busy");
        place(&mut cache, &workload("b", "1", 1, json!({})), "busy");
        place(&mut cache, &workload("batch", "2", 3, json!({})), "cheap");
        cache.budgets.set(
            "ns",
            "db",
            Budget {
                selector: gantry_api::labels::Selector::parse("app=db").unwrap(),
                disruptions_allowed: 0,
                disrupted: Default::default(),
            },
        );
        // guarded: 1 victim of priority 1, but a budget broken; busy: 2 victims of priority 1; cheap: one
        // of priority 3. Fewest violations, then the lowest highest priority, then the smallest sum.
        let (node, victims) = preemption(&workload("high", "2", 100, json!({})), &cache);
        assert_eq!((node.as_str(), victims.len()), ("busy", 2));
        // The budget allows one disruption now: guarded's single victim of priority 1 wins.
        cache.budgets.set(
            "ns",
            "db",
            Budget {
                selector: gantry_api::labels::Selector::parse("app=db").unwrap(),
                disruptions_allowed: 1,
                disrupted: Default::default(),
            },
        );
        let (node, victims) = preemption(&workload("high", "2", 100, json!({})), &cache);
        assert_eq!((node.as_str(), victims), ("guarded", vec!["db".to_owned()]));
    }

    #[test]
    fn nominated_pods_keep_their_room_and_wait_for_their_victims() {
        let mut cache = cache(vec![node("n1", json!({}), "2", 10)]);
        let low = workload("low", "2", 1, json!({}));
        place(&mut cache, &low, "n1");
        let high = workload("high", "2", 100, json!({}));
        assert_eq!(preemption(&high, &cache).1, ["low"]);
        // What the scheduler does next: nominate, mark the victim; the pod waits for it to go.
        cache.nominate(
            "high",
            Nomination {
                node: "n1".into(),
                priority: 100,
                usage: high.usage.clone(),
            },
        );
        cache.mark_preempted("low");
        assert!(decide(&high, &cache).unwrap_err().ends_with(
            "preemption: not eligible due to a terminating pod on the nominated node.."
        ));
        cache.remove_pod("low");
        assert_eq!(decide(&high, &cache).unwrap(), "n1");
        // A pod of lower priority cannot take the room in the meantime; one of higher priority can.
        let middle = workload("middle", "1", 50, json!({}));
        assert!(
            decide(&middle, &cache)
                .unwrap_err()
                .starts_with("0/1 nodes are available: 1 Insufficient cpu.")
        );
        let top = workload("top", "1", 1000, json!({}));
        assert_eq!(decide(&top, &cache).unwrap(), "n1");
        cache.clear_nomination("high");
        assert_eq!(decide(&middle, &cache).unwrap(), "n1");
    }

    #[test]
    fn preemption_can_resolve_anti_affinity_but_not_affinity() {
        let mut cache = cache(vec![node("n1", json!({}), "8", 10)]);
        let low = workload("low", "1", 1, json!({"app": "rival"}));
        place(&mut cache, &low, "n1");
        let picky = pod(
            "ns",
            "picky",
            json!({}),
            json!({"priority": 10, "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "rival"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        assert_eq!(
            preemption(&picky, &cache),
            ("n1".to_owned(), vec!["low".to_owned()])
        );
        let clingy = pod(
            "ns",
            "clingy",
            json!({}),
            json!({"priority": 10, "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "absent"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        assert!(
            decide(&clingy, &cache)
                .unwrap_err()
                .ends_with("1 Preemption is not helpful for scheduling..")
        );
        // Spreading: evicting a lower pod in the crowded zone restores the skew.
        let mut cache = crate::testing::cache(vec![
            node("a", json!({"zone": "a"}), "8", 10),
            node("b", json!({"zone": "b"}), "8", 10),
        ]);
        let spread = |name: &str, priority: i32| {
            pod(
                "ns",
                name,
                json!({"app": "s"}),
                json!({"priority": priority, "nodeSelector": {"zone": "a"},
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                    "whenUnsatisfiable": "DoNotSchedule", "nodeAffinityPolicy": "Ignore",
                    "labelSelector": {"matchLabels": {"app": "s"}}}]}),
            )
        };
        place(&mut cache, &spread("s0", 1), "a");
        assert_eq!(
            preemption(&spread("s1", 5), &cache),
            ("a".to_owned(), vec!["s0".to_owned()])
        );
    }
}
