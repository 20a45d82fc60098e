//! Round trips: objects are encoded with prost-reflect from their protobuf-JSON form, wrapped in
//! the `k8s\0` + `runtime.Unknown` envelope as client-go does, and decoded back by `decode`.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use gantry_protobuf::{ProtobufError, decode, is_supported};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value as PValue};
use serde_json::{Value, json};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(include_bytes!("../proto/descriptor_set.bin").as_slice()).unwrap()
}

/// Encodes `object` (protobuf JSON mapping: Quantity is `{"string": …}`, Time `{"seconds": …}`)
/// as the message `message` and wraps it in the envelope with the given TypeMeta.
fn body(api_version: &str, kind: &str, message: &str, object: Value) -> Vec<u8> {
    let pool = pool();
    let desc = pool.get_message_by_name(message).unwrap();
    let raw = DynamicMessage::deserialize(desc, object)
        .unwrap()
        .encode_to_vec();
    envelope(api_version, kind, raw, "")
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>, content_encoding: &str) -> Vec<u8> {
    let pool = pool();
    let unknown = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .unwrap();
    let mut type_meta = DynamicMessage::new(
        pool.get_message_by_name("k8s.io.apimachinery.pkg.runtime.TypeMeta")
            .unwrap(),
    );
    type_meta.set_field_by_name("apiVersion", PValue::String(api_version.into()));
    type_meta.set_field_by_name("kind", PValue::String(kind.into()));
    let mut msg = DynamicMessage::new(unknown);
    msg.set_field_by_name("typeMeta", PValue::Message(type_meta));
    msg.set_field_by_name("raw", PValue::Bytes(raw.into()));
    msg.set_field_by_name("contentEncoding", PValue::String(content_encoding.into()));
    msg.set_field_by_name("contentType", PValue::String(String::new()));
    let mut out = b"k8s\0".to_vec();
    out.extend(msg.encode_to_vec());
    out
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn kubectl_create_namespace_body() {
    let body = base64::engine::general_purpose::STANDARD
        .decode("azhzAAoPCgJ2MRIJTmFtZXNwYWNlEhkKEQoBeBIAGgAiACoAMgA4AEIAEgAaAgoAGgAiAA==")
        .unwrap();
    // Zero scalars and the zero creationTimestamp are dropped; present empty structs stay `{}`,
    // as in the JSON kubectl would send (`"spec":{},"status":{}`).
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {}, "status": {}})
    );
}

#[test]
fn configmap_keeps_empty_map_values() {
    let b = body(
        "v1",
        "ConfigMap",
        "k8s.io.api.core.v1.ConfigMap",
        json!({
            "metadata": {"name": "cfg", "namespace": "ns", "generateName": "", "generation": 0,
                         "labels": {"app": "web"}, "creationTimestamp": {}},
            "data": {"a": "b", "empty": ""},
            "binaryData": {"bin": b64("\u{1}\u{2}")}
        }),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cfg", "namespace": "ns", "labels": {"app": "web"}},
               "data": {"a": "b", "empty": ""}, "binaryData": {"bin": "AQI="}})
    );
}

#[test]
fn secret_data_is_base64() {
    let b = body(
        "v1",
        "Secret",
        "k8s.io.api.core.v1.Secret",
        json!({"metadata": {"name": "s"}, "data": {"password": b64("hunter2")}, "type": "Opaque",
               "immutable": false}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
               "data": {"password": "aHVudGVyMg=="}, "type": "Opaque", "immutable": false})
    );
}

#[test]
fn deployment_with_quantities_and_int_or_string() {
    let b = body(
        "apps/v1",
        "Deployment",
        "k8s.io.api.apps.v1.Deployment",
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": {}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx:1.27", "terminationMessagePath": "",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": {"string": "100m"}, "memory": {"string": "64Mi"}}}
                    }]}
                },
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": {"type": 1, "strVal": "25%"},
                                               "maxUnavailable": {"type": 0, "intVal": 0}}},
                "minReadySeconds": 0
            },
            "status": {}
        }),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {
                   "replicas": 0,
                   "selector": {"matchLabels": {"app": "web"}},
                   "template": {
                       "metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [{
                           "name": "nginx", "image": "nginx:1.27",
                           "ports": [{"containerPort": 80, "protocol": "TCP"}],
                           "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}
                       }]}
                   },
                   "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
               },
               "status": {}})
    );
}

#[test]
fn service_target_port() {
    let b = body(
        "v1",
        "Service",
        "k8s.io.api.core.v1.Service",
        json!({"metadata": {"name": "svc"},
               "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80,
                                   "targetPort": {"type": 0, "intVal": 8080}},
                                  {"port": 443, "targetPort": {"type": 1, "strVal": "https"}}],
                        "selector": {"app": "svc"}, "clusterIP": "", "type": "ClusterIP"}}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
               "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                                  {"port": 443, "targetPort": "https"}],
                        "selector": {"app": "svc"}, "type": "ClusterIP"}})
    );
}

