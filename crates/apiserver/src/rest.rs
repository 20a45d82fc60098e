//! The generic REST engine: get, list, create, update, patch and delete for every kind in the registry, on
//! objects handled as JSON (watches are in `watch.rs`, server-side apply in `apply.rs`). Objects are stored
//! without `metadata.resourceVersion`; it is the key's mod revision, set on the way out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use gantry_api::fields::FieldSelector;
use gantry_api::labels::Selector;
use gantry_api::registry::ResourceType;
use gantry_api::table::{self, IncludeObject};
use gantry_api::{ApiError, GroupKind, GroupResource, field::FieldError, validate, validation};
use gantry_store::{ContinueToken, KeyValue, RangeRequest, Revision, Store, StoreError};
use gantry_watch_cache::{Object, WatchCache};
use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::custom::{self, Served};
use crate::deletion::{self, DeleteOptions};
use crate::namespaces;
use crate::objects;
use crate::request::{ResourceRequest, Verb};
use crate::response::{self, Response};
use crate::services::{self, Allocation, Allocator, ServiceRanges};

/// Largest request body accepted, as in Kubernetes.
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Namespaces that exist for the cluster's own use and cannot be deleted (as in Kubernetes).
const PERMANENT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
/// Store pages read while listing.
const LIST_PAGE: usize = 500;

/// One request on a resource, with what it needs.
pub(crate) struct Call<'a> {
    pub(crate) store: &'a Arc<dyn Store>,
    pub(crate) cache: &'a WatchCache,
    /// Who asks (for the reviews that answer about the asker).
    pub(crate) identity: &'a gantry_pki::Identity,
    /// The client's `User-Agent` (names the field manager of writes without `fieldManager`).
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) services: &'a ServiceRanges,
    /// How to call node agents (logs).
    pub(crate) nodes: Option<&'a crate::NodeClient>,
    pub(crate) pod_admission: crate::PodAdmission,
    pub(crate) metrics: &'a Arc<crate::metrics::Metrics>,
    /// Signs the tokens of `serviceaccounts/<name>/token`.
    pub(crate) service_account_key: &'a gantry_pki::ServiceAccountKey,
    pub(crate) resource: &'static ResourceType,
    /// What the CRD says, for a custom resource.
    pub(crate) custom: Option<&'a Served>,
    pub(crate) request: &'a ResourceRequest,
    pub(crate) query: &'a HashMap<String, String>,
    /// How reads answer: objects, or Table rows.
    pub(crate) output: Output,
    /// The client's connection upgrade, for exec, attach and port-forward (taken once).
    pub(crate) upgrade: std::sync::Mutex<Option<crate::nodes::Upgrade>>,
}

/// How objects leave the server: as themselves, or as `meta.k8s.io/v1` Table rows (kubectl's human output).
#[derive(Debug, Clone)]
pub(crate) enum Output {
    Objects,
    /// Objects of a kind stored in another group's form (events.k8s.io Events), converted on the way out.
    Converted(&'static ResourceType),
    Table {
        kind: &'static str,
        include: IncludeObject,
    },
    /// Custom resources of a CRD with several versions (each object labelled with the version asked for,
    /// which is all `None` conversion does), or as Table rows with the CRD's printer columns.
    Custom {
        served: Served,
        table: Option<IncludeObject>,
    },
}

/// The content type of Table responses.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

impl Output {
    /// Tables when `Accept` asks for them before plain JSON (as kubectl's `get` does).
    pub(crate) fn negotiate(
        accept: Option<&str>,
        resource: &'static ResourceType,
        custom: Option<&Served>,
        query: &HashMap<String, String>,
    ) -> Result<Output, ApiError> {
        for media in accept.unwrap_or("").split(',') {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            if params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") {
                let include = match query.get("includeObject") {
                    None => IncludeObject::Metadata,
                    Some(value) => IncludeObject::parse(value).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid includeObject {value:?}: use None, Metadata or Object"
                        ))
                    })?,
                };
                return Ok(match custom {
                    Some(served) => Output::Custom {
                        served: served.clone(),
                        table: Some(include),
                    },
                    None => Output::Table {
                        kind: resource.kind,
                        include,
                    },
                });
            }
            if matches!(params.first(), Some(&("application/json" | "*/*"))) {
                break;
            }
        }
        if gantry_api::convert::is_converted(resource) {
            return Ok(Output::Converted(resource));
        }
        if let Some(served) = custom.filter(|s| s.definition.versions.len() > 1) {
            return Ok(Output::Custom {
                served: served.clone(),
                table: None,
            });
        }
        Ok(Output::Objects)
    }

    /// One object (a GET, or a watch event's object).
    pub(crate) fn one(&self, object: Value) -> Value {
        match self {
            Output::Objects => object,
            Output::Converted(resource) => gantry_api::convert::from_storage(resource, object),
            Output::Custom {
                served,
                table: None,
            } => custom::relabel(served.resource, object),
            Output::Custom {
                served,
                table: Some(include),
            } => {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                custom::table(
                    served,
                    &[object],
                    json!({"resourceVersion": rv}),
                    SystemTime::now(),
                    *include,
                )
            }
            Output::Table { kind, include } => {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                table::table(
                    kind,
                    &[object],
                    json!({"resourceVersion": rv}),
                    SystemTime::now(),
                    *include,
                )
            }
        }
    }

    fn respond(&self, status: StatusCode, body: &Value) -> Response {
        let mut response = response::json(status, body);
        if let Output::Table { .. } | Output::Custom { table: Some(_), .. } = self {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(TABLE),
            );
        }
        response
    }
}

