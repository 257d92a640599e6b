//! The run of one deploy, stage by stage: lock DEST's state, read the
//! expected digest (from a sidecar, when asked), obtain the verified
//! package ([`obtain`]: the cache, then each location, [`download`]ing
//! it), extract it (while it downloads, while a local package is hashed
//! ([`local`]), or after), run the hook, activate.
//!
//! [`crate::Deploy`] only collects what to do; this module does it. The
//! stages it wires together never import each other.

mod cached;
mod download;
mod local;
mod obtain;
mod scratch;
mod signer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::extract::stream::Finished;
use crate::extract::Extracted;
use crate::fetch::{FetchOptions, Source};
use crate::install::{self, Installed, Layout, StateLock};
use crate::options::DeployOptions;
use crate::progress::{self, Progress, Stage};
use crate::report::{Report, Timings};
use crate::{extract, sidecar, Sha256Digest};

use crate::writeback::Writeback;
use obtain::Got;
use scratch::Scratch;
use signer::Signer;

/// A hook run on the staged tree before activation.
pub(crate) type Hook<'a> = Box<dyn FnOnce(&Path) -> std::result::Result<(), String> + Send + 'a>;
/// The progress callback of a deploy.
pub(crate) type ProgressBox<'a> = Box<progress::ProgressFn<'a>>;
/// The progress callback as the stages take it.
type Reporter<'p, 'a> = &'p mut Option<ProgressBox<'a>>;

/// The extract stage's one event for a tree extracted out of its sight
/// (while streaming or hashing): all of `done`.
fn extracted(done: &Extracted) -> Progress {
    Progress {
        stage: Stage::Extract,
        bytes: done.bytes,
        total_bytes: Some(done.bytes),
        entries: done.entries,
        total_entries: Some(done.entries),
    }
}

/// One deploy to run: what [`crate::Deploy`] collected, checked.
pub(crate) struct Job<'a> {
    pub(crate) source: Source,
    pub(crate) dest: PathBuf,
    pub(crate) options: DeployOptions,
    pub(crate) progress: Option<ProgressBox<'a>>,
    pub(crate) before_activate: Option<Hook<'a>>,
}

/// Runs `job`: fetches, verifies, extracts and installs the package.
pub(crate) fn run(job: Job<'_>) -> Result<Report> {
    let started = Instant::now();
    let Job {
        source,
        dest,
        mut options,
        mut progress,
        before_activate,
    } = job;
    bind_headers_to_package_origin(&source, &mut options.fetch);
    let layout = Layout::new(&dest)?;
    // Waiting for another deploy to the same DEST: heartbeats, so a
    // cancel still takes effect.
    let queued = Progress::bytes(Stage::Fetch, 0, None);
    let lock =
        layout.lock_waiting(&mut || progress::report(&mut progress.as_deref_mut(), queued))?;
    let warnings = layout.recover(&lock)?;
    if let Some(sidecar) = &options.sha256_from {
        let read = read_sidecar(&source, &options.fetch, &layout, sidecar, &mut progress)?;
        options.sha256 = Some(read);
    }
    let pipeline = Pipeline { source, options };
    let installed = layout.current();
    let mut report = Report {
        digest: Sha256Digest::of(b""),
        source: pipeline.source.redacted(),
        dest: layout.dest().to_path_buf(),
        noop: false,
        not_modified: false,
        bytes_downloaded: 0,
        package_size: 0,
        entries: 0,
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes_written: 0,
        streamed: false,
        stream_fallback: None,
        cache_hit: false,
        signed_by: None,
        mirrors_skipped: Vec::new(),
        warnings,
        timings: Timings::default(),
    };
    let key_id = pipeline.signed_by();
    match (pipeline.options.sha256, &installed) {
        // With a key, only a tree whose signature was verified by it
        // counts as this package.
        (Some(expected), Some(current))
            if current.digest == expected && (key_id.is_none() || current.signed_by == key_id) =>
        {
            report.noop = true;
            report.digest = current.digest;
            report.package_size = current.package_size;
            report.signed_by = current.signed_by.clone();
        }
        _ => {
            let mut work = Work {
                layout: &layout,
                lock: &lock,
                installed: installed.as_ref(),
                staging: layout.staging_path(),
                scratch: Scratch::new(&lock),
                writeback: pipeline
                    .options
                    .durable
                    .then(|| lock.filesystem().map(Writeback::new).ok())
                    .flatten(),
            };
            work.scratch.remove_at_end(work.staging.clone());
            pipeline.deploy(&mut work, &mut progress, before_activate, &mut report)?;
        }
    }
    report.timings.total = started.elapsed();
    Ok(report)
}

