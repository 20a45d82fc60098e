//! Field selectors (apimachinery's `pkg/fields`): `?fieldSelector=metadata.name=x,status.phase!=Running`.
//!
//! Terms are `field=value`, `field==value` or `field!=value`, comma-separated; in values `\,`, `\=` and `\\`
//! stand for `,`, `=` and `\`. A missing field reads as the empty string, so `spec.nodeName=` matches unscheduled
//! pods. Which fields a resource supports is the caller's to check, with [`FieldSelector::check_supported`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::status::ApiError;

/// Why a field selector was refused; the message is Kubernetes'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelectorError(pub String);

impl fmt::Display for FieldSelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FieldSelectorError {}

impl From<FieldSelectorError> for ApiError {
    fn from(err: FieldSelectorError) -> Self {
        ApiError::bad_request(err.0)
    }
}

/// `field=value` (also written `==`) or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    /// True for `!=`.
    pub not_equal: bool,
    /// The unescaped value.
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, actual: &str) -> bool {
        (actual == self.value) != self.not_equal
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.not_equal { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// The AND of its terms, in the order Kubernetes keeps them (sorted by the terms' text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the string form. Empty terms (`a=b,,c=d`) are skipped, as upstream.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, op, raw)) = split_term(term) else {
                return Err(FieldSelectorError(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )));
            };
            let value = unescape_value(raw)?.into_owned();
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                not_equal: op == "!=",
                value,
            });
        }
        Ok(Self { requirements })
    }

    /// A selector requiring `field=value` exactly (`OneTermEqualSelector`).
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            requirements: vec![FieldRequirement {
                field: field.into(),
                not_equal: false,
                value: value.into(),
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The fields the selector names, each once, for the caller to check against what the resource supports.
    pub fn fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = Vec::with_capacity(self.requirements.len());
        for r in &self.requirements {
            if !fields.contains(&r.field.as_str()) {
                fields.push(&r.field);
            }
        }
        fields
    }

    /// Refuses a field the resource does not support as Kubernetes does: 400 `field label not supported: <field>`.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), ApiError> {
        match self.fields().into_iter().find(|f| !supported.contains(f)) {
            Some(f) => Err(ApiError::bad_request(format!(
                "field label not supported: {f}"
            ))),
            None => Ok(()),
        }
    }

    /// The value the selector requires for `field` through `=`/`==`, if any: lets a caller narrow a lookup
    /// (e.g. `metadata.name`, `spec.nodeName`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.not_equal)
            .map(|r| r.value.as_str())
    }

    /// Matches with field values supplied by the caller (for fields computed rather than read from JSON).
    /// `None` reads as the empty string.
    pub fn matches_with<'a>(&self, mut get: impl FnMut(&str) -> Option<Cow<'a, str>>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref().unwrap_or("")))
    }

    /// Matches an object by each field's dotted path into its JSON (see [`field_value`]).
    pub fn matches_object(&self, object: &Value) -> bool {
        self.matches_with(|f| field_value(object, f))
    }
}

