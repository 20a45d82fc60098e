//! `/openapi/v3/<group-version>` documents: upstream's shape, with the schemas the group-version's kinds reach
//! and, per resource, the REST operations kubectl looks at (explain finds the kind through a path's
//! `x-kubernetes-group-version-kind`; apply trusts the server's field validation when the PATCH operation lists
//! a `fieldValidation` query parameter, and takes strategic-merge-patch metadata from the schemas when the
//! PATCH operation accepts `application/strategic-merge-patch+json`).

use gantry_api::registry::{RESOURCES, ResourceType, Subresource};
use serde_json::{Map, Value, json};

use crate::convert::{Definitions, Form};

/// Definitions every group-version document carries (upstream's carry them for its operations).
pub(crate) const META: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
];

const PATCH: &str = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status";

/// The URL path of a group-version under `/openapi/v3/` (`api/v1`, `apis/apps/v1`).
pub(crate) fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document of `group`/`version`, `None` if no resource is served there.
pub(crate) fn document(defs: &Definitions, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    document_of(defs, group, version, &resources)
}

/// The document of `resources`, all of `group`/`version`, their schemas found in `defs`.
pub(crate) fn document_of(
    defs: &Definitions,
    group: &str,
    version: &str,
    resources: &[&ResourceType],
) -> Option<Value> {
    if resources.is_empty() {
        return None;
    }
    let mut roots: Vec<&str> = META.to_vec();
    for r in resources {
        roots.extend(defs.name_of(r.group, r.version, r.kind));
        roots.extend(defs.name_of(r.group, r.version, &format!("{}List", r.kind)));
        for s in r.subresources {
            roots.extend(defs.name_of(s.group, s.version, s.kind));
        }
    }
    let schemas: Map<String, Value> = defs
        .closure(roots)
        .into_iter()
        .filter_map(|name| Some((name.to_string(), defs.converted(name, Form::V3)?)))
        .collect();
    let tag = format!(
        "{}_{version}",
        if group.is_empty() {
            "core".to_string()
        } else {
            camel(group).to_lowercase()
        }
    );
    let mut paths = Map::new();
    for r in resources {
        resource_paths(defs, r, &tag, &mut paths);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey"}
            }
        },
        "security": [{"BearerToken": []}],
    }))
}

/// A kind and where its schema is (if vendored).
struct Target<'a> {
    gvk: Value,
    kind: &'a str,
    schema: Option<String>,
}

impl Target<'_> {
    fn content(&self) -> Value {
        match &self.schema {
            Some(name) => {
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}})
            }
            None => json!({"application/json": {}}),
        }
    }
}

fn target<'a>(defs: &Definitions, group: &str, version: &str, kind: &'a str) -> Target<'a> {
    Target {
        gvk: json!({"group": group, "version": version, "kind": kind}),
        kind,
        schema: defs.name_of(group, version, kind).map(str::to_string),
    }
}

