//! Kubernetes strategic merge patch, applied as the API server applies it (`StrategicMergeMapPatch` in
//! k8s.io/apimachinery/pkg/util/strategicpatch, merge options `MergeParallelList` and `IgnoreUnmatchedNulls`).

use serde_json::{Map, Value};

use crate::PatchError;
use crate::error::{go_fmt, go_type};
use crate::schema::{FieldStrategy, PatchSchema};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies a strategic merge patch to `original` (a JSON object), with list strategies from `schema`.
///
/// Deviation from apimachinery: values taken from the patch as they are (a new field, a replaced list, a
/// `$patch: replace` map) have null members and every directive removed, not only `$patch` maps; Go
/// leaves the rest for typed decoding to drop, while Gantry stores JSON.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &dyn PatchSchema,
) -> Result<Value, PatchError> {
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::BadRequest("invalid JSON document".into())),
    };
    let patch = match patch {
        Value::Object(p) => p,
        Value::Null => return Ok(Value::Object(original)),
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                match other {
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    _ => "bool",
                }
            )));
        }
    };
    let mut m = Merger {
        schema,
        path: Vec::new(),
    };
    m.merge_map(original, patch).map(Value::Object)
}

struct Merger<'p, 's> {
    schema: &'s dyn PatchSchema,
    /// Keys from the root to the map being merged.
    path: Vec<&'p str>,
}

/// Elements of one list: all maps, or all the same primitive type (`go_type`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Primitive(&'static str),
}

impl<'p, 's> Merger<'p, 's> {
    fn strategy(&mut self, field: &'p str) -> FieldStrategy<'s> {
        let schema = self.schema;
        self.path.push(field);
        let s = schema.lookup(&self.path);
        self.path.pop();
        s
    }

    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        patch: &'p Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(d) = patch.get(DIRECTIVE) {
            return match d.as_str() {
                Some("replace") => Ok(clean_map(patch)),
                Some("delete") => Ok(Map::new()),
                _ => Err(bad_patch_type(d, patch)),
            };
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let Value::Array(retain) = retain else {
                return Err(bad_retain_keys());
            };
            let keep = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
            let all_kept = patch.iter().all(|(k, v)| {
                k == RETAIN_KEYS
                    || v.is_null()
                    || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                    || k.starts_with(SET_ELEMENT_ORDER)
                    || keep(k)
            });
            if !all_kept {
                return Err(bad_retain_keys());
            }
            original.retain(|k, _| keep(k));
        }

        // `$setElementOrder/<list>` merges its list now, then orders it.
        let mut ordered: Vec<&str> = Vec::new();
        for (k, order) in patch
            .iter()
            .filter(|(k, _)| k.starts_with(SET_ELEMENT_ORDER))
        {
            let Value::Array(order) = order else {
                return Err(bad_arg_type("[]interface {}", order));
            };
            let field = extract_key(k, SET_ELEMENT_ORDER).ok_or_else(|| {
                PatchError::BadRequest("invalid patch format of setElementOrder list".into())
            })?;
            let orig_list = match original.get(field) {
                None => None,
                Some(Value::Array(a)) => Some(a),
                Some(other) => return Err(bad_arg_type("[]interface {}", other)),
            };
            let patch_list = match patch.get(field) {
                None => None,
                Some(Value::Array(a)) => Some(a),
                Some(other) => return Err(bad_arg_type("[]interface {}", other)),
            };
            let (merge, key) = match self.strategy(field) {
                FieldStrategy::Merge { key, .. } => (true, key),
                _ => (false, None),
            };
            validate_order(patch_list.map_or(&[][..], |p| p), order, key)?;
            let merged = match (orig_list, patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => clean_list(p),
                (Some(o), Some(p)) if merge => {
                    self.path.push(field);
                    let r = self.merge_slice(o.clone(), p, key, false);
                    self.path.pop();
                    r?
                }
                (Some(_), Some(p)) => clean_list(p),
                (None, None) => continue,
            };
            let empty = Vec::new();
            let orig_list = orig_list.unwrap_or(&empty);
            let merged = match element_kind(&[orig_list, patch_list.unwrap_or(&empty)])? {
                // Go fails here ("no elements in any of the given slices"); an empty list stays empty.
                None => merged,
                Some(kind) => order_elements(merged, order, orig_list, key, kind)?,
            };
            original.insert(field.to_owned(), Value::Array(merged));
            ordered.push(field);
        }

