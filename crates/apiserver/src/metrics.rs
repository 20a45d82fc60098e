//! Prometheus metrics at `/metrics` (text format 0.0.4): requests by verb, resource and code, their latency,
//! open watches, and the latency of store operations.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use gantry_store::{Deleted, KeyValue, RangePage, RangeRequest, Revision, Store, WatchStream};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative; summed when rendered).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The server's metrics. Label values are few (verbs, served resources, codes), so maps keyed by them stay small.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    request_latency: BTreeMap<(String, String), Histogram>,
    watches: BTreeMap<String, i64>,
    store_latency: BTreeMap<&'static str, Histogram>,
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One answered request (`resource` is empty for non-resource paths).
    pub(crate) fn request(&self, verb: &str, resource: &str, code: u16, took: Duration) {
        let mut inner = self.inner();
        *inner
            .requests
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default() += 1;
        inner
            .request_latency
            .entry((verb.to_string(), resource.to_string()))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// A watch of `resource` opened (`delta` 1) or closed (-1).
    pub(crate) fn watch(&self, resource: &str, delta: i64) {
        *self
            .inner()
            .watches
            .entry(resource.to_string())
            .or_default() += delta;
    }

    /// One store operation.
    pub(crate) fn store(&self, operation: &'static str, took: Duration) {
        self.inner()
            .store_latency
            .entry(operation)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let inner = self.inner();
        let mut out = String::new();
        out.push_str(
            "# HELP apiserver_request_total Requests answered, by verb, resource and HTTP code.\n",
        );
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), count) in &inner.requests {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP apiserver_request_duration_seconds Time to answer, by verb and resource.\n",
        );
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource), histogram) in &inner.request_latency {
            render_histogram(
                &mut out,
                "apiserver_request_duration_seconds",
                &format!("verb=\"{verb}\",resource=\"{resource}\""),
                histogram,
            );
        }
        out.push_str("# HELP apiserver_registered_watchers Open watches, by resource.\n");
        out.push_str("# TYPE apiserver_registered_watchers gauge\n");
        for (resource, count) in &inner.watches {
            let _ = writeln!(
                out,
                "apiserver_registered_watchers{{resource=\"{resource}\"}} {count}"
            );
        }
        out.push_str("# HELP gantry_store_request_duration_seconds Time of store operations, by operation.\n");
        out.push_str("# TYPE gantry_store_request_duration_seconds histogram\n");
        for (operation, histogram) in &inner.store_latency {
            render_histogram(
                &mut out,
                "gantry_store_request_duration_seconds",
                &format!("operation=\"{operation}\""),
                histogram,
            );
        }
        out
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
        histogram.count
    );
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Metrics::default();
        metrics.request("get", "pods", 200, Duration::from_millis(3));
        metrics.request("get", "pods", 200, Duration::from_millis(30));
        metrics.request("create", "pods", 409, Duration::from_millis(1));
        metrics.watch("pods", 1);
        metrics.watch("pods", 1);
        metrics.watch("pods", -1);
        metrics.store("get", Duration::from_micros(200));
        let text = metrics.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"create\",resource=\"pods\",code=\"409\"} 1"
            )
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",le=\"0.005\"} 1"));
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",le=\"0.05\"} 2"));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"get\",resource=\"pods\"} 2"
        ));
        assert!(text.contains("apiserver_registered_watchers{resource=\"pods\"} 1"));
        assert!(text.contains("gantry_store_request_duration_seconds_count{operation=\"get\"} 1"));
    }
}

/// A [`Store`] that records how long each operation takes.
#[derive(Debug)]
pub(crate) struct MeteredStore {
    pub(crate) inner: std::sync::Arc<dyn Store>,
    pub(crate) metrics: std::sync::Arc<Metrics>,
}

impl MeteredStore {
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let start = std::time::Instant::now();
        let result = call.await;
        self.metrics.store(operation, start.elapsed());
        result
    }
}

#[async_trait::async_trait]
impl Store for MeteredStore {
    async fn current_revision(&self) -> gantry_store::Result<Revision> {
        self.timed("current_revision", self.inner.current_revision())
            .await
    }

    async fn get(
        &self,
        key: &[u8],
        revision: Option<Revision>,
    ) -> gantry_store::Result<Option<KeyValue>> {
        self.timed("get", self.inner.get(key, revision)).await
    }

    async fn range(&self, request: RangeRequest) -> gantry_store::Result<RangePage> {
        self.timed("range", self.inner.range(request)).await
    }

    async fn create(&self, key: Bytes, value: Bytes) -> gantry_store::Result<KeyValue> {
        self.timed("create", self.inner.create(key, value)).await
    }

    async fn update(
        &self,
        key: Bytes,
        value: Bytes,
        expected: Revision,
    ) -> gantry_store::Result<KeyValue> {
        self.timed("update", self.inner.update(key, value, expected))
            .await
    }

    async fn delete(
        &self,
        key: Bytes,
        expected: Option<Revision>,
    ) -> gantry_store::Result<Deleted> {
        self.timed("delete", self.inner.delete(key, expected)).await
    }

    async fn watch(&self, prefix: Bytes, after: Revision) -> gantry_store::Result<WatchStream> {
        self.timed("watch", self.inner.watch(prefix, after)).await
    }

    async fn compact(&self, revision: Revision) -> gantry_store::Result<()> {
        self.timed("compact", self.inner.compact(revision)).await
    }
}

/// Counts a watch as open for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenWatch {
    metrics: std::sync::Arc<Metrics>,
    resource: &'static str,
}

impl OpenWatch {
    pub(crate) fn new(metrics: std::sync::Arc<Metrics>, resource: &'static str) -> Self {
        metrics.watch(resource, 1);
        OpenWatch { metrics, resource }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.metrics.watch(self.resource, -1);
    }
}
