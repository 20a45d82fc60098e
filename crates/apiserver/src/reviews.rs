//! Reviews: questions asked by creating an object, answered in its status and never stored.
//! `SelfSubjectAccessReview` (`kubectl auth can-i`) and `SelfSubjectReview` (`kubectl auth whoami`).

use gantry_api::ApiError;
use http::StatusCode;
use serde_json::{Value, json};

use crate::response::{self, Response};
use crate::rest::Call;

impl Call<'_> {
    /// Answers a review. There is no authorization yet (RBAC comes later): every authenticated identity may
    /// do everything, and an access review says so.
    pub(crate) fn review(&self, body: &[u8]) -> Result<Response, ApiError> {
        let mut review: Value = serde_json::from_slice(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                ApiError::bad_request("the body of the request must be a JSON object")
            })?;
        review["apiVersion"] = json!(self.resource.api_version());
        review["kind"] = json!(self.resource.kind);
        review["status"] = match self.resource.kind {
            "SelfSubjectAccessReview" => {
                let attributes = review.pointer("/spec/resourceAttributes").is_some()
                    || review.pointer("/spec/nonResourceAttributes").is_some();
                if !attributes {
                    return Err(ApiError::invalid(
                        gantry_api::GroupKind::new(self.resource.group, self.resource.kind),
                        "",
                        &[gantry_api::field::FieldError::invalid(
                            "spec.resourceAttributes",
                            Value::Null,
                            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                        )],
                    ));
                }
                json!({"allowed": true, "reason": "gantry does not authorize yet: every authenticated user may do everything"})
            }
            _ => {
                json!({"userInfo": {"username": self.identity.user, "groups": self.identity.groups}})
            }
        };
        Ok(response::json(StatusCode::CREATED, &review))
    }
}
