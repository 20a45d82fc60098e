//! Server-side apply scenarios with realistic Deployments, ConfigMaps and Services.
#![allow(clippy::unwrap_used)]

use gantry_apply::{
    ApplyError, Context, DeducedSchema, FieldSet, ManagedFields, Operation, Schema, apply,
    fields_of, managed_for_update, schema_for, update,
};
use serde_json::{Value, json};

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";
const T2: &str = "2025-01-01T00:02:00Z";

fn deployment_schema() -> impl Schema {
    schema_for("apps", "v1", "Deployment").unwrap()
}

fn cx<'a>(
    manager: &'a str,
    api_version: &'a str,
    schema: &'a dyn Schema,
    now: &'a str,
) -> Context<'a> {
    Context {
        manager,
        api_version,
        subresource: "",
        schema,
        now,
        reset: None,
    }
}

fn managed_of(object: &Value) -> ManagedFields {
    ManagedFields::from_object(object).unwrap()
}

fn fields(object: &Value, manager: &str, operation: Operation) -> String {
    managed_of(object)
        .get(manager, operation)
        .map(|e| e.fields.to_fields_v1_string())
        .unwrap_or_default()
}

fn deployment(replicas: i64, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "env": env,
                                         "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

/// The object as stored after a write: what the server adds (uid) is kept from `old`.
fn stored(mut object: Value) -> Value {
    object["metadata"]["uid"] = json!("6f2a1c1e-0000-4000-8000-000000000001");
    object
}

#[test]
fn apply_twice_removes_what_the_applier_dropped_and_keeps_what_others_own() {
    let schema = deployment_schema();
    let c0 = cx("kubectl", "apps/v1", &schema, T0);
    let v1 = deployment(
        2,
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    );
    let (created, managed) = apply(None, &v1, &ManagedFields::default(), false, &c0).unwrap();
    let created = stored(created);
    assert_eq!(managed.entries().len(), 1);
    let entry = &managed.entries()[0];
    assert_eq!(
        (
            entry.manager.as_str(),
            entry.operation,
            entry.api_version.as_str(),
            entry.time.as_deref()
        ),
        ("kubectl", Operation::Apply, "apps/v1", Some(T0))
    );
    assert_eq!(
        entry.fields.to_fields_v1_string(),
        r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:env":{"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"B\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
    );
    assert_eq!(entry.fields, fields_of(&v1, &schema));

    // Someone else adds a label and an env var with a PUT.
    let mut edited = created.clone();
    edited["metadata"]["labels"]["team"] = json!("payments");
    edited["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "C", "value": "3"}));
    let c1 = cx("kubectl-edit", "apps/v1", &schema, T1);
    let managed = update(
        Some(&created),
        &edited,
        &managed_for_update(Some(&created), &edited, false),
        &c1,
    );
    managed.write_to(&mut edited);
    assert_eq!(
        fields(&edited, "kubectl-edit", Operation::Update),
        r#"{"f:metadata":{"f:labels":{"f:team":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{"f:env":{"k:{\"name\":\"C\"}":{".":{},"f:name":{},"f:value":{}}}}}}}}}"#
    );

    // The applier drops B and changes the image.
    let mut v2 = deployment(2, json!([{"name": "A", "value": "1"}]));
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let c2 = cx("kubectl", "apps/v1", &schema, T2);
    let (after, managed) = apply(Some(&edited), &v2, &managed_of(&edited), false, &c2).unwrap();
    let container = &after["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.28");
    assert_eq!(
        container["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        after["metadata"]["labels"],
        json!({"app": "web", "team": "payments"})
    );
    assert_eq!(after["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(after["metadata"]["managedFields"], managed.to_value());
    let applier = managed.get("kubectl", Operation::Apply).unwrap();
    assert_eq!(applier.fields, fields_of(&v2, &schema));
    assert_eq!(applier.time.as_deref(), Some(T2));
    assert_eq!(
        managed
            .get("kubectl-edit", Operation::Update)
            .unwrap()
            .time
            .as_deref(),
        Some(T1)
    );
}

#[test]
fn conflicts_on_replicas_and_force_moves_ownership() {
    let schema = deployment_schema();
    let config = deployment(2, json!([]));
    let (live, _) = apply(
        None,
        &config,
        &ManagedFields::default(),
        false,
        &cx("alice", "apps/v1", &schema, T0),
    )
    .unwrap();
    let live = stored(live);

    let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                     "spec": {"replicas": 5}});
    let err = apply(
        Some(&live),
        &bob,
        &managed_of(&live),
        false,
        &cx("bob", "apps/v1", &schema, T1),
    )
    .unwrap_err();
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("conflicts expected")
    };
    assert_eq!(
        conflicts.message(),
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.replicas"#
    );
    assert_eq!(conflicts.causes()[0].field, ".spec.replicas");

    // The same value is no conflict: both own it.
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                      "spec": {"replicas": 2}});
    let (shared, managed) = apply(
        Some(&live),
        &same,
        &managed_of(&live),
        false,
        &cx("bob", "apps/v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(shared["spec"]["replicas"], 2);
    assert!(
        managed
            .get("alice", Operation::Apply)
            .unwrap()
            .fields
            .has(&replicas())
    );
    assert!(
        managed
            .get("bob", Operation::Apply)
            .unwrap()
            .fields
            .has(&replicas())
    );

    // Forced, ownership moves to bob.
    let (forced, managed) = apply(
        Some(&live),
        &bob,
        &managed_of(&live),
        true,
        &cx("bob", "apps/v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert!(
        !managed
            .get("alice", Operation::Apply)
            .unwrap()
            .fields
            .has(&replicas())
    );
    assert!(
        managed
            .get("bob", Operation::Apply)
            .unwrap()
            .fields
            .has(&replicas())
    );

    // Now alice conflicts with bob; and bob stopping to apply replicas leaves it (alice gave it up).
    let err = apply(
        Some(&forced),
        &config,
        &managed_of(&forced),
        false,
        &cx("alice", "apps/v1", &schema, T2),
    )
    .unwrap_err();
    assert!(
        matches!(err, ApplyError::Conflicts(c) if c.message().contains(r#"conflict with "bob": .spec.replicas"#))
    );
    let nothing = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"bob": "1"}}});
    let (after, _) = apply(
        Some(&forced),
        &nothing,
        &managed_of(&forced),
        false,
        &cx("bob", "apps/v1", &schema, T2),
    )
    .unwrap();
    assert!(
        after["spec"].get("replicas").is_none(),
        "nobody owns replicas any more"
    );
}

fn replicas() -> Vec<gantry_apply::PathElement> {
    vec![
        gantry_apply::PathElement::field("spec"),
        gantry_apply::PathElement::field("replicas"),
    ]
}

#[test]
fn conflict_with_an_updater_names_its_api_version() {
    let schema = deployment_schema();
    let live = stored(deployment(3, json!([])));
    let managed = update(
        None,
        &live,
        &ManagedFields::default(),
        &cx("kubectl-client-side-apply", "apps/v1", &schema, T0),
    );
    let mut live = live;
    managed.write_to(&mut live);
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 4}});
    let err = apply(
        Some(&live),
        &config,
        &managed,
        false,
        &cx("deployer", "apps/v1", &schema, T1),
    )
    .unwrap_err();
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("conflicts expected")
    };
    assert_eq!(
        conflicts.message(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let status = conflicts.to_api_error().to_status();
    assert_eq!(status["code"], 409);
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"})
    );
}

