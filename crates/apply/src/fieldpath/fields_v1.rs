//! FieldsV1: how `metadata.managedFields[].fieldsV1` spells a [`FieldSet`]. Each element is an object key
//! (`"f:spec"`); a member with nothing below is `{}`; a node that is both a member and a parent holds
//! `".": {}` first. Keys come in upstream's element order.

use serde_json::{Map, Value};

use super::element::PathElement;
use super::set::FieldSet;
use crate::value::write_go_json_string;

/// A FieldsV1 document that does not describe a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldsV1Error(pub String);

impl std::fmt::Display for FieldsV1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FieldsV1Error {}

impl FieldSet {
    /// The FieldsV1 bytes upstream writes for this set (`{"f:data":{"f:key":{}}}`), byte for byte.
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::with_capacity(64);
        out.push('{');
        self.write_contents(false, &mut out, &mut String::new());
        out.push('}');
        out
    }

    fn write_contents(&self, include_self: bool, out: &mut String, scratch: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
        };
        if include_self && !self.is_empty() {
            sep(out);
            out.push_str("\".\":{}");
        }
        let members = self.members();
        let children: Vec<(&PathElement, &FieldSet)> = self.children().collect();
        let (mut m, mut c) = (0, 0);
        while m < members.len() || c < children.len() {
            let order = match (members.get(m), children.get(c)) {
                (Some(mpe), Some((cpe, _))) => mpe.cmp(cpe),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            sep(out);
            match order {
                std::cmp::Ordering::Less => {
                    write_key(out, scratch, &members[m]);
                    out.push_str(":{}");
                    m += 1;
                }
                std::cmp::Ordering::Greater | std::cmp::Ordering::Equal => {
                    let (pe, child) = children[c];
                    let is_member = order == std::cmp::Ordering::Equal;
                    write_key(out, scratch, pe);
                    out.push_str(":{");
                    child.write_contents(is_member, out, scratch);
                    out.push('}');
                    c += 1;
                    if is_member {
                        m += 1;
                    }
                }
            }
        }
    }

    /// The FieldsV1 object as a JSON value (keys are sorted by `serde_json`'s map, which only reorders
    /// siblings of different kinds; [`FieldSet::to_fields_v1_string`] keeps upstream's order).
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.to_fields_v1_map(false))
    }

    fn to_fields_v1_map(&self, include_self: bool) -> Map<String, Value> {
        let mut map = Map::new();
        if include_self && !self.is_empty() {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for pe in self.members() {
            map.insert(pe.to_fields_v1(), Value::Object(Map::new()));
        }
        for (pe, child) in self.children() {
            let inner = child.to_fields_v1_map(self.has_member(pe));
            map.insert(pe.to_fields_v1(), Value::Object(inner));
        }
        map
    }

    /// Parses a FieldsV1 object. Elements with an unknown prefix are dropped, as upstream does.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldsV1Error> {
        match value {
            Value::Object(map) => Ok(read_node(map)?.0),
            _ => Err(FieldsV1Error("FieldsV1 must be a JSON object".to_owned())),
        }
    }

    /// Parses FieldsV1 bytes.
    pub fn from_fields_v1_str(text: &str) -> Result<FieldSet, FieldsV1Error> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FieldsV1Error(format!("invalid FieldsV1 JSON: {e}")))?;
        FieldSet::from_fields_v1(&value)
    }
}

fn write_key(out: &mut String, scratch: &mut String, pe: &PathElement) {
    scratch.clear();
    pe.write_fields_v1(scratch);
    write_go_json_string(out, scratch);
}

