//! Field-level validation errors (apimachinery's `util/validation/field`): what a 422 Invalid lists as causes.

use std::fmt;

use serde_json::Value;

/// Why a field is invalid; `as_str` is the `reason` of a `StatusCause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl FieldErrorType {
    /// The machine-readable cause type, e.g. `FieldValueInvalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human-readable form, e.g. `Invalid value`.
    pub fn title(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }
}

/// One invalid field. `Display` is Kubernetes' `field: body`, e.g.
/// `metadata.name: Invalid value: "A": a lowercase RFC 1123 subdomain ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorType,
    /// The field path, e.g. `metadata.labels` or `spec.containers[0].name`; `<nil>` where Kubernetes has no path.
    pub field: String,
    /// The offending value; `None` where Kubernetes omits it from the message.
    pub bad_value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    fn new(
        kind: FieldErrorType,
        field: impl Into<String>,
        bad_value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.into(),
            bad_value,
            detail: detail.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorType::Invalid, field, Some(value.into()), detail)
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Required, field, None, detail)
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorType::Duplicate, field, Some(value.into()), "")
    }

    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorType::NotFound, field, Some(value.into()), "")
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        valid: &[&str],
    ) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            FieldErrorType::NotSupported,
            field,
            Some(value.into()),
            detail,
        )
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Forbidden, field, None, detail)
    }

    /// `Too long: may not be more than N bytes` (the value is never printed).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        Self::new(
            FieldErrorType::TooLong,
            field,
            None,
            format!("may not be more than {max_bytes} {unit}"),
        )
    }

    /// `Too many: 5: must have at most 4 items`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::new(
            FieldErrorType::TooMany,
            field,
            Some(actual.into()),
            format!("must have at most {max} items"),
        )
    }

    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Internal, field, None, detail)
    }

    /// The message without the field name (Kubernetes' `ErrorBody`): what a `StatusCause` carries.
    pub fn body(&self) -> String {
        let mut s = self.kind.title().to_owned();
        let omit = matches!(
            self.kind,
            FieldErrorType::Required
                | FieldErrorType::Forbidden
                | FieldErrorType::TooLong
                | FieldErrorType::Internal
        );
        if let (false, Some(v)) = (omit, &self.bad_value) {
            s.push_str(": ");
            s.push_str(&go_format_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// A list of errors as Kubernetes' aggregate prints it: one message alone, several as `[a, b]`, duplicates once.
pub fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::with_capacity(errors.len());
    for msg in errors.iter().map(ToString::to_string) {
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.len() {
        1 => seen.remove(0),
        _ if seen.is_empty() => String::new(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// A value as Go's `%v`/`%q`/`%#v` prints it in a field error: strings quoted, `[]string{"a", "b"}` for string
/// lists, numbers and booleans plain. Other JSON (objects, mixed lists) prints as JSON, where Go would print a struct.
pub(crate) fn go_format_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::String(s) => go_quote(s),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let quoted: Vec<String> = items
                .iter()
                .filter_map(Value::as_str)
                .map(go_quote)
                .collect();
            format!("[]string{{{}}}", quoted.join(", "))
        }
        other => other.to_string(),
    }
}

/// Go's `strconv.Quote`: double quotes, with `\"`, `\\`, C escapes and `\x`/`\u` for what is not printable.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if !printable(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` beyond ASCII: controls, non-ASCII spaces, the common format
/// characters and the private use areas are not printed.
fn printable(c: char) -> bool {
    let code = c as u32;
    if code < 0x80 {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(code, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e)
        || matches!(code, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff)
        || matches!(code, 0xfff9..=0xfffb | 0xe000..=0xf8ff | 0xf0000..)
        || c == '\u{fffe}'
        || c == '\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_match_kubernetes() {
        let cases = [
            (
                FieldError::invalid("f", "x", "bad"),
                "f: Invalid value: \"x\": bad",
            ),
            (
                FieldError::invalid("f", 5, "bad"),
                "f: Invalid value: 5: bad",
            ),
            (FieldError::invalid("f", true, ""), "f: Invalid value: true"),
            (
                FieldError::invalid("f", Value::Null, "d"),
                "f: Invalid value: null: d",
            ),
            (
                FieldError::invalid("values", json!([]), "d"),
                "values: Invalid value: []string{}: d",
            ),
            (
                FieldError::invalid("v", json!(["a", "b"]), "d"),
                "v: Invalid value: []string{\"a\", \"b\"}: d",
            ),
            (
                FieldError::required("metadata.name", ""),
                "metadata.name: Required value",
            ),
            (
                FieldError::required("f", "name or generateName is required"),
                "f: Required value: name or generateName is required",
            ),
            (FieldError::duplicate("f", "a"), "f: Duplicate value: \"a\""),
            (FieldError::not_found("f", "a"), "f: Not found: \"a\""),
            (
                FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"",
            ),
            (
                FieldError::not_supported("f", "x", &[]),
                "f: Unsupported value: \"x\"",
            ),
            (
                FieldError::forbidden("f", "not allowed"),
                "f: Forbidden: not allowed",
            ),
            (
                FieldError::too_long("metadata.annotations", 262144),
                "metadata.annotations: Too long: may not be more than 262144 bytes",
            ),
            (
                FieldError::too_long("f", 1),
                "f: Too long: may not be more than 1 byte",
            ),
            (
                FieldError::too_many("f", 5, 4),
                "f: Too many: 5: must have at most 4 items",
            ),
            (FieldError::internal("f", "boom"), "f: Internal error: boom"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
        assert_eq!(
            FieldError::required("a", "").kind.as_str(),
            "FieldValueRequired"
        );
        assert_eq!(FieldErrorType::TooLong.as_str(), "FieldValueTooLong");
        assert_eq!(FieldErrorType::Internal.as_str(), "InternalError");
    }

    #[test]
    fn quoting_is_gos() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{1}\u{7f}"), r#""\n\t\x01\x7f""#);
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(go_quote("\u{a0}\u{85}"), r#""\u00a0\u0085""#);
    }

    #[test]
    fn aggregate_dedups_and_brackets() {
        let a = FieldError::invalid("f", "x", "d");
        let b = FieldError::required("g", "");
        assert_eq!(aggregate_message(&[]), "");
        assert_eq!(aggregate_message(std::slice::from_ref(&a)), a.to_string());
        assert_eq!(aggregate_message(&[a.clone(), a.clone()]), a.to_string());
        assert_eq!(
            aggregate_message(&[a.clone(), b.clone(), a]),
            format!("[f: Invalid value: \"x\": d, {b}]")
        );
    }
}
