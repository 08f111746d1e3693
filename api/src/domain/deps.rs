//! Function dependencies as a client sends them: the text of a `requirements.txt` (Python) or a
//! `package.json` (JavaScript), checked before anything is stored, and the build key that names
//! the build every function with the same inputs shares.
//!
//! Only requirements are accepted: options that choose where packages come from (`--index-url`,
//! `-e`, `git+`, local paths) are the operator's to set (`BUILD_PIP_INDEX_URL`,
//! `BUILD_NPM_REGISTRY`), never a function's.

use common::Language;
use ring::digest::{SHA256, digest};

/// The most dependency text a function may have.
pub const MAX_DEPENDENCIES_BYTES: usize = 64 * 1024;

/// Checks `text` as `language`'s dependency file; the error names the offending line or field.
pub fn validate(language: Language, text: &str) -> Result<(), String> {
    if text.len() > MAX_DEPENDENCIES_BYTES {
        return Err(format!(
            "dependencies are {} bytes, over the limit of {MAX_DEPENDENCIES_BYTES}",
            text.len()
        ));
    }
    if text.contains('\0') {
        return Err("dependencies must not contain NUL (U+0000) characters".into());
    }
    match language {
        Language::Python => validate_requirements(text),
        Language::Javascript => validate_package_json(text),
    }
}

/// Each line of a `requirements.txt` is blank, a comment, or one requirement: a project name,
/// extras, version specifiers and an environment marker (PEP 508 without URLs). Line
/// continuations are refused, so that each line stands for itself in the error.
fn validate_requirements(text: &str) -> Result<(), String> {
    for (index, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Err(why) = check_requirement(line) {
            return Err(format!(
                "requirements line {}: {:?} is not accepted: {why}",
                index + 1,
                raw.trim()
            ));
        }
    }
    Ok(())
}

/// A `#` starts a comment at the line's start or after whitespace, as pip reads it.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn check_requirement(line: &str) -> Result<(), &'static str> {
    if line.starts_with('-') {
        return Err(
            "options (-e, -r, -c, --index-url, --extra-index-url, ...) are not allowed; the operator's index settings decide where packages come from",
        );
    }
    if line.ends_with('\\') {
        return Err("line continuations are not allowed");
    }
    if line.contains("://") || line.contains(" @ ") || line.contains('@') {
        return Err("URLs and direct references (git+, https://, name @ url) are not allowed");
    }
    if line.starts_with('.') || line.starts_with('/') || line.starts_with('~') {
        return Err("local paths are not allowed");
    }
    // The requirement proper, and its environment marker after `;`.
    let (requirement, marker) = line.split_once(';').unwrap_or((line, ""));
    let requirement = requirement.trim();
    let marker_ok = marker.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '"' | '\'' | '<' | '>' | '=' | '!' | '~' | '.' | '_' | '-' | '(' | ')' | '*'
            )
    });
    if !marker_ok {
        return Err("its environment marker has characters a marker cannot have");
    }
    let name_end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(requirement.len());
    let name = &requirement[..name_end];
    let starts_and_ends_alnum = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_and_ends_alnum {
        return Err("it does not start with a project name");
    }
    let mut rest = requirement[name_end..].trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        let Some(end) = extras.find(']') else {
            return Err("its extras have no closing ]");
        };
        let names_ok = extras[..end].split(',').all(|extra| {
            let extra = extra.trim();
            !extra.is_empty()
                && extra
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
        if !names_ok {
            return Err("its extras are not names");
        }
        rest = extras[end + 1..].trim_start();
    }
    // Version specifiers: operators, versions, commas, wildcards, local labels and spaces.
    let specifiers_ok = rest.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '<' | '>' | '=' | '!' | '~' | ',' | '.' | '*' | '+' | ' ' | '(' | ')' | '-' | '_'
            )
    });
    if !specifiers_ok {
        return Err("its version specifier has characters a version cannot have");
    }
    Ok(())
}

/// A `package.json`: a JSON object whose `dependencies` is an object of names to version
/// ranges. Ranges that fetch from elsewhere (URLs, git, local paths) are refused, as for pip.
fn validate_package_json(text: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("package.json is not JSON: {error}"))?;
    let Some(object) = value.as_object() else {
        return Err("package.json must be a JSON object".into());
    };
    let Some(dependencies) = object.get("dependencies") else {
        return Err("package.json has no \"dependencies\" object".into());
    };
    let Some(dependencies) = dependencies.as_object() else {
        return Err(
            "package.json's \"dependencies\" must be an object of names to versions".into(),
        );
    };
    for (name, range) in dependencies {
        let name_ok = !name.is_empty()
            && name.len() <= 214
            && !name.starts_with('.')
            && name.chars().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, '-' | '.' | '_' | '~' | '@' | '/')
            })
            && name.matches('/').count() <= usize::from(name.starts_with('@'));
        if !name_ok {
            return Err(format!(
                "package.json dependency {name:?} is not a package name"
            ));
        }
        let Some(range) = range.as_str() else {
            return Err(format!(
                "package.json dependency {name:?}: the version must be a string"
            ));
        };
        let fetches_elsewhere = range.contains(':') || range.contains('/');
        let range_ok = !fetches_elsewhere
            && range.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        '^' | '~' | '<' | '>' | '=' | '.' | '*' | '-' | '+' | '|' | ' '
                    )
            });
        if !range_ok {
            return Err(format!(
                "package.json dependency {name:?}: {range:?} is not a version range from the registry (URLs, git, file: and npm: ranges are not allowed)"
            ));
        }
    }
    Ok(())
}

