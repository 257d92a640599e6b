//! Writeback started while extraction goes on, so that a durable deploy's
//! final flush (one `syncfs` before activation, see
//! [`Layout::activate`](crate::install::Layout::activate)) has little left
//! to write. Nothing here is a guarantee: the final `syncfs` is, and it
//! waits for everything started here. This only moves the disk writes
//! earlier, beside the CPU work of inflating. (The deploy's own download is
//! not written at all: it is truncated before the final flush.)
//!
//! Two kinds of files, two ways (measured on the benchmark's loop-mounted
//! journaled ext4, 2 cores):
//!
//! - A large file (at least [`LARGE`]) has its writeback started from the
//!   thread that writes it, every [`STEP`] bytes and at its end, with
//!   `posix_fadvise(POSIX_FADV_DONTNEED)`: on Linux that starts
//!   asynchronous writeback of the range's dirty pages (what dpkg does with
//!   `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which rustix lacks), and
//!   drops only pages that are already clean.
//! - Small files are left to the kernel in batches: starting the writeback
//!   of each one cost the extracting threads more than the whole final
//!   flush (php-app, 20,000 files: about +1 s of extraction to save 0.5 s of
//!   flush). Once [`BATCH_FILES`] small files or [`BATCH_BYTES`] of them are
//!   written, a background thread calls `syncfs`, which writes them all in
//!   one pass while the extraction threads go on.
//!
//! Why `syncfs`, and not an `fsync` per file: on ext4 each `fsync` commits
//! the journal or flushes the device cache; a tree of 20,000 files took
//! about 40 s to `fsync` file by file (15 to 19 s with writeback started
//! first), against under 1 s for one `syncfs`. Its cost on a shared host:
//! `syncfs` writes every dirty page of the filesystem, other programs' too,
//! so a deploy onto a filesystem that others are busy writing also waits
//! for their data (written sooner, not twice), and a background `syncfs`
//! also writes the part of the download that has arrived. zipdeploy paid
//! the first price already with its one final `syncfs`; the background
//! ones are only issued for trees of many small files, one at a time.

use std::fs::File;
use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Files at least this large have their own writeback started.
pub(crate) const LARGE: u64 = 1 << 20;

/// A large file's writeback is started every this many bytes.
pub(crate) const STEP: u64 = 8 << 20;

/// Small files written before a background `syncfs`.
pub(crate) const BATCH_FILES: u64 = 1_000;

/// Bytes of small files written before a background `syncfs`.
pub(crate) const BATCH_BYTES: u64 = 8 << 20;

/// Starts writeback of what one durable deploy extracts. Cheap to clone:
/// every extraction thread holds one.
#[derive(Debug, Clone)]
pub(crate) struct Writeback {
    handle: Arc<Handle>,
}

/// Shared by the clones of one [`Writeback`]; dropping it ends the
/// background thread, which holds [`Shared`] but not this.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Small files and their bytes written since the last background flush,
    /// and whether the deploy is over.
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Ranges of large files whose writeback was started.
    ranges_started: AtomicU64,
    /// Background `syncfs` calls made.
    background_flushes: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    files: u64,
    bytes: u64,
    done: bool,
}

impl Pending {
    fn full(&self) -> bool {
        self.files >= BATCH_FILES || self.bytes >= BATCH_BYTES
    }
}

