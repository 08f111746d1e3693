//! `login` (a key checked with `/whoami` and saved as a profile), `whoami`, and `completion`.

use crate::client::Client;
use crate::config;
use crate::error::{CliError, CliResult};
use crate::output::{Format, print_json};
use crate::{Cli, Context};
use clap::CommandFactory as _;
use serde_json::{Value, json};
use std::io::{BufRead as _, IsTerminal as _};

/// `faas login`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Asks for an API key (hidden input; read from stdin when it is not a terminal), \
checks it with the api's /whoami and saves it, with --url and --functions-url, as the profile \
named by --profile (default: \"default\") in $XDG_CONFIG_HOME/faas/config.toml, readable by you \
only."
)]
pub struct LoginArgs {}

/// Checks a key and saves the profile.
pub fn login(context: &Context, _args: LoginArgs) -> CliResult {
    let path = config::config_path()?;
    let mut file = config::load(&path)?;
    let mut overrides = context.overrides.clone();
    let profile_name = overrides
        .profile
        .clone()
        .or_else(|| file.default_profile.clone())
        .unwrap_or_else(|| config::DEFAULT_PROFILE.to_owned());
    let existing = file
        .profiles
        .get(&profile_name)
        .cloned()
        .unwrap_or_default();
    overrides.profile = Some(profile_name.clone());
    overrides.url = overrides
        .url
        .or(existing.url.clone())
        .or_else(|| Some(config::DEFAULT_URL.to_owned()));
    let key = match overrides.key.take() {
        Some(key) => key,
        None => read_key(&overrides.url.clone().unwrap_or_default())?,
    };
    if key.is_empty() {
        return Err(CliError::Usage("no key given".into()));
    }
    overrides.key = Some(key.clone());
    let target = config::resolve(&overrides, &file)?;
    let client = Client::new(target.clone())?;
    let who = client.get("/whoami")?;

    let profile = file.profiles.entry(profile_name.clone()).or_default();
    profile.url = Some(target.url.clone());
    profile.key = Some(key);
    if let Some(functions_url) = &context.overrides.functions_url {
        profile.functions_url = Some(functions_url.clone());
    }
    if file.default_profile.is_none() {
        file.default_profile = Some(profile_name.clone());
    }
    config::save(&path, &file)?;
    match context.format {
        Format::Json => print_json(&json!({
            "profile": profile_name,
            "url": target.url,
            "config": path.display().to_string(),
            "whoami": who,
        })),
        Format::Text => println!(
            "Logged in to {} as namespace {} ({}); saved as profile {profile_name:?} in {}",
            target.url,
            who["namespace"].as_str().unwrap_or("?"),
            scopes(&who),
            path.display()
        ),
    }
    Ok(())
}

/// The key typed at a hidden prompt, or the first line of stdin when it is not a terminal.
fn read_key(url: &str) -> CliResult<String> {
    let key = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("API key for {url}: "))
            .map_err(|e| CliError::io("the terminal", e))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::io("stdin", e))?;
        line
    };
    Ok(key.trim().to_owned())
}

fn scopes(who: &Value) -> String {
    who["scopes"]
        .as_array()
        .map(|scopes| {
            scopes
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `faas whoami`.
pub fn whoami(context: &Context) -> CliResult {
    let client = context.client()?;
    let who = client.get("/whoami")?;
    match context.format {
        Format::Json => print_json(&who),
        Format::Text => {
            println!("namespace: {}", who["namespace"].as_str().unwrap_or("?"));
            println!("scopes:    {}", scopes(&who));
            println!("key id:    {}", who["key_id"].as_str().unwrap_or("-"));
            println!(
                "api:       {} (profile {})",
                client.target.url, client.target.profile
            );
        }
    }
    Ok(())
}

/// `faas completion SHELL`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete in (e.g. `faas completion bash > /etc/bash_completion.d/faas`).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script.
pub fn completion(args: CompletionArgs) {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "faas",
        &mut std::io::stdout(),
    );
}
