//! RFC 7386 appendix A, with Kubernetes' refusal of scalar and null patches.
#![allow(clippy::unwrap_used)]

use gantry_patch::merge_patch;
use serde_json::json;

#[test]
fn rfc7386_appendix_a() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (target, patch, want) in cases {
        assert_eq!(
            merge_patch(&target, &patch).unwrap(),
            want,
            "{target} + {patch}"
        );
    }
    // RFC: `null` and `"bar"` replace the document; Kubernetes answers 400.
    for patch in [json!(null), json!("bar"), json!(1)] {
        let e = merge_patch(&json!({"a": "foo"}), &patch).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (400, "Invalid JSON Patch")
        );
    }
}

#[test]
fn kubectl_patch_type_merge() {
    let deploy = json!({
        "metadata": {"name": "web", "annotations": {"a": "1", "b": "2"}},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}, {"name": "side", "image": "busybox"}]}}}
    });
    let out = merge_patch(
        &deploy,
        &json!({"metadata": {"annotations": {"a": null, "c": "3"}},
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27", "env": null}]}}}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["annotations"], json!({"b": "2", "c": "3"}));
    // Lists replace whole; null members of added values are pruned.
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:1.27"}])
    );
}
