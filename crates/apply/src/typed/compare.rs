//! The difference between two values (upstream's `Compare`): leaves added, removed or modified, plus the
//! granular nodes (objects, lists, list items) that appear or disappear as a whole. `metadata.managedFields`
//! is never compared.

use serde_json::{Map, Value};

use super::{Fields, ItemIndex, Keying, View, item_element, pair_view};
use crate::fieldpath::{FieldSet, PathElement};
use crate::schema::{Node, Schema};
use crate::value::equal;

/// What changed from one value to another.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    /// Drops `ignored` paths and everything below them.
    pub(crate) fn exclude(self, ignored: Option<&FieldSet>) -> Comparison {
        match ignored {
            Some(ignored) if !ignored.is_empty() => Comparison {
                added: self.added.recursive_difference(ignored),
                modified: self.modified.recursive_difference(ignored),
                removed: self.removed.recursive_difference(ignored),
            },
            _ => self,
        }
    }

    fn attach(
        &mut self,
        pe: impl FnOnce() -> PathElement,
        sub: Comparison,
        change: Option<Change>,
    ) {
        if change.is_none()
            && sub.added.is_empty()
            && sub.modified.is_empty()
            && sub.removed.is_empty()
        {
            return;
        }
        let pe = pe();
        match change {
            Some(Change::Added) => self.added.members_mut().push(pe.clone()),
            Some(Change::Removed) => self.removed.members_mut().push(pe.clone()),
            Some(Change::Modified) => self.modified.members_mut().push(pe.clone()),
            None => {}
        }
        for (set, below) in [
            (&mut self.added, sub.added),
            (&mut self.modified, sub.modified),
            (&mut self.removed, sub.removed),
        ] {
            if !below.is_empty() {
                set.children_mut().push((pe.clone(), below));
            }
        }
    }

    fn normalize(&mut self) {
        self.added.normalize();
        self.modified.normalize();
        self.removed.normalize();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Added,
    Removed,
    Modified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    RootMetadata,
    Below,
}

/// Compares whole objects `old` → `new`; an absent `old` is an empty object (a create).
pub(crate) fn compare(schema: &dyn Schema, old: Option<&Value>, new: &Value) -> Comparison {
    let empty = Value::Object(Map::new());
    let old = old.unwrap_or(&empty);
    compare_node(
        schema,
        Some(schema.root()),
        Some(old),
        Some(new),
        Level::Root,
    )
    .0
}

fn leaf(l: Option<&Value>, r: Option<&Value>) -> Option<Change> {
    match (l, r) {
        (None, Some(_)) => Some(Change::Added),
        (Some(_), None) => Some(Change::Removed),
        (Some(l), Some(r)) if !equal(l, r) => Some(Change::Modified),
        _ => None,
    }
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn compare_node(
    schema: &dyn Schema,
    node: Option<Node>,
    l: Option<&Value>,
    r: Option<&Value>,
    level: Level,
) -> (Comparison, Option<Change>) {
    let view = pair_view(schema, node, l, r);
    if matches!(view, View::Leaf) || (is_empty(l) && is_empty(r)) {
        // Empty or null on both sides: a leaf, which keeps the empty/null distinction.
        return (Comparison::default(), leaf(l, r));
    }
    let mut out = Comparison::default();
    match view {
        View::Object(fields) => compare_objects(schema, fields, l, r, level, &mut out),
        View::List { items, keying } => {
            compare_lists(schema, items, &keying, l, r, &mut out);
            out.normalize();
        }
        View::Leaf => {}
    }
    let change = match (l, r) {
        (None, _) => Some(Change::Added),
        (_, None) => Some(Change::Removed),
        _ => None,
    };
    (out, change)
}

fn compare_objects<'a>(
    schema: &dyn Schema,
    fields: Fields<'a>,
    l: Option<&'a Value>,
    r: Option<&'a Value>,
    level: Level,
    out: &mut Comparison,
) {
    static EMPTY_MAP: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    let lm = l.and_then(Value::as_object).unwrap_or(&EMPTY_MAP);
    let rm = r.and_then(Value::as_object).unwrap_or(&EMPTY_MAP);
    let (l_exists, r_exists) = (
        l.is_some_and(Value::is_object),
        r.is_some_and(Value::is_object),
    );
    let mut visit = |key: &String, lv: Option<&'a Value>, rv: Option<&'a Value>| {
        if level == Level::RootMetadata && key == "managedFields" {
            return;
        }
        let entry = fields.entry(key);
        // Go never omits some fields: where the parent exists, a missing one has its zero value.
        let substitute =
            |v: Option<&'a Value>, exists: bool, other: Option<&Value>| match (v, entry.zero) {
                (None, Some(zero)) if exists && other.is_some() => Some(zero),
                (v, _) => v,
            };
        let (lv2, rv2) = (substitute(lv, l_exists, rv), substitute(rv, r_exists, lv));
        // Go writes `creationTimestamp: null` for every ObjectMeta: absent and null are the same there.
        if key == "creationTimestamp"
            && matches!(
                (lv2, rv2),
                (None, Some(Value::Null)) | (Some(Value::Null), None)
            )
        {
            return;
        }
        let below = match (level, key.as_str()) {
            (Level::Root, "metadata") => Level::RootMetadata,
            _ => Level::Below,
        };
        let (sub, change) = compare_node(schema, entry.node, lv2, rv2, below);
        out.attach(|| PathElement::field(key), sub, change);
    };
    // Both maps iterate in key order: walk them together so the sets stay sorted.
    let mut li = lm.iter().peekable();
    let mut ri = rm.iter().peekable();
    loop {
        match (li.peek(), ri.peek()) {
            (Some((lk, lv)), Some((rk, rv))) => match lk.cmp(rk) {
                std::cmp::Ordering::Less => {
                    visit(lk, Some(lv), None);
                    li.next();
                }
                std::cmp::Ordering::Greater => {
                    visit(rk, None, Some(rv));
                    ri.next();
                }
                std::cmp::Ordering::Equal => {
                    visit(lk, Some(lv), Some(rv));
                    li.next();
                    ri.next();
                }
            },
            (Some((lk, lv)), None) => {
                visit(lk, Some(lv), None);
                li.next();
            }
            (None, Some((rk, rv))) => {
                visit(rk, None, Some(rv));
                ri.next();
            }
            (None, None) => break,
        }
    }
}