/// Ties the headers given for the package to its URL's origin, so that a
/// mirror, sidecar or signature elsewhere does not get them (a local
/// package has no origin: they then go nowhere).
fn bind_headers_to_package_origin(source: &Source, fetch: &mut FetchOptions) {
    let headers = std::mem::take(&mut fetch.headers);
    if let Source::Http(url) = source {
        let origin = url.origin();
        fetch.origin_headers.splice(
            0..0,
            headers
                .into_iter()
                .map(|(name, value)| (origin.clone(), name, value)),
        );
    }
}

/// The expected digest of the package at `package`, from the sidecar file
/// at `location`.
fn read_sidecar(
    package: &Source,
    fetch: &FetchOptions,
    layout: &Layout,
    location: &Source,
    progress: Reporter<'_, '_>,
) -> Result<Sha256Digest> {
    let shown = location.redacted();
    let unusable = |reason: String| Error::DigestSidecar {
        url: shown.clone(),
        reason,
    };
    let scratch = layout.download_path();
    let heartbeat = progress.as_deref_mut();
    let bytes = match sidecar::fetch_small(location, fetch, &scratch, heartbeat) {
        Ok(bytes) => bytes,
        Err(Error::LimitExceeded { .. }) => {
            return Err(unusable(format!(
                "larger than {} KiB",
                sidecar::MAX_SIZE >> 10
            )))
        }
        Err(e) => return Err(e),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| unusable("not UTF-8 text".into()))?;
    sidecar::parse(text, &sidecar::file_name(package)).map_err(unusable)
}

/// Where one deploy works: its layout, lock, and work paths.
struct Work<'l> {
    layout: &'l Layout,
    lock: &'l StateLock,
    installed: Option<&'l Installed>,
    staging: PathBuf,
    /// What is removed when the deploy ends (the staging tree among it).
    scratch: Scratch<'l>,
    /// Started on the files extraction writes when the deploy is durable.
    writeback: Option<Writeback>,
}

/// The package's location and the options, the expected digest resolved.
struct Pipeline {
    source: Source,
    options: DeployOptions,
}

