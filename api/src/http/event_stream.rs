//! A stream of finished calls as an HTTP response of server-sent events: what
//! `GET /invocations/stream` answers, and the console's live logs.

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::streams::{self, StreamRequest};
use axum::body::Body;
use axum::http::header;
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
