//! A function folder's files as a deployment package: the files `.faasignore` leaves in (never
//! `node_modules`, `.git` or `.env`), zipped deterministically (sorted, fixed times and modes)
//! so that the same files always make the same bytes, and the api's 50 MB limit checked here.

use crate::error::{CliError, CliResult};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The api's limit on a package, zipped (Lambda's 50 MB).
pub const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;
/// The gitignore-style file of patterns left out of the package.
pub const IGNORE_FILE: &str = ".faasignore";
/// Names never packaged, wherever they are: installed modules, history and local secrets.
pub const NEVER_PACKAGED: [&str; 3] = ["node_modules", ".git", ".env"];

/// One file of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Its path in the package, `/`-separated.
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
}

/// The files of folder `dir` that go into its package, sorted by name.
pub fn collect(dir: &Path) -> CliResult<Vec<PackageFile>> {
    let mut files = Vec::new();
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(false)
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            !NEVER_PACKAGED.contains(&name.as_ref())
        })
        .build();
    for entry in walk {
        let entry =
            entry.map_err(|error| CliError::Usage(format!("{}: {error}", dir.display())))?;
        let is_file = entry.file_type().is_some_and(|kind| kind.is_file());
        if !is_file {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(dir)
            .expect("the walk stays under its root");
        let name = relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push(PackageFile {
            name,
            path: entry.path().to_owned(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The zip of `files`: entries in the given order, each with the same time (1980-01-01) and
/// mode (0644), deflated; no directory entries.
pub fn zip(files: &[PackageFile]) -> CliResult<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let zip_error = |error: zip::result::ZipError| CliError::Usage(format!("zip: {error}"));
    let mut total: u64 = 0;
    for file in files {
        let content = std::fs::read(&file.path).map_err(|e| CliError::io(&file.path, e))?;
        total += content.len() as u64;
        writer
            .start_file(file.name.as_str(), options)
            .map_err(zip_error)?;
        writer
            .write_all(&content)
            .map_err(|e| CliError::io(&file.path, e))?;
        // Stop early rather than compress gigabytes that could never be uploaded: deflate
        // shrinks source code by far less than this.
        if total > 20 * MAX_ZIP_BYTES as u64 {
            break;
        }
    }
    let bytes = writer.finish().map_err(zip_error)?.into_inner();
    Ok(bytes)
}

/// Refuses a package over the api's limit, before any upload.
pub fn check_size(zip_bytes: usize) -> CliResult<()> {
    if zip_bytes > MAX_ZIP_BYTES {
        return Err(CliError::Usage(format!(
            "the package is {:.1} MB zipped, over the api's limit of {} MB; leave files out with {IGNORE_FILE}",
            zip_bytes as f64 / (1024.0 * 1024.0),
            MAX_ZIP_BYTES / (1024 * 1024)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> PathBuf {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("faas-package-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, content) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        collect(dir).unwrap().into_iter().map(|f| f.name).collect()
    }

    #[test]
    fn ignored_and_never_packaged_files_stay_out() {
        let dir = folder(&[
            ("main.py", "x"),
            ("lib/util.py", "x"),
            ("lib/__pycache__/util.pyc", "x"),
            ("events/hello.json", "{}"),
            ("notes.md", "x"),
            ("docs/keep.md", "x"),
            (".env", "SECRET=1"),
            (".git/config", "x"),
            ("node_modules/a/index.js", "x"),
            ("lib/node_modules/b.js", "x"),
            (
                ".faasignore",
                "# comment\nevents/\n__pycache__/\n*.md\n!docs/keep.md\n",
            ),
        ]);
        assert_eq!(
            names(&dir),
            [".faasignore", "docs/keep.md", "lib/util.py", "main.py"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_same_files_make_the_same_zip_whenever_they_were_written() {
        let first = folder(&[("b.py", "b"), ("a/z.py", "z"), ("a.py", "a")]);
        let zip_a = zip(&collect(&first).unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = folder(&[("a.py", "a"), ("a/z.py", "z"), ("b.py", "b")]);
        let zip_b = zip(&collect(&second).unwrap()).unwrap();
        assert_eq!(zip_a, zip_b);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_a)).unwrap();
        let entries: Vec<String> = (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
            .collect();
        assert_eq!(entries, ["a.py", "a/z.py", "b.py"]);
        std::fs::write(second.join("b.py"), "changed").unwrap();
        assert_ne!(zip(&collect(&second).unwrap()).unwrap(), zip_b);
        std::fs::remove_dir_all(&first).unwrap();
        std::fs::remove_dir_all(&second).unwrap();
    }

    #[test]
    fn a_package_over_the_limit_is_refused_naming_it() {
        assert!(check_size(MAX_ZIP_BYTES).is_ok());
        let error = check_size(MAX_ZIP_BYTES + 1).unwrap_err().to_string();
        assert!(error.contains("over the api's limit of 50 MB"), "{error}");
    }
}
