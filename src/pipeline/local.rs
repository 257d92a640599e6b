//! A local package hashed while it is extracted: one pass over its bytes
//! for each, side by side on two threads, rather than one after the other
//! (the benchmark's assets package, 392 MiB, from a local path: 0.82x the
//! time). Chosen by `obtain` when the package's digest cannot make the
//! deploy a no-op (see `Pipeline::fetch_from`), no signature is to be
//! checked and no mirror would be tried on a mismatch; the package is one
//! no other user can rewrite in place, read through the one handle it was
//! opened with.
//!
//! Nothing is activated before both are done, and the digest decides
//! first: a package that is not the expected one fails with that, whatever
//! extraction made of its bytes (extraction stops as soon as it is known).

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Pipeline, Reporter, Work};
use crate::error::{Error, Result};
use crate::extract::{self, Extracted};
use crate::fetch::{self, Fetched};
use crate::progress::{self, Progress, ProgressFn, Stage, HEARTBEAT};

/// What the hashing thread shares with the deploying thread.
#[derive(Default)]
struct Hashing {
    /// Bytes hashed so far.
    bytes: AtomicU64,
    /// Set once the whole package is hashed and verified.
    verified: AtomicBool,
    /// Set when hashing or verifying failed: extraction stops.
    failed: AtomicBool,
    /// Set when the deploy was cancelled: hashing stops.
    stop: AtomicBool,
    /// When hashing ended.
    ended: OnceLock<Instant>,
}

impl Pipeline {
    /// Extracts the open local package `archive` (of `len` bytes) into the
    /// staging tree while another thread hashes and verifies it. Progress
    /// is reported as while streaming a download: `Fetch` events (bytes
    /// hashed, entries extracted) until the package is verified, then
    /// extraction's own. Only this thread calls `progress` (a C callback is
    /// called on the thread that runs the deploy).
    ///
    /// Also returns how long the package took to hash (and verify): the
    /// fetch stage's time, as while streaming.
    pub(super) fn extract_while_hashing(
        &self,
        archive: &File,
        shown: &Path,
        len: u64,
        work: &Work<'_>,
        progress: Reporter<'_, '_>,
    ) -> Result<(Extracted, Fetched, Duration)> {
        let started = Instant::now();
        let shared = Hashing::default();
        let max = self.options.fetch.max_size;
        let deploying = std::thread::current();
        let hash = || {
            let hashed = fetch::hash_local_at(archive, shown, max, &shared.stop, &shared.bytes)
                .and_then(|fetched| match fetched {
                    Some(fetched) => self.verify(&fetched, None).map(|()| Some(fetched)),
                    None => Ok(None),
                });
            match &hashed {
                Ok(Some(_)) => shared.verified.store(true, Ordering::Release),
                Ok(None) => {}
                Err(_) => shared.failed.store(true, Ordering::Release),
            }
            let _ = shared.ended.set(Instant::now());
            // Done: a deploying thread waiting for it goes on at once.
            deploying.unpark();
            hashed
        };
        let fetch_event = |bytes: u64, entries: u64, total_entries: Option<u64>| Progress {
            stage: Stage::Fetch,
            bytes,
            total_bytes: Some(len),
            entries,
            total_entries,
        };
        progress::report(&mut progress.as_deref_mut(), fetch_event(0, 0, None))?;
        // Whether an event told that the whole package was verified, and
        // whether one of extraction's own followed.
        let (mut told_verified, mut told_extract) = (false, false);
        // The entries extraction last told, which heartbeats repeat.
        let entries = Mutex::new((0, None));
        let mut watch = |p: &Progress| {
            if shared.failed.load(Ordering::Acquire) {
                return ControlFlow::Break(());
            }
            *entries.lock().unwrap_or_else(|p| p.into_inner()) = (p.entries, p.total_entries);
            let event = match told_verified || shared.verified.load(Ordering::Acquire) {
                true if told_verified => {
                    told_extract = true;
                    *p
                }
                true => {
                    told_verified = true;
                    fetch_event(len, p.entries, p.total_entries)
                }
                false => fetch_event(
                    shared.bytes.load(Ordering::Relaxed),
                    p.entries,
                    p.total_entries,
                ),
            };
            match progress.as_deref_mut() {
                Some(f) => f(&event),
                None => ControlFlow::Continue(()),
            }
        };
        let extract = |watch: &mut ProgressFn<'_>| {
            extract::extract_open_archive_unless(
                archive,
                shown,
                &work.staging,
                &self.options.limits,
                Some(watch),
                work.writeback.as_ref(),
                &shared.failed,
            )
        };
        let mut cancelled = false;
        let (hashed, extracted) = std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("zipdeploy-sha256".into())
                .spawn_scoped(scope, hash);
            match thread {
                Ok(thread) => {
                    let extracted = extract(&mut watch);
                    // A cancel stops the hashing too. Any other failure
                    // waits for the digest, which names the cause first
                    // when the bytes are not the package's.
                    if matches!(extracted, Err(Error::Cancelled)) {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    // Extraction is over, the hash may not be: the bytes
                    // hashed are told every HEARTBEAT meanwhile (as fetch
                    // events through `watch`), and a cancel stops it.
                    while !thread.is_finished() && !shared.stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(HEARTBEAT);
                        let settled = shared.verified.load(Ordering::Acquire)
                            || shared.failed.load(Ordering::Acquire);
                        if thread.is_finished() || settled {
                            break;
                        }
                        let (entries, total_entries) =
                            *entries.lock().unwrap_or_else(|p| p.into_inner());
                        let beat = Progress {
                            stage: Stage::Extract,
                            bytes: 0,
                            total_bytes: None,
                            entries,
                            total_entries,
                        };
                        if watch(&beat).is_break() && !shared.failed.load(Ordering::Acquire) {
                            cancelled = true;
                            shared.stop.store(true, Ordering::Relaxed);
                        }
                    }
                    let hashed = thread
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p));
                    (hashed, extracted)
                }
                // No thread to be had: one after the other.
                Err(_) => {
                    let hashed = hash();
                    let extracted = match &hashed {
                        Ok(_) => extract(&mut watch),
                        Err(_) => Err(Error::Cancelled),
                    };
                    (hashed, extracted)
                }
            }
        });
        let fetched = hashed?;
        if cancelled {
            return Err(Error::Cancelled);
        }
        let done = extracted?;
        // Hashing stops early only once extraction was cancelled.
        let fetched = fetched.ok_or(Error::Cancelled)?;
        // Verified at or after extraction's last event: the fetch stage
        // ends (if not told yet), and extraction's is told whole.
        if !told_verified {
            let whole = fetch_event(len, done.entries, Some(done.entries));
            progress::report(&mut progress.as_deref_mut(), whole)?;
        }
        if !told_extract {
            progress::report(&mut progress.as_deref_mut(), super::extracted(&done))?;
        }
        let hashed_in = shared
            .ended
            .get()
            .map_or(Duration::ZERO, |t| t.duration_since(started));
        Ok((done, fetched, hashed_in))
    }
}