#[test]
fn update_after_a_put_moves_replicas_to_the_updater() {
    let schema = deployment_schema();
    let config = deployment(2, json!([]));
    let (live, managed) = apply(
        None,
        &config,
        &ManagedFields::default(),
        false,
        &cx("kubectl", "apps/v1", &schema, T0),
    )
    .unwrap();
    let live = stored(live);
    let mut put = live.clone();
    put["spec"]["replicas"] = json!(7);
    let after = update(
        Some(&live),
        &put,
        &managed,
        &cx("kube-controller-manager", "apps/v1", &schema, T1),
    );
    let hpa = after
        .get("kube-controller-manager", Operation::Update)
        .unwrap();
    assert_eq!(
        hpa.fields.to_fields_v1_string(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert_eq!(hpa.time.as_deref(), Some(T1));
    assert!(
        !after
            .get("kubectl", Operation::Apply)
            .unwrap()
            .fields
            .has(&replicas())
    );
    // Applies come first in the list.
    assert_eq!(after.entries()[0].operation, Operation::Apply);
    // A write that changes nothing records nothing.
    let again = update(
        Some(&put),
        &put,
        &after,
        &cx("someone", "apps/v1", &schema, T2),
    );
    assert_eq!(again, after);
}

#[test]
fn create_records_every_field_for_the_creator() {
    let schema = schema_for("", "v1", "ConfigMap").unwrap();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "settings", "namespace": "default", "labels": {"app": "web"},
                                 "uid": "u", "creationTimestamp": "2025-01-01T00:00:00Z"},
                    "data": {"a": "1", "b": "2"}});
    let managed = update(
        None,
        &cm,
        &ManagedFields::default(),
        &cx("kubectl-create", "v1", &schema, T0),
    );
    assert_eq!(
        managed.entries()[0].fields.to_fields_v1_string(),
        r#"{"f:data":{".":{},"f:a":{},"f:b":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}"#
    );
    // An existing object without managed fields is not tracked by updates.
    let untracked = update(
        Some(&cm),
        &cm,
        &ManagedFields::default(),
        &cx("x", "v1", &schema, T1),
    );
    assert!(untracked.is_empty());
}

