//! A function as a folder: `faas.toml`, the handler and its files, the dependency file, test
//! events. [`Folder::load`] checks all of it and builds the api's body before anything is sent,
//! so that bad input is refused whole.

pub mod events;
pub mod manifest;
pub mod package;

use crate::error::{CliError, CliResult};
use base64::Engine as _;
use events::TestEvent;
use manifest::Manifest;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A folder, checked and packaged.
#[derive(Debug, Clone)]
pub struct Folder {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The body of `POST /functions/` (and `PUT`).
    pub body: Value,
    pub zip_bytes: usize,
    pub files: usize,
    pub tests: Vec<TestEvent>,
}

impl Folder {
    /// Reads and checks folder `dir`; `env_file` adds `KEY=value` lines to `env` (over
    /// `faas.toml`'s).
    pub fn load(dir: &Path, env_file: Option<&Path>) -> CliResult<Folder> {
        if !dir.is_dir() {
            return Err(CliError::Usage(format!(
                "{} is not a folder (make one with `faas init NAME`)",
                dir.display()
            )));
        }
        let manifest_path = dir.join(manifest::FILE_NAME);
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(CliError::Usage(format!(
                    "{} has no {} (make a function folder with `faas init NAME`)",
                    dir.display(),
                    manifest::FILE_NAME
                )));
            }
            Err(error) => return Err(CliError::io(&manifest_path, error)),
        };
        let manifest = manifest::parse(&text).map_err(|error| match error {
            CliError::Usage(why) => CliError::Usage(format!("{}/{why}", dir.display())),
            other => other,
        })?;
        let files = package::collect(dir)?;
        let candidates = manifest.language.module_files(&manifest.module);
        if !files.iter().any(|file| candidates.contains(&file.name)) {
            return Err(CliError::Usage(format!(
                "{}: the handler {:?} needs the file {} in the folder (not left out by {})",
                dir.display(),
                manifest.handler,
                candidates.join(" or "),
                package::IGNORE_FILE
            )));
        }
        let dependencies = read_optional(&dir.join(manifest.language.dependency_file()))?;
        let tests = events::load(dir)?;
        let zip = package::zip(&files)?;
        package::check_size(zip.len())?;

        let mut body = manifest.fields.clone();
        if let Some(path) = env_file {
            let extra = read_env_file(path)?;
            let env = body
                .entry("env")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("env is an object");
            for (name, value) in extra {
                env.insert(name, Value::String(value));
            }
        }
        if let Some(dependencies) = dependencies {
            body.insert("dependencies".into(), Value::String(dependencies));
        }
        body.insert(
            "code_zip".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&zip)),
        );
        Ok(Folder {
            dir: dir.to_owned(),
            manifest,
            body: Value::Object(body),
            zip_bytes: zip.len(),
            files: files.len(),
            tests,
        })
    }
}

/// The file's text, or `None` when it does not exist.
fn read_optional(path: &Path) -> CliResult<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CliError::io(path, error)),
    }
}

/// The variables of a `.env`-style file (`KEY=value`, `#` comments, quotes).
pub fn read_env_file(path: &Path) -> CliResult<Vec<(String, String)>> {
    let lines = dotenvy::from_path_iter(path).map_err(|error| env_file_error(path, error))?;
    lines
        .map(|line| line.map_err(|error| env_file_error(path, error)))
        .collect()
}

fn env_file_error(path: &Path, error: dotenvy::Error) -> CliError {
    match error {
        dotenvy::Error::Io(source) => CliError::io(path, source),
        other => CliError::Usage(format!("{}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faas-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, content) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    const TOML: &str =
        "name = \"f\"\nlanguage = \"python\"\nroute = \"/f\"\ntimeout = 3\n[env]\nA = \"1\"\n";

    #[test]
    fn a_folder_becomes_the_apis_body_with_its_package_and_dependencies() {
        let dir = folder(
            "ok",
            &[
                ("faas.toml", TOML),
                ("main.py", "def handler(e, c): return 1\n"),
                ("requirements.txt", "six==1.16.0\n"),
                ("secrets.env", "# local\nTOKEN=\"s3cret\"\nA=2\n"),
                ("events/one.json", r#"{"event": {}, "expect": 1}"#),
            ],
        );
        let loaded = Folder::load(&dir, Some(&dir.join("secrets.env"))).unwrap();
        assert_eq!(loaded.body["env"], json!({"A": "2", "TOKEN": "s3cret"}));
        assert_eq!(loaded.body["dependencies"], "six==1.16.0\n");
        assert_eq!(loaded.body["handler"], "main.handler");
        assert!(loaded.body["code_zip"].as_str().unwrap().len() > 10);
        assert_eq!(loaded.tests.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_without_its_toml_or_handler_file_is_refused() {
        let empty = folder("empty", &[("main.py", "")]);
        let error = Folder::load(&empty, None).unwrap_err().to_string();
        assert!(error.contains("has no faas.toml"), "{error}");
        let no_handler = folder("nohandler", &[("faas.toml", TOML), ("other.py", "")]);
        let error = Folder::load(&no_handler, None).unwrap_err().to_string();
        assert!(
            error.contains("needs the file main.py or main/__init__.py"),
            "{error}"
        );
        let ignored = folder(
            "ignored",
            &[
                ("faas.toml", TOML),
                ("main.py", ""),
                (".faasignore", "main.py\n"),
            ],
        );
        assert!(Folder::load(&ignored, None).is_err());
        let bad_toml = folder("bad", &[("faas.toml", "name = 3\n"), ("main.py", "")]);
        let error = Folder::load(&bad_toml, None).unwrap_err().to_string();
        assert!(error.contains("faas.toml line 1 (name)"), "{error}");
        for dir in [empty, no_handler, ignored, bad_toml] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
