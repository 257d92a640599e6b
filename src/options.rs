//! What a deploy is asked to do, apart from running it: one plain value.
//!
//! [`DeployOptions`] holds every setting of a deploy but the package's
//! location, DEST and the callbacks (progress, hook), which belong to the run
//! ([`crate::Deploy`]). It is `Clone + Debug + Default`, so a fleet can build
//! it once and start many deploys from it, as ureq separates its `Config`
//! from its `Agent`. The builder methods of [`crate::Deploy`], the C state
//! (`zipdeploy_deploy_set_*`) and the example CLI all fill this one value,
//! and [`DeployOptions::validate`] is the one place that refuses invalid
//! input, when the deploy starts.

use std::fmt;
use std::path::PathBuf;

use crate::cache;
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::extract::Limits;
use crate::fetch::{FetchOptions, Source};
use crate::signature::PublicKey;

/// Every setting of a deploy apart from the package's location, DEST and
/// the callbacks.
///
/// ```
/// use std::time::Duration;
/// use zipdeploy::{Deploy, DeployOptions, Source};
///
/// // Built once, e.g. from a fleet's configuration…
/// let mut options = DeployOptions::default();
/// options.keep = 3;
/// options.cache = Some("/var/cache/zipdeploy".into());
/// options.fetch.timeout = Some(Duration::from_secs(300));
/// options.mirrors.push(Source::parse("https://mirror.example.net/app.zip")?);
///
/// // …and used by each deploy, which may add to it.
/// let deploy = Deploy::with_options("https://example.com/app.zip", options.clone())?
///     .sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?
///     .dest("/var/www/app");
/// assert_eq!(deploy.options().keep, 3);
/// # Ok::<(), zipdeploy::Error>(())
/// ```
///
/// Defaults: no expected digest (the report carries the one seen), the
/// limits of [`Limits`] and [`FetchOptions`], one previous release kept,
/// data not synced before activation (see [`DeployOptions::durable`]),
/// streaming on, no signature required, no mirrors, no cache.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeployOptions {
    /// The SHA-256 the package must have. Exclusive with
    /// [`DeployOptions::sha256_from`].
    pub sha256: Option<Sha256Digest>,
    /// Where to read the expected SHA-256 from: a sidecar file such as
    /// `app.zip.sha256` (see [`crate::sidecar::parse`]), fetched first with
    /// the same network options, at most 64 KiB.
    pub sha256_from: Option<Source>,
    /// Other locations of the same package, tried in order after the main
    /// one, each with the retry policy, until one serves a package that
    /// verifies.
    pub mirrors: Vec<Source>,
    /// The minisign key the package must be signed by; the signature is
    /// fetched from the package's location + `.minisig` (each mirror's own)
    /// unless [`DeployOptions::minisign_signature`] names it.
    pub minisign_key: Option<PublicKey>,
    /// Where the minisign signature is, instead of the package's location +
    /// `.minisig`. Only used with [`DeployOptions::minisign_key`].
    pub minisign_signature: Option<Source>,
    /// A download cache shared by the deploys of a host (see [`crate::cache`]).
    pub cache: Option<PathBuf>,
    /// Largest total size of the cache's entries. Default 10 GiB.
    pub cache_max_size: u64,
    /// How many previous releases to keep for rollback. Default 1.
    pub keep: usize,
    /// Whether to sync the staged tree to disk before activation, so the
    /// guarantees also hold against a power cut. Default false.
    pub durable: bool,
    /// Whether to extract entries while the package downloads. Default true.
    pub stream: bool,
    /// Extraction limits.
    pub limits: Limits,
    /// Network behaviour: timeouts, retries, headers, download size, proxy,
    /// TLS roots, netrc, S3.
    pub fetch: FetchOptions,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            sha256: None,
            sha256_from: None,
            mirrors: Vec::new(),
            minisign_key: None,
            minisign_signature: None,
            cache: None,
            cache_max_size: cache::DEFAULT_MAX_SIZE,
            keep: 1,
            durable: false,
            stream: true,
            limits: Limits::default(),
            fetch: FetchOptions::default(),
        }
    }
}

/// Locations are shown redacted: a URL may carry credentials.
impl fmt::Debug for DeployOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |source: &Option<Source>| source.as_ref().map(Source::redacted);
        let mirrors: Vec<String> = self.mirrors.iter().map(Source::redacted).collect();
        f.debug_struct("DeployOptions")
            .field("sha256", &self.sha256)
            .field("sha256_from", &shown(&self.sha256_from))
            .field("mirrors", &mirrors)
            .field("minisign_key", &self.minisign_key)
            .field("minisign_signature", &shown(&self.minisign_signature))
            .field("cache", &self.cache)
            .field("cache_max_size", &self.cache_max_size)
            .field("keep", &self.keep)
            .field("durable", &self.durable)
            .field("stream", &self.stream)
            .field("limits", &self.limits)
            .field("fetch", &self.fetch)
            .finish()
    }
}