#[test]
fn configmap_data_and_labels_are_granular() {
    let schema = schema_for("", "v1", "ConfigMap").unwrap();
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
                   "data": {"x": "1", "y": "2"}});
    let (live, _) = apply(
        None,
        &a,
        &ManagedFields::default(),
        false,
        &cx("a", "v1", &schema, T0),
    )
    .unwrap();
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"b": "2"}},
                   "data": {"z": "3"}});
    let (live, _) = apply(
        Some(&live),
        &b,
        &managed_of(&live),
        false,
        &cx("b", "v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(live["data"], json!({"x": "1", "y": "2", "z": "3"}));
    assert_eq!(live["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    // a stops applying y and its label: they go, b's stay.
    let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}});
    let (live, managed) = apply(
        Some(&live),
        &a2,
        &managed_of(&live),
        false,
        &cx("a", "v1", &schema, T2),
    )
    .unwrap();
    assert_eq!(live["data"], json!({"x": "1", "z": "3"}));
    assert_eq!(live["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(
        managed
            .get("a", Operation::Apply)
            .unwrap()
            .fields
            .to_fields_v1_string(),
        r#"{"f:data":{"f:x":{}}}"#
    );
}

#[test]
fn service_ports_merge_by_port_and_protocol_and_selectors_are_atomic() {
    let schema = schema_for("", "v1", "Service").unwrap();
    let svc = |ports: Value, selector: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": selector, "ports": ports}})
    };
    let first = svc(
        json!([{"name": "http", "port": 80, "targetPort": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
        json!({"app": "web", "tier": "front"}),
    );
    let (live, managed) = apply(
        None,
        &first,
        &ManagedFields::default(),
        false,
        &cx("a", "v1", &schema, T0),
    )
    .unwrap();
    assert_eq!(
        managed.entries()[0].fields.to_fields_v1_string(),
        r#"{"f:spec":{"f:ports":{"k:{\"port\":53,\"protocol\":\"UDP\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{}},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:targetPort":{}}},"f:selector":{}}}"#
    );
    // Another applier adds 53/TCP (a different item from 53/UDP) and its own selector: conflict, the
    // selector being one atomic value.
    let second = svc(
        json!([{"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
        json!({"app": "web"}),
    );
    let err = apply(
        Some(&live),
        &second,
        &managed,
        false,
        &cx("b", "v1", &schema, T1),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ApplyError::Conflicts(c) if c.len() == 1 && c.0[0].field() == ".spec.selector")
    );
    let (live, _) = apply(
        Some(&live),
        &second,
        &managed,
        true,
        &cx("b", "v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(live["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(
        live["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 8080},
               {"name": "dns", "port": 53, "protocol": "UDP"},
               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    );
}

#[test]
fn atomic_lists_are_replaced_whole() {
    let schema = deployment_schema();
    let with_args = |args: Value| {
        let mut d = deployment(1, json!([]));
        d["spec"]["template"]["spec"]["containers"][0]["args"] = args;
        d
    };
    let (live, managed) = apply(
        None,
        &with_args(json!(["--a", "--b"])),
        &ManagedFields::default(),
        false,
        &cx("a", "apps/v1", &schema, T0),
    )
    .unwrap();
    let (live, _) = apply(
        Some(&live),
        &with_args(json!(["--c"])),
        &managed,
        false,
        &cx("a", "apps/v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--c"])
    );
}

#[test]
fn client_side_apply_to_server_side_apply() {
    let schema = deployment_schema();
    // An object created by `kubectl apply` (client-side): last-applied annotation, Update entry.
    let config = deployment(2, json!([]));
    let mut annotated = config.clone();
    annotated["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": serde_json::to_string(&config).unwrap()
    });
    let live = stored(annotated);
    let managed = update(
        None,
        &live,
        &ManagedFields::default(),
        &cx("kubectl-client-side-apply", "apps/v1", &schema, T0),
    );
    let mut live = live;
    managed.write_to(&mut live);

    // `kubectl apply --server-side` with a new replica count: the conflict is excused, the annotation
    // follows the new configuration.
    let mut next = config.clone();
    next["spec"]["replicas"] = json!(3);
    let (after, managed) = apply(
        Some(&live),
        &next,
        &managed,
        false,
        &cx("kubectl", "apps/v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(after["spec"]["replicas"], 3);
    let annotation: Value = serde_json::from_str(
        after["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(annotation, next);
    assert!(
        managed
            .get("kubectl", Operation::Apply)
            .unwrap()
            .fields
            .has(&replicas())
    );
    assert!(
        !managed
            .get("kubectl-client-side-apply", Operation::Update)
            .unwrap()
            .fields
            .has(&replicas())
    );

    // A field changed since the last client-side apply is a real conflict; another manager name gets no
    // excuse at all.
    let mut drifted = live.clone();
    drifted["spec"]["replicas"] = json!(9);
    let drifted_managed = update(
        Some(&live),
        &drifted,
        &managed_of(&live),
        &cx("kubectl-client-side-apply", "apps/v1", &schema, T1),
    );
    drifted_managed.write_to(&mut drifted);
    let err = apply(
        Some(&drifted),
        &next,
        &drifted_managed,
        false,
        &cx("kubectl", "apps/v1", &schema, T2),
    )
    .unwrap_err();
    assert!(
        matches!(err, ApplyError::Conflicts(c) if c.0.iter().any(|c| c.field() == ".spec.replicas"))
    );
    let err = apply(
        Some(&live),
        &next,
        &managed_of(&live),
        false,
        &cx("argocd", "apps/v1", &schema, T2),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::Conflicts(_)));
}

#[test]
fn the_first_apply_to_an_untracked_object_meets_before_first_apply() {
    let schema = deployment_schema();
    let live = stored(deployment(2, json!([])));
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 3}});
    let err = apply(
        Some(&live),
        &config,
        &ManagedFields::default(),
        false,
        &cx("tool", "apps/v1", &schema, T1),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ApplyError::Conflicts(c) if c.message() == r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#),
        "{err}"
    );
    let (after, managed) = apply(
        Some(&live),
        &config,
        &ManagedFields::default(),
        true,
        &cx("tool", "apps/v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(after["spec"]["replicas"], 3);
    let before = managed
        .get("before-first-apply", Operation::Update)
        .unwrap();
    assert!(before.fields.has(&[
        gantry_apply::PathElement::field("spec"),
        gantry_apply::PathElement::field("selector")
    ]));
    assert!(!before.fields.has(&replicas()));
}

#[test]
fn reset_fields_and_bad_requests() {
    let schema = deployment_schema();
    let status = FieldSet::from_fields(&[&["status"]]);
    let mut c = cx("a", "apps/v1", &schema, T0);
    c.reset = Some(&status);
    let mut config = deployment(1, json!([]));
    config["status"] = json!({"replicas": 1});
    let (_, managed) = apply(None, &config, &ManagedFields::default(), false, &c).unwrap();
    assert!(
        managed.entries()[0]
            .fields
            .child(&gantry_apply::PathElement::field("status"))
            .is_none()
    );

    let mut with_managed = config.clone();
    with_managed["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(None, &with_managed, &ManagedFields::default(), false, &c),
        Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into()
        ))
    );
    assert_eq!(
        apply(None, &config, &ManagedFields::default(), false, &cx("a", "apps/v1beta1", &schema, T0)),
        Err(ApplyError::BadRequest(
            "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: apps/v1beta1".into()
        ))
    );
    let mut unknown = config.clone();
    unknown["spec"]["bogus"] = json!(true);
    assert_eq!(
        apply(None, &unknown, &ManagedFields::default(), false, &c),
        Err(ApplyError::Invalid(
            ".spec.bogus: field not declared in schema".into()
        ))
    );
}

#[test]
fn nulls_unset_fields_and_objects_without_schema_are_deduced() {
    let schema = DeducedSchema;
    let widget = |spec: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    let (live, managed) = apply(
        None,
        &widget(json!({"size": 3, "tags": ["a"], "nested": {"x": 1}})),
        &ManagedFields::default(),
        false,
        &cx("a", "example.com/v1", &schema, T0),
    )
    .unwrap();
    assert_eq!(
        managed.entries()[0].fields.to_fields_v1_string(),
        r#"{"f:spec":{".":{},"f:nested":{".":{},"f:x":{}},"f:size":{},"f:tags":{}}}"#
    );
    let (live, _) = apply(
        Some(&live),
        &widget(json!({"size": null, "tags": ["b"], "nested": {"x": 1}})),
        &managed,
        false,
        &cx("a", "example.com/v1", &schema, T1),
    )
    .unwrap();
    assert_eq!(live["spec"], json!({"tags": ["b"], "nested": {"x": 1}}));
}

#[test]
fn update_managers_are_capped_at_ten() {
    let schema = schema_for("", "v1", "ConfigMap").unwrap();
    let mut live = stored(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}),
    );
    let mut managed = update(
        None,
        &live,
        &ManagedFields::default(),
        &cx("creator", "v1", &schema, T0),
    );
    for i in 0..12 {
        let mut next = live.clone();
        next["data"][format!("k{i}")] = json!("v");
        let now = format!("2025-01-01T01:{i:02}:00Z");
        let manager = format!("m{i:02}");
        managed = update(
            Some(&live),
            &next,
            &managed,
            &cx(&manager, "v1", &schema, &now),
        );
        managed.write_to(&mut next);
        live = next;
    }
    let names: Vec<&str> = managed
        .entries()
        .iter()
        .map(|e| e.manager.as_str())
        .collect();
    assert_eq!(managed.entries().len(), 10, "{names:?}");
    let ancient = managed.get("ancient-changes", Operation::Update).unwrap();
    assert!(ancient.fields.has(&[
        gantry_apply::PathElement::field("data"),
        gantry_apply::PathElement::field("k0")
    ]));
    assert_eq!(ManagedFields::from_object(&live).unwrap(), managed);
}

/// A deterministic generator of JSON configurations for a no-panic loop.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len() as u64) as usize]
    }

    fn value(&mut self, depth: u32) -> Value {
        const KEYS: &[&str] = &[
            "spec",
            "replicas",
            "template",
            "metadata",
            "labels",
            "containers",
            "name",
            "image",
            "ports",
            "containerPort",
            "protocol",
            "env",
            "value",
            "selector",
            "matchLabels",
            "args",
            "data",
            "x",
            "finalizers",
            "annotations",
            "status",
            "strategy",
            "type",
        ];
        match self.below(if depth == 0 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.below(100)),
            2 => json!(self.pick(&["a", "web", "TCP", "UDP", ""])),
            3 => json!(self.below(2) == 0),
            4 => json!(self.below(1000) as f64 / 7.0),
            5 | 6 => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    let key = self.pick(KEYS).to_owned();
                    map.insert(key, self.value(depth - 1));
                }
                Value::Object(map)
            }
            _ => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
        }
    }
}

