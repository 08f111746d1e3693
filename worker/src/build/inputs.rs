//! What a build container is given, decided without I/O: the files copied into it before it
//! starts (the dependency file, the CA bundle, the package index's configuration), and the
//! registry host names pinned in its /etc/hosts.
//!
//! The index URLs may carry credentials, so they never enter the container's environment (which
//! `docker inspect` and every process of the build read): pip and npm get them from a file in a
//! directory of the build user's own, mode 0400, that the build script deletes as soon as the
//! install ends. The build network has no DNS (docker/README.md, "Build network"): the names
//! the index URLs need are pinned to the addresses its firewall lets through, which
//! scripts/build-network.sh records in the network's label `faas.build.hosts`.

use common::Language;
use reqwest::Url;

/// Where the inputs land in the container (root-owned, mode 755, in the build images).
pub const INPUT_DIR: &str = "/opt/faas/input";
/// The directory of the index configuration, inside [`INPUT_DIR`]: the build user's, mode 0700,
/// so that the build script can delete the file in it.
pub const INDEX_DIR: &str = "index";
/// pip's configuration file, in [`INDEX_DIR`] (build.sh points `PIP_CONFIG_FILE` at it).
pub const PIP_CONF: &str = "pip.conf";
/// npm's user configuration, in [`INDEX_DIR`] (build.sh points `NPM_CONFIG_USERCONFIG` at it).
pub const NPMRC: &str = "npmrc";
/// pip's index when `BUILD_PIP_INDEX_URL` is unset.
pub const DEFAULT_PIP_INDEX: &str = "https://pypi.org/simple";
/// PyPI's file host: pip downloads what pypi.org lists from there.
const PYPI_FILES_HOST: &str = "files.pythonhosted.org";
/// npm's registry when `BUILD_NPM_REGISTRY` is unset.
pub const DEFAULT_NPM_REGISTRY: &str = "https://registry.npmjs.org/";
/// The build user (the images' `USER`): owner of the index configuration.
const BUILD_UID: u64 = 65534;

/// The package index a build uses: the operator's setting, or the tool's default.
pub fn index_url(language: Language, pip: Option<&str>, npm: Option<&str>) -> Result<Url, String> {
    let (setting, value, default) = match language {
        Language::Python => ("BUILD_PIP_INDEX_URL", pip, DEFAULT_PIP_INDEX),
        Language::Javascript => ("BUILD_NPM_REGISTRY", npm, DEFAULT_NPM_REGISTRY),
    };
    let text = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default);
    let url = Url::parse(text).map_err(|error| format!("{setting} is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{setting} must be an http(s) URL with a host"));
    }
    Ok(url)
}

/// The host names a build of the index `url` connects to, which the worker pins: the index's
/// own (unless it is an address), and PyPI's file host with PyPI.
pub fn hosts_to_pin(url: &Url) -> Vec<String> {
    let Some(host) = url.host_str() else {
        return Vec::new();
    };
    // An IPv6 address is written in brackets.
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return Vec::new();
    }
    let mut hosts = vec![host.to_owned()];
    if host == "pypi.org" {
        hosts.push(PYPI_FILES_HOST.to_owned());
    }
    hosts
}

/// The label of the build network that pairs each registry host with the addresses its firewall
/// lets builds reach: `host=address` words, separated by spaces.
pub const HOSTS_LABEL: &str = "faas.build.hosts";

/// `hosts` as `name:address` pins for the build's /etc/hosts, each to its first address in the
/// network's [`HOSTS_LABEL`] (`label`); a host it has none for is an error that says how to
/// allow it.
pub fn pins(hosts: &[String], label: &str) -> Result<Vec<String>, String> {
    hosts
        .iter()
        .map(|host| {
            label
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.eq_ignore_ascii_case(host))
                .map(|(_, address)| format!("{host}:{address}"))
                .ok_or_else(|| {
                    format!(
                        "the build network lets builds reach no address of {host}: run scripts/build-network.sh (or setup.sh) with this worker's BUILD_PIP_INDEX_URL and BUILD_NPM_REGISTRY"
                    )
                })
        })
        .collect()
}

/// pip's configuration for the index `url`: a plain-http index (a mirror on the build network)
/// is trusted by name, since pip ignores it otherwise.
pub fn pip_conf(url: &Url) -> String {
    let mut text = format!("[global]\nindex-url = {url}\n");
    if url.scheme() == "http"
        && let Some(host) = url.host_str()
    {
        text.push_str(&format!("trusted-host = {host}\n"));
    }
    text
}

/// npm's configuration for the registry `url`.
pub fn npmrc(url: &Url) -> String {
    format!("registry={url}\n")
}

