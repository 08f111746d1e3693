//! The web console without a browser (issue 23): sessions, CSRF, the headers, and what a wrong
//! key, a planted session id, a revoked key and a sign-out get. Cookies are carried by hand,
//! as a browser would, so that each one the console sets is checked.

use crate::support::{ADMIN_KEY, TestApp, python};
use common::Runtime;
use reqwest::header::{CONTENT_SECURITY_POLICY, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

/// A client that follows no redirect and keeps no cookie: the test does both.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `faas_console` cookie's value in a response's `Set-Cookie`, with its attributes.
fn set_cookie(headers: &HeaderMap) -> Option<(String, String)> {
    let line = headers.get(SET_COOKIE)?.to_str().unwrap().to_owned();
    let value = line
        .strip_prefix("faas_console=")?
        .split(';')
        .next()?
        .to_owned();
    Some((value, line))
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

pub struct Console<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
}

impl Console<'_> {
    pub fn new(app: &TestApp) -> Console<'_> {
        Console {
            app,
            client: browser(),
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, HeaderMap, String) {
        let mut request = self.client.get(self.app.url(path));
        if let Some(id) = cookie {
            request = request.header("Cookie", format!("faas_console={id}"));
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    pub async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, HeaderMap, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .client
            .post(self.app.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(id) = cookie {
            request = request.header("Cookie", format!("faas_console={id}"));
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// A sign-in form: its session's id and token.
    async fn form(&self) -> (String, String) {
        let (status, headers, html) = self.get("/console/sign-in", None).await;
        assert_eq!(status, 200, "{html}");
        let (id, _) = set_cookie(&headers).expect("the form's session cookie");
        (id, csrf_of(&html))
    }

    /// Signs in with `key`; the session's id.
    pub async fn sign_in(&self, key: &str) -> String {
        let (form, csrf) = self.form().await;
        let (status, headers, body) = self
            .post(
                "/console/sign-in",
                Some(&form),
                &[("key", key), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(status, 303, "{body}");
        set_cookie(&headers).expect("a session cookie").0
    }
}

#[tokio::test]
async fn a_key_signs_in_to_a_session_that_never_shows_the_key_and_a_sign_out_ends_it() {
    let app = TestApp::start().await;
    app.create_function(python(
        "listed",
        "def handler(event, context):\n    return 1",
    ))
    .await;
    let console = Console::new(&app);

    // No session: to the sign-in page, and back afterwards.
    let (status, headers, _) = console.get("/console/functions", None).await;
    assert_eq!(status, 303);
    assert_eq!(
        headers[LOCATION],
        "/console/sign-in?next=%2Fconsole%2Ffunctions"
    );

    // The form: its own session, in a cookie scripts cannot read, on a page nobody may frame.
    let (status, headers, html) = console.get("/console/sign-in", None).await;
    assert_eq!(status, 200);
    let (form, attributes) = set_cookie(&headers).unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=600"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!html.contains("<script"), "no script at all");
    let csrf = csrf_of(&html);

    // A wrong key: the form again with why, and no session.
    let (status, headers, html) = console
        .post(
            "/console/sign-in",
            Some(&form),
            &[("key", "not-a-key"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 401);
    assert!(html.contains("That key is not valid"), "{html}");
    assert!(set_cookie(&headers).is_none());
    // Without the form's token, or without its cookie: refused, nothing signed in.
    for (cookie, token) in [
        (Some(form.as_str()), ""),
        (None, csrf.as_str()),
        (Some("planted"), csrf.as_str()),
    ] {
        let (status, _, _) = console
            .post(
                "/console/sign-in",
                cookie,
                &[("key", ADMIN_KEY), ("csrf", token)],
            )
            .await;
        assert_eq!(status, 403, "cookie {cookie:?}, token {token:?}");
    }

    // The right key: a new session (not the form's id), and back where it was going.
    let (status, headers, _) = console
        .post(
            "/console/sign-in",
            Some(&form),
            &[
                ("key", ADMIN_KEY),
                ("csrf", &csrf),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/functions", "never elsewhere");
    let (session, attributes) = set_cookie(&headers).unwrap();
    assert_ne!(session, form);
    assert!(attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"));
    // The form's session is spent.
    let (status, _, _) = console
        .post(
            "/console/sign-in",
            Some(&form),
            &[("key", ADMIN_KEY), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 403);

    let (status, _, html) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("listed") && html.contains("<code>/listed</code>"),
        "{html}"
    );
    assert!(!html.contains(ADMIN_KEY), "the key is in no page");

    // Signing out needs the session's token; without it nothing changes.
    let (status, _, _) = console
        .post("/console/sign-out", Some(&session), &[("csrf", "guess")])
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 200, "still signed in");
    let token = csrf_of(&console.get("/console/functions", Some(&session)).await.2);
    let (status, headers, _) = console
        .post("/console/sign-out", Some(&session), &[("csrf", &token)])
        .await;
    assert_eq!(status, 303);
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, _, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 303, "signed out");
    app.stop().await;
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions_and_a_session_sees_only_its_namespace() {
    let app = TestApp::start().await;
    let key = app
        .namespace_with_key("console-ns", &["read", "invoke"])
        .await;
    app.create_function(python(
        "elsewhere",
        "def handler(event, context):\n    return 1",
    ))
    .await;
    let console = Console::new(&app);
    let session = console.sign_in(&key).await;
    let (status, _, html) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 200);
    assert!(html.contains("console-ns"), "{html}");
    assert!(
        !html.contains("elsewhere"),
        "another namespace's function: {html}"
    );

    let key_id = key
        .strip_prefix("faas_")
        .unwrap()
        .split('_')
        .next()
        .unwrap();
    let (status, body) = app.delete(&format!("/keys/{key_id}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, headers, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 303, "the revoked key's session is over");
    assert!(
        headers[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/console/sign-in")
    );
    let (status, _, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 303);
    app.stop().await;
}

/// The key a keys page shows once, if any.
fn made_key(html: &str) -> Option<String> {
    let at = html.find("id=\"new-key\"")?;
    let value = html[at..].find("value=\"")? + at + 7;
    Some(html[value..].split('"').next()?.to_owned())
}

#[tokio::test]
async fn a_key_made_in_the_console_is_shown_once_and_revoking_it_ends_its_sessions() {
    let app = TestApp::start().await;
    let console = Console::new(&app);
    let admin = console.sign_in(ADMIN_KEY).await;
    let (status, _, html) = console.get("/console/keys", Some(&admin)).await;
    assert_eq!(status, 200, "{html}");
    let csrf = csrf_of(&html);

    // Without the session's token: 403, and no key made.
    let (status, _, _) = console
        .post(
            "/console/keys",
            Some(&admin),
            &[("scope", "invoke"), ("csrf", "nope")],
        )
        .await;
    assert_eq!(status, 403);
    // No scope: the api's own rule, on the page, nothing made.
    let (status, _, html) = console
        .post(
            "/console/keys",
            Some(&admin),
            &[("csrf", &csrf), ("description", "none")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(made_key(&html).is_none());

    let (status, _, html) = console
        .post(
            "/console/keys",
            Some(&admin),
            &[
                ("csrf", &csrf),
                ("scope", "invoke"),
                ("scope", "read"),
                ("description", "from the console"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let key = made_key(&html).expect("the new key, shown once");
    assert!(key.starts_with("faas_"), "{key}");
    assert!(
        html.contains("src=\"/console/console.js\""),
        "its copy button's script, a file"
    );
    let key_id = key
        .strip_prefix("faas_")
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    let (_, _, html) = console.get("/console/keys", Some(&admin)).await;
    assert!(html.contains(&key_id) && html.contains("from the console"));
    assert!(!html.contains(&key), "shown once only");

    // Its own session: an invoke and read key sees functions, not keys.
    let session = console.sign_in(&key).await;
    let (status, _, _) = console.get("/console/keys", Some(&session)).await;
    assert_eq!(status, 403);
    let (status, _, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 200);

    // Revoked from the console (with the token only): its session is over.
    let revoke = format!("/console/keys/{key_id}/revoke");
    let (status, _, _) = console
        .post(&revoke, Some(&admin), &[("csrf", "nope")])
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 200, "not revoked yet");
    let (status, headers, _) = console
        .post(&revoke, Some(&admin), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/console/keys");
    let (status, _, _) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 303, "the revoked key's session ended");
    let (_, _, html) = console.get("/console/keys", Some(&admin)).await;
    assert!(!html.contains(&key_id), "no longer listed");
    app.stop().await;
}

#[tokio::test]
async fn a_functions_page_shows_its_settings_code_and_calls_and_is_404_to_another_namespace() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let code = "def handler(event, context):\n    print('line from', event.get('who'))\n    if event.get('fail'):\n        raise ValueError('asked to <fail>')\n    return 1";
    let created = app.create_function(python("paged", code)).await;
    let id = created["id"].as_i64().unwrap();
    for event in [
        json!({"who": "ada"}),
        json!({"who": "bob"}),
        json!({"fail": true}),
    ] {
        app.invoke("execute", "paged", event).await;
    }
    for _ in 0..100 {
        let (_, records) = app.get("/metrics/?function=paged").await;
        if records.as_array().is_some_and(|r| r.len() == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let console = Console::new(&app);
    let session = console.sign_in(ADMIN_KEY).await;
    let (_, _, list) = console.get("/console/functions", Some(&session)).await;
    assert!(
        list.contains(&format!("href=\"/console/functions/{id}\"")),
        "{list}"
    );

    let page = format!("/console/functions/{id}");
    let (status, _, html) = console.get(&page, Some(&session)).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("asked to &lt;fail&gt;"),
        "the code and the error, escaped: {html}"
    );
    assert!(!html.contains("asked to <fail>"));
    assert!(
        html.contains("line from ada") && html.contains("line from bob"),
        "logs: {html}"
    );
    assert_eq!(html.matches("<td class=\"status ").count(), 3);
    let (_, _, failed) = console
        .get(&format!("{page}?status=failed"), Some(&session))
        .await;
    assert_eq!(failed.matches("<td class=\"status ").count(), 1, "{failed}");
    assert!(!failed.contains("line from ada"));

    // Another namespace's session: the same id is not found; a key that may only invoke
    // reads no function at all.
    let reader = app.namespace_with_key("elsewhere-ns", &["read"]).await;
    let other = console.sign_in(&reader).await;
    let (status, _, _) = console.get(&page, Some(&other)).await;
    assert_eq!(status, 404);
    let (status, _, _) = console
        .get("/console/functions/not-a-number", Some(&other))
        .await;
    assert_eq!(status, 404);
    let invoker = app.key_of("default", &["invoke"]).await;
    let caller = console.sign_in(&invoker).await;
    for path in ["/console/functions", page.as_str()] {
        let (status, _, _) = console.get(path, Some(&caller)).await;
        assert_eq!(status, 403, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_console_page_is_on_the_apis_origin_only() {
    let app = TestApp::start().await;
    let on_api = browser()
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status().as_u16(), 200);
    let on_functions = browser()
        .get(app.fn_url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        on_functions.status().as_u16(),
        200,
        "not on the functions' origin"
    );
    assert!(!on_functions.text().await.unwrap().contains("Sign in"));
    app.stop().await;
}

/// In real headless Chromium: the sign-in with a wrong key then the right one, the list, no
/// key and no cookie a script can read, no CSP violation, a page that tries to frame the
/// console refused, a sign-out; at 1280x800 and at 390 px wide. With
/// `FAAS_CONSOLE_SCREENSHOTS=docs/console` it leaves the screenshots there.
#[tokio::test]
async fn in_chromium_a_person_signs_in_sees_the_functions_and_signs_out() {
    let app = TestApp::start().await;
    app.create_function(python(
        "hello",
        "def handler(event, context):\n    return 1",
    ))
    .await;
    app.create_function(python(
        "webhook",
        "def handler(event, context):\n    return 2",
    ))
    .await;
    for (width, height, suffix) in [(1280, 800, ""), (390, 844, "-narrow")] {
        let browser = crate::browser::Browser::start(width, height).await;
        browser.go(&app.url("/console/functions")).await;
        assert!(
            browser.url().await.contains("/console/sign-in?next="),
            "sent to sign in"
        );
        browser.screenshot(&format!("sign-in{suffix}")).await;

        browser.type_into("#key", "faas_wrong").await;
        browser.click("button[type=submit]").await;
        let mut page = String::new();
        for _ in 0..100 {
            page = browser.source().await;
            if page.contains("That key is not valid") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(page.contains("That key is not valid"), "{page}");
        browser
            .screenshot(&format!("sign-in-wrong-key{suffix}"))
            .await;

        browser.type_into("#key", ADMIN_KEY).await;
        browser.click("form.card button[type=submit]").await;
        assert!(
            browser
                .url_with("/console/functions")
                .await
                .ends_with("/console/functions")
        );
        let page = browser.source().await;
        assert!(page.contains("hello") && page.contains("webhook"), "{page}");
        assert!(!page.contains(ADMIN_KEY), "the key is in no page");
        assert_eq!(
            browser.eval("document.cookie").await,
            "",
            "no cookie a script can read"
        );
        assert_eq!(browser.eval("window.localStorage.length").await, 0);
        browser.screenshot(&format!("functions{suffix}")).await;
        browser.click("a[href^='/console/functions/']").await;
        let page = browser.url_with("/console/functions/").await;
        assert!(page.contains("/console/functions/"), "{page}");
        assert!(browser.source().await.contains("return 1"));
        browser.screenshot(&format!("function{suffix}")).await;
        let violations: Vec<String> = browser
            .console_log()
            .await
            .into_iter()
            .filter(|line| line.contains("Content Security Policy"))
            .collect();
        assert!(violations.is_empty(), "{violations:?}");

        // A page elsewhere (here, one made of a data: URL) cannot frame the console: the
        // browser shows an error page of its own in the frame, not the console's.
        let framing = format!(
            "data:text/html,<iframe id=f src=\"{}\"></iframe>",
            app.url("/console/sign-in")
        );
        browser.go(&framing).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let framed = browser.frame_source("#f").await;
        assert!(
            !framed.contains("faas console") && !framed.contains("API key"),
            "the console showed in a frame: {framed}"
        );

        // A key made on the keys page, shown once, then revoked from its row.
        browser.go(&app.url("/console/keys")).await;
        browser.click("input[name=scope][value=invoke]").await;
        browser.type_into("#description", "made in Chromium").await;
        browser.click("form.card button[type=submit]").await;
        let mut key = serde_json::Value::Null;
        for _ in 0..100 {
            key = browser.eval("document.getElementById('new-key') && document.getElementById('new-key').value").await;
            if key.is_string() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let key = key.as_str().expect("the new key on the page").to_owned();
        assert!(key.starts_with("faas_"));
        browser.screenshot(&format!("keys-made{suffix}")).await;
        let violations: Vec<String> = browser
            .console_log()
            .await
            .into_iter()
            .filter(|line| line.contains("Content Security Policy"))
            .collect();
        assert!(
            violations.is_empty(),
            "the keys page's script: {violations:?}"
        );
        let key_session = Console::new(&app).sign_in(&key).await;
        let key_id = key
            .strip_prefix("faas_")
            .unwrap()
            .split('_')
            .next()
            .unwrap()
            .to_owned();
        browser
            .click(&format!("button[aria-label='Revoke key {key_id}']"))
            .await;
        let mut listed = true;
        for _ in 0..100 {
            if browser.url().await.ends_with("/console/keys")
                && !browser.source().await.contains(&key_id)
            {
                listed = false;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(!listed, "the revoked key is still listed");
        browser.screenshot(&format!("keys{suffix}")).await;
        let (status, _, _) = Console::new(&app)
            .get("/console/functions", Some(&key_session))
            .await;
        assert_eq!(status, 303, "the revoked key's session ended");

        browser.go(&app.url("/console/functions")).await;
        browser.click("form.inline button[type=submit]").await;
        assert!(
            browser
                .url_with("/console/sign-in")
                .await
                .contains("/console/sign-in"),
            "signed out"
        );
        browser.go(&app.url("/console/functions")).await;
        assert!(
            browser.url().await.contains("/console/sign-in"),
            "and it stays so"
        );
        browser.quit().await;
    }
    app.stop().await;
}
