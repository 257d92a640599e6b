//! Deploy ZIP application packages safely: **fetch** over HTTP(S) or from a
//! local path, **verify** the SHA-256, **extract** with every entry checked,
//! and **install** atomically into a directory.
//!
//! ```no_run
//! use zipdeploy::Deploy;
//!
//! let report = Deploy::new("https://example.com/app.zip")?
//!     .sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?
//!     .dest("/var/www/app")
//!     .run()?;
//! println!("installed {} ({} files)", report.digest, report.files);
//! # Ok::<(), zipdeploy::Error>(())
//! ```
//!
//! Guarantees: on success DEST holds exactly the package's tree; on any error
//! (HTTP, digest, hostile archive, limits, full disk, a crash) DEST is exactly
//! what it was; nothing is written outside DEST and its state directory
//! `<parent>/.<name>.zipdeploy/`. Each stage is usable on its own:
//! [`fetch::fetch_to_file`], [`extract::extract_archive`], [`install::Layout`].
//! The C ABI (for C, Go and Python embedders) is in [`ffi`].
// `deny`, not `forbid`: the `ffi` module alone allows unsafe code (it must
// dereference the pointers C hands it); every other module still refuses it.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod digest;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod ffi;
pub mod install;
pub mod progress;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use extract::stream::{Finished, Streamer};

pub use digest::Sha256Digest;
pub use error::{Error, ErrorClass, Limit, Result};
pub use extract::{Extracted, Limits};
pub use fetch::{FetchOptions, Fetched, Source};
pub use install::{Installed, Layout};
pub use progress::{Progress, Stage};

/// Time spent in each stage of a deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Downloading (or reading) and hashing the package.
    pub fetch: Duration,
    /// Extracting into the staging directory (and running the hook).
    pub extract: Duration,
    /// Activating the staged tree.
    pub install: Duration,
    /// The whole deploy, waiting for the lock included.
    pub total: Duration,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// SHA-256 of the installed package.
    pub digest: Sha256Digest,
    /// The package location, credentials redacted.
    pub source: String,
    /// The destination directory (absolute).
    pub dest: PathBuf,
    /// True when that digest was already installed and nothing was done.
    pub noop: bool,
    /// Bytes downloaded (0 for a no-op or a local package).
    pub bytes_downloaded: u64,
    /// Size of the package.
    pub package_size: u64,
    /// Entries in the archive.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes written into files.
    pub bytes_written: u64,
    /// True when entries were extracted while the package downloaded.
    pub streamed: bool,
    /// Why extraction waited for the whole download, when it could have
    /// streamed but the archive's layout needed the central directory first.
    pub stream_fallback: Option<String>,
    /// Time per stage.
    pub timings: Timings,
}

type Hook<'a> = Box<dyn FnOnce(&Path) -> std::result::Result<(), String> + Send + 'a>;
type ProgressBox<'a> = Box<progress::ProgressFn<'a>>;

/// A deploy of one package into one directory; configure, then [`Deploy::run`].
///
/// Defaults: no expected digest (the report carries the one seen), the limits
/// of [`Limits`] and [`FetchOptions`], one previous release kept, data synced
/// to disk before activation.
pub struct Deploy<'a> {
    source: Source,
    expected: Option<Sha256Digest>,
    dest: Option<PathBuf>,
    limits: Limits,
    fetch: FetchOptions,
    keep: usize,
    durable: bool,
    stream: bool,
    progress: Option<ProgressBox<'a>>,
    before_activate: Option<Hook<'a>>,
}

impl<'a> Deploy<'a> {
    /// A deploy of the package at `location`: `http(s)://…`, `file://…` or a
    /// local path.
    pub fn new(location: &str) -> Result<Self> {
        Ok(Self::from_source(Source::parse(location)?))
    }

