//! Fetch stage: package location → local file, hashed in the same pass.
//!
//! HTTP(S) goes through ureq (rustls, no compression so the bytes hashed are
//! the bytes served), with connect/stall/overall timeouts, retries with
//! exponential backoff and jitter on transient failures (honouring
//! `Retry-After`), and resume with `Range`/`If-Range` when the server supports
//! it. Local paths and `file://` URLs are read through the same hashing pump.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use url::Url;

use crate::digest::{HashingWriter, Sha256Digest};
use crate::error::{Error, Limit, NetworkKind, Result, TimeoutKind, TlsKind};
use crate::growth::Growth;
use crate::http;
pub use crate::netrc::NetrcFile;
use crate::prealloc;
use crate::progress::{notify, report, Notice, NoticeFn, Progress, ProgressFn, Stage};
use crate::proxy;
pub use crate::proxy::ProxyConfig;
use crate::ranged;
use crate::tap::{Tap, TapSink};
use crate::trust;
pub use crate::trust::read_cacert_file;

/// Size of the buffer bytes are pumped through.
const CHUNK: usize = 256 * 1024;

/// Where a package comes from. `Debug` shows a URL redacted, as
/// [`Source::redacted`] does.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// An `http://` or `https://` URL.
    Http(Url),
    /// A local file, given as a path or a `file://` URL.
    File(PathBuf),
    /// An object in S3 or an S3-compatible store: `s3://bucket/key`.
    S3(crate::s3::S3Location),
}

impl Source {
    /// Parses a package location: `http(s)://…`, `s3://bucket/key`,
    /// `file://…` or a plain path.
    ///
    /// ```
    /// use zipdeploy::Source;
    /// assert!(matches!(Source::parse("https://example.com/app.zip")?, Source::Http(_)));
    /// assert!(matches!(Source::parse("/srv/app.zip")?, Source::File(_)));
    /// assert!(Source::parse("ftp://example.com/app.zip").is_err());
    /// # Ok::<(), zipdeploy::Error>(())
    /// ```
    pub fn parse(location: &str) -> Result<Source> {
        let location = location.trim();
        if location.is_empty() {
            return Err(Error::InvalidUrl {
                url: String::new(),
                reason: "empty".into(),
            });
        }
        if location.chars().any(char::is_control) {
            // URL parsing would drop tabs and line breaks, a path would keep
            // them: refuse rather than guess, and show it without them.
            let visible: String = location.chars().filter(|c| !c.is_control()).collect();
            return Err(Error::InvalidUrl {
                url: redact_str(&visible),
                reason: "control character in the location".into(),
            });
        }
        if !location.contains("://") {
            return Ok(Source::File(PathBuf::from(location)));
        }
        if location
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("s3://"))
        {
            return crate::s3::S3Location::parse(location).map(Source::S3);
        }
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact_str(location),
            reason,
        };
        let url = Url::parse(location).map_err(|e| invalid(e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("no host".into()));
                }
                Ok(Source::Http(url))
            }
            "file" => url
                .to_file_path()
                .map(Source::File)
                .map_err(|()| invalid("not a local absolute path".into())),
            other => Err(invalid(format!("unsupported scheme {other:?}"))),
        }
    }

    /// The location with any user name, password and query value hidden,
    /// safe to log or show.
    pub fn redacted(&self) -> String {
        match self {
            Source::Http(url) => redact_url(url),
            Source::File(path) => path.display().to_string(),
            Source::S3(location) => location.to_string(),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Http(url) => f.debug_tuple("Http").field(&redact_url(url)).finish(),
            Source::File(path) => f.debug_tuple("File").field(path).finish(),
            Source::S3(location) => f.debug_tuple("S3").field(location).finish(),
        }
    }
}

/// The origin (scheme, host, port) of an `http(s)://` URL, for
/// [`FetchOptions::origin_headers`].
///
/// ```
/// let origin = zipdeploy::fetch::parse_origin("https://mirror.example.net")?;
/// assert_eq!(origin, zipdeploy::fetch::parse_origin("https://mirror.example.net:443/a.zip")?);
/// # Ok::<(), zipdeploy::Error>(())
/// ```
pub fn parse_origin(url: &str) -> Result<url::Origin> {
    match Source::parse(url)? {
        Source::Http(url) => Ok(url.origin()),
        Source::File(_) | Source::S3(_) => Err(Error::InvalidUrl {
            url: redact_str(url),
            reason: "an origin is an http(s):// URL".into(),
        }),
    }
}

/// Hides credentials in a URL: `user:pass@` becomes `***@`, and every
/// query value becomes `***` (presigned URLs carry their signature there),
/// as does a query item without a name (a bare token) and the fragment's
/// values (`#access_token=…`).
pub(crate) fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_password(None);
        let _ = url.set_username("***");
    }
    if let Some(query) = url.query().map(redact_values) {
        url.set_query(Some(&query));
    }
    if let Some(fragment) = url.fragment().map(redact_values) {
        url.set_fragment(Some(&fragment));
    }
    url.to_string()
}

/// `a=1&b` → `a=***&***`: the names of `name=value` items are kept.
fn redact_values(items: &str) -> String {
    items
        .split('&')
        .map(|item| match item.split_once('=') {
            Some((name, _)) => format!("{name}=***"),
            None if item.is_empty() => String::new(),
            None => "***".to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Redacts a location that may not even parse: drops everything between
/// `://` and the last `@` of the authority, and hides the values of the
/// query and the fragment as [`redact_url`] does.
pub(crate) fn redact_str(location: &str) -> String {
    if let Ok(url) = Url::parse(location) {
        return redact_url(&url);
    }
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_string(),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(redact_values(fragment))),
        None => (rest.as_str(), None),
    };
    let mut shown = match rest.split_once('?') {
        Some((path, query)) => format!("{scheme}://{path}?{}", redact_values(query)),
        None => format!("{scheme}://{rest}"),
    };
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(&fragment);
    }
    shown
}

/// Removes any credential of `url` from a message produced by another crate.
pub(crate) fn scrub(message: &str, url: &Url) -> String {
    let mut out = message.to_string();
    if let Some(password) = url.password().filter(|p| !p.is_empty()) {
        out = out.replace(password, "***");
    }
    if url.username().len() >= 3 {
        out = out.replace(url.username(), "***");
    }
    if let Some(query) = url.query().filter(|q| !q.is_empty()) {
        out = out.replace(query, "***");
    }
    for (_, value) in url.query_pairs() {
        if value.len() >= 4 {
            out = out.replace(value.as_ref(), "***");
        }
    }
    out
}

/// Network behaviour of the fetch stage. The defaults suit a container start.
#[derive(Clone)]
pub struct FetchOptions {
    /// Time allowed to establish a connection (TCP + TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// Longest wait for any bytes once connected. Default 30 s.
    pub stall_timeout: Duration,
    /// Low-speed rule (curl's `--speed-limit`): a transfer that averages
    /// fewer bytes per second than this over [`FetchOptions::speed_time`]
    /// fails with a (retried) [`Error::Timeout`]; 0 disables it. Default
    /// 1024, so a server trickling a byte now and then cannot hold a deploy
    /// forever.
    pub speed_limit: u64,
    /// The window of the low-speed rule (curl's `--speed-time`). Default 30 s.
    pub speed_time: Duration,
    /// Deadline for the whole fetch, retries included. Default none.
    pub timeout: Option<Duration>,
    /// Retries after the first attempt on transient failures. Default 3.
    pub retries: u32,
    /// First backoff delay; doubles each retry, plus up to 50% jitter,
    /// at most 30 s. Default 250 ms.
    pub backoff: Duration,
    /// Most redirects followed. Default 5.
    pub max_redirects: u32,
    /// Largest package accepted, in bytes. Default 4 GiB.
    pub max_size: u64,
    /// Most connections one download uses. A download starts on one; when
    /// the server serves byte ranges of the package under a strong
    /// validator and that connection turns out to be the bottleneck (a
    /// server or CDN capping each connection), the rest is fetched in
    /// parts over up to this many connections at once, still hashed and
    /// extracted in order. 1 keeps a single connection. Default 8.
    pub connections: u32,
    /// Extra request headers, e.g. `("PRIVATE-TOKEN", "…")`, sent only to
    /// the origin (scheme, host, port) of the URL fetched: not to another
    /// origin a redirect names. A [`crate::Deploy`] binds them to the
    /// package URL's origin, so mirrors and sidecars elsewhere do not get
    /// them either.
    pub headers: Vec<(String, String)>,
    /// Request headers for other origins, e.g. a mirror's own token: each is
    /// sent only to requests (redirect hops included) on its origin. See
    /// [`crate::Deploy::header_for`].
    pub origin_headers: Vec<(url::Origin, String, String)>,
    /// Extra trusted root certificates (PEM), for servers behind a private
    /// CA or a TLS-intercepting proxy, trusted in addition to the host's
    /// store: `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the system's
    /// CA bundle, else (none on the system) Mozilla's roots built in — those
    /// only when no certificate is given here.
    pub root_certs_pem: Vec<Vec<u8>>,
    /// Called with each retry and each redirect followed, for a verbose
    /// log (curl `-v`). Default none.
    pub on_notice: Option<NoticeFn>,
    /// The proxies to go through, chosen per request URL with curl's rules.
    /// Default: [`ProxyConfig::from_env`], read when the options are
    /// created.
    pub proxy: ProxyConfig,
    /// How `s3://` locations are reached and signed (endpoint, addressing,
    /// region, credentials). Read only for `s3://` locations.
    pub s3: crate::s3::S3Options,
    /// The netrc file whose credentials `http(s)://` requests get, each for
    /// its own host (see [`crate::netrc`]). Default:
    /// [`NetrcFile::from_env`] (`NETRC`, else `$HOME/.netrc`), read when
    /// the options are created.
    pub netrc: NetrcFile,
}