impl Call<'_> {
    pub(crate) fn group_resource(&self) -> GroupResource<'static> {
        GroupResource::new(self.resource.group, self.resource.plural)
    }

    fn group_kind(&self) -> GroupKind<'static> {
        GroupKind::new(self.resource.group, self.resource.kind)
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|d| d == "All")
    }

    /// The store key of `name` in the request's namespace.
    fn key(&self, name: &str) -> Bytes {
        Bytes::from(match &self.request.namespace {
            Some(ns) => format!("{}{ns}/{name}", self.resource.store_prefix()),
            None => format!("{}{name}", self.resource.store_prefix()),
        })
    }

    /// The prefix of every object in scope: the namespace's, or all of them.
    pub(crate) fn scope_prefix(&self) -> Bytes {
        Bytes::from(match &self.request.namespace {
            Some(ns) => format!("{}{ns}/", self.resource.store_prefix()),
            None => self.resource.store_prefix(),
        })
    }

    /// Services get cluster IPs and node ports when written (not in dry runs).
    fn allocator(&self) -> Option<Allocator<'_>> {
        let is_service = self.resource.group.is_empty() && self.resource.kind == "Service";
        (is_service && !self.dry_run()).then_some(Allocator {
            store: self.store,
            cache: self.cache,
            ranges: self.services,
        })
    }

    /// A stored object as this resource serves it (see `gantry_api::convert`).
    fn view(&self, stored: Value) -> Value {
        if self.custom.is_some() {
            return custom::relabel(self.resource, stored);
        }
        gantry_api::convert::from_storage(self.resource, stored)
    }

    /// The bytes to store for an object of this resource, in its stored form.
    fn encode(&self, object: &Value) -> Result<Bytes, ApiError> {
        if let Some(served) = self.custom.filter(|s| s.definition.versions.len() > 1) {
            let mut object = object.clone();
            object["apiVersion"] = json!(served.storage_api_version());
            return objects::encode(&object);
        }
        if gantry_api::convert::is_converted(self.resource) {
            return objects::encode(&gantry_api::convert::to_storage(
                self.resource,
                object.clone(),
            ));
        }
        objects::encode(object)
    }

    fn key_str(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.key(name)).into_owned()
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.group_resource(), name)
    }

    fn store_error(&self, error: StoreError, name: &str) -> ApiError {
        ApiError::from_store(error, self.group_resource(), name)
    }

    /// Runs the request: the verb on the resource or one of its subresources.
    pub(crate) async fn dispatch(&self, body: &[u8], media: &str) -> Result<Response, ApiError> {
        let request = self.request;
        let name = request.name.as_deref().unwrap_or_default();
        let has = |sub: &str| self.resource.subresource(sub).is_some();
        if !self.resource.is_stored() {
            return match (request.subresource.as_deref(), request.verb) {
                (None, Verb::Create) if request.name.is_none() => self.review(body),
                (_, verb) => Err(ApiError::method_not_supported(
                    self.group_resource(),
                    verb.as_str(),
                )),
            };
        }
        match (request.subresource.as_deref(), request.verb) {
            (None, Verb::Get) => self.get(name).await,
            (None, Verb::List) => self.list().await,
            (None, Verb::Watch) => self.watch().await,
            (None, Verb::Create) if request.name.is_none() => self.create(body).await,
            (None, Verb::Update) => self.update(name, Part::Main, body).await,
            (None, Verb::Patch) => self.patch(name, Part::Main, body, media).await,
            (None, Verb::Delete) => {
                let options = DeleteOptions::parse(body, self.query)?;
                let deleted = self.delete(name, &options).await?;
                Ok(response::json(StatusCode::OK, &deleted))
            }
            (None, Verb::DeleteCollection) => {
                self.delete_collection(&DeleteOptions::parse(body, self.query)?)
                    .await
            }
            (Some("status"), Verb::Get) if has("status") => self.get(name).await,
            (Some("status"), Verb::Update) if has("status") => {
                self.update(name, Part::Status, body).await
            }
            (Some("status"), Verb::Patch) if has("status") => {
                self.patch(name, Part::Status, body, media).await
            }
            (Some("scale"), Verb::Get) if has("scale") => self.get_scale(name).await,
            (Some("scale"), Verb::Update) if has("scale") => {
                self.update_scale(name, body, None).await
            }
            (Some("scale"), Verb::Patch) if has("scale") => {
                self.update_scale(name, body, Some(media)).await
            }
            (Some("log" | "exec" | "attach" | "portforward"), _) if has("log") => {
                self.node_stream(name).await
            }
            (Some("binding"), Verb::Create) if has("binding") => self.bind(name, body).await,
            (Some("eviction"), Verb::Create) if has("eviction") => self.evict(name, body).await,
            (Some("token"), Verb::Create) if has("token") => self.token_request(name, body).await,
            (Some(sub), _) if !has(sub) => Err(response::path_not_found()),
            (_, verb) => Err(ApiError::method_not_supported(
                self.group_resource(),
                verb.as_str(),
            )),
        }
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Response, ApiError> {
        if self.cache_ready().await? {
            let (_, object) = self.cache.get(&self.key(name));
            let object = object.ok_or_else(|| self.not_found(name))?;
            return match self.output {
                Output::Objects => Ok(response::bytes(
                    StatusCode::OK,
                    response::JSON,
                    object.json.clone(),
                )),
                _ => {
                    let value = cached_value(&object)?;
                    Ok(self.output.respond(StatusCode::OK, &self.output.one(value)))
                }
            };
        }
        let kv = self.read(name).await?;
        Ok(self
            .output
            .respond(StatusCode::OK, &self.output.one(objects::decode(&kv)?)))
    }

    /// Whether the watch cache holds the object (it may be a moment behind the store).
    pub(crate) fn cached(&self, name: &str) -> bool {
        self.cache.get(&self.key(name)).1.is_some()
    }

    pub(crate) async fn read(&self, name: &str) -> Result<KeyValue, ApiError> {
        self.store
            .get(&self.key(name), None)
            .await
            .map_err(|e| self.store_error(e, name))?
            .ok_or_else(|| self.not_found(name))
    }

    pub(crate) async fn list(&self) -> Result<Response, ApiError> {
        let selectors = self.selectors()?;
        let limit: usize = match self.query.get("limit") {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        };
        let continuing = self.query.get("continue").is_some_and(|c| !c.is_empty());
        // `resourceVersion=0` (any version will do, what informers list with) is answered whole from the
        // cache, its limit ignored, as kube-apiserver's watch cache does: paging through the store instead
        // made every relist of a large collection cost the server hundreds of store reads.
        let any_version = self.query.get("resourceVersion").map(String::as_str) == Some("0");
        let limit = if any_version && !continuing { 0 } else { limit };
        // The first page of a list at the latest revision comes from the cache; a continuation or a list at
        // an exact older revision reads the store at that revision.
        if !continuing && exact_revision(self.query)?.is_none() && self.cache_ready().await? {
            let listed = self.cache.list(&self.scope_prefix(), None, limit, |o| {
                selectors.matches_cached(o)
            });
            let next = match listed.objects.last() {
                Some(last) if limit > 0 && listed.objects.len() == limit && listed.more => {
                    Some(ContinueToken {
                        revision: listed.revision,
                        last_key: last.key.clone(),
                    })
                }
                _ => None,
            };
            let metadata = list_metadata(listed.revision, next);
            return match self.output {
                Output::Objects => Ok(response::bytes(
                    StatusCode::OK,
                    response::JSON,
                    self.list_json(&metadata, listed.objects.iter().map(|o| &o.json[..])),
                )),
                Output::Table { kind, include } => {
                    let body = table_json(kind, include, metadata, &listed.objects)?;
                    Ok(response::bytes(StatusCode::OK, TABLE, body))
                }
                Output::Converted(_) | Output::Custom { .. } => {
                    let items = listed
                        .objects
                        .iter()
                        .map(|o| cached_value(o))
                        .collect::<Result<_, _>>()?;
                    Ok(self.list_response(metadata, items))
                }
            };
        }
        let mut request = RangeRequest::prefix(self.scope_prefix()).limit(LIST_PAGE.max(limit));
        if let Some(token) = self.query.get("continue").filter(|c| !c.is_empty()) {
            request = request.continue_from(decode_continue(token)?);
        } else if let Some(revision) = exact_revision(self.query)? {
            request = request.at(revision);
        }
        let mut items = Vec::new();
        let (revision, next) = loop {
            let page = self
                .store
                .range(request.clone())
                .await
                .map_err(ApiError::from)?;
            let mut stopped_at = None;
            for kv in &page.kvs {
                let object = objects::decode(kv)?;
                if selectors.matches(&object) {
                    items.push(object);
                    if limit > 0 && items.len() == limit {
                        stopped_at = Some(kv.key.clone());
                        break;
                    }
                }
            }
            match (stopped_at, page.next) {
                // Stopped at the limit: continue after the last item returned (unless it was the very last).
                (Some(last_key), next) => {
                    let more =
                        next.is_some() || page.kvs.last().is_some_and(|kv| kv.key != last_key);
                    break (
                        page.revision,
                        more.then_some(ContinueToken {
                            revision: page.revision,
                            last_key,
                        }),
                    );
                }
                (None, Some(token)) => request = request.continue_from(token),
                (None, None) => break (page.revision, None),
            }
        };
        Ok(self.list_response(list_metadata(revision, next), items))
    }

    /// A list of parsed objects, as objects or as a Table.
    fn list_response(&self, metadata: Value, items: Vec<Value>) -> Response {
        let body = match &self.output {
            Output::Objects | Output::Converted(_) | Output::Custom { table: None, .. } => json!({
                "kind": format!("{}List", self.resource.kind),
                "apiVersion": self.resource.api_version(),
                "metadata": metadata,
                "items": items.into_iter().map(|o| self.output.one(o)).collect::<Vec<_>>(),
            }),
            Output::Table { kind, include } => {
                table::table(kind, &items, metadata, SystemTime::now(), *include)
            }
            Output::Custom {
                served,
                table: Some(include),
            } => custom::table(served, &items, metadata, SystemTime::now(), *include),
        };
        self.output.respond(StatusCode::OK, &body)
    }

    /// A `<Kind>List` of objects already serialized, spliced in without parsing them.
    fn list_json<'o>(&self, metadata: &Value, items: impl Iterator<Item = &'o [u8]>) -> Bytes {
        let head = json!({
            "kind": format!("{}List", self.resource.kind),
            "apiVersion": self.resource.api_version(),
            "metadata": metadata,
        });
        let mut body = open_array(&head, "items", 0);
        for (i, item) in items.enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"]}");
        body.into()
    }

    /// Records in `object`'s `metadata.managedFields` what this write (by [`field_manager`](Self::field_manager))
    /// changed against `old` (None for a create).
    fn track_managed_fields(
        &self,
        old: Option<&Value>,
        object: &mut Value,
        subresource: &'static str,
    ) {
        let writer = self.writer(subresource);
        let managed = gantry_apply::managed_for_update(old, object, !subresource.is_empty());
        gantry_apply::update(old, object, &managed, &writer.context()).write_to(object);
    }

    /// Who this write is for `gantry-apply`, through `subresource`.
    pub(crate) fn writer(&self, subresource: &'static str) -> Writer {
        Writer {
            manager: self.field_manager(),
            api_version: self.resource.api_version(),
            subresource,
            schema: self.apply_schema(),
            now: objects::now(),
            reset: self.reset_fields(subresource),
        }
    }

    /// The manager of this write: `fieldManager`, else one named after the client (`kubectl-edit`, ...).
    pub(crate) fn field_manager(&self) -> String {
        match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(manager) => manager.clone(),
            None => gantry_apply::default_manager(self.user_agent),
        }
    }

    /// The kind's schema for server-side apply: the vendored OpenAPI one or a CRD's, else deduced from the
    /// values.
    pub(crate) fn apply_schema(&self) -> Box<dyn gantry_apply::Schema> {
        if let Some(served) = self.custom {
            return Box::new(served.apply_schema());
        }
        let r = self.resource;
        match gantry_apply::schema_for(r.group, r.version, r.kind) {
            Some(schema) => Box::new(schema),
            None => Box::new(gantry_apply::DeducedSchema),
        }
    }

    /// What a write through `subresource` may not own (upstream's reset fields): the main resource of a kind
    /// with a status subresource does not set its status, and `/status` sets nothing else.
    pub(crate) fn reset_fields(&self, subresource: &str) -> Option<gantry_apply::FieldSet> {
        self.resource.subresource("status")?;
        Some(match subresource {
            "" => gantry_apply::FieldSet::from_fields(&[&["status"]]),
            _ => gantry_apply::FieldSet::from_fields(&[&["spec"], &["metadata"]]),
        })
    }

    /// `fieldValidation`: fields the kind's schema does not have are refused (`Strict`, 400), or dropped and
    /// reported as warnings (`Warn`, the default, as in Kubernetes) or dropped silently (`Ignore`). Returns
    /// the warnings.
    /// `body`, when given, is the JSON the object was decoded from: its duplicate keys count as well.
    pub(crate) fn unknown_fields(
        &self,
        object: &mut Value,
        body: Option<&[u8]>,
    ) -> Result<Vec<String>, ApiError> {
        let mode = self
            .query
            .get("fieldValidation")
            .map_or("Warn", String::as_str);
        if !matches!(mode, "Strict" | "Warn" | "Ignore") {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {mode}"
            )));
        }
        let (group, version, kind) = (
            self.resource.group,
            self.resource.version,
            self.resource.kind,
        );
        let pruned = match self.custom {
            Some(served) => served.version().schema.prune(object),
            None => crate::openapi::prune_unknown_fields(group, version, kind, object),
        };
        let mut unknown: Vec<String> = pruned
            .into_iter()
            .map(|field| format!("unknown field \"{field}\""))
            .collect();
        if mode != "Ignore"
            && let Some(body) = body
        {
            unknown.extend(
                gantry_api::duplicates::duplicate_fields(body)
                    .into_iter()
                    .map(|field| format!("duplicate field \"{field}\"")),
            );
        }
        if mode == "Strict" && !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                unknown.join(", ")
            )));
        }
        Ok(if mode == "Warn" { unknown } else { Vec::new() })
    }

    /// Whether this read may be served from the cache, once it has caught up with what the query asks for:
    /// the latest revision when no resourceVersion is given, at least N for `resourceVersion=N`, anything for
    /// "0". False when the cache did not catch up in time (the store is read instead).
    pub(crate) async fn cache_ready(&self) -> Result<bool, ApiError> {
        match self.query.get("resourceVersion").map(String::as_str) {
            None | Some("") => self.cache.wait_fresh().await.map_err(ApiError::from),
            Some("0") => Ok(true),
            Some(rv) => Ok(self.cache.wait_for(parse_revision(rv)?).await),
        }
    }

    /// Every object in scope that matches, and the revision read.
    pub(crate) async fn read_all(
        &self,
        selectors: &Selectors,
    ) -> Result<(Revision, Vec<Value>), ApiError> {
        let (revision, kvs) = range_all(self.store, self.scope_prefix()).await?;
        let mut objects = Vec::new();
        for kv in &kvs {
            let object = objects::decode(kv)?;
            if selectors.matches(&object) {
                objects.push(object);
            }
        }
        Ok((revision, objects))
    }

    pub(crate) async fn create(&self, body: &[u8]) -> Result<Response, ApiError> {
        let mut object = self.decode_body(body)?;
        let warnings = self.unknown_fields(&mut object, Some(body))?;
        self.create_object(object, &warnings, Tracking::Update)
            .await
    }

    /// Creates `object` (decoded, unknown fields handled); `tracking` says whether its managed fields are
    /// recorded here (an update) or already are (a server-side apply).
    pub(crate) async fn create_object(
        &self,
        mut object: Value,
        warnings: &[String],
        tracking: Tracking,
    ) -> Result<Response, ApiError> {
        let meta = objects::metadata_mut(&mut object)?;
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // What admission refusals before the name is generated call the object, as upstream's do.
        let requested = match meta.get("generateName").and_then(Value::as_str) {
            Some(base) if name.is_empty() => base.to_string(),
            _ => name.clone(),
        };
        if name.is_empty() {
            match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
            {
                Some(base) => name = validation::generate_name(base),
                None => {
                    return Err(self.invalid(
                        "",
                        vec![FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
            meta.insert("name".into(), json!(name));
        }
        self.validate_name(&name)?;
        let (group, kind) = (self.resource.group, self.resource.kind);
        if let Some(served) = self.custom {
            custom::check_accepts_objects(served)?;
        }
        self.apply_defaults(&mut object);
        objects::prepare_for_create(&mut object);
        if self.custom.is_some() {
            // Custom resources count generations from 1 whether or not they have a spec.
            objects::metadata_mut(&mut object)?.insert("generation".into(), json!(1));
        }
        if self.is_crd() {
            custom::prepare_crd_for_create(&mut object);
        }
        objects::normalize(group, kind, &mut object)?;
        if (group, kind) == ("", "Pod") {
            crate::pods::initial_status(&mut object);
            self.pod_admission.admit(&mut object);
        }
        if (group, kind) == ("batch", "Job") {
            validate::generate_job_selector(&mut object);
        }
        if tracking == Tracking::Update {
            self.track_managed_fields(None, &mut object, "");
        }
        // After the managed fields: what admission sets belongs to no manager, as upstream.
        if self.admit_new(&mut object, &requested).await? {
            // The QoS class counts what LimitRanges gave the containers.
            crate::pods::initial_status(&mut object);
        }
        let errors = self.validate_new(&object);
        if !errors.is_empty() {
            return Err(self.invalid(&name, errors));
        }
        if let Some(namespace) = &self.request.namespace {
            self.check_namespace_accepts_objects(namespace).await?;
        }
        let charge = self.admit_create(&object).await?;
        if self.dry_run() {
            return Ok(with_warnings(
                response::json(StatusCode::CREATED, &object),
                warnings,
            ));
        }
        let allocation = match self.allocator() {
            Some(a) => match a.allocate(&self.key_str(&name), &mut object, None).await {
                Ok(allocation) => Some(allocation),
                Err(e) => {
                    charge.refund(self.store).await;
                    return Err(e);
                }
            },
            None => None,
        };
        let created = match self.encode(&object) {
            Ok(encoded) => self.store.create(self.key(&name), encoded).await,
            Err(e) => {
                self.release(&name, allocation).await;
                charge.refund(self.store).await;
                return Err(e);
            }
        };
        let kv = match created {
            Ok(kv) => kv,
            Err(e) => {
                self.release(&name, allocation).await;
                charge.refund(self.store).await;
                return Err(self.store_error(e, &name));
            }
        };
        objects::set_resource_version(&mut object, kv.mod_revision);
        Ok(with_warnings(
            response::json(StatusCode::CREATED, &object),
            warnings,
        ))
    }

    /// PUT of the object (`part` = Main) or of its status (`part` = Status).
    pub(crate) async fn update(
        &self,
        name: &str,
        part: Part,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let mut object = self.decode_body(body)?;
        let warnings = self.unknown_fields(&mut object, Some(body))?;
        let meta = objects::metadata_mut(&mut object)?;
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            None => {
                meta.insert("name".into(), json!(name));
            }
        }
        let updated = self
            .guaranteed_update(name, part, |_| Ok(object.clone()))
            .await?;
        Ok(with_warnings(
            response::json(StatusCode::OK, &updated),
            &warnings,
        ))
    }

    /// PATCH of the object or its status with a JSON patch, a merge patch or a strategic merge patch.
    pub(crate) async fn patch(
        &self,
        name: &str,
        part: Part,
        body: &[u8],
        media: &str,
    ) -> Result<Response, ApiError> {
        if media == crate::APPLY_PATCH {
            return self.server_side_apply(name, part, body).await;
        }
        if self.query.contains_key("force") {
            return Err(ApiError::invalid(
                GroupKind::new("meta.k8s.io", "PatchOptions"),
                "",
                &[FieldError::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if self.custom.is_some() && media == "application/strategic-merge-patch+json" {
            return Err(ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                details: None,
            });
        }
        let patch = parse_patch(body)?;
        let schema = gantry_patch::BuiltinSchema::for_kind(self.resource.group, self.resource.kind);
        // A merge or strategic patch has the object's shape: its duplicate keys are the object's.
        let shaped_like_object = (media != "application/json-patch+json").then_some(body);
        let mut warnings = Vec::new();
        let updated = self
            .guaranteed_update(name, part, |base| {
                let mut patched = apply_patch(base, &patch, media, &schema)?;
                warnings = self.unknown_fields(&mut patched, shaped_like_object)?;
                Ok(patched)
            })
            .await?;
        Ok(with_warnings(
            response::json(StatusCode::OK, &updated),
            &warnings,
        ))
    }

    /// GET of the `scale` subresource: an `autoscaling/v1` `Scale`.
    pub(crate) async fn get_scale(&self, name: &str) -> Result<Response, ApiError> {
        let object = objects::decode(&self.read(name).await?)?;
        Ok(response::json(StatusCode::OK, &self.scale_of(&object)))
    }

    /// PUT (`media` = None) or PATCH of the `scale` subresource: only `spec.replicas` changes.
    pub(crate) async fn update_scale(
        &self,
        name: &str,
        body: &[u8],
        media: Option<&str>,
    ) -> Result<Response, ApiError> {
        let input = parse_patch(body)?;
        let updated = self
            .guaranteed_update(name, Part::Main, |base| {
                let scale = match media {
                    None => input.clone(),
                    Some(media) => {
                        apply_patch(&self.scale_of(base), &input, media, &gantry_patch::NoSchema)?
                    }
                };
                let replicas = scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    let error = FieldError::invalid(
                        "spec.replicas",
                        replicas,
                        "must be greater than or equal to 0",
                    );
                    return Err(ApiError::invalid(
                        GroupKind::new("autoscaling", "Scale"),
                        name,
                        &[error],
                    ));
                }
                let mut object = base.clone();
                match self.custom.and_then(|s| s.version().scale.as_ref()) {
                    Some(scale) => {
                        custom::set_path(&mut object, &scale.spec_replicas_path, json!(replicas))
                    }
                    None => object["spec"]["replicas"] = json!(replicas),
                }
                // A resourceVersion in the Scale is a precondition on the object.
                if let Some(rv) = scale
                    .pointer("/metadata/resourceVersion")
                    .filter(|rv| rv.as_str() != Some(""))
                {
                    objects::metadata_mut(&mut object)?
                        .insert("resourceVersion".into(), rv.clone());
                }
                Ok(object)
            })
            .await?;
        Ok(response::json(StatusCode::OK, &self.scale_of(&updated)))
    }

    /// Reads the object, makes its new version with `change` (given the current one without its
    /// resourceVersion) and writes it with compare-and-swap. A resourceVersion in the new version is a
    /// precondition (409 if stale); without one, a concurrent change makes it read and change again.
    /// For kinds with a status subresource, the main resource cannot change the status and the status
    /// subresource can change nothing else.
    pub(crate) async fn guaranteed_update(
        &self,
        name: &str,
        part: Part,
        change: impl FnMut(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        self.guaranteed_update_tracked(name, part, Tracking::Update, change)
            .await
    }

    /// [`guaranteed_update`](Self::guaranteed_update), with the managed fields recorded here (an update) or
    /// already by `change` (a server-side apply).
    pub(crate) async fn guaranteed_update_tracked(
        &self,
        name: &str,
        part: Part,
        tracking: Tracking,
        mut change: impl FnMut(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let split_status = self.resource.subresource("status").is_some();
        for _ in 0..8 {
            let current = self.read(name).await?;
            let old = self.view(objects::decode(&current)?);
            let mut base = old.clone();
            objects::metadata_mut(&mut base)?.remove("resourceVersion");
            let changed = change(&base)?;
            let object = match (part, split_status) {
                (Part::Status, _) => {
                    let mut object = old.clone();
                    let rv = changed.pointer("/metadata/resourceVersion").cloned();
                    objects::metadata_mut(&mut object)?.remove("resourceVersion");
                    if let Some(rv) = rv {
                        objects::metadata_mut(&mut object)?.insert("resourceVersion".into(), rv);
                    }
                    set_or_remove(&mut object, "status", changed.get("status").cloned());
                    object
                }
                (Part::Main, true) => {
                    let mut object = changed;
                    set_or_remove(&mut object, "status", old.get("status").cloned());
                    object
                }
                (Part::Main, false) | (Part::System, _) => changed,
            };
            // The result must still be this resource's, in this namespace.
            let mut object =
                self.decode_body(&serde_json::to_vec(&object).map_err(ApiError::internal)?)?;
            if object.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
                let bad = object
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null);
                return Err(self.invalid(
                    name,
                    vec![FieldError::invalid(
                        "metadata.name",
                        bad,
                        "field is immutable",
                    )],
                ));
            }
            let pinned = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .filter(|rv| !rv.is_empty())
                .map(parse_revision)
                .transpose()?;
            if pinned.is_some_and(|rv| rv != current.mod_revision) {
                return Err(ApiError::conflict(self.group_resource(), name));
            }
            let (group, kind) = (self.resource.group, self.resource.kind);
            self.apply_defaults(&mut object);
            objects::prepare_for_update(&mut object, &old);
            self.admit_change(&mut object, &old, part);
            objects::normalize(group, kind, &mut object)?;
            if (group, kind) == ("", "Service") {
                services::drop_type_dependent_fields(&mut object, &old);
            }
            if tracking == Tracking::Update {
                self.track_managed_fields(Some(&old), &mut object, part.subresource());
            }
            let errors = match part {
                Part::System => Vec::new(),
                Part::Main | Part::Status => self.validate_changed(&object, &old),
            };
            if !errors.is_empty() {
                return Err(self.invalid(name, errors));
            }
            let charge = self.admit_update(&object, &old, part).await?;
            if self.dry_run() {
                return Ok(object);
            }
            let allocation = match self.allocator() {
                Some(a) => match a
                    .allocate(&self.key_str(name), &mut object, Some(&old))
                    .await
                {
                    Ok(allocation) => Some(allocation),
                    Err(e) => {
                        charge.refund(self.store).await;
                        return Err(e);
                    }
                },
                None => None,
            };
            let encoded = match self.encode(&object) {
                Ok(encoded) => encoded,
                Err(e) => {
                    self.release(name, allocation).await;
                    charge.refund(self.store).await;
                    return Err(e);
                }
            };
            // A change that changes nothing is not written (no new resourceVersion, no watch event).
            if encoded == current.value {
                self.release(name, allocation).await;
                charge.refund(self.store).await;
                return Ok(old);
            }
            // The last finalizer gone from an object marked for deletion: the deletion completes.
            if finished_deleting(&object) {
                charge.refund(self.store).await;
                match self
                    .store
                    .delete(self.key(name), Some(current.mod_revision))
                    .await
                {
                    Ok(_) => {
                        if let Some(allocator) = self.allocator() {
                            allocator
                                .release_unheld(&self.key_str(name), &old, None)
                                .await;
                        }
                        return Ok(object);
                    }
                    Err(StoreError::Conflict { .. }) if pinned.is_none() => continue,
                    Err(StoreError::Conflict { .. }) => break,
                    Err(e) => return Err(self.store_error(e, name)),
                }
            }
            let written = self
                .write_encoded(name, &mut object, encoded, current.mod_revision)
                .await;
            if let (Ok(true), Some(allocator)) = (&written, self.allocator()) {
                allocator
                    .release_unheld(&self.key_str(name), &old, Some(&object))
                    .await;
            }
            if !matches!(written, Ok(true)) {
                self.release(name, allocation).await;
                charge.refund(self.store).await;
            }
            if written? {
                return Ok(object);
            }
            if pinned.is_some() {
                break;
            }
        }
        Err(ApiError::conflict(self.group_resource(), name))
    }

    /// Deletes the object, or marks it for deletion: a running pod gets its grace period to stop, finalizers
    /// hold an object until their owners remove them. Returns the object as last seen.
    pub(crate) async fn delete(
        &self,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let dry_run = self.dry_run() || options.dry_run;
        if self.resource.plural == "namespaces" && !dry_run {
            if PERMANENT_NAMESPACES.contains(&name) {
                return Err(ApiError::forbidden(
                    self.group_resource(),
                    name,
                    "this namespace may not be deleted",
                ));
            }
            let namespace = objects::decode(&self.read(name).await?)?;
            options.check_preconditions(&namespace)?;
            return namespaces::start_deletion(self.store, name).await;
        }
        self.admit_delete(name)?;
        let is_pod = self.resource.group.is_empty() && self.resource.kind == "Pod";
        // Retried when the object changes between the read and the write.
        for _ in 0..8 {
            let current = self.read(name).await?;
            let mut object = self.view(objects::decode(&current)?);
            options.check_preconditions(&object)?;
            if dry_run {
                return Ok(object);
            }
            let grace = if is_pod {
                options.pod_grace_period(&object)
            } else {
                None
            };
            // Orphan and foreground propagation are finalizers the garbage collector serves.
            let propagation_changed = options
                .propagation
                .is_some_and(|p| p.set_finalizers(&mut object));
            let deleted = if let Some(grace) = grace {
                if !deletion::start_graceful_deletion(&mut object, grace, SystemTime::now())
                    && !propagation_changed
                {
                    return Ok(object);
                }
                self.write_back(name, &mut object, current.mod_revision)
                    .await?
            } else if objects::has_finalizers(&object) {
                // Finalizers hold the object: mark it for deletion; whoever owns a finalizer removes it.
                let mut changed = mark_deleted(&mut object)? | propagation_changed;
                if is_pod {
                    // A pod that has stopped (or never ran) waits for its finalizers only.
                    changed |= deletion::end_grace_period(&mut object);
                }
                if !changed {
                    return Ok(object);
                }
                self.write_back(name, &mut object, current.mod_revision)
                    .await?
            } else {
                match self
                    .store
                    .delete(self.key(name), Some(current.mod_revision))
                    .await
                {
                    Ok(_) => true,
                    Err(StoreError::Conflict { .. }) => false,
                    Err(e) => return Err(self.store_error(e, name)),
                }
            };
            if deleted {
                let gone = object.pointer("/metadata/deletionTimestamp").is_none();
                if let (Some(allocator), true) = (self.allocator(), gone) {
                    allocator
                        .release_unheld(&self.key_str(name), &object, None)
                        .await;
                }
                return Ok(object);
            }
        }
        Err(ApiError::conflict(self.group_resource(), name))
    }

    /// DELETE of a collection: every object the selectors match, each as [`delete`](Self::delete) would; the
    /// answer lists them.
    async fn delete_collection(&self, options: &DeleteOptions) -> Result<Response, ApiError> {
        let selectors = self.selectors()?;
        let (_, candidates) = self.read_all(&selectors).await?;
        let mut deleted = Vec::new();
        for object in candidates {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match self.delete(name, options).await {
                Ok(object) => deleted.push(object),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.list_response(json!({}), deleted))
    }

    /// Gives back what a failed write of a Service allocated.
    async fn release(&self, name: &str, allocation: Option<Allocation>) {
        if let (Some(allocator), Some(allocation)) = (self.allocator(), allocation) {
            allocator.release(&self.key_str(name), allocation).await;
        }
    }

    /// Writes `object` over the version at `revision` and sets its new resourceVersion; `Ok(false)` when the
    /// object changed meanwhile.
    async fn write_back(
        &self,
        name: &str,
        object: &mut Value,
        revision: Revision,
    ) -> Result<bool, ApiError> {
        let encoded = self.encode(object)?;
        self.write_encoded(name, object, encoded, revision).await
    }

    /// [`write_back`](Self::write_back) of `object` already encoded as `encoded`.
    async fn write_encoded(
        &self,
        name: &str,
        object: &mut Value,
        encoded: Bytes,
        revision: Revision,
    ) -> Result<bool, ApiError> {
        match self.store.update(self.key(name), encoded, revision).await {
            Ok(kv) => {
                objects::set_resource_version(object, kv.mod_revision);
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(self.store_error(e, name)),
        }
    }

    /// Parses a JSON body for this resource: an object whose `apiVersion` and `kind`, where given, are this
    /// resource's, and whose namespace, where given, is the request's.
    fn decode_body(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut object: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })?;
        let Some(fields) = object.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        };
        let api_version = self.resource.api_version();
        match fields.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
            _ => {}
        }
        match fields.get("kind").and_then(Value::as_str) {
            Some(k) if k != self.resource.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    self.resource.kind
                )));
            }
            _ => {}
        }
        fields.insert("apiVersion".into(), json!(api_version));
        fields.insert("kind".into(), json!(self.resource.kind));
        let meta = objects::metadata_mut(&mut object)?;
        match (
            &self.request.namespace,
            meta.get("namespace").and_then(Value::as_str),
        ) {
            (Some(ns), Some(given)) if !given.is_empty() && given != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(ns), _) => {
                meta.insert("namespace".into(), json!(ns));
            }
            (None, _) => {
                meta.remove("namespace");
            }
        }
        Ok(object)
    }

    /// The request's label and field selectors. Custom resources are selected by name, namespace and the
    /// fields their CRD makes selectable; other fields are refused, as upstream does.
    pub(crate) fn selectors(&self) -> Result<Selectors, ApiError> {
        let selectors = Selectors::from_query(self.query)?;
        if let Some(served) = self.custom {
            let mut supported = vec!["metadata.name", "metadata.namespace"];
            supported.extend(
                served
                    .version()
                    .selectable_fields
                    .iter()
                    .map(String::as_str),
            );
            selectors.fields.check_supported(&supported)?;
        }
        Ok(selectors)
    }

    fn is_crd(&self) -> bool {
        (self.resource.group, self.resource.kind)
            == ("apiextensions.k8s.io", "CustomResourceDefinition")
    }

    /// Defaulting: the kind's built-in defaults, a CRD's own, or those of a custom resource's schema.
    fn apply_defaults(&self, object: &mut Value) {
        match self.custom {
            Some(served) => served.version().schema.apply_defaults(object),
            None if self.is_crd() => gantry_crd::apply_defaults(object),
            None => gantry_api::defaults::apply(self.resource.group, self.resource.kind, object),
        }
    }

    /// What is wrong with a new object: the kind's rules (for kinds without their own, the metadata's), and
    /// a CRD's rules or a custom resource's schema.
    fn validate_new(&self, object: &Value) -> Vec<FieldError> {
        let mut errors = validate::validate_create(self.resource.group, self.resource.kind, object);
        match self.custom {
            Some(served) => errors.extend(served.version().schema.validate(object)),
            None if self.is_crd() => errors.extend(gantry_crd::validate_create(object)),
            None => {}
        }
        errors
    }

    /// [`validate_new`](Self::validate_new) for a change of `old` into `object`.
    fn validate_changed(&self, object: &Value, old: &Value) -> Vec<FieldError> {
        let (group, kind) = (self.resource.group, self.resource.kind);
        let mut errors = validate::validate_update(group, kind, object, old);
        match self.custom {
            Some(served) => errors.extend(served.version().schema.validate(object)),
            None if self.is_crd() => errors.extend(gantry_crd::validate_update(object, old)),
            None => {}
        }
        errors
    }

    /// The `autoscaling/v1` `Scale` of the object: from `spec.replicas`, `status.replicas` and
    /// `spec.selector`, or where a custom resource's CRD says.
    fn scale_of(&self, object: &Value) -> Value {
        let mut scale = scale_of(object);
        if let Some(paths) = self.custom.and_then(|s| s.version().scale.as_ref()) {
            let replicas = |path: &str| {
                custom::get_path(object, path)
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            scale["spec"]["replicas"] = json!(replicas(&paths.spec_replicas_path));
            scale["status"]["replicas"] = json!(replicas(&paths.status_replicas_path));
            let selector = paths
                .label_selector_path
                .as_deref()
                .and_then(|path| custom::get_path(object, path))
                .and_then(Value::as_str)
                .unwrap_or_default();
            scale["status"]["selector"] = json!(selector);
        }
        scale
    }

    fn validate_name(&self, name: &str) -> Result<(), ApiError> {
        // Namespaces are DNS labels (they become parts of DNS names); most other kinds DNS subdomains.
        let problems = if self.resource.plural == "namespaces" {
            validation::is_dns1123_label(name)
        } else {
            validation::is_dns1123_subdomain(name)
        };
        if problems.is_empty() {
            return Ok(());
        }
        let errors: Vec<FieldError> = problems
            .iter()
            .map(|p| FieldError::invalid("metadata.name", name, p.as_str()))
            .collect();
        Err(self.invalid(name, errors))
    }

    fn invalid(&self, name: &str, errors: Vec<FieldError>) -> ApiError {
        ApiError::invalid(self.group_kind(), name, &errors)
    }

    /// New objects need their namespace to exist and not to be terminating. The watch cache answers (as
    /// upstream's admission answers from its informer); the store, when the namespace is too new for it.
    async fn check_namespace_accepts_objects(&self, namespace: &str) -> Result<(), ApiError> {
        let key = format!("/registry/core/namespaces/{namespace}");
        let object = match self.cache.get(key.as_bytes()).1 {
            Some(cached) => cached_value(&cached)?,
            None => {
                let namespaces = GroupResource::new("", "namespaces");
                let kv = self
                    .store
                    .get(key.as_bytes(), None)
                    .await
                    .map_err(ApiError::from)?
                    .ok_or_else(|| ApiError::not_found(namespaces, namespace))?;
                objects::decode(&kv)?
            }
        };
        if object.pointer("/metadata/deletionTimestamp").is_some()
            || object.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        {
            return Err(ApiError::forbidden(
                self.group_resource(),
                "",
                format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }
}

/// Every key under `prefix`, read page by page at one revision.
pub(crate) async fn range_all(
    store: &Arc<dyn Store>,
    prefix: Bytes,
) -> Result<(Revision, Vec<KeyValue>), ApiError> {
    Ok(gantry_store::range_all(store.as_ref(), prefix, LIST_PAGE).await?)
}

/// Whether an object marked for deletion has nothing left holding it: no finalizers, and no grace period running
/// (a stopping pod is deleted by its node agent).
fn finished_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
        && !objects::has_finalizers(object)
        && object
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

/// Sets `metadata.deletionTimestamp` (and a grace period of 0) unless it is set already; whether it changed.
pub(crate) fn mark_deleted(object: &mut Value) -> Result<bool, ApiError> {
    let meta = objects::metadata_mut(object)?;
    if meta.contains_key("deletionTimestamp") {
        return Ok(false);
    }
    meta.insert("deletionTimestamp".into(), json!(objects::now()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    Ok(true)
}

/// Which part of an object a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The object (for kinds with a status subresource: all but the status).
    Main,
    /// Only the status (the `status` subresource).
    Status,
    /// Spec and status together, by the server itself (a pod's binding): not validated as a client's update.
    System,
}

impl Part {
    /// The subresource a write of this part goes through, as managedFields name it.
    pub(crate) fn subresource(self) -> &'static str {
        match self {
            Part::Main => "",
            Part::Status => "status",
            Part::System => "binding",
        }
    }
}

/// What `gantry_apply::Context` borrows: the manager, version, schema, time and reset fields of one write.
pub(crate) struct Writer {
    manager: String,
    api_version: String,
    subresource: &'static str,
    schema: Box<dyn gantry_apply::Schema>,
    now: String,
    reset: Option<gantry_apply::FieldSet>,
}

impl Writer {
    pub(crate) fn context(&self) -> gantry_apply::Context<'_> {
        gantry_apply::Context {
            manager: &self.manager,
            api_version: &self.api_version,
            subresource: self.subresource,
            schema: self.schema.as_ref(),
            now: &self.now,
            reset: self.reset.as_ref(),
        }
    }
}

/// Who records a write's managed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tracking {
    /// The REST engine: the fields the write changed move to its manager (create, PUT, PATCH).
    Update,
    /// The write itself (a server-side apply).
    Applied,
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<Value>) {
    if let Some(fields) = object.as_object_mut() {
        match value {
            Some(value) => fields.insert(field.into(), value),
            None => fields.remove(field),
        };
    }
}

fn parse_patch(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })
}

