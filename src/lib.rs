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
//! `<parent>/.<name>.zipdeploy/` (and the download cache, when one is
//! given). A DEST that is a mount point (a volume) gets the tree one level
//! down, in `DEST/current`: see [`Layout::new`]. Each stage is usable on its own: [`fetch::fetch_to_file`],
//! [`extract::extract_archive`], [`install::Layout`].
//! The C ABI (for C, Go and Python embedders) is in [`ffi`].
//!
//! For fleets: [`Deploy::minisign_key`] (signed packages),
//! [`Deploy::sha256_from`] (digest from a sidecar file), [`Deploy::mirror`]
//! (fallback locations), [`Deploy::cache`] (a download cache shared by the
//! deploys of a host), and [`status()`] / [`rollback()`].
// `deny`, not `forbid`: the `ffi` module alone allows unsafe code (it must
// dereference the pointers C hands it); every other module still refuses it.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
mod civil;
pub mod digest;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod ffi;
mod fsutil;
mod growth;
mod http;
pub mod install;
mod mounts;
pub mod netrc;
pub mod progress;
mod proxy;
mod ranged;
mod retry_after;
pub mod s3;
pub mod sidecar;
pub mod signature;
pub mod status;
mod tap;
mod trust;

use std::cell::{Cell, RefCell};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use extract::stream::{Finished, Streamer};

pub use cache::Cache;
pub use digest::Sha256Digest;
pub use error::{Error, ErrorClass, Limit, Result};
pub use extract::{Extracted, Limits};
pub use fetch::{FetchOptions, Fetched, NetrcFile, ProxyConfig, Source};
pub use install::{Installed, Layout, Release};
pub use progress::{Notice, NoticeFn, Progress, Stage};
pub use status::{rollback, status, Rollback, Status};

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
    /// Where the tree is (absolute): DEST, or `DEST/current` when DEST is a
    /// mount point (see [`Layout::new`]).
    pub dest: PathBuf,
    /// True when that digest was already installed and nothing was done.
    pub noop: bool,
    /// True when the server answered `304 Not Modified` to a conditional
    /// request (no digest pinned: the validators of the package installed
    /// from the same location were sent): nothing was downloaded or
    /// extracted, and `noop` is true too.
    pub not_modified: bool,
    /// Bytes downloaded by this run (0 for a no-op or a local package;
    /// for a download resumed from an earlier run's, only the rest).
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
    /// True when the package came from the download cache (re-verified).
    pub cache_hit: bool,
    /// The id of the minisign key whose signature was verified, if one was.
    pub signed_by: Option<String>,
    /// Locations tried before the one that served the package, each with
    /// why it was skipped (credentials redacted).
    pub mirrors_skipped: Vec<String>,
    /// Problems that did not fail the deploy, e.g. a leftover in the state
    /// directory that could not be removed (it was set aside, and the next
    /// run tries again).
    pub warnings: Vec<String>,
    /// Time per stage.
    pub timings: Timings,
}

type Hook<'a> = Box<dyn FnOnce(&Path) -> std::result::Result<(), String> + Send + 'a>;
type ProgressBox<'a> = Box<progress::ProgressFn<'a>>;