/// Header values are secrets: shown as `***`.
impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let origin_headers: Vec<String> = self
            .origin_headers
            .iter()
            .map(|(origin, name, _)| format!("{}: {name}", origin.ascii_serialization()))
            .collect();
        f.debug_struct("FetchOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("speed_limit", &self.speed_limit)
            .field("speed_time", &self.speed_time)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_redirects", &self.max_redirects)
            .field("max_size", &self.max_size)
            .field("connections", &self.connections)
            .field("header_names", &headers)
            .field("origin_header_names", &origin_headers)
            .field("root_certs_pem", &self.root_certs_pem.len())
            .field("on_notice", &self.on_notice.is_some())
            .field("proxy", &self.proxy)
            .field("s3", &self.s3)
            .field("netrc", &self.netrc)
            .finish()
    }
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            speed_limit: 1024,
            speed_time: Duration::from_secs(30),
            timeout: None,
            retries: 3,
            backoff: Duration::from_millis(250),
            max_redirects: 5,
            max_size: 4 << 30,
            connections: 8,
            headers: Vec::new(),
            origin_headers: Vec::new(),
            root_certs_pem: Vec::new(),
            on_notice: None,
            proxy: ProxyConfig::from_env(),
            s3: crate::s3::S3Options::default(),
            netrc: NetrcFile::from_env(),
        }
    }
}

/// What the fetch stage produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fetched {
    /// SHA-256 of the whole package.
    pub digest: Sha256Digest,
    /// Size of the package in bytes.
    pub bytes: u64,
    /// Attempts made (1 when nothing was retried).
    pub attempts: u32,
    /// Attempts that resumed a partial download with `Range`.
    pub resumed: u32,
}

/// Fetches `source` into a new file at `path`, hashing it on the way.
///
/// `path` is created (truncated if present). On error it may hold a partial
/// download; the caller removes it.
///
/// ```no_run
/// use zipdeploy::fetch::{fetch_to_file, FetchOptions};
/// use zipdeploy::Source;
/// let source = Source::parse("https://example.com/app.zip")?;
/// let fetched = fetch_to_file(&source, "/tmp/app.zip".as_ref(), &FetchOptions::default(), None)?;
/// println!("{} bytes, sha256 {}", fetched.bytes, fetched.digest);
/// # Ok::<(), zipdeploy::Error>(())
/// ```
pub fn fetch_to_file(
    source: &Source,
    path: &Path,
    options: &FetchOptions,
    progress: Option<&mut ProgressFn<'_>>,
) -> Result<Fetched> {
    let file = open_download(path)?;
    match fetch_observed(
        source,
        &file,
        path,
        options,
        progress,
        None,
        None,
        Conditions::default(),
    )? {
        Outcome::Fetched { fetched, .. } => Ok(fetched),
        // Not asked for: no validators were sent.
        Outcome::NotModified => unreachable!("304 without a conditional request"),
    }
}

/// The validators of a response (RFC 9110 §8.8), which make conditional and
/// resumed requests safe: the same validator, the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    /// The `ETag`, weak or strong.
    pub(crate) etag: Option<String>,
    /// The `Last-Modified` date.
    pub(crate) last_modified: Option<String>,
}

impl Validators {
    /// A validator kept in a file: a value that a header may carry.
    fn usable(value: String) -> Option<String> {
        let value = value.trim().to_string();
        let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
        (printable && !value.is_empty() && value.len() <= 512).then_some(value)
    }

    /// Rebuilds validators from kept values (unusable ones are dropped).
    pub(crate) fn new(etag: Option<String>, last_modified: Option<String>) -> Validators {
        Validators {
            etag: etag.and_then(Validators::usable),
            last_modified: last_modified.and_then(Validators::usable),
        }
    }

    /// The validator for `If-Range`, which must be strong: the `ETag` unless
    /// it is weak, else `Last-Modified`.
    pub(crate) fn for_range(&self) -> Option<String> {
        self.etag
            .clone()
            .filter(|e| !e.starts_with("W/"))
            .or_else(|| self.last_modified.clone())
    }

    /// The validators of an `If-Range` value: an entity tag is quoted.
    pub(crate) fn from_range(value: &str) -> Validators {
        if value.starts_with('"') {
            Validators::new(Some(value.into()), None)
        } else {
            Validators::new(None, Some(value.into()))
        }
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }

    /// Whether these validators include `validator` (so the response is of
    /// the version it names).
    pub(crate) fn names(&self, validator: &str) -> bool {
        self.etag.as_deref() == Some(validator) || self.last_modified.as_deref() == Some(validator)
    }

    /// Whether a response with these validators may continue bytes served
    /// under `validator`: it names no validator, or that one. (A server
    /// that ignores `If-Range` would otherwise splice two versions.)
    fn continues(&self, validator: &str) -> bool {
        self.is_empty() || self.names(validator)
    }

    /// `If-None-Match` / `If-Modified-Since` for a conditional request.
    fn conditional_headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some(etag) = &self.etag {
            headers.push(("If-None-Match".to_string(), etag.clone()));
        }
        if let Some(date) = &self.last_modified {
            headers.push(("If-Modified-Since".to_string(), date.clone()));
        }
        headers
    }
}

/// What a fetch may build on: the package installed, and a partial download
/// an earlier run left.
#[derive(Default)]
pub(crate) struct Conditions<'c> {
    /// The validators of the package installed from this location: sent as
    /// `If-None-Match` / `If-Modified-Since`, and a `304` ends the fetch
    /// with [`Outcome::NotModified`].
    pub(crate) unless: Option<&'c Validators>,
    /// The download file already holds bytes of this location from an
    /// earlier run, served under this (strong) validator: they are re-hashed
    /// (and shown to the tap and the growth) and the rest is requested with
    /// `Range` + `If-Range`; a server that no longer has those bytes answers
    /// with the whole package, and the file starts over.
    pub(crate) resume: Option<String>,
    /// Told, before the first body byte, the validators of each response
    /// that starts the body from byte 0 (`None` when the server's response
    /// cannot be resumed: no strong validator or no `Accept-Ranges`), so
    /// that the caller can describe the bytes that follow. While a download
    /// is spread over several connections, bytes land beyond the contiguous
    /// prefix: it is told the validators with the length of that prefix
    /// (`Some(upto)`) before, and again as the prefix grows (about once a
    /// [`DESCRIBE_EVERY`]), so that a download killed then still resumes
    /// from there; and with `None` once the file has been cut back to it.
    pub(crate) on_start: Option<&'c mut OnStart<'c>>,
}

/// See [`Conditions::on_start`]: the validators the file's bytes were
/// served under (`None`: it cannot be resumed), and how many of its first
/// bytes are the package's (`None`: all of them).
pub(crate) type OnStart<'c> = dyn FnMut(Option<&Validators>, Option<u64>) + 'c;

/// How often the contiguous prefix of a spread download is described again
/// as it grows: what a `kill -9` can cost the next run to fetch again.
const DESCRIBE_EVERY: Duration = Duration::from_secs(1);

/// How a fetch ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The package is in the file.
    Fetched {
        fetched: Fetched,
        /// The validators it was served with (none for a local file).
        validators: Validators,
        /// Bytes of it that an earlier run had downloaded.
        reused: u64,
    },
    /// The server answered `304 Not Modified`: the file is untouched.
    NotModified,
}

