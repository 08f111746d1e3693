//! Who may hold the api's resources. A request's key (on `/internal/`, the worker token) is
//! checked from its headers before any byte of its body is read, and only a request let in
//! takes one of the `MAX_INFLIGHT` permits and has its body read (`http::limits`). The
//! caller's verified [`Principal`] is left in the request's extensions, where the handler's
//! extractor takes it: the key is looked up once.
//!
//! A request refused here (401, or 503 `overloaded` once every permit is taken) is answered
//! at once and holds no permit and no buffer. Its body is not read before the answer; after
//! it, what comes of the body is read and thrown away in the background, within
//! [`limits::DRAIN_MAX_BYTES`] and [`limits::DRAIN_MAX_TIME`], and the connection is closed
//! (`Connection: close`: the unread rest must not be taken for a next request). The drain
//! costs no memory and no permit, and it is what lets a client that writes its whole body
//! before it reads the answer (Python's urllib and requests) see its 401 rather than a broken
//! pipe; a client that sends nothing more is let go at [`limits::DRAIN_MAX_TIME`], about as
//! long as one that sends its headers slowly may stay (`HEADER_READ_TIMEOUT_SECS`).
//!
//! HTTP triggers admit their own requests (`routes::triggers`): whether a key is needed
//! depends on the route, found from the method and path first.

use crate::domain::auth::{self, Principal};
use crate::http::error::ApiError;
use crate::http::limits::{self, discard};
use crate::http::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Lets in a request with a valid key (any key: scopes are the handlers' to check), leaving
/// its [`Principal`] in the request's extensions; every caller with `AUTH=disabled`.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let verify = async |request: &mut Request| {
        let principal = Principal::from_headers(&state, request.headers()).await?;
        request.extensions_mut().insert(principal);
        Ok(())
    };
    admit(&state.inflight, request, verify, async |request| {
        next.run(request).await
    })
    .await
}

/// Lets in a request with a valid key as [`require_key`] does, but without an in-flight
/// permit: for the invocation streams, which stay open for as long as their client reads and
/// would otherwise hold `MAX_INFLIGHT` permits for ever. They are bounded by `STREAM_CLIENTS`
/// per namespace instead, and read no body.
pub async fn require_key_for_stream(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match Principal::from_headers(&state, request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => answer_unread(error, request),
    }
}

/// Lets in a request that carries the worker token (`WORKER_TOKEN`).
pub async fn require_worker(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let verify =
        async |request: &mut Request| check_worker(state.worker_token.as_ref(), request.headers());
    admit(&state.inflight, request, verify, async |request| {
        next.run(request).await
    })
    .await
}

/// Runs `next` on `request` once `verify` let it in (from its headers: its body is not read
/// yet) and one of `permits` is free, holding the permit while it runs; else answers at once
/// without reading the body.
async fn admit(
    permits: &Semaphore,
    mut request: Request,
    verify: impl AsyncFnOnce(&mut Request) -> Result<(), ApiError>,
    next: impl AsyncFnOnce(Request) -> Response,
) -> Response {
    if let Err(error) = verify(&mut request).await {
        return answer_unread(error, request);
    }
    match take_permit(permits) {
        Ok(_permit) => next(request).await,
        Err(error) => answer_unread(error, request),
    }
}

/// One of the `MAX_INFLIGHT` permits, or 503 `overloaded` at once when none is free: queueing
/// the request would only make every request slower.
pub fn take_permit(permits: &Semaphore) -> Result<SemaphorePermit<'_>, ApiError> {
    permits.try_acquire().map_err(|_| {
        ApiError::Overloaded(
            "the api is serving as many requests as it may (MAX_INFLIGHT); retry shortly".into(),
        )
    })
}

/// Refuses a caller without `expected`, the worker token's hash (every caller when it is not
/// set).
pub fn check_worker(expected: Option<&[u8; 32]>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::NotAWorker);
    };
    let given =
        auth::bearer_token(headers.get(header::AUTHORIZATION)).map_err(|_| ApiError::NotAWorker)?;
    if auth::same_hash(expected, &auth::sha256(given.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::NotAWorker)
    }
}

/// Answers `request` with `answer` without having read its body (see the module's doc).
pub fn answer_unread(answer: impl IntoResponse, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    answer_unread_parts(answer, &parts.headers, body)
}

/// [`answer_unread`] for a request already taken apart into its `headers` and `body`.
pub fn answer_unread_parts(answer: impl IntoResponse, headers: &HeaderMap, body: Body) -> Response {
    let mut response = answer.into_response();
    match body_follows(headers) {
        BodyFollows::No => {}
        // The client waits for a 100 before it sends its body: reading it would send one.
        BodyFollows::AfterContinue => close(&mut response),
        BodyFollows::Yes => {
            close(&mut response);
            tokio::spawn(discard(body));
        }
    }
    response
}

fn close(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Whether a body comes after a request's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFollows {
    No,
    /// Once the server says `100 Continue` (`Expect: 100-continue`).
    AfterContinue,
    Yes,
}

