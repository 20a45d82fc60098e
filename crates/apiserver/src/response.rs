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

pub(crate) const YAML: &str = "application/yaml";

/// Whether `Accept` prefers YAML: it names `application/yaml` before any JSON or wildcard.
pub(crate) fn wants_yaml(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
        return false;
    };
    for media in accept.split(',') {
        match media.split(';').next().unwrap_or("").trim() {
            YAML => return true,
            "application/json" | "*/*" | "application/*" => return false,
            _ => {}
        }
    }
    false
}

/// The same answer in YAML, for a JSON response (bodies here are whole, not streamed).
pub(crate) async fn to_yaml(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(JSON.as_bytes()));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let yaml = serde_json::from_slice::<serde_json::Value>(&collected.to_bytes())
        .map_err(|e| e.to_string())
        .and_then(|value| serde_yaml_ng::to_string(&value).map_err(|e| e.to_string()));
    match yaml {
        Ok(yaml) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(YAML));
            parts.headers.remove(header::CONTENT_LENGTH);
            http::Response::from_parts(parts, Full::new(Bytes::from(yaml)).boxed_unsync())
        }
        Err(e) => error(&ApiError::internal(format!(
            "cannot encode the response as YAML: {e}"
        ))),
    }
}
