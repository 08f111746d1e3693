//! Deployment packages (`code_zip`): a Lambda-style .zip of a function's files, checked here
//! and turned into the same kind of artifact a dependency build makes (a gzip'd tar, stored in
//! chunks, fetched by workers once per host and mounted read-only), named by its content.
//!
//! The zip is untrusted: entries that would land outside the package root (`../`, absolute
//! paths, backslashes, symlinks that point out), anything but files, directories and symlinks,
//! and entries that inflate far beyond their compressed size (a zip bomb) are refused, naming
//! the entry, before anything is stored. The tar is made from the checked entries only, in name
//! order with fixed times and owners, so that the same files make the same digest.

use common::Language;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// Lambda's limit on a zipped upload.
pub const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;
pub use common::MAX_UNPACKED_BYTES;
/// Entries a package may hold.
const MAX_ENTRIES: usize = 20_000;
/// An entry that inflates more than this many times its compressed size is a bomb...
const BOMB_RATIO: u64 = 100;
/// ...once it is at least this large (small, very repetitive files are ordinary).
const BOMB_MIN_BYTES: u64 = 1024 * 1024;
/// The longest symlink target read.
const MAX_LINK_BYTES: u64 = 4096;

/// Why a package is refused; each is a 422, except [`PackageError::TooLarge`], a 413.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("code_zip is not valid base64: {0}")]
    NotBase64(String),
    #[error("code_zip is not a zip archive: {0}")]
    NotZip(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
}

/// A checked package, ready to store.
#[derive(Debug)]
pub struct Package {
    /// Its artifact's name: SHA-256 of `package` and the archive's SHA-256.
    pub digest: String,
    /// The gzip'd tar of its files.
    pub archive: Vec<u8>,
    /// SHA-256 of `archive`, which workers check after downloading it.
    pub content_sha256: String,
    /// Bytes of the zip as uploaded.
    pub zip_bytes: u64,
    /// Bytes of its files, unpacked.
    pub unpacked_bytes: u64,
    /// Its regular files.
    pub files: u32,
}

/// What an entry of the zip becomes in the tar.
enum Item {
    Dir,
    File { data: Vec<u8>, executable: bool },
    Symlink(String),
}

/// Decodes and checks `code_zip`, and makes its artifact; `handler` (`file.name`) must name a
/// file of the package in `language`.
pub fn prepare(code_zip: &str, language: Language, handler: &str) -> Result<Package, PackageError> {
    use base64::Engine as _;
    // Some encoders wrap lines; the standard alphabet with padding is what Lambda's tools send.
    let text: String = code_zip.split_ascii_whitespace().collect();
    if text.len() / 4 * 3 > MAX_ZIP_BYTES + 3 {
        return Err(PackageError::TooLarge(format!(
            "code_zip is over the limit of {} MB zipped",
            MAX_ZIP_BYTES / (1024 * 1024)
        )));
    }
    let zip = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|error| PackageError::NotBase64(error.to_string()))?;
    if zip.len() > MAX_ZIP_BYTES {
        return Err(PackageError::TooLarge(format!(
            "code_zip is {} bytes, over the limit of {} MB zipped",
            zip.len(),
            MAX_ZIP_BYTES / (1024 * 1024)
        )));
    }
    let items = read_zip(&zip)?;
    check_handler_file(&items, language, handler)?;
    let unpacked_bytes: u64 = items
        .values()
        .map(|item| match item {
            Item::File { data, .. } => data.len() as u64,
            _ => 0,
        })
        .sum();
    let files = items
        .values()
        .filter(|item| matches!(item, Item::File { .. }))
        .count() as u32;
    let archive = make_archive(&items)
        .map_err(|error| PackageError::Invalid(format!("cannot repack the zip: {error}")))?;
    let content_sha256 = common::hex(&crate::domain::auth::sha256(&archive));
    let digest = common::hex(&crate::domain::auth::sha256(
        format!("package\0{content_sha256}").as_bytes(),
    ));
    Ok(Package {
        digest,
        archive,
        content_sha256,
        zip_bytes: zip.len() as u64,
        unpacked_bytes,
        files,
    })
}