/// The tar copied to [`INPUT_DIR`]: the dependency file and the CA bundle (0644), and the index
/// configuration (0400 in a 0700 directory, both the build user's).
pub fn tar(
    language: Language,
    dependencies: &str,
    ca: Option<&[u8]>,
    index: &Url,
) -> std::io::Result<Vec<u8>> {
    let (file_name, config_name, config) = match language {
        Language::Python => ("requirements.txt", PIP_CONF, pip_conf(index)),
        Language::Javascript => ("package.json", NPMRC, npmrc(index)),
    };
    let mut builder = tar::Builder::new(Vec::new());
    let file = tar::EntryType::Regular;
    append(
        &mut builder,
        file_name,
        dependencies.as_bytes(),
        0o644,
        0,
        file,
    )?;
    if let Some(ca) = ca {
        append(&mut builder, "ca.pem", ca, 0o644, 0, file)?;
    }
    let dir = tar::EntryType::Directory;
    append(
        &mut builder,
        &format!("{INDEX_DIR}/"),
        &[],
        0o700,
        BUILD_UID,
        dir,
    )?;
    let config_path = format!("{INDEX_DIR}/{config_name}");
    append(
        &mut builder,
        &config_path,
        config.as_bytes(),
        0o400,
        BUILD_UID,
        file,
    )?;
    builder.into_inner()
}

/// One entry of the inputs' tar, owned by `uid` (the archive API keeps the owner).
fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &str,
    data: &[u8],
    mode: u32,
    uid: u64,
    kind: tar::EntryType,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(uid);
    header.set_cksum();
    builder.append_data(&mut header, name, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_the_setting_or_the_tools_default_and_must_be_http() {
        let pip = index_url(Language::Python, None, Some("https://npm.example/")).unwrap();
        assert_eq!(pip.as_str(), "https://pypi.org/simple");
        let blank = index_url(Language::Javascript, None, Some("  ")).unwrap();
        assert_eq!(blank.as_str(), DEFAULT_NPM_REGISTRY);
        let set = index_url(Language::Python, Some("http://10.213.0.200/simple/"), None).unwrap();
        assert_eq!(set.host_str(), Some("10.213.0.200"));
        for bad in ["file:///etc/passwd", "pypi.org/simple", "https://"] {
            let error = index_url(Language::Python, Some(bad), None).unwrap_err();
            assert!(error.starts_with("BUILD_PIP_INDEX_URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn names_are_pinned_and_addresses_are_not() {
        let pypi = index_url(Language::Python, None, None).unwrap();
        assert_eq!(hosts_to_pin(&pypi), ["pypi.org", "files.pythonhosted.org"]);
        let mirror = Url::parse("https://user:pw@mirror.example:8443/simple").unwrap();
        assert_eq!(hosts_to_pin(&mirror), ["mirror.example"]);
        let address = Url::parse("http://10.213.0.200/simple/").unwrap();
        assert!(hosts_to_pin(&address).is_empty());
    }

    #[test]
    fn names_are_pinned_to_the_addresses_the_firewall_lets_through_or_refused() {
        let label =
            "pypi.org=203.0.113.80 files.pythonhosted.org=203.0.113.81 pypi.org=203.0.113.9";
        let hosts = ["pypi.org".to_owned(), "files.pythonhosted.org".to_owned()];
        assert_eq!(
            pins(&hosts, label).unwrap(),
            [
                "pypi.org:203.0.113.80",
                "files.pythonhosted.org:203.0.113.81"
            ]
        );
        assert!(pins(&[], "").unwrap().is_empty());
        let refused = pins(&["mirror.example".to_owned()], label).unwrap_err();
        assert!(
            refused.contains("no address of mirror.example"),
            "{refused}"
        );
    }

    #[test]
    fn the_configuration_carries_the_url_with_its_credentials_and_cannot_be_injected() {
        let url = Url::parse("https://user:p%40ss@mirror.example/simple").unwrap();
        assert_eq!(
            pip_conf(&url),
            "[global]\nindex-url = https://user:p%40ss@mirror.example/simple\n"
        );
        let plain = Url::parse("http://10.213.0.200/simple/").unwrap();
        assert_eq!(
            pip_conf(&plain),
            "[global]\nindex-url = http://10.213.0.200/simple/\ntrusted-host = 10.213.0.200\n"
        );
        assert_eq!(
            npmrc(&Url::parse(DEFAULT_NPM_REGISTRY).unwrap()),
            "registry=https://registry.npmjs.org/\n"
        );
        // A line break in the setting cannot add a line to the file: the URL parser drops it.
        let sneaky = index_url(
            Language::Python,
            Some("https://a.example/simple\n[install]\nx = y"),
            None,
        );
        if let Ok(url) = sneaky {
            assert_eq!(pip_conf(&url).lines().count(), 2, "{url}");
        }
    }

    #[test]
    fn the_index_configuration_is_the_build_users_and_only_readable_by_it() {
        let url = Url::parse("https://pypi.org/simple").unwrap();
        let bytes = tar(Language::Python, "six\n", Some(b"PEM"), &url).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, u64, String)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                (
                    entry.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    text,
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["requirements.txt", "ca.pem", "index/", "index/pip.conf"]
        );
        assert_eq!((entries[0].1, entries[0].2), (0o644, 0));
        assert_eq!((entries[2].1, entries[2].2), (0o700, 65534));
        assert_eq!((entries[3].1, entries[3].2), (0o400, 65534));
        assert!(entries[3].3.contains("index-url = https://pypi.org/simple"));
        let node = tar(Language::Javascript, "{}", None, &url).unwrap();
        let mut archive = tar::Archive::new(node.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["package.json", "index/", "index/npmrc"]);
    }
}
