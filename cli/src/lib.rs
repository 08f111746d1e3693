//! `faas`, the platform's command line: functions as folders (`init`, `deploy`, `test`, `dev`),
//! calls and their logs (`invoke`, `logs`, `invocations`), and the rest of the public REST API
//! (`ls`, `get`, `rm`, `keys`, `ns`, ...). [`run`] is the whole program; `main` only calls it.

pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod folder;
pub mod output;
pub mod since;
pub mod sse;
pub mod templates;

use clap::{Parser, Subcommand};
use error::{CliError, CliResult};
use output::Format;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// faas: deploy and run functions on a self-hosted serverless platform.
#[derive(Debug, Parser)]
#[command(name = "faas", version, about, propagate_version = true)]
#[command(
    after_help = "Start with `faas login`, then `faas init hello --language python && \
faas deploy hello && faas invoke hello -d '{\"name\": \"Ada\"}'`.\n\
Exit codes: 0 ok, 1 the function (or a test) failed, 2 usage or platform error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Where the api is, as whom, and how to print.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// The api's URL [default: the profile's, else http://127.0.0.1:8000].
    #[arg(long, global = true, env = "FAAS_URL", hide_env_values = true, help_heading = GLOBAL)]
    pub url: Option<String>,
    /// The API key (sent as `Authorization: Bearer`) [default: the profile's].
    #[arg(long, global = true, env = "FAAS_KEY", hide_env_values = true, help_heading = GLOBAL)]
    pub key: Option<String>,
    /// The functions' origin, where HTTP triggers answer [default: the profile's, else the
    /// api's host on port 8080].
    #[arg(long, global = true, env = "FAAS_FUNCTIONS_URL", hide_env_values = true, help_heading = GLOBAL)]
    pub functions_url: Option<String>,
    /// The profile of the config file to use (and that `login` writes).
    #[arg(long, global = true, env = "FAAS_PROFILE", hide_env_values = true, help_heading = GLOBAL)]
    pub profile: Option<String>,
    /// Output: text for people, json for scripts (stable field names).
    #[arg(short = 'o', long = "output", global = true, env = "FAAS_OUTPUT", hide_env_values = true, help_heading = GLOBAL, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save a key (and URL) as a profile, after checking it with the api.
    Login(commands::auth::LoginArgs),
    /// Show the key's namespace and scopes.
    Whoami,
    /// Make a function folder: handler, faas.toml, .faasignore and a sample event.
    Init(commands::init::InitArgs),
    /// Deploy a function folder: create or update the function, wait for its build.
    Deploy(commands::deploy::DeployArgs),
    /// Call a function: the result on stdout, its logs on stderr.
    Invoke(commands::invoke::InvokeArgs),
    /// List the functions.
    Ls,
    /// Show a function: its settings, build, URLs and the last hour's calls.
    Get(commands::functions::NameArg),
    /// Delete a function.
    Rm(commands::functions::NameArg),
    /// List invocations, newest first.
    Invocations(commands::logs::InvocationsArgs),
    /// Run a dead-lettered async invocation again.
    Retry(commands::logs::RetryArgs),
    /// Print the whole log of a function's dependency build.
    BuildLog(commands::functions::NameArg),
    /// Show invocations with their logs; -f follows them live.
    Logs(commands::logs::LogsArgs),
    /// Run a folder's events/*.json against the deployed function.
    Test(commands::test::TestArgs),
    /// Deploy, then redeploy on every change of the folder, tailing the logs.
    Dev(commands::dev::DevArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Manage namespaces (admin keys).
    #[command(subcommand)]
    Ns(commands::keys::NsCommand),
    /// Print a shell completion script.
    Completion(commands::auth::CompletionArgs),
}

/// Runs the command line `args` (the program's name first) and returns the exit status.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let outcome = dispatch(cli);
    if let Err(error) = &outcome {
        match error {
            // Reported as they happened.
            CliError::FunctionFailed(text) if text.is_empty() => {}
            _ => eprintln!("{}", error.one_line()),
        }
    }
    error::exit_code(&outcome)
}

/// What commands share: the resolved target and the output format.
pub struct Context {
    pub format: Format,
    pub overrides: config::Overrides,
}

impl Context {
    /// The profile, flags and environment combined.
    pub fn target(&self) -> CliResult<config::Target> {
        let path = config::config_path()?;
        config::resolve(&self.overrides, &config::load(&path)?)
    }

    /// A client of the resolved target.
    pub fn client(&self) -> CliResult<client::Client> {
        client::Client::new(self.target()?)
    }
}

fn dispatch(cli: Cli) -> CliResult {
    let context = Context {
        format: cli.global.output,
        overrides: config::Overrides {
            url: cli.global.url,
            key: cli.global.key,
            functions_url: cli.global.functions_url,
            profile: cli.global.profile,
        },
    };
    use commands::*;
    match cli.command {
        Command::Login(args) => auth::login(&context, args),
        Command::Whoami => auth::whoami(&context),
        Command::Init(args) => init::init(&context, args),
        Command::Deploy(args) => deploy::deploy(&context, args).map(drop),
        Command::Invoke(args) => invoke::invoke(&context, args),
        Command::Ls => functions::list(&context),
        Command::Get(args) => functions::get(&context, args),
        Command::Rm(args) => functions::remove(&context, args),
        Command::BuildLog(args) => functions::build_log(&context, args),
        Command::Invocations(args) => logs::invocations(&context, args),
        Command::Retry(args) => logs::retry(&context, args),
        Command::Logs(args) => logs::logs(&context, args),
        Command::Test(args) => test::test(&context, args),
        Command::Dev(args) => dev::dev(&context, args),
        Command::Keys(command) => keys::keys(&context, command),
        Command::Ns(command) => keys::namespaces(&context, command),
        Command::Completion(args) => {
            auth::completion(args);
            Ok(())
        }
    }
}

/// A folder argument: the current directory when absent.
pub fn folder_or_here(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert_eq!(run(["faas", "no-such-command"]), ExitCode::from(2));
        assert_eq!(run(["faas", "init"]), ExitCode::from(2));
        assert_eq!(run(["faas", "--help"]), ExitCode::SUCCESS);
    }
}
