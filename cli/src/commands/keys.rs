//! `faas keys create|ls|revoke` and `faas ns create|ls|rm`.

use crate::Context;
use crate::client::{path_segment, query_value};
use crate::error::CliResult;
use crate::output::{Format, cell, print_json, table};
use serde_json::{Map, Value, json};

/// `faas keys ...`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key; it is shown this once.
    Create {
        /// A scope of the key: admin, manage, invoke or read (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Its namespace [default: the caller's; another one needs an admin key].
        #[arg(long)]
        namespace: Option<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// When it stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List keys, without their secrets.
    Ls {
        /// Only this namespace's (admin keys).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Revoke a key.
    Revoke {
        /// The key's id (32 hex digits, as `keys ls` shows).
        id: String,
    },
}

/// `faas ns ...`.
#[derive(Debug, clap::Subcommand)]
pub enum NsCommand {
    /// Make a namespace.
    Create {
        /// Its name: a DNS label.
        name: String,
        /// A runtime its functions may use (repeat; `gvisor` alone makes it untrusted).
        #[arg(long = "allowed-runtime")]
        allowed_runtimes: Vec<String>,
        /// Calls of all its functions at once, across the cluster.
        #[arg(long)]
        max_concurrency: Option<i64>,
    },
    /// List namespaces.
    Ls,
    /// Delete a namespace with its functions, keys and records.
    Rm {
        /// Its name.
        name: String,
    },
}

/// Runs a `keys` command.
pub fn keys(context: &Context, command: KeysCommand) -> CliResult {
    let client = context.client()?;
    match command {
        KeysCommand::Create {
            scopes,
            namespace,
            description,
            expires_at,
        } => {
            let mut body = Map::new();
            body.insert("scopes".into(), json!(scopes));
            for (field, value) in [
                ("namespace", namespace),
                ("description", description),
                ("expires_at", expires_at),
            ] {
                if let Some(value) = value {
                    body.insert(field.into(), json!(value));
                }
            }
            let created = client.send_json("POST", "/keys/", &Value::Object(body))?;
            match context.format {
                Format::Json => print_json(&created),
                Format::Text => {
                    eprintln!(
                        "Made key {} in namespace {}; it is shown this once:",
                        cell(&created["id"]),
                        cell(&created["namespace"])
                    );
                    println!("{}", cell(&created["key"]));
                }
            }
        }
        KeysCommand::Ls { namespace } => {
            let path = match namespace {
                Some(namespace) => format!("/keys/?namespace={}", query_value(&namespace)),
                None => "/keys/".into(),
            };
            let keys = client.get(&path)?;
            let columns = [
                "id",
                "namespace",
                "scopes",
                "description",
                "created_at",
                "expires_at",
            ];
            print_list(context.format, &keys, &columns);
        }
        KeysCommand::Revoke { id } => {
            let answer = client.delete(&format!("/keys/{}", path_segment(&id)))?;
            match context.format {
                Format::Json => print_json(&answer),
                Format::Text => println!("Revoked key {id}"),
            }
        }
    }
    Ok(())
}

/// Runs an `ns` command.
pub fn namespaces(context: &Context, command: NsCommand) -> CliResult {
    let client = context.client()?;
    match command {
        NsCommand::Create {
            name,
            allowed_runtimes,
            max_concurrency,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if !allowed_runtimes.is_empty() {
                body.insert("allowed_runtimes".into(), json!(allowed_runtimes));
            }
            if let Some(max) = max_concurrency {
                body.insert("max_concurrency".into(), json!(max));
            }
            let created = client.send_json("POST", "/namespaces/", &Value::Object(body))?;
            match context.format {
                Format::Json => print_json(&created),
                Format::Text => println!("Made namespace {name}"),
            }
        }
        NsCommand::Ls => {
            let list = client.get("/namespaces/")?;
            let columns = ["name", "allowed_runtimes", "max_concurrency", "created_at"];
            print_list(context.format, &list, &columns);
        }
        NsCommand::Rm { name } => {
            let answer = client.delete(&format!("/namespaces/{}", path_segment(&name)))?;
            match context.format {
                Format::Json => print_json(&answer),
                Format::Text => println!("Deleted namespace {name}"),
            }
        }
    }
    Ok(())
}

/// A list as a table of `columns`, or as the api gave it.
fn print_list(format: Format, list: &Value, columns: &[&str]) {
    match format {
        Format::Json => print_json(list),
        Format::Text => {
            let rows = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| columns.iter().map(|c| list_cell(&item[c])).collect())
                .collect();
            println!("{}", table(columns, rows));
        }
    }
}

/// Arrays of strings as `a,b`; the rest as [`cell`].
fn list_cell(value: &Value) -> String {
    match value.as_array() {
        Some(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => cell(value),
    }
}
