//! The api described: `GET /openapi.json` (the document, see `crate::http::openapi`) and `GET /docs`
//! (Swagger UI for it, as FastAPI's `/docs` was).
//!
//! Swagger UI's files are compiled into the binary (`api/assets/swagger-ui`, written by
//! `scripts/vendor-swagger-ui.sh`), so the page loads nothing from elsewhere: no CDN, and its
//! validator badge (which would send the document to validator.swagger.io) is off. None of
//! these routes needs a key: they describe the api and reveal nothing of what it holds.

use crate::http::openapi;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::LazyLock;

const SWAGGER_UI_BUNDLE: &[u8] = include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &[u8] = include_bytes!("../../../assets/swagger-ui/swagger-ui.css");
const SWAGGER_UI_VERSION: &str = include_str!("../../../assets/swagger-ui/VERSION");

/// The assets' URLs carry the Swagger UI version, so a browser may keep them for a year: an
/// upgrade changes the URL.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";
/// The page and the document change with the binary: revalidate each time.
const NO_CACHE: &str = "no-cache";

/// The four routes, public (outside the bound on requests in flight: they are cheap and static).
pub fn router() -> Router {
    Router::new()
        .route("/openapi.json", get(get_openapi))
        .route("/docs", get(get_docs))
        .route("/docs/swagger-ui-bundle.js", get(get_swagger_ui_bundle))
        .route("/docs/swagger-ui.css", get(get_swagger_ui_css))
}

/// The OpenAPI 3.1 document of this api.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this api.", body = Object, content_type = "application/json")),
    security(()),
)]
pub async fn get_openapi() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, NO_CACHE),
        ],
        openapi::json(),
    )
}

/// The page: Swagger UI pointed at `openapi.json`. Relative URLs, so that it also works behind
/// a proxy that serves the api under a path prefix.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let version = SWAGGER_UI_VERSION.trim();
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>faas API</title>
<link rel="stylesheet" href="docs/swagger-ui.css?v={version}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js?v={version}"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
}});
</script>
</body>
</html>
"##
    )
});

/// Swagger UI for this api's document; "Authorize" takes a key.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    summary = "Interactive documentation",
    responses((status = 200, description = "Swagger UI for `/openapi.json`, served from the binary.", body = String, content_type = "text/html")),
    security(()),
)]
pub async fn get_docs() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, NO_CACHE),
        ],
        PAGE.as_str(),
    )
}

/// Swagger UI's script (swagger-ui-dist, version in `api/assets/swagger-ui/VERSION`).
#[utoipa::path(
    get,
    path = "/docs/swagger-ui-bundle.js",
    tag = "docs",
    summary = "Swagger UI's script",
    responses((status = 200, description = "Swagger UI's bundle.", body = String, content_type = "text/javascript")),
    security(()),
)]
pub async fn get_swagger_ui_bundle() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, ASSET_CACHE),
        ],
        SWAGGER_UI_BUNDLE,
    )
}

/// Swagger UI's stylesheet.
#[utoipa::path(
    get,
    path = "/docs/swagger-ui.css",
    tag = "docs",
    summary = "Swagger UI's stylesheet",
    responses((status = 200, description = "Swagger UI's stylesheet.", body = String, content_type = "text/css")),
    security(()),
)]
pub async fn get_swagger_ui_css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, ASSET_CACHE),
        ],
        SWAGGER_UI_CSS,
    )
}
