//! One step of a field path, its order, and its two spellings: in FieldsV1 (`f:name`, `k:{"name":"web"}`,
//! `v:"x"`, `i:0`) and in messages (`.name`, `[name="web"]`, `[="x"]`, `[0]`).

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::value::{compare, go_string, write_go_json, write_go_json_string};

/// A step from a node to one of its children.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of a struct or a key of a map: `f:name`.
    Field(Box<str>),
    /// An item of a list of type `map`, named by its key fields, sorted by name: `k:{"name":"web"}`.
    Key(Box<[(Box<str>, Value)]>),
    /// An item of a list of type `set`, named by its value: `v:"x"`.
    Value(Value),
    /// An item of a list named by its position: `i:0`.
    Index(usize),
}

impl PathElement {
    /// A field element.
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    /// A key element from key fields in any order (they are sorted by name, as upstream does).
    pub fn key<'a>(fields: impl IntoIterator<Item = (&'a str, Value)>) -> PathElement {
        let mut fields: Vec<(Box<str>, Value)> =
            fields.into_iter().map(|(k, v)| (k.into(), v)).collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields.into_boxed_slice())
    }

    /// The FieldsV1 spelling: `f:name`, `k:{"name":"web"}`, `v:"x"`, `i:0`.
    pub fn to_fields_v1(&self) -> String {
        let mut out = String::new();
        self.write_fields_v1(&mut out);
        out
    }

    pub(crate) fn write_fields_v1(&self, out: &mut String) {
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_json_string(out, name);
                    out.push(':');
                    write_go_json(out, value);
                }
                out.push('}');
            }
            PathElement::Value(value) => {
                out.push_str("v:");
                write_go_json(out, value);
            }
            PathElement::Index(i) => {
                out.push_str("i:");
                out.push_str(&i.to_string());
            }
        }
    }

    /// Parses the FieldsV1 spelling. `Ok(None)` for an unknown prefix (upstream drops those).
    pub fn parse_fields_v1(s: &str) -> Result<Option<PathElement>, String> {
        let (prefix, rest) = match s.split_at_checked(2) {
            Some((p, r)) if p.len() == 2 && p.as_bytes()[1] == b':' => (p.as_bytes()[0], r),
            _ => return Err(format!("invalid path element {s:?}: missing type prefix")),
        };
        match prefix {
            b'f' => Ok(Some(PathElement::Field(rest.into()))),
            b'v' => {
                let value: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("invalid value in path element {s:?}: {e}"))?;
                Ok(Some(PathElement::Value(value)))
            }
            b'k' => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => Ok(Some(PathElement::Key(
                    // The map is sorted by key already.
                    map.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                ))),
                Ok(_) => Err(format!("invalid key in path element {s:?}: not an object")),
                Err(e) => Err(format!("invalid key in path element {s:?}: {e}")),
            },
            b'i' => rest
                .parse()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| format!("invalid index in path element {s:?}: {e}")),
            _ => Ok(None),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

/// Upstream's order: fields, then keys, then values, then indexes; keys compare field by field.
impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((na, va), (nb, vb)) in a.iter().zip(b.iter()) {
                    let c = na.cmp(nb).then_with(|| compare(va, vb));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// The message spelling: `.name`, `[name="web",port=80]`, `[="x"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                f.write_str("[")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}={}", go_string(value))?;
                }
                f.write_str("]")
            }
            PathElement::Value(value) => write!(f, "[={}]", go_string(value)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as upstream prints it: `.spec.template.spec.containers[name="web"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        out.push_str(&pe.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spellings_round_trip() {
        let cases = [
            (PathElement::field("replicas"), "f:replicas", ".replicas"),
            (
                PathElement::key([("protocol", json!("TCP")), ("containerPort", json!(80))]),
                r#"k:{"containerPort":80,"protocol":"TCP"}"#,
                r#"[containerPort=80,protocol="TCP"]"#,
            ),
            (
                PathElement::Value(json!("example.com/finalizer")),
                r#"v:"example.com/finalizer""#,
                r#"[="example.com/finalizer"]"#,
            ),
            (PathElement::Index(3), "i:3", "[3]"),
        ];
        for (pe, v1, shown) in cases {
            assert_eq!(pe.to_fields_v1(), v1);
            assert_eq!(pe.to_string(), shown);
            assert_eq!(PathElement::parse_fields_v1(v1), Ok(Some(pe)));
        }
        assert_eq!(PathElement::parse_fields_v1("r:x"), Ok(None));
        assert!(PathElement::parse_fields_v1("x").is_err());
        assert!(PathElement::parse_fields_v1("k:[1]").is_err());
    }

    #[test]
    fn order_is_upstreams() {
        let mut elements = [
            PathElement::Index(1),
            PathElement::Value(json!(true)),
            PathElement::Value(json!("aa")),
            PathElement::Value(json!(2)),
            PathElement::key([("port", json!(443)), ("protocol", json!("udp"))]),
            PathElement::key([("name", json!("first"))]),
            PathElement::field("b"),
            PathElement::field("a"),
        ];
        elements.sort();
        let spelled: Vec<String> = elements.iter().map(PathElement::to_fields_v1).collect();
        assert_eq!(
            spelled,
            [
                "f:a",
                "f:b",
                r#"k:{"name":"first"}"#,
                r#"k:{"port":443,"protocol":"udp"}"#,
                "v:2",
                r#"v:"aa""#,
                "v:true",
                "i:1"
            ]
        );
    }
}
