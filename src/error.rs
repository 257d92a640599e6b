//! The one error type of the crate.
//!
//! Every variant has a stable numeric [`Error::code`]; `code / 10` is its
//! [`ErrorClass`], whose number is also the example CLI's exit status and the
//! class of the C ABI's status codes. Messages name the cause (entry, limit,
//! digests, HTTP status) and never contain credentials: URLs are redacted with
//! [`crate::fetch::Source::redacted`] before they reach an error.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which resource limit was exceeded (see [`crate::Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// Bytes downloaded (or read from a local package).
    DownloadSize,
    /// Sum of the uncompressed sizes of all entries.
    TotalSize,
    /// Number of entries in the archive.
    Entries,
    /// Uncompressed/compressed ratio of one entry.
    Ratio,
    /// Components in one entry's path.
    PathDepth,
    /// Bytes in one entry's path.
    PathLength,
    /// Extra fields and comments of the central directory.
    Metadata,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::DownloadSize => "download size",
            Limit::TotalSize => "total uncompressed size",
            Limit::Entries => "entry count",
            Limit::Ratio => "compression ratio",
            Limit::PathDepth => "path depth",
            Limit::PathLength => "path length",
            Limit::Metadata => "central directory metadata",
        })
    }
}

/// What failed on the network: the typed cause of an [`Error::Network`].
///
/// The messages are fixed words, so a source chain printed in full (as
/// `anyhow` does) can never show a URL or a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkKind {
    /// The host name could not be resolved.
    #[error("host not found")]
    HostNotFound,
    /// No connection could be made (refused, unreachable, a failing proxy).
    #[error("connection failed")]
    Connect,
    /// The connection broke during the exchange (reset, closed early, a
    /// failed read).
    #[error("connection broken")]
    Broken,
    /// The server's answer broke the protocol: malformed HTTP, or a resumed
    /// download at the wrong offset or of another version.
    #[error("protocol violation")]
    Protocol,
    /// Credentials for the request could not be obtained (S3).
    #[error("no credentials")]
    Credentials,
    /// Anything else (for example, no thread to run the request on).
    #[error("network failure")]
    Other,
}

/// Which timeout expired: the typed cause of an [`Error::Timeout`] (see
/// [`crate::FetchOptions`] for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The host name lookup took too long.
    #[error("name lookup timeout")]
    Resolve,
    /// No connection within the connect timeout.
    #[error("connect timeout")]
    Connect,
    /// No response, or no body data, within the stall timeout.
    #[error("stall timeout")]
    Stall,
    /// The overall deadline passed.
    #[error("overall deadline")]
    Deadline,
    /// Data came slower than the low-speed limit allows.
    #[error("low-speed limit")]
    LowSpeed,
    /// Another step of the request (such as sending it) took too long.
    #[error("timeout")]
    Other,
}

/// What failed in TLS: the typed cause of an [`Error::Tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsKind {
    /// The server's certificate was refused (not trusted, expired, for
    /// another name).
    #[error("certificate refused")]
    Certificate,
    /// Any other TLS failure (handshake, protocol, configuration).
    #[error("TLS handshake failed")]
    Handshake,
}

/// Coarse classes of failure; the number is the CLI exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorClass {
    /// The caller's input was wrong (URL, digest, options).
    Usage = 2,
    /// The package could not be fetched (HTTP status, network, timeout).
    Network = 3,
    /// The package's SHA-256 is not the expected one.
    Digest = 4,
    /// The archive is not a ZIP, is corrupt, ambiguous or hostile.
    Archive = 5,
    /// A resource limit was exceeded.
    Limit = 6,
    /// A local filesystem operation failed (permissions, full disk, ...).
    Filesystem = 7,
    /// The caller's hook (for example an init script) failed.
    Hook = 8,
    /// The caller cancelled the deploy.
    Cancelled = 9,
}