        for (k, pv) in patch {
            if k == RETAIN_KEYS || k.starts_with(SET_ELEMENT_ORDER) || ordered.contains(&k.as_str())
            {
                continue;
            }
            let (field, delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                let f = extract_key(k, DELETE_FROM_PRIMITIVE_LIST).ok_or_else(|| {
                    PatchError::BadRequest("invalid patch format of primitive list".into())
                })?;
                (f, true)
            } else {
                (k.as_str(), false)
            };
            if pv.is_null() {
                original.remove(field);
                continue;
            }
            let merged = match (original.remove(field), pv) {
                (Some(Value::Object(o)), Value::Object(p)) => match self.strategy(field) {
                    FieldStrategy::Replace => Some(Value::Object(clean_map(p))),
                    _ => {
                        self.path.push(field);
                        let r = self.merge_map(o, p);
                        self.path.pop();
                        Some(Value::Object(r?))
                    }
                },
                (Some(Value::Array(o)), Value::Array(p)) => match self.strategy(field) {
                    FieldStrategy::Merge { key, .. } => {
                        self.path.push(field);
                        let r = self.merge_slice(o, p, key, delete_list);
                        self.path.pop();
                        Some(Value::Array(r?))
                    }
                    // A deletion list deletes whatever the field's strategy.
                    _ if delete_list => {
                        self.path.push(field);
                        let r = self.merge_slice(o, p, None, true);
                        self.path.pop();
                        Some(Value::Array(r?))
                    }
                    _ => Some(Value::Array(clean_list(p))),
                },
                // A deletion list for a missing field, or one of another type, does nothing.
                (o, _) if delete_list => o,
                (_, p) => clean(p),
            };
            if let Some(v) = merged {
                original.insert(field.to_owned(), v);
            }
        }
        Ok(original)
    }

    /// `mergeSlice`: merges a list with strategy merge, then orders it.
    fn merge_slice(
        &mut self,
        original: Vec<Value>,
        patch: &'p [Value],
        key: Option<&str>,
        delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        let Some(kind) = element_kind(&[&original, patch])? else {
            return Ok(original);
        };
        if kind != Kind::Map {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            return order_elements(merged, patch, &original, None, kind);
        }
        let Some(key) = key else {
            return Err(PatchError::Unclassified(format!(
                "cannot merge lists without merge key for {}",
                self.path.join(".")
            )));
        };

        // `$patch` elements: delete by key, replace the whole list, or fail.
        let mut original = original;
        let mut plain: Vec<&'p Map<String, Value>> = Vec::new();
        let mut replace = false;
        for m in patch.iter().filter_map(Value::as_object) {
            match m.get(DIRECTIVE) {
                None => plain.push(m),
                Some(Value::String(d)) if d == "delete" => {
                    let kv = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                    original.retain(|o| o.get(key) != Some(kv));
                }
                Some(Value::String(d)) if d == "replace" => replace = true,
                Some(Value::String(d)) if d == "merge" => {
                    return Err(PatchError::Unclassified(
                        "merging lists cannot yet be specified in the patch".into(),
                    ));
                }
                Some(d) => return Err(bad_patch_type(d, m)),
            }
        }
        if replace {
            original = plain.iter().map(|m| Value::Object(clean_map(m))).collect();
            plain.clear();
        }

        let server_order = original.clone();
        let mut merged = original;
        for p in &plain {
            let kv = p.get(key).ok_or_else(|| no_merge_key(p, key))?;
            match merged.iter().position(|o| o.get(key) == Some(kv)) {
                Some(i) => {
                    let o = match merged[i].take() {
                        Value::Object(o) => o,
                        _ => Map::new(),
                    };
                    merged[i] = Value::Object(self.merge_map(o, p)?);
                }
                None => merged.push(Value::Object(clean_map(p))),
            }
        }
        let patch_order: Vec<Value> = plain
            .into_iter()
            .map(|m| Value::Object(m.clone()))
            .collect();
        order_elements(merged, &patch_order, &server_order, Some(key), kind)
    }
}