impl DeployOptions {
    /// Checks the options before a deploy uses them; [`crate::Deploy::run`]
    /// calls it first, before taking any lock or making any request.
    ///
    /// An invalid setting is an [`Error::Config`] naming it (never a header
    /// value, which may be a secret): an expected SHA-256 together with a
    /// sidecar to read it from, a request header that is not
    /// `token: text without line breaks`, a zero connect or stall timeout,
    /// or a zero low-speed window while the rule is on.
    ///
    /// ```
    /// let mut options = zipdeploy::DeployOptions::default();
    /// assert!(options.validate().is_ok());
    /// options.fetch.headers.push(("Bad Name".into(), "secret".into()));
    /// let err = options.validate().unwrap_err();
    /// assert_eq!(err.to_string(), r#"invalid configuration: invalid header name "Bad Name""#);
    /// ```
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::Config(why));
        if self.sha256.is_some() && self.sha256_from.is_some() {
            return invalid(
                "give an expected SHA-256 or a sidecar to read it from, not both".into(),
            );
        }
        let fetch = &self.fetch;
        let headers = fetch.headers.iter().map(|(name, value)| (name, value));
        let origin_headers = fetch
            .origin_headers
            .iter()
            .map(|(_, name, value)| (name, value));
        for (name, value) in headers.chain(origin_headers) {
            check_header(name, value).or_else(invalid)?;
        }
        let positive_durations = [
            ("connect timeout", fetch.connect_timeout),
            ("stall timeout", fetch.stall_timeout),
        ];
        for (what, duration) in positive_durations {
            if duration.is_zero() {
                return invalid(format!("{what} must be longer than 0"));
            }
        }
        if fetch.speed_limit > 0 && fetch.speed_time.is_zero() {
            return invalid("low-speed time must be longer than 0 while the rule is on".into());
        }
        Ok(())
    }
}

/// Whether `name: value` can be sent as a request header: the name an
/// HTTP token, the value without line breaks. The message names the header,
/// never its value.
pub(crate) fn check_header(name: &str, value: &str) -> std::result::Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("invalid header name {name:?}"));
    }
    if value.contains(['\r', '\n']) {
        return Err(format!("value of header {name:?} contains a line break"));
    }
    Ok(())
}

/// A package location: a string to parse (`https://…`, `s3://…`,
/// `file://…` or a path) or an already parsed [`Source`].
///
/// The builder methods that take a location ([`crate::Deploy::new`],
/// [`crate::Deploy::mirror`], [`crate::Deploy::sha256_from`],
/// [`crate::Deploy::minisign_signature`]) accept either.
///
/// ```
/// use zipdeploy::{IntoSource, Source};
/// let parsed = Source::parse("https://example.com/app.zip")?;
/// assert_eq!("https://example.com/app.zip".into_source()?, parsed);
/// assert_eq!(parsed.clone().into_source()?, parsed);
/// assert!("ftp://example.com/app.zip".into_source().is_err());
/// # Ok::<(), zipdeploy::Error>(())
/// ```
pub trait IntoSource {
    /// The parsed location; a string that does not parse is an
    /// [`Error::InvalidUrl`].
    fn into_source(self) -> Result<Source>;
}

impl IntoSource for Source {
    fn into_source(self) -> Result<Source> {
        Ok(self)
    }
}

impl IntoSource for &Source {
    fn into_source(self) -> Result<Source> {
        Ok(self.clone())
    }
}

/// Any borrowed text: `&str`, `&String`, `&Cow<str>`, …
impl<T: AsRef<str> + ?Sized> IntoSource for &T {
    fn into_source(self) -> Result<Source> {
        Source::parse(self.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn refused(options: &DeployOptions) -> String {
        match options.validate() {
            Err(Error::Config(why)) => why,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn options_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone + fmt::Debug + Default>() {}
        shareable::<DeployOptions>();
    }

    #[test]
    fn defaults_are_valid() {
        DeployOptions::default().validate().unwrap();
    }

    #[test]
    fn each_invalid_setting_is_named() {
        let options = DeployOptions {
            sha256: Some(Sha256Digest::of(b"")),
            sha256_from: Some(Source::parse("https://example.com/a.sha256").unwrap()),
            ..DeployOptions::default()
        };
        assert!(refused(&options).contains("not both"));

        let mut options = DeployOptions::default();
        options.fetch.connect_timeout = Duration::ZERO;
        assert!(refused(&options).contains("connect timeout"));

        let mut options = DeployOptions::default();
        options.fetch.speed_time = Duration::ZERO;
        assert!(refused(&options).contains("low-speed time"));
        options.fetch.speed_limit = 0;
        options.validate().unwrap();

        let mut options = DeployOptions::default();
        options.fetch.stall_timeout = Duration::ZERO;
        assert!(refused(&options).contains("stall timeout"));
    }

    #[test]
    fn bad_headers_are_named_without_their_value() {
        let mut options = DeployOptions::default();
        let origin = crate::fetch::parse_origin("https://example.net").unwrap();
        options
            .fetch
            .origin_headers
            .push((origin, "X-Token".into(), "s3cret\r\nX-Evil: 1".into()));
        let why = refused(&options);
        assert!(
            why.contains("X-Token") && why.contains("line break"),
            "{why}"
        );
        assert!(!why.contains("s3cret"), "{why}");
    }

    #[test]
    fn debug_hides_credentials_in_locations() {
        let mut options = DeployOptions::default();
        options
            .mirrors
            .push(Source::parse("https://user:pa55word@mirror.example.net/a.zip").unwrap());
        options.sha256_from =
            Some(Source::parse("https://example.com/a.sha256?token=t0ken").unwrap());
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("pa55word") && !shown.contains("t0ken"),
            "{shown}"
        );
    }
}
