//! Static assets on the public listener: the tracking snippet (compiled into the binary from
//! `js-snippet/dist/t.js`) and the demo shop (`js-snippet/demo/`).
//!
//! The snippet is served first-party (the shop's own domain gets past ad-blockers), cacheable
//! for `snippet.max_age` with an ETag, and with `Access-Control-Allow-Origin: *` so a
//! cross-origin `<script integrity=... crossorigin>` can be checked by the browser.

use crate::config::SnippetConfig;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// The minified script-tag build.
pub const SNIPPET: &str = include_str!("../../js-snippet/dist/t.js");

const DEMO_HEAD: &str = include_str!("../../js-snippet/demo/head.html");
const DEMO_PAGES: &[(&str, &str)] = &[
    ("", include_str!("../../js-snippet/demo/index.html")),
    (
        "product",
        include_str!("../../js-snippet/demo/product.html"),
    ),
    ("cart", include_str!("../../js-snippet/demo/cart.html")),
    (
        "checkout",
        include_str!("../../js-snippet/demo/checkout.html"),
    ),
    (
        "thank-you",
        include_str!("../../js-snippet/demo/thank-you.html"),
    ),
];

struct Assets {
    etag: HeaderValue,
    cache_control: HeaderValue,
    pages: Vec<(&'static str, String)>,
}

/// FNV-1a, enough to tell builds apart in an ETag.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Routes for the snippet and, when enabled, the demo shop.
pub fn router(config: &SnippetConfig) -> Router {
    let assets = Arc::new(Assets {
        etag: HeaderValue::from_str(&format!("\"{:016x}\"", fingerprint(SNIPPET)))
            .expect("hex is a valid header"),
        cache_control: HeaderValue::from_str(&format!(
            "public, max-age={}",
            config.max_age.as_secs()
        ))
        .expect("digits are a valid header"),
        pages: DEMO_PAGES
            .iter()
            .map(|(name, html)| (*name, html.replace("<!--#head-->", DEMO_HEAD)))
            .collect(),
    });
    let mut router = Router::new().route(&config.path, get(snippet));
    if config.demo {
        router = router
            .route("/demo", get(demo_index))
            .route("/demo/{page}", get(demo_page));
    }
    router.with_state(assets)
}

async fn snippet(State(assets): State<Arc<Assets>>, headers: HeaderMap) -> Response {
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == assets.etag)
    {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, assets.etag.clone())],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, assets.cache_control.clone()),
            (header::ETAG, assets.etag.clone()),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        SNIPPET,
    )
        .into_response()
}

async fn demo_index(State(assets): State<Arc<Assets>>) -> Response {
    demo(&assets, "")
}

async fn demo_page(State(assets): State<Arc<Assets>>, Path(page): Path<String>) -> Response {
    demo(&assets, &page)
}

fn demo(assets: &Assets, page: &str) -> Response {
    match assets.pages.iter().find(|(name, _)| *name == page) {
        Some((_, html)) => Html(html.clone()).into_response(),
        None => super::ApiError::NotFound.into_response(),
    }
}
