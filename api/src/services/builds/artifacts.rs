//! Dependency artifacts between the api and its workers: an upload is stored as it streams in,
//! in chunks of [`store::CHUNK_BYTES`], checked against `ARTIFACT_MAX_MB` and the SHA-256 its
//! uploader claims; a download streams out one chunk from Postgres at a time. Neither side
//! holds a whole artifact in memory.

use super::{NotADigest, check_hex};
use crate::store::{self, ArtifactMeta, ArtifactWriter, DbError};
use common::{
    ARTIFACT_SHA256_HEADER as CONTENT_SHA256, ARTIFACT_UNPACKED_HEADER as UNPACKED_BYTES,
};
use deadpool_postgres::Pool;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use ring::digest::{Context, SHA256};

/// Why an artifact was not stored or served.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The digest, or the claimed SHA-256, is not 64 lowercase hex digits (422).
    #[error(transparent)]
    NotADigest(#[from] NotADigest),
    /// The unpacked size is not a byte count, or the bytes do not match their SHA-256 (422).
    #[error("{0}")]
    Invalid(String),
    #[error("the artifact is over ARTIFACT_MAX_MB ({max} bytes)")]
    TooLarge { max: u64 },
    /// The upload's body stopped coming (the server's body timeout, or the client went away).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// No artifact with that digest has been stored whole.
    #[error("artifact {0} not found")]
    NotFound(String),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

/// What an uploader says of its artifact: the text of its headers, `None` when one is absent
/// (or not text).
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    /// `x-faas-content-sha256`: the SHA-256 of the bytes sent.
    pub sha256: Option<&'a str>,
    /// `x-faas-unpacked-bytes`: the size of the files once unpacked.
    pub unpacked_bytes: Option<&'a str>,
}

/// What became of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    Stored,
    /// One with this digest was stored already (the same inputs make the same artifact), or
    /// another upload of it won the race; it is kept.
    AlreadyStored,
}

/// An artifact to send: its description, and its bytes a chunk at a time.
pub struct Download {
    pub meta: ArtifactMeta,
    pub chunks: BoxStream<'static, std::io::Result<Vec<u8>>>,
}

/// The artifacts service.
#[derive(Clone)]
pub struct Artifacts {
    db: Pool,
    /// `ARTIFACT_MAX_MB` in bytes.
    max_bytes: u64,
}

impl Artifacts {
    pub fn new(db: Pool, max_bytes: u64) -> Self {
        Artifacts { db, max_bytes }
    }

    /// Stores artifact `digest` as `body` streams in, once its claims are checked; one already
    /// stored is kept. A cut, oversized or mismatching upload leaves nothing behind.
    pub async fn upload<S, B, E>(
        &self,
        digest: &str,
        claims: Claims<'_>,
        body: S,
    ) -> Result<Upload, ArtifactError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
    {
        check_hex("the digest", digest)?;
        let claimed = check_claims(claims)?;
        if store::artifact_meta(&self.db, digest).await?.is_some() {
            return Ok(Upload::AlreadyStored);
        }
        let mut writer = match ArtifactWriter::begin(&self.db, digest).await {
            Ok(writer) => writer,
            // Another upload of the same digest won the race.
            Err(error) if error.is_unique_violation() => return Ok(Upload::AlreadyStored),
            Err(error) => return Err(error.into()),
        };
        let mut incoming = Incoming::new(self.max_bytes, store::CHUNK_BYTES);
        let mut body = std::pin::pin!(body);
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|_| ArtifactError::BodyTimeout)?;
            let mut rest = piece.as_ref();
            incoming.count(rest)?;
            while !rest.is_empty() {
                rest = incoming.fill(rest);
                if incoming.is_full() {
                    writer.write_chunk(incoming.chunk()).await?;
                    incoming.clear();
                }
            }
        }
        if !incoming.chunk().is_empty() {
            writer.write_chunk(incoming.chunk()).await?;
        }
        let (sha256, size) = incoming.finish(&claimed.sha256)?;
        let unpacked = claimed.unpacked_bytes;
        writer.finish(&sha256, size as i64, unpacked).await?;
        tracing::info!(%digest, size, unpacked, "artifact stored");
        Ok(Upload::Stored)
    }

    /// Artifact `digest`, if it has been stored whole.
    pub async fn download(&self, digest: &str) -> Result<Download, ArtifactError> {
        check_hex("the digest", digest)?;
        let meta = store::artifact_meta(&self.db, digest)
            .await?
            // An upload in progress has no SHA-256 yet.
            .filter(|meta| !meta.content_sha256.is_empty())
            .ok_or_else(|| ArtifactError::NotFound(digest.to_owned()))?;
        let pool = self.db.clone();
        let digest = digest.to_owned();
        let count = meta.chunks;
        let chunks = futures_util::stream::unfold(0i32, move |seq| {
            let pool = pool.clone();
            let digest = digest.clone();
            async move {
                if seq >= count {
                    return None;
                }
                let chunk = match store::artifact_chunk(&pool, &digest, seq).await {
                    Ok(Some(data)) => Ok(data),
                    Ok(None) => Err(std::io::Error::other("artifact chunk missing")),
                    Err(error) => Err(std::io::Error::other(error.to_string())),
                };
                Some((chunk, seq + 1))
            }
        });
        Ok(Download {
            meta,
            chunks: chunks.boxed(),
        })
    }
}

/// An upload's claims, checked.
#[derive(Debug, PartialEq)]
struct Claimed {
    sha256: String,
    unpacked_bytes: i64,
}

