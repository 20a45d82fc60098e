//! Converts a decoded Kubernetes message into its JSON form by walking the descriptor.
//!
//! JSON names are the proto field names (Kubernetes writes its JSON names there). The rules aim
//! at what Go's `encoding/json` produces for the same Go object:
//!
//! * A field absent on the wire is absent (a nil pointer, slice or map in Go).
//! * A singular scalar holding its zero value (`""`, `0`, `false`, empty bytes) is omitted, as Go's
//!   `omitempty` drops it: Kubernetes' Go marshaller writes every non-pointer field, so `kubectl`
//!   bodies carry `generateName: ""`, `generation: 0` and so on. The exception is [`KEEP_ZERO`],
//!   pointer fields where an explicit zero means something (`replicas: 0`, `automountServiceAccountToken: false`).
//!   Map values and list items are always kept.
//! * A message present on the wire becomes an object even when empty (`"spec": {}`), as Go never
//!   omits a struct.
//! * Special messages: `Time` (seconds precision) and `MicroTime` (6 fractional digits) become
//!   RFC 3339 strings and a zero time is omitted (`null` inside lists); `Duration` becomes a Go
//!   duration string; `Quantity` its string; `IntOrString` a number or a string; `RawExtension`
//!   and `FieldsV1` the JSON they hold (a `RawExtension` holding a `k8s\0` protobuf object is
//!   decoded in turn); `bytes` become base64.

use base64::Engine;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, MapKey, MessageDescriptor, ReflectMessage, Value,
};
use serde_json::{Map, Value as Json};

use crate::ProtobufError;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.";
/// How deep `RawExtension`s holding protobuf objects may nest.
const MAX_RAW_DEPTH: usize = 8;

/// Pointer fields of the supported kinds whose zero value (`0`, `false`, `""`) is meaningful and
/// must survive; matched by field name outside `…Status` messages (a deliberate approximation:
/// the protos do not say which Go fields are pointers). Others' zero values are omitted.
const KEEP_ZERO: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "averageUtilization",
    "backoffLimit",
    "backoffLimitPerIndex",
    "completions",
    "defaultMode",
    "deletionGracePeriodSeconds",
    "enableServiceLinks",
    "expirationSeconds",
    "failedJobsHistoryLimit",
    "fsGroup",
    "hostUsers",
    "immutable",
    "maxFailedIndexes",
    "minReplicas",
    "mode",
    "optional",
    "parallelism",
    "partition",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "ready",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "serving",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "stabilizationWindowSeconds",
    "startingDeadlineSeconds",
    "storageClassName",
    "successfulJobsHistoryLimit",
    "suspend",
    "targetCPUUtilizationPercentage",
    "terminating",
    "terminationGracePeriodSeconds",
    "ttlSecondsAfterFinished",
];

/// Whether a zero value of `field` is kept (see [`KEEP_ZERO`]). Status messages are excluded:
/// their counters (`DeploymentStatus.replicas`) are plain `omitempty` fields.
fn keeps_zero(field: &FieldDescriptor) -> bool {
    KEEP_ZERO.contains(&field.name()) && !field.parent_message().name().ends_with("Status")
}

/// Adds the JSON form of every field of `msg` to `out`.
pub(crate) fn message_fields(
    msg: &DynamicMessage,
    out: &mut Map<String, Json>,
    depth: usize,
) -> Result<(), ProtobufError> {
    for (field, value) in msg.fields() {
        match field_json(&field, value, depth)? {
            // A struct Go embeds inline: its fields belong to the parent in JSON.
            Some(Json::Object(fields)) if is_inline(&field) => out.extend(fields),
            Some(json) => {
                out.insert(field.name().to_owned(), json);
            }
            None => {}
        }
    }
    Ok(())
}

/// Message fields that are Go structs embedded with `json:",inline"` (a Volume's source, a Probe's handler,
/// the `name` of ConfigMap/Secret references, an IngressRule's value, ...): the protobuf has them as a nested
/// message, the JSON as the parent's own fields.
const INLINE: &[&str] = &[
    "volumeSource",
    "persistentVolumeSource",
    "handler",
    "ephemeralContainerCommon",
    "localObjectReference",
    "ingressRuleValue",
];

fn is_inline(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), prost_reflect::Kind::Message(_)) && INLINE.contains(&field.name())
}

fn field_json(
    field: &FieldDescriptor,
    value: &Value,
    depth: usize,
) -> Result<Option<Json>, ProtobufError> {
    match value {
        Value::Map(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                out.insert(key, value_json(v, depth)?.unwrap_or(Json::Null));
            }
            Ok(Some(Json::Object(out)))
        }
        Value::List(items) => {
            let items = items
                .iter()
                .map(|v| Ok(value_json(v, depth)?.unwrap_or(Json::Null)))
                .collect::<Result<Vec<_>, ProtobufError>>()?;
            Ok(Some(Json::Array(items)))
        }
        Value::Message(_) => value_json(value, depth),
        scalar if scalar.is_default(&field.kind()) && !keeps_zero(field) => Ok(None),
        scalar => value_json(scalar, depth),
    }
}