#[test]
fn arbitrary_configurations_never_panic() {
    let deployment = deployment_schema();
    let schemas: [&dyn Schema; 2] = [&deployment, &DeducedSchema];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut applied = 0;
    for round in 0..3000 {
        let schema = schemas[round % 2];
        let mut config = rng.value(5);
        if rng.below(3) > 0
            && let Value::Object(map) = &mut config
        {
            map.insert("apiVersion".into(), json!("apps/v1"));
            map.insert("kind".into(), json!("Deployment"));
        }
        let mut live = rng.value(5);
        if !live.is_object() {
            live = json!({});
        }
        let managed = ManagedFields::from_object(&live).unwrap_or_default();
        let manager = rng.pick(&["a", "b", "kubectl"]);
        let c = cx(manager, "apps/v1", schema, T0);
        match apply(Some(&live), &config, &managed, rng.below(2) == 0, &c) {
            Ok((object, managed)) => {
                applied += 1;
                assert_eq!(ManagedFields::from_object(&object).unwrap(), managed);
                let again = apply(Some(&object), &config, &managed, false, &c);
                assert_eq!(
                    again,
                    Ok((object.clone(), managed.clone())),
                    "re-applying {config} to {live} is not idempotent"
                );
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        let updated = update(Some(&live), &config, &managed, &c);
        let _ = updated.to_value();
        let _ = fields_of(&config, schema);
    }
    assert!(applied > 100, "only {applied} applies succeeded");
}

#[test]
fn the_server_side_apply_docs_example() {
    // kubernetes.io "Server-Side Apply": a ConfigMap applied by kubectl, then changed by an Update from
    // kube-controller-manager, which takes `data.key` over.
    let schema = schema_for("", "v1", "ConfigMap").unwrap();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
                        "data": {"key": "some value"}});
    let (live, managed) = apply(
        None,
        &config,
        &ManagedFields::default(),
        false,
        &cx("kubectl", "v1", &schema, T0),
    )
    .unwrap();
    assert_eq!(
        managed.to_value(),
        json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}}}])
    );
    assert_eq!(
        managed.entries()[0].fields.to_fields_v1_string(),
        r#"{"f:data":{"f:key":{}},"f:metadata":{"f:labels":{"f:test-label":{}}}}"#
    );
    let live = stored(live);
    let mut changed = live.clone();
    changed["data"]["key"] = json!("new value");
    let managed = update(
        Some(&live),
        &changed,
        &managed,
        &cx("kube-controller-manager", "v1", &schema, T1),
    );
    assert_eq!(
        managed.to_value(),
        json!([
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:test-label": {}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": T1,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:key": {}}}}
        ])
    );
    // Had that been an apply, it would have conflicted.
    let mut mine = config.clone();
    mine["data"]["key"] = json!("new value");
    let err = apply(
        Some(&live),
        &mine,
        &managed_of(&live),
        false,
        &cx("kube-controller-manager", "v1", &schema, T1),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl": .data.key"#
    );
}