impl Writeback {
    /// Writeback for files on the filesystem of `fs` (any open file or
    /// directory on it: the background `syncfs` flushes that filesystem).
    /// If the background thread cannot start, small files are left to the
    /// final flush.
    pub(crate) fn new(fs: OwnedFd) -> Self {
        let shared = Arc::new(Shared::default());
        let flusher = shared.clone();
        let _ = std::thread::Builder::new()
            .name("zipdeploy-writeback".into())
            .spawn(move || background(&flusher, &fs));
        Writeback {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Call after writing `n` more bytes to `file`, `total` in all: starts
    /// the writeback of each [`STEP`] completed.
    pub(crate) fn wrote(&self, file: &File, total: u64, n: u64) {
        let (before, now) = ((total - n) / STEP, total / STEP);
        if now > before {
            self.start(file, before * STEP, NonZeroU64::new((now - before) * STEP));
        }
    }

    /// Call once `file` is complete, `len` bytes.
    pub(crate) fn finished(&self, file: &File, len: u64) {
        if len >= LARGE {
            // What the steps have not covered.
            self.start(file, len / STEP * STEP, None);
            return;
        }
        let shared = &self.handle.shared;
        let mut pending = shared.lock();
        pending.files += 1;
        pending.bytes += len;
        if pending.full() {
            shared.wake.notify_one();
        }
    }

    /// Starts writeback of `len` bytes (to the end: `None`) of `file` from
    /// `offset`, without waiting for it.
    fn start(&self, file: &File, offset: u64, len: Option<NonZeroU64>) {
        // Advice only: on error the final flush writes the pages anyway.
        let _ = rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed);
        let started = &self.handle.shared.ranges_started;
        started.fetch_add(1, Ordering::Relaxed);
    }

    /// Ranges of large files whose writeback was started so far.
    #[cfg(test)]
    pub(crate) fn ranges_started(&self) -> u64 {
        self.handle.shared.ranges_started.load(Ordering::Relaxed)
    }

    /// Background `syncfs` calls made so far.
    #[cfg(test)]
    pub(crate) fn background_flushes(&self) -> u64 {
        let flushes = &self.handle.shared.background_flushes;
        flushes.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The deploy is over: the background thread ends (after the
        // `syncfs` it may be in; nobody waits for it).
        self.shared.lock().done = true;
        self.shared.wake.notify_one();
    }
}

/// The background thread: one `syncfs` of `fs` each time a batch of small
/// files is pending, until the deploy's [`Writeback`] is dropped.
fn background(shared: &Shared, fs: &OwnedFd) {
    loop {
        {
            let mut pending = shared.lock();
            while !pending.full() && !pending.done {
                pending = shared.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            if pending.done {
                return;
            }
            (pending.files, pending.bytes) = (0, 0);
        }
        let _ = rustix::fs::syncfs(fs);
        let flushes = &shared.background_flushes;
        flushes.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::stream::{Finished, Streamer};
    use crate::extract::{extract_open_archive, Limits};
    use std::io::Write;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// A package of one large file (20 MiB: two whole steps and a tail) and
    /// `small` small files.
    fn package(dir: &Path, small: usize) -> File {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(false);
        w.start_file("big.bin", stored).unwrap();
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..20 {
            w.write_all(&block).unwrap();
        }
        for i in 0..small {
            w.start_file(format!("s/{i}.txt"), stored).unwrap();
            w.write_all(format!("file {i}\n").as_bytes()).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        let path = dir.join("app.zip");
        std::fs::write(&path, bytes).unwrap();
        File::open(&path).unwrap()
    }

    fn writeback(dir: &Path) -> Writeback {
        Writeback::new(File::open(dir).unwrap().into())
    }

    /// Waits (at most 30 s) for the background flushes to reach `n`.
    fn background_flushes_reach(w: &Writeback, n: u64) -> u64 {
        let start = Instant::now();
        while w.background_flushes() < n && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        w.background_flushes()
    }

    #[test]
    fn extraction_starts_writeback_of_large_files_by_steps_and_flushes_small_ones_in_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 2_500);
        let w = writeback(tmp.path());
        let dest = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        let done =
            extract_open_archive(&archive, &shown, &dest, &Limits::default(), None, Some(&w))
                .unwrap();
        assert_eq!(done.files, 2_501);
        // 0-8 MiB and 8-16 MiB as they are written, 16-20 MiB at the end.
        assert_eq!(w.ranges_started(), 3);
        // 2,500 small files: a batch at 1,000 and one at 2,000 (the second
        // may find the first still running and be taken with it).
        let flushes = background_flushes_reach(&w, 1);
        assert!((1..=2).contains(&flushes), "{flushes} background flushes");
        assert_eq!(
            std::fs::read(dest.join("s/2499.txt")).unwrap(),
            b"file 2499\n"
        );
        assert_eq!(
            std::fs::metadata(dest.join("big.bin")).unwrap().len(),
            20 << 20
        );
    }

    #[test]
    fn streaming_starts_writeback_the_same_way() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 1_200);
        let w = writeback(tmp.path());
        let staging = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        let limits = Limits::default();
        let streamer = Streamer::start(&archive, &staging, &limits, Some(w.clone())).unwrap();
        streamer.growth().advance(archive.metadata().unwrap().len());
        let done = match streamer
            .finish(&archive, &shown, &staging, &limits)
            .unwrap()
        {
            Finished::Extracted(done) => done,
            Finished::SteppedAside(why) => panic!("stepped aside: {why}"),
        };
        assert_eq!(done.files, 1_201);
        assert_eq!(w.ranges_started(), 3);
        assert_eq!(background_flushes_reach(&w, 1), 1);
    }

    #[test]
    fn a_few_small_files_are_left_to_the_final_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = package(tmp.path(), 50);
        let w = writeback(tmp.path());
        let dest = tmp.path().join("tree");
        let shown = tmp.path().join("app.zip");
        extract_open_archive(&archive, &shown, &dest, &Limits::default(), None, Some(&w)).unwrap();
        assert_eq!(w.ranges_started(), 3);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.background_flushes(), 0);
    }

    #[test]
    fn the_background_thread_ends_with_the_deploy() {
        let tmp = tempfile::tempdir().unwrap();
        let w = writeback(tmp.path());
        let shared = Arc::downgrade(&w.handle.shared);
        drop(w.clone());
        assert!(shared.upgrade().is_some(), "a clone dropped, not the last");
        drop(w);
        let start = Instant::now();
        while shared.upgrade().is_some() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            shared.upgrade().is_none(),
            "the background thread still runs"
        );
    }
}
