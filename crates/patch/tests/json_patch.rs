//! RFC 6902 appendix A, plus the evanphx/json-patch v4 behaviours Kubernetes clients see.
#![allow(clippy::unwrap_used)]

use gantry_patch::{PatchError, json_patch};
use serde_json::{Value, json};

fn ok(doc: Value, patch: Value, want: Value) {
    assert_eq!(json_patch(&doc, &patch).unwrap(), want, "patch {patch}");
}

fn err(doc: Value, patch: Value) -> PatchError {
    json_patch(&doc, &patch).unwrap_err()
}

#[test]
fn rfc6902_appendix_a() {
    // A.1 .. A.16
    ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz", "value": "qux"}]),
        json!({"baz": "qux", "foo": "bar"}),
    );
    ok(
        json!({"foo": ["bar", "baz"]}),
        json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
        json!({"foo": ["bar", "qux", "baz"]}),
    );
    ok(
        json!({"baz": "qux", "foo": "bar"}),
        json!([{"op": "remove", "path": "/baz"}]),
        json!({"foo": "bar"}),
    );
    ok(
        json!({"foo": ["bar", "qux", "baz"]}),
        json!([{"op": "remove", "path": "/foo/1"}]),
        json!({"foo": ["bar", "baz"]}),
    );
    ok(
        json!({"baz": "qux", "foo": "bar"}),
        json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
        json!({"baz": "boo", "foo": "bar"}),
    );
    ok(
        json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
        json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
        json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    );
    ok(
        json!({"foo": ["all", "grass", "cows", "eat"]}),
        json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
        json!({"foo": ["all", "cows", "eat", "grass"]}),
    );
    ok(
        json!({"baz": "qux", "foo": ["a", 2, "c"]}),
        json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
        json!({"baz": "qux", "foo": ["a", 2, "c"]}),
    );
    let e = err(
        json!({"baz": "qux"}),
        json!([{"op": "test", "path": "/baz", "value": "bar"}]),
    );
    assert_eq!(
        e,
        PatchError::TestFailed("testing value /baz failed: test failed".into())
    );
    assert_eq!(e.code(), 422);
    ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
        json!({"foo": "bar", "child": {"grandchild": {}}}),
    );
    // A.11: members other than op/path/value are ignored.
    ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
        json!({"foo": "bar", "baz": "qux"}),
    );
    // A.12: adding to a nonexistent target.
    let e = err(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    );
    assert_eq!(
        e.to_string(),
        "add operation does not apply: doc is missing path: \"/baz/bat\": missing value"
    );
    assert_eq!(e.code(), 422);
    // A.14: ~0 and ~1 escapes.
    ok(
        json!({"/": 9, "~1": 10}),
        json!([{"op": "test", "path": "/~01", "value": 10}]),
        json!({"/": 9, "~1": 10}),
    );
    // A.15: comparing strings and numbers.
    err(
        json!({"/": 9, "~1": 10}),
        json!([{"op": "test", "path": "/~01", "value": "10"}]),
    );
    ok(
        json!({"foo": ["bar"]}),
        json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
        json!({"foo": ["bar", ["abc", "def"]]}),
    );
}

#[test]
fn copy_escapes_and_test_of_objects() {
    ok(
        json!({"a/b": {"c": [1]}, "m~n": 1}),
        json!([
            {"op": "copy", "from": "/a~1b", "path": "/x"},
            {"op": "add", "path": "/x/c/0", "value": 0},
            {"op": "test", "path": "/a~1b", "value": {"c": [1]}},
            {"op": "replace", "path": "/m~0n", "value": 2},
        ]),
        json!({"a/b": {"c": [1]}, "x": {"c": [0, 1]}, "m~n": 2}),
    );
}

