//! A function's stored test events (`GET` and `PUT /functions/{id}/tests`): what `faas test`
//! and the console run against it. Each is a named event and, optionally, what to expect of the
//! call; the server keeps them as they are sent and never runs them. [`FunctionTests::check`]
//! holds the limits, pure, so that every refusal names the test and the field.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The most tests a function keeps.
pub const MAX_TESTS: usize = 100;
/// The longest test name, in characters (all ASCII).
pub const MAX_TEST_NAME_LEN: usize = 100;
/// The largest body of `PUT /functions/{id}/tests`: 1 MiB.
pub const MAX_TESTS_BODY_BYTES: usize = 1024 * 1024;

/// The body of `PUT /functions/{id}/tests`, and the answer of both operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"tests": [
    {"name": "hello", "event": {"name": "world"}, "expect": {"message": "Hello, world"}},
    {"name": "no-name", "event": {}, "expect": {"error": "KeyError"}},
    {"name": "smoke", "event": {"name": "faas"}}
]})))]
pub struct FunctionTests {
    /// In the order given; names unique. At most 100, and the body at most 1 MiB.
    #[schema(max_items = 100)]
    pub tests: Vec<TestEvent>,
}

/// One test: an event to call the function with and what to expect of the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    /// 1 to 100 characters of `A-Z`, `a-z`, `0-9`, `.`, `_` and `-`; unique among the tests.
    #[schema(
        pattern = "^[A-Za-z0-9._-]{1,100}$",
        min_length = 1,
        max_length = 100,
        example = "hello"
    )]
    pub name: String,
    /// Any JSON: the event the function is called with.
    #[schema(value_type = Value)]
    pub event: Value,
    /// Any JSON, `null` included; absent: nothing expected. Opaque to the server: the CLI and
    /// the console read `{"error": "Type"}` as "an error of that type", any other value as
    /// "the result equals it".
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Value, required = false)]
    pub expect: Option<Value>,
}

/// A field that is present is `Some`, even when it is `null`; an absent one is `None` (serde's
/// `default`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Why a set of tests is refused (422): the text names the test and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTests(pub String);

impl FunctionTests {
    /// Checks the tests sent in a body of `body_bytes` bytes against the limits: at most
    /// [`MAX_TESTS`], each name valid and unique, the body within [`MAX_TESTS_BODY_BYTES`].
    pub fn check(&self, body_bytes: usize) -> Result<(), InvalidTests> {
        if body_bytes > MAX_TESTS_BODY_BYTES {
            return Err(InvalidTests(format!(
                "the tests' body is {body_bytes} bytes, over the limit of {MAX_TESTS_BODY_BYTES} (1 MiB)"
            )));
        }
        if self.tests.len() > MAX_TESTS {
            return Err(InvalidTests(format!(
                "a function keeps at most {MAX_TESTS} tests; got {}",
                self.tests.len()
            )));
        }
        for (index, test) in self.tests.iter().enumerate() {
            if !valid_test_name(&test.name) {
                return Err(InvalidTests(format!(
                    "tests[{index}].name must be 1 to {MAX_TEST_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '_' and '-'; got {:?}",
                    test.name
                )));
            }
            if let Some(first) = self.tests[..index].iter().position(|t| t.name == test.name) {
                return Err(InvalidTests(format!(
                    "tests[{index}].name {:?} is already the name of tests[{first}]: names must be unique",
                    test.name
                )));
            }
        }
        Ok(())
    }
}

/// A test name: 1 to [`MAX_TEST_NAME_LEN`] of `A-Za-z0-9._-`.
fn valid_test_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEST_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test(name: &str) -> TestEvent {
        TestEvent {
            name: name.into(),
            event: json!({"n": 1}),
            expect: None,
        }
    }

    fn tests(names: &[&str]) -> FunctionTests {
        FunctionTests {
            tests: names.iter().map(|name| test(name)).collect(),
        }
    }

    #[test]
    fn valid_tests_pass_up_to_every_limit() {
        assert_eq!(tests(&[]).check(12), Ok(()));
        assert_eq!(tests(&["hello", "v1.2_edge-case"]).check(100), Ok(()));
        let hundred: Vec<String> = (0..MAX_TESTS).map(|n| format!("t{n}")).collect();
        let names: Vec<&str> = hundred.iter().map(String::as_str).collect();
        assert_eq!(tests(&names).check(MAX_TESTS_BODY_BYTES), Ok(()));
        let longest = "a".repeat(MAX_TEST_NAME_LEN);
        assert_eq!(tests(&[&longest]).check(200), Ok(()));
    }

    #[test]
    fn each_refusal_names_the_test_and_the_problem() {
        let many: Vec<String> = (0..=MAX_TESTS).map(|n| format!("t{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let too_long = "a".repeat(MAX_TEST_NAME_LEN + 1);
        for (refused, body_bytes, why) in [
            (
                tests(&many),
                1000,
                "a function keeps at most 100 tests; got 101",
            ),
            (
                tests(&["ok", "has space"]),
                100,
                "tests[1].name must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '_' and '-'; got \"has space\"",
            ),
            (
                tests(&[""]),
                100,
                "tests[0].name must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '_' and '-'; got \"\"",
            ),
            (tests(&[&too_long]), 200, "tests[0].name must be 1 to 100"),
            (tests(&["é"]), 100, "tests[0].name must be"),
            (
                tests(&["a", "b", "a"]),
                100,
                "tests[2].name \"a\" is already the name of tests[0]: names must be unique",
            ),
            (
                tests(&["a"]),
                MAX_TESTS_BODY_BYTES + 1,
                "the tests' body is 1048577 bytes, over the limit of 1048576 (1 MiB)",
            ),
        ] {
            let InvalidTests(said) = refused.check(body_bytes).expect_err(why);
            assert!(
                said.starts_with(why),
                "{said:?} does not start with {why:?}"
            );
        }
    }

    #[test]
    fn an_absent_expect_differs_from_a_null_one_both_ways() {
        let body = json!({"tests": [
            {"name": "absent", "event": null},
            {"name": "null", "event": {}, "expect": null},
            {"name": "error", "event": [1, "two"], "expect": {"error": "KeyError"}},
        ]});
        let read: FunctionTests = serde_json::from_value(body.clone()).expect("valid");
        assert_eq!(read.tests[0].expect, None);
        assert_eq!(read.tests[0].event, Value::Null);
        assert_eq!(read.tests[1].expect, Some(Value::Null));
        assert_eq!(read.tests[2].expect, Some(json!({"error": "KeyError"})));
        // Written back as sent: no `expect` where there was none, `null` where it was.
        assert_eq!(serde_json::to_value(&read).unwrap(), body);
    }

    #[test]
    fn an_unknown_or_missing_field_is_refused() {
        for body in [
            json!({"tests": [{"name": "a", "event": {}, "expected": 1}]}),
            json!({"tests": [{"name": "a"}]}),
            json!({"tests": [{"event": {}}]}),
            json!({"tests": {}}),
            json!({}),
        ] {
            assert!(
                serde_json::from_value::<FunctionTests>(body.clone()).is_err(),
                "{body}"
            );
        }
    }
}
