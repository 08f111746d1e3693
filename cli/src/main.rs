//! The `faas` binary: everything is in the library (`cli::run`).

fn main() -> std::process::ExitCode {
    cli::run(std::env::args_os())
}
