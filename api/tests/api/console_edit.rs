//! The console's function pages without a browser (issue 23): a function made from a template,
//! code deployed as new versions, settings refused by field and saved, versions compared and
//! rolled back, test events run and saved, a dead letter redriven, live logs streamed, the build
//! page; and what a missing CSRF token, a stale page and another namespace get. What the pages
//! change is read back through the api.

use crate::console::{Console, csrf_of};
use crate::support::{TestApp, python, read};
use common::Runtime;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The id in a `Location: /console/functions/{id}...`.
fn function_id_in(location: &str) -> i64 {
    location
        .trim_start_matches("/console/functions/")
        .split(['?', '#', '/'])
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no function id in {location:?}"))
}

fn location(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_function_made_from_a_template_is_edited_refused_by_field_and_rolled_back() {
    // A worker: every save of new code is loaded on one first.
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let console = Console::new(&app);
    let session = console.sign_in(crate::support::ADMIN_KEY).await;
    let (status, _, new) = console.get("/console/new", Some(&session)).await;
    assert_eq!(status, 200, "{new}");
    assert!(new.contains("value=\"python-cron\""), "{new}");
    let csrf = csrf_of(&new);

    // Without the token: 403, and no function.
    let (status, _, _) = console
        .post(
            "/console/new",
            Some(&session),
            &[("name", "tmpl"), ("template", "python-hello")],
        )
        .await;
    assert_eq!(status, 403);
    let (_, functions) = app.get("/functions/").await;
    assert_eq!(functions, json!([]));
    // A name the api refuses: the message beside the name field, nothing made.
    let (status, _, html) = console
        .post(
            "/console/new",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "bad name!"),
                ("template", "python-hello"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"name-error\""), "{html}");
    assert!(html.contains("name must be 1 to 64"), "{html}");
    let (_, functions) = app.get("/functions/").await;
    assert_eq!(functions, json!([]));

    let (status, headers, body) = console
        .post(
            "/console/new",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("name", "tmpl"),
                ("template", "python-hello"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let id = function_id_in(&location(&headers));
    let page = format!("/console/functions/{id}");
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(api_view["version"], 1);
    assert!(api_view["code"].as_str().unwrap().contains("saying hello"));
    let (status, _, html) = console.get(&page, Some(&session)).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("data-editor=\"python\""),
        "the editor: {html}"
    );

    // Deploy: version 2 with the new code.
    let v2 = "def handler(event, context):\n    print('v2 here')\n    return 2\n";
    let code_path = format!("{page}/code");
    let (status, headers, body) = console
        .post(
            &code_path,
            Some(&session),
            &[("csrf", &csrf), ("version", "1"), ("code", v2)],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location(&headers), format!("{page}?deployed=2"));
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(
        (api_view["version"].clone(), api_view["code"].clone()),
        (json!(2), json!(v2))
    );
    let (_, _, html) = console
        .get(&format!("{page}?deployed=2"), Some(&session))
        .await;
    assert!(html.contains("Deployed: version 2"), "{html}");

    // A page opened at version 1 deploys nothing over version 2; blank code is the code's
    // problem; neither changes the function.
    let (status, _, html) = console
        .post(
            &code_path,
            Some(&session),
            &[("csrf", &csrf), ("version", "1"), ("code", "x = 1")],
        )
        .await;
    assert_eq!(status, 409, "{html}");
    assert!(
        html.contains("changed since this page was opened"),
        "{html}"
    );
    assert!(
        html.contains("x = 1"),
        "the code sent stays in the editor: {html}"
    );
    let (status, _, html) = console
        .post(
            &code_path,
            Some(&session),
            &[("csrf", &csrf), ("version", "2"), ("code", "  ")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"code-error\""), "{html}");
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(api_view["version"], 2);

    // Code that does not load: the loader's error by the code, nothing saved; a handler the
    // code does not define, by the handler.
    let (status, _, html) = console
        .post(
            &code_path,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("version", "2"),
                ("code", "def handler(event, context)\n    return 1\n"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"code-error\""), "{html}");
    assert!(
        html.contains("the code does not load") && html.contains("SyntaxError"),
        "{html}"
    );
    let settings = format!("{page}/settings");
    let (status, _, html) = console
        .post(
            &settings,
            Some(&session),
            &[("csrf", &csrf), ("handler", "missing")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"handler-error\""), "{html}");
    assert!(html.contains("the code does not load"), "{html}");
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(
        (api_view["version"].clone(), api_view["handler"].clone()),
        (json!(2), json!("handler"))
    );

    // Settings: the api's message by its field, nothing saved; then a good save.
    for (timeout, status_wanted, message) in [
        (
            "0",
            422,
            "timeout must be a whole number of seconds from 1 to 900",
        ),
        ("ten", 422, "timeout must be a whole number"),
    ] {
        let (status, _, html) = console
            .post(
                &settings,
                Some(&session),
                &[("csrf", &csrf), ("timeout", timeout)],
            )
            .await;
        assert_eq!(status, status_wanted, "{html}");
        assert!(html.contains("id=\"timeout-error\""), "{html}");
        assert!(html.contains(message), "{message}: {html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(
            html.contains(&format!("value=\"{timeout}\"")),
            "the value sent is kept: {html}"
        );
    }
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(
        (api_view["version"].clone(), api_view["timeout"].clone()),
        (json!(2), json!(10))
    );
    let (status, headers, body) = console
        .post(
            &settings,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("timeout", "30"),
                ("env", "GREETING=hi\nMODE=a=b"),
                ("memory_mb", "256"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location(&headers), format!("{settings}?saved=1"));
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(api_view["version"], 3);
    assert_eq!(api_view["timeout"], 30);
    assert_eq!(api_view["memory_mb"], 256);
    assert_eq!(api_view["env"], json!({"GREETING": "hi", "MODE": "a=b"}));
    assert_eq!(api_view["code"], v2, "the code is kept");

    // Versions: 3, 2, 1; version 1 against 3 shows the code and settings that differ.
    let (status, _, html) = console
        .get(&format!("{page}/versions"), Some(&session))
        .await;
    assert_eq!(status, 200, "{html}");
    let order: Vec<usize> = ["3 (current)", ">2<", ">1<"]
        .iter()
        .map(|v| html.find(v).unwrap_or_else(|| panic!("{v} in {html}")))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "newest first: {html}"
    );
    let (status, _, diff) = console
        .get(&format!("{page}/versions/1"), Some(&session))
        .await;
    assert_eq!(status, 200, "{diff}");
    assert!(diff.contains("class=\"del\""), "{diff}");
    assert!(diff.contains("saying hello"), "{diff}");
    assert!(
        diff.contains("class=\"ins\"") && diff.contains("v2 here"),
        "{diff}"
    );
    assert!(
        diff.contains(">timeout<") && diff.contains(">memory_mb<"),
        "{diff}"
    );
    let (status, _, _) = console
        .get(&format!("{page}/versions/99"), Some(&session))
        .await;
    assert_eq!(status, 404);

    // Roll back to 1: without the token nothing; with it, version 4 is version 1 again.
    let restore = format!("{page}/versions/1/restore");
    let (status, _, _) = console.post(&restore, Some(&session), &[]).await;
    assert_eq!(status, 403);
    let (status, headers, body) = console
        .post(&restore, Some(&session), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location(&headers), format!("{page}?deployed=4"));
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(api_view["version"], 4);
    assert!(api_view["code"].as_str().unwrap().contains("saying hello"));
    assert_eq!(api_view["timeout"], 10);
    assert_eq!(api_view["env"], json!({}));

    // Another namespace: every page of this function is 404, and so is its rollback.
    let other_key = app
        .namespace_with_key("console-other", &["manage", "read", "invoke"])
        .await;
    let other = console.sign_in(&other_key).await;
    let (_, _, other_page) = console.get("/console/new", Some(&other)).await;
    let other_csrf = csrf_of(&other_page);
    for path in [
        "",
        "/settings",
        "/versions",
        "/versions/1",
        "/test",
        "/logs",
        "/build",
    ] {
        let (status, _, _) = console.get(&format!("{page}{path}"), Some(&other)).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = console
        .post(&restore, Some(&other), &[("csrf", &other_csrf)])
        .await;
    assert_eq!(status, 404);
    let (_, api_view) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(api_view["version"], 4);

    // A key that may only read sees the versions but no roll back, and cannot save.
    let reader = app.key_of("default", &["read"]).await;
    let reading = console.sign_in(&reader).await;
    let (status, _, html) = console
        .get(&format!("{page}/versions"), Some(&reading))
        .await;
    assert_eq!(status, 200);
    assert!(!html.contains("/restore"), "{html}");
    let (_, _, read_page) = console.get(&page, Some(&reading)).await;
    assert!(
        !read_page.contains("data-editor"),
        "no editor for a reader: {read_page}"
    );
    let reader_csrf = csrf_of(&read_page);
    let (status, _, _) = console
        .post(
            &code_path,
            Some(&reading),
            &[("csrf", &reader_csrf), ("version", "4"), ("code", v2)],
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

/// A function `dead` that always fails, without retries, and the id of an async call of it,
/// once it is dead-lettered.
async fn dead_letter(app: &TestApp) -> (Value, String) {
    let mut failing = python(
        "dead",
        "def handler(event, context):\n    raise RuntimeError('always')",
    );
    failing["max_retries"] = json!(0);
    let dead = app.create_function(failing).await;
    let (status, accepted) = read(
        app.client
            .post(app.url("/execute_async/dead"))
            .json(&json!({"event": {}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    let invocation = accepted["invocation_id"].as_str().unwrap().to_owned();
    wait_for_status(app, &invocation, "dead_lettered").await;
    (dead, invocation)
}

/// Polls `GET /invocations/{id}` until its status is `status`.
async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let (code, body) = app.get(&format!("/invocations/{id}")).await;
        if code == 200 && body["status"] == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "invocation {id} not {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn test_events_run_and_save_live_logs_stream_and_a_dead_letter_is_redriven() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let code = "def handler(event, context):\n    print('line from', event.get('who'))\n    if event.get('fail'):\n        raise ValueError('asked to fail')\n    return {'hi': event.get('who')}";
    let created = app.create_function(python("tested", code)).await;
    let id = created["id"].as_i64().unwrap();
    let page = format!("/console/functions/{id}");
    let console = Console::new(&app);
    let session = console.sign_in(crate::support::ADMIN_KEY).await;
    let (status, _, html) = console.get(&format!("{page}/test"), Some(&session)).await;
    assert_eq!(status, 200, "{html}");
    let csrf = csrf_of(&html);
    let test = format!("{page}/test");

    // Run: the result, the log line and the timing.
    let event = r#"{"who": "ada"}"#;
    let (status, _, html) = console
        .post(
            &test,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "run"),
                ("name", ""),
                ("event", event),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("line from ada"), "{html}");
    assert!(html.contains("&quot;hi&quot;: &quot;ada&quot;"), "{html}");
    assert!(html.contains("status ok") && html.contains(" ms"), "{html}");
    let (status, _, html) = console
        .post(
            &test,
            Some(&session),
            &[("csrf", &csrf), ("action", "run"), ("event", "{not json")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("the event is not JSON"), "{html}");
    let (status, _, html) = console
        .post(
            &test,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "run"),
                ("event", r#"{"fail": true}"#),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("ValueError: asked to fail"), "{html}");

    // Save: the stored tests the CLI runs hold it; a bad name is refused, naming it.
    let (status, _, html) = console
        .post(
            &test,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("name", "ada"),
                ("event", event),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("?test=ada"), "{html}");
    let (_, tests) = app.get(&format!("/functions/{id}/tests")).await;
    assert_eq!(
        tests["tests"],
        json!([{"name": "ada", "event": {"who": "ada"}}])
    );
    let (status, _, html) = console
        .post(
            &test,
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("name", "no spaces"),
                ("event", "{}"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    let (_, tests) = app.get(&format!("/functions/{id}/tests")).await;
    assert_eq!(tests["tests"].as_array().unwrap().len(), 1);
    let (_, _, html) = console
        .get(&format!("{test}?test=ada"), Some(&session))
        .await;
    assert!(
        html.contains("&quot;who&quot;: &quot;ada&quot;"),
        "the saved event loaded: {html}"
    );

    // Live logs: the stream carries a call made elsewhere, with its log line.
    let (status, _, html) = console.get(&format!("{page}/logs"), Some(&session)).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("data-stream=\"{page}/stream\"")),
        "{html}"
    );
    let mut stream = console_stream(&app, &format!("{page}/stream"), &session).await;
    let (status, _) = app
        .invoke("execute", "tested", json!({"who": "streamed"}))
        .await;
    assert_eq!(status, 200);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("line from streamed") {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.chunk())
            .await
            .expect("the call on the stream within 30 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: invocation"), "{seen}");
    drop(stream);

    // A dead letter: listed with a redrive button; redriven, it runs again.
    let (dead, invocation) = dead_letter(&app).await;
    let dead_page = format!("/console/functions/{}", dead["id"]);
    let (_, _, html) = console
        .get(&format!("{dead_page}?status=dead_lettered"), Some(&session))
        .await;
    let redrive = format!("/console/invocations/{invocation}/redrive");
    assert!(html.contains(&redrive), "{html}");
    let (status, _, _) = console.post(&redrive, Some(&session), &[]).await;
    assert_eq!(status, 403, "no token, no redrive");
    let (status, headers, _) = console
        .post(&redrive, Some(&session), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(location(&headers), format!("{dead_page}#invocations"));
    let started = Instant::now();
    loop {
        let (_, view) = app.get(&format!("/invocations/{invocation}")).await;
        if view["attempts"].as_array().is_some_and(|a| a.len() == 2)
            && view["status"] == "dead_lettered"
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not run again: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, html) = console
        .post(&redrive, Some(&session), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303, "dead again, redriven again: {html}");

    // The build page of a function without dependencies.
    let (status, _, html) = console.get(&format!("{page}/build"), Some(&session)).await;
    assert_eq!(status, 200);
    assert!(html.contains("nothing to build"), "{html}");
    app.stop().await;
}

/// The console's live stream at `path`, open, under `session`.
async fn console_stream(app: &TestApp, path: &str, session: &str) -> reqwest::Response {
    let response = reqwest::Client::new()
        .get(app.url(path))
        .header("Cookie", format!("faas_console={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response
}

/// Signs `browser` in with `key` from the sign-in page a console URL sends it to.
async fn browser_sign_in(browser: &crate::browser::Browser, app: &TestApp, key: &str) {
    browser.go(&app.url("/console/functions")).await;
    browser.type_into("#key", key).await;
    browser.click("form.card button[type=submit]").await;
    let url = browser.url_with("/console/functions").await;
    assert!(url.ends_with("/console/functions"), "{url}");
}

/// The browser's CSP violations since the last look.
async fn csp_violations(browser: &crate::browser::Browser) -> Vec<String> {
    browser
        .console_log()
        .await
        .into_iter()
        .filter(|line| line.contains("Content Security Policy"))
        .collect()
}

/// In real headless Chromium against the real api and a docker worker: a function made from a
/// template, a test event run (its log line shown) and saved, the code edited in the CodeMirror
/// editor and deployed as version 2, rolled back from the versions page, its live logs
/// following a call made by another client, a settings mistake shown by its field, a dead
/// letter redriven; no CSP violation on any page. With `FAAS_CONSOLE_SCREENSHOTS=docs/console`
/// it leaves each page's screenshot there, at 1280x800 and at 390 px wide.
#[tokio::test]
async fn in_chromium_a_function_is_made_tested_edited_rolled_back_and_followed_live() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    let browser = crate::browser::Browser::start(1280, 800).await;
    browser_sign_in(&browser, &app, crate::support::ADMIN_KEY).await;

    browser.click("a[href='/console/new']").await;
    browser.url_with("/console/new").await;
    browser.type_into("#name", "greeter").await;
    browser.click("input[value=python-hello]").await;
    browser.screenshot("new").await;
    browser.click("form.card button[type=submit]").await;
    let url = browser.url_with("/console/functions/").await;
    let id = function_id_in(&url[url.find("/console/functions/").unwrap()..]);
    let page = format!("/console/functions/{id}");
    browser.wait_for_text("data-editor=\"python\"").await;
    assert_eq!(
        browser
            .eval("document.querySelector('.cm-editor .cm-content') !== null")
            .await,
        json!(true),
        "the code is in CodeMirror"
    );
    browser.screenshot("function-code").await;

    // A test event: run, its log line and result; then saved under a name.
    browser.go(&app.url(&format!("{page}/test"))).await;
    browser.type_into("#event", r#"{"name": "Ada"}"#).await;
    browser.click("button[value=run]").await;
    let html = browser.wait_for_text("saying hello to Ada").await;
    assert!(html.contains("Hello, Ada"), "{html}");
    browser.screenshot("test").await;
    browser.type_into("#test-name", "ada").await;
    browser.click("button[value=save]").await;
    browser.wait_for_text("?test=ada").await;
    let (_, tests) = app.get(&format!("/functions/{id}/tests")).await;
    assert_eq!(tests["tests"][0]["name"], "ada");

    // Edited in the editor (typed at its end), deployed as version 2.
    browser.go(&app.url(&page)).await;
    browser.wait_for_text("cm-content").await;
    browser
        .send_keys(".cm-content", "# edited in Chromium")
        .await;
    // A filter of the calls swaps the list alone (htmx): the unsaved edit stays.
    assert_eq!(
        browser.eval("typeof htmx").await,
        json!("object"),
        "htmx loaded"
    );
    browser.click("a[hx-get$='?status=failed']").await;
    browser.url_with("status=failed").await;
    browser.wait_for_text("No such calls.").await;
    assert_eq!(
        browser
            .eval(
                "document.querySelector('.cm-content').textContent.includes('# edited in Chromium')"
            )
            .await,
        json!(true),
        "the editor kept the edit"
    );
    browser.click("form.editor button[type=submit]").await;
    browser.wait_for_text("Deployed: version 2").await;
    let (_, function) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(function["version"], 2);
    assert!(
        function["code"]
            .as_str()
            .unwrap()
            .contains("# edited in Chromium"),
        "{function}"
    );

    // Version 1 against 2, then rolled back: version 3 is version 1's code.
    browser.go(&app.url(&format!("{page}/versions"))).await;
    browser.wait_for_text("2 (current)").await;
    browser.screenshot("versions").await;
    browser.click("a[href$='/versions/1']").await;
    let html = browser.wait_for_text("class=\"ins\"").await;
    assert!(html.contains("# edited in Chromium"), "{html}");
    browser.screenshot("version-diff").await;
    browser
        .click("form[action$='/versions/1/restore'] button")
        .await;
    browser.wait_for_text("Deployed: version 3").await;
    let (_, function) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(function["version"], 3);
    assert!(!function["code"].as_str().unwrap().contains("edited"));

    // Live logs: a call made by another client appears with its log line.
    browser.go(&app.url(&format!("{page}/logs"))).await;
    browser.wait_for_text("Following").await;
    let (status, _) = app
        .invoke("execute", "greeter", json!({"name": "Live"}))
        .await;
    assert_eq!(status, 200);
    browser.wait_for_text("saying hello to Live").await;
    browser.screenshot("live-logs").await;

    // A settings mistake: the message beside its field, nothing saved.
    browser.go(&app.url(&format!("{page}/settings"))).await;
    browser.type_into("#timeout", "0").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("id=\"timeout-error\"").await;
    browser.screenshot("settings-error").await;
    let (_, function) = app.get(&format!("/functions/{id}")).await;
    assert_eq!(function["version"], 3);

    // A dead letter, redriven from its row: it runs again.
    let (dead, invocation) = dead_letter(&app).await;
    browser
        .go(&app.url(&format!(
            "/console/functions/{}?status=dead_lettered",
            dead["id"]
        )))
        .await;
    browser.wait_for_text("Redrive").await;
    browser.screenshot("invocations").await;
    browser
        .click(&format!(
            "button[aria-label='Redrive invocation {invocation}']"
        ))
        .await;
    let started = Instant::now();
    loop {
        let (_, view) = app.get(&format!("/invocations/{invocation}")).await;
        if view["attempts"].as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not run again: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The overview and the namespaces page, drawn without a script or an inline style.
    browser.go(&app.url("/console/overview?range=1h")).await;
    browser.wait_for_text("Totals").await;
    browser.screenshot("overview").await;
    browser.go(&app.url("/console/namespaces")).await;
    browser.wait_for_text("Make a namespace").await;
    browser.screenshot("namespaces").await;
    let violations = csp_violations(&browser).await;
    assert!(violations.is_empty(), "{violations:?}");
    let html = browser.source().await;
    assert!(!html.contains(crate::support::ADMIN_KEY));
    browser.quit().await;

    // The same pages at a phone's width.
    let narrow = crate::browser::Browser::start(390, 844).await;
    browser_sign_in(&narrow, &app, crate::support::ADMIN_KEY).await;
    for (path, name, text) in [
        ("/console/new".to_owned(), "new-narrow", "Template"),
        (page.clone(), "function-code-narrow", "cm-content"),
        (
            format!("{page}/test?test=ada"),
            "test-narrow",
            "Saved events",
        ),
        (
            format!("{page}/versions/1"),
            "version-diff-narrow",
            "Roll back",
        ),
        (
            format!("{page}/settings"),
            "settings-narrow",
            "Save settings",
        ),
        (format!("{page}/logs"), "live-logs-narrow", "Following"),
        (
            "/console/overview?range=1h".to_owned(),
            "overview-narrow",
            "Totals",
        ),
        (
            "/console/namespaces".to_owned(),
            "namespaces-narrow",
            "Make a namespace",
        ),
    ] {
        narrow.go(&app.url(&path)).await;
        narrow.wait_for_text(text).await;
        narrow.screenshot(name).await;
    }
    let violations = csp_violations(&narrow).await;
    assert!(violations.is_empty(), "{violations:?}");
    narrow.quit().await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_makes_and_deletes_namespaces_in_the_console_and_no_one_else_may() {
    let app = TestApp::start().await;
    let console = Console::new(&app);
    let session = console.sign_in(crate::support::ADMIN_KEY).await;
    let (status, _, html) = console.get("/console/namespaces", Some(&session)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(">default<"), "{html}");
    let csrf = csrf_of(&html);
    let make = |name: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", name.to_owned()),
            ("runtime", "gvisor".to_owned()),
            ("max_concurrency", "7".to_owned()),
        ]
    };
    let form = make("team-x");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = console
        .post("/console/namespaces", Some(&session), &pairs[1..])
        .await;
    assert_eq!(status, 403, "no token");
    let (status, _, body) = console
        .post("/console/namespaces", Some(&session), &pairs)
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, namespaces) = app.get("/namespaces/").await;
    let made = namespaces
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "team-x")
        .unwrap_or_else(|| panic!("{namespaces}"));
    assert_eq!(made["allowed_runtimes"], json!(["gvisor"]));
    assert_eq!(made["max_concurrency"], 7);
    let (status, _, html) = console
        .post("/console/namespaces", Some(&session), &pairs)
        .await;
    assert_eq!(status, 409, "taken: {html}");
    let bad = make("Bad_Name");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, html) = console
        .post("/console/namespaces", Some(&session), &bad)
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("class=\"error\""), "{html}");

    // A key that may manage its namespace sees no namespaces page.
    let manager = app.key_of("default", &["manage"]).await;
    let managing = console.sign_in(&manager).await;
    let (status, _, _) = console.get("/console/namespaces", Some(&managing)).await;
    assert_eq!(status, 403);

    // Deleting takes the name typed again.
    let delete = "/console/namespaces/team-x/delete";
    let (status, _, html) = console
        .post(
            delete,
            Some(&session),
            &[("csrf", &csrf), ("confirm", "team")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    let (_, namespaces) = app.get("/namespaces/").await;
    assert!(namespaces.to_string().contains("team-x"));
    let (status, _, _) = console
        .post(
            delete,
            Some(&session),
            &[("csrf", &csrf), ("confirm", "team-x")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, namespaces) = app.get("/namespaces/").await;
    assert!(!namespaces.to_string().contains("team-x"), "{namespaces}");
    app.stop().await;
}

#[tokio::test]
async fn the_functions_list_comes_in_pages_of_fifty_each_with_its_calls_per_hour() {
    let app = TestApp::start().await;
    for n in 0..55 {
        app.create_function(python(
            &format!("f{n:02}"),
            "def handler(event, context):\n    return 1",
        ))
        .await;
    }
    let (_, first) = app.get("/functions/").await;
    let f00 = first
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "f00")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // f00: 3 calls 30 minutes ago, 1 call 5 hours ago (a failure), none older than a day counted.
    let db = app.db().await;
    for (minutes_ago, status) in [
        (30, "success"),
        (30, "success"),
        (30, "success"),
        (300, "error"),
        (1500, "error"),
    ] {
        db.execute(
            "INSERT INTO invocations (id, function_id, function_name, function_version, runtime,
                 status, cold_start, duration_ms, created_at, namespace)
             VALUES ($1, $2, 'f00', 1, 'docker', $3, false, 12, now() - make_interval(mins => $4), 'default')",
            &[&uuid::Uuid::new_v4(), &f00, &status, &minutes_ago],
        )
        .await
        .unwrap();
    }
    let console = Console::new(&app);
    let session = console.sign_in(crate::support::ADMIN_KEY).await;
    let (status, _, html) = console.get("/console/functions", Some(&session)).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<th scope=\"row\">").count(), 50, "{html}");
    assert!(html.contains("Functions 1–50 of 55"), "{html}");
    assert!(
        html.contains("href=\"/console/functions?page=2\""),
        "{html}"
    );
    assert!(
        html.contains("aria-label=\"f00: 4 calls over 24 hours, per hour\""),
        "{html}"
    );
    let f00_row = &html[html.find(">f00<").unwrap()..];
    let f00_row = &f00_row[..f00_row.find("</tr>").unwrap()];
    assert_eq!(f00_row.matches("class=\"spark-bar\"").count(), 24);
    assert!(
        f00_row.contains("<td class=\"num\">4</td><td class=\"num\">1</td>"),
        "calls, errors: {f00_row}"
    );
    let (_, _, html) = console
        .get("/console/functions?page=2", Some(&session))
        .await;
    assert_eq!(html.matches("<th scope=\"row\">").count(), 5, "{html}");
    assert!(html.contains("Functions 51–55 of 55"), "{html}");
    assert!(
        html.contains("rel=\"prev\"") && !html.contains("rel=\"next\""),
        "{html}"
    );
    for odd in ["0", "-3", "99", "x"] {
        let (status, _, _) = console
            .get(&format!("/console/functions?page={odd}"), Some(&session))
            .await;
        assert!(status == 200 || status == 400, "page={odd}: {status}");
    }
    app.stop().await;
}