fn compare_lists(
    schema: &dyn Schema,
    items: Node,
    keying: &Keying<'_>,
    l: Option<&Value>,
    r: Option<&Value>,
    out: &mut Comparison,
) {
    let empty: &[Value] = &[];
    let ll = l.and_then(Value::as_array).map_or(empty, Vec::as_slice);
    let rl = r.and_then(Value::as_array).map_or(empty, Vec::as_slice);
    let left = ItemIndex::new(keying, ll);
    let right = ItemIndex::new(keying, rl);
    for (pe, rv) in right.in_order() {
        let (sub, change) = compare_node(schema, Some(items), left.get(pe), Some(rv), Level::Below);
        out.attach(|| pe.clone(), sub, change);
    }
    for lv in ll {
        let Ok(pe) = item_element(keying, lv) else {
            continue;
        };
        if right.contains(&pe) || left.get(&pe).is_some_and(|first| !std::ptr::eq(first, lv)) {
            continue;
        }
        let (sub, change) = compare_node(schema, Some(items), Some(lv), None, Level::Below);
        out.attach(|| pe, sub, change);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{DeducedSchema, schema_for};

    #[test]
    fn create_of_a_deployment_matches_upstreams_entry() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let created = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                        "terminationMessagePolicy": "File"}],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                        "securityContext": {}, "terminationGracePeriodSeconds": 30
                    }
                }
            }
        });
        let cmp = compare(&schema, None, &created);
        assert!(cmp.removed.is_empty() && cmp.modified.is_empty());
        // Upstream then strips apiVersion, kind, metadata.name (see `managed`).
        assert_eq!(
            cmp.added.to_fields_v1_string(),
            r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:labels":{".":{},"f:app":{}},"f:name":{}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#
        );
    }

    #[test]
    fn modified_removed_and_managed_fields_ignored() {
        let old = json!({"metadata": {"managedFields": [{"manager": "a"}], "labels": {"a": "1", "b": "2"}},
                         "spec": {"x": [1], "y": {"z": 1}}});
        let new = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"x": [1, 2]}});
        let cmp = compare(&DeducedSchema, Some(&old), &new);
        assert_eq!(
            cmp.modified.path_strings(),
            [".metadata.labels.a", ".spec.x"]
        );
        assert_eq!(
            cmp.removed.path_strings(),
            [".metadata.labels.b", ".spec.y", ".spec.y.z"]
        );
        assert!(cmp.added.is_empty());
    }
}