#[test]
fn errors_leave_the_input_alone_and_say_why() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c"}]}});
    let patch = json!([
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/zzz"},
    ]);
    let e = json_patch(&doc, &patch).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error in remove for path: '/metadata/labels/zzz': Unable to remove nonexistent key: zzz: missing value"
    );
    assert_eq!(doc["metadata"]["labels"], json!({"a": "1"}));

    let e = err(
        doc.clone(),
        json!([{"op": "remove", "path": "/spec/containers/3"}]),
    );
    assert_eq!(
        e.to_string(),
        "error in remove for path: '/spec/containers/3': Unable to access invalid index: 3: invalid index referenced"
    );
    let e = err(
        doc.clone(),
        json!([{"op": "add", "path": "/spec/containers/x", "value": 1}]),
    );
    assert_eq!(
        e.to_string(),
        "error in add for path: '/spec/containers/x': value was not a proper array index: 'x': strconv.Atoi: parsing \"x\": invalid syntax"
    );
    let e = err(doc.clone(), json!([{"op": "frobnicate", "path": "/a"}]));
    assert_eq!(e.to_string(), "Unexpected kind: frobnicate");
    let e = err(doc.clone(), json!([{"op": "add", "value": 1}]));
    assert_eq!(
        e.to_string(),
        "add operation failed to decode path: missing value"
    );
    let e = err(doc.clone(), json!([{"op": "move", "path": "/a"}]));
    assert_eq!(
        e.to_string(),
        "move operation failed to decode from: operation, missing from field: missing value"
    );
    let e = err(
        doc.clone(),
        json!([{"op": "replace", "path": "/nope/x", "value": 1}]),
    );
    assert_eq!(
        e.to_string(),
        "replace operation does not apply: doc is missing path: /nope/x: missing value"
    );

    let e = err(doc.clone(), json!({"op": "add"}));
    assert_eq!(e.code(), 400);
    assert_eq!(
        e.to_string(),
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    );
    let many = Value::Array(vec![
        json!({"op": "test", "path": "/spec", "value": 1});
        10_001
    ]);
    let e = err(doc, many);
    assert_eq!(e.code(), 413);
    assert_eq!(
        e.to_string(),
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
}

#[test]
fn v4_leniencies() {
    // Negative indexes count from the end; `replace` of a missing member adds it; null patch is empty.
    ok(
        json!({"a": [1, 2, 3]}),
        json!([{"op": "remove", "path": "/a/-1"}]),
        json!({"a": [1, 2]}),
    );
    ok(
        json!({"a": [1, 2]}),
        json!([{"op": "add", "path": "/a/-1", "value": 9}]),
        json!({"a": [1, 2, 9]}),
    );
    ok(
        json!({"a": {}}),
        json!([{"op": "replace", "path": "/a/b", "value": 1}]),
        json!({"a": {"b": 1}}),
    );
    ok(json!({"a": 1}), Value::Null, json!({"a": 1}));
    // A missing member tests equal to null; a missing `value` adds null.
    ok(
        json!({"a": 1}),
        json!([{"op": "test", "path": "/b", "value": null}]),
        json!({"a": 1}),
    );
    ok(
        json!({}),
        json!([{"op": "add", "path": "/b"}]),
        json!({"b": null}),
    );
    // Adding at index len appends; beyond is an error.
    ok(
        json!({"a": [1]}),
        json!([{"op": "add", "path": "/a/1", "value": 2}]),
        json!({"a": [1, 2]}),
    );
    err(
        json!({"a": [1]}),
        json!([{"op": "add", "path": "/a/3", "value": 2}]),
    );
}

#[test]
fn kubectl_style_patches() {
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}
    });
    let out = json_patch(
        &deploy,
        &json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"},
            {"op": "add", "path": "/metadata/labels/tier", "value": "frontend"},
        ]),
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "frontend"})
    );
}

#[test]
fn copies_that_double_the_document_stop_at_the_limit() {
    // Each copy doubles `/a`: 40 of them would need terabytes.
    let doubling: Vec<Value> = (0..40)
        .map(|_| json!({"op": "copy", "from": "/a", "path": "/a/-"}))
        .collect();
    let e = err(json!({"a": ["0123456789abcdef"]}), Value::Array(doubling));
    assert_eq!(e.code(), 422);
    assert!(e.to_string().contains("exceeding the limit 3145728"), "{e}");
    // A few small copies are fine.
    ok(
        json!({"a": [1]}),
        json!([{"op": "copy", "from": "/a", "path": "/b"}, {"op": "copy", "from": "/b", "path": "/c"}]),
        json!({"a": [1], "b": [1], "c": [1]}),
    );
}
