//! Axum's extractors, with their rejections turned into [`ApiError`]s so that every 4xx has the
//! platform's JSON error body rather than axum's plain text.
//!
//! `Path` and `Query` also refuse a NUL (`%00`) in the path or the query string with 422:
//! Postgres text cannot hold U+0000, so a name carrying one would fail its query (a 503) rather
//! than be found or not.

use crate::domain::auth::{self, Principal};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::Json` whose rejection is an [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// `axum::extract::Path` whose rejection is an [`ApiError`] (e.g. `/functions/abc`: 422).
pub struct Path<T>(pub T);

/// `axum::extract::Query` whose rejection is an [`ApiError`].
pub struct Query<T>(pub T);

/// 422 when `text` (a path or a query string, still percent-encoded) holds an encoded NUL.
fn refuse_nul(text: &str, what: &str) -> Result<(), ApiError> {
    if text.contains("%00") {
        return Err(ApiError::Invalid(format!(
            "the {what} must not contain NUL (%00)"
        )));
    }
    Ok(())
}

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        refuse_nul(parts.uri.path(), "path")?;
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        refuse_nul(parts.uri.query().unwrap_or_default(), "query")?;
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

impl Principal {
    /// The caller of a request with `headers`: its key, verified (every caller is
    /// [`Principal::local`] with auth disabled).
    pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(keys) = &state.key_cache else {
            return Ok(Principal::local());
        };
        let token =
            auth::bearer_token(headers.get(AUTHORIZATION)).map_err(ApiError::Unauthorized)?;
        keys.verify(&state.db, auth::parse_token(token))
            .await
            .map_err(ApiError::from)
    }
}

/// The caller that `http::admission::require_key` verified before the body was read; a
/// route outside it has its key verified here.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.remove::<Principal>() {
            Some(principal) => Ok(principal),
            None => Principal::from_headers(state, &parts.headers).await,
        }
    }
}

/// Checks `limit` against 1..=`max` and `skip` against 0.., the paging rules of every list.
pub fn check_page(skip: i64, limit: i64, max: i64) -> Result<(), ApiError> {
    if skip < 0 {
        return Err(ApiError::Invalid(format!(
            "skip must be 0 or more; got {skip}"
        )));
    }
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit must be from 1 to {max}; got {limit}"
        )));
    }
    Ok(())
}
