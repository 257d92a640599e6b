//! Downloading the package from one location: into the cache, or into the
//! state directory (resumable), extracting while it downloads when it can.

use std::ops::ControlFlow;

use super::cached::CacheUse;
use super::obtain::{Got, Obtained};
use super::signer::{Check, Signed};
use super::{Pipeline, Reporter, Work};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::extract::stream::Streamer;
use crate::fetch::{self, FetchOptions, Source, Validators};
use crate::progress::Progress;

impl Pipeline {
    /// Downloads (extracting while it downloads, when it can) and verifies;
    /// a local package is copied the same way. The download file is written,
    /// hashed and extracted through the one handle opened here.
    ///
    /// Without a cache, an HTTP(S) or S3 download goes to the state
    /// directory's `partial.zip`, kept when the download fails on the way
    /// (network, timeout, cancel, a kill): the next run re-hashes it and
    /// resumes it with `Range` + `If-Range`, if it deploys the same location
    /// with the same expected digest.
    pub(super) fn download(
        &self,
        source: &Source,
        cache: Option<&mut CacheUse>,
        work: &mut Work<'_>,
        progress: Reporter<'_, '_>,
        signed: Option<&Signed<'_>>,
    ) -> Result<Got> {
        let expected = self.options.sha256;
        let location = location_key(source, &self.options.fetch);
        let unless = self.unless(work, location.as_deref());
        let temp = cache.as_ref().map(|c| c.cache().temp()).transpose()?;
        let mut resume = None;
        let (download, path) = match (&temp, &location) {
            (Some(temp), _) => (temp.file()?, temp.path().to_path_buf()),
            (None, Some(location)) => match work.lock.take_partial(location, expected) {
                Some((file, path, validator)) => {
                    resume = Some(validator);
                    (file, path)
                }
                None => work.lock.start_partial()?,
            },
            (None, None) => {
                let (file, path) = work.lock.create_download()?;
                work.scratch.remove_at_end(path.clone());
                (file, path)
            }
        };
        let partial = match (&temp, &location) {
            (None, Some(location)) => Some(location.as_str()),
            _ => None,
        };
        let mut streamer = None;
        if self.options.stream {
            // Streaming is an optimisation: if it cannot start, extract later.
            streamer = Streamer::start(
                &download,
                &work.staging,
                &self.options.limits,
                work.writeback.clone(),
            )
            .ok();
        }
        // Fetch events carry the entries streamed so far.
        let mut forward = |p: &Progress| {
            let mut p = *p;
            if let Some(s) = &streamer {
                p.entries = s.entries();
            }
            match progress.as_deref_mut() {
                Some(f) => f(&p),
                None => ControlFlow::Continue(()),
            }
        };
        let growth = streamer.as_ref().map(Streamer::growth);
        // Each response that starts the body over says what the bytes are.
        let lock = work.lock;
        let mut describe = |validators: Option<&Validators>, prefix: Option<u64>| {
            if let Some(location) = partial {
                let validator = validators.and_then(Validators::for_range);
                let _ = lock.describe_partial(location, expected, validator.as_deref(), prefix);
            }
        };
        let conditions = fetch::Conditions {
            unless: unless.as_ref(),
            resume,
            on_start: Some(&mut describe),
        };
        let mut check = signed.map(Signed::check);
        let outcome = fetch::fetch_observed(
            source,
            &download,
            &path,
            &self.options.fetch,
            Some(&mut forward),
            growth,
            check.as_mut().map(Check::tap),
            conditions,
        );
        if partial.is_some() {
            work.scratch.partial_done(match &outcome {
                // Cut short: kept for the next run to resume.
                Err(e) if e.is_transient() || matches!(e, Error::Cancelled) => false,
                // Complete (or of no more use): removed when the deploy ends.
                _ => true,
            });
        }
        let (fetched, validators, reused) = match outcome? {
            fetch::Outcome::NotModified => return Ok(Got::NotModified(source.clone())),
            fetch::Outcome::Fetched {
                fetched,
                validators,
                reused,
            } => (fetched, validators, reused),
        };
        self.verify(&fetched, check.as_mut())?;
        let mut entry = None;
        let scratch = temp.is_none();
        let shown = match (cache, temp) {
            (Some(cache), Some(temp)) => {
                let lock =
                    cache.lock(&fetched.digest, fetched.bytes, &mut progress.as_deref_mut())?;
                // Renamed into place; extraction still reads `download`.
                let path = cache
                    .cache()
                    .insert(&lock, temp, signed.map(Signed::text))?;
                entry = Some(lock);
                path
            }
            _ => path,
        };
        let downloaded = match source {
            Source::Http(_) | Source::S3(_) => fetched.bytes - reused,
            Source::File(_) => 0,
        };
        Ok(Got::Package(Box::new(Obtained {
            archive: download,
            shown,
            fetched: Some(fetched),
            downloaded,
            source: source.clone(),
            location,
            validators,
            signed_by: self.signed_by(),
            streamer,
            scratch,
            _entry: entry,
        })))
    }

    /// The validators to make the request for the package at `location` (a
    /// [`location_key`]) conditional with: those of the package installed
    /// from there, when no digest or signature is required (either would
    /// have to be checked against the bytes).
    fn unless(&self, work: &Work<'_>, location: Option<&str>) -> Option<Validators> {
        if self.options.sha256.is_some() || self.options.minisign_key.is_some() {
            return None;
        }
        let current = work.installed?;
        if location.is_none() || current.location.as_deref() != location {
            return None;
        }
        let validators = Validators::new(current.etag.clone(), current.last_modified.clone());
        (!validators.is_empty()).then_some(validators)
    }
}

/// What identifies a package location for its validators and its partial
/// download: a SHA-256 of all of it, credentials included (a token can
/// select what is served), so that the credentials themselves are never
/// stored. `None` for a local file.
pub(super) fn location_key(source: &Source, options: &FetchOptions) -> Option<String> {
    let text = match source {
        Source::Http(url) => format!("http {url}"),
        Source::S3(location) => format!(
            "s3 {location} endpoint={} path_style={}",
            options.s3.endpoint.as_ref().map_or("", |u| u.as_str()),
            options.s3.path_style
        ),
        Source::File(_) => return None,
    };
    Some(Sha256Digest::of(text.as_bytes()).to_hex())
}
