//! Profiles: where the api is and which key to send, saved by `faas login` in
//! `$XDG_CONFIG_HOME/faas/config.toml` (else `~/.config/faas/config.toml`), readable by its owner
//! only; and how the flags, the environment and the profile combine into one [`Target`].

use crate::error::{CliError, CliResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The api's URL when nothing names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";
/// The port of the functions' origin (HTTP triggers) when nothing names its URL.
pub const DEFAULT_FUNCTIONS_PORT: u16 = 8080;
/// The profile used when none is named and the file names no default.
pub const DEFAULT_PROFILE: &str = "default";

/// The file's content.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used without `--profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One api and key.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions_url: Option<String>,
}

/// What the flags and environment said (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub url: Option<String>,
    pub key: Option<String>,
    pub functions_url: Option<String>,
    pub profile: Option<String>,
}

/// Where requests go and as whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The api's base URL, without a trailing slash.
    pub url: String,
    pub key: Option<String>,
    /// The functions' origin (HTTP triggers), without a trailing slash.
    pub functions_url: String,
    /// The profile it was read from (and `login` writes).
    pub profile: String,
}

/// The config file's path: `$XDG_CONFIG_HOME/faas/config.toml`, else under `$HOME/.config`.
pub fn config_path() -> CliResult<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(CliError::Usage(
                    "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep profiles".into(),
                ));
            }
        },
    };
    Ok(base.join("faas").join("config.toml"))
}

/// Reads the file at `path`; an absent file is an empty configuration.
pub fn load(path: &Path) -> CliResult<ConfigFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|error| {
            CliError::Usage(format!(
                "{}: {}",
                path.display(),
                error.message().trim_end()
            ))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(error) => Err(CliError::io(path, error)),
    }
}

/// Writes `config` to `path`: the directory made with mode 0700, the file 0600, replaced whole.
pub fn save(path: &Path, config: &ConfigFile) -> CliResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let dir = path.parent().expect("the config path has a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::io(dir, e))?;
    let text = toml::to_string(config).expect("a config always serializes");
    let temporary = dir.join(format!(".config.toml.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| CliError::io(&temporary, e))?;
    // The mode of `open` is masked by the umask: set it for sure before the key goes in.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| CliError::io(path, e))
}

/// The functions' origin for api URL `url`: its scheme and host with port 8080.
pub fn default_functions_url(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(parsed) if parsed.host().is_some() => format!(
            "{}://{}:{DEFAULT_FUNCTIONS_PORT}",
            parsed.scheme_str().unwrap_or("http"),
            parsed.host().unwrap_or_default()
        ),
        _ => format!("http://127.0.0.1:{DEFAULT_FUNCTIONS_PORT}"),
    }
}

/// Flags and environment first, then the profile, then the defaults.
pub fn resolve(overrides: &Overrides, file: &ConfigFile) -> CliResult<Target> {
    let profile_name = overrides
        .profile
        .clone()
        .or_else(|| file.default_profile.clone())
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let profile = file.profiles.get(&profile_name);
    if overrides.profile.is_some() && profile.is_none() && overrides.url.is_none() {
        // Naming a profile that does not exist is a typo unless the call says where to go.
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        return Err(CliError::Usage(format!(
            "no profile {profile_name:?} (known: {}); make it with `faas --profile {profile_name} login --url URL`",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    let url = overrides
        .url
        .clone()
        .or_else(|| profile.and_then(|p| p.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = checked_url(&url, "--url")?;
    let key = overrides
        .key
        .clone()
        .or_else(|| profile.and_then(|p| p.key.clone()))
        .filter(|key| !key.is_empty());
    let functions_url = match overrides
        .functions_url
        .clone()
        .or_else(|| profile.and_then(|p| p.functions_url.clone()))
    {
        Some(given) => checked_url(&given, "--functions-url")?,
        None => default_functions_url(&url),
    };
    Ok(Target {
        url,
        key,
        functions_url,
        profile: profile_name,
    })
}

/// `text` as an http(s) URL without its trailing slash; a usage error naming `flag` otherwise.
fn checked_url(text: &str, flag: &str) -> CliResult<String> {
    match text.parse::<ureq::http::Uri>() {
        Ok(url)
            if matches!(url.scheme_str(), Some("http" | "https"))
                && url.host().is_some_and(|host| !host.is_empty()) =>
        {
            Ok(text.trim_end_matches('/').to_owned())
        }
        _ => Err(CliError::Usage(format!(
            "{flag} must be an http:// or https:// URL; got {text:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(name: &str, profile: Profile) -> ConfigFile {
        ConfigFile {
            default_profile: Some(name.to_owned()),
            profiles: [(name.to_owned(), profile)].into(),
        }
    }

    #[test]
    fn flags_win_over_the_profile_which_wins_over_the_defaults() {
        let empty = resolve(&Overrides::default(), &ConfigFile::default()).unwrap();
        assert_eq!(empty.url, DEFAULT_URL);
        assert_eq!(empty.functions_url, "http://127.0.0.1:8080");
        assert_eq!(empty.key, None);
        assert_eq!(empty.profile, "default");

        let file = file_with(
            "prod",
            Profile {
                url: Some("https://faas.example.com/".into()),
                key: Some("k1".into()),
                functions_url: None,
            },
        );
        let from_profile = resolve(&Overrides::default(), &file).unwrap();
        assert_eq!(from_profile.url, "https://faas.example.com");
        assert_eq!(from_profile.functions_url, "https://faas.example.com:8080");
        assert_eq!(from_profile.key.as_deref(), Some("k1"));
        assert_eq!(from_profile.profile, "prod");

        let flags = Overrides {
            url: Some("http://10.0.0.1:9000".into()),
            key: Some("k2".into()),
            functions_url: Some("http://fn.local".into()),
            profile: None,
        };
        let overridden = resolve(&flags, &file).unwrap();
        assert_eq!(overridden.url, "http://10.0.0.1:9000");
        assert_eq!(overridden.key.as_deref(), Some("k2"));
        assert_eq!(overridden.functions_url, "http://fn.local");
    }

    #[test]
    fn an_unknown_profile_or_a_bad_url_is_a_usage_error() {
        let missing = Overrides {
            profile: Some("nope".into()),
            ..Overrides::default()
        };
        let error = resolve(&missing, &ConfigFile::default()).unwrap_err();
        assert!(error.to_string().contains("no profile \"nope\""), "{error}");
        let bad = Overrides {
            url: Some("localhost:8000".into()),
            ..Overrides::default()
        };
        let error = resolve(&bad, &ConfigFile::default()).unwrap_err();
        assert!(error.to_string().contains("--url"), "{error}");
    }

    #[test]
    fn the_file_is_saved_for_its_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("faas-config-test-{}", std::process::id()));
        let path = dir.join("faas").join("config.toml");
        let file = file_with(
            "default",
            Profile {
                url: Some("http://a:1".into()),
                key: Some("secret".into()),
                functions_url: None,
            },
        );
        save(&path, &file).unwrap();
        assert_eq!(load(&path).unwrap(), file);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            load(&dir.join("absent.toml")).unwrap(),
            ConfigFile::default()
        );
        std::fs::write(&path, "profiles = 3").unwrap();
        assert!(load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