/// Everything that can go wrong in a deploy.
///
/// Every variant has a stable numeric [`Error::code`]; `code / 10` is its
/// [`ErrorClass`], whose number is also the example CLI's exit status and the
/// class of the C ABI's status codes. Messages are one line that names the
/// cause (entry, limit, digests, HTTP status) and never contains credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The package location could not be parsed or is not supported.
    #[error("invalid package URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, with credentials redacted.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An expected digest could not be parsed.
    #[error("invalid SHA-256 digest: {0}")]
    InvalidDigest(String),
    /// An option is missing or out of range.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The server answered with a status that is not success.
    #[error("HTTP status {status} fetching {url}")]
    HttpStatus {
        /// The URL, with credentials redacted.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed (DNS, refused, reset, a broken resume, ...).
    #[error("network error fetching {url}: {reason}")]
    Network {
        /// The URL, with credentials redacted.
        url: String,
        /// What failed, in words.
        reason: String,
        /// What failed, to branch on (also [`std::error::Error::source`]).
        #[source]
        kind: NetworkKind,
    },
    /// A connect, stall or overall timeout expired.
    #[error("timed out fetching {url}: {what}")]
    Timeout {
        /// The URL, with credentials redacted.
        url: String,
        /// Which timeout, in words.
        what: String,
        /// Which timeout, to branch on (also [`std::error::Error::source`]).
        #[source]
        kind: TimeoutKind,
    },
    /// The body ended before the length the server announced.
    #[error("download from {url} truncated: got {received} of {expected} bytes")]
    Truncated {
        /// The URL, with credentials redacted.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// A redirect was refused (loop, too many, or https to http).
    #[error("redirect refused fetching {url}: {reason}")]
    Redirect {
        /// The URL, with credentials redacted.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// TLS failed (untrusted certificate, handshake error).
    #[error("TLS error fetching {url}: {reason}")]
    Tls {
        /// The URL, with credentials redacted.
        url: String,
        /// What failed, in words.
        reason: String,
        /// What failed, to branch on (also [`std::error::Error::source`]).
        #[source]
        kind: TlsKind,
    },
    /// Every location of the package (the URL and its mirrors) failed; each
    /// failure is listed, in the order the locations were tried.
    #[error("all {} package locations failed: {}", .failures.len(), mirror_list(.failures))]
    MirrorsFailed {
        /// Each location (credentials redacted) and why it failed.
        failures: Vec<(String, Error)>,
    },

    /// The package's digest is not the expected one.
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller asked for (hex).
        expected: String,
        /// The digest of the bytes received (hex).
        actual: String,
    },
    /// The package's minisign signature is not valid for the trusted key:
    /// it does not match the bytes, was made by another key, is malformed,
    /// or is a legacy (non-prehashed) signature.
    #[error("minisign signature {signature} refused for key {key_id}: {reason}")]
    SignatureInvalid {
        /// The trusted key's id (16 hex digits, as minisign shows it).
        key_id: String,
        /// Where the signature came from, credentials redacted.
        signature: String,
        /// Why it was refused.
        reason: String,
    },
    /// The package's minisign signature could not be found (HTTP 404 or
    /// 410, or no such local file).
    #[error("minisign signature {signature} for key {key_id} is missing: {reason}")]
    SignatureMissing {
        /// The trusted key's id.
        key_id: String,
        /// Where the signature was looked for, credentials redacted.
        signature: String,
        /// What was found instead.
        reason: String,
    },
    /// The SHA-256 sidecar file (`app.zip.sha256`) is unusable: too big,
    /// not text, no digest line for the package, or ambiguous.
    #[error("SHA-256 sidecar {url}: {reason}")]
    DigestSidecar {
        /// Where the sidecar came from, credentials redacted.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The package is not a ZIP archive at all.
    #[error("not a ZIP archive: {0}")]
    NotZip(String),
    /// The archive is structurally broken or ambiguous.
    #[error("corrupt or ambiguous archive: {0}")]
    CorruptArchive(String),
    /// An entry would escape the destination or is of a refused kind.
    #[error("unsafe entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry name as stored (lossily decoded).
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// An entry uses a feature this crate does not extract.
    #[error("unsupported entry {entry:?}: {reason}")]
    UnsupportedEntry {
        /// The entry name as stored (lossily decoded).
        entry: String,
        /// The feature (encryption, compression method, ...).
        reason: String,
    },

    /// A resource limit was exceeded.
    #[error("{limit} limit exceeded: {actual} > {max}{}", entry_suffix(.entry))]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// The configured maximum.
        max: u64,
        /// What the package needs (at least).
        actual: u64,
        /// The entry concerned, if one.
        entry: Option<String>,
    },

    /// A filesystem operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done ("create", "write", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The destination's filesystem has too little free space.
    #[error("not enough free space at {}: need {needed} bytes, {available} available", .path.display())]
    NoSpace {
        /// Where the space was checked.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The destination's filesystem has too few free inodes for the
    /// archive's entries (files, directories, links), however much space
    /// it has left. Same code as [`Error::NoSpace`].
    #[error("not enough free inodes at {}: {needed} entries to create, {available} inodes available", .path.display())]
    NoInodes {
        /// Where the inodes were counted.
        path: PathBuf,
        /// Entries the archive creates.
        needed: u64,
        /// Inodes available.
        available: u64,
    },

    /// A rollback was asked for but no previous release is kept.
    #[error("nothing to roll back to: no kept release of {}", .dest.display())]
    NoRelease {
        /// The destination directory.
        dest: PathBuf,
    },

    /// A caller-supplied hook refused the staged tree.
    #[error("hook failed: {0}")]
    Hook(String),

    /// The progress callback asked to stop.
    #[error("deploy cancelled")]
    Cancelled,
}

fn mirror_list(failures: &[(String, Error)]) -> String {
    let shown: Vec<String> = failures
        .iter()
        .map(|(location, error)| format!("[{location}] {error}"))
        .collect();
    shown.join("; ")
}

fn entry_suffix(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" (entry {e:?})"),
        None => String::new(),
    }
}

