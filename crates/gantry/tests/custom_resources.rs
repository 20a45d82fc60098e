//! End to end: CustomResourceDefinitions with real kubectl 1.27, 1.30 and 1.33 — a CRD with two versions,
//! status and scale subresources and printer columns; custom resources created, listed with their columns,
//! read in either version, validated, defaulted and pruned by the schema, patched through `/status`, scaled,
//! selected by label, watched, applied server-side; a cluster-scoped CRD; deleting a CRD deletes its objects.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::{Server, kubectl, ok, write};

const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.30", "1.33"];

/// A namespaced CRD in `group`, short name `short`: `v1` (stored) and `v1beta1`, both served.
fn widgets_crd(group: &str, short: &str) -> String {
    let version = |name: &str, storage: bool| {
        format!(
            r#"  - name: {name}
    served: true
    storage: {storage}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            properties:
              color: {{type: string, enum: [red, blue]}}
              size: {{type: integer, maximum: 10, default: 1}}
              replicas: {{type: integer, minimum: 0}}
              extra: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {{type: string}}
                    port: {{type: integer}}
          status:
            type: object
            properties:
              replicas: {{type: integer}}
              phase: {{type: string}}
    subresources:
      status: {{}}
      scale: {{specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
    selectableFields: [{{jsonPath: .spec.color}}]
    additionalPrinterColumns:
    - {{name: Color, type: string, jsonPath: .spec.color}}
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    - {{name: Phase, type: string, jsonPath: .status.phase}}
"#
        )
    };
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\n\
         spec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    \
         kind: Widget\n    shortNames: [{short}]\n  versions:\n{}{}",
        version("v1", true),
        version("v1beta1", false)
    )
}

fn widget(group: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\n  labels: {{app: demo}}\nspec: {spec}\n"
    )
}

fn get_json(version: &str, server: &Server, ns: &str, what: &str) -> Value {
    serde_json::from_str(&ok(version, server, &["get", what, "-n", ns, "-o", "json"])).unwrap()
}

