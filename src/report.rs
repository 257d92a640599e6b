//! What a deploy did: the [`Report`] that [`crate::Deploy::run`] returns.

use std::path::PathBuf;
use std::time::Duration;

use crate::digest::Sha256Digest;

/// Time spent in each stage of a deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Downloading (or reading) and hashing the package, until it is
    /// verified: extraction done meanwhile (while streaming, or while a
    /// local package is hashed) counts here.
    pub fetch: Duration,
    /// Extracting into the staging directory (what is left of it once the
    /// package is verified), and running the hook.
    pub extract: Duration,
    /// Activating the staged tree.
    pub install: Duration,
    /// The whole deploy, waiting for the lock included.
    pub total: Duration,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// SHA-256 of the installed package.
    pub digest: Sha256Digest,
    /// The package location, credentials redacted.
    pub source: String,
    /// Where the tree is (absolute): DEST, or `DEST/current` when DEST is a
    /// mount point (see [`crate::Layout::new`]).
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