/// Applies a patch of the given media type.
fn apply_patch(
    base: &Value,
    patch: &Value,
    media: &str,
    schema: &dyn gantry_patch::PatchSchema,
) -> Result<Value, ApiError> {
    match media {
        "application/json-patch+json" => gantry_patch::json_patch(base, patch),
        "application/merge-patch+json" => gantry_patch::merge_patch(base, patch),
        _ => gantry_patch::strategic_merge_patch(base, patch, schema),
    }
    .map_err(|e| ApiError {
        code: e.code(),
        reason: e.reason(),
        message: e.to_string(),
        details: None,
    })
}

/// The `autoscaling/v1` `Scale` of a workload object.
fn scale_of(object: &Value) -> Value {
    let meta = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let selector = object
        .pointer("/spec/selector")
        .and_then(|s| Selector::from_label_selector(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut metadata = json!({
        "name": meta("name"),
        "namespace": meta("namespace"),
        "uid": meta("uid"),
        "resourceVersion": meta("resourceVersion"),
        "creationTimestamp": meta("creationTimestamp"),
    });
    if let Some(fields) = metadata.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// The label and field selectors of a list or watch.
pub(crate) struct Selectors {
    labels: Selector,
    fields: FieldSelector,
}

impl Selectors {
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let labels = match query.get("labelSelector") {
            Some(s) => Selector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => Selector::everything(),
        };
        let fields = match query.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::everything(),
        };
        Ok(Selectors { labels, fields })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.labels.matches_object(object) && self.fields.matches_object(object)
    }

    pub(crate) fn matches_cached(&self, object: &Object) -> bool {
        object.matches(&self.labels, &self.fields)
    }
}

/// A cached object parsed (for Tables and other reshaping).
pub(crate) fn cached_value(object: &Object) -> Result<Value, ApiError> {
    object.value().map_err(|e| {
        ApiError::internal(format!(
            "cached object {} is not JSON: {e}",
            object.key.escape_ascii()
        ))
    })
}

/// A Table of cached objects, written row by row from their JSON (each object parsed only as far as its
/// cells need) rather than built as one tree of values.
fn table_json(
    kind: &'static str,
    include: IncludeObject,
    metadata: Value,
    objects: &[Arc<Object>],
) -> Result<Bytes, ApiError> {
    let head = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": table::column_definitions(kind, true),
    });
    let mut body = open_array(&head, "rows", objects.len() * 256);
    let now = SystemTime::now();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        table::write_row(kind, &object.json, now, include, &mut body).map_err(|e| {
            ApiError::internal(format!(
                "cached object {} is not JSON: {e}",
                object.key.escape_ascii()
            ))
        })?;
    }
    body.extend_from_slice(b"]}");
    Ok(body.into())
}

