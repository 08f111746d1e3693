//! Axum's extractors, with their rejections turned into [`ApiError`]s so that every 4xx has the
//! platform's JSON error body rather than axum's plain text.
//!
//! `Path` and `Query` also refuse a NUL (`%00`) in the path or the query string with 422:
//! Postgres text cannot hold U+0000, so a name carrying one would fail its query (a 503) rather
//! than be found or not.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};
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

/// An integer field of a JSON body that also takes a number written with a zero fraction
/// (`5.0`): JSON Schema, and so the OpenAPI document, calls that an integer too, and clients
/// that only have floating point (JavaScript among them) may send it so.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = <serde_json::Number as serde::Deserialize>::deserialize(deserializer)?;
    if let Some(whole) = number.as_i64() {
        return Ok(whole);
    }
    // -2^63 and 2^63 are exact in f64; 2^63 itself is out of range.
    const I64_RANGE: std::ops::Range<f64> = (i64::MIN as f64)..-(i64::MIN as f64);
    match number.as_f64() {
        Some(value) if value.fract() == 0.0 && I64_RANGE.contains(&value) => Ok(value as i64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number, got {number}"
        ))),
    }
}

/// [`whole_number`] for a field that may be absent (with `#[serde(default)]`) or null.
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] i64);
    let whole = <Option<Whole> as serde::Deserialize>::deserialize(deserializer)?;
    Ok(whole.map(|Whole(value)| value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "whole_number")]
        n: i64,
        #[serde(default, deserialize_with = "optional_whole_number")]
        m: Option<i64>,
    }

    fn parse(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let body = parse(r#"{"n": 5.0, "m": 7}"#).unwrap();
        assert_eq!((body.n, body.m), (5, Some(7)));
        let body = parse(r#"{"n": -3}"#).unwrap();
        assert_eq!((body.n, body.m), (-3, None));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap().m, None);
        assert_eq!(parse(r#"{"n": 1, "m": 1e3}"#).unwrap().m, Some(1000));
        for bad in [
            r#"{"n": 5.5}"#,
            r#"{"n": "5"}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 1, "m": 0.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
