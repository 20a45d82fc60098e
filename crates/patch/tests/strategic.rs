//! Strategic merge patch: cases after apimachinery's strategicpatch tests (on their `mergeItem` test type),
//! and kubectl's real patches against a Deployment.
#![allow(clippy::unwrap_used)]

use gantry_patch::{BuiltinSchema, FieldStrategy, PatchError, PatchSchema, strategic_merge_patch};
use serde_json::{Value, json};

/// apimachinery's test struct `mergeItem`, recursive: tags by field name.
struct MergeItem;

impl PatchSchema for MergeItem {
    fn lookup<'s>(&'s self, path: &[&str]) -> FieldStrategy<'s> {
        match path.last().copied() {
            Some("mergingList") => FieldStrategy::merge_by("name"),
            Some("retainKeysMergingList") => FieldStrategy::Merge {
                key: Some("name"),
                retain_keys: true,
            },
            Some("mergingIntList") => FieldStrategy::Merge {
                key: None,
                retain_keys: false,
            },
            Some("replacingItem") => FieldStrategy::Replace,
            Some("retainKeysMap") => FieldStrategy::RetainKeys,
            _ => FieldStrategy::Default,
        }
    }
}

fn smp(original: Value, patch: Value) -> Value {
    strategic_merge_patch(&original, &patch, &MergeItem).unwrap()
}

fn smp_err(original: Value, patch: Value) -> PatchError {
    strategic_merge_patch(&original, &patch, &MergeItem).unwrap_err()
}

#[test]
fn merging_list_adds_merges_and_orders() {
    let orig = json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "2"}]});
    // Without $setElementOrder a new item goes before the server's items (apimachinery's mergeSortedSlice).
    assert_eq!(
        smp(
            orig.clone(),
            json!({"mergingList": [{"name": "3", "value": "3"}]})
        ),
        json!({"mergingList": [{"name": "3", "value": "3"}, {"name": "1"}, {"name": "2", "value": "2"}]})
    );
    // With it (kubectl sends it), the order is the one asked for.
    assert_eq!(
        smp(
            orig.clone(),
            json!({"$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                   "mergingList": [{"name": "3", "value": "3"}]})
        ),
        json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "2"}, {"name": "3", "value": "3"}]})
    );
    // Same key: maps merge, null deletes a member.
    assert_eq!(
        smp(
            json!({"mergingList": [{"name": "1", "value": "1", "other": "a"}, {"name": "2"}]}),
            json!({"mergingList": [{"name": "1", "value": "x", "other": null}]})
        ),
        json!({"mergingList": [{"name": "1", "value": "x"}, {"name": "2"}]})
    );
}

