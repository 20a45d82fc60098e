//! Custom resources: the catalog of what CustomResourceDefinitions serve, read from the watch cache whenever
//! it is asked (so a CRD's resources are served as soon as its create is acknowledged), and the CRD controller,
//! which sets each CRD's status and, when a CRD is deleted, deletes its objects before letting it go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use gantry_api::ApiError;
use gantry_api::registry::{ResourceType, Subresource, VERBS};
use gantry_api::table::{self, IncludeObject};
use gantry_apply::CompiledSchema;
use gantry_crd::{CLEANUP_FINALIZER, Column, Definition, JsonPath, Version};
use gantry_store::{Revision, Store, StoreError};
use gantry_watch_cache::WatchCache;
use serde_json::{Value, json};

use crate::objects;

/// Where CRDs are stored.
pub(crate) const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";
/// How often the controller looks again at a CRD whose objects are still being deleted.
const CLEANUP_RETRY: Duration = Duration::from_secs(1);

/// One served version of a custom resource.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) resource: &'static ResourceType,
    pub(crate) definition: Arc<Definition>,
    version: usize,
    /// The schemas server-side apply uses, per version of the definition, compiled on first use.
    apply_schemas: Arc<[OnceLock<CompiledSchema>]>,
}

impl Served {
    pub(crate) fn version(&self) -> &Version {
        &self.definition.versions[self.version]
    }

    /// The schema server-side apply merges by (list types and map keys from the CRD).
    pub(crate) fn apply_schema(&self) -> CompiledSchema {
        self.apply_schemas[self.version]
            .get_or_init(|| CompiledSchema::compile(&self.version().schema.structural()))
            .clone()
    }

    /// The version objects are written in.
    pub(crate) fn storage_api_version(&self) -> String {
        format!(
            "{}/{}",
            self.definition.group,
            self.definition.storage_version()
        )
    }
}

/// One CRD as read: its mod revision, what it serves, and the apply schemas of its versions.
type Built = (Revision, Arc<Definition>, Arc<[OnceLock<CompiledSchema>]>);

/// What the CRDs in the cache serve, rebuilt when they change.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    snapshot: RwLock<Arc<Snapshot>>,
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The CRDs it was built from: name → (mod revision, definition, its apply schemas).
    definitions: HashMap<String, Built>,
    served: Vec<Served>,
}

impl Snapshot {
    /// The custom resource served at `group`/`version`/`plural`.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Served> {
        self.served.iter().find(|s| {
            s.resource.group == group
                && s.resource.version == version
                && s.resource.plural == plural
        })
    }

    /// Every served custom resource version, grouped by CRD, preferred versions first.
    pub(crate) fn served(&self) -> &[Served] {
        &self.served
    }

    /// A fingerprint of what is served (changes whenever a CRD does).
    pub(crate) fn fingerprint(&self) -> (usize, Revision) {
        fingerprint(self.definitions.values().map(|(rv, _, _)| *rv))
    }
}

fn fingerprint(revisions: impl Iterator<Item = Revision>) -> (usize, Revision) {
    revisions.fold((0, 0), |(n, max), rv| (n + 1, max.max(rv)))
}