/// [`fetch_to_file`] into the open file `download` (at `path`, named in
/// errors), telling `growth` how far the file has been written so that an
/// extractor can read it while it grows, and `tap` every byte. The caller
/// keeps `download` to extract from: the bytes it reads are the bytes hashed.
/// `conditions` (HTTP and S3 only) make the request conditional, or resume
/// the bytes the file already holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch_observed(
    source: &Source,
    download: &File,
    path: &Path,
    options: &FetchOptions,
    mut progress: Option<&mut ProgressFn<'_>>,
    growth: Option<&Growth>,
    tap: Option<&mut dyn Tap>,
    conditions: Conditions<'_>,
) -> Result<Outcome> {
    let resume = match source {
        Source::File(_) => None,
        Source::Http(_) | Source::S3(_) => conditions.resume.clone(),
    };
    let file = match resume {
        Some(_) => own_handle(download, path)?,
        None => empty_download(download, path)?,
    };
    let mut out = HashingWriter::new(DownloadFile {
        file,
        written: 0,
        restarted: false,
        growth,
        tap,
    });
    let mut reused = 0;
    let mut state = ResumeState::default();
    if let Some(validator) = resume {
        reused = rehash_existing(&mut out, path, options.max_size, &mut progress)?;
        state.validators = Validators::from_range(&validator);
        state.validator = Some(validator);
        state.ranges = true;
    }
    let attempts_resumed = match source {
        Source::File(local) => {
            let (mut input, meta) = open_local(local)?;
            let len = meta.len();
            let read_err = |e: io::Error| Error::io("read", local)(e);
            pump(
                &mut input,
                &mut out,
                path,
                Some(len),
                options.max_size,
                &mut progress,
                read_err,
            )?;
            Ended::Body(1, 0, Validators::default())
        }
        Source::Http(url) => http_fetch(
            url,
            None,
            &mut out,
            path,
            options,
            &mut progress,
            state,
            conditions,
        )?,
        Source::S3(location) => {
            let (url, signer) =
                crate::s3::prepare(location, &options.s3, &options.proxy, &mut || {
                    report(&mut progress, Progress::bytes(Stage::Fetch, reused, None))
                })?;
            http_fetch(
                &url,
                Some(&signer),
                &mut out,
                path,
                options,
                &mut progress,
                state,
                conditions,
            )?
        }
    };
    let (attempts, resumed, validators) = match attempts_resumed {
        Ended::NotModified => return Ok(Outcome::NotModified),
        Ended::Body(attempts, resumed, validators) => (attempts, resumed, validators),
    };
    let bytes = out.written();
    let (digest, file) = out.finish();
    Ok(Outcome::Fetched {
        fetched: Fetched {
            digest,
            bytes,
            attempts,
            resumed,
        },
        validators,
        // Bytes an earlier run left count only if they were not discarded.
        reused: if file.restarted { 0 } else { reused },
    })
}

/// Hashes the bytes the download file already holds (from an earlier run),
/// showing them to the tap and the growth as if just written, and leaves
/// the file positioned after them. Returns how many there were.
fn rehash_existing(
    out: &mut HashingWriter<DownloadFile<'_, '_>>,
    path: &Path,
    max: u64,
    progress: &mut Option<&mut ProgressFn<'_>>,
) -> Result<u64> {
    let mut input = out
        .get_mut()
        .file
        .try_clone()
        .map_err(Error::io("open", path))?;
    let len = input.metadata().map_err(Error::io("stat", path))?.len();
    input
        .seek(SeekFrom::Start(0))
        .map_err(Error::io("seek", path))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = len.min(max);
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path)(e)),
        };
        out.absorb(&buf[..n]);
        out.get_mut().adopt(&buf[..n]);
        left -= n as u64;
        report(progress, Progress::bytes(Stage::Fetch, out.written(), None))?;
    }
    let have = out.written();
    // Anything beyond what was hashed (over the size limit) goes.
    let file = &mut out.get_mut().file;
    file.set_len(have).map_err(Error::io("truncate", path))?;
    file.seek(SeekFrom::Start(have))
        .map_err(Error::io("seek", path))?;
    Ok(have)
}

/// Hashes a local package in place (no copy), enforcing the size limit.
pub fn hash_local(
    path: &Path,
    options: &FetchOptions,
    progress: Option<&mut ProgressFn<'_>>,
) -> Result<Fetched> {
    let (file, _) = open_local(path)?;
    hash_local_observed(&file, path, options, progress, None)
}

/// Hashes the open local package `file` (at `path`, named in errors) from
/// its start, showing `tap` every byte. The pipeline extracts this same
/// handle afterwards, so a file renamed over `path` meanwhile is never read.
pub(crate) fn hash_local_observed(
    file: &File,
    path: &Path,
    options: &FetchOptions,
    mut progress: Option<&mut ProgressFn<'_>>,
    tap: Option<&mut dyn Tap>,
) -> Result<Fetched> {
    let len = file
        .metadata()
        .map_err(Error::io("stat package", path))?
        .len();
    let mut input = file;
    input
        .seek(SeekFrom::Start(0))
        .map_err(Error::io("read", path))?;
    let mut out = HashingWriter::new(TapSink(tap));
    pump(
        &mut input,
        &mut out,
        path,
        Some(len),
        options.max_size,
        &mut progress,
        |e| Error::io("read", path)(e),
    )?;
    let bytes = out.written();
    Ok(Fetched {
        digest: out.finish().0,
        bytes,
        attempts: 1,
        resumed: 0,
    })
}

/// Hashes the open local package `file` (at `path`, named in errors) from
/// its start on the calling thread, reading at offsets: extraction reads
/// the same handle meanwhile (see `pipeline::local`). Counts the bytes
/// hashed in `hashed`; `Ok(None)` when `stop` was set first.
pub(crate) fn hash_local_at(
    file: &File,
    path: &Path,
    max: u64,
    stop: &AtomicBool,
    hashed: &AtomicU64,
) -> Result<Option<Fetched>> {
    let mut state = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let n = match file.read_at(&mut buf, at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path)(e)),
        };
        at += n as u64;
        if at > max {
            return Err(Error::LimitExceeded {
                limit: Limit::DownloadSize,
                max,
                actual: at,
                entry: None,
            });
        }
        state.update(&buf[..n]);
        hashed.store(at, Ordering::Relaxed);
    }
    Ok(Some(Fetched {
        digest: Sha256Digest::of_state(state),
        bytes: at,
        attempts: 1,
        resumed: 0,
    }))
}

/// Opens (creating if need be) the file a download is written to, also
/// for reading: a download spread over several connections reads its parts
/// back to hash them.
fn open_download(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Error::io("create", path))
}

/// A handle of its own on the `download` file, to append through.
fn own_handle(download: &File, path: &Path) -> Result<File> {
    download.try_clone().map_err(Error::io("open", path))
}

