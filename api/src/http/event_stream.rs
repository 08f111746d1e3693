//! A stream of finished calls as an HTTP response of server-sent events, and the
//! `Last-Event-ID` a client resumes after: what `GET /invocations/stream` answers, and the
//! console's live logs.

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::streams::{self, StreamRequest};
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::convert::Infallible;

/// The server-sent events of `request`'s stream, until the client goes or the api stops; also
/// the console's live logs.
pub async fn stream_response(
    state: &AppState,
    request: StreamRequest,
) -> Result<Response, ApiError> {
    let subscription = state.streams.subscribe(&request.namespace)?;
    let open = streams::open(subscription, &state.db, request).await?;
    let events = futures_util::stream::unfold(open.events, |mut events| async move {
        let chunk = events.recv().await?;
        Some((Ok::<_, Infallible>(chunk), events))
    })
    // Whatever is still buffered, the response ends with the api.
    .take_until(open.closed.cancelled_owned());
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response())
}

/// The `seq` a client resumes after: its `Last-Event-ID` header, if it sent one.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|value| parse_seq(value.to_str().unwrap_or("-")))
        .transpose()
}

/// A `Last-Event-ID`: a `seq`, 0 or more.
fn parse_seq(text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "Last-Event-ID must be the id of an event received (a whole number); got {:?}",
                text.chars().take(32).collect::<String>()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_event_id_is_a_seq_of_zero_or_more() {
        assert_eq!(parse_seq("41").unwrap(), 41);
        assert_eq!(parse_seq(" 0 ").unwrap(), 0);
        for bad in ["-1", "x", "", "1.5", "99999999999999999999"] {
            assert_eq!(
                parse_seq(bad).unwrap_err().code(),
                "invalid_request",
                "{bad:?}"
            );
        }
    }
}