#[test]
fn delete_and_replace_directives_in_lists() {
    let orig = json!({"mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}]});
    assert_eq!(
        smp(
            orig.clone(),
            json!({"mergingList": [{"name": "2", "$patch": "delete"}]})
        ),
        json!({"mergingList": [{"name": "1"}, {"name": "3"}]})
    );
    // Deleting what is not there is fine.
    assert_eq!(
        smp(
            orig.clone(),
            json!({"mergingList": [{"name": "9", "$patch": "delete"}]})
        ),
        orig
    );
    assert_eq!(
        smp(
            orig.clone(),
            json!({"mergingList": [{"name": "4", "value": null}, {"$patch": "replace"}]})
        ),
        json!({"mergingList": [{"name": "4"}]})
    );
    let e = smp_err(orig.clone(), json!({"mergingList": [{"$patch": "merge"}]}));
    assert_eq!(
        e.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
    let e = smp_err(orig.clone(), json!({"mergingList": [{"$patch": "delete"}]}));
    assert_eq!(
        e.to_string(),
        "map: map[$patch:delete] does not contain declared merge key: name"
    );
    let e = smp_err(orig, json!({"mergingList": [{"value": "1"}]}));
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (
            500,
            "map: map[value:1] does not contain declared merge key: name"
        )
    );
}

#[test]
fn directives_in_maps() {
    let orig = json!({"simpleMap": {"a": "1", "b": "2"}, "name": "x"});
    assert_eq!(
        smp(
            orig.clone(),
            json!({"simpleMap": {"$patch": "replace", "c": "3"}})
        ),
        json!({"simpleMap": {"c": "3"}, "name": "x"})
    );
    assert_eq!(
        smp(orig.clone(), json!({"simpleMap": {"$patch": "delete"}})),
        json!({"simpleMap": {}, "name": "x"})
    );
    let e = smp_err(orig.clone(), json!({"simpleMap": {"$patch": "merge"}}));
    assert_eq!(
        e.to_string(),
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    // Top-level replace; null removes; null for an absent key is ignored.
    assert_eq!(
        smp(orig.clone(), json!({"$patch": "replace", "value": "v"})),
        json!({"value": "v"})
    );
    assert_eq!(
        smp(orig.clone(), json!({"name": null, "other": null})),
        json!({"simpleMap": {"a": "1", "b": "2"}})
    );
    // A field with strategy replace is not merged.
    assert_eq!(
        smp(
            json!({"replacingItem": {"a": 1, "b": {"c": 1}}}),
            json!({"replacingItem": {"b": {"d": 2}}})
        ),
        json!({"replacingItem": {"b": {"d": 2}}})
    );
    // New values lose their directives and nulls.
    assert_eq!(
        smp(
            json!({}),
            json!({"simpleMap": {"$patch": "delete"}, "mergingList": [{"name": "1", "value": null}, {"name": "2", "$patch": "delete"}]})
        ),
        json!({"mergingList": [{"name": "1"}]})
    );
}

#[test]
fn lists_without_strategy_are_replaced() {
    assert_eq!(
        smp(
            json!({"nonMergingList": [{"name": "1"}, {"name": "2"}], "nonMergingIntList": [1, 2]}),
            json!({"nonMergingList": [{"name": "3"}], "nonMergingIntList": [2, 3]})
        ),
        json!({"nonMergingList": [{"name": "3"}], "nonMergingIntList": [2, 3]})
    );
}

#[test]
fn primitive_lists() {
    let orig = json!({"mergingIntList": [1, 2, 3]});
    assert_eq!(
        smp(orig.clone(), json!({"mergingIntList": [2, 4]})),
        json!({"mergingIntList": [1, 2, 4, 3]})
    );
    assert_eq!(
        smp(
            orig.clone(),
            json!({"$setElementOrder/mergingIntList": [1, 2, 3, 4], "mergingIntList": [4]})
        ),
        json!({"mergingIntList": [1, 2, 3, 4]})
    );
    assert_eq!(
        smp(
            orig.clone(),
            json!({"$deleteFromPrimitiveList/mergingIntList": [2, 9]})
        ),
        json!({"mergingIntList": [1, 3]})
    );
    // kubectl apply removing 1 and adding 5.
    assert_eq!(
        smp(
            orig.clone(),
            json!({"$setElementOrder/mergingIntList": [2, 3, 5], "$deleteFromPrimitiveList/mergingIntList": [1], "mergingIntList": [5]})
        ),
        json!({"mergingIntList": [2, 3, 5]})
    );
    // A deletion list for a missing list does nothing.
    assert_eq!(
        smp(
            json!({}),
            json!({"$deleteFromPrimitiveList/mergingIntList": [1]})
        ),
        json!({})
    );
    let e = smp_err(orig.clone(), json!({"$deleteFromPrimitiveList": [1]}));
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (400, "invalid patch format of primitive list")
    );
    let e = smp_err(orig.clone(), json!({"mergingIntList": [[1]]}));
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (422, "lists of lists are not supported")
    );
    let e = smp_err(orig, json!({"mergingIntList": ["a"]}));
    assert_eq!(
        e.to_string(),
        "list element types are not identical: [[1 2 3] [a]]"
    );
}

#[test]
fn retain_keys() {
    let orig = json!({"retainKeysMap": {"name": "foo", "value": "bar", "other": "x"}});
    assert_eq!(
        smp(
            orig.clone(),
            json!({"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "baz"}})
        ),
        json!({"retainKeysMap": {"name": "foo", "value": "baz"}})
    );
    let e = smp_err(
        orig.clone(),
        json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "baz"}}),
    );
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (400, "invalid patch format of retainKeys")
    );
    smp_err(orig, json!({"retainKeysMap": {"$retainKeys": "name"}}));
    // In list elements.
    assert_eq!(
        smp(
            json!({"retainKeysMergingList": [{"name": "1", "value": "1", "other": "o"}]}),
            json!({"retainKeysMergingList": [{"$retainKeys": ["name", "other"], "name": "1", "value": null}]})
        ),
        json!({"retainKeysMergingList": [{"name": "1", "other": "o"}]})
    );
}