/// The JSON for one value; `None` where Go would write `null` (a zero `Time`).
fn value_json(value: &Value, depth: usize) -> Result<Option<Json>, ProtobufError> {
    Ok(Some(match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => (*n).into(),
        Value::I64(n) => (*n).into(),
        Value::U32(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::EnumNumber(n) => (*n).into(),
        Value::F32(n) => float(f64::from(*n)),
        Value::F64(n) => float(*n),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Message(m) => return message_json(&m.descriptor(), m, depth),
        // Nested lists and maps only occur as fields, handled by `field_json`.
        Value::List(_) | Value::Map(_) => {
            return Err(ProtobufError::InvalidValue(
                "unexpected nested repeated value".into(),
            ));
        }
    }))
}

fn float(n: f64) -> Json {
    serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
}

fn message_json(
    desc: &MessageDescriptor,
    m: &DynamicMessage,
    depth: usize,
) -> Result<Option<Json>, ProtobufError> {
    let name = desc.full_name();
    if let Some(meta) = name.strip_prefix(META) {
        match meta {
            "Time" | "MicroTime" => return time_json(m, meta == "MicroTime"),
            "Duration" => return Ok(Some(Json::String(go_duration(int(m, "duration"))))),
            "FieldsV1" => return raw_json(&bytes(m, "Raw"), depth).map(Some),
            _ => {}
        }
    }
    match name {
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => {
            let s = string(m, "string");
            return Ok(Some(Json::String(if s.is_empty() {
                "0".into()
            } else {
                s
            })));
        }
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            return Ok(Some(if int(m, "type") == 1 {
                Json::String(string(m, "strVal"))
            } else {
                int(m, "intVal").into()
            }));
        }
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => {
            return raw_json(&bytes(m, "raw"), depth).map(Some);
        }
        _ => {}
    }
    let mut out = Map::new();
    message_fields(m, &mut out, depth)?;
    Ok(Some(Json::Object(out)))
}

fn string(m: &DynamicMessage, name: &str) -> String {
    match m.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn int(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Value::I64(n)) => *n,
        Some(Value::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

fn bytes(m: &DynamicMessage, name: &str) -> Vec<u8> {
    match m.get_field_by_name(name).as_deref() {
        Some(Value::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// The JSON held by a `RawExtension` or `FieldsV1`; `null` when empty, as Go marshals a nil `Raw`.
fn raw_json(raw: &[u8], depth: usize) -> Result<Json, ProtobufError> {
    if raw.is_empty() {
        Ok(Json::Null)
    } else if raw.starts_with(crate::MAGIC) {
        if depth >= MAX_RAW_DEPTH {
            return Err(ProtobufError::InvalidValue(
                "protobuf objects nested too deeply".into(),
            ));
        }
        crate::decode_at(raw, depth + 1)
    } else {
        serde_json::from_slice(raw)
            .map_err(|e| ProtobufError::InvalidValue(format!("embedded JSON: {e}")))
    }
}

/// `Time` / `MicroTime` (`{seconds, nanos}`) as Go's `metav1` marshals them. Kubernetes writes a
/// zero time as an empty message, so one with neither field set is the zero time.
fn time_json(m: &DynamicMessage, micro: bool) -> Result<Option<Json>, ProtobufError> {
    if m.fields().next().is_none() {
        return Ok(None);
    }
    let seconds = int(m, "seconds");
    let nanos = int(m, "nanos");
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(ProtobufError::InvalidValue(format!(
            "time nanos {nanos} out of range"
        )));
    }
    let time = time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| {
            ProtobufError::InvalidValue(format!("time {seconds}s is outside years 0-9999"))
        })?;
    let fraction = if micro {
        format!(".{:06}", nanos / 1000)
    } else {
        String::new()
    };
    Ok(Some(Json::String(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    ))))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (scale, unit) = match u {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", decimal(u, scale));
    }
    let secs = u / 1_000_000_000;
    let (h, m) = (secs / 3600, secs / 60 % 60);
    let mut out = sign.to_owned();
    if h > 0 {
        out += &format!("{h}h");
    }
    if secs >= 60 {
        out += &format!("{m}m");
    }
    out + &decimal(u % 60_000_000_000, 1_000_000_000) + "s"
}

/// `n / scale` with the fraction's trailing zeros dropped (`scale` is a power of ten).
fn decimal(n: u64, scale: u64) -> String {
    let (whole, frac) = (n / scale, n % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_go() {
        for (nanos, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }
}
