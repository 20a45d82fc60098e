//! `PatchError` and the Go `%v` rendering its messages use, so they read like apimachinery's.

use std::fmt::Write as _;

use serde_json::Value;

/// Why a patch could not be applied. `code()` is the HTTP status the Kubernetes API server answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400: the patch body is not a patch of its type (not an operation list, a malformed directive).
    #[error("{0}")]
    BadRequest(String),
    /// 422: a JSON patch operation or strategic directive that cannot apply to this object.
    #[error("{0}")]
    Invalid(String),
    /// 422: a JSON patch `test` operation did not match.
    #[error("{0}")]
    TestFailed(String),
    /// 422: a JSON patch operation names a location the object does not have.
    #[error("{0}")]
    PathNotFound(String),
    /// 413: more JSON patch operations than [`crate::MAX_JSON_PATCH_OPERATIONS`].
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations { max: usize, got: usize },
    /// A strategic merge patch error apimachinery leaves unclassified (e.g. a list element without its merge
    /// key). Kubernetes answers these with 500; the message is the same.
    #[error("{0}")]
    Unclassified(String),
}

impl PatchError {
    /// The HTTP status Kubernetes uses for this error.
    pub fn code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Invalid(_) | Self::TestFailed(_) | Self::PathNotFound(_) => 422,
            Self::TooManyOperations { .. } => 413,
            Self::Unclassified(_) => 500,
        }
    }

    /// `metav1.StatusReason` for the code.
    pub fn reason(&self) -> &'static str {
        match self.code() {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            _ => "InternalError",
        }
    }
}

/// Go's `%v` of a decoded JSON value: `map[a:1 b:[x y]]`, `<nil>`.
pub(crate) fn go_fmt(v: &Value) -> String {
    let mut s = String::new();
    go_fmt_into(&mut s, v);
    s
}

fn go_fmt_into(s: &mut String, v: &Value) {
    match v {
        Value::Null => s.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(s, "{n}");
        }
        Value::String(t) => s.push_str(t),
        Value::Array(a) => {
            s.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                go_fmt_into(s, e);
            }
            s.push(']');
        }
        Value::Object(m) => {
            s.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push(':');
                go_fmt_into(s, &m[k]);
            }
            s.push(']');
        }
    }
}

/// The Go type name `encoding/json` decodes this value to (apimachinery decodes whole numbers to int64).
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}
