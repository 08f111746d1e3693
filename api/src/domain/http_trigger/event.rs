//! The HTTP request as the handler sees it (API Gateway HTTP API payload 2.0) and the
//! handler's result as the HTTP answer. Pure: no I/O, unit-tested here.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// What the event is made of: the request, and what the api found out about it.
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The path below the route prefix (`/users/42`), as it came (not decoded).
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The route as the function declared it (`/users/{id}`).
    pub route: &'a str,
    /// Whether the route answers every method (`ANY` in the route key).
    pub any_method: bool,
    pub path_params: &'a [(&'a str, String)],
    pub source_ip: String,
    pub request_id: String,
    pub namespace: &'a str,
    pub time_epoch_ms: u64,
    /// Leave `Authorization` out: it carries a key of the platform, which is no business of
    /// the function's.
    pub strip_authorization: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<&'a str>,
    headers: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    path_parameters: BTreeMap<&'a str, &'a str>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'a str,
    api_id: &'static str,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: HttpContext<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'static str,
    time: String,
    time_epoch: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: &'a str,
    user_agent: &'a str,
}

/// The event for a request, as JSON text.
pub fn build_event(facts: &RequestFacts<'_>) -> String {
    let route_key = if facts.any_method {
        format!("ANY {}", facts.route)
    } else {
        format!("{} {}", facts.method, facts.route)
    };
    let mut headers: BTreeMap<&str, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in facts.headers {
        if *name == header::COOKIE {
            let text = value.to_str().unwrap_or_default();
            cookies.extend(text.split(';').map(str::trim).filter(|c| !c.is_empty()));
            continue;
        }
        if *name == header::AUTHORIZATION && facts.strip_authorization {
            continue;
        }
        join_value(
            &mut headers,
            name.as_str(),
            &String::from_utf8_lossy(value.as_bytes()),
        );
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(facts.raw_query.as_bytes()) {
        join_value(&mut query, key.into_owned(), &value);
    }
    let (body, is_base64_encoded) = match std::str::from_utf8(facts.body) {
        _ if facts.body.is_empty() => (None, false),
        Ok(text) => (Some(text.to_owned()), false),
        Err(_) => (
            Some(base64::engine::general_purpose::STANDARD.encode(facts.body)),
            true,
        ),
    };
    let domain_name = facts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let time = chrono::DateTime::from_timestamp_millis(facts.time_epoch_ms as i64)
        .unwrap_or_default()
        .format("%d/%b/%Y:%H:%M:%S %z")
        .to_string();
    let event = Event {
        version: "2.0",
        route_key: &route_key,
        raw_path: facts.raw_path,
        raw_query_string: facts.raw_query,
        cookies,
        query_string_parameters: query,
        request_context: RequestContext {
            account_id: facts.namespace,
            api_id: "faas",
            domain_name,
            domain_prefix: domain_name.split('.').next().unwrap_or_default(),
            http: HttpContext {
                method: facts.method.as_str(),
                path: facts.raw_path,
                protocol: "HTTP/1.1",
                source_ip: &facts.source_ip,
                user_agent: facts
                    .headers
                    .get(header::USER_AGENT)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default(),
            },
            request_id: &facts.request_id,
            route_key: &route_key,
            stage: "$default",
            time,
            time_epoch: facts.time_epoch_ms,
        },
        headers,
        body,
        path_parameters: facts
            .path_params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect(),
        is_base64_encoded,
    };
    serde_json::to_string(&event).expect("an event always serializes")
}

/// Adds `value` under `key`, after a comma when the key is there already: how payload 2.0
/// carries repeated headers and query parameters.
fn join_value<K: Ord>(map: &mut BTreeMap<K, String>, key: K, value: &str) {
    map.entry(key)
        .and_modify(|joined| {
            joined.push(',');
            joined.push_str(value);
        })
        .or_insert_with(|| value.to_owned());
}

/// The HTTP answer a result asks for.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The parts of a result that shape the answer; anything else in it is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultFields {
    status_code: Option<Value>,
    headers: Option<Value>,
    cookies: Option<Value>,
    body: Option<Value>,
    is_base64_encoded: Option<Value>,
}