impl Pipeline {
    /// The signer packages must be signed by, if any.
    fn signer(&self) -> Option<Signer<'_>> {
        Signer::of(&self.options)
    }

    /// What a package verified by this deploy is signed by: its key's id.
    fn signed_by(&self) -> Option<String> {
        self.signer().as_ref().map(Signer::id)
    }

    /// Fetch, verify, extract and activate, filling `report` as it goes.
    fn deploy(
        &self,
        work: &mut Work<'_>,
        progress: Reporter<'_, '_>,
        before_activate: Option<Hook<'_>>,
        report: &mut Report,
    ) -> Result<()> {
        let fetch_started = Instant::now();
        let got = self.obtain(work, progress, report)?;
        report.timings.fetch = fetch_started.elapsed();
        let got = match got {
            Got::Package(got) => *got,
            Got::NotModified(source) => {
                // Only asked when a record with validators describes DEST.
                if let Some(current) = work.installed {
                    report.digest = current.digest;
                    report.package_size = current.package_size;
                    report.signed_by = current.signed_by.clone();
                }
                report.source = source.redacted();
                report.noop = true;
                report.not_modified = true;
                return Ok(());
            }
        };
        report.bytes_downloaded = got.downloaded;
        report.source = got.source.redacted();
        report.signed_by = got.signed_by.clone();
        if let Some(fetched) = &got.fetched {
            report.digest = fetched.digest;
            report.package_size = fetched.bytes;
        }
        let same_digest =
            |c: &&Installed| got.fetched.as_ref().is_some_and(|f| f.digest == c.digest);
        if let Some(current) = work.installed.filter(same_digest) {
            report.noop = true;
            // The same bytes under new validators (a file touched, a new
            // location): remember them, or every later deploy downloads it.
            if got.location.is_some()
                && (current.location != got.location
                    || current.etag != got.validators.etag
                    || current.last_modified != got.validators.last_modified)
            {
                let mut record = current.clone();
                got.describe(&mut record);
                if let Err(e) = work.layout.rewrite_current(work.lock, record) {
                    report
                        .warnings
                        .push(format!("could not update the record: {e}"));
                }
            }
            return Ok(());
        }

        let limits = &self.options.limits;
        let mut extract_started = Instant::now();
        // While streaming's workers finish: the download's end again, with
        // the entries extracted so far.
        let bytes = got.fetched.as_ref().map_or(0, |f| f.bytes);
        let mut tick = |entries| {
            let p = Progress {
                entries,
                ..Progress::bytes(Stage::Fetch, bytes, Some(bytes))
            };
            progress::report(&mut progress.as_deref_mut(), p)
        };
        let streamed = match got.streamer {
            Some(s) => {
                match s.finish(&got.archive, &got.shown, &work.staging, limits, &mut tick)? {
                    Finished::Extracted(done) => Some(done),
                    Finished::SteppedAside(reason) => {
                        report.stream_fallback = Some(reason);
                        install::remove_tree(&work.staging)?;
                        None
                    }
                }
            }
            None => None,
        };
        report.streamed = streamed.is_some();
        let (done, fetched) = match (streamed, got.fetched) {
            (Some(done), Some(fetched)) => {
                progress::report(&mut progress.as_deref_mut(), extracted(&done))?;
                (done, fetched)
            }
            (None, Some(fetched)) => {
                let done = extract::extract_open_archive(
                    &got.archive,
                    &got.shown,
                    &work.staging,
                    limits,
                    progress.as_deref_mut(),
                    work.writeback.as_ref(),
                )?;
                (done, fetched)
            }
            (_, None) => {
                let len = got
                    .archive
                    .metadata()
                    .map_err(Error::io("stat package", &got.shown))?
                    .len();
                let (done, fetched, hashed_in) =
                    self.extract_while_hashing(&got.archive, &got.shown, len, work, progress)?;
                // As while streaming: fetching lasts until the package is
                // verified, extracting is what is left after.
                report.timings.fetch += hashed_in;
                extract_started += hashed_in;
                (done, fetched)
            }
        };
        report.digest = fetched.digest;
        report.package_size = fetched.bytes;
        if self.options.durable && got.scratch {
            // Of no more use, and not to be written out by the flush before
            // activation: its pages are dropped, never written (it is
            // removed when the deploy ends).
            let _ = got.archive.set_len(0);
        }
        if let Some(hook) = before_activate {
            hook(&work.staging).map_err(Error::Hook)?;
        }
        report.timings.extract = extract_started.elapsed();

        let install_started = Instant::now();
        let mut record = Installed::new(fetched.digest, got.source.redacted(), fetched.bytes);
        record.location = got.location;
        record.etag = got.validators.etag;
        record.last_modified = got.validators.last_modified;
        record.signed_by = got.signed_by;
        let (keep, durable) = (self.options.keep, self.options.durable);
        work.layout
            .activate(work.lock, &work.staging, record, keep, durable)?;
        report.timings.install = install_started.elapsed();
        report.entries = done.entries;
        report.files = done.files;
        report.dirs = done.dirs;
        report.symlinks = done.symlinks;
        report.bytes_written = done.bytes;
        if let Some(p) = progress.as_deref_mut() {
            let _ = p(&Progress::bytes(
                Stage::Install,
                done.bytes,
                Some(done.bytes),
            ));
        }
        Ok(())
    }
}
