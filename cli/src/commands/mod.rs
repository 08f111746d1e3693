//! One module per group of commands, and what several of them share: finding a function by
//! name and the URLs it answers on.

pub mod auth;
pub mod deploy;
pub mod dev;
pub mod functions;
pub mod init;
pub mod invoke;
pub mod keys;
pub mod logs;
pub mod test;

use crate::client::{Client, path_segment, query_value};
use crate::config::Target;
use crate::error::{CliError, CliResult};
use serde_json::{Value, json};

/// The function named `name` in the key's namespace, if there is one.
pub fn find_function(client: &Client, name: &str) -> CliResult<Option<Value>> {
    // `?name=` filters on the server; the name is compared here too, so that a server that
    // lists everything still gives the right answer.
    let listed = client.get(&format!(
        "/functions/?name={}&limit=1000",
        query_value(name)
    ))?;
    let found = listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|function| function["name"] == name)
        .cloned();
    Ok(found)
}

/// The function named `name`; an error saying so when there is none.
pub fn require_function(client: &Client, name: &str) -> CliResult<Value> {
    find_function(client, name)?.ok_or_else(|| {
        CliError::Usage(format!(
            "no function named {name:?} in this namespace (see `faas ls`)"
        ))
    })
}

/// A function's id.
pub fn function_id(function: &Value) -> CliResult<i64> {
    function["id"].as_i64().ok_or_else(|| CliError::Protocol {
        url: "/functions/".into(),
        reason: format!("a function without an id: {function}"),
    })
}

/// The URLs function `name` (with `route`) answers on.
pub fn urls(target: &Target, name: &str, route: Option<&str>) -> Value {
    json!({
        "execute": format!("{}/execute/{}", target.url, path_segment(name)),
        "trigger": route.map(|route| format!("{}{route}", target.functions_url)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_the_origins_with_the_name_and_route() {
        let target = Target {
            url: "http://127.0.0.1:8000".into(),
            key: None,
            functions_url: "http://127.0.0.1:8080".into(),
            profile: "default".into(),
        };
        assert_eq!(
            urls(&target, "hello", Some("/hello")),
            json!({"execute": "http://127.0.0.1:8000/execute/hello",
                   "trigger": "http://127.0.0.1:8080/hello"})
        );
    }
}
