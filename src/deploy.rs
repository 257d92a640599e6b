//! The deploy builder: a package location, a DEST, a [`DeployOptions`] and
//! the callbacks; [`Deploy::run`] hands them to the pipeline.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Result;
use crate::extract::Limits;
use crate::fetch::{self, FetchOptions, NetrcFile, ProxyConfig, Source};
use crate::options::{DeployOptions, IntoSource};
use crate::pipeline::{self, Hook, Job, ProgressBox};
use crate::progress::Progress;
use crate::report::Report;
use crate::{s3, signature, Sha256Digest};

/// A change of one network setting, kept to be made again over a later
/// [`Deploy::fetch_options`].
type FetchEdit = Box<dyn Fn(&mut FetchOptions) + Send + Sync>;

/// A deploy of one package into one directory; configure, then
/// [`Deploy::run`].
///
/// Its settings are a [`DeployOptions`] value ([`Deploy::with_options`]
/// starts from one, [`Deploy::options`] shows it), which the builder
/// methods fill; the progress callback and the hook belong to this run
/// only. Defaults: those of [`DeployOptions`] (no expected digest, the
/// limits of [`Limits`] and [`FetchOptions`], one previous release kept,
/// data not synced before activation, no signature required, no mirrors,
/// no cache).
///
/// Builder methods compose in any order: [`Deploy::fetch_options`] and
/// [`Deploy::limits`] replace the whole network or extraction settings,
/// and the methods that change one network setting (`timeout`,
/// `connect_timeout`, `stall_timeout`, `speed_limit`, `retries`, `connections`,
/// `max_download`, `proxy`, `netrc`, `header`, `header_for`,
/// `root_certificate_pem`, `cacert_file`, `s3_endpoint`, `s3_path_style`)
/// are applied on top of them, whether called before or after:
///
/// ```
/// use std::time::Duration;
/// use zipdeploy::{Deploy, FetchOptions};
///
/// let deploy = Deploy::new("https://example.com/app.zip")?
///     .timeout(Duration::from_secs(60))
///     .fetch_options(FetchOptions { retries: 5, ..FetchOptions::default() });
/// assert_eq!(deploy.options().fetch.timeout, Some(Duration::from_secs(60)));
/// assert_eq!(deploy.options().fetch.retries, 5);
/// # Ok::<(), zipdeploy::Error>(())
/// ```
///
/// Invalid settings that a method cannot refuse on its own (an expected
/// digest and a sidecar, a bad header name) are refused by
/// [`Deploy::run`], before anything is locked or fetched: see
/// [`DeployOptions::validate`].
#[must_use = "a Deploy does nothing until `.run()`"]
pub struct Deploy<'a> {
    source: Source,
    dest: Option<PathBuf>,
    options: DeployOptions,
    /// The one-setting network methods called so far, in order.
    fetch_edits: Vec<FetchEdit>,
    progress: Option<ProgressBox<'a>>,
    before_activate: Option<Hook<'a>>,
}

impl<'a> Deploy<'a> {
    /// A deploy of the package at `location`: `http(s)://…`,
    /// `s3://bucket/key` (see [`s3`]), `file://…` or a local path, or a
    /// [`Source`] already parsed. A local package that anyone but this user
    /// and root could write is copied into the state directory and the copy
    /// verified and extracted, since it could change between hashing and
    /// extraction.
    pub fn new(location: impl IntoSource) -> Result<Self> {
        Self::with_options(location, DeployOptions::default())
    }

    /// A deploy of the package at `location` with `options`, e.g. shared by
    /// the deploys of a fleet; the builder methods change this deploy's copy.
    pub fn with_options(location: impl IntoSource, options: DeployOptions) -> Result<Self> {
        Ok(Self::of(location.into_source()?, options))
    }

    /// A deploy of an already parsed [`Source`].
    #[deprecated(note = "use `Deploy::new`, which takes a `Source` too")]
    pub fn from_source(source: Source) -> Self {
        Self::of(source, DeployOptions::default())
    }

    fn of(source: Source, options: DeployOptions) -> Self {
        Deploy {
            source,
            dest: None,
            options,
            fetch_edits: Vec::new(),
            progress: None,
            before_activate: None,
        }
    }

    /// The settings this deploy will run with.
    pub fn options(&self) -> &DeployOptions {
        &self.options
    }

