//! Obtaining the verified package: from the cache, or from the first
//! location (the URL, then the mirrors) that serves one that verifies.

use std::fs::File;
use std::path::PathBuf;

use super::cached::CacheUse;
use super::signer::{Check, Signed, Signer};
use super::{Pipeline, Reporter, Work};
use crate::cache::{self, EntryLock};
use crate::digest::Sha256Digest;
use crate::error::{Error, ErrorClass, Limit, Result};
use crate::extract::stream::Streamer;
use crate::fetch::{self, Fetched, Source, Validators};
use crate::install::{self, Installed};
use crate::progress::{self, Progress, Stage};
use crate::report::Report;

/// What obtaining the package gave.
pub(super) enum Got {
    /// The verified package.
    Package(Box<Obtained>),
    /// The server said the package installed from this location is still
    /// current (`304 Not Modified`).
    NotModified(Source),
}

/// What to do when a cache entry does not verify.
enum Retry {
    /// The entry (or its kept signature) is bad: remove it, fetch again.
    Refetch,
    /// Fail the deploy.
    Fail(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Self {
        if cache::is_corrupt_entry(&e) {
            Retry::Refetch
        } else {
            Retry::Fail(e)
        }
    }
}

/// A verified package ready to extract.
pub(super) struct Obtained {
    /// The file to extract, open since it was hashed: extraction reads this
    /// handle, never the path again, so it extracts the bytes verified.
    pub(super) archive: File,
    /// Where that file is, for messages only.
    pub(super) shown: PathBuf,
    /// How it was hashed and verified; `None` for a local package hashed
    /// while it is extracted (see `Pipeline::extract_while_hashing`).
    pub(super) fetched: Option<Fetched>,
    /// Bytes that came over the network.
    pub(super) downloaded: u64,
    /// The location that served it.
    pub(super) source: Source,
    /// Its [`super::download::location_key`], when it has one.
    pub(super) location: Option<String>,
    /// The validators it was served with.
    pub(super) validators: Validators,
    pub(super) signed_by: Option<String>,
    pub(super) streamer: Option<Streamer>,
    /// Whether `archive` is this deploy's own download, of no use once extracted.
    pub(super) scratch: bool,
    /// The cache entry's lock, held until the deploy is over.
    pub(super) _entry: Option<EntryLock>,
}

impl Obtained {
    /// Puts where the package came from, and its validators, in `record`.
    pub(super) fn describe(&self, record: &mut Installed) {
        record.location = self.location.clone();
        record.etag = self.validators.etag.clone();
        record.last_modified = self.validators.last_modified.clone();
    }
}

/// Whether the next location is worth trying after this failure: the
/// location's own fault (network, wrong digest or signature, too big).
fn skippable(error: &Error) -> bool {
    matches!(error.class(), ErrorClass::Network | ErrorClass::Digest)
        || matches!(
            error,
            Error::LimitExceeded {
                limit: Limit::DownloadSize,
                ..
            }
        )
}

impl Pipeline {
    /// The verified package: from the cache, or from the first location
    /// (the URL, then the mirrors) that serves one that verifies.
    pub(super) fn obtain(
        &self,
        work: &mut Work<'_>,
        progress: Reporter<'_, '_>,
        report: &mut Report,
    ) -> Result<Got> {
        let mut cache = CacheUse::of(&self.options);
        if let (Some(cache), Some(expected)) = (&mut cache, self.options.sha256) {
            // Held until the deploy is over: one download per digest, and no
            // eviction of the entry while it is extracted.
            let queued = Progress::bytes(Stage::Fetch, 0, None);
            let lock = cache.cache().lock_waiting(&expected, &mut || {
                progress::report(&mut progress.as_deref_mut(), queued)
            })?;
            if let Some(file) = cache.cache().open_entry(&lock) {
                match self.verify_cached(cache, &lock, &file, expected, work, progress) {
                    Ok((fetched, signed_by)) => {
                        cache.cache().touch(&lock);
                        report.cache_hit = true;
                        return Ok(Got::Package(Box::new(Obtained {
                            archive: file,
                            shown: cache.cache().entry_path(&expected),
                            fetched: Some(fetched),
                            downloaded: 0,
                            source: self.source.clone(),
                            location: None,
                            validators: Validators::default(),
                            signed_by,
                            streamer: None,
                            scratch: false,
                            _entry: Some(lock),
                        })));
                    }
                    // A corrupt entry (or its kept signature) is fetched again.
                    Err(Retry::Refetch) => cache.cache().remove(&lock),
                    Err(Retry::Fail(e)) => return Err(e),
                }
            }
            cache.hold(lock);
        }
        let sources: Vec<&Source> = std::iter::once(&self.source)
            .chain(&self.options.mirrors)
            .collect();
        let mut failures: Vec<(String, Error)> = Vec::new();
        for source in &sources {
            match self.fetch_from(source, cache.as_mut(), work, progress) {
                Ok(got) => {
                    report.mirrors_skipped = failures
                        .iter()
                        .map(|(location, e)| format!("{location}: {e}"))
                        .collect();
                    return Ok(got);
                }
                Err(e) if sources.len() > 1 && skippable(&e) => {
                    install::remove_tree(&work.staging)?;
                    failures.push((source.redacted(), e));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::MirrorsFailed { failures })
    }

    /// Re-hashes (and checks the signature of) the open cache entry `file`.
    fn verify_cached(
        &self,
        cache: &CacheUse,
        lock: &EntryLock,
        file: &File,
        expected: Sha256Digest,
        work: &Work<'_>,
        progress: Reporter<'_, '_>,
    ) -> std::result::Result<(Fetched, Option<String>), Retry> {
        let cache = cache.cache();
        let mut signed = None;
        let mut kept_signature = false;
        if let Some(signer) = self.signer() {
            let shown = format!("{} (cached)", cache.signature_path(&expected).display());
            let kept = cache
                .read_signature(lock)
                .and_then(|text| signer.kept(&text, shown));
            kept_signature = kept.is_some();
            signed = Some(match kept {
                Some(signed) => signed,
                None => self.fetch_signature(&signer, &self.source, work, progress)?,
            });
        }
        let mut check = signed.as_ref().map(Signed::check);
        let fetched = fetch::hash_local_observed(
            file,
            &cache.entry_path(&expected),
            &self.options.fetch,
            progress.as_deref_mut(),
            check.as_mut().map(Check::tap),
        )?;
        if fetched.digest != expected {
            return Err(Retry::Refetch);
        }
        if let (Some(check), Some(signed)) = (check.as_mut(), &signed) {
            match check.finish() {
                Ok(()) => cache.keep_signature(lock, Some(signed.text())),
                Err(_) if kept_signature => return Err(Retry::Refetch),
                Err(e) => return Err(Retry::Fail(e)),
            }
        }
        Ok((fetched, self.signed_by()))
    }

    /// Fetches the signature for the package at `package`.
    pub(super) fn fetch_signature<'o>(
        &'o self,
        signer: &Signer<'o>,
        package: &Source,
        work: &Work<'_>,
        progress: Reporter<'_, '_>,
    ) -> Result<Signed<'o>> {
        let scratch = work.layout.download_path();
        signer.fetch(
            package,
            &self.options.fetch,
            &scratch,
            progress.as_deref_mut(),
        )
    }

