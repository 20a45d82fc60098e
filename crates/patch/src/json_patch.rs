//! RFC 6902 JSON patch as the Kubernetes API server applies it: the semantics and messages of
//! `gopkg.in/evanphx/json-patch.v4`, including its leniencies (negative array indexes count from the end,
//! `replace` of a missing object member adds it, a path's first segment is not checked to be empty).

use serde_json::{Map, Value};

use crate::PatchError;

/// The API server refuses JSON patches with more operations than this (413).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// The most bytes (as JSON) all `copy` operations of one patch may add together, as kube-apiserver limits them
/// (its request body limit): each copy can double the document, so a few dozen would exhaust memory.
pub const MAX_ACCUMULATED_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies a JSON patch (an array of operations) to `target`, returning the new document; on error the
/// result is discarded as a whole, so a patch applies completely or not at all.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: &[Value] = match patch {
        Value::Array(ops) => ops,
        Value::Null => &[],
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_kind(other)
            )));
        }
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.len(),
        });
    }
    let empty = Map::new();
    let ops = ops
        .iter()
        .map(|op| match op {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(&empty),
            other => Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_kind(other)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut doc = target.clone();
    let mut copied = 0;
    for op in ops {
        apply(&mut doc, op, &mut copied)?;
    }
    Ok(doc)
}

/// Applies one operation; `copied` counts the bytes `copy` operations have added so far.
fn apply(doc: &mut Value, op: &Map<String, Value>, copied: &mut usize) -> Result<(), PatchError> {
    let kind = match op.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => "unknown",
    };
    match kind {
        "add" => {
            let path = string_field(op, "path")
                .map_err(|_| missing("add operation failed to decode path"))?;
            let value = op.get("value").cloned().unwrap_or(Value::Null);
            let (parent, key) = locate(doc, &path).ok_or_else(|| {
                missing(&format!(
                    "add operation does not apply: doc is missing path: \"{path}\""
                ))
            })?;
            add(parent, key, value).map_err(|e| e.wrap(&format!("error in add for path: '{path}'")))
        }
        "remove" => {
            let path = string_field(op, "path")
                .map_err(|_| missing("remove operation failed to decode path"))?;
            let (parent, key) = locate(doc, &path).ok_or_else(|| {
                missing(&format!(
                    "remove operation does not apply: doc is missing path: \"{path}\""
                ))
            })?;
            remove(parent, &key)
                .map(drop)
                .map_err(|e| e.wrap(&format!("error in remove for path: '{path}'")))
        }
        "replace" => {
            let path = string_field(op, "path")
                .map_err(|e| e.wrap("replace operation failed to decode path"))?;
            let value = op.get("value").cloned().unwrap_or(Value::Null);
            if path.is_empty() {
                // v4 silently ignores a scalar here; an error is more useful and nothing relies on the no-op.
                if !value.is_object() && !value.is_array() {
                    return Err(PatchError::Invalid(
                        "replace operation value must be object or array".into(),
                    ));
                }
                *doc = value;
                return Ok(());
            }
            let (parent, key) = locate(doc, &path).ok_or_else(|| {
                missing(&format!(
                    "replace operation does not apply: doc is missing path: {path}"
                ))
            })?;
            match parent {
                Value::Object(m) => {
                    m.insert(key, value);
                }
                Value::Array(a) => {
                    let i = index(&key, a.len()).map_err(|_| {
                        missing(&format!(
                            "replace operation does not apply: doc is missing key: {path}"
                        ))
                    })?;
                    a[i] = value;
                }
                _ => unreachable!("locate returns containers"),
            }
            Ok(())
        }
        "move" => {
            let from = string_field(op, "from")
                .map_err(|e| e.wrap("move operation failed to decode from"))?;
            let (parent, key) = locate(doc, &from).ok_or_else(|| {
                missing(&format!(
                    "move operation does not apply: doc is missing from path: {from}"
                ))
            })?;
            let value = remove(parent, &key)
                .map_err(|e| e.wrap(&format!("error in move for path: '{key}'")))?;
            let path = string_field(op, "path")
                .map_err(|e| e.wrap("move operation failed to decode path"))?;
            let (parent, key) = locate(doc, &path).ok_or_else(|| {
                missing(&format!(
                    "move operation does not apply: doc is missing destination path: {path}"
                ))
            })?;
            add(parent, key, value)
                .map_err(|e| e.wrap(&format!("error in move for path: '{path}'")))
        }
        "copy" => {
            let from = string_field(op, "from")
                .map_err(|e| e.wrap("copy operation failed to decode from"))?;
            let (parent, key) = locate(doc, &from).ok_or_else(|| {
                missing(&format!(
                    "copy operation does not apply: doc is missing from path: {from}"
                ))
            })?;
            let value = get(parent, &key)
                .map_err(|e| e.wrap(&format!("error in copy for from: '{from}'")))?
                .cloned()
                .unwrap_or(Value::Null);
            *copied += serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
            if *copied > MAX_ACCUMULATED_COPY_BYTES {
                return Err(PatchError::Invalid(format!(
                    "Unable to copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_ACCUMULATED_COPY_BYTES}"
                )));
            }
            let path = string_field(op, "path")
                .map_err(|_| missing("copy operation failed to decode path"))?;
            let (parent, key) = locate(doc, &path).ok_or_else(|| {
                missing(&format!(
                    "copy operation does not apply: doc is missing destination path: {path}"
                ))
            })?;
            add(parent, key, value).map_err(|e| e.wrap("error while adding value during copy"))
        }
        "test" => {
            let path = string_field(op, "path")
                .map_err(|e| e.wrap("test operation failed to decode path"))?;
            let failed =
                || PatchError::TestFailed(format!("testing value {path} failed: test failed"));
            let expected = op.get("value");
            let actual = if path.is_empty() {
                Some(&*doc)
            } else {
                let (parent, key) = locate(doc, &path).ok_or_else(|| {
                    missing(&format!(
                        "test operation does not apply: is missing path: {path}"
                    ))
                })?;
                get(parent, &key)
                    .map_err(|e| e.wrap(&format!("error in test for path: '{path}'")))?
            };
            // A missing member equals an explicit null, as in v4.
            let actual = actual.unwrap_or(&Value::Null);
            match expected {
                Some(e) if e == actual => Ok(()),
                _ => Err(failed()),
            }
        }
        other => Err(PatchError::Invalid(format!("Unexpected kind: {other}"))),
    }
}