#[test]
fn shared_fields_survive_when_one_applier_drops_them() {
    let schema = schema_for("", "v1", "ConfigMap").unwrap();
    let cm = |data: Value, finalizers: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "finalizers": finalizers}, "data": data})
    };
    let (live, managed) = apply(
        None,
        &cm(json!({"x": "1", "y": "2"}), json!(["a.io/one", "a.io/two"])),
        &ManagedFields::default(),
        false,
        &cx("a", "v1", &schema, T0),
    )
    .unwrap();
    // b applies x with the same value: both own it.
    let (live, managed) = apply(
        Some(&live),
        &cm(json!({"x": "1"}), json!([])),
        &managed,
        false,
        &cx("b", "v1", &schema, T1),
    )
    .unwrap();
    // a drops x, y and one finalizer: y and the finalizer go, x stays (b owns it).
    let (live, managed) = apply(
        Some(&live),
        &cm(json!({}), json!(["a.io/one"])),
        &managed,
        false,
        &cx("a", "v1", &schema, T2),
    )
    .unwrap();
    assert_eq!(live["data"], json!({"x": "1"}));
    assert_eq!(live["metadata"]["finalizers"], json!(["a.io/one"]));
    assert_eq!(
        managed
            .get("a", Operation::Apply)
            .unwrap()
            .fields
            .to_fields_v1_string(),
        // `data: {}` is owned as such, as upstream owns empty maps.
        r#"{"f:data":{},"f:metadata":{"f:finalizers":{"v:\"a.io/one\"":{}}}}"#
    );
    assert_eq!(
        managed
            .get("b", Operation::Apply)
            .unwrap()
            .fields
            .to_fields_v1_string(),
        r#"{"f:data":{"f:x":{}}}"#
    );
}