/// The zip's entries by their normalized path (no trailing `/`), checked.
fn read_zip(zip: &[u8]) -> Result<BTreeMap<String, Item>, PackageError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|error| PackageError::NotZip(error.to_string()))?;
    if archive.len() > MAX_ENTRIES {
        return Err(PackageError::Invalid(format!(
            "the zip holds {} entries, over the limit of {MAX_ENTRIES}",
            archive.len()
        )));
    }
    let mut items = BTreeMap::new();
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| PackageError::NotZip(format!("entry {index}: {error}")))?;
        let raw_name = entry
            .name()
            .map_err(|error| PackageError::NotZip(format!("entry {index}: {error}")))?
            .into_owned();
        let invalid = |why: &str| PackageError::Invalid(format!("zip entry {raw_name:?} {why}"));
        if raw_name.contains('\\') {
            return Err(invalid("has a backslash in its path (zip paths use /)"));
        }
        if raw_name.starts_with('/') || !common::path_stays_inside(Path::new(&raw_name)) {
            return Err(invalid("points outside the package root"));
        }
        let name = normalize(&raw_name);
        if name.is_empty() {
            continue;
        }
        let declared = entry.size();
        let compressed = entry.compressed_size().max(1);
        if declared >= BOMB_MIN_BYTES && declared / compressed > BOMB_RATIO {
            return Err(invalid(&format!(
                "inflates {} times ({declared} bytes from {compressed}): a zip bomb is refused",
                declared / compressed
            )));
        }
        let item = if entry.is_dir() {
            Item::Dir
        } else if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(MAX_LINK_BYTES)
                .read_to_string(&mut target)
                .map_err(|error| invalid(&format!("is a symlink that cannot be read: {error}")))?;
            let resolved = Path::new(&name)
                .parent()
                .unwrap_or(Path::new(""))
                .join(&target);
            if target.is_empty() || target.starts_with('/') || !common::path_stays_inside(&resolved)
            {
                return Err(invalid(&format!(
                    "is a symlink to {target:?}, outside the package root"
                )));
            }
            Item::Symlink(target)
        } else if entry.is_file() {
            total += declared;
            if total > MAX_UNPACKED_BYTES {
                return Err(PackageError::TooLarge(format!(
                    "the zip unpacks to more than {} MB",
                    MAX_UNPACKED_BYTES / (1024 * 1024)
                )));
            }
            // Never trust the declared size: read at most one byte past it.
            let mut data = Vec::with_capacity(declared.min(BOMB_MIN_BYTES) as usize);
            (&mut entry)
                .take(declared + 1)
                .read_to_end(&mut data)
                .map_err(|error| invalid(&format!("cannot be inflated: {error}")))?;
            if data.len() as u64 != declared {
                return Err(invalid("inflates to another size than it declares"));
            }
            let executable = entry.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
            Item::File { data, executable }
        } else {
            return Err(invalid("is neither a file, a directory nor a symlink"));
        };
        if items.insert(name, item).is_some() {
            return Err(invalid("appears twice"));
        }
    }
    Ok(items)
}

