//! Secret settings read from files: every setting that hides its value in `--help`
//! (`hide_env_values`) may also be given as `NAME_FILE`, the path of a file holding it, which is
//! how Docker and Swarm secrets arrive (`/run/secrets/...`), so that a secret never sits in a
//! service's environment, where `docker inspect` shows it.
//!
//! The value is handed to clap as its flag, in the argument list clap parses (not the process's
//! own command line, which `ps` shows), so the usual rules hold: a flag on the command line still
//! wins, and the value is validated like any other.

use clap::Parser;
use std::ffi::OsString;

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFileError {
    #[error("set {name} or {name}_FILE, not both")]
    Both { name: String },
    #[error("{name}_FILE={path}: cannot read it: {reason}")]
    Unreadable {
        name: String,
        path: String,
        reason: String,
    },
    #[error("{name}_FILE={path}: the file is empty")]
    Empty { name: String, path: String },
}

/// Parses `C` from the process's arguments and environment as `C::parse()` does, with each
/// secret setting's `NAME_FILE` read first; exits with clap's status 2 and a message naming the
/// variable when a file cannot be used.
pub fn parse<C: Parser>() -> C {
    let extra = secret_file_args(
        &C::command(),
        |name| std::env::var_os(name),
        |path| std::fs::read(path).map_err(|error| error.to_string()),
    );
    match extra {
        Ok(extra) => C::parse_from(std::env::args_os().chain(extra)),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    }
}

/// The `--flag=value` arguments for the secret settings of `command` whose `NAME_FILE` is set,
/// reading variables with `var` and files with `read`. One trailing line ending is dropped, as
/// `echo secret > file` and `docker secret create` from such a file leave one.
pub fn secret_file_args(
    command: &clap::Command,
    var: impl Fn(&str) -> Option<OsString>,
    read: impl Fn(&std::path::Path) -> Result<Vec<u8>, String>,
) -> Result<Vec<OsString>, SecretFileError> {
    let mut args = Vec::new();
    for arg in command.get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if !arg.is_hide_env_values_set() {
            continue;
        }
        let name = env.to_string_lossy().into_owned();
        let Some(path) = var(&format!("{name}_FILE")) else {
            continue;
        };
        if var(&name).is_some() {
            return Err(SecretFileError::Both { name });
        }
        let shown = path.to_string_lossy().into_owned();
        let mut bytes =
            read(std::path::Path::new(&path)).map_err(|reason| SecretFileError::Unreadable {
                name: name.clone(),
                path: shown.clone(),
                reason,
            })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(SecretFileError::Empty { name, path: shown });
        }
        let value = String::from_utf8(bytes).map_err(|_| SecretFileError::Unreadable {
            name: name.clone(),
            path: shown.clone(),
            reason: "it is not UTF-8".into(),
        })?;
        args.push(OsString::from(format!("--{long}={value}")));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::collections::HashMap;

    #[derive(Debug, Parser)]
    struct Settings {
        #[arg(
            long,
            env = "SECRET_URL",
            hide_env_values = true,
            default_value = "none"
        )]
        secret_url: String,
        #[arg(long, env = "PLAIN", default_value = "plain")]
        plain: String,
    }

    fn args(vars: &[(&str, &str)], files: &[(&str, &str)]) -> Result<Vec<String>, SecretFileError> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let files: HashMap<String, Vec<u8>> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        secret_file_args(
            &Settings::command(),
            |name| vars.get(name).cloned(),
            |path| {
                files
                    .get(path.to_str().unwrap())
                    .cloned()
                    .ok_or_else(|| "No such file or directory".to_string())
            },
        )
        .map(|args| args.into_iter().map(|a| a.into_string().unwrap()).collect())
    }

    #[test]
    fn a_secret_comes_from_its_file_without_the_line_ending() {
        let got = args(
            &[("SECRET_URL_FILE", "/run/secrets/url")],
            &[("/run/secrets/url", "amqp://u:p@h/\r\n")],
        );
        assert_eq!(got, Ok(vec!["--secret-url=amqp://u:p@h/".to_string()]));
        let settings = Settings::parse_from(std::iter::once("x".to_string()).chain(got.unwrap()));
        assert_eq!(settings.secret_url, "amqp://u:p@h/");
    }

    #[test]
    fn only_secret_settings_read_files() {
        let got = args(
            &[("PLAIN_FILE", "/run/secrets/plain")],
            &[("/run/secrets/plain", "x")],
        );
        assert_eq!(got, Ok(vec![]));
    }

    #[test]
    fn both_the_setting_and_its_file_is_an_error() {
        let got = args(
            &[("SECRET_URL", "a"), ("SECRET_URL_FILE", "/f")],
            &[("/f", "b")],
        );
        assert_eq!(
            got,
            Err(SecretFileError::Both {
                name: "SECRET_URL".into()
            })
        );
    }

    #[test]
    fn a_missing_or_empty_file_is_named() {
        let missing = args(&[("SECRET_URL_FILE", "/nope")], &[]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "SECRET_URL_FILE=/nope: cannot read it: No such file or directory"
        );
        let empty = args(&[("SECRET_URL_FILE", "/e")], &[("/e", "\n")]).unwrap_err();
        assert_eq!(empty.to_string(), "SECRET_URL_FILE=/e: the file is empty");
    }
}