#[test]
fn chains_of_arbitrary_applies_and_updates_keep_their_invariants() {
    let typed = deployment_schema();
    let schemas: [&dyn Schema; 2] = [&typed, &DeducedSchema];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut applied, mut conflicted) = (0, 0);
    for chain in 0..200 {
        let schema = schemas[chain % 2];
        let mut object = stored(deployment(1, json!([])));
        for step in 0..15 {
            let now = format!("2025-01-01T00:{step:02}:00Z");
            let manager = rng.pick(&["a", "b", "kubectl", "kubectl-edit"]);
            let c = cx(manager, "apps/v1", schema, &now);
            let managed = managed_of(&object);
            if rng.below(3) == 0 {
                let mut next = object.clone();
                if let (Value::Object(target), Value::Object(extra)) = (&mut next, rng.value(4)) {
                    for (k, v) in extra {
                        if k != "metadata" {
                            target.insert(k, v);
                        }
                    }
                }
                let managed = update(Some(&object), &next, &managed, &c);
                managed.write_to(&mut next);
                object = next;
                continue;
            }
            let mut config =
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
            if let Value::Object(extra) = rng.value(5) {
                for (k, v) in extra {
                    if k != "metadata" && k != "apiVersion" {
                        config[k] = v;
                    }
                }
            }
            match apply(Some(&object), &config, &managed, rng.below(2) == 0, &c) {
                Ok((next, managed)) => {
                    let mine = managed.get(manager, Operation::Apply);
                    let expected = fields_of(&config, schema);
                    assert_eq!(
                        mine.map(|e| e.fields.clone()).unwrap_or_default(),
                        expected,
                        "{config}"
                    );
                    assert_eq!(ManagedFields::from_object(&next).unwrap(), managed);
                    object = next;
                    applied += 1;
                }
                Err(ApplyError::Conflicts(conflicts)) => {
                    assert!(!conflicts.is_empty());
                    conflicted += 1;
                }
                Err(_) => {}
            }
        }
    }
    assert!(
        applied > 300 && conflicted > 5,
        "applied {applied}, conflicted {conflicted}"
    );
}