fn missing(what: &str) -> PatchError {
    PatchError::PathNotFound(format!("{what}: missing value"))
}

impl PatchError {
    /// `errors.Wrapf(err, prefix)`: the same kind, `prefix: message`.
    fn wrap(self, prefix: &str) -> Self {
        let w = |m: String| format!("{prefix}: {m}");
        match self {
            Self::BadRequest(m) => Self::BadRequest(w(m)),
            Self::Invalid(m) => Self::Invalid(w(m)),
            Self::TestFailed(m) => Self::TestFailed(w(m)),
            Self::PathNotFound(m) => Self::PathNotFound(w(m)),
            Self::Unclassified(m) => Self::Unclassified(w(m)),
            e @ Self::TooManyOperations { .. } => e,
        }
    }
}

/// A string member of an operation; absent or null is `operation missing <name> field`.
fn string_field(op: &Map<String, Value>, name: &str) -> Result<String, PatchError> {
    match op.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(PatchError::Invalid(match name {
            "path" => "operation missing path field: missing value".to_owned(),
            _ => format!("operation, missing {name} field: missing value"),
        })),
        Some(v) => Err(PatchError::Invalid(format!(
            "json: cannot unmarshal {} into Go value of type string",
            json_kind(v)
        ))),
    }
}

/// The container holding the pointer's last token, and that token unescaped. `None` where v4's
/// `findObject` finds nothing: a path without `/`, or a missing or scalar intermediate.
fn locate<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let mut tokens = path.split('/').skip(1).map(unescape).collect::<Vec<_>>();
    let key = tokens.pop()?;
    let mut cur = doc;
    for t in &tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => {
                let i = index(t, a.len()).ok()?;
                &mut a[i]
            }
            _ => return None,
        };
    }
    (cur.is_object() || cur.is_array()).then_some((cur, key))
}

/// RFC 6901 unescaping: `~1` is `/`, `~0` is `~` (in that order, so `~01` is `~1`).
fn unescape(token: &str) -> String {
    if !token.contains('~') {
        return token.to_owned();
    }
    token.replace("~1", "/").replace("~0", "~")
}

/// An existing element's index; negative indexes count from the end.
fn index(token: &str, len: usize) -> Result<usize, PatchError> {
    let i = parse_index(token)?;
    let len = len as i64;
    let i = if i < 0 && i >= -len { i + len } else { i };
    if i < 0 || i >= len {
        return Err(invalid_index(i));
    }
    Ok(i as usize)
}

fn parse_index(token: &str) -> Result<i64, PatchError> {
    token.parse::<i64>().map_err(|_| {
        PatchError::Invalid(format!("strconv.Atoi: parsing {token:?}: invalid syntax"))
    })
}

fn invalid_index(i: i64) -> PatchError {
    PatchError::PathNotFound(format!(
        "Unable to access invalid index: {i}: invalid index referenced"
    ))
}

fn get<'a>(container: &'a Value, key: &str) -> Result<Option<&'a Value>, PatchError> {
    match container {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(a) => Ok(Some(&a[index(key, a.len())?])),
        _ => Ok(None),
    }
}

fn add(container: &mut Value, key: String, value: Value) -> Result<(), PatchError> {
    match container {
        Value::Object(m) => {
            m.insert(key, value);
        }
        Value::Array(a) if key == "-" => a.push(value),
        Value::Array(a) => {
            let i = parse_index(&key)
                .map_err(|e| e.wrap(&format!("value was not a proper array index: '{key}'")))?;
            let len = a.len() as i64 + 1;
            if i >= len || i < -len {
                return Err(invalid_index(i));
            }
            a.insert(if i < 0 { i + len } else { i } as usize, value);
        }
        _ => unreachable!("locate returns containers"),
    }
    Ok(())
}

fn remove(container: &mut Value, key: &str) -> Result<Value, PatchError> {
    match container {
        Value::Object(m) => m.remove(key).ok_or_else(|| {
            PatchError::PathNotFound(format!(
                "Unable to remove nonexistent key: {key}: missing value"
            ))
        }),
        Value::Array(a) => {
            let i = index(key, a.len())?;
            Ok(a.remove(i))
        }
        _ => unreachable!("locate returns containers"),
    }
}

/// The JSON kind as Go's `UnmarshalTypeError` names it.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