/// Reads one node: its set, and whether the node itself is a member (`"."`, or nothing known below).
fn read_node(map: &Map<String, Value>) -> Result<(FieldSet, bool), FieldsV1Error> {
    let mut set = FieldSet::new();
    let mut is_member = false;
    for (key, child) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::parse_fields_v1(key).map_err(FieldsV1Error)? else {
            continue;
        };
        let Value::Object(child) = child else {
            return Err(FieldsV1Error(format!(
                "FieldsV1 entry {key:?} must be a JSON object"
            )));
        };
        let (grandchildren, child_is_member) = read_node(child)?;
        if child_is_member {
            set.members_mut().push(pe.clone());
        }
        if !grandchildren.is_empty() {
            set.children_mut().push((pe, grandchildren));
        }
    }
    set.normalize();
    if set.is_empty() {
        is_member = true;
    }
    Ok((set, is_member))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Upstream's golden FieldsV1 documents (structured-merge-diff `fieldpath/serialize_test.go`) and
    /// managedFields as kube-apiserver writes them.
    const GOLDEN: &[&str] = &[
        r#"{"f:aaa":{},"f:aab":{},"f:aac":{},"f:aad":{},"f:aae":{},"f:aaf":{},"k:{\"name\":\"first\"}":{},"k:{\"name\":\"second\"}":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{},"k:{\"port\":443,\"protocol\":\"udp\"}":{},"v:1":{},"v:2":{},"v:3":{},"v:\"aa\"":{},"v:\"ab\"":{},"v:true":{},"i:1":{},"i:2":{},"i:3":{},"i:4":{}}"#,
        r#"{"f:aaa":{"k:{\"name\":\"second\"}":{"v:3":{"f:aab":{}}},"v:3":{},"v:true":{}},"f:aab":{"f:aaa":{},"f:aaf":{"k:{\"port\":443,\"protocol\":\"udp\"}":{"k:{\"port\":443,\"protocol\":\"tcp\"}":{}}},"k:{\"name\":\"first\"}":{}},"f:aac":{"f:aaa":{"v:1":{}},"f:aac":{},"v:3":{"k:{\"name\":\"second\"}":{}}},"f:aad":{"f:aac":{"v:1":{}},"f:aaf":{"k:{\"name\":\"first\"}":{"k:{\"name\":\"first\"}":{}}},"i:1":{"i:1":{},"i:3":{"v:true":{}}}},"f:aae":{"f:aae":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{"k:{\"port\":443,\"protocol\":\"udp\"}":{}},"i:4":{"f:aaf":{}}},"f:aaf":{"i:1":{"f:aac":{}},"i:2":{},"i:3":{}},"k:{\"name\":\"first\"}":{"f:aad":{"f:aaf":{}}},"k:{\"port\":443,\"protocol\":\"tcp\"}":{"f:aaa":{"f:aad":{}}},"k:{\"port\":443,\"protocol\":\"udp\"}":{"f:aac":{},"k:{\"name\":\"first\"}":{"i:3":{}},"k:{\"port\":443,\"protocol\":\"udp\"}":{"i:4":{}}},"v:1":{"f:aac":{"i:4":{}},"f:aaf":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{}},"v:2":{"f:aad":{"f:aaf":{}},"i:1":{}},"v:3":{"f:aaa":{},"k:{\"name\":\"first\"}":{},"i:2":{}},"v:\"aa\"":{"f:aab":{"f:aaf":{}},"f:aae":{},"k:{\"name\":\"first\"}":{"f:aad":{}},"i:2":{}},"v:\"ab\"":{"f:aaf":{"i:4":{}},"k:{\"port\":443,\"protocol\":\"tcp\"}":{},"k:{\"port\":443,\"protocol\":\"udp\"}":{},"v:1":{"k:{\"port\":443,\"protocol\":\"udp\"}":{}},"i:1":{"f:aae":{"i:4":{}}}},"v:true":{"k:{\"name\":\"second\"}":{"f:aaa":{}},"i:2":{"k:{\"port\":443,\"protocol\":\"tcp\"}":{}}},"i:1":{"i:3":{"f:aaf":{}}},"i:2":{"f:aae":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{"v:1":{}}},"i:3":{"f:aab":{"v:true":{"v:\"aa\"":{}}},"f:aaf":{},"i:1":{}},"i:4":{"v:\"aa\"":{"f:aab":{"k:{\"name\":\"second\"}":{}}}}}"#,
        // The Server-Side Apply docs' ConfigMap.
        r#"{"f:data":{"f:key":{}},"f:metadata":{"f:labels":{"f:test-label":{}}}}"#,
        // The shape of `kubectl create deployment`'s entry (kubectl-create, Update).
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#,
        // Service ports keyed by port and protocol, finalizers as a set.
        r#"{"f:metadata":{"f:finalizers":{".":{},"v:\"service.kubernetes.io/load-balancer-cleanup\"":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:targetPort":{}},"k:{\"port\":443,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}}}}"#,
    ];

    #[test]
    fn golden_documents_round_trip_byte_for_byte() {
        for text in GOLDEN {
            let set = FieldSet::from_fields_v1_str(text).expect("parses");
            assert_eq!(set.to_fields_v1_string(), *text);
            let value: Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(set.to_fields_v1(), value);
            assert_eq!(FieldSet::from_fields_v1(&value), Ok(set));
        }
    }

    #[test]
    fn dot_marks_a_member_with_children() {
        let set =
            FieldSet::from_fields_v1(&json!({"f:labels": {".": {}, "f:app": {}}})).expect("parses");
        assert_eq!(set.path_strings(), [".labels", ".labels.app"]);
        let unknown = FieldSet::from_fields_v1(&json!({"f:aaa": {}, "r:aab": {}})).expect("parses");
        assert_eq!(unknown.to_fields_v1_string(), r#"{"f:aaa":{}}"#);
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        assert_eq!(FieldSet::new().to_fields_v1_string(), "{}");
    }
}