/// Runs kubectl expecting failure; returns its stderr.
fn fails(version: &str, server: &Server, args: &[&str]) -> String {
    let out = kubectl(version, server, args);
    assert!(
        !out.status.success(),
        "kubectl {version} {args:?} succeeded"
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn custom_resources_work_like_built_in_ones() {
    let server = Server::start();
    let dir = server.dir.path();
    for version in KUBECTL_VERSIONS {
        let tag = version.replace('.', "");
        let group = format!("v{tag}.example.com");
        let crd = format!("widgets.{group}");
        let widgets = format!("widgets.{group}");
        let ns = format!("crs-{tag}");
        ok(version, &server, &["create", "namespace", &ns]);
        let file = |name: &str, text: &str| {
            write(dir, &format!("{tag}-{name}.yaml"), text)
                .to_string_lossy()
                .into_owned()
        };
        let crd_file = file("crd", &widgets_crd(&group, &format!("wd{tag}")));
        ok(version, &server, &["apply", "-f", &crd_file]);
        ok(
            version,
            &server,
            &[
                "wait",
                "--for=condition=established",
                "--timeout=10s",
                &format!("crd/{crd}"),
            ],
        );

        // Created with its default size; listed with the printer columns, by name and short name.
        let w1 = file("w1", &widget(&group, "w1", "{color: red, replicas: 2}"));
        ok(version, &server, &["apply", "-f", &w1, "-n", &ns]);
        let table = ok(version, &server, &["get", &widgets, "-n", &ns]);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["NAME", "COLOR", "SIZE", "PHASE"], "{table}");
        assert_eq!(lines[1], ["w1", "red", "1"], "{table}");
        let short = ok(
            version,
            &server,
            &["get", &format!("wd{tag}"), "-n", &ns, "-o", "name"],
        );
        assert_eq!(short.trim(), format!("widget.{group}/w1"));
        // Each served version reads the same object, labelled with the version asked for.
        let beta = get_json(
            version,
            &server,
            &ns,
            &format!("widgets.v1beta1.{group}/w1"),
        );
        assert_eq!(beta["apiVersion"], format!("{group}/v1beta1"));
        assert_eq!(beta["spec"]["size"], 1);
        assert_eq!(beta["metadata"]["generation"], 1);

        // The status subresource changes only the status; the main resource cannot change it.
        ok(
            version,
            &server,
            &[
                "patch",
                &widgets,
                "w1",
                "-n",
                &ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"replicas":2,"phase":"Ready"}}"#,
            ],
        );
        ok(
            version,
            &server,
            &[
                "patch",
                &widgets,
                "w1",
                "-n",
                &ns,
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Hacked"},"spec":{"color":"blue"}}"#,
            ],
        );
        let w = get_json(version, &server, &ns, &format!("{widgets}/w1"));
        assert_eq!(w["status"]["phase"], "Ready");
        assert_eq!(w["spec"]["color"], "blue");
        assert_eq!(w["metadata"]["generation"], 2);
        let table = ok(version, &server, &["get", &widgets, "w1", "-n", &ns]);
        assert!(table.lines().nth(1).unwrap().ends_with("Ready"), "{table}");

        // The scale subresource reads and writes the paths the CRD names.
        ok(
            version,
            &server,
            &["scale", &widgets, "w1", "-n", &ns, "--replicas=4"],
        );
        let scale: Value = serde_json::from_str(&ok(
            version,
            &server,
            &[
                "get",
                "--raw",
                &format!("/apis/{group}/v1/namespaces/{ns}/widgets/w1/scale"),
            ],
        ))
        .unwrap();
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["spec"]["replicas"], 4);
        assert_eq!(scale["status"]["replicas"], 2);
        let w = get_json(version, &server, &ns, &format!("{widgets}/w1"));
        assert_eq!(w["spec"]["replicas"], 4);

        // The schema refuses bad values, and nothing is stored.
        let pink = file("pink", &widget(&group, "w2", "{color: pink}"));
        let err = fails(version, &server, &["apply", "-f", &pink, "-n", &ns]);
        assert!(
            err.contains(r#"spec.color: Unsupported value: "pink""#),
            "{err}"
        );
        let big = file("big", &widget(&group, "w2", "{color: red, size: 11}"));
        let err = fails(version, &server, &["apply", "-f", &big, "-n", &ns]);
        assert!(err.contains("spec.size"), "{err}");
        assert!(err.contains("less than or equal to 10"), "{err}");
        let missing = file("missing", &widget(&group, "w2", "{size: 2}"));
        let err = fails(version, &server, &["create", "-f", &missing, "-n", &ns]);
        assert!(err.contains("spec.color: Required value"), "{err}");
        let err = fails(version, &server, &["get", &widgets, "w2", "-n", &ns]);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{err}"
        );

        // Unknown fields: refused by kubectl's strict validation, pruned without it; kept where the schema
        // preserves them.
        let bogus = file(
            "bogus",
            &widget(
                &group,
                "w3",
                "{color: red, bogus: 1, extra: {any: {thing: [1, 2]}}}",
            ),
        );
        let err = fails(version, &server, &["apply", "-f", &bogus, "-n", &ns]);
        assert!(err.contains(r#"unknown field "spec.bogus""#), "{err}");
        ok(
            version,
            &server,
            &["apply", "-f", &bogus, "-n", &ns, "--validate=false"],
        );
        let w3 = get_json(version, &server, &ns, &format!("{widgets}/w3"));
        assert!(w3["spec"].get("bogus").is_none(), "{w3}");
        assert_eq!(
            w3["spec"]["extra"]["any"]["thing"],
            serde_json::json!([1, 2])
        );

        // Label selectors.
        ok(
            version,
            &server,
            &[
                "label",
                &widgets,
                "w3",
                "-n",
                &ns,
                "app=other",
                "--overwrite",
            ],
        );
        let selected = ok(
            version,
            &server,
            &["get", &widgets, "-n", &ns, "-l", "app=demo", "-o", "name"],
        );
        assert_eq!(selected.trim(), format!("widget.{group}/w1"));

        // Field selectors: name, namespace and the CRD's selectable fields.
        let blue = ok(
            version,
            &server,
            &[
                "get",
                &widgets,
                "-n",
                &ns,
                "--field-selector",
                "spec.color=blue",
                "-o",
                "name",
            ],
        );
        assert_eq!(blue.trim(), format!("widget.{group}/w1"));
        let err = fails(
            version,
            &server,
            &[
                "get",
                &widgets,
                "-n",
                &ns,
                "--field-selector",
                "spec.size=1",
            ],
        );
        assert!(
            err.contains("field label not supported: spec.size"),
            "{err}"
        );

        // Server-side apply merges the list map by key between two managers.
        let ssa = |name: &str, manager: &str, ports: &str| {
            let path = file(
                name,
                &widget(&group, "w4", &format!("{{color: red, ports: [{ports}]}}")),
            );
            ok(
                version,
                &server,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    manager,
                    "-f",
                    &path,
                    "-n",
                    &ns,
                ],
            );
        };
        ssa("ssa-a", "alice", "{name: http, port: 80}");
        ssa("ssa-b", "bob", "{name: https, port: 443}");
        ssa("ssa-a2", "alice", "{name: http, port: 8080}");
        let w4 = get_json(version, &server, &ns, &format!("{widgets}/w4"));
        assert_eq!(
            w4["spec"]["ports"],
            serde_json::json!([{"name": "http", "port": 8080}, {"name": "https", "port": 443}])
        );

        // explain reads the CRD's schema.
        let explained = ok(
            version,
            &server,
            &["explain", &format!("{widgets}.spec.size")],
        );
        assert!(explained.contains("integer"), "{explained}");

        // Deleting the CRD deletes its objects, and the resource goes away.
        ok(version, &server, &["delete", "crd", &crd]);
        let err = fails(version, &server, &["get", &widgets, "-n", &ns]);
        assert!(err.contains("doesn't have a resource type"), "{err}");
        ok(version, &server, &["apply", "-f", &crd_file]);
        ok(
            version,
            &server,
            &[
                "wait",
                "--for=condition=established",
                "--timeout=10s",
                &format!("crd/{crd}"),
            ],
        );
        let left = ok(
            version,
            &server,
            &["get", &widgets, "-n", &ns, "-o", "name"],
        );
        assert_eq!(left.trim(), "", "objects survived their CRD");
    }
}