impl Catalog {
    /// What is served as of the cache's latest state.
    pub(crate) async fn snapshot(&self, cache: &WatchCache) -> Arc<Snapshot> {
        // Reads are consistent: a CRD whose create was acknowledged is served to the next request.
        let _ = cache.wait_fresh().await;
        let listed = cache.list(CRD_PREFIX.as_bytes(), None, 0, |_| true);
        let current = self.read();
        if fingerprint(listed.objects.iter().map(|o| o.revision)) == current.fingerprint() {
            return current;
        }
        let mut definitions = HashMap::new();
        for object in &listed.objects {
            let name = String::from_utf8_lossy(&object.key[CRD_PREFIX.len()..]).into_owned();
            let built = match current.definitions.get(&name) {
                Some(built) if built.0 == object.revision => built.clone(),
                _ => match object
                    .value()
                    .map_err(|e| e.to_string())
                    .and_then(|v| Definition::from_object(&v))
                {
                    Ok(definition) => {
                        let schemas = definition
                            .versions
                            .iter()
                            .map(|_| OnceLock::new())
                            .collect();
                        (object.revision, Arc::new(definition), schemas)
                    }
                    Err(e) => {
                        tracing::warn!("not serving customresourcedefinition {name}: {e}");
                        continue;
                    }
                },
            };
            definitions.insert(name, built);
        }
        let mut sorted: Vec<&Built> = definitions.values().collect();
        sorted.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        let mut served = Vec::new();
        for (_, definition, apply_schemas) in sorted {
            for version in definition.served_versions() {
                let index = definition
                    .versions
                    .iter()
                    .position(|v| v.name == version.name)
                    .unwrap_or_default();
                served.push(Served {
                    resource: intern(definition, version),
                    definition: definition.clone(),
                    version: index,
                    apply_schemas: apply_schemas.clone(),
                });
            }
        }
        let snapshot = Arc::new(Snapshot {
            definitions,
            served,
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot.clone();
        snapshot
    }

    fn read(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The resource type of a CRD version, made `'static` once per distinct definition (the REST engine, discovery
/// and the metrics hold resource types as `&'static`). A CRD changed back and forth reuses what it had; each
/// new shape costs a few hundred bytes for the life of the process.
fn intern(definition: &Definition, version: &Version) -> &'static ResourceType {
    static INTERNED: Mutex<Vec<&'static ResourceType>> = Mutex::new(Vec::new());
    let names = &definition.names;
    let subresources: Vec<&str> = [
        version.status.then_some("status"),
        version.scale.is_some().then_some("scale"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let same = |r: &&&'static ResourceType| {
        r.group == definition.group
            && r.version == version.name
            && r.kind == names.kind
            && r.plural == names.plural
            && r.namespaced == definition.namespaced
            && r.short_names.iter().eq(names.short_names.iter())
            && r.categories.iter().eq(names.categories.iter())
            && r.subresources
                .iter()
                .map(|s| s.name)
                .eq(subresources.iter().copied())
    };
    let mut interned = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = interned.iter().find(same) {
        return found;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let leak_all = |v: &[String]| -> &'static [&'static str] {
        Box::leak(v.iter().map(|s| leak(s)).collect())
    };
    let (group, version_name, kind) = (
        leak(&definition.group),
        leak(&version.name),
        leak(&names.kind),
    );
    let subresources: Vec<Subresource> = subresources
        .iter()
        .map(|name| match *name {
            "status" => Subresource {
                name: "status",
                group,
                version: version_name,
                kind,
                verbs: &["get", "patch", "update"],
            },
            _ => Subresource {
                name: "scale",
                group: "autoscaling",
                version: "v1",
                kind: "Scale",
                verbs: &["get", "patch", "update"],
            },
        })
        .collect();
    let resource: &'static ResourceType = Box::leak(Box::new(ResourceType {
        group,
        version: version_name,
        kind,
        plural: leak(&names.plural),
        short_names: leak_all(&names.short_names),
        namespaced: definition.namespaced,
        categories: leak_all(&names.categories),
        subresources: Box::leak(subresources.into_boxed_slice()),
        verbs: VERBS,
    }));
    interned.push(resource);
    resource
}

/// Where the objects of a CRD (as stored) live: `/registry/<group>/<plural>/`. Read straight from its spec,
/// without compiling its schemas.
fn objects_prefix(crd: &Value) -> String {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    format!(
        "/registry/{}/{}/",
        text("/spec/group"),
        text("/spec/names/plural")
    )
}

/// The store prefixes of every namespaced custom resource in `namespace` (for namespace deletion).
pub(crate) async fn namespaced_prefixes(
    store: &Arc<dyn Store>,
    namespace: &str,
) -> Result<Vec<String>, ApiError> {
    let (_, kvs) = crate::rest::range_all(store, Bytes::from_static(CRD_PREFIX.as_bytes())).await?;
    let mut prefixes = Vec::new();
    for kv in kvs {
        let crd = objects::decode(&kv)?;
        if crd.pointer("/spec/scope").and_then(Value::as_str) == Some("Namespaced") {
            prefixes.push(format!("{}{namespace}/", objects_prefix(&crd)));
        }
    }
    Ok(prefixes)
}

/// The CRD controller: keeps every CRD's status (accepted names, conditions, stored versions) current and
/// finishes deleting CRDs, for as long as the server runs.
pub(crate) async fn run_controller(store: Arc<dyn Store>, cache: WatchCache) {
    let prefix = Bytes::from_static(CRD_PREFIX.as_bytes());
    loop {
        let revision = cache.revision();
        let listed = cache.list(&prefix, None, 0, |_| true);
        let mut cleaning = false;
        for object in &listed.objects {
            let Ok(crd) = object.value() else { continue };
            let result = if crd.pointer("/metadata/deletionTimestamp").is_some() {
                cleaning = true;
                finish_deletion(&store, &object.key, object.revision, crd).await
            } else {
                update_status(&store, &object.key, object.revision, crd, &listed.objects).await
            };
            if let Err(e) = result {
                tracing::warn!(
                    "customresourcedefinition {}: {e}",
                    String::from_utf8_lossy(&object.key[prefix.len()..])
                );
            }
        }
        let Some(mut changes) = cache.watch(prefix.clone(), revision) else {
            tokio::time::sleep(CLEANUP_RETRY).await;
            continue;
        };
        if cleaning {
            let _ = tokio::time::timeout(CLEANUP_RETRY, changes.next()).await;
        } else {
            changes.next().await;
        }
    }
}

/// Sets `status` to what the CRD serves: its names accepted (unless another CRD of the group has the kind),
/// NamesAccepted and Established conditions, and the storage version among `storedVersions`.
async fn update_status(
    store: &Arc<dyn Store>,
    key: &[u8],
    revision: Revision,
    mut crd: Value,
    all: &[Arc<gantry_watch_cache::Object>],
) -> Result<(), ApiError> {
    let definition = Definition::from_object(&crd).map_err(ApiError::internal)?;
    let kind_taken = all.iter().any(|other| {
        other.key[..] != *key
            && other.value().ok().is_some_and(|o| {
                o.pointer("/spec/group") == crd.pointer("/spec/group")
                    && o.pointer("/status/acceptedNames/kind") == crd.pointer("/spec/names/kind")
            })
    });
    let mut status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
    let (accepted, reason, message) = if kind_taken {
        (
            "False",
            "KindConflict",
            format!("\"{}\" is already in use", definition.names.kind),
        )
    } else {
        ("True", "NoConflicts", "no conflicts found".to_owned())
    };
    if accepted == "True" {
        let mut names = json!({
            "plural": definition.names.plural,
            "singular": definition.names.singular,
            "kind": definition.names.kind,
            "listKind": definition.names.list_kind,
        });
        if !definition.names.short_names.is_empty() {
            names["shortNames"] = json!(definition.names.short_names);
        }
        if !definition.names.categories.is_empty() {
            names["categories"] = json!(definition.names.categories);
        }
        status["acceptedNames"] = names;
    } else if status.get("acceptedNames").is_none() {
        status["acceptedNames"] = json!({"plural": "", "kind": ""});
    }
    set_condition(&mut status, "NamesAccepted", accepted, reason, &message);
    let (established, reason, message) = if accepted == "True" {
        (
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        )
    } else {
        ("False", "NotAccepted", "not all names are accepted")
    };
    set_condition(&mut status, "Established", established, reason, message);
    let mut stored: Vec<Value> = status
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = json!(definition.storage_version());
    if !stored.contains(&storage) {
        stored.push(storage);
    }
    status["storedVersions"] = Value::Array(stored);
    if crd.get("status") == Some(&status) {
        return Ok(());
    }
    crd["status"] = status;
    write(store, key, &crd, revision).await
}

/// Sets the condition of `type_` in `status.conditions`, keeping its transition time unless its status changes.
fn set_condition(status: &mut Value, type_: &str, value: &str, reason: &str, message: &str) {
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let existing = conditions.iter().position(|c| c["type"] == type_);
    let since = match existing {
        Some(i) if conditions[i]["status"] == value => conditions[i]["lastTransitionTime"].clone(),
        _ => json!(objects::now()),
    };
    let condition = json!({"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": since});
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    status["conditions"] = Value::Array(conditions);
}

/// A deleted CRD: deletes its objects (those held by finalizers are marked and waited for), then drops the
/// cleanup finalizer, which completes the deletion when it was the last one.
async fn finish_deletion(
    store: &Arc<dyn Store>,
    key: &[u8],
    revision: Revision,
    mut crd: Value,
) -> Result<(), ApiError> {
    let has_ours = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER));
    if !has_ours {
        return Ok(());
    }
    let mut status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
    set_condition(
        &mut status,
        "Terminating",
        "True",
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
    );
    if crd.get("status") != Some(&status) {
        crd["status"] = status;
        return write(store, key, &crd, revision).await;
    }
    if !crate::namespaces::delete_under(store, &objects_prefix(&crd)).await? {
        return Ok(());
    }
    if let Some(finalizers) = crd
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        finalizers.retain(|f| f != CLEANUP_FINALIZER);
    }
    if objects::has_finalizers(&crd) {
        write(store, key, &crd, revision).await
    } else {
        match store
            .delete(Bytes::copy_from_slice(key), Some(revision))
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes the CRD over the version at `revision`; a concurrent change wins (the controller looks again).
async fn write(
    store: &Arc<dyn Store>,
    key: &[u8],
    crd: &Value,
    revision: Revision,
) -> Result<(), ApiError> {
    match store
        .update(Bytes::copy_from_slice(key), objects::encode(crd)?, revision)
        .await
    {
        Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The `meta.k8s.io/v1` Table of custom resources: Name, then the version's `additionalPrinterColumns`
/// (Age when it has none), as upstream's table convertor for custom resources.
pub(crate) fn table(
    served: &Served,
    objects: &[Value],
    metadata: Value,
    now: SystemTime,
    include: IncludeObject,
) -> Value {
    let columns = columns(served.version());
    let mut definitions = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": table::NAME_DOC, "priority": 0})];
    definitions.extend(columns.iter().map(|(c, _)| {
        json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description,
            "priority": c.priority})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![
                object
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ];
            cells.extend(
                columns
                    .iter()
                    .map(|(column, path)| cell(column, path, object, now)),
            );
            table::row_of_cells(cells, None, object, include)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": if metadata.is_object() { metadata } else { json!({}) },
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// The printer columns with their paths parsed (columns whose path does not parse are left out; CRD
/// validation refuses them).
fn columns(version: &Version) -> Vec<(Column, JsonPath)> {
    if version.columns.is_empty() {
        let age = Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: table::AGE_DOC.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        };
        return JsonPath::parse(&age.json_path)
            .map(|path| vec![(age, path)])
            .unwrap_or_default();
    }
    version
        .columns
        .iter()
        .filter_map(|c| Some((c.clone(), JsonPath::parse(&c.json_path).ok()?)))
        .collect()
}

/// One cell: the first value the column's path finds, as the column's type shows it (null when none).
fn cell(column: &Column, path: &JsonPath, object: &Value, now: SystemTime) -> Value {
    let Some(value) = path.find(object).into_iter().next() else {
        return Value::Null;
    };
    match (column.type_.as_str(), value) {
        ("date", Value::String(at)) => {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .map(|at| {
                    let age = now.duration_since(SystemTime::from(at)).unwrap_or_default();
                    json!(table::human_duration(age))
                })
                .unwrap_or(Value::Null)
        }
        ("string", Value::String(_)) => value.clone(),
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number" | "boolean", Value::Number(_) | Value::Bool(_)) => value.clone(),
        _ => Value::Null,
    }
}

/// The object labelled with `resource`'s version (`None` conversion between a CRD's versions).
pub(crate) fn relabel(resource: &ResourceType, mut object: Value) -> Value {
    let api_version = resource.api_version();
    if object.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str()) {
        object["apiVersion"] = json!(api_version);
    }
    object
}

/// New objects are refused once their CRD is being deleted.
pub(crate) fn check_accepts_objects(served: &Served) -> Result<(), ApiError> {
    if !served.definition.terminating {
        return Ok(());
    }
    Err(ApiError {
        code: 405,
        reason: "MethodNotAllowed",
        message: "create is not allowed while custom resource definition is terminating".into(),
        details: None,
    })
}

/// A new CRD: held by the cleanup finalizer (its objects go before it does), its status left to the
/// controller.
pub(crate) fn prepare_crd_for_create(crd: &mut Value) {
    if let Some(fields) = crd.as_object_mut() {
        fields.remove("status");
    }
    let finalizers = &mut crd["metadata"]["finalizers"];
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f == CLEANUP_FINALIZER)
    {
        list.push(json!(CLEANUP_FINALIZER));
    }
}

/// The value at a simple JSONPath (`.spec.replicas`), as scale subresources name fields.
pub(crate) fn get_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(object, |value, field| value.get(field))
}

/// Sets the value at a simple JSONPath, creating the objects on the way.
pub(crate) fn set_path(object: &mut Value, path: &str, value: Value) {
    let mut at = object;
    for field in path.trim_start_matches('.').split('.') {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[field];
    }
    *at = value;
}