/// The build key: SHA-256 of (language, dependencies text) in lowercase hex. Two functions
/// with the same key share one build and its artifact.
pub fn build_key(language: Language, text: &str) -> String {
    let text = normalise(language, text);
    let mut input = Vec::with_capacity(text.len() + 16);
    input.extend_from_slice(language.as_str().as_bytes());
    input.push(0);
    input.extend_from_slice(text.as_bytes());
    common::hex(digest(&SHA256, &input).as_ref())
}

/// The dependencies as they are built and named: a `requirements.txt` without its comments,
/// blank lines and surrounding whitespace (one requirement a line, each ending in `\n`), a
/// `package.json` trimmed. Texts that install the same thing this way share one build.
pub fn normalise(language: Language, text: &str) -> String {
    match language {
        Language::Python => text
            .lines()
            .map(|line| strip_comment(line).trim())
            .filter(|line| !line.is_empty())
            .map(|line| format!("{line}\n"))
            .collect(),
        Language::Javascript => text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_take_names_specifiers_extras_markers_and_comments() {
        let text = "# tools\nsix==1.16.0\nrequests[socks, security] >=2.31,<3  # http\n\
                    urllib3; python_version >= \"3.8\"\nnumpy~=1.26.0\nzope.interface\n\n";
        assert_eq!(validate(Language::Python, text), Ok(()));
    }

    #[test]
    fn requirements_refuse_options_urls_and_paths_naming_the_line() {
        for (bad, why) in [
            ("-e git+https://example.com/x.git", "options"),
            ("--index-url https://evil.example/simple", "options"),
            ("--extra-index-url https://evil.example/simple", "options"),
            ("-r other.txt", "options"),
            ("git+https://github.com/psf/requests", "URLs"),
            ("requests @ https://example.com/r.whl", "URLs"),
            ("./local/package", "local paths"),
            ("/abs/package", "local paths"),
            ("six \\", "continuations"),
            ("six==1.0; $(rm -rf /)", "marker"),
            ("six==1.0 $(id)", "version"),
        ] {
            let error = validate(Language::Python, &format!("six\n{bad}\n")).unwrap_err();
            assert!(error.contains("line 2"), "{bad}: {error}");
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn package_json_needs_a_dependencies_object_of_registry_ranges() {
        assert_eq!(
            validate(
                Language::Javascript,
                r#"{"name":"f","dependencies":{"is-number":"^7.0.0","@scope/pkg":"1.x || >=2.1"}}"#
            ),
            Ok(())
        );
        for (bad, why) in [
            ("not json", "not JSON"),
            ("[]", "JSON object"),
            (r#"{"name":"f"}"#, "no \"dependencies\""),
            (r#"{"dependencies":[]}"#, "must be an object"),
            (
                r#"{"dependencies":{"x":"git+https://h/x.git"}}"#,
                "not a version range",
            ),
            (
                r#"{"dependencies":{"x":"file:../x"}}"#,
                "not a version range",
            ),
            (
                r#"{"dependencies":{"x":"user/repo"}}"#,
                "not a version range",
            ),
            (r#"{"dependencies":{"x":1}}"#, "must be a string"),
            (r#"{"dependencies":{"../x":"1"}}"#, "not a package name"),
        ] {
            let error = validate(Language::Javascript, bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn the_build_key_depends_on_language_and_text_only() {
        let a = build_key(Language::Python, "six\n");
        assert_eq!(a.len(), 64);
        assert_eq!(a, build_key(Language::Python, "six\n"));
        assert_ne!(a, build_key(Language::Javascript, "six\n"));
        assert_ne!(a, build_key(Language::Python, "six==1.16.0\n"));
    }

    #[test]
    fn comments_blank_lines_and_spaces_make_no_new_build() {
        let plain = "six==1.16.0\nrequests>=2.31\n";
        let noisy = "# pinned\n\n  six==1.16.0   # the one we test\r\n\t\nrequests>=2.31";
        assert_eq!(normalise(Language::Python, noisy), plain);
        assert_eq!(
            build_key(Language::Python, noisy),
            build_key(Language::Python, plain)
        );
        // Order and content still matter; a # inside a word is not a comment.
        assert_ne!(
            build_key(Language::Python, "requests>=2.31\nsix==1.16.0\n"),
            build_key(Language::Python, plain)
        );
        assert_eq!(normalise(Language::Python, "a#b\n"), "a#b\n");
        assert_eq!(normalise(Language::Python, "# only a comment\n"), "");
        assert_eq!(
            normalise(Language::Javascript, "\n {\"dependencies\": {}} \n"),
            "{\"dependencies\": {}}"
        );
    }
}
