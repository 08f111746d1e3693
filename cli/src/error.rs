//! Every way a command can fail, each with the one line printed on stderr and its exit code:
//! 1 when the function (or a test) failed, 2 for usage and platform errors.

use std::process::ExitCode;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line, a file or a folder is not what the command needs.
    #[error("{0}")]
    Usage(String),
    /// The api refused the request: its `code` and `detail`.
    #[error("{detail} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        detail: String,
    },
    /// No key, or one the api does not know.
    #[error(
        "the api at {url} refused the key ({detail}); log in with `faas login` (or pass --key / set FAAS_KEY)"
    )]
    Unauthorized { url: String, detail: String },
    /// The api did not answer.
    #[error("cannot reach the api at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The api answered what is not its API.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The function ran and failed (or its build did); already reported.
    #[error("{0}")]
    FunctionFailed(String),
    /// Some test events did not pass; already reported.
    #[error("{failed} of {total} test events failed")]
    TestsFailed { failed: usize, total: usize },
}

impl CliError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::FunctionFailed(_) | CliError::TestsFailed { .. } => 1,
            _ => 2,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> CliError {
        CliError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The line printed on stderr: one line, whatever the detail held.
    pub fn one_line(&self) -> String {
        let text = self.to_string();
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("error: {line}")
    }
}

/// The exit status of a command's outcome.
pub fn exit_code(outcome: &Result<(), CliError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => ExitCode::from(error.exit_code()),
    }
}

/// What commands return.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_and_test_failures_exit_1_everything_else_2() {
        assert_eq!(CliError::FunctionFailed("boom".into()).exit_code(), 1);
        assert_eq!(
            CliError::TestsFailed {
                failed: 1,
                total: 2
            }
            .exit_code(),
            1
        );
        let platform = [
            CliError::Usage("bad".into()),
            CliError::Api {
                status: 404,
                code: "function_not_found".into(),
                detail: "no".into(),
            },
            CliError::Unauthorized {
                url: "http://x".into(),
                detail: "d".into(),
            },
            CliError::Unreachable {
                url: "http://x".into(),
                reason: "r".into(),
            },
            CliError::io("f", std::io::Error::other("x")),
        ];
        for error in platform {
            assert_eq!(error.exit_code(), 2, "{error:?}");
        }
        assert_eq!(exit_code(&Ok(())), ExitCode::SUCCESS);
    }

    #[test]
    fn the_message_is_one_line_and_names_what_to_do() {
        let error = CliError::Api {
            status: 422,
            code: "invalid_request".into(),
            detail: "timeout must be\nbetween 1 and 900".into(),
        };
        assert_eq!(
            error.one_line(),
            "error: timeout must be between 1 and 900 (invalid_request, HTTP 422)"
        );
        let unauthorized = CliError::Unauthorized {
            url: "http://127.0.0.1:8000".into(),
            detail: "unknown key".into(),
        }
        .one_line();
        assert!(unauthorized.contains("faas login"), "{unauthorized}");
        assert!(!unauthorized.contains('\n'));
    }
}