fn check_claims(claims: Claims<'_>) -> Result<Claimed, ArtifactError> {
    let sha256 = claims.sha256.unwrap_or_default();
    check_hex(CONTENT_SHA256, sha256)?;
    let unpacked_bytes = claims
        .unpacked_bytes
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ArtifactError::Invalid(format!("{UNPACKED_BYTES} must be a byte count")))?;
    Ok(Claimed {
        sha256: sha256.to_owned(),
        unpacked_bytes,
    })
}

/// An upload's bytes as they come: counted against the limit, hashed, and gathered into
/// chunks of `chunk_bytes` to write. Pure, so that the upload's checks are tested without
/// Postgres.
struct Incoming {
    sha: Context,
    size: u64,
    max: u64,
    chunk_bytes: usize,
    /// The chunk being filled.
    pending: Vec<u8>,
}

impl Incoming {
    fn new(max: u64, chunk_bytes: usize) -> Self {
        Incoming {
            sha: Context::new(&SHA256),
            size: 0,
            max,
            chunk_bytes,
            pending: Vec::with_capacity(chunk_bytes),
        }
    }

    /// Counts and hashes `piece`; refused once the artifact is over the limit.
    fn count(&mut self, piece: &[u8]) -> Result<(), ArtifactError> {
        self.size += piece.len() as u64;
        if self.size > self.max {
            return Err(ArtifactError::TooLarge { max: self.max });
        }
        self.sha.update(piece);
        Ok(())
    }

    /// Moves what fits of `piece` into the chunk being filled; returns the rest.
    fn fill<'p>(&mut self, piece: &'p [u8]) -> &'p [u8] {
        let take = (self.chunk_bytes - self.pending.len()).min(piece.len());
        self.pending.extend_from_slice(&piece[..take]);
        &piece[take..]
    }

    fn is_full(&self) -> bool {
        self.pending.len() == self.chunk_bytes
    }

    /// The chunk being filled (the last one may stay short).
    fn chunk(&self) -> &[u8] {
        &self.pending
    }

    /// The chunk was written: start the next.
    fn clear(&mut self) {
        self.pending.clear();
    }

    /// The SHA-256 of every byte counted and their number, if it is the one `claimed`.
    fn finish(self, claimed: &str) -> Result<(String, u64), ArtifactError> {
        let actual = common::hex(self.sha.finish().as_ref());
        if actual != claimed {
            return Err(ArtifactError::Invalid(format!(
                "the artifact's bytes do not match {CONTENT_SHA256} (got {actual})"
            )));
        }
        Ok((actual, self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(bytes: &[u8]) -> String {
        common::hex(ring::digest::digest(&SHA256, bytes).as_ref())
    }

    /// The chunks written for `pieces`, as the upload's loop writes them.
    fn chunks_of(incoming: &mut Incoming, pieces: &[&[u8]]) -> Result<Vec<Vec<u8>>, ArtifactError> {
        let mut written = Vec::new();
        for piece in pieces {
            incoming.count(piece)?;
            let mut rest = *piece;
            while !rest.is_empty() {
                rest = incoming.fill(rest);
                if incoming.is_full() {
                    written.push(incoming.chunk().to_vec());
                    incoming.clear();
                }
            }
        }
        if !incoming.chunk().is_empty() {
            written.push(incoming.chunk().to_vec());
        }
        Ok(written)
    }

    #[test]
    fn claims_need_a_sha256_and_a_byte_count() {
        let sha = "b".repeat(64);
        assert_eq!(
            check_claims(Claims {
                sha256: Some(&sha),
                unpacked_bytes: Some("42"),
            })
            .unwrap(),
            Claimed {
                sha256: sha.clone(),
                unpacked_bytes: 42
            }
        );
        for (sha256, unpacked_bytes, names) in [
            (None, Some("1"), CONTENT_SHA256),
            (Some("B".repeat(64)), Some("1"), CONTENT_SHA256),
            (Some(sha.clone()), None, UNPACKED_BYTES),
            (Some(sha.clone()), Some("1.5"), UNPACKED_BYTES),
        ] {
            let refused = check_claims(Claims {
                sha256: sha256.as_deref(),
                unpacked_bytes,
            })
            .unwrap_err();
            assert!(refused.to_string().starts_with(names), "{refused}");
        }
    }

    #[test]
    fn pieces_are_regathered_into_whole_chunks_and_hashed() {
        let mut incoming = Incoming::new(100, 4);
        let written = chunks_of(&mut incoming, &[b"ab", b"cdefghi", b"", b"jk"]).unwrap();
        assert_eq!(
            written,
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ijk".to_vec()]
        );
        let (sha, size) = incoming.finish(&sha256_hex(b"abcdefghijk")).unwrap();
        assert_eq!((sha, size), (sha256_hex(b"abcdefghijk"), 11));
    }

    #[test]
    fn an_upload_over_the_limit_or_unlike_its_sha256_is_refused() {
        let mut incoming = Incoming::new(5, 4);
        assert!(matches!(
            chunks_of(&mut incoming, &[b"abc", b"def"]),
            Err(ArtifactError::TooLarge { max: 5 })
        ));
        let mut at_limit = Incoming::new(5, 4);
        chunks_of(&mut at_limit, &[b"abcde"]).unwrap();
        let refused = at_limit.finish(&sha256_hex(b"other")).unwrap_err();
        assert!(
            refused.to_string().contains(&sha256_hex(b"abcde")),
            "{refused}"
        );
    }
}