/// The paths of one resource: its collection (and, for namespaced resources, the all-namespaces list), the
/// object, and the subresources with a body (status, scale, eviction, binding, token).
fn resource_paths(defs: &Definitions, r: &ResourceType, tag: &str, paths: &mut Map<String, Value>) {
    let prefix = format!("/{}", path_of(r.group, r.version));
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let id = |verb: &str, suffix: &str| {
        format!(
            "{verb}{}{}{scope}{}{suffix}",
            if r.group.is_empty() {
                "Core".to_string()
            } else {
                camel(r.group)
            },
            capitalize(r.version),
            r.kind
        )
    };
    let own = target(defs, r.group, r.version, r.kind);
    let list_kind = format!("{}List", r.kind);
    let list = target(defs, r.group, r.version, &list_kind);
    let base = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let scoped = |extra: &[Value]| {
        let mut parameters = Vec::new();
        parameters.extend_from_slice(extra);
        if r.namespaced {
            parameters.push(path_parameter("namespace"));
        }
        parameters.push(query("pretty", "string"));
        Value::Array(parameters)
    };
    let list_parameters = || {
        Value::Array(
            [
                ("allowWatchBookmarks", "boolean"),
                ("continue", "string"),
                ("fieldSelector", "string"),
                ("labelSelector", "string"),
                ("limit", "integer"),
                ("resourceVersion", "string"),
                ("resourceVersionMatch", "string"),
                ("sendInitialEvents", "boolean"),
                ("timeoutSeconds", "integer"),
                ("watch", "boolean"),
            ]
            .iter()
            .map(|(name, kind)| query(name, kind))
            .collect(),
        )
    };
    if r.namespaced {
        paths.insert(
            format!("{prefix}/{}", r.plural),
            json!({
                "get": operation("list", id("list", "ForAllNamespaces"), &list, tag, Value::Null, None),
                "parameters": list_parameters(),
            }),
        );
    }
    let mut collection = Map::new();
    collection.insert(
        "get".into(),
        operation("list", id("list", ""), &list, tag, list_parameters(), None),
    );
    collection.insert(
        "post".into(),
        operation(
            "post",
            id("create", ""),
            &own,
            tag,
            write_parameters(false),
            Some(own.content()),
        ),
    );
    collection.insert(
        "delete".into(),
        operation(
            "deletecollection",
            id("deletecollection", ""),
            &own,
            tag,
            Value::Null,
            None,
        ),
    );
    collection.insert("parameters".into(), scoped(&[]));
    paths.insert(base.clone(), Value::Object(collection));
    let name = [path_parameter("name")];
    let object = json!({
        "get": operation("get", id("read", ""), &own, tag, Value::Null, None),
        "put": operation("put", id("replace", ""), &own, tag, write_parameters(false), Some(own.content())),
        "patch": operation("patch", id("patch", ""), &own, tag, write_parameters(true), Some(patch_content())),
        "delete": operation("delete", id("delete", ""), &own, tag, Value::Null, None),
        "parameters": scoped(&name),
    });
    paths.insert(format!("{base}/{{name}}"), object);
    for s in r.subresources {
        let Some(mut item) = subresource_item(defs, s, tag, &id) else {
            continue;
        };
        item.insert("parameters".into(), scoped(&name));
        paths.insert(format!("{base}/{{name}}/{}", s.name), Value::Object(item));
    }
}

fn subresource_item(
    defs: &Definitions,
    s: &Subresource,
    tag: &str,
    id: &dyn Fn(&str, &str) -> String,
) -> Option<Map<String, Value>> {
    let t = target(defs, s.group, s.version, s.kind);
    let suffix = capitalize(s.name);
    let mut item = Map::new();
    match s.name {
        "status" | "scale" => {
            item.insert(
                "get".into(),
                operation("get", id("read", &suffix), &t, tag, Value::Null, None),
            );
            item.insert(
                "put".into(),
                operation(
                    "put",
                    id("replace", &suffix),
                    &t,
                    tag,
                    write_parameters(false),
                    Some(t.content()),
                ),
            );
            item.insert(
                "patch".into(),
                operation(
                    "patch",
                    id("patch", &suffix),
                    &t,
                    tag,
                    write_parameters(true),
                    Some(patch_content()),
                ),
            );
        }
        "eviction" | "binding" | "token" if t.schema.is_some() => {
            item.insert(
                "post".into(),
                operation(
                    "post",
                    id("create", &suffix),
                    &t,
                    tag,
                    write_parameters(false),
                    Some(t.content()),
                ),
            );
        }
        // log, exec, attach, portforward: no schema of their own upstream either.
        _ => return None,
    }
    Some(item)
}