#[test]
fn job_keeps_explicit_zero_pointers() {
    let b = body(
        "batch/v1",
        "Job",
        "k8s.io.api.batch.v1.Job",
        json!({"metadata": {"name": "j"},
               "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 100, "activeDeadlineSeconds": "600",
                        "template": {"spec": {"restartPolicy": "Never",
                                              "containers": [{"name": "j", "image": "busybox",
                                                              "command": ["sh", "-c", ""]}]}}}}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
               "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 100, "activeDeadlineSeconds": 600,
                        "template": {"spec": {"restartPolicy": "Never",
                                              "containers": [{"name": "j", "image": "busybox",
                                                              "command": ["sh", "-c", ""]}]}}}})
    );
}

#[test]
fn role_keeps_empty_strings_in_lists() {
    let b = body(
        "rbac.authorization.k8s.io/v1",
        "Role",
        "k8s.io.api.rbac.v1.Role",
        json!({"metadata": {"name": "r", "namespace": "ns"},
               "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "r", "namespace": "ns"},
               "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})
    );
}

#[test]
fn token_request_times_and_int64() {
    let b = body(
        "authentication.k8s.io/v1",
        "TokenRequest",
        "k8s.io.api.authentication.v1.TokenRequest",
        json!({"metadata": {"name": "default", "namespace": "ns", "creationTimestamp": {"seconds": "0"}},
               "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": "3600",
                        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}},
               "status": {"token": "t", "expirationTimestamp": {"seconds": "1704164645", "nanos": 9}}}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "metadata": {"name": "default", "namespace": "ns", "creationTimestamp": "1970-01-01T00:00:00Z"},
               "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}},
               "status": {"token": "t", "expirationTimestamp": "2024-01-02T03:04:05Z"}})
    );
}