/// A handle of its own on the `download` file, emptied, to write through.
///
/// Never with `O_TRUNC` on an existing file: ext4 then flushes the whole
/// file when it is closed (its `auto_da_alloc` safeguard for files rewritten
/// in place), which cost 80 ms per 400 MB package.
fn empty_download(download: &File, path: &Path) -> Result<File> {
    let mut file = download.try_clone().map_err(Error::io("open", path))?;
    let len = file.metadata().map_err(Error::io("stat", path))?.len();
    if len > 0 {
        file.set_len(0).map_err(Error::io("truncate", path))?;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(Error::io("seek", path))?;
    Ok(file)
}

/// Opens a local package, following a symlink once (a path a user gives may
/// well be one), without blocking on a FIFO; it must be a regular file.
pub(crate) fn open_local(path: &Path) -> Result<(File, std::fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(Error::io("open package", path))?;
    let meta = file.metadata().map_err(Error::io("stat package", path))?;
    if !meta.is_file() {
        return Err(Error::io("open package", path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((file, meta))
}

/// Whether anyone but this user and root can rewrite the local package with
/// metadata `meta` in place: it is group- or world-writable, or another user
/// owns it. An open handle keeps a renamed-over path from mattering, not an
/// in-place write, so the pipeline copies such a package into its private
/// state (hashing the copy) instead of hashing it where it is.
pub(crate) fn others_can_write(meta: &std::fs::Metadata) -> bool {
    let euid = rustix::process::geteuid().as_raw();
    meta.mode() & 0o022 != 0 || (meta.uid() != 0 && meta.uid() != euid)
}

/// Copies `input` into `out` (which hashes), enforcing `max` and reporting
/// progress. Read errors are mapped by `read_err`; write errors name
/// `out_path`.
fn pump<R: Read, W: Write>(
    input: &mut R,
    out: &mut HashingWriter<W>,
    out_path: &Path,
    total: Option<u64>,
    max: u64,
    progress: &mut Option<&mut ProgressFn<'_>>,
    read_err: impl Fn(io::Error) -> Error,
) -> Result<()> {
    if let Some(total) = total.filter(|t| *t > max) {
        return Err(Error::LimitExceeded {
            limit: Limit::DownloadSize,
            max,
            actual: total,
            entry: None,
        });
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        if out.written() + n as u64 > max {
            return Err(Error::LimitExceeded {
                limit: Limit::DownloadSize,
                max,
                actual: out.written() + n as u64,
                entry: None,
            });
        }
        out.write_all(&buf[..n])
            .map_err(Error::io("write", out_path))?;
        report(
            progress,
            Progress::bytes(Stage::Fetch, out.written(), total),
        )?;
    }
}

/// The file a download is written to; tells an observer its length and
/// shows a [`Tap`] its bytes.
struct DownloadFile<'a, 't> {
    file: File,
    written: u64,
    /// Whether the file was emptied to start over.
    restarted: bool,
    growth: Option<&'a Growth>,
    tap: Option<&'t mut dyn Tap>,
}

impl DownloadFile<'_, '_> {
    /// Counts `bytes` the file already holds as written: shown to the tap,
    /// and readable by the extractor at once.
    fn adopt(&mut self, bytes: &[u8]) {
        if let Some(tap) = self.tap.as_mut() {
            tap.update(bytes);
        }
        self.written += bytes.len() as u64;
        if let Some(g) = self.growth {
            g.advance(self.written);
        }
    }

    /// Reserves the disk blocks of the rest of a download of `total` bytes
    /// (see [`crate::prealloc`]), telling the growth so.
    fn reserve(&self, total: u64) {
        let rest = total.saturating_sub(self.written);
        if prealloc::reserve(&self.file, self.written, rest) {
            if let Some(g) = self.growth {
                g.reserved();
            }
        }
    }

    /// Empties the file for a download that starts over.
    fn restart(&mut self) -> io::Result<()> {
        if let Some(g) = self.growth {
            g.restarted();
        }
        if let Some(tap) = self.tap.as_mut() {
            tap.restart();
        }
        self.written = 0;
        self.restarted = true;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0)).map(drop)
    }
}

impl Write for DownloadFile<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(tap) = self.tap.as_mut() {
            tap.update(&buf[..n]);
        }
        self.written += n as u64;
        if let Some(g) = self.growth {
            g.advance(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What one HTTP attempt learnt that the next attempt needs.
#[derive(Default)]
struct ResumeState {
    /// Strong validator for `If-Range` (ETag, else Last-Modified).
    validator: Option<String>,
    /// The validators of the body being received.
    validators: Validators,
    /// Whether the server advertised `Accept-Ranges: bytes`.
    ranges: bool,
    /// Full length of the body, when known.
    total: Option<u64>,
    /// Delay the server asked for with `Retry-After`.
    retry_after: Option<Duration>,
}

/// How a fetch ended: attempts made, attempts that resumed, and the
/// validators of the body; or a `304`.
enum Ended {
    Body(u32, u32, Validators),
    NotModified,
}

/// Fetches `url`; `signer` signs the requests to an S3 endpoint. `state`
/// holds what is known of bytes already in `out` (an earlier run's).
#[allow(clippy::too_many_arguments)]
fn http_fetch(
    url: &Url,
    signer: Option<&crate::s3::Signer>,
    out: &mut HashingWriter<DownloadFile<'_, '_>>,
    path: &Path,
    options: &FetchOptions,
    progress: &mut Option<&mut ProgressFn<'_>>,
    mut state: ResumeState,
    mut conditions: Conditions<'_>,
) -> Result<Ended> {
    let requests = Requests::new(url, options);
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut attempts = 0;
    let mut resumed = 0;
    loop {
        attempts += 1;
        let resuming = out.written() > 0 && state.ranges && state.validator.is_some();
        if out.written() > 0 && !resuming {
            restart(out, path)?;
        }
        if resuming {
            resumed += 1;
        }
        let result = http_attempt(
            &requests,
            url,
            signer,
            out,
            path,
            options,
            deadline,
            &mut state,
            &mut conditions,
            progress,
        );
        let err = match result {
            Ok(Attempt::Body) => {
                return Ok(Ended::Body(attempts, resumed, state.validators));
            }
            Ok(Attempt::NotModified) => return Ok(Ended::NotModified),
            Err(e) => e,
        };
        let now = Instant::now();
        if !err.is_transient() || attempts > options.retries || deadline.is_some_and(|d| now >= d) {
            return Err(err);
        }
        let mut delay = state
            .retry_after
            .take()
            .unwrap_or_else(|| backoff(options, attempts));
        if let Some(d) = deadline {
            delay = delay.min(d.saturating_duration_since(now));
        }
        notify(&options.on_notice, || Notice::Retry {
            url: redact_url(url),
            attempt: attempts,
            retries: options.retries,
            delay,
            error: err.to_string(),
        });
        let still = Progress::bytes(Stage::Fetch, out.written(), state.total);
        http::pause(delay, &mut || report(progress, still))?;
    }
}

/// Exponential backoff with jitter for retry number `attempt` (1-based).
pub(crate) fn backoff(options: &FetchOptions, attempt: u32) -> Duration {
    let base = options
        .backoff
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(30));
    // Jitter from the std hasher's random keys: no RNG dependency needed.
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(Instant::now());
    base + base.mul_f64((random % 1000) as f64 / 2000.0)
}

fn restart(out: &mut HashingWriter<DownloadFile<'_, '_>>, path: &Path) -> Result<()> {
    out.reset();
    out.get_mut().restart().map_err(Error::io("truncate", path))
}

/// Builds the configuration of each request of a fetch, redirect hops
/// included ([`http::open`] asks once per hop): the proxy is chosen for the
/// hop's URL, and the TLS roots are loaded on the first hop that needs them
/// (an `https://` URL or an `https://` proxy), then reused.
pub(crate) struct Requests<'o> {
    options: &'o FetchOptions,
    /// Whether the URL fetched is https: no hop may then be plain http.
    https_only: bool,
    roots: std::cell::OnceCell<ureq::tls::RootCerts>,
}

/// One hop's configuration, and the proxy it goes through (as given, so
/// that messages can be scrubbed of its credentials).
pub(crate) struct Hop<'o> {
    pub(crate) config: ureq::config::Config,
    pub(crate) proxy: Option<&'o str>,
}

impl<'o> Requests<'o> {
    pub(crate) fn new(url: &Url, options: &'o FetchOptions) -> Requests<'o> {
        Requests {
            options,
            https_only: url.scheme() == "https",
            roots: std::cell::OnceCell::new(),
        }
    }

    /// The configuration of a request for `hop`.
    pub(crate) fn hop(&self, hop: &Url) -> Result<Hop<'o>> {
        let options = self.options;
        let spec = options.proxy.proxy_for(hop);
        let proxy = spec.map(proxy::ureq_proxy).transpose()?;
        let tls_to_proxy = proxy
            .as_ref()
            .is_some_and(|p| p.protocol() == ureq::ProxyProtocol::Https);
        let mut builder = ureq::Agent::config_builder();
        if hop.scheme() == "https" || tls_to_proxy {
            let roots = match self.roots.get() {
                Some(roots) => roots.clone(),
                None => {
                    let roots = trust::root_certs(&options.root_certs_pem)?;
                    self.roots.get_or_init(|| roots).clone()
                }
            };
            let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
            builder = builder.tls_config(tls);
        }
        let config = builder
            // Chosen here for this hop, never ureq's own reading of the
            // environment.
            .proxy(proxy)
            .http_status_as_error(false)
            .https_only(self.https_only)
            .max_redirects(0)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_recv_response(Some(options.stall_timeout))
            .timeout_per_read(Some(options.stall_timeout))
            .accept_encoding("identity")
            // Large reads from the socket: fewer syscalls per package byte.
            .input_buffer_size(512 * 1024)
            .user_agent(concat!("zipdeploy/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Hop {
            config,
            proxy: spec,
        })
    }
}

/// What one attempt got.
enum Attempt {
    /// The (rest of the) body, received.
    Body,
    /// `304 Not Modified` to a conditional request.
    NotModified,
}

#[allow(clippy::too_many_arguments)]
fn http_attempt(
    requests: &Requests<'_>,
    url: &Url,
    signer: Option<&crate::s3::Signer>,
    out: &mut HashingWriter<DownloadFile<'_, '_>>,
    path: &Path,
    options: &FetchOptions,
    deadline: Option<Instant>,
    state: &mut ResumeState,
    conditions: &mut Conditions<'_>,
    progress: &mut Option<&mut ProgressFn<'_>>,
) -> Result<Attempt> {
    let shown = redact_url(url);
    let have = out.written();
    let mut extra = conditions
        .unless
        .map(Validators::conditional_headers)
        .unwrap_or_default();
    if have > 0 {
        extra.push(("Range".to_string(), format!("bytes={have}-")));
        if let Some(v) = &state.validator {
            extra.push(("If-Range".to_string(), v.clone()));
        }
    }
    let waiting = Progress::bytes(Stage::Fetch, have, state.total);
    let (exchange, head) = http::open(
        requests,
        url,
        signer,
        options,
        &extra,
        deadline,
        http::CHUNK,
        &mut || report(progress, waiting),
    )?;
    let status = head.status.as_u16();
    let header = |name: &str| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    state.retry_after = header("retry-after")
        .and_then(|v| crate::retry_after::delay(&v, std::time::SystemTime::now()));
    // A body sent in chunks is framed by them, whatever Content-Length
    // beside them says (RFC 9112 §6.3): ureq reads it so, and so is it counted.
    let length = match header("transfer-encoding") {
        Some(_) => None,
        None => header("content-length").and_then(|v| v.trim().parse::<u64>().ok()),
    };
    let validators = Validators::new(header("etag"), header("last-modified"));
    match status {
        304 if conditions.unless.is_some() => return Ok(Attempt::NotModified),
        200 => {
            if have > 0 {
                restart(out, path)?;
            }
            state.total = length;
            state.ranges = header("accept-ranges").is_some_and(|v| v.contains("bytes"));
            state.validator = validators.for_range();
            state.validators = validators;
            if let Some(on_start) = conditions.on_start.as_mut() {
                let resumable = state.ranges && state.validator.is_some();
                on_start(resumable.then_some(&state.validators), None);
            }
        }
        416 if have > 0 => {
            // Nothing left to send: the bytes kept are the whole package
            // (If-Range held, or the server would have sent it all).
            let range = header("content-range").unwrap_or_default();
            let same = state
                .validator
                .as_deref()
                .is_some_and(|v| validators.continues(v));
            if same && parse_content_range_total(&range) == Some(have) {
                return Ok(Attempt::Body);
            }
            state.ranges = false;
            return Err(Error::Network {
                url: shown,
                reason: format!("server refused to resume at byte {have} ({range:?})"),
                kind: NetworkKind::Protocol,
            });
        }
        206 if have > 0 => {
            if !state
                .validator
                .as_deref()
                .is_some_and(|v| validators.continues(v))
            {
                // If-Range ignored: these bytes may be of another version.
                state.ranges = false;
                return Err(Error::Network {
                    url: shown,
                    reason: "server resumed another version of the package".into(),
                    kind: NetworkKind::Protocol,
                });
            }
            if !validators.is_empty() {
                state.validators = validators;
            }
            let range = header("content-range").unwrap_or_default();
            let start = parse_content_range_start(&range);
            if start != Some(have) {
                // The server resumed somewhere else: start over next attempt.
                state.ranges = false;
                return Err(Error::Network {
                    url: shown,
                    reason: format!("server resumed at the wrong offset ({range:?})"),
                    kind: NetworkKind::Protocol,
                });
            }
            if let Some((_, last, total)) = ranged::parse_content_range(&range) {
                // The range may end short of the package (servers and CDNs
                // may cap it): the package's length is the range's total,
                // so that the body ending there is not taken for the whole.
                let fits = last < total
                    && state.total.is_none_or(|t| t == total)
                    && length.is_none_or(|l| Some(l) == (last + 1).checked_sub(have));
                if !fits {
                    state.ranges = false;
                    return Err(Error::Network {
                        url: shown,
                        reason: format!(
                            "server resumed with a range that does not fit ({range:?}, \
                             {} bytes)",
                            length.map_or("unknown".into(), |l| l.to_string())
                        ),
                        kind: NetworkKind::Protocol,
                    });
                }
                state.total = Some(total);
            }
        }
        _ => {
            return Err(Error::HttpStatus { url: shown, status });
        }
    }
    // Saturating: the length is the server's word, and a limit refuses it.
    let expected_total = state
        .total
        .or(length.map(|l| l.saturating_add(out.written())));
    if let Some(g) = out.get_mut().growth {
        g.expect(expected_total);
    }
    let received_before = out.written();
    let read_err = |e: io::Error| {
        body_read_error(
            e,
            url,
            &shown,
            options,
            &format!("after {received_before} bytes"),
        )
    };
    // The rest may come over more connections when the server serves
    // ranges of this version and its length is known.
    let spreading = match (expected_total, state.validator.as_deref()) {
        (Some(total), Some(validator)) if state.ranges && options.connections > 1 => {
            Some(Spreading {
                target: ranged::Target {
                    url,
                    signer,
                    options,
                    validator,
                    total,
                    deadline,
                    path,
                },
                resumable: Resumable {
                    validators: &state.validators,
                    describe: conditions.on_start.as_deref_mut(),
                    described: None,
                    ranges: &mut state.ranges,
                },
            })
        }
        _ => None,
    };
    let result = receive_body(
        exchange,
        out,
        path,
        expected_total,
        options,
        &shown,
        progress,
        read_err,
        spreading,
    );
    match (result, expected_total) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(expected)) if out.written() != expected => Err(Error::Truncated {
            url: shown,
            received: out.written(),
            expected,
        }),
        (Ok(()), _) => Ok(Attempt::Body),
    }
}