/// A custom resource's schema (a list map keyed by `name`), compiled at run time; `metadata` is `ObjectMeta`.
#[test]
fn compiled_schemas_merge_list_maps_of_custom_resources() {
    use gantry_openapi::StructuralSchema;
    let typed = |t: &str| StructuralSchema {
        types: vec![t.to_owned()],
        ..Default::default()
    };
    let item = StructuralSchema {
        types: vec!["object".into()],
        properties: [
            ("name".into(), typed("string")),
            ("port".into(), typed("integer")),
        ]
        .into(),
        ..Default::default()
    };
    let spec = StructuralSchema {
        types: vec!["object".into()],
        properties: [(
            "endpoints".into(),
            StructuralSchema {
                types: vec!["array".into()],
                items: Some(Box::new(item)),
                list_type: Some("map".into()),
                list_map_keys: vec!["name".into()],
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let root = StructuralSchema {
        types: vec!["object".into()],
        properties: [("spec".into(), spec)].into(),
        ..Default::default()
    };
    let schema = gantry_apply::CompiledSchema::compile(&root);
    let widget = |endpoints: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}}, "spec": {"endpoints": endpoints}})
    };
    let (live, managed) = apply(
        None,
        &widget(json!([{"name": "a", "port": 1}])),
        &ManagedFields::default(),
        false,
        &cx("one", "example.com/v1", &schema, T0),
    )
    .unwrap();
    let (live, managed) = apply(
        Some(&live),
        &widget(json!([{"name": "b", "port": 2}])),
        &managed,
        false,
        &cx("two", "example.com/v1", &schema, T1),
    )
    .unwrap();
    // Keyed by name: both entries stay, each owned by its applier.
    assert_eq!(
        live["spec"]["endpoints"],
        json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    );
    let two = managed.get("two", Operation::Apply).unwrap();
    assert!(
        two.fields
            .to_fields_v1_string()
            .contains(r#"k:{\"name\":\"b\"}"#)
    );
    let one = managed.get("one", Operation::Apply).unwrap();
    assert!(one.fields.to_fields_v1_string().contains(r#""f:labels""#));
}