#[test]
fn cluster_scoped_custom_resources_watches_and_namespace_deletion() {
    let server = Server::start();
    let dir = server.dir.path();
    let version = "1.33";
    let gadgets = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.org\n\
        spec:\n  group: example.org\n  scope: Cluster\n  names: {plural: gadgets, kind: Gadget}\n  versions:\n  - name: v1\n    \
        served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
    let gadgets = write(dir, "gadgets.yaml", gadgets);
    ok(
        version,
        &server,
        &["apply", "-f", gadgets.to_str().unwrap()],
    );
    let widgets_file = write(dir, "widgets.yaml", &widgets_crd("example.net", "wdnet"));
    ok(
        version,
        &server,
        &["apply", "-f", widgets_file.to_str().unwrap()],
    );
    for crd in ["gadgets.example.org", "widgets.example.net"] {
        ok(
            version,
            &server,
            &[
                "wait",
                "--for=condition=established",
                "--timeout=10s",
                &format!("crd/{crd}"),
            ],
        );
    }
    let g = write(
        dir,
        "g.yaml",
        "apiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: g1}\nanything: [goes, here]\n",
    );
    ok(version, &server, &["create", "-f", g.to_str().unwrap()]);
    let g1: Value = serde_json::from_str(&ok(
        version,
        &server,
        &["get", "gadgets", "g1", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(g1["anything"], serde_json::json!(["goes", "here"]));
    assert!(g1["metadata"].get("namespace").is_none());
    let table = ok(version, &server, &["get", "gadgets"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("AGE"), "{table}");

    // A watch from a resourceVersion sees the objects created after it.
    ok(version, &server, &["create", "namespace", "watched"]);
    let list: Value = serde_json::from_str(&ok(
        version,
        &server,
        &[
            "get",
            "--raw",
            "/apis/example.net/v1/namespaces/watched/widgets",
        ],
    ))
    .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for name in ["a", "b"] {
        let path = write(
            dir,
            &format!("{name}.yaml"),
            &widget("example.net", name, "{color: red}"),
        );
        ok(
            version,
            &server,
            &["create", "-f", path.to_str().unwrap(), "-n", "watched"],
        );
    }
    let events = ok(
        version,
        &server,
        &[
            "get",
            "--raw",
            &format!(
                "/apis/example.net/v1/namespaces/watched/widgets?watch=1&resourceVersion={rv}&timeoutSeconds=1"
            ),
        ],
    );
    let names: Vec<String> = events
        .lines()
        .map(|l| {
            let event: Value = serde_json::from_str(l).unwrap();
            assert_eq!(event["type"], "ADDED");
            event["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["a", "b"]);

    // Deleting the namespace deletes its custom resources.
    ok(
        version,
        &server,
        &["delete", "namespace", "watched", "--timeout=30s"],
    );
    let left = ok(
        version,
        &server,
        &["get", "widgets.example.net", "-A", "-o", "name"],
    );
    assert_eq!(left.trim(), "");
}

#[test]
fn bad_crds_are_refused_and_nothing_is_stored() {
    let server = Server::start();
    let dir = server.dir.path();
    let crd = |name: &str, schema: &str, storage_twice: bool| {
        let second = if storage_twice {
            format!(
                "  - name: v2\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n{schema}"
            )
        } else {
            String::new()
        };
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\nspec:\n  \
             group: example.com\n  scope: Namespaced\n  names: {{plural: bads, kind: Bad}}\n  versions:\n  - name: v1\n    \
             served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n{schema}{second}"
        )
    };
    let structural = "        type: object\n        properties:\n          spec: {type: object}\n";
    let untyped = "        type: object\n        properties:\n          spec:\n            properties:\n              size: {type: integer}\n";
    for version in KUBECTL_VERSIONS {
        for (name, text, expected) in [
            (
                "untyped",
                crd("bads.example.com", untyped, false),
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ),
            (
                "misnamed",
                crd("wrong.example.com", structural, false),
                r#"metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group"#,
            ),
            (
                "two-storage",
                crd("bads.example.com", structural, true),
                "must have exactly one version marked as storage version",
            ),
        ] {
            let path = write(dir, &format!("{name}.yaml"), &text);
            let err = fails(version, &server, &["apply", "-f", path.to_str().unwrap()]);
            assert!(err.contains("is invalid"), "{name}: {err}");
            assert!(err.contains(expected), "{name}: {err}");
        }
        let crds = ok(version, &server, &["get", "crds", "-o", "name"]);
        assert_eq!(crds.trim(), "", "a refused CRD was stored");
        let err = fails(version, &server, &["get", "bads.example.com"]);
        assert!(err.contains("doesn't have a resource type"), "{err}");
    }
}