/// What a download may spread over more connections with (see
/// [`crate::ranged`]).
struct Spreading<'s, 'd> {
    target: ranged::Target<'s>,
    resumable: Resumable<'s, 'd>,
}

/// What makes the download file resumable, kept true while a download is
/// spread.
struct Resumable<'s, 'd> {
    /// The validators of the bytes being received.
    validators: &'s Validators,
    /// [`Conditions::on_start`]: told the length of the contiguous prefix
    /// before any byte lands beyond it, and as it grows (should the process
    /// die, the next run resumes from there), and that the whole file is
    /// the prefix once it is again.
    describe: Option<&'s mut OnStart<'d>>,
    /// When the prefix was last described, while spread.
    described: Option<Instant>,
    /// Cleared when the server would not serve a range of this version:
    /// the next attempt starts over.
    ranges: &'s mut bool,
}

impl Resumable<'_, '_> {
    /// Tells that the file is a contiguous prefix of the package.
    fn describe_whole(&mut self) {
        self.described = None;
        if let Some(describe) = self.describe.as_mut() {
            describe(Some(self.validators), None);
        }
    }

    /// Tells that the file's first `upto` bytes are the package's (bytes
    /// beyond may be of later parts, or none yet): the first time, then at
    /// most once a [`DESCRIBE_EVERY`].
    fn describe_upto(&mut self, upto: u64) {
        if self
            .described
            .is_some_and(|at| at.elapsed() < DESCRIBE_EVERY)
        {
            return;
        }
        self.described = Some(Instant::now());
        if let Some(describe) = self.describe.as_mut() {
            describe(Some(self.validators), Some(upto));
        }
    }
}

/// Writes the body of `exchange` into `out` (which hashes), enforcing the
/// size limit and the low-speed rule, and reporting progress: after each
/// chunk, and every [`http::TICK`] while none comes (a heartbeat with
/// unchanged counts, so the callback can cancel a stalled download). With
/// `spreading`, the rest may come over more connections; the file is a
/// contiguous prefix again when this returns.
#[allow(clippy::too_many_arguments)]
fn receive_body(
    exchange: http::Exchange,
    out: &mut HashingWriter<DownloadFile<'_, '_>>,
    out_path: &Path,
    total: Option<u64>,
    options: &FetchOptions,
    shown: &str,
    progress: &mut Option<&mut ProgressFn<'_>>,
    read_err: impl Fn(io::Error) -> Error,
    spreading: Option<Spreading<'_, '_>>,
) -> Result<()> {
    let max = options.max_size;
    if let Some(total) = total.filter(|t| *t > max) {
        return Err(Error::LimitExceeded {
            limit: Limit::DownloadSize,
            max,
            actual: total,
            entry: None,
        });
    }
    if let Some(total) = total {
        out.get_mut().reserve(total);
    }
    let (target, mut resumable) = match spreading {
        Some(Spreading { target, resumable }) => (Some(target), Some(resumable)),
        None => (None, None),
    };
    let spread = OnceLock::new();
    let result = std::thread::scope(|scope| {
        // However this ends, the helpers stop before they are joined.
        let _stop = StopHelpers(&spread);
        let speed = http::LowSpeed::new(options, out.written());
        let mut body = Body {
            out: &mut *out,
            out_path,
            total,
            options,
            shown,
            progress,
            speed,
        };
        let spreading = target.as_ref().zip(resumable.as_mut());
        body.receive(exchange, &read_err, spreading, &spread, scope)
    });
    if spread.get().is_none() {
        return result;
    }
    // Helpers wrote beyond the prefix: cut back to it, then it may be
    // resumed again.
    let have = out.written();
    let file = &mut out.get_mut().file;
    let settled = file
        .set_len(have)
        .and_then(|()| file.seek(SeekFrom::Start(have)).map(drop))
        .map_err(Error::io("truncate", out_path));
    if let (Ok(()), Some(resumable)) = (&settled, resumable.as_mut()) {
        resumable.describe_whole();
    }
    result.and(settled)
}

/// What the first connection does at the end of its part.
enum AtSplit {
    /// The next part is coming from its helper, and so is the rest: it
    /// takes their bytes in and stops.
    HandOver,
    /// It brings the next part itself, up to this end.
    TakeOn(u64),
    /// A part is not coming: it brings all the rest itself.
    Alone,
}

/// Stops the helpers of a spread download when dropped.
struct StopHelpers<'s>(&'s OnceLock<ranged::Spread>);

impl Drop for StopHelpers<'_> {
    fn drop(&mut self) {
        if let Some(spread) = self.0.get() {
            spread.stop();
        }
    }
}

/// Stops the helpers and waits for them (a [`http::TICK`] at most), so
/// that none writes to the file any more.
fn stop_and_join(spread: &ranged::Spread, helpers: &mut Vec<ScopedJoinHandle<'_, ()>>) {
    spread.stop();
    for helper in helpers.drain(..) {
        let _ = helper.join();
    }
}

/// The receiving end of a download: the file, the limits, the progress.
struct Body<'b, 'a, 't, 'p, 'q> {
    out: &'b mut HashingWriter<DownloadFile<'a, 't>>,
    out_path: &'b Path,
    total: Option<u64>,
    options: &'b FetchOptions,
    shown: &'b str,
    progress: &'b mut Option<&'p mut ProgressFn<'q>>,
    speed: http::LowSpeed,
}

