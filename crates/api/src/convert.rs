//! Kinds served in two API groups from one storage: `events.k8s.io/v1` Events are stored as `core/v1` Events
//! (as upstream stores both in one place), so `kubectl get events` sees what the newer API writes and the
//! other way round. The conversion is upstream's field renaming.

use serde_json::{Map, Value};

/// `(core/v1 field, events.k8s.io/v1 field)` pairs; other fields share their names.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// Whether objects of this kind are stored in another group's form.
pub fn is_converted(group: &str, kind: &str) -> bool {
    (group, kind) == ("events.k8s.io", "Event")
}

/// An object of `group`/`kind` in the form it is stored in.
pub fn to_storage(group: &str, kind: &str, object: Value) -> Value {
    if !is_converted(group, kind) {
        return object;
    }
    rename(object, "v1", |(core, events)| (events, core))
}

/// A stored object in the form `group`/`kind` serves.
pub fn from_storage(group: &str, kind: &str, object: Value) -> Value {
    if !is_converted(group, kind) {
        return object;
    }
    rename(object, "events.k8s.io/v1", |pair| pair)
}

/// Renames each pair's first field to its second and sets `apiVersion`.
fn rename(
    object: Value,
    api_version: &str,
    direction: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Value {
    let Value::Object(mut fields) = object else {
        return object;
    };
    let mut renamed = Map::new();
    for &pair in EVENT_FIELDS {
        let (from, to) = direction(pair);
        // A field already in the target form is dropped: the source form's value wins, as in upstream's
        // conversion, which only reads the source fields.
        fields.remove(to);
        if let Some(value) = fields.remove(from) {
            renamed.insert(to.to_string(), value);
        }
    }
    fields.extend(renamed);
    fields.insert("apiVersion".into(), Value::from(api_version));
    fields.insert("kind".into(), Value::from("Event"));
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_round_trip_between_the_two_groups() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                         "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled",
                         "reportingController": "gantry-agent", "reportingInstance": "n1", "type": "Normal",
                         "eventTime": "2026-11-28T00:00:00.000000Z", "deprecatedCount": 2});
        let stored = to_storage("events.k8s.io", "Event", new.clone());
        assert_eq!(
            stored,
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                   "involvedObject": {"kind": "Pod", "name": "p"}, "message": "pulled", "reason": "Pulled",
                   "reportingComponent": "gantry-agent", "reportingInstance": "n1", "type": "Normal",
                   "eventTime": "2026-11-28T00:00:00.000000Z", "count": 2})
        );
        assert_eq!(from_storage("events.k8s.io", "Event", stored.clone()), new);
        assert_eq!(from_storage("", "Event", stored.clone()), stored, "core reads it as stored");
    }
}
