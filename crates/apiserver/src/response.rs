//! Building responses: JSON bodies, `Status` errors, streams.

use std::convert::Infallible;

use bytes::Bytes;
use gantry_api::ApiError;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde::Serialize;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;
pub(crate) type Response = http::Response<Body>;

pub(crate) const JSON: &str = "application/json";

/// A response with `body` and its content type.
pub(crate) fn bytes(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = http::Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// `value` as a JSON response.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => bytes(status, JSON, body),
        Err(e) => error(&ApiError::internal(format!(
            "cannot encode the response: {e}"
        ))),
    }
}

/// The error as a Kubernetes `Status` with its HTTP code.
pub(crate) fn error(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = bytes(status, JSON, err.to_json());
    if let Some(seconds) = err.retry_after_seconds() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The 404 for a path that names nothing served.
pub(crate) fn path_not_found() -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: None,
    }
}

/// The result of a handler, errors turned into `Status` responses.
pub(crate) fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| error(&e))
}
