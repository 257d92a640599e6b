//! The minisign signature a deploy requires: fetched for each location (or
//! kept beside a cache entry), then checked over the package's bytes in the
//! same pass as the hash.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fetch::{FetchOptions, Source};
use crate::options::DeployOptions;
use crate::progress::ProgressFn;
use crate::sidecar;
use crate::signature::{PublicKey, Signature, Verifier};
use crate::tap::Tap;

/// The key packages must be signed by, and where its signatures are.
pub(super) struct Signer<'o> {
    key: &'o PublicKey,
    /// Where the signature is, when not beside the package.
    location: Option<&'o Source>,
}

impl<'o> Signer<'o> {
    /// The signer the options require, if any.
    pub(super) fn of(options: &'o DeployOptions) -> Option<Signer<'o>> {
        Some(Signer {
            key: options.minisign_key.as_ref()?,
            location: options.minisign_signature.as_ref(),
        })
    }

    /// The key's id: what the record and report of a package verified by
    /// it say it is signed by.
    pub(super) fn id(&self) -> String {
        self.key.key_id().to_string()
    }

    /// Fetches the signature of the package at `package` (its own
    /// `.minisig`, unless the options name one), through `scratch` in the
    /// state directory.
    pub(super) fn fetch(
        &self,
        package: &Source,
        options: &FetchOptions,
        scratch: &Path,
        heartbeat: Option<&mut ProgressFn<'_>>,
    ) -> Result<Signed<'o>> {
        let location = self
            .location
            .cloned()
            .unwrap_or_else(|| sidecar::beside(package, ".minisig"));
        let shown = location.redacted();
        let missing = |reason: String| Error::SignatureMissing {
            key_id: self.id(),
            signature: shown.clone(),
            reason,
        };
        let bytes = match sidecar::fetch_small(&location, options, scratch, heartbeat) {
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
                    key_id: self.id(),
                    signature: shown,
                    reason: format!("larger than {} KiB", sidecar::MAX_SIZE >> 10),
                })
            }
            Err(e) => return Err(e),
        };
        Ok(Signed {
            signature: self.key.signature(&bytes, &shown)?,
            key: self.key,
            shown,
        })
    }

    /// The signature kept beside a cache entry (`text`, shown as `shown`),
    /// if it is one by this key.
    pub(super) fn kept(&self, text: &[u8], shown: String) -> Option<Signed<'o>> {
        let signature = self.key.signature(text, "(cached)").ok()?;
        Some(Signed {
            key: self.key,
            signature,
            shown,
        })
    }
}

/// A signature by the signer's key, and where it came from.
pub(super) struct Signed<'k> {
    key: &'k PublicKey,
    signature: Signature,
    /// Its location, credentials redacted, for messages.
    shown: String,
}

impl Signed<'_> {
    /// Starts checking a package's bytes against it.
    pub(super) fn check(&self) -> Check<'_> {
        Check {
            verifier: self.key.verifier(&self.signature),
            shown: &self.shown,
        }
    }

    /// The signature file's text, to keep beside a cache entry.
    pub(super) fn text(&self) -> &str {
        &self.signature.text
    }
}

/// A signature check, fed the package's bytes as they are hashed.
pub(super) struct Check<'s> {
    verifier: Verifier<'s>,
    shown: &'s str,
}

impl Check<'_> {
    /// What the fetch stage feeds the bytes to.
    pub(super) fn tap(&mut self) -> &mut dyn Tap {
        &mut self.verifier
    }

    /// Whether the signature verifies over the bytes fed since the last
    /// restart.
    pub(super) fn finish(&mut self) -> Result<()> {
        self.verifier.finish(self.shown)
    }
}
