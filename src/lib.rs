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
//! down, in `DEST/current`: see [`Layout::new`]. The fetch and extract
//! stages are usable on their own: [`fetch::fetch_to_file`],
//! [`extract::extract_archive`]; [`Layout`] says where a destination's tree
//! and state are and what is installed there.
//!
//! Failures are one [`Error`], each variant with a stable numeric
//! [`Error::code`] whose tens digit is its [`ErrorClass`] (the example CLI's
//! exit status); network failures carry a typed [`NetworkKind`],
//! [`TimeoutKind`] or [`TlsKind`] to branch on.
//! The C ABI (for C, Go and Python embedders) is described by the generated
//! header `include/zipdeploy.h`.
//!
//! Every setting of a deploy is one plain value, [`DeployOptions`]
//! (`Clone + Debug + Default`), apart from the run: build it once, start
//! many deploys from it with [`Deploy::with_options`]. The builder methods,
//! the C state and the example CLI all fill that value, and
//! [`DeployOptions::validate`] refuses invalid settings when a deploy
//! starts.
//!
//! ```no_run
//! use std::time::Duration;
//! use zipdeploy::{Deploy, DeployOptions};
//!
//! let mut options = DeployOptions::default();
//! options.fetch.timeout = Some(Duration::from_secs(120));
//! options.cache = Some("/var/cache/zipdeploy".into());
//! for (url, dest) in [("https://example.com/a.zip", "/srv/a"), ("https://example.com/b.zip", "/srv/b")] {
//!     Deploy::with_options(url, options.clone())?.dest(dest).run()?;
//! }
//! # Ok::<(), zipdeploy::Error>(())
//! ```
//!
//! For fleets: [`Deploy::minisign_key`] (signed packages),
//! [`Deploy::sha256_from`] (digest from a sidecar file), [`Deploy::mirror`]
//! (fallback locations), [`Deploy::cache`] (a download cache shared by the
//! deploys of a host), and [`status()`] / [`rollback()`].
// `deny`, not `forbid`: the `ffi` module alone allows unsafe code (it must
// dereference the pointers C hands it); every other module still refuses it.
#![deny(unsafe_code)]
#![deny(missing_docs)]

// The modules a user names: the stages usable on their own, and the types
// of the fleet features.
pub mod cache;
pub mod extract;
pub mod fetch;
pub mod install;
pub mod s3;
pub mod sidecar;
pub mod signature;

// Everything a user needs from these is re-exported below; the module paths
// stay for code written against them, out of the documentation.
#[doc(hidden)]
pub mod digest;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod netrc;
#[doc(hidden)]
pub mod progress;
#[doc(hidden)]
pub mod status;

// The C ABI: its documentation is the C header (`include/zipdeploy.h`), not
// rustdoc, so the module is hidden there; it stays `pub` so that Rust tests
// can call the exports as C would.
#[doc(hidden)]
pub mod ffi;

mod civil;
mod deploy;
mod fsutil;
mod growth;
mod http;
mod mounts;
mod options;
mod pipeline;
mod prealloc;
mod proxy;
mod ranged;
mod report;
mod retry_after;
mod tap;
mod trust;
mod writeback;

pub use cache::Cache;
pub use deploy::Deploy;
pub use digest::Sha256Digest;
pub use error::{Error, ErrorClass, Limit, NetworkKind, Result, TimeoutKind, TlsKind};
pub use extract::{Extracted, Limits};
pub use fetch::{FetchOptions, Fetched, NetrcFile, ProxyConfig, Source};
pub use install::{Installed, Layout, Release};
pub use options::{DeployOptions, IntoSource};
pub use progress::{Notice, NoticeFn, Progress, ProgressFn, Stage};
pub use report::{Report, Timings};
pub use status::{rollback, rollback_durable, status, Rollback, Status};

// Compiled by `cargo test --doc` only: the README's examples, and what
// must not compile outside the crate.
#[cfg(doctest)]
mod doctests;
