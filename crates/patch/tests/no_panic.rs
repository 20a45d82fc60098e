//! No patch, however odd, may panic: a deterministic sweep over generated documents and patches.
#![allow(clippy::unwrap_used)]

use gantry_patch::{BuiltinSchema, NoSchema, json_patch, merge_patch, strategic_merge_patch};
use serde_json::{Map, Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

const KEYS: &[&str] = &[
    "spec",
    "template",
    "containers",
    "name",
    "env",
    "ports",
    "containerPort",
    "metadata",
    "finalizers",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$deleteFromPrimitiveList/finalizers",
    "$setElementOrder",
    "$deleteFromPrimitiveList/",
    "a",
    "~1",
    "",
];
const STRINGS: &[&str] = &[
    "delete", "replace", "merge", "web", "name", "/spec", "/a/0", "-", "/~0", "add", "remove",
];

fn value(r: &mut Rng, depth: usize) -> Value {
    match r.next(if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(r.next(3) == 0),
        2 => json!(r.next(100)),
        3 | 4 => json!(STRINGS[r.next(STRINGS.len())]),
        5 | 6 => {
            let mut m = Map::new();
            for _ in 0..r.next(5) {
                m.insert(KEYS[r.next(KEYS.len())].to_owned(), value(r, depth - 1));
            }
            Value::Object(m)
        }
        _ => Value::Array((0..r.next(4)).map(|_| value(r, depth - 1)).collect()),
    }
}

fn op(r: &mut Rng) -> Value {
    let paths = [
        "/spec",
        "/spec/containers/0",
        "/spec/containers/-",
        "/a",
        "/a/-1",
        "",
        "x",
        "/spec/containers/9",
        "/metadata/~1",
    ];
    let mut m = Map::new();
    m.insert(
        "op".into(),
        json!(["add", "remove", "replace", "move", "copy", "test", "nope"][r.next(7)]),
    );
    if r.next(8) > 0 {
        m.insert("path".into(), json!(paths[r.next(paths.len())]));
    }
    if r.next(2) == 0 {
        m.insert("from".into(), json!(paths[r.next(paths.len())]));
    }
    if r.next(3) > 0 {
        m.insert("value".into(), value(r, 2));
    }
    Value::Object(m)
}

#[test]
fn odd_patches_never_panic() {
    let mut r = Rng(42);
    let deploy = BuiltinSchema::for_kind("apps", "Deployment");
    for _ in 0..3000 {
        let doc = match r.next(3) {
            0 => value(&mut r, 4),
            _ => {
                json!({"spec": {"containers": [{"name": "web", "env": [{"name": "A"}]}, value(&mut r, 2)]},
                        "a": [1, 2], "metadata": {"finalizers": ["x"]}})
            }
        };
        let patch = value(&mut r, 4);
        let _ = merge_patch(&doc, &patch);
        let _ = strategic_merge_patch(&doc, &patch, &NoSchema);
        let wrapped = json!({"spec": {"template": {"spec": patch.clone()}}, "metadata": patch});
        let _ = strategic_merge_patch(&doc, &wrapped, &deploy);
        let _ = strategic_merge_patch(
            &json!({"spec": {"template": {"spec": doc.clone()}}}),
            &wrapped,
            &deploy,
        );
        let ops = Value::Array((0..r.next(4)).map(|_| op(&mut r)).collect());
        let _ = json_patch(&doc, &ops);
        let _ = json_patch(&doc, &patch);
    }
}