#[test]
fn micro_time_lease() {
    let b = body(
        "coordination.k8s.io/v1",
        "Lease",
        "k8s.io.api.coordination.v1.Lease",
        json!({"metadata": {"name": "l"},
               "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                        "renewTime": {"seconds": "1704164645", "nanos": 123456789}}}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
               "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                        "renewTime": "2024-01-02T03:04:05.123456Z"}})
    );
}

#[test]
fn raw_extension_and_fields_v1_hold_json() {
    let managed = json!([{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                          "fieldsV1": {"Raw": b64(r#"{"f:data":{}}"#)}}]);
    let b = body(
        "apps/v1",
        "ControllerRevision",
        "k8s.io.api.apps.v1.ControllerRevision",
        json!({"metadata": {"name": "cr", "managedFields": managed},
               "data": {"raw": b64(r#"{"spec":{"x":1}}"#)}, "revision": "2"}),
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
               "metadata": {"name": "cr", "managedFields": [{"manager": "kubectl", "operation": "Update",
                            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]},
               "data": {"spec": {"x": 1}}, "revision": 2})
    );
}

#[test]
fn raw_extension_holding_protobuf_is_decoded() {
    let inner = body(
        "v1",
        "ConfigMap",
        "k8s.io.api.core.v1.ConfigMap",
        json!({"metadata": {"name": "c"}}),
    );
    let inner = base64::engine::general_purpose::STANDARD.encode(inner);
    let b = body(
        "apps/v1",
        "ControllerRevision",
        "k8s.io.api.apps.v1.ControllerRevision",
        json!({"metadata": {"name": "cr"}, "data": {"raw": inner}}),
    );
    assert_eq!(
        decode(&b).unwrap()["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    );
}

#[test]
fn every_group_resolves() {
    for (gv, kind) in [
        ("v1", "Pod"),
        ("v1", "ServiceAccount"),
        ("v1", "ResourceQuota"),
        ("v1", "PodList"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "CronJob"),
        ("autoscaling/v1", "HorizontalPodAutoscaler"),
        ("autoscaling/v1", "Scale"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("networking.k8s.io/v1", "Ingress"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("authentication.k8s.io/v1", "TokenRequest"),
    ] {
        assert!(is_supported(gv, kind), "{gv} {kind}");
    }
    for (gv, kind) in [
        ("v1", "PodSpec"),
        ("v1", "ObjectMeta"),
        ("apps/v1beta1", "Deployment"),
        ("v2", "Pod"),
        ("example.com/v1", "Foo"),
        ("", ""),
        ("v1", "core.v1.Pod"),
    ] {
        assert!(!is_supported(gv, kind), "{gv} {kind}");
    }
}

#[test]
fn errors_and_their_status_codes() {
    let err = decode(b"{\"kind\":\"Pod\"}").unwrap_err();
    assert!(
        matches!(err, ProtobufError::MissingMagic) && err.status_code() == 400,
        "{err:?}"
    );
    assert!(matches!(decode(b""), Err(ProtobufError::MissingMagic)));

    let unknown = body(
        "example.com/v1",
        "Foo",
        "k8s.io.api.core.v1.ConfigMap",
        json!({}),
    );
    let err = decode(&unknown).unwrap_err();
    assert!(
        matches!(err, ProtobufError::UnknownKind { .. }) && err.status_code() == 415,
        "{err:?}"
    );
    // The bare magic is an empty envelope: no TypeMeta, so no kind we know.
    assert_eq!(decode(b"k8s\0").unwrap_err().status_code(), 415);

    let gzip = envelope("v1", "ConfigMap", vec![], "gzip");
    let err = decode(&gzip).unwrap_err();
    assert!(
        matches!(err, ProtobufError::UnsupportedEncoding(_)) && err.status_code() == 415,
        "{err:?}"
    );

    let bad_raw = envelope("v1", "ConfigMap", vec![0x0a, 0x05, 0x0a], "");
    let err = decode(&bad_raw).unwrap_err();
    assert!(
        matches!(err, ProtobufError::Malformed(_)) && err.status_code() == 400,
        "{err:?}"
    );

    let bad_json = body(
        "apps/v1",
        "ControllerRevision",
        "k8s.io.api.apps.v1.ControllerRevision",
        json!({"data": {"raw": b64("{not json")}}),
    );
    assert!(matches!(
        decode(&bad_json),
        Err(ProtobufError::InvalidValue(_))
    ));
}

fn deployment_body() -> Vec<u8> {
    body(
        "apps/v1",
        "Deployment",
        "k8s.io.api.apps.v1.Deployment",
        json!({"metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": {"seconds": "5"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"spec": {"containers": [{"name": "c", "image": "i",
                            "resources": {"requests": {"cpu": {"string": "1"}}}}]}},
                        "strategy": {"rollingUpdate": {"maxSurge": {"type": 1, "strVal": "1"}}}}}),
    )
}

#[test]
fn truncated_bodies_are_errors() {
    let full = deployment_body();
    assert!(decode(&full).is_ok());
    // client-go ends the envelope with the empty `contentEncoding` and `contentType` (2 bytes
    // each), which are optional; any cut before them loses the object or part of it.
    assert!(full.ends_with(&[0x1a, 0, 0x22, 0]));
    for len in 0..full.len() - 4 {
        assert!(
            decode(&full[..len]).is_err(),
            "prefix of {len} bytes decoded"
        );
    }
}

#[test]
fn mutated_bodies_never_panic() {
    let full = deployment_body();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded = 0;
    for _ in 0..20_000 {
        let mut b = full.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % b.len() as u64) as usize;
            match next() % 4 {
                0 => b[at] ^= 1 << (next() % 8),
                1 => b[at] = next() as u8,
                2 => {
                    b.remove(at);
                }
                _ => b.insert(at, next() as u8),
            }
            if b.is_empty() {
                break;
            }
        }
        decoded += usize::from(decode(&b).is_ok());
    }
    // Some mutations (inside strings) still decode; most do not. Neither may panic.
    assert!(decoded > 0);
}

/// Bodies captured from `kubectl.1.33 create …` against a recording HTTP server (see
/// `tests/kubectl-1.33/README.md`). The expected JSON is what kubectl 1.31 sent for the same
/// commands (checked for deployment, job, service, quota, token), less `creationTimestamp: null`
/// and, for TokenRequest, `audiences: null`, `boundObjectRef: null`, `token: ""`,
/// `expirationTimestamp: null` (non-`omitempty` zero fields).
#[test]
fn real_kubectl_bodies() {
    let cases = [
        (
            "namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {}, "status": {}}),
        ),
        (
            "configmap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b", "e": ""}}),
        ),
        (
            "secret",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "data": {"password": "aHVudGVyMg=="}}),
        ),
        (
            "serviceaccount",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
        ),
        (
            "quota",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                         "spec": {"hard": {"pods": "10", "requests.cpu": "500m"}}, "status": {}}),
        ),
        (
            "token",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
                         "spec": {"expirationSeconds": 3600}, "status": {}}),
        ),
        (
            "service",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "labels": {"app": "svc"}},
                           "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                                    "selector": {"app": "svc"}, "type": "ClusterIP"},
                           "status": {"loadBalancer": {}}}),
        ),
        (
            "deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
                              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "strategy": {},
                                       "template": {"metadata": {"labels": {"app": "web"}},
                                                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                                             "ports": [{"containerPort": 80}], "resources": {}}]}}},
                              "status": {}}),
        ),
        (
            "job",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                       "spec": {"template": {"metadata": {},
                                             "spec": {"containers": [{"name": "j", "image": "busybox",
                                                                      "command": ["sh", "-c", "echo hi"], "resources": {}}],
                                                      "restartPolicy": "Never"}}},
                       "status": {}}),
        ),
    ];
    for (name, want) in cases {
        let path = format!(
            "{}/tests/kubectl-1.33/{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        assert_eq!(
            decode(&std::fs::read(path).unwrap()).unwrap(),
            want,
            "{name}"
        );
    }
}