/// A deploy of one package into one directory; configure, then [`Deploy::run`].
///
/// Defaults: no expected digest (the report carries the one seen), the limits
/// of [`Limits`] and [`FetchOptions`], one previous release kept, data synced
/// to disk before activation, no signature required, no mirrors, no cache.
pub struct Deploy<'a> {
    source: Source,
    mirrors: Vec<Source>,
    sidecar: Option<Source>,
    minisign_key: Option<signature::PublicKey>,
    minisign_sig: Option<Source>,
    cache: Option<PathBuf>,
    cache_max_size: u64,
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
    /// A deploy of the package at `location`: `http(s)://…`,
    /// `s3://bucket/key` (see [`s3`]), `file://…` or a local path. A local
    /// package that anyone but this user and root could write is copied into
    /// the state directory and the copy verified and extracted, since it
    /// could change between hashing and extraction.
    pub fn new(location: &str) -> Result<Self> {
        Ok(Self::from_source(Source::parse(location)?))
    }

    /// A deploy of an already parsed [`Source`].
    pub fn from_source(source: Source) -> Self {
        Deploy {
            source,
            mirrors: Vec::new(),
            sidecar: None,
            minisign_key: None,
            minisign_sig: None,
            cache: None,
            cache_max_size: cache::DEFAULT_MAX_SIZE,
            expected: None,
            dest: None,
            limits: Limits::default(),
            fetch: FetchOptions::default(),
            keep: 1,
            durable: false,
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

    /// Reads the expected SHA-256 from a sidecar file, e.g. `app.zip.sha256`
    /// published next to `app.zip` (formats: see [`sidecar::parse`]). It is
    /// fetched first, with the same network options, and may be at most
    /// 64 KiB. Exclusive with [`Deploy::sha256`]. Note that a sidecar from
    /// the package's host only guards against corruption, not against that
    /// host: for that, use [`Deploy::minisign_key`] or a digest from
    /// elsewhere.
    pub fn sha256_from(mut self, location: &str) -> Result<Self> {
        self.sidecar = Some(Source::parse(location)?);
        Ok(self)
    }

    /// [`Deploy::sha256_from`] with an already parsed location.
    pub fn sha256_from_source(mut self, source: Source) -> Self {
        self.sidecar = Some(source);
        self
    }

    /// [`Deploy::mirror`] with an already parsed location.
    pub fn mirror_source(mut self, source: Source) -> Self {
        self.mirrors.push(source);
        self
    }

    /// [`Deploy::minisign_signature`] with an already parsed location.
    pub fn minisign_signature_source(mut self, source: Source) -> Self {
        self.minisign_sig = Some(source);
        self
    }

    /// Adds another location of the same package. Locations are tried in
    /// order (the one given to [`Deploy::new`] first), each with the retry
    /// policy, until one serves a package that verifies (digest, signature);
    /// if all fail, [`Error::MirrorsFailed`] lists why each did.
    pub fn mirror(mut self, location: &str) -> Result<Self> {
        self.mirrors.push(Source::parse(location)?);
        Ok(self)
    }

    /// Requires a minisign signature of the package by `key`, fetched from
    /// the package's location + `.minisig` (for each mirror, its own)
    /// unless [`Deploy::minisign_signature`] names it. It is verified over
    /// the exact bytes downloaded, in the same pass, before anything is
    /// activated.
    pub fn minisign_key(mut self, key: signature::PublicKey) -> Self {
        self.minisign_key = Some(key);
        self
    }

    /// Where the minisign signature is (a URL or a path), instead of the
    /// package's location + `.minisig`. Only used with
    /// [`Deploy::minisign_key`].
    pub fn minisign_signature(mut self, location: &str) -> Result<Self> {
        self.minisign_sig = Some(Source::parse(location)?);
        Ok(self)
    }

    /// Keeps verified packages in `dir` by digest (`<dir>/sha256/<hex>.zip`),
    /// shared by the deploys of a host: with an expected digest, a package
    /// already there is re-hashed and used without any network request, and
    /// concurrent deploys of one digest download it once. See [`cache`].
    /// Downloads through the cache are not kept for a later run to resume.
    pub fn cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }

    /// Largest total size of the cache's entries (default 10 GiB); least
    /// recently used entries are evicted after an insert.
    pub fn cache_max_size(mut self, bytes: u64) -> Self {
        self.cache_max_size = bytes;
        self
    }

    /// The directory to install into (required). When it is a mount point
    /// (a volume), the tree goes one level down, into `DIR/current`: see
    /// [`Layout::new`] and [`Report::dest`].
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

    /// Trusts the root certificate(s) in `pem` in addition to the host's
    /// trust store, for package servers behind a private CA or a
    /// TLS-intercepting proxy (see [`FetchOptions::root_certs_pem`]).
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.fetch.root_certs_pem.push(pem.into());
        self
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` in addition to
    /// the host's trust store (curl's `--cacert` replaces the store; this
    /// adds to it, so public mirrors still verify). The file is read now: an unreadable one is an
    /// [`Error::Io`], one without a certificate an [`Error::Config`].
    pub fn cacert_file(self, path: impl AsRef<Path>) -> Result<Self> {
        Ok(self.root_certificate_pem(fetch::read_cacert_file(path.as_ref())?))
    }

    /// Sets the proxies, instead of those of the environment
    /// ([`ProxyConfig::from_env`], read when the builder was created).
    /// `ProxyConfig::none()` connects directly.
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.fetch.proxy = proxy;
        self
    }

    /// Which netrc file gives `http(s)://` requests their credentials, each
    /// only to its own host, instead of `NETRC` or `$HOME/.netrc` (read
    /// when the builder was created): `NetrcFile::Required(path)` for
    /// curl's `--netrc-file`, `NetrcFile::Disabled` for none. See [`netrc`].
    pub fn netrc(mut self, netrc: NetrcFile) -> Self {
        self.fetch.netrc = netrc;
        self
    }

    /// Fetches `s3://` locations from this S3-compatible endpoint
    /// (`http(s)://host[:port]`: MinIO, Ceph, R2, …), path-style, instead of
    /// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or AWS. See [`s3`].
    pub fn s3_endpoint(mut self, endpoint: &str) -> Result<Self> {
        self.fetch.s3.endpoint = Some(s3::parse_endpoint(endpoint)?);
        Ok(self)
    }

    /// Addresses `s3://` objects path-style on AWS too
    /// (`https://s3.REGION.amazonaws.com/BUCKET/KEY`).
    pub fn s3_path_style(mut self, path_style: bool) -> Self {
        self.fetch.s3.path_style = path_style;
        self
    }

    /// Retries on transient network failures.
    pub fn retries(mut self, retries: u32) -> Self {
        self.fetch.retries = retries;
        self
    }

    /// Most connections one download uses (default 8; 1 keeps one): the
    /// rest of a download slowed by a per-connection cap is fetched in byte
    /// ranges over several at once. See [`FetchOptions::connections`].
    pub fn connections(mut self, connections: u32) -> Self {
        self.fetch.connections = connections.max(1);
        self
    }

    /// Adds a request header for the package URL, e.g.
    /// `header("PRIVATE-TOKEN", "…")`. It is sent only to the package URL's
    /// origin (scheme, host, port): to a redirect, a mirror, a sidecar or a
    /// signature on the same origin, never to another origin. Give another
    /// origin its own headers with [`Deploy::header_for`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.fetch.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a request header for the origin of `origin` (a URL; only its
    /// scheme, host and port count), e.g. a mirror's own token:
    ///
    /// ```
    /// # use zipdeploy::Deploy;
    /// let deploy = Deploy::new("https://git.example.com/api/v4/app.zip")?
    ///     .header("PRIVATE-TOKEN", "token-for-git.example.com")
    ///     .mirror("https://mirror.example.net/app.zip")?
    ///     .header_for("https://mirror.example.net", "X-Api-Key", "key-for-the-mirror")?;
    /// # Ok::<(), zipdeploy::Error>(())
    /// ```
    ///
    /// The header goes to every request on that origin (redirect hops
    /// included) and to no other.
    pub fn header_for(mut self, origin: &str, name: &str, value: &str) -> Result<Self> {
        let origin = fetch::parse_origin(origin)?;
        self.fetch
            .origin_headers
            .push((origin, name.into(), value.into()));
        Ok(self)
    }

    /// The low-speed rule (curl's `--speed-limit`/`--speed-time`): a download
    /// averaging fewer than `bytes_per_second` over `time` fails as a network
    /// timeout (retried like one). Default 1024 bytes/s over 30 s; 0 disables.
    pub fn speed_limit(mut self, bytes_per_second: u64, time: Duration) -> Self {
        self.fetch.speed_limit = bytes_per_second;
        self.fetch.speed_time = time;
        self
    }

    /// How many previous releases to keep for rollback (default 1).
    pub fn keep(mut self, releases: usize) -> Self {
        self.keep = releases;
        self
    }

    /// Whether to sync the staged tree to disk before activation (default
    /// false).
    ///
    /// Without it every guarantee holds against a crash or `kill -9` of the
    /// deploying process (the kernel keeps what was written); with it they
    /// also hold against a power cut or kernel crash, which could otherwise
    /// leave files of a just-activated tree empty. The cost is one `syncfs`
    /// of the destination's filesystem (measured in BENCHMARKS.md: about
    /// 0.5 s for a 150 MB tree of 20,000 files, more for large trees).
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

    /// Calls `f` as the deploy advances, and at least every 100 ms while it
    /// waits for the network (with unchanged counts); returning
    /// `ControlFlow::Break(())` cancels it cleanly within about 100 ms, even
    /// on a stalled connection. See [`progress::ProgressFn`].
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

    /// The id of the minisign key packages must be signed by, if any: what
    /// a verified package's `signed_by` says.
    fn signer_id(&self) -> Option<String> {
        self.minisign_key.as_ref().map(|k| k.key_id().to_string())
    }

    /// Fetches, verifies, extracts and installs the package.
    ///
    /// Restarts are cheap: with no digest pinned (no [`Deploy::sha256`],
    /// sidecar or [`Deploy::minisign_key`]), the request for the location
    /// the installed package came from carries its validators, and a `304`
    /// is a no-op ([`Report::not_modified`]). Without a cache, a download
    /// cut short is kept in the state directory and the next deploy of the
    /// same location and expected digest fetches only the rest.
    pub fn run(mut self) -> Result<Report> {
        let started = Instant::now();
        let dest = self
            .dest
            .take()
            .ok_or_else(|| Error::Config("no destination directory given".into()))?;
        if self.sidecar.is_some() && self.expected.is_some() {
            return Err(Error::Config(
                "give an expected SHA-256 or a sidecar to read it from, not both".into(),
            ));
        }
        self.bind_headers_to_package_origin();
        let layout = Layout::new(&dest)?;
        // Waiting for another deploy to the same DEST: heartbeats, so a
        // cancel still takes effect.
        let queued = Progress::bytes(Stage::Fetch, 0, None);
        let lock = layout
            .lock_waiting(&mut || progress::report(&mut self.progress.as_deref_mut(), queued))?;
        let warnings = layout.recover(&lock)?;
        if let Some(sidecar) = self.sidecar.clone() {
            let mut progress = self.progress.take();
            let read = self.read_sidecar(&layout, &sidecar, &mut progress);
            self.progress = progress;
            self.expected = Some(read?);
        }
        let installed = layout.current();
        let mut report = Report {
            digest: Sha256Digest::of(b""),
            source: self.source.redacted(),
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
        let key_id = self.signer_id();
        match (self.expected, &installed) {
            // With a key, only a tree whose signature was verified by it
            // counts as this package.
            (Some(expected), Some(current))
                if current.digest == expected
                    && (key_id.is_none() || current.signed_by == key_id) =>
            {
                report.noop = true;
                report.digest = current.digest;
                report.package_size = current.package_size;
                report.signed_by = current.signed_by.clone();
            }
            _ => {
                let work = Work {
                    layout: &layout,
                    lock: &lock,
                    installed: installed.as_ref(),
                    staging: layout.staging_path(),
                    temps: RefCell::new(Vec::new()),
                    partial_done: Cell::new(false),
                };
                let result = self.deploy(&work, &mut report);
                let _ = install::remove_tree(&work.staging);
                for temp in work.temps.borrow().iter() {
                    let _ = install::remove_tree(temp);
                }
                if work.partial_done.get() {
                    lock.remove_partial();
                }
                result?;
            }
        }
        report.timings.total = started.elapsed();
        Ok(report)
    }

    /// Ties the headers given for the package to its URL's origin, so that
    /// a mirror, sidecar or signature elsewhere does not get them (a local
    /// package has no origin: they then go nowhere).
    fn bind_headers_to_package_origin(&mut self) {
        let headers = std::mem::take(&mut self.fetch.headers);
        if let Source::Http(url) = &self.source {
            let origin = url.origin();
            self.fetch.origin_headers.splice(
                0..0,
                headers
                    .into_iter()
                    .map(|(name, value)| (origin.clone(), name, value)),
            );
        }
    }

    /// The expected digest, from the sidecar file.
    fn read_sidecar(
        &self,
        layout: &Layout,
        location: &Source,
        progress: &mut Option<ProgressBox<'a>>,
    ) -> Result<Sha256Digest> {
        let shown = location.redacted();
        let unusable = |reason: String| Error::DigestSidecar {
            url: shown.clone(),
            reason,
        };
        let scratch = layout.download_path();
        let heartbeat = progress.as_deref_mut();
        let bytes = match sidecar::fetch_small(location, &self.fetch, &scratch, heartbeat) {
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
        sidecar::parse(text, &sidecar::file_name(&self.source)).map_err(unusable)
    }

    /// Fetch, verify, extract and activate, filling `report` as it goes.
    fn deploy(&mut self, work: &Work<'_>, report: &mut Report) -> Result<()> {
        let mut progress = self.progress.take();
        let fetch_started = Instant::now();
        let got = self.obtain(work, &mut progress, report)?;
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
        report.digest = got.fetched.digest;
        report.package_size = got.fetched.bytes;
        report.bytes_downloaded = got.downloaded;
        report.source = got.source.redacted();
        report.signed_by = got.signed_by.clone();
        if let Some(current) = work.installed.filter(|c| c.digest == got.fetched.digest) {
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

        let extract_started = Instant::now();
        let streamed = match got.streamer {
            Some(s) => match s.finish(&got.archive, &got.shown, &work.staging, &self.limits)? {
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
            None => extract::extract_open_archive(
                &got.archive,
                &got.shown,
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
        let mut record =
            Installed::new(got.fetched.digest, got.source.redacted(), got.fetched.bytes);
        record.location = got.location;
        record.etag = got.validators.etag;
        record.last_modified = got.validators.last_modified;
        record.signed_by = got.signed_by;
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

    /// The verified package: from the cache, or from the first location
    /// (the URL, then the mirrors) that serves one that verifies.
    fn obtain(
        &self,
        work: &Work<'_>,
        progress: &mut Option<ProgressBox<'a>>,
        report: &mut Report,
    ) -> Result<Got> {
        let cache = self
            .cache
            .as_ref()
            .map(|dir| Cache::new(dir).max_size(self.cache_max_size));
        let mut entry_lock = None;
        if let (Some(cache), Some(expected)) = (&cache, self.expected) {
            // Held until the deploy is over: one download per digest, and no
            // eviction of the entry while it is extracted.
            let queued = Progress::bytes(Stage::Fetch, 0, None);
            let lock = cache.lock_waiting(&expected, &mut || {
                progress::report(&mut progress.as_deref_mut(), queued)
            })?;
            if let Some(file) = cache.open_entry(&lock) {
                match self.verify_cached(cache, &lock, &file, expected, work, progress) {
                    Ok((fetched, signed_by)) => {
                        cache.touch(&lock);
                        report.cache_hit = true;
                        return Ok(Got::Package(Box::new(Obtained {
                            archive: file,
                            shown: cache.entry_path(&expected),
                            fetched,
                            downloaded: 0,
                            source: self.source.clone(),
                            location: None,
                            validators: fetch::Validators::default(),
                            signed_by,
                            streamer: None,
                            _entry: Some(lock),
                        })));
                    }
                    // A corrupt entry (or its kept signature) is fetched again.
                    Err(Retry::Refetch) => cache.remove(&lock),
                    Err(Retry::Fail(e)) => return Err(e),
                }
            }
            entry_lock = Some(lock);
        }
        let sources: Vec<&Source> = std::iter::once(&self.source).chain(&self.mirrors).collect();
        let mut failures: Vec<(String, Error)> = Vec::new();
        for source in &sources {
            match self.fetch_from(source, cache.as_ref(), &mut entry_lock, work, progress) {
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
        cache: &Cache,
        lock: &cache::EntryLock,
        file: &std::fs::File,
        expected: Sha256Digest,
        work: &Work<'_>,
        progress: &mut Option<ProgressBox<'a>>,
    ) -> std::result::Result<(Fetched, Option<String>), Retry> {
        let mut signature = None;
        let mut kept_signature = false;
        if let Some(key) = &self.minisign_key {
            let kept = cache
                .read_signature(lock)
                .and_then(|text| key.signature(&text, "(cached)").ok());
            kept_signature = kept.is_some();
            signature = Some(match kept {
                Some(sig) => (
                    sig,
                    format!("{} (cached)", cache.signature_path(&expected).display()),
                ),
                None => self.load_signature(key, &self.source, work, progress)?,
            });
        }
        let mut verifier = match (&self.minisign_key, &signature) {
            (Some(key), Some((sig, _))) => Some(key.verifier(sig)),
            _ => None,
        };
        let fetched = fetch::hash_local_observed(
            file,
            &cache.entry_path(&expected),
            &self.fetch,
            progress.as_deref_mut(),
            verifier.as_mut().map(|v| v as &mut dyn tap::Tap),
        )?;
        if fetched.digest != expected {
            return Err(Retry::Refetch);
        }
        if let (Some(v), Some((sig, shown))) = (verifier.as_mut(), &signature) {
            match v.finish(shown) {
                Ok(()) => cache.keep_signature(lock, Some(&sig.text)),
                Err(_) if kept_signature => return Err(Retry::Refetch),
                Err(e) => return Err(Retry::Fail(e)),
            }
        }
        Ok((fetched, self.signer_id()))
    }

    /// Fetches the signature for the package at `package`.
    fn load_signature(
        &self,
        key: &signature::PublicKey,
        package: &Source,
        work: &Work<'_>,
        progress: &mut Option<ProgressBox<'a>>,
    ) -> Result<(signature::Signature, String)> {
        let location = self
            .minisign_sig
            .clone()
            .unwrap_or_else(|| sidecar::beside(package, ".minisig"));
        let shown = location.redacted();
        let missing = |reason: String| Error::SignatureMissing {
            key_id: key.key_id().to_string(),
            signature: shown.clone(),
            reason,
        };
        let scratch = work.layout.download_path();
        let heartbeat = progress.as_deref_mut();
        let bytes = match sidecar::fetch_small(&location, &self.fetch, &scratch, heartbeat) {
            Ok(bytes) => bytes,
            Err(Error::HttpStatus {
                status: status @ (404 | 410),
                ..
            }) => return Err(missing(format!("HTTP status {status}"))),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(missing("no such file".into()))
            }
            Err(Error::LimitExceeded { .. }) => {
                return Err(Error::SignatureInvalid {
                    key_id: key.key_id().to_string(),
                    signature: shown,
                    reason: format!("larger than {} KiB", sidecar::MAX_SIZE >> 10),
                })
            }
            Err(e) => return Err(e),
        };
        Ok((key.signature(&bytes, &shown)?, shown))
    }

    /// Fetches and verifies the package from one location.
    fn fetch_from(
        &self,
        source: &Source,
        cache: Option<&Cache>,
        entry_lock: &mut Option<cache::EntryLock>,
        work: &Work<'_>,
        progress: &mut Option<ProgressBox<'a>>,
    ) -> Result<Got> {
        let signature = match &self.minisign_key {
            Some(key) => Some(self.load_signature(key, source, work, progress)?),
            None => None,
        };
        let mut verifier = match (&self.minisign_key, &signature) {
            (Some(key), Some((sig, _))) => Some(key.verifier(sig)),
            _ => None,
        };
        let signed_by = self.signer_id();
        let path = match source {
            Source::File(path) => path,
            Source::Http(_) | Source::S3(_) => {
                return self.download(
                    source, cache, entry_lock, work, progress, verifier, &signature,
                )
            }
        };
        let (file, meta) = fetch::open_local(path)?;
        if fetch::others_can_write(&meta) {
            // It could be rewritten in place after it is hashed: hash and
            // extract a private copy instead (not kept in the cache).
            return self.download(
                source, None, &mut None, work, progress, verifier, &signature,
            );
        }
        let fetched = fetch::hash_local_observed(
            &file,
            path,
            &self.fetch,
            progress.as_deref_mut(),
            verifier.as_mut().map(|v| v as &mut dyn tap::Tap),
        )?;
        self.verify(&fetched, verifier.as_mut(), &signature)?;
        Ok(Got::Package(Box::new(Obtained {
            archive: file,
            shown: path.clone(),
            fetched,
            downloaded: 0,
            source: source.clone(),
            location: None,
            validators: fetch::Validators::default(),
            signed_by,
            streamer: None,
            _entry: None,
        })))
    }

    /// The validators to make the request for the package at `location` (a
    /// [`location_key`]) conditional with: those of the package installed
    /// from there, when no digest or signature is required (either would
    /// have to be checked against the bytes).
    fn unless(&self, work: &Work<'_>, location: Option<&str>) -> Option<fetch::Validators> {
        if self.expected.is_some() || self.minisign_key.is_some() {
            return None;
        }
        let current = work.installed?;
        if location.is_none() || current.location.as_deref() != location {
            return None;
        }
        let validators =
            fetch::Validators::new(current.etag.clone(), current.last_modified.clone());
        (!validators.is_empty()).then_some(validators)
    }

    /// Downloads (extracting while it downloads, when it can) and verifies;
    /// a local package is copied the same way. The download file is written,
    /// hashed and extracted through the one handle opened here.
    ///
    /// Without a cache, an HTTP(S) or S3 download goes to the state
    /// directory's `partial.zip`, kept when the download fails on the way
    /// (network, timeout, cancel, a kill): the next run re-hashes it and
    /// resumes it with `Range` + `If-Range`, if it deploys the same location
    /// with the same expected digest.
    #[allow(clippy::too_many_arguments)]
    fn download(
        &self,
        source: &Source,
        cache: Option<&Cache>,
        entry_lock: &mut Option<cache::EntryLock>,
        work: &Work<'_>,
        progress: &mut Option<ProgressBox<'a>>,
        mut verifier: Option<signature::Verifier<'_>>,
        signature: &Option<(signature::Signature, String)>,
    ) -> Result<Got> {
        let location = location_key(source, &self.fetch);
        let unless = self.unless(work, location.as_deref());
        let temp = cache.map(Cache::temp).transpose()?;
        let mut resume = None;
        let (download, path) = match (&temp, &location) {
            (Some(temp), _) => (temp.file()?, temp.path().to_path_buf()),
            (None, Some(location)) => match work.lock.take_partial(location, self.expected) {
                Some((file, path, validator)) => {
                    resume = Some(validator);
                    (file, path)
                }
                None => work.lock.start_partial()?,
            },
            (None, None) => {
                let (file, path) = work.lock.create_download()?;
                work.temps.borrow_mut().push(path.clone());
                (file, path)
            }
        };
        let partial = match (&temp, &location) {
            (None, Some(location)) => Some(location.as_str()),
            _ => None,
        };
        let mut streamer = None;
        if self.stream {
            // Streaming is an optimisation: if it cannot start, extract later.
            streamer = Streamer::start(&download, &work.staging, &self.limits).ok();
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
        let mut describe = |validators: Option<&fetch::Validators>| {
            if let Some(location) = partial {
                let validator = validators.and_then(fetch::Validators::for_range);
                let _ = work
                    .lock
                    .describe_partial(location, self.expected, validator.as_deref());
            }
        };
        let conditions = fetch::Conditions {
            unless: unless.as_ref(),
            resume,
            on_start: Some(&mut describe),
        };
        let outcome = fetch::fetch_observed(
            source,
            &download,
            &path,
            &self.fetch,
            Some(&mut forward),
            growth,
            verifier.as_mut().map(|v| v as &mut dyn tap::Tap),
            conditions,
        );
        if partial.is_some() {
            match &outcome {
                // Cut short: kept for the next run to resume.
                Err(e) if e.is_transient() || matches!(e, Error::Cancelled) => {
                    work.partial_done.set(false)
                }
                // Complete (or of no more use): removed when the deploy ends.
                _ => work.partial_done.set(true),
            }
        }
        let (fetched, validators, reused) = match outcome? {
            fetch::Outcome::NotModified => return Ok(Got::NotModified(source.clone())),
            fetch::Outcome::Fetched {
                fetched,
                validators,
                reused,
            } => (fetched, validators, reused),
        };
        self.verify(&fetched, verifier.as_mut(), signature)?;
        let mut entry = None;
        let shown = match (cache, temp) {
            (Some(cache), Some(temp)) => {
                let lock = match entry_lock.take() {
                    Some(lock) => lock,
                    None => {
                        let done =
                            Progress::bytes(Stage::Fetch, fetched.bytes, Some(fetched.bytes));
                        cache.lock_waiting(&fetched.digest, &mut || {
                            progress::report(&mut progress.as_deref_mut(), done)
                        })?
                    }
                };
                let text = signature.as_ref().map(|(sig, _)| sig.text.as_str());
                // Renamed into place; extraction still reads `download`.
                let path = cache.insert(&lock, temp, text)?;
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
            fetched,
            downloaded,
            source: source.clone(),
            location,
            validators,
            signed_by: self.signer_id(),
            streamer,
            _entry: entry,
        })))
    }

    /// The package's digest and signature, checked before anything else.
    fn verify(
        &self,
        fetched: &Fetched,
        verifier: Option<&mut signature::Verifier<'_>>,
        signature: &Option<(signature::Signature, String)>,
    ) -> Result<()> {
        if let Some(expected) = self.expected {
            if expected != fetched.digest {
                return Err(Error::DigestMismatch {
                    expected: expected.to_hex(),
                    actual: fetched.digest.to_hex(),
                });
            }
        }
        if let (Some(v), Some((_, shown))) = (verifier, signature) {
            v.finish(shown)?;
        }
        Ok(())
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

/// What identifies a package location for its validators and its partial
/// download: a SHA-256 of all of it, credentials included (a token can
/// select what is served), so that the credentials themselves are never
/// stored. `None` for a local file.
fn location_key(source: &Source, options: &FetchOptions) -> Option<String> {
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

/// What obtaining the package gave.
enum Got {
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
struct Obtained {
    /// The file to extract, open since it was hashed: extraction reads this
    /// handle, never the path again, so it extracts the bytes verified.
    archive: std::fs::File,
    /// Where that file is, for messages only.
    shown: PathBuf,
    fetched: Fetched,
    /// Bytes that came over the network.
    downloaded: u64,
    /// The location that served it.
    source: Source,
    /// Its [`location_key`], when it has one.
    location: Option<String>,
    /// The validators it was served with.
    validators: fetch::Validators,
    signed_by: Option<String>,
    streamer: Option<Streamer>,
    /// The cache entry's lock, held until the deploy is over.
    _entry: Option<cache::EntryLock>,
}

impl Obtained {
    /// Puts where the package came from, and its validators, in `record`.
    fn describe(&self, record: &mut Installed) {
        record.location = self.location.clone();
        record.etag = self.validators.etag.clone();
        record.last_modified = self.validators.last_modified.clone();
    }
}

/// Where one deploy works: its layout, lock, and work paths (removed after).
struct Work<'a> {
    layout: &'a Layout,
    lock: &'a install::StateLock,
    installed: Option<&'a Installed>,
    staging: PathBuf,
    /// Downloads in the state dir, removed after the deploy.
    temps: RefCell<Vec<PathBuf>>,
    /// Whether the partial download is of no more use (complete, or failed
    /// for good): removed after the deploy.
    partial_done: Cell<bool>,
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