/// `normalizeElementOrder`: patch items in patch order, server-only items in server order, then the
/// two interleaved, a server item going first only where the server list put it before the patch item.
/// So new items from a patch come before the server items that follow them.
fn order_elements(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    if kind == Kind::Map {
        let key = key.unwrap_or("");
        for v in merged.iter().chain(patch_order).chain(server_order) {
            let m = v
                .as_object()
                .ok_or_else(|| bad_arg_type("map[string]interface {}", v))?;
            if !m.contains_key(key) {
                return Err(no_merge_key(m, key));
            }
        }
    }
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position(patch_order, v, key).is_some());
    from_patch.sort_by_key(|v| position(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut server = server_only.into_iter().peekable();
    let mut patch = from_patch.into_iter().peekable();
    loop {
        let take_server = match (server.peek(), patch.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(p)) => {
                matches!((position(server_order, s, key), position(server_order, p, key)), (Some(a), Some(b)) if a < b)
            }
        };
        out.extend(if take_server {
            server.next()
        } else {
            patch.next()
        });
    }
    Ok(out)
}

/// Index of the element with `v`'s merge key value (or equal to `v`, for primitives).
fn position(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => list.iter().position(|e| e.get(k) == v.get(k)),
        None => list.iter().position(|e| e == v),
    }
}

/// `validatePatchWithSetOrderList`: the patch list's items must appear in the order list, in its order.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch.len());
    for v in patch {
        if key.is_some() {
            let m = v
                .as_object()
                .ok_or_else(|| bad_arg_type("map[string]interface {}", v))?;
            if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(v);
    }
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let equal = match key {
            None => items[pi] == &order[oi],
            Some(k) => {
                let a = items[pi]
                    .as_object()
                    .ok_or_else(|| bad_arg_type("map[string]interface {}", items[pi]))?;
                let b = order[oi]
                    .as_object()
                    .ok_or_else(|| bad_arg_type("map[string]interface {}", &order[oi]))?;
                a.get(k).ok_or_else(|| no_merge_key(a, k))?
                    == b.get(k).ok_or_else(|| no_merge_key(b, k))?
            }
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(PatchError::Unclassified(format!(
            "the order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// `sliceElementType`: the one kind of all elements; `None` when there are none.
fn element_kind(lists: &[&[Value]]) -> Result<Option<Kind>, PatchError> {
    let mut kind = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = match v {
            Value::Array(_) => {
                return Err(PatchError::Invalid(
                    "lists of lists are not supported".into(),
                ));
            }
            Value::Object(_) => Kind::Map,
            other => Kind::Primitive(go_type(other)),
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                let all = Value::Array(lists.iter().map(|l| Value::Array(l.to_vec())).collect());
                return Err(PatchError::Unclassified(format!(
                    "list element types are not identical: {}",
                    go_fmt(&all)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// `$setElementOrder/containers` → `containers`.
fn extract_key<'k>(k: &'k str, prefix: &str) -> Option<&'k str> {
    k.split_once('/')
        .filter(|(p, _)| *p == prefix)
        .map(|(_, f)| f)
}

/// A value taken from the patch as it is: without directive maps, directive keys or null members.
fn clean(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(clean_map(m))),
        Value::Array(a) => Some(Value::Array(clean_list(a))),
        other => Some(other.clone()),
    }
}

fn clean_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, v)| {
            !v.is_null()
                && k.as_str() != DIRECTIVE
                && k.as_str() != RETAIN_KEYS
                && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                && !k.starts_with(SET_ELEMENT_ORDER)
        })
        .filter_map(|(k, v)| clean(v).map(|c| (k.clone(), c)))
        .collect()
}

fn clean_list(a: &[Value]) -> Vec<Value> {
    a.iter().filter_map(clean).collect()
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::Unclassified(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt(&Value::Object(m.clone()))
    ))
}

fn bad_patch_type(d: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::Unclassified(format!(
        "unknown patch type: {} in map: {}",
        go_fmt(d),
        go_fmt(&Value::Object(m.clone()))
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Unclassified(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn bad_retain_keys() -> PatchError {
    PatchError::BadRequest("invalid patch format of retainKeys".into())
}
