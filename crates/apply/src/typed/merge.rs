//! Merging an applied configuration into an object (upstream's `Merge`, the configuration winning at
//! leaves): granular objects merge key by key, map-lists by key and sets by value, in upstream's order
//! (shared items in the configuration's order, the object's other items kept where they were); atomic
//! values are replaced. The configuration must already have passed [`super::strict_field_set`].

use serde_json::{Map, Value};

use super::{Keying, View, item_element, pair_view};
use crate::fieldpath::PathElement;
use crate::schema::{Node, Schema};

/// Merges `config` into `target` at `node`.
pub(crate) fn merge_into(
    schema: &dyn Schema,
    node: Option<Node>,
    target: &mut Value,
    config: &Value,
) {
    let view = pair_view(schema, node, Some(target), Some(config));
    if matches!(view, View::Leaf) || (is_empty(target) && is_empty(config)) {
        *target = config.clone();
        return;
    }
    match view {
        View::Object(fields) => {
            let Value::Object(config) = config else {
                // A null configuration merges into nothing.
                return;
            };
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(target) = target else {
                return;
            };
            for (key, value) in config {
                let node = fields.entry(key).node;
                match target.get_mut(key) {
                    Some(existing) => merge_into(schema, node, existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        View::List { items, keying } => {
            let Value::Array(config) = config else {
                return;
            };
            match target {
                Value::Array(existing) => {
                    let merged =
                        merge_lists(schema, items, &keying, std::mem::take(existing), config);
                    *existing = merged;
                }
                other => *other = Value::Array(config.clone()),
            }
        }
        View::Leaf => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Where an element occurs in a list: once (at this index) or more than once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Once(usize),
    Many,
}

struct Occurrences<'p> {
    sorted: Vec<(&'p PathElement, Seen)>,
}

impl<'p> Occurrences<'p> {
    fn new(elements: impl Iterator<Item = (usize, &'p PathElement)>) -> Occurrences<'p> {
        let mut sorted: Vec<(&PathElement, Seen)> =
            elements.map(|(i, pe)| (pe, Seen::Once(i))).collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<(&PathElement, Seen)> = Vec::with_capacity(sorted.len());
        for (pe, seen) in sorted {
            match out.last_mut() {
                Some((last, s)) if *last == pe => *s = Seen::Many,
                _ => out.push((pe, seen)),
            }
        }
        Occurrences { sorted: out }
    }

    fn get(&self, pe: &PathElement) -> Option<Seen> {
        self.sorted
            .binary_search_by(|(p, _)| (*p).cmp(pe))
            .ok()
            .map(|i| self.sorted[i].1)
    }
}

fn merge_lists(
    schema: &dyn Schema,
    items: Node,
    keying: &Keying<'_>,
    existing: Vec<Value>,
    config: &[Value],
) -> Vec<Value> {
    let l_pes: Vec<Option<PathElement>> = existing
        .iter()
        .map(|item| item_element(keying, item).ok())
        .collect();
    let r: Vec<(PathElement, &Value)> = config
        .iter()
        .filter_map(|item| item_element(keying, item).ok().map(|pe| (pe, item)))
        .collect();
    let observed_l = Occurrences::new(
        l_pes
            .iter()
            .enumerate()
            .filter_map(|(i, pe)| pe.as_ref().map(|pe| (i, pe))),
    );
    let observed_r = Occurrences::new(r.iter().enumerate().map(|(i, (pe, _))| (i, pe)));
    let mut shared = r
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| observed_l.get(pe).is_some());
    let mut next_shared = shared.next();
    let mut merged_r: Vec<&PathElement> = Vec::with_capacity(r.len());
    let is_merged = |merged: &Vec<&PathElement>, pe: &PathElement| merged.contains(&pe);

    let mut slots: Vec<Option<Value>> = existing.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len().max(r.len()));
    let merge_item = |slot: Option<Value>, config: &Value| match slot {
        Some(mut value) => {
            merge_into(schema, Some(items), &mut value, config);
            value
        }
        None => config.clone(),
    };
    let (l_len, r_len) = (slots.len(), r.len());
    let (mut li, mut ri) = (0, 0);
    while li < l_len || ri < r_len {
        if li < l_len
            && ri < r_len
            && let Some(pe) = &l_pes[li]
        {
            if *pe == r[ri].0 {
                merged_r.push(&r[ri].0);
                let slot = match observed_l.get(pe) {
                    Some(Seen::Once(_)) => slots[li].take(),
                    _ => None,
                };
                out.push(merge_item(slot, r[ri].1));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_r.get(pe).is_some() && next_shared.is_some_and(|s| s != pe) {
                // Shared, but not the one wanted now: it comes with the configuration's order.
                li += 1;
                continue;
            }
        }
        if li < l_len {
            match &l_pes[li] {
                Some(pe) if observed_r.get(pe).is_some() => {
                    if is_merged(&merged_r, pe) {
                        li += 1;
                        continue;
                    }
                }
                _ => {
                    // Only in the object (or without a key): kept where it is.
                    if let Some(value) = slots[li].take() {
                        out.push(value);
                    }
                    li += 1;
                    continue;
                }
            }
        }
        if ri < r_len {
            let (pe, config_item) = (&r[ri].0, r[ri].1);
            merged_r.push(pe);
            let slot = match observed_l.get(pe) {
                Some(Seen::Once(i)) => slots[i].take(),
                _ => None,
            };
            out.push(merge_item(slot, config_item));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{DeducedSchema, schema_for};

    fn merged(schema: &dyn Schema, live: Value, config: Value) -> Value {
        let mut live = live;
        merge_into(schema, Some(schema.root()), &mut live, &config);
        live
    }

    #[test]
    fn containers_merge_by_name_and_ports_by_port_and_protocol() {
        let schema = schema_for("apps", "v1", "Deployment").expect("vendored");
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "envoy"},
            {"name": "web", "image": "nginx:1", "imagePullPolicy": "Always",
             "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
             "args": ["a", "b"]}
        ]}}}});
        let config = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 8080}, {"containerPort": 80}],
             "args": ["c"]},
            {"name": "new", "image": "busybox"}
        ]}}}});
        assert_eq!(
            merged(&schema, live, config),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy"},
                {"name": "web", "image": "nginx:2", "imagePullPolicy": "Always",
                 "ports": [{"containerPort": 8080}, {"containerPort": 80, "protocol": "TCP"},
                           {"containerPort": 53, "protocol": "UDP"}],
                 "args": ["c"]},
                {"name": "new", "image": "busybox"}
            ]}}}})
        );
    }

    #[test]
    fn order_follows_the_configuration_for_shared_items() {
        let schema = schema_for("", "v1", "Pod").expect("vendored");
        let live = json!({"metadata": {"finalizers": ["a", "x", "b", "c"]}});
        let config = json!({"metadata": {"finalizers": ["c", "b", "a", "d"]}});
        assert_eq!(
            merged(&schema, live, config),
            json!({"metadata": {"finalizers": ["x", "c", "b", "a", "d"]}})
        );
    }

    #[test]
    fn leaves_nulls_and_deduced_values() {
        let live = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        let config = json!({"a": {"c": [3], "e": null}, "d": {"y": 1}});
        assert_eq!(
            merged(&DeducedSchema, live, config),
            json!({"a": {"b": 1, "c": [3], "e": null}, "d": {"y": 1}})
        );
        // A duplicated key in the object is replaced by the configuration's item.
        let schema = schema_for("", "v1", "Pod").expect("vendored");
        let live = json!({"spec": {"containers": [{"name": "a", "env": [
            {"name": "X", "value": "1"}, {"name": "Y", "value": "2"}, {"name": "X", "value": "3"}]}]}});
        let config =
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "4"}]}]}});
        assert_eq!(
            merged(&schema, live, config),
            json!({"spec": {"containers": [{"name": "a", "env": [
                {"name": "X", "value": "4"}, {"name": "Y", "value": "2"}]}]}})
        );
    }
}
