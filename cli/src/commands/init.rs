//! `faas init NAME`: a new function folder from a template.

use crate::Context;
use crate::error::{CliError, CliResult};
use crate::folder::manifest::is_function_name;
use crate::output::{Format, print_json};
use crate::templates::{self, InitLanguage, Template};
use serde_json::json;
use std::path::PathBuf;

/// `faas init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The function's name, and the folder made for it (`[A-Za-z0-9_-]`, 1 to 64).
    pub name: String,
    /// The handler's language.
    #[arg(long, short, value_enum, default_value_t = InitLanguage::Python)]
    pub language: InitLanguage,
    /// What the function starts as.
    #[arg(long, short, value_enum, default_value_t = Template::Plain)]
    pub template: Template,
    /// Where to make the folder [default: ./NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Writes the folder; refuses one that exists with files in it.
pub fn init(context: &Context, args: InitArgs) -> CliResult {
    if !is_function_name(&args.name) {
        return Err(CliError::Usage(format!(
            "a function name is 1 to 64 letters, digits, `_` or `-`; got {:?}",
            args.name
        )));
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CliError::Usage(format!(
                    "{} exists and is not empty; choose another name or --dir",
                    dir.display()
                )));
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(CliError::io(&dir, error)),
    }
    let files = templates::files(&args.name, args.language, args.template);
    for file in &files {
        let path = dir.join(file.path);
        let parent = path.parent().expect("files sit in the folder");
        std::fs::create_dir_all(parent).map_err(|e| CliError::io(parent, e))?;
        std::fs::write(&path, &file.content).map_err(|e| CliError::io(&path, e))?;
    }
    let written: Vec<&str> = files.iter().map(|f| f.path).collect();
    match context.format {
        Format::Json => print_json(&json!({
            "name": args.name,
            "dir": dir.display().to_string(),
            "files": written,
        })),
        Format::Text => {
            println!("Made {}/ with {}", dir.display(), written.join(", "));
            println!(
                "Next: faas deploy {dir} && faas test {dir}",
                dir = dir.display()
            );
        }
    }
    Ok(())
}
