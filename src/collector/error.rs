//! Whole-request failures of the public API, each mapped to one status and a JSON body
//! `{"error": code, "message": text}` that tells the sender what to change. Messages describe
//! the client's input, never internal state; client text they quote (a site name, an origin,
//! serde's account of a malformed body) has its personal data masked on the way out.

use super::mask::mask;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("site or write key `{0}` is not configured")]
    UnknownSite(String),
    #[error("site `{0}` takes a write key (or a signed request), not its id")]
    KeyRequired(String),
    #[error("bad Touchstream-Signature: {0}")]
    BadSignature(String),
    #[error("origin `{0}` is not allowed to send events for this site")]
    OriginNotAllowed(String),
    #[error("origin `{0}` is not allowed to send events")]
    PreflightRefused(String),
    #[error("this endpoint takes POST (and OPTIONS for CORS preflight)")]
    MethodNotAllowed,
    #[error("no such endpoint; events go to POST /v1/events")]
    NotFound,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body was not received within {0} s")]
    Timeout(u64),
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    #[error("the pipeline cannot take events right now; retry after {RETRY_AFTER_SECS} s")]
    Unavailable,
}

impl ApiError {
    /// 429 with `Retry-After` in whole seconds, at least one: when a bucket refills enough.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        ApiError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            ApiError::UnknownSite(_) => (StatusCode::UNAUTHORIZED, "unknown_site"),
            ApiError::KeyRequired(_) => (StatusCode::UNAUTHORIZED, "key_required"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::OriginNotAllowed(_) | ApiError::PreflightRefused(_) => {
                (StatusCode::FORBIDDEN, "origin_not_allowed")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = (
            status,
            axum::Json(json!({"error": code, "message": mask(&self.to_string())})),
        )
            .into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            ApiError::RateLimited(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            }
            _ => {}
        }
        response
    }
}
