//! `metadata.managedFields`: one entry per manager, operation (`Apply`/`Update`), subresource and, for
//! updates, API version, each with the set of fields it owns in FieldsV1. Decoded and encoded as upstream's
//! `managedfields` package does, entries sorted as upstream sorts them (applies first, then by time,
//! manager, API version, subresource).

use serde_json::{Map, Value};

use crate::fieldpath::FieldSet;

/// The annotation kubectl's client-side apply keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How a manager last wrote its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write (create, update, patch).
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339, seconds (`2025-01-02T03:04:05Z`).
    pub time: Option<String>,
    /// `""` for the main resource.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Whether this entry is the one `manager` writes with `operation` through `subresource` (updates are
    /// also told apart by API version; applies are not).
    pub fn is(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// The entry as the object carries it.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("manager".into(), Value::String(self.manager.clone()));
        map.insert(
            "operation".into(),
            Value::String(self.operation.as_str().to_owned()),
        );
        map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            map.insert("time".into(), Value::String(time.clone()));
        }
        map.insert("fieldsType".into(), Value::String("FieldsV1".to_owned()));
        map.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            map.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(map)
    }

    fn from_value(value: &Value, index: usize) -> Result<ManagedFieldsEntry, ManagedFieldsError> {
        let err = |m: String| Err(ManagedFieldsError(m));
        let Value::Object(map) = value else {
            return err(format!("managed fields entry {index} is not an object"));
        };
        let text = |key: &str| match map.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ManagedFieldsError(format!(
                "managed fields entry {index}: {key} must be a string"
            ))),
        };
        let operation = match text("operation")?.as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return err("operation must be `Apply` or `Update`".to_owned()),
        };
        let api_version = text("apiVersion")?;
        if api_version.is_empty() {
            return err("apiVersion must not be empty".to_owned());
        }
        match text("fieldsType")?.as_str() {
            "FieldsV1" => {}
            "" => {
                return err(format!(
                    "missing fieldsType in managed fields entry {index}"
                ));
            }
            other => {
                return err(format!(
                    "invalid fieldsType {} in managed fields entry {index}",
                    crate::value::go_quote(other)
                ));
            }
        }
        let fields = match map.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => FieldSet::from_fields_v1(v).map_err(|e| {
                ManagedFieldsError(format!(
                    "error decoding versioned set from managed fields entry {index}: {e}"
                ))
            })?,
        };
        let time = text("time")?;
        Ok(ManagedFieldsEntry {
            manager: text("manager")?,
            operation,
            api_version,
            time: (!time.is_empty()).then_some(time),
            subresource: text("subresource")?,
            fields,
        })
    }
}

/// `metadata.managedFields` that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFieldsError(pub String);

impl std::fmt::Display for ManagedFieldsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ManagedFieldsError {}

/// The managed fields of an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedFields {
    entries: Vec<ManagedFieldsEntry>,
}

impl ManagedFields {
    /// From entries (sorted as upstream sorts them; of two entries for the same manager the later wins).
    pub fn new(entries: Vec<ManagedFieldsEntry>) -> ManagedFields {
        let mut kept: Vec<ManagedFieldsEntry> = Vec::with_capacity(entries.len());
        for entry in entries {
            let same = kept.iter().position(|e| {
                e.is(
                    &entry.manager,
                    entry.operation,
                    &entry.api_version,
                    &entry.subresource,
                )
            });
            match same {
                Some(i) => kept[i] = entry,
                None => kept.push(entry),
            }
        }
        kept.sort_by(|p, q| {
            p.operation
                .cmp(&q.operation)
                .then_with(|| seconds(p.time.as_deref()).cmp(&seconds(q.time.as_deref())))
                .then_with(|| p.manager.cmp(&q.manager))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| p.subresource.cmp(&q.subresource))
        });
        ManagedFields { entries: kept }
    }

    pub fn entries(&self) -> &[ManagedFieldsEntry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<ManagedFieldsEntry> {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `manager` with `operation` (the first, for updates through several API versions).
    pub fn get(&self, manager: &str, operation: Operation) -> Option<&ManagedFieldsEntry> {
        self.entries
            .iter()
            .find(|e| e.manager == manager && e.operation == operation)
    }

    /// Decodes the JSON list (`null` or absent: none).
    pub fn from_value(list: &Value) -> Result<ManagedFields, ManagedFieldsError> {
        match list {
            Value::Null => Ok(ManagedFields::default()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| ManagedFieldsEntry::from_value(item, i))
                .collect::<Result<Vec<_>, _>>()
                .map(ManagedFields::new),
            _ => Err(ManagedFieldsError(
                "metadata.managedFields must be a list".to_owned(),
            )),
        }
    }

    /// Decodes `object`'s `metadata.managedFields`.
    pub fn from_object(object: &Value) -> Result<ManagedFields, ManagedFieldsError> {
        match object.pointer("/metadata/managedFields") {
            Some(list) => ManagedFields::from_value(list),
            None => Ok(ManagedFields::default()),
        }
    }

    /// The JSON list.
    pub fn to_value(&self) -> Value {
        Value::Array(
            self.entries
                .iter()
                .map(ManagedFieldsEntry::to_value)
                .collect(),
        )
    }

    /// Sets `object`'s `metadata.managedFields` (removes it when there are none).
    pub fn write_to(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        if self.is_empty() {
            if let Some(Value::Object(metadata)) = root.get_mut("metadata") {
                metadata.remove("managedFields");
            }
            return;
        }
        let metadata = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Value::Object(metadata) = metadata {
            metadata.insert("managedFields".into(), self.to_value());
        }
    }
}

/// The managed fields a non-apply write starts from, as upstream chooses them: the new object's when it
/// carries valid, non-empty ones (clients may edit them), none when it asks for a reset (`[]` or `[{}]`),
/// else the live object's. Subresource writes always use the live object's. Undecodable live fields
/// count as none (upstream drops them).
pub fn managed_for_update(live: Option<&Value>, new: &Value, subresource: bool) -> ManagedFields {
    let live_fields = || {
        live.and_then(|l| ManagedFields::from_object(l).ok())
            .unwrap_or_default()
    };
    if subresource {
        return live_fields();
    }
    let requested = new.pointer("/metadata/managedFields");
    if requested.is_some_and(is_reset) {
        return ManagedFields::default();
    }
    match requested.map(ManagedFields::from_value) {
        Some(Ok(fields)) if !fields.is_empty() => fields,
        _ => live_fields(),
    }
}

/// `managedFields: []` or `[{}]`: the client clears them.
fn is_reset(list: &Value) -> bool {
    match list {
        Value::Array(items) => match items.as_slice() {
            [] => true,
            [Value::Object(only)] => only.is_empty(),
            _ => false,
        },
        _ => false,
    }
}

/// Paths no manager owns (upstream's `stripMetaManager`). Differences with this set are not recursive:
/// `metadata` itself is stripped, its other fields are not.
pub(crate) fn strip_set() -> &'static FieldSet {
    static STRIP: std::sync::LazyLock<FieldSet> = std::sync::LazyLock::new(|| {
        FieldSet::from_fields(&[
            &["apiVersion"],
            &["kind"],
            &["metadata"],
            &["metadata", "name"],
            &["metadata", "namespace"],
            &["metadata", "creationTimestamp"],
            &["metadata", "selfLink"],
            &["metadata", "uid"],
            &["metadata", "clusterName"],
            &["metadata", "generation"],
            &["metadata", "managedFields"],
            &["metadata", "resourceVersion"],
        ])
    });
    &STRIP
}