/// `head` (a JSON object) serialized with one more field, `field`, opened as an array: the caller appends the
/// items, comma-separated, then `]}`. `capacity` is what the items will need.
fn open_array(head: &Value, field: &str, capacity: usize) -> Vec<u8> {
    let head = head.to_string();
    let mut body = Vec::with_capacity(head.len() + field.len() + 6 + capacity);
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(format!(r#","{field}":["#).as_bytes());
    body
}

/// The response with a `Warning` header (`299 - "<text>"`) per warning, which kubectl prints.
pub(crate) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {warning:?}");
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}

/// A list's metadata: its resourceVersion and, if more follows, the continue token.
fn list_metadata(revision: Revision, next: Option<ContinueToken>) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(token) = next {
        metadata["continue"] = json!(encode_continue(&token));
    }
    metadata
}

pub(crate) fn parse_revision(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version {rv:?}")))
}

/// The revision of a list with `resourceVersionMatch=Exact`; other lists read the latest.
fn exact_revision(query: &HashMap<String, String>) -> Result<Option<Revision>, ApiError> {
    match (
        query.get("resourceVersionMatch").map(String::as_str),
        query.get("resourceVersion"),
    ) {
        (Some("Exact"), Some(rv)) => parse_revision(rv).map(Some),
        (Some("Exact"), None) => Err(ApiError::bad_request(
            "resourceVersionMatch=Exact needs a resourceVersion",
        )),
        _ => Ok(None),
    }
}

/// Continue tokens are opaque to clients: base64 of the revision and the last key returned.
fn encode_continue(token: &ContinueToken) -> String {
    let body = json!({"rv": token.revision, "start": base64::engine::general_purpose::STANDARD.encode(&token.last_key)});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
}

fn decode_continue(token: &str) -> Result<ContinueToken, ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let body: Map<String, Value> = serde_json::from_slice(&body).map_err(|_| invalid())?;
    let revision = body.get("rv").and_then(Value::as_i64).ok_or_else(invalid)?;
    let start = body
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    let last_key = base64::engine::general_purpose::STANDARD
        .decode(start)
        .map_err(|_| invalid())?;
    Ok(ContinueToken {
        revision,
        last_key: last_key.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = ContinueToken {
            revision: 42,
            last_key: Bytes::from_static(b"/registry/core/pods/a/b"),
        };
        assert_eq!(decode_continue(&encode_continue(&token)).unwrap(), token);
        assert_eq!(decode_continue("nonsense!").unwrap_err().code, 400);
    }
}