    /// Requires the package to have this SHA-256 (hex, or `sha256:` + hex).
    pub fn sha256(self, hex: &str) -> Result<Self> {
        Ok(self.digest(hex.parse()?))
    }

    /// Requires the package to have this digest.
    pub fn digest(mut self, digest: Sha256Digest) -> Self {
        self.options.sha256 = Some(digest);
        self
    }

    /// Reads the expected SHA-256 from a sidecar file, e.g. `app.zip.sha256`
    /// published next to `app.zip` (formats: see [`crate::sidecar::parse`]).
    /// It is fetched first, with the same network options, and may be at
    /// most 64 KiB. Exclusive with [`Deploy::sha256`]. Note that a sidecar
    /// from the package's host only guards against corruption, not against
    /// that host: for that, use [`Deploy::minisign_key`] or a digest from
    /// elsewhere.
    pub fn sha256_from(mut self, location: impl IntoSource) -> Result<Self> {
        self.options.sha256_from = Some(location.into_source()?);
        Ok(self)
    }

    /// [`Deploy::sha256_from`] with an already parsed location.
    #[deprecated(note = "use `sha256_from`, which takes a `Source` too")]
    pub fn sha256_from_source(mut self, source: Source) -> Self {
        self.options.sha256_from = Some(source);
        self
    }

    /// Adds another location of the same package. Locations are tried in
    /// order (the one given to [`Deploy::new`] first), each with the retry
    /// policy, until one serves a package that verifies (digest, signature);
    /// if all fail, [`crate::Error::MirrorsFailed`] lists why each did.
    pub fn mirror(mut self, location: impl IntoSource) -> Result<Self> {
        self.options.mirrors.push(location.into_source()?);
        Ok(self)
    }

    /// [`Deploy::mirror`] with an already parsed location.
    #[deprecated(note = "use `mirror`, which takes a `Source` too")]
    pub fn mirror_source(mut self, source: Source) -> Self {
        self.options.mirrors.push(source);
        self
    }

    /// Requires a minisign signature of the package by `key`, fetched from
    /// the package's location + `.minisig` (for each mirror, its own)
    /// unless [`Deploy::minisign_signature`] names it. It is verified over
    /// the exact bytes downloaded, in the same pass, before anything is
    /// activated.
    pub fn minisign_key(mut self, key: signature::PublicKey) -> Self {
        self.options.minisign_key = Some(key);
        self
    }

    /// Where the minisign signature is (a URL or a path), instead of the
    /// package's location + `.minisig`. Only used with
    /// [`Deploy::minisign_key`].
    pub fn minisign_signature(mut self, location: impl IntoSource) -> Result<Self> {
        self.options.minisign_signature = Some(location.into_source()?);
        Ok(self)
    }

    /// [`Deploy::minisign_signature`] with an already parsed location.
    #[deprecated(note = "use `minisign_signature`, which takes a `Source` too")]
    pub fn minisign_signature_source(mut self, source: Source) -> Self {
        self.options.minisign_signature = Some(source);
        self
    }