impl<'b> Body<'b, '_, '_, '_, '_> {
    /// Bytes received on every connection.
    fn received(&self, spread: Option<&ranged::Spread>) -> u64 {
        let prefix = self.out.written();
        prefix + spread.map_or(0, |s| s.beyond(prefix))
    }

    /// The low-speed rule on this connection's bytes (the contiguous
    /// prefix it writes), and a progress report with `received` bytes
    /// (every connection's).
    fn heartbeat(&mut self, received: u64) -> Result<()> {
        self.speed.check(self.out.written(), self.shown)?;
        self.report(received)
    }

    /// A progress report with `received` bytes. While the helpers bring
    /// the rest, each applies the low-speed rule to its own connection, so
    /// that a slow part is retried alone.
    fn report(&mut self, received: u64) -> Result<()> {
        report(
            self.progress,
            Progress::bytes(Stage::Fetch, received, self.total),
        )
    }

    /// `error`, from this connection's body read: a broken connection
    /// before the length announced cut the body short. (A part's error is
    /// not this connection's, and keeps its own cause.)
    fn cut_short(&self, error: Error) -> Error {
        let received = self.out.written();
        match (error, self.total) {
            (Error::Network { .. }, Some(expected)) if received < expected => Error::Truncated {
                url: self.shown.to_string(),
                received,
                expected,
            },
            (error, _) => error,
        }
    }

    /// Receives the body of `exchange`. With `spreading`, hands the rest to
    /// helpers on more connections when that pays, stops at the end of its
    /// own part and takes the helpers' parts in, in order.
    fn receive<'scope, 'env>(
        &mut self,
        mut exchange: http::Exchange,
        read_err: &impl Fn(io::Error) -> Error,
        mut spreading: Option<(&'env ranged::Target<'env>, &mut Resumable<'_, '_>)>,
        spread_cell: &'env OnceLock<ranged::Spread>,
        scope: &'scope std::thread::Scope<'scope, 'env>,
    ) -> Result<()> {
        let max = self.options.max_size;
        let mut planner = spreading
            .as_ref()
            .map(|_| ranged::Planner::new(self.options.connections, self.out.written()));
        // Where this connection stops while the rest is spread.
        let mut split: Option<u64> = None;
        // The helpers' part that begins there.
        let mut own = 0;
        // Whether this connection's response runs to the package's end (it
        // is not a part asked for again): it can go on into the next part.
        let mut whole = true;
        let mut helpers = Vec::new();
        // Times this connection's own part was asked for again.
        let mut again = 0;
        loop {
            let written = self.out.written();
            let spread = spread_cell.get().filter(|_| split.is_some());
            let received = self.received(spread);
            let asked = Instant::now();
            let event = exchange.next_body(&mut || self.heartbeat(received));
            if let Some(planner) = planner.as_mut() {
                planner.waited(asked.elapsed());
            }
            let (buffer, n) = match (event, split, spread, spreading.as_mut()) {
                (Ok(http::Event::Data(buffer, n)), ..) => (buffer, n),
                // Short of its own part's end while the helpers bring the
                // rest: this part alone is asked for again, from here.
                (stopped, Some(end), Some(spread), Some((target, resumable))) => {
                    let error = match stopped {
                        Ok(http::Event::ReadFailed(e)) => self.cut_short(read_err(e)),
                        Err(e) => e,
                        Ok(_) => Error::Truncated {
                            url: self.shown.to_string(),
                            received: written,
                            expected: end,
                        },
                    };
                    exchange =
                        self.ask_own_part_again(target, spread, end, error, &mut again, resumable)?;
                    whole = false;
                    continue;
                }
                (Ok(http::Event::ReadFailed(e)), ..) => return Err(self.cut_short(read_err(e))),
                (Ok(_), ..) => return Ok(()),
                (Err(e), ..) => return Err(e),
            };
            if written + n as u64 > max {
                return Err(Error::LimitExceeded {
                    limit: Limit::DownloadSize,
                    max,
                    actual: written + n as u64,
                    entry: None,
                });
            }
            let spare = if split.is_none() {
                // All of it is this connection's (the usual case): the
                // buffer itself goes on to the hashing.
                self.out
                    .write_buffer(buffer, n)
                    .map_err(Error::io("write", self.out_path))?
            } else {
                let mut at = 0;
                while at < n {
                    let (Some(end), Some(spread)) = (split, spread) else {
                        self.out
                            .write_all(&buffer[at..n])
                            .map_err(Error::io("write", self.out_path))?;
                        break;
                    };
                    let keep = (n - at).min((end - self.out.written()) as usize);
                    self.out
                        .write_all(&buffer[at..at + keep])
                        .map_err(Error::io("write", self.out_path))?;
                    at += keep;
                    let next = if self.out.written() == end {
                        self.at_split(spread, &mut own, whole)?
                    } else if spread.any_declined() {
                        AtSplit::Alone
                    } else {
                        continue;
                    };
                    match next {
                        AtSplit::HandOver => {
                            // The rest comes from the helpers: this
                            // connection is done.
                            drop(exchange);
                            let resumable = spreading.map(|(_, resumable)| resumable);
                            return self.take_parts(spread, own, resumable);
                        }
                        AtSplit::TakeOn(next_end) => split = Some(next_end),
                        AtSplit::Alone => {
                            // A part is not coming (or the server put it
                            // off): this connection goes on alone (its
                            // low-speed window starts again: it may have
                            // waited for the part's answer).
                            stop_and_join(spread, &mut helpers);
                            split = None;
                            self.speed = http::LowSpeed::new(self.options, self.out.written());
                        }
                    }
                }
                Some(buffer)
            };
            if let Some(spare) = spare {
                exchange.recycle(spare);
            }
            if let (Some(_), Some((_, resumable))) = (spread_cell.get(), spreading.as_mut()) {
                // Spread (or alone again, with later parts' bytes beyond).
                resumable.describe_upto(self.out.written());
            }
            let received = self.received(spread_cell.get().filter(|_| split.is_some()));
            self.heartbeat(received)?;
            let plan = match (planner.as_ref(), self.total) {
                (Some(planner), Some(total)) if spread_cell.get().is_none() => {
                    planner.plan(self.out.written(), total)
                }
                _ => None,
            };
            if let (Some(plan), Some((target, resumable))) = (plan, spreading.as_mut()) {
                // Bytes are about to land beyond the prefix.
                resumable.describe_upto(self.out.written());
                split = Some(plan[0].1);
                self.spread(&plan, target, spread_cell, scope, &mut helpers);
            }
        }
    }

    /// This connection stopped with `error` short of `end`, the end of its
    /// own part, while helpers bring the rest: asks for `[written, end)`
    /// again alone, as a helper retries its part (after a backoff, within
    /// the retries and the deadline), rather than dropping what the helpers
    /// brought. Returns the exchange bringing those bytes, or the error
    /// that ends the attempt (the attempt then resumes from the prefix).
    fn ask_own_part_again(
        &mut self,
        target: &ranged::Target<'_>,
        spread: &ranged::Spread,
        end: u64,
        mut error: Error,
        again: &mut u32,
        resumable: &mut Resumable<'_, '_>,
    ) -> Result<http::Exchange> {
        let options = self.options;
        let mut asked_delay = None;
        loop {
            *again += 1;
            let now = Instant::now();
            let late = target.deadline.is_some_and(|d| now >= d);
            if !error.is_transient() || *again > options.retries || late || spread.any_failed() {
                return Err(error);
            }
            let mut delay: Duration = asked_delay
                .take()
                .unwrap_or_else(|| backoff(options, *again));
            if let Some(d) = target.deadline {
                delay = delay.min(d.saturating_duration_since(now));
            }
            notify(&options.on_notice, || Notice::Retry {
                url: self.shown.to_string(),
                attempt: *again,
                retries: options.retries,
                delay,
                error: error.to_string(),
            });
            let received = self.received(Some(spread));
            http::pause(delay, &mut || self.report(received))?;
            let written = self.out.written();
            let asked = ranged::ask(target, written, end, http::CHUNK, &mut || {
                self.report(received)
            });
            error = match asked {
                Ok(exchange) => {
                    self.speed = http::LowSpeed::new(options, written);
                    return Ok(exchange);
                }
                Err(ranged::Refusal::Refused(e)) => {
                    *resumable.ranges = false;
                    return Err(e);
                }
                Err(ranged::Refusal::Failed(e)) => e,
                Err(ranged::Refusal::Later(e, delay)) => {
                    asked_delay = Some(delay);
                    e
                }
            };
        }
    }

