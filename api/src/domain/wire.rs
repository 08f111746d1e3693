//! How the JSON bodies are read and described where serde and utoipa cannot say it alone:
//! integers that arrive as `5.0`, and the schemas of fields whose pattern or shape the derive
//! cannot express. Pure: the body types of every layer use these.

use utoipa::openapi::{ObjectBuilder, Schema, Type};

/// The methods a route may be limited to (`http_methods`); absent means all of them.
pub const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

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

/// An optional nested object of a JSON body (absent, with `#[serde(default)]`, or null:
/// `None`): serde's derive would also read a struct from an array of its fields in order,
/// which the document does not allow, so anything but an object or null is refused.
pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match <Option<serde_json::Value> as serde::Deserialize>::deserialize(deserializer)? {
        None => Ok(None),
        Some(value @ serde_json::Value::Object(_)) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!(
            "expected an object or null, got {other}"
        ))),
    }
}

/// The schema of a function's `env` as created: names `[A-Za-z_][A-Za-z0-9_]*`, values without
/// NUL; absent or null is none.
pub fn env_input_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::Object,
                Type::Null,
            ]))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[A-Za-z_][A-Za-z0-9_]*$")),
            ))
            .additional_properties(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[^\u0000]*$")),
            ))
            .description(Some(
                "Environment variables of its containers: names `[A-Za-z_][A-Za-z0-9_]*`, \
                 values without NUL, at most 4 KiB of names and values together.",
            ))
            .examples([serde_json::json!({"GREETING": "Hello"})])
            .build(),
    )
}

/// A list of strings that match `pattern`: `min..=100` of them, or null when `nullable`.
fn string_list(pattern: &str, min: usize, nullable: bool, description: &str) -> Schema {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType};
    let kinds: Vec<Type> = if nullable {
        vec![Type::Array, Type::Null]
    } else {
        vec![Type::Array]
    };
    Schema::Array(
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter(kinds))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern)),
            )
            .min_items(Some(min))
            .max_items(Some(100))
            .description(Some(description))
            .build(),
    )
}

/// `(GET|HEAD|...)`: the methods a route may be limited to, as a pattern.
fn methods_pattern() -> String {
    format!("^({})$", HTTP_METHODS.join("|"))
}

/// A function's `http_methods` as created: some of the methods, upper case; null for all.
pub fn http_methods_schema() -> Schema {
    string_list(
        &methods_pattern(),
        1,
        true,
        "The methods its route answers (upper case); absent or null: all of them. Another \
         method is 405 with `Allow`.",
    )
}

/// `cors.allow_origins`: `*` or `scheme://host[:port]`, as `Cors::validate` checks them.
pub fn cors_origins_schema() -> Schema {
    string_list(
        r"^(\*|https?://[A-Za-z0-9.:\[\]-]+)$",
        1,
        false,
        "Origins allowed to read the answers (`https://app.example.com`, no path), or `*`.",
    )
}

/// `cors.allow_methods`: `*` or the route's methods.
pub fn cors_methods_schema() -> Schema {
    string_list(
        &format!("^(\\*|{})$", HTTP_METHODS.join("|")),
        0,
        false,
        "Methods a preflight allows (`*` or upper case); empty: the function's `http_methods`.",
    )
}

/// `cors.allow_headers` and `expose_headers`: `*` or header names (HTTP tokens).
pub fn cors_headers_schema() -> Schema {
    string_list(
        r"^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
        0,
        false,
        "Header names, or `*`.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_object_is_an_object_or_null_never_an_array() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Inner {
            a: Option<i64>,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Outer {
            #[serde(default, deserialize_with = "optional_object")]
            inner: Option<Inner>,
        }
        let read = |text: &str| serde_json::from_str::<Outer>(text).map(|o| o.inner);
        assert_eq!(read(r#"{}"#).unwrap(), None);
        assert_eq!(read(r#"{"inner": null}"#).unwrap(), None);
        assert_eq!(
            read(r#"{"inner": {"a": 1}}"#).unwrap(),
            Some(Inner { a: Some(1) })
        );
        for bad in [
            r#"{"inner": [null]}"#,
            r#"{"inner": [1]}"#,
            r#"{"inner": 3}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

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
