//! The download cache as one deploy uses it.

use crate::cache::{Cache, EntryLock};
use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::options::DeployOptions;
use crate::progress::{self, Progress, ProgressFn, Stage};

/// The cache, and the lock on the expected digest's entry once taken: held
/// from before the first request until the deploy is over, so that
/// concurrent deploys of one digest download it once and no eviction
/// removes it while it is extracted.
pub(super) struct CacheUse {
    cache: Cache,
    held: Option<EntryLock>,
}

impl CacheUse {
    /// The cache the options name, if any.
    pub(super) fn of(options: &DeployOptions) -> Option<CacheUse> {
        let dir = options.cache.as_ref()?;
        Some(CacheUse {
            cache: Cache::new(dir).max_size(options.cache_max_size),
            held: None,
        })
    }

    pub(super) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Holds `lock` (on the expected digest's entry) for a download of that
    /// digest.
    pub(super) fn hold(&mut self, lock: EntryLock) {
        self.held = Some(lock);
    }

    /// The lock on the entry of `digest`, just verified: the one held, or
    /// one waited for now (heartbeats show the download `bytes` done).
    pub(super) fn lock(
        &mut self,
        digest: &Sha256Digest,
        bytes: u64,
        progress: &mut Option<&mut ProgressFn<'_>>,
    ) -> Result<EntryLock> {
        if let Some(lock) = self.held.take() {
            return Ok(lock);
        }
        let done = Progress::bytes(Stage::Fetch, bytes, Some(bytes));
        self.cache
            .lock_waiting(digest, &mut || progress::report(progress, done))
    }
}