    /// A deploy of an already parsed [`Source`].
    pub fn from_source(source: Source) -> Self {
        Deploy {
            source,
            expected: None,
            dest: None,
            limits: Limits::default(),
            fetch: FetchOptions::default(),
            keep: 1,
            durable: true,
            stream: true,
            progress: None,
            before_activate: None,
        }
    }

    /// Requires the package to have this SHA-256 (hex, or `sha256:` + hex).
    pub fn sha256(mut self, hex: &str) -> Result<Self> {
        self.expected = Some(hex.parse()?);
        Ok(self)
    }

    /// Requires the package to have this digest.
    pub fn digest(mut self, digest: Sha256Digest) -> Self {
        self.expected = Some(digest);
        self
    }

    /// The directory to install into (required).
    pub fn dest(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dest = Some(dir.into());
        self
    }

    /// Extraction limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Network options (timeouts, retries, headers, download size limit).
    pub fn fetch_options(mut self, options: FetchOptions) -> Self {
        self.fetch = options;
        self
    }

    /// Largest package accepted, in bytes.
    pub fn max_download(mut self, bytes: u64) -> Self {
        self.fetch.max_size = bytes;
        self
    }

    /// Deadline for the whole download, retries included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.fetch.timeout = Some(timeout);
        self
    }

    /// Time allowed to connect (TCP and TLS).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.fetch.connect_timeout = timeout;
        self
    }

    /// Longest wait for the server to send anything once connected.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.fetch.stall_timeout = timeout;
        self
    }

    /// Trusts the root certificate(s) in `pem` in addition to the system's
    /// CA bundle, for package servers behind a private CA.
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.fetch.root_certs_pem.push(pem.into());
        self
    }

    /// Retries on transient network failures.
    pub fn retries(mut self, retries: u32) -> Self {
        self.fetch.retries = retries;
        self
    }

    /// Adds a request header, e.g. `header("Authorization", "Bearer …")`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.fetch.headers.push((name.into(), value.into()));
        self
    }

    /// How many previous releases to keep for rollback (default 1).
    pub fn keep(mut self, releases: usize) -> Self {
        self.keep = releases;
        self
    }

    /// Whether to sync the staged tree to disk before activation (default
    /// true). Off is faster where a power cut need not be survived.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Whether to extract entries while the package downloads (default
    /// true). The tree is activated only after the whole file's digest
    /// matches and its central directory agrees with what was extracted;
    /// archives whose layout needs the central directory first are extracted
    /// after the download, and the report says why.
    pub fn stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Calls `f` as the deploy advances; returning `ControlFlow::Break(())`
    /// cancels it cleanly.
    pub fn progress(mut self, f: impl FnMut(&Progress) -> ControlFlow<()> + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Runs `hook` on the staged tree before it is activated (e.g. an init
    /// script); an `Err` fails the deploy with [`Error::Hook`] and leaves
    /// DEST untouched.
    pub fn before_activate(
        mut self,
        hook: impl FnOnce(&Path) -> std::result::Result<(), String> + Send + 'a,
    ) -> Self {
        self.before_activate = Some(Box::new(hook));
        self
    }

    /// Fetches, verifies, extracts and installs the package.
    pub fn run(mut self) -> Result<Report> {
        let started = Instant::now();
        let dest = self
            .dest
            .take()
            .ok_or_else(|| Error::Config("no destination directory given".into()))?;
        let layout = Layout::new(&dest)?;
        let lock = layout.lock()?;
        layout.recover(&lock)?;
        let installed = layout.current();
        let mut report = Report {
            digest: Sha256Digest::of(b""),
            source: self.source.redacted(),
            dest: layout.dest().to_path_buf(),
            noop: false,
            bytes_downloaded: 0,
            package_size: 0,
            entries: 0,
            files: 0,
            dirs: 0,
            symlinks: 0,
            bytes_written: 0,
            streamed: false,
            stream_fallback: None,
            timings: Timings::default(),
        };
        match (self.expected, &installed) {
            (Some(expected), Some(current)) if current.digest == expected => {
                report.noop = true;
                report.digest = current.digest;
                report.package_size = current.package_size;
            }
            _ => {
                let work = Work {
                    layout: &layout,
                    lock: &lock,
                    installed: installed.as_ref(),
                    download: layout.download_path(),
                    staging: layout.staging_path(),
                };
                let result = self.deploy(&work, &mut report);
                let _ = install::remove_tree(&work.staging);
                let _ = install::remove_tree(&work.download);
                result?;
            }
        }
        report.timings.total = started.elapsed();
        Ok(report)
    }

    /// Fetch, verify, extract and activate, filling `report` as it goes.
    fn deploy(&mut self, work: &Work<'_>, report: &mut Report) -> Result<()> {
        let mut progress = self.progress.take();
        let fetch_started = Instant::now();
        let mut streamer = None;
        let (archive, fetched) = match &self.source {
            Source::File(path) => {
                let fetched = fetch::hash_local(path, &self.fetch, progress.as_deref_mut())?;
                (path.clone(), fetched)
            }
            Source::Http(_) => {
                if self.stream {
                    std::fs::File::create(&work.download)
                        .map_err(Error::io("create", &work.download))?;
                    // Streaming is an optimisation: if it cannot start, extract later.
                    streamer = Streamer::start(&work.download, &work.staging, &self.limits).ok();
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
                let fetched = fetch::fetch_observed(
                    &self.source,
                    &work.download,
                    &self.fetch,
                    Some(&mut forward),
                    growth,
                )?;
                report.bytes_downloaded = fetched.bytes;
                (work.download.clone(), fetched)
            }
        };
        report.timings.fetch = fetch_started.elapsed();
        report.digest = fetched.digest;
        report.package_size = fetched.bytes;
        if let Some(expected) = self.expected {
            if expected != fetched.digest {
                return Err(Error::DigestMismatch {
                    expected: expected.to_hex(),
                    actual: fetched.digest.to_hex(),
                });
            }
        }
        if work.installed.is_some_and(|c| c.digest == fetched.digest) {
            report.noop = true;
            return Ok(());
        }

        let extract_started = Instant::now();
        let streamed = match streamer {
            Some(s) => match s.finish(&archive, &work.staging, &self.limits)? {
                Finished::Extracted(done) => Some(done),
                Finished::SteppedAside(reason) => {
                    report.stream_fallback = Some(reason);
                    install::remove_tree(&work.staging)?;
                    None
                }
            },
            None => None,
        };
        report.streamed = streamed.is_some();
        let done = match streamed {
            Some(done) => {
                let p = Progress {
                    stage: Stage::Extract,
                    bytes: done.bytes,
                    total_bytes: Some(done.bytes),
                    entries: done.entries,
                    total_entries: Some(done.entries),
                };
                progress::report(&mut progress.as_deref_mut(), p)?;
                done
            }
            None => extract::extract_archive(
                &archive,
                &work.staging,
                &self.limits,
                progress.as_deref_mut(),
            )?,
        };
        if let Some(hook) = self.before_activate.take() {
            hook(&work.staging).map_err(Error::Hook)?;
        }
        report.timings.extract = extract_started.elapsed();

        let install_started = Instant::now();
        let record = Installed::new(fetched.digest, self.source.redacted(), fetched.bytes);
        work.layout
            .activate(work.lock, &work.staging, record, self.keep, self.durable)?;
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

/// Where one deploy works: its layout, lock, and work paths (removed after).
struct Work<'a> {
    layout: &'a Layout,
    lock: &'a install::StateLock,
    installed: Option<&'a Installed>,
    download: PathBuf,
    staging: PathBuf,
}

impl std::fmt::Debug for Deploy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deploy")
            .field("source", &self.source.redacted())
            .field("expected", &self.expected)
            .field("dest", &self.dest)
            .field("limits", &self.limits)
            .field("keep", &self.keep)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}