fn operation(
    action: &str,
    id: String,
    t: &Target<'_>,
    tag: &str,
    parameters: Value,
    body: Option<Value>,
) -> Value {
    let description = match action {
        "list" => format!(
            "list or watch objects of kind {}",
            t.kind.trim_end_matches("List")
        ),
        "get" => format!("read the specified {}", t.kind),
        "put" => format!("replace the specified {}", t.kind),
        "patch" => format!("partially update the specified {}", t.kind),
        "post" => format!("create a {}", t.kind),
        "delete" => format!("delete a {}", t.kind),
        _ => format!("delete collection of {}", t.kind),
    };
    let gvk = if action == "list" {
        // A list operation names the item kind, as upstream's do.
        let mut gvk = t.gvk.clone();
        gvk["kind"] = json!(t.kind.trim_end_matches("List"));
        gvk
    } else {
        t.gvk.clone()
    };
    let ok = match action {
        "delete" | "deletecollection" => json!({"application/json": {"schema": {"$ref": STATUS}}}),
        _ => t.content(),
    };
    let mut responses = Map::new();
    responses.insert("200".into(), json!({"content": ok, "description": "OK"}));
    if matches!(action, "post" | "put" | "patch") {
        responses.insert(
            "201".into(),
            json!({"content": t.content(), "description": "Created"}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut op = Map::new();
    op.insert("description".into(), json!(description));
    op.insert("operationId".into(), json!(id));
    if !parameters.is_null() {
        op.insert("parameters".into(), parameters);
    }
    if let Some(content) = body {
        op.insert(
            "requestBody".into(),
            json!({"content": content, "required": true}),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    op.insert("tags".into(), json!([tag]));
    op.insert("x-kubernetes-action".into(), json!(action));
    op.insert("x-kubernetes-group-version-kind".into(), gvk);
    Value::Object(op)
}

/// The query parameters of create, update and patch; `fieldValidation` is what kubectl ≥ 1.29 looks for.
fn write_parameters(patch: bool) -> Value {
    let mut parameters = vec![
        query("dryRun", "string"),
        query("fieldManager", "string"),
        query("fieldValidation", "string"),
    ];
    if patch {
        parameters.push(query("force", "boolean"));
    }
    Value::Array(parameters)
}

/// The patch types a PATCH accepts: the ones the REST engine reads (upstream also lists
/// `application/apply-patch+yaml`; add it with server-side apply). Listing strategic merge patch makes kubectl
/// (≥ 1.29) compute client-side apply patches from these schemas' `x-kubernetes-patch-*` extensions, which
/// are upstream's.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

fn patch_content() -> Value {
    PATCH_TYPES
        .iter()
        .map(|media| (media.to_string(), json!({"schema": {"$ref": PATCH}})))
        .collect::<Map<String, Value>>()
        .into()
}

fn query(name: &str, kind: &str) -> Value {
    json!({"in": "query", "name": name, "schema": {"type": kind, "uniqueItems": true}})
}

fn path_parameter(name: &str) -> Value {
    json!({"in": "path", "name": name, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// `rbac.authorization.k8s.io` → `RbacAuthorization`, as upstream's operation ids spell groups.
fn camel(group: &str) -> String {
    group
        .trim_end_matches(".k8s.io")
        .split(['.', '-'])
        .map(capitalize)
        .collect()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_document_has_schemas_and_operations_kubectl_reads() {
        let defs = Definitions::load();
        let doc = document(&defs, "apps", "v1").expect("apps/v1 is served");
        let schemas = &doc["components"]["schemas"];
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        // Reached through the pod template, and the scale subresource's kind.
        assert!(schemas.get("io.k8s.api.core.v1.Container").is_some());
        assert!(schemas.get("io.k8s.api.autoscaling.v1.Scale").is_some());
        assert!(schemas.get("io.k8s.api.batch.v1.Job").is_none());
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["dryRun", "fieldManager", "fieldValidation", "force"]
        );
        // Every PATCH operation names fieldValidation: kubectl checks the first one it meets per kind.
        for item in doc["paths"].as_object().expect("paths").values() {
            if let Some(patch) = item.get("patch") {
                assert!(patch["parameters"].to_string().contains("fieldValidation"));
            }
        }
        let list = &doc["paths"]["/apis/apps/v1/deployments"]["get"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert_eq!(
            doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
                ["x-kubernetes-group-version-kind"]["kind"],
            "Scale"
        );
    }

    #[test]
    fn every_reference_resolves_within_its_document() {
        let defs = Definitions::load();
        for (group, versions) in gantry_api::registry::groups() {
            for version in versions {
                let doc = document(&defs, group, version).expect("served");
                let text = doc.to_string();
                for piece in text.split("\"#/components/schemas/").skip(1) {
                    let name = &piece[..piece.find('"').expect("closing quote")];
                    assert!(
                        doc["components"]["schemas"].get(name).is_some(),
                        "{group}/{version}: {name} is referenced, not included"
                    );
                }
            }
        }
    }

    #[test]
    fn cluster_scoped_and_core_paths() {
        let defs = Definitions::load();
        let core = document(&defs, "", "v1").expect("core/v1 is served");
        let patch = &core["paths"]["/api/v1/namespaces/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchCoreV1Namespace");
        assert!(core["paths"].get("/api/v1/pods").is_some());
        assert!(
            core["paths"]
                .get("/api/v1/namespaces/{namespace}/pods/{name}/eviction")
                .is_some()
        );
        assert_eq!(camel("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert!(document(&defs, "nope", "v1").is_none());
    }
}