impl Error {
    /// Stable numeric code of this variant; `code / 10` is its class.
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidUrl { .. } => 20,
            Error::InvalidDigest(_) => 21,
            Error::Config(_) => 22,
            Error::HttpStatus { .. } => 30,
            Error::Network { .. } => 31,
            Error::Timeout { .. } => 32,
            Error::Truncated { .. } => 33,
            Error::Redirect { .. } => 34,
            Error::Tls { .. } => 35,
            Error::MirrorsFailed { .. } => 36,
            Error::DigestMismatch { .. } => 40,
            Error::SignatureInvalid { .. } => 41,
            Error::SignatureMissing { .. } => 42,
            Error::DigestSidecar { .. } => 43,
            Error::NotZip(_) => 50,
            Error::CorruptArchive(_) => 51,
            Error::UnsafeEntry { .. } => 52,
            Error::UnsupportedEntry { .. } => 53,
            Error::LimitExceeded { .. } => 60,
            Error::Io { .. } => 70,
            Error::NoSpace { .. } => 71,
            Error::NoInodes { .. } => 71,
            Error::NoRelease { .. } => 72,
            Error::Hook(_) => 80,
            Error::Cancelled => 90,
        }
    }

    /// The class of this error (also the CLI's exit status).
    pub fn class(&self) -> ErrorClass {
        match self.code() / 10 {
            2 => ErrorClass::Usage,
            3 => ErrorClass::Network,
            4 => ErrorClass::Digest,
            5 => ErrorClass::Archive,
            6 => ErrorClass::Limit,
            7 => ErrorClass::Filesystem,
            8 => ErrorClass::Hook,
            _ => ErrorClass::Cancelled,
        }
    }

    /// Whether retrying the same request may succeed (network class only).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::HttpStatus { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Error::Network { .. } | Error::Timeout { .. } | Error::Truncated { .. } => true,
            _ => false,
        }
    }

    /// Builds an [`Error::Io`] (used as `map_err(Error::io("op", path))`).
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_by_class() {
        let e = Error::DigestMismatch {
            expected: "aa".into(),
            actual: "bb".into(),
        };
        assert_eq!(e.code(), 40);
        assert_eq!(e.class(), ErrorClass::Digest);
        assert_eq!(e.class() as u8, 4);
        assert_eq!(Error::Cancelled.class(), ErrorClass::Cancelled);
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::Usage);
    }

    #[test]
    fn limit_message_names_the_limit_and_entry() {
        let e = Error::LimitExceeded {
            limit: Limit::TotalSize,
            max: 10,
            actual: 11,
            entry: Some("big.bin".into()),
        };
        assert_eq!(
            e.to_string(),
            "total uncompressed size limit exceeded: 11 > 10 (entry \"big.bin\")"
        );
    }

    /// The codes `Error::code` gives, read from this file's source: the
    /// match there is exhaustive, so a new variant cannot miss this list.
    fn all_codes() -> Vec<u32> {
        let source = include_str!("error.rs");
        let body = &source[source.find("pub fn code(&self)").unwrap()..];
        let body = &body[..body.find("\n    }\n").unwrap()];
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("Error::"))
            .map(|l| l.rsplit("=> ").next().unwrap().trim_end_matches(','))
            .map(|code| code.parse().unwrap())
            .collect()
    }

    #[test]
    fn readme_lists_every_code_in_its_class() {
        let codes = all_codes();
        assert!(codes.len() >= 24 && codes.contains(&90), "{codes:?}");
        let readme = include_str!("../README.md");
        for code in codes {
            let class = code / 10;
            let row = readme
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(&format!("| {class} ")))
                .unwrap_or_else(|| panic!("README: no row for class {class}"));
            assert!(
                row.contains(&format!("| {code} ")) || row.contains(&format!(", {code} ")),
                "README's status code table lacks {code} in {row:?}"
            );
        }
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let status = |s| Error::HttpStatus {
            url: "u".into(),
            status: s,
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(404).is_transient());
        assert!(!Error::Cancelled.is_transient());
    }
}