fn body_follows(headers: &HeaderMap) -> BodyFollows {
    let declared = limits::declared_length(headers);
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && declared.unwrap_or(0) == 0 {
        return BodyFollows::No;
    }
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"));
    if expects_continue {
        BodyFollows::AfterContinue
    } else {
        BodyFollows::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth::AuthError;
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use futures_util::StreamExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A POST with `headers` whose body, `chunks` chunks, counts the chunks read.
    fn request(headers: &[(&str, &str)], chunks: usize, read: &Arc<AtomicUsize>) -> Request {
        let read = read.clone();
        let body = futures_util::stream::iter(
            (0..chunks).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789"))),
        )
        .inspect(move |_| {
            read.fetch_add(1, Ordering::SeqCst);
        });
        let mut builder = axum::http::Request::post("/execute/hello");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::from_stream(body)).unwrap()
    }

    const WITH_BODY: &[(&str, &str)] = &[("content-length", "30")];

    fn no_key() -> Result<(), ApiError> {
        Err(ApiError::Unauthorized(AuthError::Missing))
    }

    /// Waits (a little) for the background drain to have read `chunks`.
    async fn drained(read: &AtomicUsize, chunks: usize) -> bool {
        for _ in 0..100 {
            if read.load(Ordering::SeqCst) == chunks {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_request_refused_is_answered_before_its_body_is_read_and_takes_no_permit() {
        let permits = Semaphore::new(1);
        let (read, ran) = (Arc::new(AtomicUsize::new(0)), AtomicBool::new(false));
        let response = admit(
            &permits,
            request(WITH_BODY, 3, &read),
            async |_: &mut Request| no_key(),
            async |_| {
                ran.store(true, Ordering::SeqCst);
                StatusCode::OK.into_response()
            },
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(read.load(Ordering::SeqCst), 0, "answered before any byte");
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(permits.available_permits(), 1, "no permit taken");
        // What arrives of the body after the answer is thrown away, not kept.
        assert!(drained(&read, 3).await, "drained after the answer");
    }

    #[tokio::test]
    async fn a_request_let_in_holds_a_permit_while_it_runs_and_sees_what_verify_left() {
        let permits = Semaphore::new(1);
        let read = Arc::new(AtomicUsize::new(0));
        let response = admit(
            &permits,
            request(WITH_BODY, 3, &read),
            async |request: &mut Request| {
                assert_eq!(read.load(Ordering::SeqCst), 0, "verified from the headers");
                request.extensions_mut().insert(Principal::local());
                Ok(())
            },
            async |request: Request| {
                assert_eq!(permits.available_permits(), 0, "a permit is held");
                assert_eq!(
                    request.extensions().get::<Principal>(),
                    Some(&Principal::local())
                );
                let body = axum::body::to_bytes(request.into_body(), 1024).await;
                assert_eq!(body.unwrap().len(), 30);
                StatusCode::OK.into_response()
            },
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key(header::CONNECTION));
        assert_eq!(permits.available_permits(), 1, "given back once served");
    }

    #[tokio::test]
    async fn with_every_permit_taken_a_request_let_in_is_503_at_once_unread() {
        let permits = Semaphore::new(0);
        let (read, ran) = (Arc::new(AtomicUsize::new(0)), AtomicBool::new(false));
        let response = admit(
            &permits,
            request(WITH_BODY, 3, &read),
            async |_: &mut Request| Ok(()),
            async |_| {
                ran.store(true, Ordering::SeqCst);
                StatusCode::OK.into_response()
            },
        )
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(read.load(Ordering::SeqCst), 0);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn only_a_request_with_a_body_coming_is_closed_and_a_100_continue_is_never_asked_for() {
        let read = Arc::new(AtomicUsize::new(0));
        // No body: the connection may serve the client's next request.
        for headers in [&[][..], &[("content-length", "0")]] {
            let response = answer_unread(no_key().unwrap_err(), request(headers, 0, &read));
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert!(
                !response.headers().contains_key(header::CONNECTION),
                "{headers:?}"
            );
        }
        let response = answer_unread(
            no_key().unwrap_err(),
            request(&[("transfer-encoding", "chunked")], 2, &read),
        );
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert!(drained(&read, 2).await);
        // The client sends its body only once told to continue: reading it would tell it to.
        let read = Arc::new(AtomicUsize::new(0));
        let expecting = [("content-length", "30"), ("expect", "100-continue")];
        let response = answer_unread(no_key().unwrap_err(), request(&expecting, 3, &read));
        assert_eq!(response.headers()[header::CONNECTION], "close");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(read.load(Ordering::SeqCst), 0, "not read");
    }

    #[test]
    fn only_the_worker_token_passes_the_worker_check() {
        let token = "a-worker-token-of-at-least-32-characters";
        let expected = auth::sha256(token.as_bytes());
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let right = headers(&format!("Bearer {token}"));
        assert!(check_worker(Some(&expected), &right).is_ok());
        assert!(matches!(
            check_worker(None, &right),
            Err(ApiError::NotAWorker)
        ));
        for wrong in [headers("Bearer nope"), headers(token), HeaderMap::new()] {
            assert!(matches!(
                check_worker(Some(&expected), &wrong),
                Err(ApiError::NotAWorker)
            ));
        }
    }
}
