//! The pure parts of `/execute`: how a body becomes an event, how a call's outcome becomes the
//! answer (status, headers, body), and the `Idempotency-Key` rules; the answers are the ones
//! the integration tests (`tests/api/invoke.rs`, `triggers.rs`, `async_invoke.rs`) expect.

use super::*;
use axum::http::{HeaderMap, HeaderValue, header};
use common::ErrorInfo;
use serde_json::{Value, json};

const LIMIT: usize = 64;

fn event(body: &str) -> Result<String, ApiError> {
    parse_event(body.as_bytes(), LIMIT).map(|event| event.get().to_owned())
}

/// The status, the content type and the JSON body of `response`.
async fn read(response: Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, serde_json::from_slice(&body).unwrap())
}

fn reply(status: ReplyStatus, error: Option<ErrorInfo>) -> Reply {
    Reply {
        invocation_id: Uuid::now_v7(),
        worker_id: "worker-1".into(),
        status,
        result: RawValue::from_string(r#"{"message": "Hello, Test"}"#.into()).unwrap(),
        error,
        logs: "before\n".into(),
        logs_truncated: true,
        cold_start: true,
        timing: Timing {
            queue_ms: 0.5,
            init_ms: 120.0,
            run_ms: 3.25,
        },
    }
}

fn raised() -> Option<ErrorInfo> {
    Some(ErrorInfo {
        kind: "ValueError".into(),
        message: "secret detail".into(),
        stack: "line 3".into(),
    })
}

fn called(outcome: Result<Reply, NoReply>) -> Called {
    Called {
        invocation_id: Uuid::now_v7(),
        duration_ms: 12.5,
        timeout_s: 5,
        outcome,
    }
}

#[test]
fn no_body_a_blank_one_or_null_is_the_empty_event() {
    for body in ["", " \n\t", "null", "  null\n"] {
        assert_eq!(event(body).unwrap(), "{}", "{body:?}");
    }
    assert_eq!(empty_object().get(), "{}");
}

#[test]
fn the_event_is_passed_on_as_the_text_it_came_as() {
    assert_eq!(
        event(r#"{"event": { "n" : 21,"s":"x" }}"#).unwrap(),
        r#"{ "n" : 21,"s":"x" }"#
    );
    assert_eq!(event(r#"{"event": [1, 2]}"#).unwrap(), "[1, 2]");
    assert_eq!(event(r#"{"event": "text"}"#).unwrap(), r#""text""#);
    // Without "event" (and whatever else it holds): the empty event.
    assert_eq!(event(r#"{}"#).unwrap(), "{}");
    assert_eq!(event(r#"{"other": 1}"#).unwrap(), "{}");
}

#[test]
fn a_body_that_is_not_a_json_request_is_422_invalid_request() {
    for body in [r#"{"event": "#, "{not json", "42", r#""event""#, "nul"] {
        let error = event(body).unwrap_err();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
        assert_eq!(error.code(), "invalid_request", "{body:?}");
        assert!(
            error.to_string().starts_with("invalid JSON body: "),
            "{error}"
        );
    }
}

#[test]
fn a_body_over_the_limit_is_413_before_it_is_read() {
    let at_limit = format!(r#"{{"event": "{}"}}"#, "x".repeat(LIMIT - 13));
    assert_eq!(at_limit.len(), LIMIT);
    assert!(event(&at_limit).is_ok());

    let over = format!("{at_limit} ");
    let error = event(&over).unwrap_err();
    assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error.code(), "payload_too_large");
    assert_eq!(
        error.to_string(),
        format!(
            "the request is {} bytes, over the limit of {LIMIT}",
            LIMIT + 1
        )
    );
    // Not even parsed: an invalid body over the limit is too large, not invalid.
    let error = event(&"{".repeat(LIMIT + 1)).unwrap_err();
    assert_eq!(error.code(), "payload_too_large");
}

#[tokio::test]
async fn a_success_is_200_with_the_result_as_it_came_and_the_calls_facts() {
    let reply = reply(ReplyStatus::Success, None);
    let invocation_id = reply.invocation_id;
    let (status, content_type, body) = read(called_response(called(Ok(reply)), Detail::Full)).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        json!({
            "result": {"message": "Hello, Test"},
            "invocation_id": invocation_id,
            "duration_ms": 12.5,
            "cold_start": true,
            "timing": {"queue_ms": 0.5, "init_ms": 120.0, "run_ms": 3.25},
            "logs": "before\n",
            "logs_truncated": true,
        })
    );
}

#[tokio::test]
async fn a_public_route_gets_the_same_success_body() {
    let reply = reply(ReplyStatus::Success, None);
    let (status, _, body) = read(reply_response(reply, 1.0, 5, Detail::Public)).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], json!({"message": "Hello, Test"}));
    assert_eq!(body["logs"], "before\n");
}

#[tokio::test]
async fn each_failed_reply_has_its_status_and_code_and_the_full_body_says_why() {
    let cases = [
        (
            ReplyStatus::Error,
            502,
            "function_error",
            "the function raised an error: ValueError: secret detail",
        ),
        (
            ReplyStatus::InitError,
            502,
            "init_error",
            "the function's code failed to load: ValueError: secret detail",
        ),
        (
            ReplyStatus::Oom,
            502,
            "out_of_memory",
            "the function ran out of memory: ValueError: secret detail",
        ),
        (
            ReplyStatus::ResultTooLarge,
            502,
            "result_too_large",
            "the function's result is too large: ValueError: secret detail",
        ),
        (
            ReplyStatus::Crashed,
            502,
            "function_crashed",
            "the function's container died: ValueError: secret detail",
        ),
        (
            ReplyStatus::Timeout,
            504,
            "function_timeout",
            "the function ran past its timeout of 5 s",
        ),
        (
            ReplyStatus::Expired,
            503,
            "expired",
            "no worker took the call before its deadline; the platform is overloaded",
        ),
    ];
    for (reply_status, expected, code, detail) in cases {
        let reply = reply(reply_status, raised());
        let invocation_id = reply.invocation_id;
        let response = called_response(called(Ok(reply)), Detail::Full);
        assert!(
            response.headers().get(header::RETRY_AFTER).is_none(),
            "{code}"
        );
        let (status, content_type, body) = read(response).await;
        assert_eq!(
            (status, content_type.as_str()),
            (expected, "application/json"),
            "{code}"
        );
        assert_eq!(
            body,
            json!({
                "detail": detail,
                "code": code,
                "error": {"type": "ValueError", "message": "secret detail", "stack": "line 3"},
                "invocation_id": invocation_id,
                "duration_ms": 12.5,
                "cold_start": true,
                "timing": {"queue_ms": 0.5, "init_ms": 120.0, "run_ms": 3.25},
                "logs": "before\n",
                "logs_truncated": true,
            }),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_public_failure_says_only_the_status_the_code_and_the_invocation() {
    for (reply_status, expected, code) in [
        (ReplyStatus::Error, 502, "function_error"),
        (ReplyStatus::Crashed, 502, "function_crashed"),
        (ReplyStatus::Timeout, 504, "function_timeout"),
        (ReplyStatus::Expired, 503, "expired"),
    ] {
        let reply = reply(reply_status, raised());
        let invocation_id = reply.invocation_id;
        let (status, _, body) = read(reply_response(reply, 12.5, 5, Detail::Public)).await;
        assert_eq!(status, expected, "{code}");
        assert_eq!(body["code"], code);
        assert_eq!(body["invocation_id"], json!(invocation_id));
        let mut fields: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["code", "detail", "invocation_id"], "{body}");
        assert!(!body.to_string().contains("secret detail"), "{body}");
    }
    let (_, _, body) = read(reply_response(
        reply(ReplyStatus::Error, raised()),
        1.0,
        5,
        Detail::Public,
    ))
    .await;
    assert_eq!(body["detail"], "the function raised an error");
}

#[tokio::test]
async fn a_failure_without_a_message_or_an_error_says_what_it_has() {
    let kind_only = Some(ErrorInfo::new("Runtime.ExitError", ""));
    let (status, _, body) = read(reply_response(
        reply(ReplyStatus::Crashed, kind_only),
        1.0,
        5,
        Detail::Full,
    ))
    .await;
    assert_eq!(status, 502);
    assert_eq!(
        body["detail"],
        "the function's container died: Runtime.ExitError"
    );

    let (status, _, body) = read(reply_response(
        reply(ReplyStatus::Oom, None),
        1.0,
        5,
        Detail::Full,
    ))
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["detail"], "the function ran out of memory");
    assert_eq!(body["error"], Value::Null);
}

#[tokio::test]
async fn no_reply_is_504_no_reply_with_the_invocation_and_nothing_of_a_worker() {
    let called = called(Err(NoReply::TimedOut));
    let invocation_id = called.invocation_id;
    let (status, content_type, body) = read(called_response(called, Detail::Full)).await;
    assert_eq!((status, content_type.as_str()), (504, "application/json"));
    assert_eq!(
        body,
        json!({
            "detail": "no worker answered before the call's deadline",
            "code": "no_reply",
            "error": null,
            "invocation_id": invocation_id,
            "duration_ms": 12.5,
            "cold_start": false,
            "timing": {"queue_ms": 0.0, "init_ms": 0.0, "run_ms": 0.0},
            "logs": "",
            "logs_truncated": false,
        })
    );
}

fn key(value: Option<HeaderValue>) -> Result<Option<String>, ApiError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = value {
        headers.insert("idempotency-key", value);
    }
    idempotency_key(&headers)
}

#[test]
fn an_idempotency_key_is_optional_and_1_to_256_visible_characters() {
    assert_eq!(key(None).unwrap(), None);
    for good in [
        "k".to_owned(),
        "order-42/retry:1".to_owned(),
        "k".repeat(256),
    ] {
        let value = HeaderValue::from_str(&good).unwrap();
        assert_eq!(key(Some(value)).unwrap().as_deref(), Some(good.as_str()));
    }
    for (bad, length) in [(String::new(), 0), ("k".repeat(257), 257)] {
        let error = key(Some(HeaderValue::from_str(&bad).unwrap())).unwrap_err();
        assert_eq!(error.code(), "invalid_request");
        assert_eq!(
            error.to_string(),
            format!("Idempotency-Key must be 1 to 256 characters; got {length}")
        );
    }
    let error = key(Some(HeaderValue::from_bytes("clé".as_bytes()).unwrap())).unwrap_err();
    assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error.to_string(),
        "Idempotency-Key must be visible ASCII characters"
    );
}

#[test]
fn an_async_call_is_stored_as_a_clients_first_of_its_chain_with_the_event_as_text() {
    let function = Function {
        id: 42,
        namespace: "tenant".into(),
        name: "target".into(),
        ..Function::example()
    };
    let event = RawValue::from_string(r#"{ "n" : 1 }"#.into()).unwrap();
    let stored = new_async(&function, &event, Some("order-42".into()));
    assert_eq!(stored.id.get_version_num(), 7);
    assert_eq!(
        (
            stored.namespace.as_str(),
            stored.function_id,
            stored.function_name.as_str()
        ),
        ("tenant", 42, "target")
    );
    assert_eq!(stored.mode, Mode::Async);
    assert_eq!(stored.event, r#"{ "n" : 1 }"#);
    assert_eq!(stored.idempotency_key.as_deref(), Some("order-42"));
    assert_eq!(stored.chain_depth, 0);
}

#[tokio::test]
async fn an_accepted_call_is_202_and_one_the_key_had_made_already_200() {
    let invocation_id = Uuid::now_v7();
    for (existing, expected) in [(false, 202), (true, 200)] {
        let response = accepted_response(Accepted {
            invocation_id,
            existing,
        });
        let (status, content_type, body) = read(response).await;
        assert_eq!(
            (status, content_type.as_str()),
            (expected, "application/json")
        );
        assert_eq!(
            body,
            json!({
                "invocation_id": invocation_id,
                "status_url": format!("/invocations/{invocation_id}"),
            })
        );
    }
}