    /// Starts a helper for every part of `plan` but the first, writing
    /// through its own duplicate of the download's handle. A part that
    /// cannot have one (no file descriptor or thread left) fails, and this
    /// connection goes on alone.
    fn spread<'scope, 'env>(
        &mut self,
        plan: &[(u64, u64)],
        target: &'env ranged::Target<'env>,
        spread_cell: &'env OnceLock<ranged::Spread>,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        helpers: &mut Vec<ScopedJoinHandle<'scope, ()>>,
    ) {
        let spread = spread_cell.get_or_init(|| ranged::Spread::new(plan));
        for index in 0..spread.len() {
            let file = match self.out.get_mut().file.try_clone() {
                Ok(file) => file,
                Err(e) => {
                    spread.fail(index, Error::io("open", self.out_path)(e));
                    continue;
                }
            };
            let started = std::thread::Builder::new()
                .name("zipdeploy-range".into())
                .spawn_scoped(scope, move || {
                    ranged::fetch_part(target, spread, index, &file);
                });
            match started {
                Ok(helper) => helpers.push(helper),
                Err(e) => spread.fail(
                    index,
                    Error::Network {
                        url: self.shown.to_string(),
                        reason: format!("cannot start a network thread: {e}"),
                        kind: crate::NetworkKind::Other,
                    },
                ),
            }
        }
    }

    /// At the end of its part, `own` being the helpers' part that follows:
    /// waits (with heartbeats) until that part is answered, and says what
    /// this connection does next. A part whose helper has no answer within
    /// [`ranged::ANSWER_GRACE`] is taken on by this connection, when its
    /// response goes on (`whole`).
    fn at_split(
        &mut self,
        spread: &ranged::Spread,
        own: &mut usize,
        whole: bool,
    ) -> Result<AtSplit> {
        let reached = Instant::now();
        loop {
            if spread.any_declined() {
                return Ok(AtSplit::Alone);
            }
            match spread.answered(*own) {
                Some(true) => return Ok(AtSplit::HandOver),
                Some(false) => return Ok(AtSplit::Alone),
                None => {}
            }
            if whole && reached.elapsed() >= ranged::ANSWER_GRACE {
                if let Some(end) = spread.claim(*own) {
                    *own += 1;
                    return Ok(AtSplit::TakeOn(end));
                }
                // Answered meanwhile.
                continue;
            }
            spread.wait_answer(*own, http::TICK);
            let received = self.received(Some(spread));
            self.report(received)?;
        }
    }

    /// Takes the helpers' parts in from part `from`, in order, as they are
    /// written: each byte read back through the download's handle, then
    /// hashed, shown to the tap and the growth, as if this connection had
    /// received it.
    fn take_parts(
        &mut self,
        spread: &ranged::Spread,
        from: usize,
        mut resumable: Option<&mut Resumable<'_, '_>>,
    ) -> Result<()> {
        let mut buffer = vec![0u8; CHUNK];
        for index in from..spread.len() {
            loop {
                let (upto, complete) = match spread.progress(index) {
                    Ok(progress) => progress,
                    Err((error, refused)) => {
                        if let (true, Some(resumable)) = (refused, resumable) {
                            *resumable.ranges = false;
                        }
                        return Err(error);
                    }
                };
                let have = self.out.written();
                if upto > have {
                    let want = buffer
                        .len()
                        .min(usize::try_from(upto - have).unwrap_or(usize::MAX));
                    let file = &self.out.get_mut().file;
                    let n = file
                        .read_at(&mut buffer[..want], have)
                        .map_err(Error::io("read", self.out_path))?;
                    if n == 0 {
                        return Err(Error::io("read", self.out_path)(
                            io::ErrorKind::UnexpectedEof.into(),
                        ));
                    }
                    self.out.absorb(&buffer[..n]);
                    self.out.get_mut().adopt(&buffer[..n]);
                    if let Some(resumable) = resumable.as_deref_mut() {
                        resumable.describe_upto(self.out.written());
                    }
                } else if complete {
                    break;
                } else {
                    spread.wait_part(index, upto, http::TICK);
                }
                let received = self.received(Some(spread));
                self.report(received)?;
            }
        }
        Ok(())
    }
}

/// `bytes */200` (or `bytes 0-1/200`) → `Some(200)`.
fn parse_content_range_total(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes")?
        .rsplit('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// `bytes 100-199/200` → `Some(100)`.
fn parse_content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// The error for a response body whose read failed: a timeout by its type
/// (ureq's, or the socket's), else a broken connection. `at` says where in
/// the body, e.g. "after 1024 bytes".
pub(crate) fn body_read_error(
    e: io::Error,
    url: &Url,
    shown: &str,
    options: &FetchOptions,
    at: &str,
) -> Error {
    let reason = scrub(&e.to_string(), url);
    match ureq_timeout_of(&e) {
        Some(ureq::Timeout::Global) => Error::Timeout {
            url: shown.to_string(),
            what: timeout_words(ureq::Timeout::Global).into(),
            kind: TimeoutKind::Deadline,
        },
        Some(t) => Error::Timeout {
            url: shown.to_string(),
            what: format!("{} ({:?})", timeout_words(t), options.stall_timeout),
            kind: timeout_kind(t),
        },
        None if timed_out(&e) => Error::Timeout {
            url: shown.to_string(),
            what: format!("{reason} (stall timeout {:?})", options.stall_timeout),
            kind: TimeoutKind::Stall,
        },
        None => Error::Network {
            url: shown.to_string(),
            reason: format!("body read failed {at}: {reason}"),
            kind: NetworkKind::Broken,
        },
    }
}

/// Which of ureq's timeouts ended a body read, if one did: found by type,
/// through the I/O errors and ureq errors that wrap one another.
fn ureq_timeout_of(e: &io::Error) -> Option<ureq::Timeout> {
    let inner = e.get_ref()?;
    match inner.downcast_ref::<ureq::Error>() {
        Some(ureq::Error::Timeout(t)) => Some(*t),
        Some(ureq::Error::Io(io)) => ureq_timeout_of(io),
        Some(_) => None,
        None => ureq_timeout_of(inner.downcast_ref::<io::Error>()?),
    }
}

/// Whether `e`, or an I/O error it wraps, is the operating system's
/// "timed out".
fn timed_out(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::TimedOut {
        return true;
    }
    let Some(inner) = e.get_ref() else {
        return false;
    };
    match inner.downcast_ref::<ureq::Error>() {
        Some(ureq::Error::Io(io)) => timed_out(io),
        Some(_) => false,
        None => inner.downcast_ref::<io::Error>().is_some_and(timed_out),
    }
}

/// A ureq timeout as a [`TimeoutKind`].
fn timeout_kind(t: ureq::Timeout) -> TimeoutKind {
    match t {
        ureq::Timeout::Global => TimeoutKind::Deadline,
        ureq::Timeout::Resolve => TimeoutKind::Resolve,
        ureq::Timeout::Connect => TimeoutKind::Connect,
        ureq::Timeout::RecvResponse | ureq::Timeout::PerRead | ureq::Timeout::RecvBody => {
            TimeoutKind::Stall
        }
        _ => TimeoutKind::Other,
    }
}

/// Whether a TLS failure is the server's certificate being refused, told
/// by rustls's error type.
fn tls_kind(error: Option<&rustls::Error>) -> TlsKind {
    match error {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            TlsKind::Certificate
        }
        _ => TlsKind::Handshake,
    }
}

/// What kind of network failure an I/O error of a request is.
fn io_kind(e: &io::Error) -> NetworkKind {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused
        | K::NotConnected
        | K::AddrNotAvailable
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown => NetworkKind::Connect,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            NetworkKind::Broken
        }
        _ => NetworkKind::Other,
    }
}

/// A ureq timeout in the words of [`FetchOptions`] (ureq's own names, such
/// as "global", mean nothing to a user).
fn timeout_words(t: ureq::Timeout) -> &'static str {
    match t {
        ureq::Timeout::Global => "the overall deadline (timeout) passed",
        ureq::Timeout::Resolve => "the host name lookup took too long",
        ureq::Timeout::Connect => "no connection within the connect timeout",
        ureq::Timeout::RecvResponse => "no response within the stall timeout",
        ureq::Timeout::PerRead | ureq::Timeout::RecvBody => "no data within the stall timeout",
        _ => "the request could not be sent in time",
    }
}