/// Headers a function may not set: they describe the connection or the framing, which are
/// the api's.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The answer for a handler's result: an object with `statusCode` is read as API Gateway
/// reads it; any other result is 200 with itself as the JSON body. The error says what in
/// the result is wrong.
pub fn answer_from_result(result: &RawValue) -> Result<HttpAnswer, String> {
    let text = result.get();
    let json_answer = || {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        HttpAnswer {
            status: StatusCode::OK,
            headers,
            body: Bytes::copy_from_slice(text.as_bytes()),
        }
    };
    if !text.trim_start().starts_with('{') {
        return Ok(json_answer());
    }
    let fields: ResultFields = serde_json::from_str(text)
        .map_err(|error| format!("the result is not a valid object: {error}"))?;
    let Some(status) = fields.status_code else {
        return Ok(json_answer());
    };
    let status = status
        .as_u64()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code as u16).ok())
        .ok_or_else(|| format!("statusCode must be an integer from 200 to 599; got {status}"))?;
    let mut headers = HeaderMap::new();
    match fields.headers {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let value = match value {
                    Value::String(text) => text,
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    _ => return Err(format!("headers.{name} must be a string")),
                };
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("headers: {name:?} is not a header name"))?;
                if HOP_BY_HOP.contains(&name.as_str()) {
                    continue;
                }
                let value = HeaderValue::from_str(&value).map_err(|_| {
                    format!("headers.{name}: the value is not a valid header value")
                })?;
                headers.insert(name, value);
            }
        }
        Some(_) => return Err("headers must be an object of strings".into()),
    }
    match fields.cookies {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let value = cookie
                    .as_str()
                    .and_then(|c| HeaderValue::from_str(c).ok())
                    .ok_or("cookies must be strings valid as Set-Cookie values")?;
                headers.append(header::SET_COOKIE, value);
            }
        }
        Some(_) => return Err("cookies must be an array of strings".into()),
    }
    let base64 = match fields.is_base64_encoded {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => flag,
        Some(_) => return Err("isBase64Encoded must be true or false".into()),
    };
    let body = match fields.body {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Bytes::from)
            .map_err(|error| format!("body is not valid base64: {error}"))?,
        Some(Value::String(text)) => Bytes::from(text),
        // Lenient, as API Gateway is: a non-string body is sent as its JSON text.
        Some(other) => Bytes::from(other.to_string()),
    };
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn facts<'a>(
        method: &'a Method,
        headers: &'a HeaderMap,
        body: &'a [u8],
        params: &'a [(&'a str, String)],
    ) -> RequestFacts<'a> {
        RequestFacts {
            method,
            raw_path: "/users/J%C3%BCrgen",
            raw_query: "a=1&b=x%20y&a=2",
            headers,
            body,
            route: "/users/{id}",
            any_method: false,
            path_params: params,
            source_ip: "10.0.0.7".into(),
            request_id: "0190-abc".into(),
            namespace: "team-a",
            time_epoch_ms: 1_700_000_000_123,
            strip_authorization: true,
        }
    }

    #[test]
    fn the_event_has_the_payload_2_0_shape() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("api.example.com"));
        headers.insert("user-agent", HeaderValue::from_static("curl/8"));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        headers.insert("authorization", HeaderValue::from_static("Bearer faas_x"));
        let params = [("id", "Jürgen".to_owned())];
        let event = build_event(&facts(&Method::PUT, &headers, b"{\"x\":1}", &params));
        let event: Value = serde_json::from_str(&event).unwrap();
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "PUT /users/{id}");
        assert_eq!(event["rawPath"], "/users/J%C3%BCrgen");
        assert_eq!(event["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(event["queryStringParameters"]["a"], "1,2");
        assert_eq!(event["queryStringParameters"]["b"], "x y");
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert_eq!(event["headers"]["host"], "api.example.com");
        assert!(event["headers"].get("cookie").is_none());
        assert!(event["headers"].get("authorization").is_none());
        assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(event["pathParameters"]["id"], "Jürgen");
        assert_eq!(event["body"], "{\"x\":1}");
        assert_eq!(event["isBase64Encoded"], false);
        let context = &event["requestContext"];
        assert_eq!(context["http"]["method"], "PUT");
        assert_eq!(context["http"]["sourceIp"], "10.0.0.7");
        assert_eq!(context["http"]["userAgent"], "curl/8");
        assert_eq!(context["requestId"], "0190-abc");
        assert_eq!(context["timeEpoch"], 1_700_000_000_123u64);
        assert_eq!(context["domainName"], "api.example.com");
        assert_eq!(context["accountId"], "team-a");
    }

    #[test]
    fn a_body_that_is_not_utf8_travels_in_base64_and_an_empty_one_not_at_all() {
        let headers = HeaderMap::new();
        let event = build_event(&facts(&Method::POST, &headers, &[0xff, 0x00, 0x01], &[]));
        let event: Value = serde_json::from_str(&event).unwrap();
        assert_eq!(event["body"], "/wAB");
        assert_eq!(event["isBase64Encoded"], true);
        assert!(event.get("pathParameters").is_none());
        let event = build_event(&facts(&Method::GET, &headers, b"", &[]));
        let event: Value = serde_json::from_str(&event).unwrap();
        assert!(event.get("body").is_none());
        assert!(event.get("cookies").is_none());
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn a_result_without_status_code_is_200_json() {
        for text in [r#"{"message":"hi"}"#, "[1,2]", "\"text\"", "42", "null"] {
            let answer = answer_from_result(&raw(text)).unwrap();
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.headers["content-type"], "application/json");
            assert_eq!(answer.body, text.as_bytes());
        }
    }

    #[test]
    fn a_result_with_status_code_shapes_the_answer() {
        let answer = answer_from_result(&raw(
            r#"{"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-Count": 3,
                "Transfer-Encoding": "chunked", "content-length": "999"},
               "cookies": ["a=1; Path=/", "b=2"], "body": "made"}"#,
        ))
        .unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.headers["content-type"], "text/plain");
        assert_eq!(answer.headers["x-count"], "3");
        assert!(!answer.headers.contains_key("transfer-encoding"));
        assert!(!answer.headers.contains_key("content-length"));
        let cookies: Vec<_> = answer.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        assert_eq!(answer.body, "made");

        let answer = answer_from_result(&raw(
            r#"{"statusCode": 200, "body": "/wAB", "isBase64Encoded": true,
                "headers": {"content-type": "application/octet-stream"}}"#,
        ))
        .unwrap();
        assert_eq!(answer.body.as_ref(), &[0xff, 0x00, 0x01]);

        let answer = answer_from_result(&raw(r#"{"statusCode": 204}"#)).unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert!(answer.body.is_empty());
        let answer = answer_from_result(&raw(r#"{"statusCode": 200, "body": {"a": 1}}"#)).unwrap();
        assert_eq!(answer.body, r#"{"a":1}"#);
    }

    #[test]
    fn a_malformed_answer_says_what_is_wrong() {
        for (text, why) in [
            (r#"{"statusCode": 99}"#, "statusCode"),
            (r#"{"statusCode": "200"}"#, "statusCode"),
            (r#"{"statusCode": 700}"#, "statusCode"),
            (r#"{"statusCode": 200, "headers": []}"#, "headers must be"),
            (
                r#"{"statusCode": 200, "headers": {"a b": "x"}}"#,
                "not a header name",
            ),
            (
                r#"{"statusCode": 200, "headers": {"x": "a\nb"}}"#,
                "not a valid header value",
            ),
            (
                r#"{"statusCode": 200, "headers": {"x": {}}}"#,
                "must be a string",
            ),
            (r#"{"statusCode": 200, "cookies": "a=1"}"#, "cookies"),
            (
                r#"{"statusCode": 200, "body": "%%", "isBase64Encoded": true}"#,
                "base64",
            ),
            (
                r#"{"statusCode": 200, "isBase64Encoded": "yes"}"#,
                "isBase64Encoded",
            ),
        ] {
            let error = answer_from_result(&raw(text)).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
