//! Resource amounts as the scheduler counts them: cpu in millicores, everything else in whole units (rounded
//! up, as upstream's `MilliValue`/`Value`), and what a pod requests (upstream's `PodRequests`).

use std::collections::BTreeMap;

use gantry_api::validate::quantity::Quantity as Parsed;
use gantry_client::k8s_openapi::api::core::v1::{Container, PodSpec};
use gantry_client::k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What the scoring counts for a container that requests no cpu (upstream's `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// What the scoring counts for a container that requests no memory (upstream's `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// Amounts of resources: cpu, memory, ephemeral storage and the rest (extended resources, hugepages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Every other resource, by name, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// From a resource list (`requests`, `allocatable`); `pods` is left out (counted apart).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut resources = Resources::default();
        for (name, quantity) in list {
            resources.set(name, quantity);
        }
        resources
    }

    fn set(&mut self, name: &str, quantity: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = milli_value(quantity),
            "memory" => self.memory = value(quantity),
            "ephemeral-storage" => self.ephemeral_storage = value(quantity),
            "pods" => {}
            other => {
                self.scalar.insert(other.to_owned(), value(quantity));
            }
        }
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (name, amount) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() += amount;
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_default();
            *entry -= amount;
            if *entry == 0 {
                self.scalar.remove(name);
            }
        }
    }

    /// Each amount the larger of the two.
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_default();
            *entry = (*entry).max(*amount);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// A quantity in thousandths, rounded up (0 when it does not parse: validation keeps those out).
pub fn milli_value(quantity: &Quantity) -> i64 {
    scaled(quantity, 1_000_000)
}

/// A quantity in whole units, rounded up.
pub fn value(quantity: &Quantity) -> i64 {
    scaled(quantity, 1_000_000_000)
}

fn scaled(quantity: &Quantity, nanos_per_unit: i128) -> i64 {
    let Ok(parsed) = Parsed::parse(quantity.0.trim()) else {
        return 0;
    };
    let nanos = parsed.nanos();
    let units =
        nanos.div_euclid(nanos_per_unit) + i128::from(nanos.rem_euclid(nanos_per_unit) != 0);
    i64::try_from(units).unwrap_or(if units < 0 { i64::MIN } else { i64::MAX })
}

fn container_requests(container: &Container) -> Resources {
    container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default()
}

fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// What a pod requests, as upstream's `PodRequests` adds it up: the containers and sidecars (init
/// containers with `restartPolicy: Always`) together, or the largest one-off init container with the
/// sidecars started before it if that is more; then the pod's overhead. `non_zero` counts a container
/// without a cpu or memory request as [`DEFAULT_MILLI_CPU`] or [`DEFAULT_MEMORY`] (what the scores use).
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let requests = |c: &Container| {
        let mut r = container_requests(c);
        if non_zero {
            if r.milli_cpu == 0 {
                r.milli_cpu = DEFAULT_MILLI_CPU;
            }
            if r.memory == 0 {
                r.memory = DEFAULT_MEMORY;
            }
        }
        r
    };
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&requests(container));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let request = requests(container);
        if is_sidecar(container) {
            sidecars.add(&request);
            total.add(&request);
            init_peak.max_with(&sidecars);
        } else {
            let mut running = sidecars.clone();
            running.add(&request);
            init_peak.max_with(&running);
        }
    }
    total.max_with(&init_peak);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resources::from_list(overhead));
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_owned())
    }

    #[test]
    fn quantities_round_up_to_their_unit() {
        assert_eq!(milli_value(&q("1")), 1000);
        assert_eq!(milli_value(&q("250m")), 250);
        assert_eq!(milli_value(&q("0.1")), 100);
        assert_eq!(milli_value(&q("1u")), 1);
        assert_eq!(value(&q("1Gi")), 1 << 30);
        assert_eq!(value(&q("1.5k")), 1500);
        assert_eq!(value(&q("100m")), 1);
        assert_eq!(value(&q("nonsense")), 0);
    }

    #[test]
    fn pod_requests_add_containers_and_take_the_largest_init_container() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}},
            ],
            "initContainers": [
                {"name": "big", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "after", "resources": {"requests": {"cpu": "500m"}}},
            ],
            "overhead": {"cpu": "10m"},
        }))
        .unwrap();
        let r = pod_requests(&spec, false);
        // max(100+200+50, 1000, 50+500) + 10
        assert_eq!(r.milli_cpu, 1010);
        assert_eq!(r.memory, 64 << 20);
        assert_eq!(r.scalar["example.com/gpu"], 1);
        let r = pod_requests(&spec, true);
        // Container b asks no memory: counted as 200Mi for scoring; the sidecar too.
        assert_eq!(r.memory, (64 << 20) + 2 * DEFAULT_MEMORY);
        let empty: PodSpec =
            serde_json::from_value(serde_json::json!({"containers": [{"name": "x"}]})).unwrap();
        assert!(pod_requests(&empty, false).is_zero());
    }
}
