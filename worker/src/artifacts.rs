//! Dependency artifacts on this host: fetched from the api (`/internal/artifacts/{digest}`,
//! with the worker token), checked against their SHA-256, unpacked once per digest into
//! `DEPS_CACHE_DIR/<digest>/`, and bind-mounted read-only into function containers. The cache
//! keeps at most `DEPS_CACHE_MB` unpacked, evicting the least recently used digests that no
//! live container mounts.
//!
//! An artifact is a gzip'd tar made by a build of untrusted packages: unpacking takes regular
//! files, directories and symlinks that stay inside the tree, and nothing else (no hard links,
//! devices, absolute or escaping paths), up to the unpacked limit.

use crate::config::DepsSettings;
use crate::error::DepsError;
use common::{
    ARTIFACT_SHA256_HEADER as CONTENT_SHA256, ARTIFACT_UNPACKED_HEADER as UNPACKED_BYTES,
    ArtifactRef,
};
use futures_util::StreamExt;
use ring::digest::{Context, SHA256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// Where a dependency artifact is mounted in a function's container.
pub const DEPS_MOUNT: &str = "/opt/faas/deps";
/// Where a deployment package is mounted; the bootstrap puts it first on the import path and
/// makes it the working directory, as Lambda's task root.
pub const PACKAGE_MOUNT: &str = "/opt/faas/package";
pub use common::MAX_UNPACKED_BYTES;

/// The api's routes for workers.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(base: &str, token: &str) -> Self {
        ApiClient {
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    async fn check(
        what: &str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, DepsError> {
        let response = sent.map_err(|source| DepsError::Unreachable {
            what: what.to_owned(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let mut body = response.text().await.unwrap_or_default();
        common::messages::truncate_at_char(&mut body, 1024);
        Err(DepsError::Api {
            what: what.to_owned(),
            status,
            body,
        })
    }

    /// Posts JSON to `/internal/{path}` and reads the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, DepsError> {
        let sent = self
            .http
            .post(format!("{}/internal/{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(std::time::Duration::from_secs(30))
            .json(body)
            .send()
            .await;
        let response = Self::check(path, sent).await?;
        response
            .json()
            .await
            .map_err(|source| DepsError::Unreachable {
                what: path.to_owned(),
                source,
            })
    }

    /// Uploads the gzip'd tar at `file` as artifact `digest`, streamed from disk; a request
    /// that did not reach the api (a refused or reset connection on a busy host) is tried up to
    /// three times, which a PUT by digest allows.
    pub async fn upload(
        &self,
        digest: &str,
        file: &Path,
        sha256: &str,
        unpacked_bytes: u64,
    ) -> Result<(), DepsError> {
        let mut pause = std::time::Duration::from_millis(500);
        for _ in 1..3 {
            match self.upload_once(digest, file, sha256, unpacked_bytes).await {
                Err(DepsError::Unreachable { source, .. }) => {
                    tracing::warn!(error = %source, "the artifact upload did not reach the api; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                done => return done,
            }
        }
        self.upload_once(digest, file, sha256, unpacked_bytes).await
    }

    async fn upload_once(
        &self,
        digest: &str,
        file: &Path,
        sha256: &str,
        unpacked_bytes: u64,
    ) -> Result<(), DepsError> {
        let opened = tokio::fs::File::open(file).await?;
        let length = opened.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(opened));
        let sent = self
            .http
            .put(format!("{}/internal/artifacts/{digest}", self.base))
            .bearer_auth(&self.token)
            .header(CONTENT_SHA256, sha256)
            .header(UNPACKED_BYTES, unpacked_bytes.to_string())
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body)
            .send()
            .await;
        Self::check("the artifact upload", sent).await?;
        Ok(())
    }

    /// Downloads artifact `digest` into `file`, checking its SHA-256 against the api's header.
    pub async fn download(&self, digest: &str, file: &Path) -> Result<(), DepsError> {
        let sent = self
            .http
            .get(format!("{}/internal/artifacts/{digest}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await;
        let response = Self::check("the artifact download", sent).await?;
        let expected = response
            .headers()
            .get(CONTENT_SHA256)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut out = tokio::fs::File::create(file).await?;
        let mut sha = Context::new(&SHA256);
        let mut stream = response.bytes_stream();
        let mut size: u64 = 0;
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|source| DepsError::Unreachable {
                what: "the artifact download".into(),
                source,
            })?;
            size += piece.len() as u64;
            if size > MAX_UNPACKED_BYTES {
                return Err(DepsError::Invalid("the download is over 250 MB".into()));
            }
            sha.update(&piece);
            out.write_all(&piece).await?;
        }
        out.flush().await?;
        let actual = common::hex(sha.finish().as_ref());
        if actual != expected {
            return Err(DepsError::Invalid(format!(
                "its SHA-256 is {actual}, the api said {expected:?}"
            )));
        }
        Ok(())
    }
}

/// SHA-256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Context::new(&SHA256);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        sha.update(&buffer[..read]);
    }
    Ok(common::hex(sha.finish().as_ref()))
}

struct Entry {
    bytes: u64,
    last_used: Instant,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<String, Entry>,
    /// Container id → the digests it mounts; a mounted digest is never evicted.
    pins: HashMap<String, Vec<String>>,
}

/// The host's unpacked artifacts.
pub struct DepsCache {
    dir: PathBuf,
    cap_bytes: u64,
    client: Option<ApiClient>,
    state: Mutex<CacheState>,
    /// One fetch per digest at a time: calls that need the same one wait for it.
    fetching: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl DepsCache {
    /// Opens (creating) the cache directory, drops half-unpacked leftovers and counts what is
    /// there.
    pub fn open(settings: &DepsSettings) -> Self {
        let cache = DepsCache {
            dir: settings.cache_dir.clone(),
            cap_bytes: settings.cache_mb * 1024 * 1024,
            client: settings
                .token()
                .map(|token| ApiClient::new(&settings.api_url, token)),
            state: Mutex::new(CacheState::default()),
            fetching: tokio::sync::Mutex::new(HashMap::new()),
        };
        if let Err(error) = cache.scan() {
            tracing::warn!(dir = %cache.dir.display(), %error, "cannot read the dependency cache");
        }
        cache
    }

    fn scan(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        set_mode(&self.dir, 0o755)?;
        let mut state = self.state.lock().unwrap();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if ArtifactRef::is_valid_digest(&name) {
                let bytes = tree_bytes(&entry.path());
                state.entries.insert(
                    name,
                    Entry {
                        bytes,
                        last_used: Instant::now(),
                    },
                );
            } else if name.starts_with(".tmp-") {
                let _ = remove_path(&entry.path());
            }
        }
        Ok(())
    }

    pub fn client(&self) -> Option<&ApiClient> {
        self.client.as_ref()
    }

    /// The host directory of `digest`.
    pub fn path_of(&self, digest: &str) -> PathBuf {
        self.dir.join(digest)
    }

    /// True when `digest` is unpacked here.
    pub fn has(&self, digest: &str) -> bool {
        self.state.lock().unwrap().entries.contains_key(digest)
    }

    /// Makes `artifact` present here, fetching it from the api when it is not, and returns its
    /// directory.
    pub async fn ensure(&self, artifact: &ArtifactRef) -> Result<PathBuf, DepsError> {
        let digest = &artifact.digest;
        if !ArtifactRef::is_valid_digest(digest) {
            return Err(DepsError::Invalid(format!("{digest:?} is not a digest")));
        }
        if self.touch(digest) {
            return Ok(self.path_of(digest));
        }
        let lock = self
            .fetching
            .lock()
            .await
            .entry(digest.clone())
            .or_default()
            .clone();
        let _fetching = lock.lock().await;
        if self.touch(digest) {
            return Ok(self.path_of(digest));
        }
        let client = self.client.as_ref().ok_or(DepsError::NoToken)?;
        let started = Instant::now();
        let download = self.temp_path(digest, "tar.gz");
        let fetched = client.download(digest, &download).await;
        let installed = match fetched {
            Ok(()) => self.install(digest, &download).await,
            Err(error) => Err(error),
        };
        let _ = tokio::fs::remove_file(&download).await;
        // The lock goes either way: a failed fetch must not leave one behind per digest.
        self.fetching.lock().await.remove(digest);
        let bytes = installed?;
        metrics::counter!("faas_artifact_fetches_total").increment(1);
        tracing::info!(%digest, bytes, ms = started.elapsed().as_millis() as u64, "artifact fetched");
        Ok(self.path_of(digest))
    }

    fn touch(&self, digest: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        match state.entries.get_mut(digest) {
            Some(entry) => {
                entry.last_used = Instant::now();
                true
            }
            None => false,
        }
    }

    /// A fresh name in the cache directory for a file or directory on its way to becoming
    /// `digest`; [`Self::open`] removes what such names leave behind.
    pub fn temp_path(&self, digest: &str, suffix: &str) -> PathBuf {
        let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
        self.dir.join(format!(".tmp-{digest}-{nonce}.{suffix}"))
    }

    /// Unpacks the gzip'd tar at `archive` as `digest` (checked as described above) and
    /// returns its unpacked size. A digest already here is kept.
    pub async fn install(&self, digest: &str, archive: &Path) -> Result<u64, DepsError> {
        let target = self.path_of(digest);
        let staging = self.temp_path(digest, "d");
        let archive = archive.to_owned();
        let staged = staging.clone();
        let unpacked =
            tokio::task::spawn_blocking(move || unpack(&archive, &staged, MAX_UNPACKED_BYTES))
                .await
                .map_err(|error| DepsError::Io(std::io::Error::other(error)))?;
        let bytes = match unpacked {
            Ok(bytes) => bytes,
            Err(error) => {
                let _ = remove_path(&staging);
                return Err(error);
            }
        };
        if let Err(error) = std::fs::rename(&staging, &target) {
            let _ = remove_path(&staging);
            if !target.is_dir() {
                return Err(error.into());
            }
        }
        self.state.lock().unwrap().entries.insert(
            digest.to_owned(),
            Entry {
                bytes,
                last_used: Instant::now(),
            },
        );
        self.evict();
        Ok(bytes)
    }

    /// Container `id` mounts `digests`: they stay until [`Self::unpin`].
    pub fn pin<'a>(&self, id: &str, digests: impl Iterator<Item = &'a str>) {
        let mut state = self.state.lock().unwrap();
        let digests: Vec<String> = digests.map(str::to_owned).collect();
        if digests.is_empty() {
            return;
        }
        for digest in &digests {
            if let Some(entry) = state.entries.get_mut(digest) {
                entry.last_used = Instant::now();
            }
        }
        state.pins.insert(id.to_owned(), digests);
    }

    pub fn unpin(&self, id: &str) {
        self.state.lock().unwrap().pins.remove(id);
    }

    /// Removes least recently used, unmounted digests until the cache is within its cap.
    fn evict(&self) {
        let victims = {
            let mut state = self.state.lock().unwrap();
            let mut total: u64 = state.entries.values().map(|entry| entry.bytes).sum();
            let mounted: std::collections::HashSet<String> =
                state.pins.values().flatten().cloned().collect();
            let mut candidates: Vec<(String, Instant, u64)> = state
                .entries
                .iter()
                .filter(|(digest, _)| !mounted.contains(*digest))
                .map(|(digest, entry)| (digest.clone(), entry.last_used, entry.bytes))
                .collect();
            candidates.sort_by_key(|(_, used, _)| *used);
            let mut victims = Vec::new();
            for (digest, _, bytes) in candidates {
                if total <= self.cap_bytes {
                    break;
                }
                total -= bytes;
                state.entries.remove(&digest);
                victims.push(digest);
            }
            victims
        };
        for digest in victims {
            tracing::info!(%digest, "artifact evicted from the host cache");
            metrics::counter!("faas_artifact_evictions_total").increment(1);
            if let Err(error) = remove_path(&self.path_of(&digest)) {
                tracing::warn!(%digest, %error, "cannot remove an evicted artifact");
            }
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn remove_path(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Bytes of the regular files under `path`.
fn tree_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0)
                }
                _ => {}
            }
        }
    }
    total
}

/// Unpacks the gzip'd tar `archive` into `dest` (created), taking only regular files,
/// directories and symlinks that resolve inside the tree, and at most `max_bytes` of file
/// contents; files end up world-readable (the container's user is not the worker's).
pub fn unpack(archive: &Path, dest: &Path, max_bytes: u64) -> Result<u64, DepsError> {
    use tar::EntryType;
    std::fs::create_dir_all(dest)?;
    set_mode(dest, 0o755)?;
    let file = std::fs::File::open(archive)?;
    let decoder = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    tar.set_overwrite(true);
    let mut total: u64 = 0;
    let entries = tar
        .entries()
        .map_err(|error| DepsError::Invalid(format!("not a gzip'd tar: {error}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|error| DepsError::Invalid(format!("a broken tar entry: {error}")))?;
        let path = entry
            .path()
            .map_err(|error| DepsError::Invalid(error.to_string()))?
            .into_owned();
        if !common::path_stays_inside(&path) {
            return Err(DepsError::Invalid(format!(
                "{} points outside the tree",
                path.display()
            )));
        }
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Directory => {}
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|error| DepsError::Invalid(error.to_string()))?
                    .map(|target| target.into_owned())
                    .unwrap_or_default();
                let resolved = path.parent().unwrap_or(Path::new("")).join(&target);
                if target.is_absolute() || !common::path_stays_inside(&resolved) {
                    tracing::debug!(path = %path.display(), "skipped a symlink out of the tree");
                    continue;
                }
            }
            // Hard links, devices, FIFOs and the like have no place in a package tree.
            _ => continue,
        }
        total += entry.header().size().unwrap_or(0);
        if total > max_bytes {
            return Err(DepsError::Invalid(format!(
                "it unpacks to more than {} MB",
                max_bytes / (1024 * 1024)
            )));
        }
        let unpacked = entry
            .unpack_in(dest)
            .map_err(|error| DepsError::Invalid(format!("{}: {error}", path.display())))?;
        if !unpacked {
            return Err(DepsError::Invalid(format!(
                "{} points outside the tree",
                path.display()
            )));
        }
        // Readable by the container's user whatever the archive says; executables stay so.
        let mode = match entry.header().entry_type() {
            EntryType::Directory => Some(0o755),
            EntryType::Regular => {
                let own = entry.header().mode().unwrap_or(0o644);
                Some(if own & 0o111 != 0 { 0o755 } else { 0o644 })
            }
            _ => None,
        };
        if let Some(mode) = mode {
            set_mode(&dest.join(&path), mode)?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "faas-artifacts-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A gzip'd tar with `files` (path, contents) and `links` (path, target).
    fn archive(dir: &Path, files: &[(&str, &[u8])], links: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("a.tar.gz");
        let file = std::fs::File::create(&path).unwrap();
        let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_entry_type(tar::EntryType::Regular);
            // Written raw so that hostile names (../) reach the archive as they are.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        for (name, target) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, name, target).unwrap();
        }
        builder
            .into_inner()
            .unwrap()
            .finish()
            .unwrap()
            .flush()
            .unwrap();
        path
    }

    #[test]
    fn a_package_tree_unpacks_world_readable_with_inner_links() {
        let dir = scratch("good");
        let path = archive(
            &dir,
            &[("six.py", b"x = 1\n"), ("pkg/__init__.py", b"")],
            &[("node_modules/.bin/tool", "../pkg/__init__.py")],
        );
        let dest = dir.join("out");
        let bytes = unpack(&path, &dest, 1024).unwrap();
        assert_eq!(bytes, 6);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dest.join("six.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o444, 0o444, "{mode:o}");
        assert!(dest.join("node_modules/.bin/tool").is_symlink());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn escaping_paths_and_oversized_trees_are_refused_and_escaping_links_skipped() {
        let dir = scratch("bad");
        let path = archive(&dir, &[("../evil.py", b"x")], &[]);
        let error = unpack(&path, &dir.join("out1"), 1024).unwrap_err();
        assert!(error.to_string().contains("outside"), "{error}");
        assert!(!dir.join("evil.py").exists());

        let path = archive(&dir, &[("big.bin", &[0u8; 2048])], &[]);
        let error = unpack(&path, &dir.join("out2"), 1024).unwrap_err();
        assert!(error.to_string().contains("more than"), "{error}");

        let path = archive(&dir, &[], &[("etc", "/etc"), ("up", "../../x")]);
        unpack(&path, &dir.join("out3"), 1024).unwrap();
        assert!(!dir.join("out3/etc").exists() && !dir.join("out3/etc").is_symlink());
        assert!(!dir.join("out3/up").is_symlink());

        std::fs::write(dir.join("not.tar.gz"), b"plain text").unwrap();
        assert!(unpack(&dir.join("not.tar.gz"), &dir.join("out4"), 1024).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn eviction_takes_the_least_recently_used_unmounted_digests() {
        let dir = scratch("evict");
        let settings = DepsSettings {
            cache_dir: dir.clone(),
            cache_mb: 0,
            ..<crate::config::Config as clap::Parser>::parse_from(["worker", "--runtime", "docker"])
                .deps
        };
        let cache = DepsCache::open(&settings);
        let path = archive(&dir, &[("m.py", b"1234")], &[]);
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        cache.pin("container-1", [a.as_str()].into_iter());
        runtime.block_on(cache.install(&a, &path)).unwrap();
        runtime.block_on(cache.install(&b, &path)).unwrap();
        // The cap is 0: the unmounted one goes at once, the mounted one stays.
        assert!(cache.has(&a) && cache.path_of(&a).is_dir());
        assert!(!cache.has(&b) && !cache.path_of(&b).exists());
        cache.unpin("container-1");
        runtime.block_on(cache.install(&b, &path)).unwrap();
        assert!(!cache.has(&a) && !cache.has(&b));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
