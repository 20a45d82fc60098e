"""The Python `kubernetes` client (from PyPI) against a real gantry server: create, list, watch, patch, delete.

Run by tests/python_client.rs with the server's kubeconfig as the only argument; exits non-zero on any failure.
"""

import sys
import threading
import time

from kubernetes import client, config, watch

config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()
ns = "python"
ROOT_CA = "kube-root-ca.crt"

core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
created = core.create_namespaced_config_map(
    ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a", labels={"app": "x"}), data={"k": "v"})
)
assert created.data == {"k": "v"}, created
assert created.metadata.uid and created.metadata.resource_version, created.metadata

listing = core.list_namespaced_config_map(ns)
# Every namespace also has its kube-root-ca.crt (the cluster CA), as in Kubernetes.
assert [c.metadata.name for c in listing.items if c.metadata.name != ROOT_CA] == ["a"], listing
start = listing.metadata.resource_version

events = []


def follow():
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=20):
        if event["object"].metadata.name == ROOT_CA:
            continue
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 3:
            w.stop()


watcher = threading.Thread(target=follow)
watcher.start()
time.sleep(1)
core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="b"), data={"n": "1"}))
core.patch_namespaced_config_map("a", ns, {"data": {"k": "w"}})
core.delete_namespaced_config_map("b", ns)
watcher.join(25)
assert events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")], events

assert core.read_namespaced_config_map("a", ns).data == {"k": "w"}
selected = core.list_namespaced_config_map(ns, label_selector="app in (x, y)")
assert [c.metadata.name for c in selected.items] == ["a"], selected

deployment = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="busybox")]),
        ),
    ),
)
apps.create_namespaced_deployment(ns, deployment)
apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
assert apps.read_namespaced_deployment_scale("web", ns).spec.replicas == 4
assert apps.read_namespaced_deployment("web", ns).spec.replicas == 4

try:
    core.read_namespaced_config_map("missing", ns)
    raise AssertionError("expected a 404")
except client.ApiException as error:
    assert error.status == 404, error

try:
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a")))
    raise AssertionError("expected a 409")
except client.ApiException as error:
    assert error.status == 409, error

# Server-side apply: created when absent, merged on the next apply, conflicts refused unless forced.
applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns},
           "data": {"a": "1", "b": "2"}}
core.patch_namespaced_config_map("ssa", ns, applied, field_manager="python-one",
                                 _content_type="application/apply-patch+yaml")
applied["data"] = {"a": "1"}
core.patch_namespaced_config_map("ssa", ns, applied, field_manager="python-one",
                                 _content_type="application/apply-patch+yaml")
cm = core.read_namespaced_config_map("ssa", ns)
assert cm.data == {"a": "1"}, cm.data
assert [(m.manager, m.operation) for m in cm.metadata.managed_fields] == [("python-one", "Apply")]
other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns}, "data": {"a": "9"}}
try:
    core.patch_namespaced_config_map("ssa", ns, other, field_manager="python-two",
                                     _content_type="application/apply-patch+yaml")
    raise AssertionError("expected a 409")
except client.ApiException as error:
    assert error.status == 409 and "python-one" in error.body, error
core.patch_namespaced_config_map("ssa", ns, other, field_manager="python-two", force=True,
                                 _content_type="application/apply-patch+yaml")
assert core.read_namespaced_config_map("ssa", ns).data == {"a": "9"}

core.delete_namespace(ns)
print("python client: ok")
