//! The api described: `/openapi.json` is an OpenAPI 3.1 document of every route, and `/docs`
//! is a Swagger UI page whose files come from the api itself; none of them needs a key.

use crate::support::TestApp;
use serde_json::Value;

/// GET `path` without a key: status, content type, cache header and body.
async fn fetch(app: &TestApp, path: &str) -> (u16, String, String, Vec<u8>) {
    let response = reqwest::get(app.url(path)).await.expect("the api answers");
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap().to_vec();
    (status, content_type, cache, body)
}

#[tokio::test]
async fn the_document_describes_every_route_and_needs_no_key() {
    let app = TestApp::start().await;
    let (status, content_type, _, body) = fetch(&app, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = serde_json::from_slice(&body).expect("the document is JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/functions/",
        "/functions/{id}",
        "/execute/{name}",
        "/execute_gvisor/{name}",
        "/metrics/",
        "/keys/",
        "/keys/{id}",
        "/namespaces/",
        "/namespaces/{name}",
        "/whoami",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The seed's error shape, with the machine codes.
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(
        codes
            .as_array()
            .unwrap()
            .contains(&Value::from("function_not_found")),
        "{codes}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_docs_page_and_its_assets_come_from_the_api() {
    let app = TestApp::start().await;
    let (status, content_type, cache, body) = fetch(&app, "/docs").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(cache, "no-cache");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("openapi.json"), "{page}");
    // Nothing from a CDN (or any other host): every URL in the page is relative.
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"),
        "{page}"
    );
    for (asset, kind) in [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
    ] {
        assert!(
            page.contains(&format!("docs/{asset}")),
            "{asset} not linked"
        );
        let (status, content_type, cache, body) = fetch(&app, &format!("/docs/{asset}")).await;
        assert_eq!(status, 200, "{asset}");
        assert!(content_type.starts_with(kind), "{asset}: {content_type}");
        assert!(cache.contains("max-age="), "{asset}: {cache}");
        assert!(body.len() > 10_000, "{asset} is {} bytes", body.len());
    }
    app.stop().await;
}