    /// Fetches and verifies the package from one location.
    fn fetch_from(
        &self,
        source: &Source,
        cache: Option<&mut CacheUse>,
        work: &mut Work<'_>,
        progress: Reporter<'_, '_>,
    ) -> Result<Got> {
        let signed = match self.signer() {
            Some(signer) => Some(self.fetch_signature(&signer, source, work, progress)?),
            None => None,
        };
        let path = match source {
            Source::File(path) => path,
            Source::Http(_) | Source::S3(_) => {
                return self.download(source, cache, work, progress, signed.as_ref())
            }
        };
        let (file, meta) = fetch::open_local(path)?;
        if fetch::others_can_write(&meta) {
            // It could be rewritten in place after it is hashed: hash and
            // extract a private copy instead (not kept in the cache).
            return self.download(source, None, work, progress, signed.as_ref());
        }
        let max = self.options.fetch.max_size;
        if meta.len() > max {
            return Err(Error::LimitExceeded {
                limit: Limit::DownloadSize,
                max,
                actual: meta.len(),
                entry: None,
            });
        }
        // Hashed while it is extracted when its digest cannot make the
        // deploy a no-op: it is either not the expected one (an error) or
        // a new tree. Verified first, as before, when a signature is to be
        // checked, or when a mismatch would move on to a mirror.
        let hash_later = signed.is_none()
            && self.options.mirrors.is_empty()
            && match (self.options.sha256, work.installed) {
                (_, None) => true,
                (Some(expected), Some(current)) => current.digest != expected,
                (None, Some(_)) => false,
            };
        let fetched = if hash_later {
            None
        } else {
            let mut check = signed.as_ref().map(Signed::check);
            let fetched = fetch::hash_local_observed(
                &file,
                path,
                &self.options.fetch,
                progress.as_deref_mut(),
                check.as_mut().map(Check::tap),
            )?;
            self.verify(&fetched, check.as_mut())?;
            Some(fetched)
        };
        Ok(Got::Package(Box::new(Obtained {
            archive: file,
            shown: path.clone(),
            fetched,
            downloaded: 0,
            source: source.clone(),
            location: None,
            validators: Validators::default(),
            signed_by: self.signed_by(),
            streamer: None,
            scratch: false,
            _entry: None,
        })))
    }

    /// The package's digest and signature, checked before anything else.
    pub(super) fn verify(&self, fetched: &Fetched, check: Option<&mut Check<'_>>) -> Result<()> {
        if let Some(expected) = self.options.sha256 {
            if expected != fetched.digest {
                return Err(Error::DigestMismatch {
                    expected: expected.to_hex(),
                    actual: fetched.digest.to_hex(),
                });
            }
        }
        if let Some(check) = check {
            check.finish()?;
        }
        Ok(())
    }
}