/// The value at a dotted path (`metadata.name`, `involvedObject.kind`) as a field selector compares it: strings
/// as they are, numbers and booleans in their JSON form (`true`, `3`); missing, null, objects and lists give `None`.
pub fn field_value<'a>(object: &'a Value, path: &str) -> Option<Cow<'a, str>> {
    let mut v = object;
    for part in path.split('.') {
        v = v.as_object()?.get(part)?;
    }
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Escapes `\`, `,` and `=` so any string can be a selector value.
pub fn escape_value(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', ',', '=']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Undoes [`escape_value`]; an unknown escape, a trailing `\` or a bare `,`/`=` is an error.
pub fn unescape_value(s: &str) -> Result<Cow<'_, str>, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(FieldSelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(FieldSelectorError(
                        "invalid field selector: invalid escape sequence: \\".to_owned(),
                    ));
                }
            },
            // Go prints the rune as its number here.
            ',' | '=' => {
                return Err(FieldSelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            c => out.push(c),
        }
    }
    Ok(Cow::Owned(out))
}

/// Splits on commas not escaped by a backslash; the backslashes stay.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// The first operator in the term splits it (`!=` before `==` before `=` at each position); fields have no escapes.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<Cow<'static, str>> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |f| {
            owned
                .iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| Cow::Owned(v.clone()))
        }
    }

    #[test]
    fn parse_and_string() {
        // Upstream's TestSelectorParse: the string form of a good selector is the input, spaces removed.
        for good in [
            "", "a=b", "a==b", "a=b,c=d", "a!=b", "a=", "a==", "a!=", "a=,b=", "x=a\\,b",
            "x=a\\=b", "x=a\\\\b",
        ] {
            let sel = FieldSelector::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            let canonical = good.replace("==", "=");
            assert_eq!(sel.to_string(), canonical, "{good}");
        }
        for bad in ["a", "a,b", "x=a,b", "x=a=b", "x=\\a", "x=a\\"] {
            assert!(FieldSelector::parse(bad).is_err(), "{bad}");
        }
        // Terms are sorted by their text; empty terms are skipped.
        assert_eq!(
            FieldSelector::parse("b=1,,a=2").unwrap().to_string(),
            "a=2,b=1"
        );
        assert_eq!(
            FieldSelector::parse(",").unwrap(),
            FieldSelector::everything()
        );
        // Fields have no escapes: `x\=a` is field `x\`.
        assert_eq!(FieldSelector::parse("x\\=a").unwrap().fields(), ["x\\"]);
    }

    #[test]
    fn split_terms_table() {
        // Upstream's TestSplitTerms.
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("a", &["a"]),
            ("a=avalue", &["a=avalue"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            ("a=avalue\\,,b=bvalue", &["a=avalue\\,", "b=bvalue"]),
            ("a=avalue\\,\\\\,b=bvalue", &["a=avalue\\,\\\\", "b=bvalue"]),
            ("a=avalue,,b=bvalue", &["a=avalue", "", "b=bvalue"]),
            ("a=\\\\,b=bvalue", &["a=\\\\", "b=bvalue"]),
        ];
        for (input, want) in cases {
            assert_eq!(split_terms(input), *want, "{input:?}");
        }
    }

    #[test]
    fn split_term_table() {
        // Upstream's TestSplitTerm.
        let cases = [
            ("a=value", Some(("a", "=", "value"))),
            ("ab==value", Some(("ab", "==", "value"))),
            ("abc!=value", Some(("abc", "!=", "value"))),
            ("a==value=", Some(("a", "==", "value="))),
            ("a!=value\\,", Some(("a", "!=", "value\\,"))),
            ("=value", Some(("", "=", "value"))),
            ("a", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(split_term(input), want, "{input:?}");
        }
    }

    #[test]
    fn escaping() {
        // Upstream's TestEscapeValue / TestUnescapeValue.
        let pairs = [
            ("", ""),
            ("a", "a"),
            ("=", "\\="),
            (",", "\\,"),
            ("\\", "\\\\"),
            ("\\=\\,\\", "\\\\\\=\\\\\\,\\\\"),
        ];
        for (raw, escaped) in pairs {
            assert_eq!(escape_value(raw), escaped);
            assert_eq!(unescape_value(escaped).unwrap(), raw);
        }
        let errs = [
            ("\\", "invalid field selector: invalid escape sequence: \\"),
            (
                "\\\\\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
            (
                "\\a",
                "invalid field selector: invalid escape sequence: \\a",
            ),
            (
                "=",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                ",",
                "invalid field selector: unescaped character in value: 44",
            ),
            (
                "a=b\\",
                "invalid field selector: unescaped character in value: 61",
            ),
        ];
        for (input, want) in errs {
            assert_eq!(unescape_value(input).unwrap_err().0, want, "{input:?}");
        }
        assert_eq!(
            FieldSelector::parse("a").unwrap_err().0,
            "invalid selector: 'a'; can't understand 'a'"
        );
        assert_eq!(
            FieldSelector::parse("x=y,z").unwrap_err().0,
            "invalid selector: 'x=y,z'; can't understand 'z'"
        );
    }

    #[test]
    fn matching() {
        // Upstream's TestSelectorMatches.
        let yes = [
            ("", &[("x", "y")][..]),
            ("x=y", &[("x", "y")]),
            ("x=y,z=w", &[("x", "y"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")]),
            ("x!=", &[("x", "z")]),
            ("x=", &[]),
            ("x=a\\,b", &[("x", "a,b")]),
        ];
        let no = [
            ("x=y", &[("x", "z")][..]),
            ("x=y,z=w", &[("x", "w"), ("z", "w")]),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")]),
            ("x!=", &[]),
            ("x=y", &[]),
        ];
        for (sel, f) in yes {
            assert!(
                FieldSelector::parse(sel).unwrap().matches_with(fields(f)),
                "{sel} should match {f:?}"
            );
        }
        for (sel, f) in no {
            assert!(
                !FieldSelector::parse(sel).unwrap().matches_with(fields(f)),
                "{sel} should not match {f:?}"
            );
        }
    }

    #[test]
    fn objects_by_path() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "hostNetwork": true, "priority": 7},
            "status": {"phase": "Running"}
        });
        let event = json!({"involvedObject": {"kind": "Pod", "name": "web-1"}});
        let m = |s: &str, o: &Value| FieldSelector::parse(s).unwrap().matches_object(o);
        assert!(m("metadata.name=web-1,metadata.namespace=default", &pod));
        assert!(m("spec.nodeName=node-a,status.phase!=Pending", &pod));
        assert!(!m("status.phase=Pending", &pod));
        assert!(m("spec.hostNetwork=true,spec.priority=7", &pod));
        assert!(m("spec.schedulerName=", &pod), "a missing field is empty");
        assert!(!m("spec.nodeName=", &pod));
        assert!(m("metadata=", &pod), "an object is not a value");
        assert!(m("involvedObject.kind=Pod", &event));
        assert_eq!(
            field_value(&pod, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(field_value(&pod, "status.phase.x"), None);
        assert_eq!(field_value(&json!("x"), "a"), None);
    }

    #[test]
    fn fields_support_and_exact_match() {
        let sel =
            FieldSelector::parse("metadata.name=a,spec.nodeName!=b,metadata.name==c").unwrap();
        assert_eq!(sel.fields(), ["metadata.name", "spec.nodeName"]);
        assert!(
            sel.check_supported(&["metadata.name", "spec.nodeName"])
                .is_ok()
        );
        let err = sel.check_supported(&["metadata.name"]).unwrap_err();
        assert_eq!(
            (err.code, err.reason, err.message.as_str()),
            (
                400,
                "BadRequest",
                "field label not supported: spec.nodeName"
            )
        );
        // The first term in text order wins, as upstream: `metadata.name==c` sorts before `metadata.name=a`.
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("c"));
        assert_eq!(sel.requires_exact_match("spec.nodeName"), None);
        let one = FieldSelector::one_term_equal("spec.nodeName", "n,1");
        assert_eq!(one.to_string(), "spec.nodeName=n\\,1");
        assert_eq!(one.to_string().parse::<FieldSelector>().unwrap(), one);
        assert!(!one.is_empty() && FieldSelector::everything().is_empty());
        assert_eq!(one.requirements()[0].value, "n,1");
        let api: ApiError = FieldSelector::parse("a").unwrap_err().into();
        assert_eq!(api.code, 400);
    }
}