#[test]
fn set_element_order() {
    let orig = json!({"mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}]});
    assert_eq!(
        smp(
            orig.clone(),
            json!({"$setElementOrder/mergingList": [{"name": "3"}, {"name": "1"}, {"name": "2"}]})
        ),
        json!({"mergingList": [{"name": "3"}, {"name": "1"}, {"name": "2"}]})
    );
    // Server-only items keep their place relative to the server's order.
    assert_eq!(
        smp(
            orig.clone(),
            json!({"$setElementOrder/mergingList": [{"name": "1"}, {"name": "4"}, {"name": "3"}], "mergingList": [{"name": "4"}]})
        ),
        json!({"mergingList": [{"name": "1"}, {"name": "4"}, {"name": "2"}, {"name": "3"}]})
    );
    // A list the server lacks.
    assert_eq!(
        smp(
            json!({}),
            json!({"$setElementOrder/mergingList": [{"name": "b"}, {"name": "a"}], "mergingList": [{"name": "b", "value": null}, {"name": "a"}]})
        ),
        json!({"mergingList": [{"name": "b"}, {"name": "a"}]})
    );
    let e = smp_err(
        orig.clone(),
        json!({"$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}], "mergingList": [{"name": "2"}, {"name": "1"}]}),
    );
    assert!(e.to_string().starts_with("the order in patch list:\n[map[name:2] map[name:1]]\n doesn't match $setElementOrder list:"), "{e}");
    let e = smp_err(orig, json!({"$setElementOrder": []}));
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (400, "invalid patch format of setElementOrder list")
    );
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["a/x"],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }
            }
        }
    })
}

fn deploy_patch(patch: Value) -> Value {
    strategic_merge_patch(
        &deployment(),
        &patch,
        &BuiltinSchema::for_kind("apps", "Deployment"),
    )
    .unwrap()
}

fn containers(d: &Value) -> &Value {
    &d["spec"]["template"]["spec"]["containers"]
}

#[test]
fn kubectl_apply_changed_image_and_removed_env() {
    let out = deploy_patch(json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "nginx:1.27",
                "name": "web"
            }]
        }}}
    }));
    let web = &containers(&out)[0];
    assert_eq!(web["image"], "nginx:1.27");
    assert_eq!(
        web["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        web["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(containers(&out)[1]["name"], "sidecar");
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"new\":1}"
    );
}

#[test]
fn kubectl_rollout_restart_and_set_image() {
    let out = deploy_patch(json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-05-01T10:00:00Z"}}}}}));
    assert_eq!(
        out["spec"]["template"]["metadata"],
        json!({"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-05-01T10:00:00Z"}})
    );
    let mut want = deployment();
    want["spec"]["template"]["metadata"] = out["spec"]["template"]["metadata"].clone();
    assert_eq!(out, want);

    // `kubectl set image deployment/web sidecar=busybox:1.36`: order and other containers kept.
    let out = deploy_patch(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}}),
    );
    assert_eq!(containers(&out)[0]["image"], "nginx:1.25");
    assert_eq!(
        containers(&out)[1],
        json!({"name": "sidecar", "image": "busybox:1.36"})
    );
    // `kubectl patch` adding a container puts it first, as Kubernetes does.
    let out = deploy_patch(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluentbit"}]}}}}),
    );
    let names: Vec<&str> = containers(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["log", "web", "sidecar"]);
}