/// `a/./b/` → `a/b`.
fn normalize(name: &str) -> String {
    name.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The file `handler`'s file part names: `file.py` or a package `file/__init__.py` for Python
/// (dots in the module path are directories, as an import reads them), `file.js`, `.mjs` or
/// `.cjs` for JavaScript.
fn check_handler_file(
    items: &BTreeMap<String, Item>,
    language: Language,
    handler: &str,
) -> Result<(), PackageError> {
    let Some((file, _)) = handler.rsplit_once('.') else {
        return Err(PackageError::Invalid(format!(
            "with code_zip, handler must be Lambda's `file.name` (e.g. `lambda_function.lambda_handler`); got {handler:?}"
        )));
    };
    let candidates: Vec<String> = match language {
        Language::Python => {
            let module = file.replace('.', "/");
            vec![format!("{module}.py"), format!("{module}/__init__.py")]
        }
        Language::Javascript => ["js", "mjs", "cjs"]
            .iter()
            .map(|ext| format!("{file}.{ext}"))
            .collect(),
    };
    let found = candidates
        .iter()
        .any(|path| matches!(items.get(path), Some(Item::File { .. })));
    if !found {
        return Err(PackageError::Invalid(format!(
            "handler {handler:?} names a file the package does not have: it holds none of {}",
            candidates.join(", ")
        )));
    }
    Ok(())
}

/// The gzip'd tar of `items`: parent directories made explicit, name order, time 0, owner 0,
/// modes 0755 (directories, executables) and 0644.
fn make_archive(items: &BTreeMap<String, Item>) -> std::io::Result<Vec<u8>> {
    let mut dirs: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for (name, item) in items {
        let mut path = Path::new(name).parent();
        while let Some(parent) = path.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(parent.to_string_lossy().into_owned());
            path = parent.parent();
        }
        if matches!(item, Item::Dir) {
            dirs.insert(name.clone());
        }
    }
    let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    };
    for dir in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
    }
    for (name, item) in items {
        match item {
            Item::Dir => {}
            Item::File { data, executable } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
                tar.append_data(&mut h, name, data.as_slice())?;
            }
            Item::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, name, target)?;
            }
        }
    }
    let mut gzip = tar.into_inner()?;
    gzip.flush()?;
    gzip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> String {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            writer
                .start_file(*name, SimpleFileOptions::default())
                .unwrap();
            writer.write_all(data).unwrap();
        }
        let bytes = writer.finish().unwrap().into_inner();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn refused(zip: &str, handler: &str) -> String {
        match prepare(zip, Language::Python, handler) {
            Ok(_) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_package_is_content_addressed() {
        let files: &[(&str, &[u8])] = &[
            (
                "lambda_function.py",
                b"def lambda_handler(e, c):\n    return 1\n",
            ),
            ("lib/helper.py", b"X = 1\n"),
        ];
        let one = prepare(
            &zip_of(files),
            Language::Python,
            "lambda_function.lambda_handler",
        )
        .unwrap();
        let reversed: Vec<_> = files.iter().rev().cloned().collect();
        let two = prepare(
            &zip_of(&reversed),
            Language::Python,
            "lambda_function.lambda_handler",
        )
        .unwrap();
        assert_eq!(one.digest, two.digest);
        assert_eq!(one.files, 2);
        assert_eq!(one.unpacked_bytes, 45);
        assert!(common::ArtifactRef::is_valid_digest(&one.digest));
    }

    #[test]
    fn handlers_must_name_a_file_of_the_package() {
        let zip = zip_of(&[
            ("app/main.py", b"def run(e, c): pass\n"),
            ("pkg/__init__.py", b""),
        ]);
        assert!(prepare(&zip, Language::Python, "app/main.run").is_ok());
        assert!(prepare(&zip, Language::Python, "app.main.run").is_ok());
        assert!(prepare(&zip, Language::Python, "pkg.run").is_ok());
        assert!(refused(&zip, "main.run").contains("main.py"));
        assert!(refused(&zip, "run").contains("file.name"));
        let js = zip_of(&[("index.mjs", b"export const handler = 1;\n")]);
        assert!(prepare(&js, Language::Javascript, "index.handler").is_ok());
        assert!(prepare(&js, Language::Javascript, "app.handler").is_err());
    }

    #[test]
    fn escaping_entries_are_refused() {
        assert!(refused(&zip_of(&[("../evil.py", b"")]), "evil.h").contains("outside"));
        assert!(refused(&zip_of(&[("a/../../evil.py", b"")]), "evil.h").contains("outside"));
        assert!(refused(&zip_of(&[("/etc/evil.py", b"")]), "evil.h").contains("outside"));
        assert!(refused(&zip_of(&[("a\\b.py", b"")]), "a.h").contains("backslash"));
    }

    #[test]
    fn symlinks_must_stay_inside() {
        let with_link = |target: &str| {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            writer
                .start_file("main.py", SimpleFileOptions::default())
                .unwrap();
            writer.write_all(b"def h(e, c): pass\n").unwrap();
            writer
                .add_symlink("lib/link", target, SimpleFileOptions::default())
                .unwrap();
            let bytes = writer.finish().unwrap().into_inner();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        assert!(prepare(&with_link("../main.py"), Language::Python, "main.h").is_ok());
        assert!(refused(&with_link("../../etc/passwd"), "main.h").contains("symlink"));
        assert!(refused(&with_link("/etc/passwd"), "main.h").contains("symlink"));
    }

    #[test]
    fn bombs_and_junk_are_refused() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let bomb = zip_of(&[("main.py", b"def h(e, c): pass\n"), ("zeros.bin", &zeros)]);
        assert!(refused(&bomb, "main.h").contains("bomb"));
        assert!(refused("UEsDBAo=", "main.h").contains("not a zip"));
        assert!(refused("%%%", "main.h").contains("base64"));
    }
}