pub(crate) fn map_ureq_error(error: ureq::Error, url: &Url) -> Error {
    let shown = redact_url(url);
    // ureq prefixes I/O errors with "io: ", a word about its internals.
    let reason = scrub(&error.to_string(), url)
        .trim_start_matches("io: ")
        .to_string();
    match error {
        ureq::Error::Timeout(t) => Error::Timeout {
            url: shown,
            what: timeout_words(t).into(),
            kind: timeout_kind(t),
        },
        ureq::Error::TooManyRedirects => Error::Redirect {
            url: shown,
            reason: "too many redirects (or a redirect loop)".into(),
        },
        ureq::Error::RedirectFailed => Error::Redirect {
            url: shown,
            reason: "redirect could not be followed".into(),
        },
        ureq::Error::RequireHttpsOnly(_) => Error::Redirect {
            url: shown,
            reason: "redirect from https to a non-https URL refused".into(),
        },
        ureq::Error::BadUri(_) => Error::InvalidUrl { url: shown, reason },
        ureq::Error::Rustls(ref e) => Error::Tls {
            url: shown,
            reason,
            kind: tls_kind(Some(e)),
        },
        ureq::Error::Tls(_) | ureq::Error::Pem(_) => Error::Tls {
            url: shown,
            reason,
            kind: TlsKind::Handshake,
        },
        ureq::Error::Io(ref e) if timed_out(e) => Error::Timeout {
            url: shown,
            what: reason,
            kind: TimeoutKind::Other,
        },
        // rustls reports handshake and certificate failures as InvalidData.
        ureq::Error::Io(ref e) if e.kind() == io::ErrorKind::InvalidData => {
            let rustls = e.get_ref().and_then(|inner| inner.downcast_ref());
            Error::Tls {
                url: shown,
                reason,
                kind: tls_kind(rustls),
            }
        }
        ureq::Error::Io(ref e) => Error::Network {
            url: shown,
            reason,
            kind: io_kind(e),
        },
        ureq::Error::HostNotFound => Error::Network {
            url: shown,
            reason,
            kind: NetworkKind::HostNotFound,
        },
        ureq::Error::ConnectionFailed | ureq::Error::InvalidProxyUrl => Error::Network {
            url: shown,
            reason,
            kind: NetworkKind::Connect,
        },
        ureq::Error::Protocol(_) | ureq::Error::Http(_) => Error::Network {
            url: shown,
            reason,
            kind: NetworkKind::Protocol,
        },
        _ => Error::Network {
            url: shown,
            reason,
            kind: NetworkKind::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_found_by_type_not_by_words() {
        let body_read = io::Error::other(ureq::Error::Timeout(ureq::Timeout::RecvBody));
        assert_eq!(ureq_timeout_of(&body_read), Some(ureq::Timeout::RecvBody));
        let nested = io::Error::other(ureq::Error::Io(io::Error::from(io::ErrorKind::TimedOut)));
        assert!(timed_out(&nested));
        let words = io::Error::other("the upstream said: timeout");
        assert!(!timed_out(&words) && ureq_timeout_of(&words).is_none());

        let url = Url::parse("http://user:hunter22@example.com/app.zip").unwrap();
        let err = map_ureq_error(ureq::Error::Io(io::Error::other("timeout")), &url);
        assert!(
            matches!(
                err,
                Error::Network {
                    kind: NetworkKind::Other,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = map_ureq_error(ureq::Error::Timeout(ureq::Timeout::Connect), &url);
        assert!(
            matches!(
                err,
                Error::Timeout {
                    kind: TimeoutKind::Connect,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = map_ureq_error(ureq::Error::HostNotFound, &url);
        assert!(
            matches!(
                err,
                Error::Network {
                    kind: NetworkKind::HostNotFound,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!format!("{err} {err:?}").contains("hunter22"));
    }

    #[test]
    fn parses_sources() {
        assert_eq!(
            Source::parse("pkg.zip").unwrap(),
            Source::File(PathBuf::from("pkg.zip"))
        );
        assert_eq!(
            Source::parse("file:///srv/pkg.zip").unwrap(),
            Source::File(PathBuf::from("/srv/pkg.zip"))
        );
        assert!(matches!(
            Source::parse("http://127.0.0.1:8080/a.zip").unwrap(),
            Source::Http(_)
        ));
        let s3 = Source::parse("s3://releases/app.zip").unwrap();
        assert!(matches!(&s3, Source::S3(l) if l.key() == "app.zip"));
        assert_eq!(s3.redacted(), "s3://releases/app.zip");
        assert!(parse_origin("s3://releases/app.zip").is_err());
        let err = Source::parse("ftp://u:hunter22@h/a.zip").unwrap_err();
        assert_eq!(err.code(), 20);
        assert!(!err.to_string().contains("hunter22"), "{err}");
        assert!(Source::parse("http://").is_err());
        let split = Source::parse("https:\r//deploy:hunter22@example.com/a.zip").unwrap_err();
        assert_eq!(split.code(), 20);
        assert!(!split.to_string().contains("hunter22"), "{split}");
        assert!(Source::parse("  ").is_err());
    }

    #[test]
    fn redaction_hides_user_and_password() {
        let s = Source::parse("https://deploy:s3cret@example.com/app.zip").unwrap();
        let shown = s.redacted();
        assert_eq!(shown, "https://***@example.com/app.zip");
        assert_eq!(
            redact_str("https://a:b@[not a url/x"),
            "https://***@[not a url/x"
        );
        let url = Url::parse("https://deploy:s3cret@example.com/").unwrap();
        assert_eq!(
            scrub("failed for deploy:s3cret", &url),
            "failed for ***:***"
        );
        let presigned =
            Source::parse("https://b.example/app.zip?X-Amz-Signature=abc123def&v=2").unwrap();
        assert_eq!(
            presigned.redacted(),
            "https://b.example/app.zip?X-Amz-Signature=***&v=***"
        );
        let url = Url::parse("https://b.example/a.zip?token=abc123def").unwrap();
        assert_eq!(
            scrub("GET /a.zip?token=abc123def failed", &url),
            "GET /a.zip?*** failed"
        );
    }

    #[test]
    fn query_and_fragment_secrets_are_hidden_even_when_the_url_does_not_parse() {
        // Unparsable (a bad port, a space in the host, an open bracket):
        // the query still goes.
        for location in [
            "https://pkg.example:99999/app.zip?X-Amz-Signature=SECRETSIG&X-Amz-Credential=AKIAX",
            "https://pkg exa.example/app.zip?token=SECRETSIG",
            "https://[::1/app.zip?sig=SECRETSIG",
            "https://u:SECRETSIG@pkg.example:99999/a.zip?sig=SECRETSIG#access_token=SECRETSIG",
        ] {
            assert!(Url::parse(location).is_err(), "{location}");
            let err = Source::parse(location).unwrap_err();
            assert_eq!(err.code(), 20);
            let shown = err.to_string();
            assert!(!shown.contains("SECRETSIG"), "{shown}");
            assert!(!shown.contains("AKIAX"), "{shown}");
        }
        assert_eq!(
            redact_str("https://pkg.example:99999/app.zip?X-Amz-Signature=abc&v=2"),
            "https://pkg.example:99999/app.zip?X-Amz-Signature=***&v=***"
        );
        // A bare query item (a token with no name) and a fragment's values.
        let bare = Source::parse("https://pkg.example/app.zip?SECRETTOKEN").unwrap();
        assert_eq!(bare.redacted(), "https://pkg.example/app.zip?***");
        let fragment =
            Source::parse("https://pkg.example/app.zip?v=1#access_token=SECRET&x").unwrap();
        assert_eq!(
            fragment.redacted(),
            "https://pkg.example/app.zip?v=***#access_token=***&***"
        );
    }

    #[test]
    fn debug_output_of_a_source_hides_its_credentials() {
        let source =
            Source::parse("https://deploy:hunter22@b.example/app.zip?X-Amz-Signature=abc123def")
                .unwrap();
        let shown = format!("{source:?} {:?}", Some(&source));
        assert!(shown.contains("b.example/app.zip"), "{shown}");
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(!shown.contains("deploy"), "{shown}");
        assert!(!shown.contains("abc123def"), "{shown}");
        let local = Source::parse("/srv/app.zip").unwrap();
        assert_eq!(format!("{local:?}"), "File(\"/srv/app.zip\")");
    }

    #[test]
    fn debug_output_hides_header_values() {
        let options = FetchOptions {
            headers: vec![("PRIVATE-TOKEN".into(), "glpat-secret1".into())],
            origin_headers: vec![(
                parse_origin("https://m.example").unwrap(),
                "X-Api-Key".into(),
                "secret2".into(),
            )],
            ..FetchOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(
            shown.contains("PRIVATE-TOKEN") && shown.contains("X-Api-Key"),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn content_range_start() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes */200"), None);
        assert_eq!(parse_content_range_start("items 1-2/3"), None);
        assert_eq!(parse_content_range_total("bytes */200"), Some(200));
        assert_eq!(parse_content_range_total("bytes 0-1/2"), Some(2));
        assert_eq!(parse_content_range_total("bytes 0-1/*"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = FetchOptions::default();
        let first = backoff(&o, 1);
        assert!(
            first >= o.backoff && first <= o.backoff * 3 / 2,
            "{first:?}"
        );
        assert!(backoff(&o, 3) >= o.backoff * 4);
        assert!(backoff(&o, 40) <= Duration::from_secs(45));
    }

    #[test]
    fn local_copy_hashes_and_enforces_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.zip");
        std::fs::write(&src, b"0123456789").unwrap();
        let out = dir.path().join("out.zip");
        let source = Source::File(src.clone());
        let got = fetch_to_file(&source, &out, &FetchOptions::default(), None).unwrap();
        assert_eq!(got.bytes, 10);
        assert_eq!(got.digest, Sha256Digest::of(b"0123456789"));
        assert_eq!(std::fs::read(&out).unwrap(), b"0123456789");
        assert_eq!(
            hash_local(&src, &FetchOptions::default(), None).unwrap(),
            got
        );

        let small = FetchOptions {
            max_size: 5,
            ..FetchOptions::default()
        };
        let err = fetch_to_file(&source, &out, &small, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    limit: Limit::DownloadSize,
                    ..
                }
            ),
            "{err}"
        );
    }
}