/// Seconds since the epoch of an RFC 3339 time (0 when absent or unreadable, as upstream sorts).
pub(crate) fn seconds(time: Option<&str>) -> i64 {
    time.and_then(parse_rfc3339).unwrap_or(0)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(r)?).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = 19;
    if b.get(rest) == Some(&b'.') {
        rest += 1;
        while b.get(rest).is_some_and(u8::is_ascii_digit) {
            rest += 1;
        }
    }
    let offset = match b.get(rest)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let minutes = num(rest + 1..rest + 3)? * 60 + num(rest + 4..rest + 6)?;
            if *sign == b'+' {
                -minutes * 60
            } else {
                minutes * 60
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second + offset)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decode_encode_and_sort() {
        let list = json!([
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "time": "2019-03-30T16:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:key": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2019-03-30T15:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:test-label": {}}}}},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2019-03-30T15:59:59Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}}, "subresource": "status"}
        ]);
        let managed = ManagedFields::from_value(&list).expect("valid");
        let order: Vec<&str> = managed
            .entries()
            .iter()
            .map(|e| e.manager.as_str())
            .collect();
        assert_eq!(order, ["kubectl", "kubelet", "kube-controller-manager"]);
        let again = ManagedFields::from_value(&managed.to_value()).expect("valid");
        assert_eq!(again, managed);
        assert_eq!(managed.to_value()[1]["subresource"], "status");
        assert!(managed.to_value()[0].get("subresource").is_none());
    }

    #[test]
    fn invalid_entries_are_refused() {
        for (entry, message) in [
            (
                json!({"operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}),
                "operation must be `Apply` or `Update`",
            ),
            (
                json!({"operation": "Apply", "fieldsType": "FieldsV1"}),
                "apiVersion must not be empty",
            ),
            (
                json!({"operation": "Apply", "apiVersion": "v1"}),
                "missing fieldsType in managed fields entry 0",
            ),
            (
                json!({"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"}),
                "invalid fieldsType \"FieldsV2\" in managed fields entry 0",
            ),
        ] {
            assert_eq!(
                ManagedFields::from_value(&json!([entry])),
                Err(ManagedFieldsError(message.to_owned()))
            );
        }
    }

    #[test]
    fn which_fields_an_update_starts_from() {
        let entry = json!({"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:data": {}}});
        let other = json!({"manager": "b", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:data": {}}});
        let live = json!({"metadata": {"managedFields": [entry]}});
        let mine = |new: Value| managed_for_update(Some(&live), &new, false);
        assert_eq!(mine(json!({})).entries()[0].manager, "a");
        assert_eq!(
            mine(json!({"metadata": {"managedFields": [other.clone()]}})).entries()[0].manager,
            "b"
        );
        assert!(mine(json!({"metadata": {"managedFields": []}})).is_empty());
        assert!(mine(json!({"metadata": {"managedFields": [{}]}})).is_empty());
        assert_eq!(
            mine(json!({"metadata": {"managedFields": [{"bad": 1}, {}]}})).entries()[0].manager,
            "a"
        );
        let status = managed_for_update(
            Some(&live),
            &json!({"metadata": {"managedFields": [other]}}),
            true,
        );
        assert_eq!(status.entries()[0].manager, "a");
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2019-03-30T16:00:00Z"), Some(1_553_961_600));
        assert_eq!(
            parse_rfc3339("2019-03-30T18:00:00.5+02:00"),
            Some(1_553_961_600)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
