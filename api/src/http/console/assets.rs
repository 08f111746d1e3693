//! The console's static files, compiled into the binary: its stylesheet and script, and the
//! vendored CodeMirror bundle and htmx (`api/assets/console/vendor`, written by
//! `scripts/vendor-console-assets.sh` from pinned npm packages). Every page works without them,
//! as plain links and forms; htmx only swaps a part of a page where a reload would lose
//! something (a function's invocation filters keep the editor's unsaved code). The vendored
//! files are pinned by their SHA-256 in `vendor/SHA256SUMS`, which a test holds them to; pages name them
//! with the first 12 hex digits of it, so a browser may keep them for a year.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CONSOLE_CSS: &str = include_str!("../../../assets/console/console.css");
const CONSOLE_JS: &str = include_str!("../../../assets/console/console.js");
const HTMX_JS: &[u8] = include_bytes!("../../../assets/console/vendor/htmx.min.js");
const EDITOR_JS: &[u8] = include_bytes!("../../../assets/console/vendor/editor.js");
const LICENSES: &str = include_str!("../../../assets/console/vendor/LICENSES.txt");
/// `sha256sum` lines of the vendored scripts.
const SHA256SUMS: &str = include_str!("../../../assets/console/vendor/SHA256SUMS");

/// A vendored file's pinned SHA-256, as `SHA256SUMS` gives it.
fn pinned(file: &str) -> &'static str {
    SHA256SUMS
        .lines()
        .filter_map(|line| line.split_once("  "))
        .find(|(_, name)| *name == file)
        .map(|(digest, _)| digest)
        .unwrap_or("")
}

/// The URL of vendored `file`, versioned by its pinned digest.
pub fn vendor_url(file: &str) -> String {
    let digest = pinned(file);
    format!(
        "/console/vendor/{file}?v={}",
        &digest[..digest.len().min(12)]
    )
}

pub async fn get_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CONSOLE_CSS,
    )
}

pub async fn get_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CONSOLE_JS,
    )
}

/// A vendored file; named by digest, so it never changes under its URL.
pub async fn get_vendor(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "htmx.min.js" => (HTMX_JS, "text/javascript; charset=utf-8"),
        "editor.js" => (EDITOR_JS, "text/javascript; charset=utf-8"),
        "LICENSES.txt" => (LICENSES.as_bytes(), "text/plain; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_scripts_are_the_ones_pinned_by_their_sha256() {
        for (file, body) in [("htmx.min.js", HTMX_JS), ("editor.js", EDITOR_JS)] {
            let digest = common::hex(&crate::domain::auth::sha256(body));
            assert_eq!(pinned(file).len(), 64, "{file} is pinned in SHA256SUMS");
            assert_eq!(digest, pinned(file), "{file} is not the pinned file");
            assert!(vendor_url(file).ends_with(&digest[..12]));
        }
    }
}
