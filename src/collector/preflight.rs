//! CORS preflight for `POST /v1/events`: 204 with the allowed origin for origins that any site
//! allows, 403 otherwise; rate-limited per client like the posts themselves.

use super::{ApiError, CollectorState, peer, truncate};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn preflight(
    State(st): State<Arc<CollectorState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let headers = parts.headers;
    // Preflights are requests too: the same per-client rate.
    st.check_client(st.resolver.resolve(&headers, peer(&parts.extensions)))?;
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok((StatusCode::NO_CONTENT, [(header::ALLOW, "POST, OPTIONS")]).into_response());
    };
    if !st.sites().list.iter().any(|(_, s)| s.allows_origin(origin)) {
        return Err(ApiError::PreflightRefused(truncate(origin)));
    }
    let origin = HeaderValue::from_str(origin)
        .map_err(|_| ApiError::PreflightRefused("(invalid)".into()))?;
    Ok((
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, content-encoding"),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            ),
            (header::VARY, HeaderValue::from_static("Origin")),
        ],
    )
        .into_response())
}
