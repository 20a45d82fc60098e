//! Server-side apply: `PATCH` with `application/apply-patch+yaml`. The merge, ownership and conflicts are
//! `gantry-apply`'s; here the request is checked, the object created when absent, and the result goes
//! through the same defaulting, validation and compare-and-swap as every write.

use gantry_api::field::FieldError;
use gantry_api::{ApiError, GroupKind};
use gantry_apply::{ApplyError, ManagedFields};
use http::StatusCode;
use serde_json::{Value, json};

use crate::response::{self, Response};
use crate::rest::{Call, Part, Tracking, with_warnings};

impl Call<'_> {
    pub(crate) async fn server_side_apply(
        &self,
        name: &str,
        part: Part,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let invalid_options = |error: FieldError| {
            ApiError::invalid(GroupKind::new("meta.k8s.io", "PatchOptions"), "", &[error])
        };
        if self.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(invalid_options(FieldError::required(
                "fieldManager",
                "is required for apply patch",
            )));
        }
        let force = match self.query.get("force").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid force {other:?}: use true or false"
                )));
            }
        };
        let mut config = self.apply_configuration(name, body)?;
        let warnings = self.unknown_fields(&mut config, None)?;
        let writer = self.writer(part.subresource());
        let cx = writer.context();
        let failed = |e: ApplyError| self.apply_error(name, e);
        let create = || async {
            let (object, _) =
                gantry_apply::apply(None, &config, &ManagedFields::default(), force, &cx)
                    .map_err(failed)?;
            self.create_object(object, &warnings, Tracking::Applied)
                .await
        };
        // Absent (as far as the watch cache knows): the apply creates it; a create that finds it after all
        // makes it an update, and an update that finds it gone a create.
        let absent = part == Part::Main && !self.cached(name);
        if absent {
            match create().await {
                Err(e) if e.reason == "AlreadyExists" => {}
                created => return created,
            }
        }
        let updated = self
            .guaranteed_update_tracked(name, part, Tracking::Applied, |live| {
                let managed = ManagedFields::from_object(live).unwrap_or_default();
                let (object, _) = gantry_apply::apply(Some(live), &config, &managed, force, &cx)
                    .map_err(failed)?;
                Ok(object)
            })
            .await;
        match updated {
            Err(e) if e.code == 404 && part == Part::Main && !absent => create().await,
            updated => Ok(with_warnings(
                response::json(StatusCode::OK, &updated?),
                &warnings,
            )),
        }
    }

    /// The applied configuration: YAML (or JSON) naming this resource's kind and the object of the URL.
    fn apply_configuration(&self, name: &str, body: &[u8]) -> Result<Value, ApiError> {
        let mut config: Value = serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        let Some(fields) = config.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        };
        let api_version = self.resource.api_version();
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let (sent_version, sent_kind) = (text(fields.get("apiVersion")), text(fields.get("kind")));
        if sent_version != api_version || sent_kind != self.resource.kind {
            return Err(ApiError::bad_request(format!(
                "the applied configuration is a {sent_kind:?} of {sent_version:?}, not a {} of {api_version}",
                self.resource.kind
            )));
        }
        let meta = fields.entry("metadata").or_insert_with(|| json!({}));
        let Some(meta) = meta.as_object_mut() else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if n == name => {}
            None => {
                meta.insert("name".into(), json!(name));
            }
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let Some(namespace) = &self.request.namespace {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if ns == namespace => {}
                None => {
                    meta.insert("namespace".into(), json!(namespace));
                }
                Some(ns) => {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the object ({ns}) does not match the namespace on the URL ({namespace})"
                    )));
                }
            }
        }
        Ok(config)
    }

    fn apply_error(&self, name: &str, error: ApplyError) -> ApiError {
        match error {
            ApplyError::Conflicts(conflicts) => conflicts.to_api_error(),
            ApplyError::BadRequest(message) => ApiError::bad_request(message),
            // Upstream answers a configuration that does not fit the schema with a 500 of this wording.
            ApplyError::Invalid(message) => {
                let namespace = self.request.namespace.as_deref().unwrap_or_default();
                ApiError::internal(format!(
                    "failed to create typed patch object ({namespace}/{name}; {}, Kind={}): {message}",
                    self.resource.api_version(),
                    self.resource.kind
                ))
            }
        }
    }
}