    /// Keeps verified packages in `dir` by digest (`<dir>/sha256/<hex>.zip`),
    /// shared by the deploys of a host: with an expected digest, a package
    /// already there is re-hashed and used without any network request, and
    /// concurrent deploys of one digest download it once. See
    /// [`crate::cache`]. Downloads through the cache are not kept for a later
    /// run to resume.
    pub fn cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.cache = Some(dir.into());
        self
    }

    /// Largest total size of the cache's entries (default 10 GiB); least
    /// recently used entries are evicted after an insert.
    pub fn cache_max_size(mut self, bytes: u64) -> Self {
        self.options.cache_max_size = bytes;
        self
    }

    /// The directory to install into (required). When it is a mount point
    /// (a volume), the tree goes one level down, into `DIR/current`: see
    /// [`crate::Layout::new`] and [`Report::dest`].
    pub fn dest(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dest = Some(dir.into());
        self
    }

    /// Extraction limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// Network options (timeouts, retries, headers, download size limit).
    /// The one-setting methods (`timeout`, `header`, …) called before stay
    /// applied over them.
    pub fn fetch_options(mut self, options: FetchOptions) -> Self {
        self.options.fetch = options;
        for edit in &self.fetch_edits {
            edit(&mut self.options.fetch);
        }
        self
    }

    /// Changes one network setting now, and again over a later
    /// [`Deploy::fetch_options`].
    fn edit_fetch(mut self, edit: impl Fn(&mut FetchOptions) + Send + Sync + 'static) -> Self {
        edit(&mut self.options.fetch);
        self.fetch_edits.push(Box::new(edit));
        self
    }

    /// Largest package accepted, in bytes.
    pub fn max_download(self, bytes: u64) -> Self {
        self.edit_fetch(move |f| f.max_size = bytes)
    }

    /// Deadline for the whole download, retries included.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.edit_fetch(move |f| f.timeout = Some(timeout))
    }

    /// Time allowed to connect (TCP and TLS).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.edit_fetch(move |f| f.connect_timeout = timeout)
    }

    /// Longest wait for the server to send anything once connected.
    pub fn stall_timeout(self, timeout: Duration) -> Self {
        self.edit_fetch(move |f| f.stall_timeout = timeout)
    }

    /// Trusts the root certificate(s) in `pem` in addition to the host's
    /// trust store, for package servers behind a private CA or a
    /// TLS-intercepting proxy (see [`FetchOptions::root_certs_pem`]).
    pub fn root_certificate_pem(self, pem: impl Into<Vec<u8>>) -> Self {
        let pem = pem.into();
        self.edit_fetch(move |f| f.root_certs_pem.push(pem.clone()))
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` in addition to
    /// the host's trust store (curl's `--cacert` replaces the store; this
    /// adds to it, so public mirrors still verify). The file is read now: an
    /// unreadable one is an [`crate::Error::Io`], one without a certificate
    /// an [`crate::Error::Config`].
    pub fn cacert_file(self, path: impl AsRef<Path>) -> Result<Self> {
        Ok(self.root_certificate_pem(fetch::read_cacert_file(path.as_ref())?))
    }

    /// Sets the proxies, instead of those of the environment
    /// ([`ProxyConfig::from_env`], read when the builder was created).
    /// `ProxyConfig::none()` connects directly.
    pub fn proxy(self, proxy: ProxyConfig) -> Self {
        self.edit_fetch(move |f| f.proxy = proxy.clone())
    }

    /// Which netrc file gives `http(s)://` requests their credentials, each
    /// only to its own host, instead of `NETRC` or `$HOME/.netrc` (read
    /// when the builder was created): `NetrcFile::Required(path)` for
    /// curl's `--netrc-file`, `NetrcFile::Disabled` for none. See
    /// [`crate::netrc`].
    pub fn netrc(self, netrc: NetrcFile) -> Self {
        self.edit_fetch(move |f| f.netrc = netrc.clone())
    }

    /// Fetches `s3://` locations from this S3-compatible endpoint
    /// (`http(s)://host[:port]`: MinIO, Ceph, R2, …), path-style, instead of
    /// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or AWS. See [`s3`].
    pub fn s3_endpoint(self, endpoint: &str) -> Result<Self> {
        let endpoint = s3::parse_endpoint(endpoint)?;
        Ok(self.edit_fetch(move |f| f.s3.endpoint = Some(endpoint.clone())))
    }

    /// Addresses `s3://` objects path-style on AWS too
    /// (`https://s3.REGION.amazonaws.com/BUCKET/KEY`).
    pub fn s3_path_style(self, path_style: bool) -> Self {
        self.edit_fetch(move |f| f.s3.path_style = path_style)
    }

    /// Retries on transient network failures.
    pub fn retries(self, retries: u32) -> Self {
        self.edit_fetch(move |f| f.retries = retries)
    }

    /// Most connections one download uses (default 8; 1 keeps one): the
    /// rest of a download slowed by a per-connection cap is fetched in byte
    /// ranges over several at once. See [`FetchOptions::connections`].
    pub fn connections(self, connections: u32) -> Self {
        self.edit_fetch(move |f| f.connections = connections.max(1))
    }

    /// Adds a request header for the package URL, e.g.
    /// `header("PRIVATE-TOKEN", "…")`. It is sent only to the package URL's
    /// origin (scheme, host, port): to a redirect, a mirror, a sidecar or a
    /// signature on the same origin, never to another origin. Give another
    /// origin its own headers with [`Deploy::header_for`]. A name that is
    /// not an HTTP token, or a value with a line break, fails the run with
    /// [`crate::Error::Config`].
    pub fn header(self, name: &str, value: &str) -> Self {
        let header = (name.to_string(), value.to_string());
        self.edit_fetch(move |f| f.headers.push(header.clone()))
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
    pub fn header_for(self, origin: &str, name: &str, value: &str) -> Result<Self> {
        let header = (fetch::parse_origin(origin)?, name.into(), value.into());
        Ok(self.edit_fetch(move |f| f.origin_headers.push(header.clone())))
    }

    /// The low-speed rule (curl's `--speed-limit`/`--speed-time`): a download
    /// averaging fewer than `bytes_per_second` over `time` fails as a network
    /// timeout (retried like one). Default 1024 bytes/s over 30 s; 0 disables.
    pub fn speed_limit(self, bytes_per_second: u64, time: Duration) -> Self {
        self.edit_fetch(move |f| {
            f.speed_limit = bytes_per_second;
            f.speed_time = time;
        })
    }

    /// How many previous releases to keep for rollback (default 1).
    pub fn keep(mut self, releases: usize) -> Self {
        self.options.keep = releases;
        self
    }

    /// Whether to sync the staged tree to disk before activation (default
    /// false).
    ///
    /// Without it every guarantee holds against a crash or `kill -9` of the
    /// deploying process (the kernel keeps what was written); with it they
    /// also hold against a power cut or kernel crash, which could otherwise
    /// leave files of a just-activated tree empty. Every file and directory
    /// of the new tree is on disk before the activation rename (one `syncfs`
    /// of the destination's filesystem), and the activation before `run`
    /// returns. Most of the writing is started while the tree is extracted
    /// (see `src/writeback.rs`), and the deploy's own download is dropped
    /// rather than written, so the final flush has little left to do; its
    /// cost is measured in BENCHMARKS.md (the `--sync` rows).
    pub fn durable(mut self, durable: bool) -> Self {
        self.options.durable = durable;
        self
    }

    /// Whether to extract entries while the package downloads (default
    /// true). The tree is activated only after the whole file's digest
    /// matches and its central directory agrees with what was extracted;
    /// archives whose layout needs the central directory first are extracted
    /// after the download, and the report says why.
    pub fn stream(mut self, stream: bool) -> Self {
        self.options.stream = stream;
        self
    }

    /// Calls `f` as the deploy advances, and at least every 100 ms while it
    /// waits for the network (with unchanged counts); returning
    /// `ControlFlow::Break(())` cancels it cleanly within about 100 ms, even
    /// on a stalled connection. See [`crate::progress::ProgressFn`].
    pub fn progress(mut self, f: impl FnMut(&Progress) -> ControlFlow<()> + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Runs `hook` on the staged tree before it is activated (e.g. an init
    /// script); an `Err` fails the deploy with [`crate::Error::Hook`] and
    /// leaves DEST untouched.
    pub fn before_activate(
        mut self,
        hook: impl FnOnce(&Path) -> std::result::Result<(), String> + Send + 'a,
    ) -> Self {
        self.before_activate = Some(Box::new(hook));
        self
    }

    /// Fetches, verifies, extracts and installs the package.
    ///
    /// Invalid settings fail first, as an [`crate::Error::Config`]: no
    /// destination, or what [`DeployOptions::validate`] refuses.
    ///
    /// Restarts are cheap: with no digest pinned (no [`Deploy::sha256`],
    /// sidecar or [`Deploy::minisign_key`]), the request for the location
    /// the installed package came from carries its validators, and a `304`
    /// is a no-op ([`Report::not_modified`]). Without a cache, a download
    /// cut short is kept in the state directory and the next deploy of the
    /// same location and expected digest fetches only the rest.
    pub fn run(self) -> Result<Report> {
        let dest = self
            .dest
            .ok_or_else(|| crate::Error::Config("no destination directory given".into()))?;
        self.options.validate()?;
        pipeline::run(Job {
            source: self.source,
            dest,
            options: self.options,
            progress: self.progress,
            before_activate: self.before_activate,
        })
    }
}

impl std::fmt::Debug for Deploy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deploy")
            .field("source", &self.source.redacted())
            .field("dest", &self.dest)
            .field("options", &self.options)
            .field("progress", &self.progress.is_some())
            .field("before_activate", &self.before_activate.is_some())
            .finish()
    }
}