#[test]
fn builtin_merge_keys_in_a_deployment() {
    let out = deploy_patch(json!({
        "metadata": {"finalizers": ["b/y"]},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "containers": [{"name": "web",
                                "ports": [{"containerPort": 443}],
                                "env": [{"name": "B", "value": "two"}],
                                "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "cm"}}],
                "tolerations": [{"key": "b", "operator": "Exists"}]
            }}
        }
    }));
    assert_eq!(out["metadata"]["finalizers"], json!(["b/y", "a/x"]));
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let web = &containers(&out)[0];
    assert_eq!(
        web["ports"],
        json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(web["env"][1], json!({"name": "B", "value": "two"}));
    assert_eq!(
        web["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );
    // tolerations carry no strategy: replaced whole.
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );

    let out = deploy_patch(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!([]));
    let e = strategic_merge_patch(
        &deployment(),
        &json!([1]),
        &BuiltinSchema::for_kind("apps", "Deployment"),
    )
    .unwrap_err();
    assert_eq!(e.code(), 400);
}

#[test]
fn builtin_schema_table() {
    let s = |g, k, p: &[&str]| BuiltinSchema::for_kind(g, k).strategy(p);
    let by = FieldStrategy::merge_by;
    assert_eq!(s("", "Pod", &["spec", "containers"]), by("name"));
    assert_eq!(s("", "Pod", &["spec", "initContainers", "env"]), by("name"));
    assert_eq!(
        s("", "Pod", &["spec", "ephemeralContainers", "volumeDevices"]),
        by("devicePath")
    );
    assert_eq!(
        s("", "Pod", &["spec", "tolerations"]),
        FieldStrategy::Default
    );
    assert_eq!(s("", "Pod", &["spec", "hostAliases"]), by("ip"));
    assert_eq!(s("", "Pod", &["status", "conditions"]), by("type"));
    assert_eq!(
        s(
            "batch",
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
                "ports"
            ]
        ),
        by("containerPort")
    );
    assert_eq!(
        s(
            "apps",
            "StatefulSet",
            &["spec", "template", "spec", "volumes"]
        ),
        FieldStrategy::Merge {
            key: Some("name"),
            retain_keys: true
        }
    );
    assert_eq!(
        s("apps", "Deployment", &["spec", "strategy"]),
        FieldStrategy::RetainKeys
    );
    assert_eq!(
        s("apps", "DaemonSet", &["metadata", "ownerReferences"]),
        by("uid")
    );
    assert_eq!(s("", "Service", &["spec", "ports"]), by("port"));
    assert_eq!(s("", "Node", &["spec", "taints"]), FieldStrategy::Default);
    assert_eq!(s("", "Node", &["status", "addresses"]), by("type"));
    assert_eq!(s("", "Endpoints", &["subsets"]), FieldStrategy::Default);
    assert_eq!(
        s("example.com", "Widget", &["metadata", "finalizers"]),
        FieldStrategy::Merge {
            key: None,
            retain_keys: false
        }
    );
    assert!(BuiltinSchema::knows("apps", "Deployment") && !BuiltinSchema::knows("", "ConfigMap"));
}

#[test]
fn other_builtin_kinds() {
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = strategic_merge_patch(
        &svc,
        &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        &BuiltinSchema::for_kind("", "Service"),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );

    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
                      "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}});
    let out = strategic_merge_patch(
        &node,
        &json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        &BuiltinSchema::for_kind("", "Node"),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "b", "effect": "NoExecute"}])
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}])
    );
}
